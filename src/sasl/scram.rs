//! The server side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with their -PLUS
//! variants, sans-IO: [`ScramStart`] after the client's first message, [`ScramWait`] after
//! our challenge.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::credentials::{ct_eq, fill_random, process_secret, Hash};
use super::{ChannelBindings, Failure, Mechanism, ScramKeys, StoredCredentials};
use super::{DEFAULT_ITERATIONS, NONCE_RANDOM_LEN, SALT_LEN};

/// A SCRAM exchange after the client's first message, waiting for the account lookup.
pub struct ScramStart {
    mech: Mechanism,
    username: String,
    authzid: Option<String>,
    client_nonce: String,
    client_first_bare: String,
    /// What `c=` must decode to: the gs2 header followed by the channel binding data.
    cbind_input: Vec<u8>,
}

impl fmt::Debug for ScramStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramStart")
            .field("mech", &self.mech)
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .finish_non_exhaustive()
    }
}

/// RFC 5802 §7:
/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
pub(super) fn parse_client_first(
    mech: Mechanism,
    message: &[u8],
    cb: &ChannelBindings,
) -> Result<ScramStart, Failure> {
    use Failure::MalformedRequest as Malformed;
    let message = std::str::from_utf8(message).map_err(|_| Malformed)?;
    let (flag, rest) = message.split_once(',').ok_or(Malformed)?;
    let (authzid, bare) = rest.split_once(',').ok_or(Malformed)?;
    let gs2_header = &message[..message.len() - bare.len()];

    let cb_data: &[u8] = match flag {
        // The client can't do channel binding: fine unless it picked a -PLUS mechanism.
        "n" if !mech.is_plus() => &[],
        // The client can, but believes we can't. If we offered -PLUS on this connection,
        // someone removed it from our feature list: a downgrade (RFC 5802 §6).
        "y" if !mech.is_plus() => {
            if !cb.is_empty() {
                return Err(Failure::NotAuthorized);
            }
            &[]
        }
        _ => {
            // `p=` only goes with -PLUS, and -PLUS only with `p=` (RFC 5802 §6).
            let name = flag.strip_prefix("p=").ok_or(Malformed)?;
            if !mech.is_plus() || !is_cb_name(name) {
                return Err(Malformed);
            }
            // A well-formed request for a binding this connection can't provide (an
            // unknown type, `tls-unique`, or one we didn't advertise). RFC 5802 would say
            // e=unsupported-channel-binding-type; RFC 6120 has no such condition, and the
            // syntax is fine, so: the authentication cannot be bound as asked, not-authorized.
            cb.get(name).ok_or(Failure::NotAuthorized)?
        }
    };

    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(a.strip_prefix("a=").ok_or(Malformed)?)?),
    };

    let mut attrs = bare.split(',');
    let username = match attrs.next() {
        // A mandatory extension we don't know: RFC 5802 §5.1 says fail.
        Some(a) if a.starts_with("m=") => return Err(Malformed),
        Some(a) => decode_saslname(a.strip_prefix("n=").ok_or(Malformed)?)?,
        None => return Err(Malformed),
    };
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| is_nonce(n))
        .ok_or(Malformed)?;
    // Optional extensions are ignored, but must look like attributes.
    if !attrs.all(is_attr) {
        return Err(Malformed);
    }

    let mut cbind_input = gs2_header.as_bytes().to_vec();
    cbind_input.extend_from_slice(cb_data);
    Ok(ScramStart {
        mech,
        username,
        authzid,
        client_nonce: client_nonce.to_owned(),
        client_first_bare: bare.to_owned(),
        cbind_input,
    })
}

