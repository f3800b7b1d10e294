//! A SCRAM and PLAIN client, for integration tests and the load generator.

use super::credentials::{ct_eq, fill_random, normalize_password, Hash};
use super::{Mechanism, ScramKeys, MIN_ITERATIONS, NONCE_RANDOM_LEN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::fmt;

/// Why the client gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// PLAIN is not a SCRAM mechanism, or -PLUS was asked for without binding data.
    BadSetup,
    /// The server's message does not follow RFC 5802.
    Malformed,
    /// The server's nonce does not extend ours.
    BadNonce,
    /// Fewer iterations than RFC 7677 allows: a downgrade.
    TooFewIterations,
    /// The server sent `e=…`.
    Server(String),
    /// The server's signature is wrong: it doesn't know our credentials.
    BadServerSignature,
    /// A message came out of order.
    OutOfOrder,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadSetup => f.write_str("not a SCRAM setup this client can do"),
            Error::Malformed => f.write_str("malformed server message"),
            Error::BadNonce => f.write_str("server nonce does not extend ours"),
            Error::TooFewIterations => f.write_str("iteration count below 4096"),
            Error::Server(e) => write!(f, "server error: {e}"),
            Error::BadServerSignature => f.write_str("bad server signature"),
            Error::OutOfOrder => f.write_str("message out of order"),
        }
    }
}

impl std::error::Error for Error {}

/// The PLAIN message `NUL username NUL password` (no authzid).
pub fn plain(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// One SCRAM exchange from the client side.
pub struct ScramClient {
    hash: Hash,
    password: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    client_first_bare: String,
    client_nonce: String,
    /// Set once server-first is handled.
    server_signature: Option<Vec<u8>>,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("gs2_header", &self.gs2_header)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Prepares an exchange. `channel_binding` is `(type, data)`: with a -PLUS mechanism
    /// it is sent as `p=type`; with a plain SCRAM mechanism it makes the gs2 flag `y`
    /// ("I could bind, but you don't offer it"); without it the flag is `n`.
    pub fn new(
        mech: Mechanism,
        username: &str,
        password: &str,
        channel_binding: Option<(&'static str, Vec<u8>)>,
    ) -> Result<ScramClient, Error> {
        if !mech.is_scram() {
            return Err(Error::BadSetup);
        }
        let (gs2_header, cb_data) = match (mech.is_plus(), channel_binding) {
            (true, Some((name, data))) => (format!("p={name},,"), data),
            (true, None) => return Err(Error::BadSetup),
            (false, Some(_)) => ("y,,".to_owned(), Vec::new()),
            (false, None) => ("n,,".to_owned(), Vec::new()),
        };
        let mut random = [0u8; NONCE_RANDOM_LEN];
        fill_random(&mut random);
        let client_nonce = BASE64.encode(random);
        Ok(ScramClient {
            hash: mech.hash(),
            password: normalize_password(password).into_owned(),
            gs2_header,
            cb_data,
            client_first_bare: format!("n={},r={client_nonce}", encode_saslname(username)),
            client_nonce,
            server_signature: None,
        })
    }

    /// Asks for an authorization identity (`a=` in the gs2 header).
    pub fn with_authzid(mut self, authzid: &str) -> ScramClient {
        let flag = self.gs2_header.split(',').next().unwrap_or("n").to_owned();
        self.gs2_header = format!("{flag},a={},", encode_saslname(authzid));
        self
    }

    /// Replaces the random client nonce (test vectors).
    #[cfg(test)]
    pub(super) fn with_nonce(mut self, nonce: &str) -> ScramClient {
        let bare = self.client_first_bare.replace(&self.client_nonce, nonce);
        self.client_first_bare = bare;
        self.client_nonce = nonce.to_owned();
        self
    }

    /// client-first-message, the initial response of `<auth/>`.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }

    /// Handles server-first-message and returns client-final-message.
    pub fn handle_server_first(&mut self, server_first: &[u8]) -> Result<Vec<u8>, Error> {
        if self.server_signature.is_some() {
            return Err(Error::OutOfOrder);
        }
        let server_first = std::str::from_utf8(server_first).map_err(|_| Error::Malformed)?;
        let mut attrs = server_first.split(',');
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(Error::Malformed)?;
        let salt = attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(Error::Malformed)?;
        let iterations: u32 = attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or(Error::Malformed)?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(Error::BadNonce);
        }
        if iterations < MIN_ITERATIONS {
            return Err(Error::TooFewIterations);
        }

        let mut cbind_input = self.gs2_header.clone().into_bytes();
        cbind_input.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={nonce}", BASE64.encode(&cbind_input));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);

        let hash = self.hash;
        let salted = hash.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        let keys = ScramKeys::from_salted_password(hash, &salted);
        let client_signature = hash.hmac(&keys.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.server_signature = Some(hash.hmac(&keys.server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message (the data of `<success/>`).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), Error> {
        let expected = self.server_signature.as_ref().ok_or(Error::OutOfOrder)?;
        let server_final = std::str::from_utf8(server_final).map_err(|_| Error::Malformed)?;
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(Error::Server(e.to_owned()));
        }
        let signature = server_final
            .split(',')
            .next()
            .and_then(|v| v.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(Error::Malformed)?;
        if ct_eq(&signature, expected) {
            Ok(())
        } else {
            Err(Error::BadServerSignature)
        }
    }
}

/// The saslname encoding of `s` (RFC 5802 §7; the inverse of the server's decoding).
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::client;

    #[test]
    fn client_rejects_bad_servers() {
        let mut c = ScramClient::new(Mechanism::ScramSha256, "u", "p", None)
            .unwrap()
            .with_nonce("abc");
        assert_eq!(
            c.verify_server_final(b"v=AAAA"),
            Err(client::Error::OutOfOrder)
        );
        assert_eq!(
            c.handle_server_first(b"r=xyz,s=AAAA,i=4096"),
            Err(client::Error::BadNonce)
        );
        assert_eq!(
            c.handle_server_first(b"r=abc,s=AAAA,i=4096"),
            Err(client::Error::BadNonce)
        );
        assert_eq!(
            c.handle_server_first(b"r=abcd,s=AAAA,i=4095"),
            Err(client::Error::TooFewIterations)
        );
        assert_eq!(
            c.handle_server_first(b"r=abcd,s=!,i=4096"),
            Err(client::Error::Malformed)
        );
        c.handle_server_first(b"r=abcd,s=AAAA,i=4096").unwrap();
        assert_eq!(
            c.verify_server_final(b"e=invalid-proof"),
            Err(client::Error::Server("invalid-proof".into()))
        );
        assert_eq!(
            c.verify_server_final(format!("v={}", BASE64.encode([0; 32])).as_bytes()),
            Err(client::Error::BadServerSignature)
        );
        assert!(ScramClient::new(Mechanism::Plain, "u", "p", None).is_err());
        assert!(ScramClient::new(Mechanism::ScramSha1Plus, "u", "p", None).is_err());
    }
}
