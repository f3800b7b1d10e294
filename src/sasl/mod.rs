//! SASL for client streams (RFC 6120 §6), sans-IO: SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802,
//! RFC 7677) with their -PLUS variants, channel bindings `tls-server-end-point` (RFC 5929 §4)
//! and `tls-exporter` (RFC 9266), and PLAIN (RFC 4616).
//!
//! The connection task drives one exchange like this, doing its storage lookup between steps:
//!
//! ```text
//! <auth mechanism=M>b64</auth>   bytes = decode_payload(b64)?          (incorrect-encoding)
//!                                match start(M, &bytes, &bindings)? {
//!   PLAIN:                         Start::Plain { authzid, username, password } =>
//!                                    creds = lookup(jid::nodeprep(&username)).await;
//!                                    check_plain(creds.as_ref(), &password)?;
//!   SCRAM:                         Start::Scram(s) =>
//!                                    creds = lookup(jid::nodeprep(s.username())).await;
//! <challenge>b64</challenge>         let (server_first, wait) = s.challenge(creds.as_ref());
//! <response>b64</response>           let server_final = wait.finish(&decode_payload(b64)?)?;
//!                                }
//!                                check_authzid(authzid, &user_bare_jid)?;
//! <success>b64</success>         (server_final for SCRAM, nothing for PLAIN)
//! ```
//!
//! Base64 lives in the connection code, through [`decode_payload`] / [`encode_payload`]
//! (RFC 6120 §6.4.2: `=` is an empty response; bad base64 is `incorrect-encoding`).
//! [`start`] and [`ScramWait::finish`] take raw bytes. If `<auth/>` carries no initial
//! response, the connection sends an empty challenge and passes the next response to
//! [`start`]; an empty SCRAM or PLAIN message is `malformed-request`. A username that
//! fails `nodeprep` is looked up as no one (`creds = None`), so it fails like an unknown
//! user, after the same work.
//!
//! The mechanisms offered on a connection come from [`Mechanism::offered`]; the connection
//! answers `invalid-mechanism` for any other, and passes [`start`] the same
//! [`ChannelBindings`] it advertised with, because "-PLUS offered" is what turns a `y`
//! gs2 flag into a downgrade attack (RFC 5802 §6).
//!
//! Passwords are never stored: [`StoredCredentials`] holds the salt, the iteration count and
//! StoredKey/ServerKey for both hashes. Nothing here logs; SASL payloads carry secrets.

mod binding;
#[cfg(any(test, feature = "test-client"))]
pub mod client;
mod credentials;
mod der;
pub mod ht;
mod scram;

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::jid::{BareJid, Jid};

pub use binding::{
    tls_server_end_point, ChannelBindings, CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT,
    TLS_EXPORTER_LABEL, TLS_EXPORTER_LEN,
};
pub use credentials::{check_plain, ScramKeys, StoredCredentials, UpgradeTask};
pub use scram::{ScramStart, ScramWait};

use credentials::Hash;

/// The iteration count for new credentials. RFC 7677 §4 sets 4096 as the floor. The cost
/// server-side is only paid when a password is set and on PLAIN logins (a SCRAM login is a
/// handful of HMACs on the server); every SCRAM client pays it on each login. A larger count
/// multiplies an offline attacker's work by the same small factor it costs us, so we stay at
/// the floor, where a Raspberry Pi can afford PLAIN logins. Measured (optimized build, one
/// x86 server core with SHA extensions): `derive` 4.6 ms, `verify_plain` 1.8 ms, a whole
/// SCRAM login server-side 6–12 µs; a Pi 4 (no ARMv8 crypto extensions) is several times
/// slower on the PBKDF2 parts.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// No credentials are ever derived with fewer iterations than this (RFC 7677 §4).
pub const MIN_ITERATIONS: u32 = 4096;

/// Salt length for new credentials (RFC 5802 leaves it open; 128 bits is the usual choice).
const SALT_LEN: usize = 16;