impl ScramStart {
    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The username after `=2C`/`=3D` unescaping; the caller nodepreps it.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The requested authorization identity, if any (check with [`check_authzid`](super::check_authzid)).
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// Produces server-first-message. With `None` (unknown user) the challenge looks like a
    /// real one, with a salt derived from the username under a per-process secret (so asking
    /// twice gives the same salt) and [`DEFAULT_ITERATIONS`], so that user existence doesn't
    /// leak; [`ScramWait::finish`] then does the same work and fails with `not-authorized`.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn challenge(self, creds: Option<&StoredCredentials>) -> (Vec<u8>, ScramWait) {
        self.challenge_ssdp(creds, None)
    }

    /// [`challenge`](Self::challenge) with a XEP-0474 `h` attribute (from
    /// [`ssdp_hash`](super::ssdp_hash)) in the server-first-message, covered by the proofs.
    pub fn challenge_ssdp(
        self,
        creds: Option<&StoredCredentials>,
        ssdp: Option<&str>,
    ) -> (Vec<u8>, ScramWait) {
        let mut random = [0u8; NONCE_RANDOM_LEN];
        fill_random(&mut random);
        let server_nonce = BASE64.encode(random);
        self.challenge_with_nonce(creds, &server_nonce, ssdp)
    }

    fn challenge_with_nonce(
        self,
        creds: Option<&StoredCredentials>,
        server_nonce: &str,
        ssdp: Option<&str>,
    ) -> (Vec<u8>, ScramWait) {
        let hash = self.mech.hash();
        let (salt, iterations, keys) = match creds {
            // An account without this hash's keys (imported with SHA-1 keys only, until a
            // XEP-0480 upgrade) fails as a wrong password would.
            Some(c) => (
                c.salt.clone(),
                c.iterations,
                c.has(hash).then(|| c.keys(hash).clone()),
            ),
            None => (fake_salt(&self.username), DEFAULT_ITERATIONS, None),
        };
        let nonce = format!("{}{server_nonce}", self.client_nonce);
        let mut server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
        if let Some(h) = ssdp {
            server_first.push_str(",h=");
            server_first.push_str(h);
        }
        let auth_message_prefix = format!("{},{server_first},", self.client_first_bare);
        let wait = ScramWait {
            mech: self.mech,
            username: self.username,
            authzid: self.authzid,
            nonce,
            cbind_input: self.cbind_input,
            auth_message_prefix,
            keys,
        };
        (server_first.into_bytes(), wait)
    }
}

/// A SCRAM exchange waiting for client-final-message.
pub struct ScramWait {
    mech: Mechanism,
    username: String,
    authzid: Option<String>,
    nonce: String,
    cbind_input: Vec<u8>,
    /// `client-first-message-bare "," server-first-message ","`.
    auth_message_prefix: String,
    /// `None` for an unknown user.
    keys: Option<ScramKeys>,
}

impl fmt::Debug for ScramWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramWait")
            .field("mech", &self.mech)
            .field("username", &self.username)
            .field("authzid", &self.authzid)
            .finish_non_exhaustive()
    }
}

impl ScramWait {
    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// As [`ScramStart::username`].
    pub fn username(&self) -> &str {
        &self.username
    }

