//! The Hashed Token SASL mechanisms (draft-schmaus-kitten-sasl-ht-08) that XEP-0484 FAST
//! uses: `HT-SHA-256-NONE`, and with channel binding `HT-SHA-256-ENDP`
//! (`tls-server-end-point`) and `HT-SHA-256-EXPR` (`tls-exporter`). Sans-IO: the client's
//! one message is `authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)`; the server's
//! answer (additional data) is `HMAC-SHA-256(token, "Responder" || cb-data)`.
//!
//! Tokens are only ever kept as SHA-256(token): every token is longer than SHA-256's block
//! (64 bytes), and HMAC (RFC 2104 §2) first hashes such a key, so HMAC(token, m) =
//! HMAC(SHA-256(token), m) — the stored key does the same work as the token without the
//! token's text being stored.

use super::{ChannelBindings, Failure, CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{digest, hmac};

/// A FAST mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HtMechanism {
    /// No channel binding.
    None,
    /// `tls-server-end-point` (RFC 5929).
    Endp,
    /// `tls-exporter` (RFC 9266).
    Expr,
}

/// Random bytes in a token: 64, so that the token (with its prefix) is longer than the
/// HMAC block and is hashed as a key (see the module's notes).
const TOKEN_RANDOM_LEN: usize = 64;

impl HtMechanism {
    /// Strongest first.
    pub const ALL: [HtMechanism; 3] = [HtMechanism::Expr, HtMechanism::Endp, HtMechanism::None];

    pub fn name(self) -> &'static str {
        match self {
            HtMechanism::None => "HT-SHA-256-NONE",
            HtMechanism::Endp => "HT-SHA-256-ENDP",
            HtMechanism::Expr => "HT-SHA-256-EXPR",
        }
    }

    pub fn from_name(name: &str) -> Option<HtMechanism> {
        HtMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The channel binding type it needs.
    fn binding(self) -> Option<&'static str> {
        match self {
            HtMechanism::None => None,
            HtMechanism::Endp => Some(CB_TLS_SERVER_END_POINT),
            HtMechanism::Expr => Some(CB_TLS_EXPORTER),
        }
    }

    /// What a connection with these bindings can offer, strongest first.
    pub fn offered(cb: &ChannelBindings) -> Vec<HtMechanism> {
        HtMechanism::ALL
            .into_iter()
            .filter(|m| m.binding().is_none_or(|t| cb.get(t).is_some()))
            .collect()
    }

    /// The channel binding data this mechanism mixes in on this connection (empty for
    /// `-NONE`); `None` if the connection cannot give it.
    pub fn cb_data(self, cb: &ChannelBindings) -> Option<&[u8]> {
        match self.binding() {
            None => Some(&[]),
            Some(t) => cb.get(t),
        }
    }
}

/// A new token (`secret-token:fast-` and 64 random bytes, base64url) and the key to store
/// for it, SHA-256(token).
pub fn new_token() -> (String, [u8; 32]) {
    let mut random = [0u8; TOKEN_RANDOM_LEN];
    super::credentials::fill_random(&mut random);
    let token = format!("secret-token:fast-{}", URL_SAFE_NO_PAD.encode(random));
    let key = token_key(&token);
    (token, key)
}

/// The stored form of a token: SHA-256(token), the HMAC key it stands for.
pub fn token_key(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    key
}

/// The client's message: (authcid, initiator hash). Both parts must be there.
pub fn parse(message: &[u8]) -> Result<(String, Vec<u8>), Failure> {
    let nul = message
        .iter()
        .position(|&b| b == 0)
        .ok_or(Failure::MalformedRequest)?;
    let (user, hash) = (&message[..nul], &message[nul + 1..]);
    let user = std::str::from_utf8(user).map_err(|_| Failure::MalformedRequest)?;
    if user.is_empty() || hash.len() != 32 {
        return Err(Failure::MalformedRequest);
    }
    Ok((user.to_owned(), hash.to_vec()))
}

fn mac(key: &[u8], label: &[u8], cb: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    ctx.update(label);
    ctx.update(cb);
    ctx.sign()
}

/// Checks the initiator hash against a stored key, in constant time.
pub fn verify(key: &[u8], cb: &[u8], initiator: &[u8]) -> bool {
    let mut msg = b"Initiator".to_vec();
    msg.extend_from_slice(cb);
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), &msg, initiator).is_ok()
}

/// The server's answer for a verified token.
pub fn responder(key: &[u8], cb: &[u8]) -> Vec<u8> {
    mac(key, b"Responder", cb).as_ref().to_vec()
}

/// The client's side, for tests and the load generator: the message for `user` with
/// `token`, and the answer to expect.
pub fn client_message(user: &str, token: &str, cb: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let key = token.as_bytes();
    let mut m = user.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(mac(key, b"Initiator", cb).as_ref());
    (m, mac(key, b"Responder", cb).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_key_stands_for_the_token() {
        let (token, key) = new_token();
        assert!(token.len() > 64, "{token}");
        assert_ne!(new_token().0, token);
        for cb in [&b""[..], &[7u8; 32][..]] {
            let (msg, answer) = client_message("mom", &token, cb);
            let (user, initiator) = parse(&msg).unwrap();
            assert_eq!(user, "mom");
            assert!(verify(&key, cb, &initiator));
            assert_eq!(responder(&key, cb), answer);
            // Another token, or other binding data, fails.
            assert!(!verify(&new_token().1, cb, &initiator));
            assert!(!verify(&key, b"other", &initiator));
        }
    }

    #[test]
    fn names_offers_and_bad_messages() {
        for m in HtMechanism::ALL {
            assert_eq!(HtMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(
            HtMechanism::offered(&ChannelBindings::default()),
            [HtMechanism::None]
        );
        let tls13 = ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: Some(vec![2; 32]),
        };
        assert_eq!(HtMechanism::offered(&tls13), HtMechanism::ALL);
        assert_eq!(HtMechanism::Expr.cb_data(&tls13), Some(&[1u8; 32][..]));
        assert_eq!(HtMechanism::Expr.cb_data(&ChannelBindings::default()), None);
        for bad in [
            &b""[..],
            b"mom",
            b"\0xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            b"mom\0short",
        ] {
            assert_eq!(parse(bad), Err(Failure::MalformedRequest), "{bad:?}");
        }
    }
}