/// Random bytes in our half of the SCRAM nonce: 18 bytes are 24 base64 characters.
const NONCE_RANDOM_LEN: usize = 18;

/// A SASL mechanism this server implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616; offered only over TLS.
    Plain,
    /// RFC 5802.
    ScramSha1,
    /// RFC 5802 with channel binding.
    ScramSha1Plus,
    /// RFC 7677.
    ScramSha256,
    /// RFC 7677 with channel binding.
    ScramSha256Plus,
}

impl Mechanism {
    /// Every mechanism, strongest first (the order `<mechanisms/>` lists them in).
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The mechanism with this IANA name (exact match: names are upper case, RFC 4422 §3.1).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The IANA name, as in `<mechanism/>` and `<auth mechanism=…/>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    /// Whether this is a channel-binding (-PLUS) variant.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }

    /// Whether this is a SCRAM variant.
    pub fn is_scram(self) -> bool {
        self != Mechanism::Plain
    }

    /// What to offer on a connection: -PLUS only when `cb` has a binding, PLAIN only when
    /// `allow_plain` (the caller passes "TLS is up", RFC 6120 §13.8 and our policy), strongest
    /// first.
    pub fn offered(cb: &ChannelBindings, allow_plain: bool) -> Vec<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                Mechanism::Plain => allow_plain,
                m => !m.is_plus() || !cb.is_empty(),
            })
            .collect()
    }

    fn hash(self) -> Hash {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Hash::Sha1,
            // PLAIN verifies against the SHA-256 keys.
            Mechanism::Plain | Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Hash::Sha256,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RFC 6120 §6.5 failure conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client sent `<abort/>`.
    Aborted,
    /// The account exists but is disabled.
    AccountDisabled,
    /// The credentials have expired.
    CredentialsExpired,
    /// The mechanism needs TLS and the stream has none.
    EncryptionRequired,
    /// The XMPP-level base64 was invalid.
    IncorrectEncoding,
    /// The authzid is not the authenticated user's bare JID.
    InvalidAuthzid,
    /// The mechanism is unknown or not offered on this connection.
    InvalidMechanism,
    /// The mechanism's message does not follow its syntax.
    MalformedRequest,
    /// The mechanism is weaker than this server's policy.
    MechanismTooWeak,
    /// Wrong credentials, unknown user, or a failed channel binding.
    NotAuthorized,
    /// A server-side problem (e.g. storage) that may go away.
    TemporaryAuthFailure,
}

impl Failure {
    /// The child element name of `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`.
    pub fn condition(&self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::AccountDisabled => "account-disabled",
            Failure::CredentialsExpired => "credentials-expired",
            Failure::EncryptionRequired => "encryption-required",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::MechanismTooWeak => "mechanism-too-weak",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.condition())
    }
}

impl std::error::Error for Failure {}

/// XEP-0474 (0.5) SCRAM downgrade protection: the `h` attribute of the server-first-message,
/// base64(H(mechanisms sorted and joined by 0x1E, then 0x1F and the XEP-0440 channel-binding
/// types sorted and joined by 0x1E when they were advertised)), H being the SCRAM
/// mechanism's hash.
pub fn ssdp_hash(mech: Mechanism, mechanisms: &[&str], cb_types: &[&str]) -> String {
    let mut m = mechanisms.to_vec();
    m.sort_unstable();
    let mut s = m.join("\u{1e}");
    if !cb_types.is_empty() {
        let mut t = cb_types.to_vec();
        t.sort_unstable();
        s.push('\u{1f}');
        s.push_str(&t.join("\u{1e}"));
    }
    BASE64.encode(mech.hash().digest(s.as_bytes()))
}

/// Decodes the text of `<auth/>` or `<response/>` (RFC 6120 §6.4.2): `=` is an empty
/// message, anything else must be base64 with padding.
pub fn decode_payload(text: &str) -> Result<Vec<u8>, Failure> {
    // COMPAT: RFC 6120 forbids whitespace here, but a line break around the payload is
    // harmless and some clients pretty-print.
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if text == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(text).map_err(|_| Failure::IncorrectEncoding)
}

/// Encodes the text of `<challenge/>` or `<success/>`: an empty message is `=`.
pub fn encode_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        BASE64.encode(data)
    }
}

/// Checks a requested authorization identity (RFC 6120 §6.4.6): none, or the authenticated
/// user's own bare JID. We offer no proxy authorization.
pub fn check_authzid(authzid: Option<&str>, user: &BareJid) -> Result<(), Failure> {
    match authzid.map(Jid::parse) {
        None => Ok(()),
        Some(Ok(Jid::Bare(ref j))) if j == user => Ok(()),
        Some(_) => Err(Failure::InvalidAuthzid),
    }
}

/// The result of parsing the client's first message.
pub enum Start {
    /// PLAIN: everything is here; the caller nodepreps `username` and calls [`check_plain`].
    Plain {
        /// Requested authorization identity, if any (check with [`check_authzid`]).
        authzid: Option<String>,
        /// The authentication identity as sent (a localpart, not yet nodeprepped).
        username: String,
        /// The password as sent.
        password: String,
    },
    /// SCRAM: look up the user, then [`ScramStart::challenge`].
    Scram(ScramStart),
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Start::Plain {
                authzid, username, ..
            } => f
                .debug_struct("Plain")
                .field("authzid", authzid)
                .field("username", username)
                .finish_non_exhaustive(),
            Start::Scram(s) => s.fmt(f),
        }
    }
}

/// Parses the client's initial response for `mech`; `cb` = what this connection offers
/// (empty without TLS), the same value the mechanisms were advertised with.
pub fn start(mech: Mechanism, initial: &[u8], cb: &ChannelBindings) -> Result<Start, Failure> {
    match mech {
        Mechanism::Plain => parse_plain(initial),
        _ => scram::parse_client_first(mech, initial, cb).map(Start::Scram),
    }
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`, UTF-8. Authcid and password are
/// `1*SAFE`, so an empty one breaks the syntax: `malformed-request`, not a wrong password.
fn parse_plain(message: &[u8]) -> Result<Start, Failure> {
    let message = std::str::from_utf8(message).map_err(|_| Failure::MalformedRequest)?;
    let mut fields = message.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    Ok(Start::Plain {
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::client;
    use super::client::ScramClient;
    use super::*;

    pub(super) const SCRAMS: [Mechanism; 4] = [
        Mechanism::ScramSha1,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha256Plus,
    ];

    pub(super) fn tls() -> ChannelBindings {
        ChannelBindings {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: Some(vec![9; 32]),
        }
    }

    pub(super) fn creds() -> StoredCredentials {
        StoredCredentials::derive("pencil", DEFAULT_ITERATIONS)
    }

    pub(super) fn scram(start: Start) -> ScramStart {
        match start {
            Start::Scram(s) => s,
            Start::Plain { .. } => panic!("expected SCRAM"),
        }
    }

    /// A whole exchange; returns the server's verdict after checking the client agrees.
    pub(super) fn login(
        client: &mut ScramClient,
        mech: Mechanism,
        cb: &ChannelBindings,
        creds: Option<&StoredCredentials>,
    ) -> Result<(), Failure> {
        let s = scram(start(mech, &client.client_first(), cb)?);
        let (server_first, wait) = s.challenge(creds);
        let client_final = client.handle_server_first(&server_first).unwrap();
        let server_final = wait.finish(&client_final)?;
        client.verify_server_final(&server_final).unwrap();
        Ok(())
    }

    #[test]
    fn plain_parsing() {
        let cb = ChannelBindings::default();
        let plain = |msg: &[u8]| start(Mechanism::Plain, msg, &cb);
        match plain(&client::plain("juliet", "r0m30")).unwrap() {
            Start::Plain {
                authzid,
                username,
                password,
            } => {
                assert_eq!(authzid, None);
                assert_eq!(username, "juliet");
                assert_eq!(password, "r0m30");
            }
            Start::Scram(_) => panic!(),
        }
        match plain(b"juliet@example.com\0juliet\0pass word \xc3\xa9").unwrap() {
            Start::Plain {
                authzid, password, ..
            } => {
                assert_eq!(authzid.as_deref(), Some("juliet@example.com"));
                assert_eq!(password, "pass word é");
            }
            Start::Scram(_) => panic!(),
        }
        for bad in [
            &b""[..],
            b"juliet",
            b"\0juliet",
            b"\0juliet\0",
            b"\0\0pass",
            b"\0juliet\0pass\0",
            b"a\0b\0c\0d",
            b"\0juliet\0\xff",
        ] {
            assert_eq!(
                plain(bad).unwrap_err(),
                Failure::MalformedRequest,
                "{bad:?}"
            );
        }
        // The password never shows in Debug.
        let dbg = format!("{:?}", plain(b"\0juliet\0hunter2").unwrap());
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn authzid_check() {
        let me = BareJid::parse("juliet@example.com").unwrap();
        assert_eq!(check_authzid(None, &me), Ok(()));
        assert_eq!(check_authzid(Some("juliet@example.com"), &me), Ok(()));
        assert_eq!(check_authzid(Some("Juliet@EXAMPLE.com"), &me), Ok(()));
        for other in [
            "romeo@example.com",
            "juliet@example.com/balcony",
            "example.com",
            "@@",
            "",
        ] {
            assert_eq!(
                check_authzid(Some(other), &me),
                Err(Failure::InvalidAuthzid),
                "{other}"
            );
        }
    }

    #[test]
    fn mechanisms() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(m.is_scram(), m.name().starts_with("SCRAM-"));
            assert_eq!(m.is_plus(), m.name().ends_with("-PLUS"));
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
        assert_eq!(
            Mechanism::offered(&ChannelBindings::default(), false),
            [Mechanism::ScramSha256, Mechanism::ScramSha1]
        );
        assert_eq!(Mechanism::offered(&tls(), true), Mechanism::ALL);
        assert_eq!(tls().types(), [CB_TLS_EXPORTER, CB_TLS_SERVER_END_POINT]);
        assert!(ChannelBindings::default().types().is_empty());
        assert_eq!(Failure::NotAuthorized.condition(), "not-authorized");
        assert_eq!(Failure::InvalidAuthzid.to_string(), "invalid-authzid");
        assert_eq!(
            Failure::TemporaryAuthFailure.condition(),
            "temporary-auth-failure"
        );
    }

    #[test]
    fn ssdp_matches_the_xeps_example() {
        // XEP-0474 §4.3: SHA-1 of 'SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1e
        // tls-server-end-point'.
        assert_eq!(
            ssdp_hash(
                Mechanism::ScramSha1Plus,
                &["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"],
                &["tls-server-end-point", "tls-exporter"]
            ),
            "G6k/rBLDqgOhRRaCuuatSDFkJ08="
        );
    }

    #[test]
    fn payload_base64() {
        assert_eq!(decode_payload("="), Ok(Vec::new()));
        assert_eq!(decode_payload("biws"), Ok(b"n,,".to_vec()));
        assert_eq!(decode_payload(" biws\n"), Ok(b"n,,".to_vec()));
        for bad in ["b!ws", "biw", "bi ws", "=="] {
            assert_eq!(
                decode_payload(bad),
                Err(Failure::IncorrectEncoding),
                "{bad}"
            );
        }
        assert_eq!(encode_payload(b""), "=");
        assert_eq!(encode_payload(b"n,,"), "biws");
    }
}