    /// As [`ScramStart::authzid`].
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    /// Checks client-final-message (RFC 5802 §7:
    /// `channel-binding "," nonce ["," extensions] "," proof`) and returns
    /// server-final-message (`v=…`), the additional data of `<success/>`.
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, Failure> {
        use Failure::MalformedRequest as Malformed;
        let hash = self.mech.hash();
        let message = std::str::from_utf8(client_final).map_err(|_| Malformed)?;
        // The proof is the last attribute, and AuthMessage covers everything before it.
        let (without_proof, proof) = message.rsplit_once(",p=").ok_or(Malformed)?;
        let mut attrs = without_proof.split(',');
        let cbind = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(Malformed)?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(Malformed)?;
        if !attrs.all(is_attr) {
            return Err(Malformed);
        }
        // Base64 inside the mechanism is the mechanism's syntax: malformed, not
        // incorrect-encoding (that one is about the XMPP-level payload).
        let cbind = BASE64.decode(cbind).map_err(|_| Malformed)?;
        let proof = BASE64.decode(proof).map_err(|_| Malformed)?;
        if proof.len() != hash.len() {
            return Err(Malformed);
        }

        // Computed before any check, and for unknown users too, so timing tells nothing.
        let dummy;
        let keys = match &self.keys {
            Some(keys) => keys,
            None => {
                dummy = fake_keys(hash);
                &dummy
            }
        };
        let auth_message = [
            self.auth_message_prefix.as_bytes(),
            without_proof.as_bytes(),
        ]
        .concat();
        let client_signature = hash.hmac(&keys.stored_key, &auth_message);
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let proof_ok = ct_eq(&hash.digest(&client_key), &keys.stored_key);

        // A different `c=` means the TLS channel (or the gs2 header) is not the one the
        // client saw: a man in the middle, or a downgrade of the header.
        let cbind_ok = cbind == self.cbind_input;
        let nonce_ok = nonce == self.nonce;
        if !(proof_ok && cbind_ok && nonce_ok && self.keys.is_some()) {
            return Err(Failure::NotAuthorized);
        }
        let server_signature = hash.hmac(&keys.server_key, &auth_message);
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 §7).
fn is_cb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// c-nonce = printable ASCII except "," (RFC 5802 §7), at least one.
fn is_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// attr-val = ALPHA "=" value.
fn is_attr(attr: &str) -> bool {
    let b = attr.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'='
}

/// saslname (RFC 5802 §7): `=2C` is ",", `=3D` is "=", any other "=" is an error; not empty.
fn decode_saslname(s: &str) -> Result<String, Failure> {
    if s.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let escaped = rest.get(i + 1..i + 3);
        out.push(match escaped {
            Some("2C") => ',',
            Some("3D") => '=',
            _ => return Err(Failure::MalformedRequest),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The salt shown for an unknown user: stable for the process, unrelated across users.
fn fake_salt(username: &str) -> Vec<u8> {
    let mac = Hash::Sha256.hmac(process_secret(), username.as_bytes());
    mac[..SALT_LEN].to_vec()
}

/// Keys no client can match, used so that an unknown user costs the same work.
fn fake_keys(hash: Hash) -> ScramKeys {
    let key = hash.hmac(process_secret(), b"unknown user");
    ScramKeys {
        stored_key: key.clone(),
        server_key: key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::client::ScramClient;
    use crate::sasl::tests::{creds, login, scram, tls, SCRAMS};
    use crate::sasl::*;

    #[test]
    fn rfc5802_sha1_vector() {
        let creds = StoredCredentials::derive_with_salt(
            "pencil",
            &BASE64.decode("QSXCR+Q6sek8bf92").unwrap(),
            4096,
        );
        let s = scram(
            start(
                Mechanism::ScramSha1,
                b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                &ChannelBindings::default(),
            )
            .unwrap(),
        );
        assert_eq!(s.username(), "user");
        assert_eq!(s.authzid(), None);
        let (server_first, wait) = s.challenge_with_nonce(Some(&creds), "3rfcNHYJY1ZVvWVs7j", None);
        assert_eq!(
            server_first,
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        let client_final =
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
        assert_eq!(
            wait.finish(client_final).unwrap(),
            b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="
        );

        // The client side reproduces the same messages.
        let mut c = ScramClient::new(Mechanism::ScramSha1, "user", "pencil", None)
            .unwrap()
            .with_nonce("fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(c.client_first(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(c.handle_server_first(&server_first).unwrap(), client_final);
        c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
    }

    #[test]
    fn rfc7677_sha256_vector() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = StoredCredentials::derive_with_salt("pencil", &salt, 4096);
        let s = scram(
            start(
                Mechanism::ScramSha256,
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                &ChannelBindings::default(),
            )
            .unwrap(),
        );
        let (server_first, wait) =
            s.challenge_with_nonce(Some(&creds), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", None);
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            wait.finish(client_final).unwrap(),
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );

        let mut c = ScramClient::new(Mechanism::ScramSha256, "user", "pencil", None)
            .unwrap()
            .with_nonce("rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.handle_server_first(&server_first).unwrap(), client_final);
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn round_trips_all_mechanisms_and_bindings() {
        let creds = creds();
        let cb = tls();
        for mech in SCRAMS {
            if mech.is_plus() {
                for name in [CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT] {
                    let data = cb.get(name).unwrap().to_vec();
                    let mut c =
                        ScramClient::new(mech, "juliet", "pencil", Some((name, data))).unwrap();
                    assert_eq!(
                        login(&mut c, mech, &cb, Some(&creds)),
                        Ok(()),
                        "{mech} {name}"
                    );
                }
            } else {
                // Without TLS, and over TLS by a client that doesn't bind.
                for cb in [ChannelBindings::default(), tls()] {
                    let mut c = ScramClient::new(mech, "juliet", "pencil", None).unwrap();
                    assert_eq!(login(&mut c, mech, &cb, Some(&creds)), Ok(()), "{mech}");
                }
                // `y` where we offer no -PLUS is fine.
                let data = Some((CB_TLS_EXPORTER, vec![1]));
                let mut c = ScramClient::new(mech, "juliet", "pencil", data).unwrap();
                let none = ChannelBindings::default();
                assert_eq!(login(&mut c, mech, &none, Some(&creds)), Ok(()), "{mech} y");
            }
        }
    }

    #[test]
    fn round_trip_with_escaped_username_and_authzid() {
        let creds = creds();
        let mut c = ScramClient::new(Mechanism::ScramSha256, "a,b=c", "pencil", None)
            .unwrap()
            .with_authzid("a,b=c@example.com");
        assert!(String::from_utf8(c.client_first())
            .unwrap()
            .starts_with("n,a=a=2Cb=3Dc@example.com,n=a=2Cb=3Dc,r="));
        let s = scram(start(Mechanism::ScramSha256, &c.client_first(), &tls()).unwrap());
        assert_eq!(s.username(), "a,b=c");
        assert_eq!(s.authzid(), Some("a,b=c@example.com"));
        let (server_first, wait) = s.challenge(Some(&creds));
        assert_eq!(wait.username(), "a,b=c");
        assert_eq!(wait.authzid(), Some("a,b=c@example.com"));
        let client_final = c.handle_server_first(&server_first).unwrap();
        let server_final = wait.finish(&client_final).unwrap();
        c.verify_server_final(&server_final).unwrap();
    }

    #[test]
    fn non_ascii_password_is_normalized_the_same_on_both_sides() {
        // U+2163 ROMAN NUMERAL FOUR is "IV" under NFKC; NBSP is a space.
        let creds = StoredCredentials::derive("p\u{2163}\u{a0}x", 4096);
        assert!(creds.verify_plain("pIV x"));
        let mut c = ScramClient::new(Mechanism::ScramSha1, "u", "pIV x", None).unwrap();
        assert_eq!(
            login(&mut c, Mechanism::ScramSha1, &tls(), Some(&creds)),
            Ok(())
        );
    }

    #[test]
    fn downgrade_to_y_is_refused_when_plus_offered() {
        for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
            let r = start(mech, b"y,,n=user,r=abc", &tls());
            assert_eq!(r.unwrap_err(), Failure::NotAuthorized);
            let only_one = ChannelBindings {
                tls_exporter: None,
                tls_server_end_point: Some(vec![1]),
            };
            assert_eq!(
                start(mech, b"y,,n=user,r=abc", &only_one).unwrap_err(),
                Failure::NotAuthorized
            );
            assert!(start(mech, b"y,,n=user,r=abc", &ChannelBindings::default()).is_ok());
        }
    }

    #[test]
    fn gs2_flag_must_match_mechanism() {
        let cb = tls();
        // p= with a non-PLUS mechanism, n/y with a PLUS one: malformed.
        for (mech, msg) in [
            (Mechanism::ScramSha1, &b"p=tls-exporter,,n=u,r=a"[..]),
            (Mechanism::ScramSha256, b"p=tls-exporter,,n=u,r=a"),
            (Mechanism::ScramSha1Plus, b"n,,n=u,r=a"),
            (Mechanism::ScramSha256Plus, b"y,,n=u,r=a"),
            (Mechanism::ScramSha256Plus, b"p=,,n=u,r=a"),
            (Mechanism::ScramSha256Plus, b"p=tls_exporter,,n=u,r=a"),
            (Mechanism::ScramSha256Plus, b"x,,n=u,r=a"),
        ] {
            assert_eq!(
                start(mech, msg, &cb).unwrap_err(),
                Failure::MalformedRequest,
                "{mech} {:?}",
                std::str::from_utf8(msg)
            );
        }
    }

    #[test]
    fn unavailable_binding_type_is_refused() {
        let only_exporter = ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: None,
        };
        let m = Mechanism::ScramSha256Plus;
        for msg in [
            &b"p=tls-unique,,n=u,r=a"[..],
            b"p=tls-server-end-point,,n=u,r=a",
        ] {
            assert_eq!(
                start(m, msg, &only_exporter).unwrap_err(),
                Failure::NotAuthorized
            );
        }
        assert!(start(m, b"p=tls-exporter,,n=u,r=a", &only_exporter).is_ok());
        // Without TLS there is nothing to bind to.
        assert_eq!(
            start(m, b"p=tls-exporter,,n=u,r=a", &ChannelBindings::default()).unwrap_err(),
            Failure::NotAuthorized
        );
    }

    #[test]
    fn binding_data_mismatch_is_refused() {
        let creds = creds();
        let cb = tls();
        for name in [CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT] {
            // The client saw another TLS channel (a man in the middle).
            let mut c = ScramClient::new(
                Mechanism::ScramSha256Plus,
                "u",
                "pencil",
                Some((name, vec![0; 32])),
            )
            .unwrap();
            let s = scram(start(Mechanism::ScramSha256Plus, &c.client_first(), &cb).unwrap());
            let (server_first, wait) = s.challenge(Some(&creds));
            let client_final = c.handle_server_first(&server_first).unwrap();
            assert_eq!(
                wait.finish(&client_final),
                Err(Failure::NotAuthorized),
                "{name}"
            );
        }
        // A `c=` that claims `n` after a `y` header (header tampering).
        let s = scram(
            start(
                Mechanism::ScramSha1,
                b"y,,n=u,r=abc",
                &ChannelBindings::default(),
            )
            .unwrap(),
        );
        let (server_first, wait) = s.challenge(Some(&creds));
        let nonce = std::str::from_utf8(&server_first)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let forged = format!("c=biws,{nonce},p={}", BASE64.encode([0u8; 20]));
        assert_eq!(wait.finish(forged.as_bytes()), Err(Failure::NotAuthorized));
    }

    #[test]
    fn wrong_password_is_not_authorized() {
        let creds = creds();
        for mech in SCRAMS {
            let cb_data = mech.is_plus().then(|| (CB_TLS_EXPORTER, vec![7; 32]));
            let mut c = ScramClient::new(mech, "u", "pen", cb_data).unwrap();
            let s = scram(start(mech, &c.client_first(), &tls()).unwrap());
            let (server_first, wait) = s.challenge(Some(&creds));
            let client_final = c.handle_server_first(&server_first).unwrap();
            assert_eq!(
                wait.finish(&client_final),
                Err(Failure::NotAuthorized),
                "{mech}"
            );
        }
    }

    #[test]
    fn unknown_user_gets_a_normal_challenge_then_not_authorized() {
        let creds = creds();
        let first = b"n,,n=nobody,r=abcdef";
        let challenge = |c: Option<&StoredCredentials>| {
            let s = scram(start(Mechanism::ScramSha256, first, &tls()).unwrap());
            let (server_first, wait) = s.challenge(c);
            (String::from_utf8(server_first).unwrap(), wait)
        };
        let (known, _) = challenge(Some(&creds));
        let (unknown, wait) = challenge(None);
        let (again, _) = challenge(None);
        let shape = |s: &str| -> Vec<usize> { s.split(',').map(str::len).collect() };
        assert_eq!(shape(&known), shape(&unknown));
        assert!(unknown.ends_with(",i=4096"));
        // The fake salt is stable for a user, and differs between users.
        let salt = |s: &str| s.split(',').nth(1).unwrap().to_owned();
        assert_eq!(salt(&unknown), salt(&again));
        let s = scram(start(Mechanism::ScramSha256, b"n,,n=other,r=abcdef", &tls()).unwrap());
        let other = String::from_utf8(s.challenge(None).0).unwrap();
        assert_ne!(salt(&unknown), salt(&other));

        let mut c = ScramClient::new(Mechanism::ScramSha256, "nobody", "pencil", None)
            .unwrap()
            .with_nonce("abcdef");
        let client_final = c.handle_server_first(unknown.as_bytes()).unwrap();
        assert_eq!(wait.finish(&client_final), Err(Failure::NotAuthorized));
    }

    #[test]
    fn client_final_is_checked() {
        let creds = creds();
        let cb = ChannelBindings::default();
        let exchange = || {
            let mut c = ScramClient::new(Mechanism::ScramSha1, "u", "pencil", None).unwrap();
            let s = scram(start(Mechanism::ScramSha1, &c.client_first(), &cb).unwrap());
            let (server_first, wait) = s.challenge(Some(&creds));
            let client_final =
                String::from_utf8(c.handle_server_first(&server_first).unwrap()).unwrap();
            (client_final, wait)
        };
        let (good, wait) = exchange();
        assert!(wait.finish(good.as_bytes()).is_ok());

        type Mutation = Box<dyn Fn(&str) -> String>;
        let cases: Vec<(Mutation, Failure)> = vec![
            // Nonce not ours (still starting with the client's part).
            (
                Box::new(|s| s.replacen(",p=", "x,p=", 1)),
                Failure::NotAuthorized,
            ),
            // An extension the client's proof didn't cover: parsed, then the proof fails.
            (
                Box::new(|s| s.replacen(",p=", ",x=ext,p=", 1)),
                Failure::NotAuthorized,
            ),
            // Proof changed.
            (
                Box::new(|s| {
                    let (a, p) = s.rsplit_once(",p=").unwrap();
                    let mut p = BASE64.decode(p).unwrap();
                    p[0] ^= 1;
                    format!("{a},p={}", BASE64.encode(p))
                }),
                Failure::NotAuthorized,
            ),
            (
                Box::new(|s| s.rsplit_once(",p=").unwrap().0.to_owned()),
                Failure::MalformedRequest,
            ),
            (
                Box::new(|s| s.replacen("c=biws", "c=b!ws", 1)),
                Failure::MalformedRequest,
            ),
            (
                Box::new(|s| s.replacen("c=biws,", "", 1)),
                Failure::MalformedRequest,
            ),
            (Box::new(|s| format!("{s}A")), Failure::MalformedRequest),
            (
                Box::new(|s| {
                    let (a, _) = s.rsplit_once(",p=").unwrap();
                    format!("{a},p=AAAA")
                }),
                Failure::MalformedRequest,
            ),
            (
                Box::new(|s| s.replacen(",p=", ",,p=", 1)),
                Failure::MalformedRequest,
            ),
            (Box::new(|_| "\u{0}".to_owned()), Failure::MalformedRequest),
        ];
        for (i, (mutate, want)) in cases.into_iter().enumerate() {
            let (good, wait) = exchange();
            let bad = mutate(&good);
            assert_eq!(wait.finish(bad.as_bytes()), Err(want), "case {i}: {bad}");
        }
        // Invalid UTF-8.
        let (_, wait) = exchange();
        assert_eq!(
            wait.finish(b"c=biws,r=\xff,p=AAAA"),
            Err(Failure::MalformedRequest)
        );
    }

    #[test]
    fn client_first_syntax() {
        let cb = ChannelBindings::default();
        let m = Mechanism::ScramSha256;
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"n,,n=,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=user,r=a b",
            b"n,,r=abc,n=user",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=us=2,r=abc",
            b"n,,n=user,r=abc,!bad",
            b"n,x,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,,n=\xff,r=abc",
            b"N,,n=user,r=abc",
        ] {
            assert_eq!(
                start(m, bad, &cb).unwrap_err(),
                Failure::MalformedRequest,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let s = scram(start(m, b"n,,n=us=3Der=2C,r=abc,x=ext", &cb).unwrap());
        assert_eq!(s.username(), "us=er,");
        assert_eq!(s.mechanism(), m);
        let s = scram(start(m, b"n,a=juliet@example.com,n=juliet,r=abc", &cb).unwrap());
        assert_eq!(s.authzid(), Some("juliet@example.com"));
    }
}
