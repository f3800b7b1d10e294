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

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use icu_normalizer::ComposingNormalizerBorrowed;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

use crate::jid::{BareJid, Jid};

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

/// Channel binding type names (RFC 5056 registry), as they appear in `p=` and XEP-0440.
pub const CB_TLS_EXPORTER: &str = "tls-exporter";
/// See [`CB_TLS_EXPORTER`].
pub const CB_TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// RFC 9266 §2: the exporter label for `tls-exporter`, used with an empty context.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// RFC 9266 §2: the length of the exported keying material.
pub const TLS_EXPORTER_LEN: usize = 32;

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

/// Channel bindings the connection can offer (TLS only; both `None` without TLS).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// RFC 9266: 32 bytes exported with [`TLS_EXPORTER_LABEL`] and an empty context. Only
    /// for TLS 1.3 (under TLS 1.2 it is unsafe without extended master secret, RFC 9266 §3).
    pub tls_exporter: Option<Vec<u8>>,
    /// RFC 5929 §4: [`tls_server_end_point`] of the certificate we presented.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// Whether no binding is available (no -PLUS mechanism may be offered).
    pub fn is_empty(&self) -> bool {
        self.tls_exporter.is_none() && self.tls_server_end_point.is_none()
    }

    /// The available binding types, for XEP-0440 `<sasl-channel-binding/>`.
    pub fn types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        if self.tls_exporter.is_some() {
            types.push(CB_TLS_EXPORTER);
        }
        if self.tls_server_end_point.is_some() {
            types.push(CB_TLS_SERVER_END_POINT);
        }
        types
    }

    /// The binding data for a type name, if available.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match name {
            CB_TLS_EXPORTER => self.tls_exporter.as_deref(),
            CB_TLS_SERVER_END_POINT => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }
}

// Channel binding data is public to both ends of the TLS session, but there is no reason
// to print it either.
impl fmt::Debug for ChannelBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBindings")
            .field("types", &self.types())
            .finish()
    }
}

/// StoredKey and ServerKey for one hash (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// H(ClientKey): checks the client's proof.
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key"): signs our final message.
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Together with one observed exchange these let an attacker log in; never print them.
        f.write_str("ScramKeys(..)")
    }
}

/// What the server stores for an account: never the password. One random salt shared by
/// both hashes (the PRFs differ, so sharing it costs nothing) and one iteration count.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// Random, [`SALT_LEN`] bytes for credentials made here.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations, at least [`MIN_ITERATIONS`] for credentials made here.
    pub iterations: u32,
    /// Keys for SCRAM-SHA-1(-PLUS).
    pub sha1: ScramKeys,
    /// Keys for SCRAM-SHA-256(-PLUS) and PLAIN.
    pub sha256: ScramKeys,
}

impl fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl StoredCredentials {
    /// Derives credentials for a new password with a fresh random salt; `iterations` is
    /// raised to [`MIN_ITERATIONS`] if lower. Costs two PBKDF2 runs.
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn derive(password: &str, iterations: u32) -> StoredCredentials {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        Self::derive_with_salt(password, &salt, iterations)
    }

    /// As [`StoredCredentials::derive`] with a given salt: for test vectors and imports.
    pub fn derive_with_salt(password: &str, salt: &[u8], iterations: u32) -> StoredCredentials {
        let iterations = iterations.max(MIN_ITERATIONS);
        let password = normalize_password(password);
        let keys = |hash: Hash| {
            let salted = hash.salted_password(password.as_bytes(), salt, iterations);
            ScramKeys::from_salted_password(hash, &salted)
        };
        StoredCredentials {
            salt: salt.to_vec(),
            iterations,
            sha1: keys(Hash::Sha1),
            sha256: keys(Hash::Sha256),
        }
    }

    /// Whether `password` is this account's password (for PLAIN): one SHA-256 PBKDF2 run,
    /// compared with StoredKey in constant time.
    pub fn verify_plain(&self, password: &str) -> bool {
        let hash = Hash::Sha256;
        let password = normalize_password(password);
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let keys = ScramKeys::from_salted_password(hash, &salted);
        ct_eq(&keys.stored_key, &self.sha256.stored_key)
    }

    fn keys(&self, hash: Hash) -> &ScramKeys {
        match hash {
            Hash::Sha1 => &self.sha1,
            Hash::Sha256 => &self.sha256,
        }
    }
}

/// PLAIN check including the unknown-user case: `None` still costs one PBKDF2 run, so
/// that response times don't tell which accounts exist.
pub fn check_plain(creds: Option<&StoredCredentials>, password: &str) -> Result<(), Failure> {
    let ok = match creds {
        Some(creds) => creds.verify_plain(password),
        None => {
            let hash = Hash::Sha256;
            let salted = hash.salted_password(
                password.as_bytes(),
                &process_secret()[..SALT_LEN],
                DEFAULT_ITERATIONS,
            );
            std::hint::black_box(salted);
            false
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Failure::NotAuthorized)
    }
}

impl ScramKeys {
    fn from_salted_password(hash: Hash, salted: &[u8]) -> ScramKeys {
        let client_key = hash.hmac(salted, b"Client Key");
        ScramKeys {
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(salted, b"Server Key"),
        }
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
        _ => parse_client_first(mech, initial, cb).map(Start::Scram),
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
fn parse_client_first(
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

    /// The requested authorization identity, if any (check with [`check_authzid`]).
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
        let mut random = [0u8; NONCE_RANDOM_LEN];
        fill_random(&mut random);
        let server_nonce = BASE64.encode(random);
        self.challenge_with_nonce(creds, &server_nonce)
    }

    fn challenge_with_nonce(
        self,
        creds: Option<&StoredCredentials>,
        server_nonce: &str,
    ) -> (Vec<u8>, ScramWait) {
        let hash = self.mech.hash();
        let (salt, iterations, keys) = match creds {
            Some(c) => (c.salt.clone(), c.iterations, Some(c.keys(hash).clone())),
            None => (fake_salt(&self.username), DEFAULT_ITERATIONS, None),
        };
        let nonce = format!("{}{server_nonce}", self.client_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(&salt));
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

/// The hash behind a SCRAM variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => hmac::HMAC_SHA256,
        };
        hmac::sign(&hmac::Key::new(algorithm, key), data)
            .as_ref()
            .to_vec()
    }

    /// RFC 5802 Hi(): PBKDF2 with this hash's HMAC. Zero iterations (only possible from a
    /// corrupt store) count as one; such credentials never match real ones anyway.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let algorithm = match self {
            Hash::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        };
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let mut out = vec![0u8; self.len()];
        pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
        out
    }
}

/// RFC 5802 §2.2 Normalize(): SASLprep (RFC 4013) as clients apply it: non-ASCII spaces
/// become U+0020, "commonly mapped to nothing" characters go, then NFKC. The prohibited-
/// output and bidi checks are skipped: a password we can't prepare is still hashed the same
/// way on both sides. ASCII passwords, the common case, are untouched.
fn normalize_password(password: &str) -> Cow<'_, str> {
    if password.is_ascii() {
        return Cow::Borrowed(password);
    }
    let mapped: String = password
        .chars()
        .filter_map(|c| match c {
            // RFC 3454 C.1.2, non-ASCII space characters.
            '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200B}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}' => Some(' '),
            // RFC 3454 B.1, commonly mapped to nothing.
            '\u{00AD}'
            | '\u{034F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200C}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' => None,
            c => Some(c),
        })
        .collect();
    const NFKC: ComposingNormalizerBorrowed<'static> = ComposingNormalizerBorrowed::new_nfkc();
    Cow::Owned(NFKC.normalize(&mapped).into_owned())
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

/// The saslname encoding of `s` (the inverse of [`decode_saslname`]).
fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// Constant-time equality for keys and proofs; the lengths are public.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

fn fill_random(buf: &mut [u8]) {
    // ring's SystemRandom is getrandom(2); it only fails on a broken OS, where nothing we
    // could do instead would be safe.
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random number generator failed");
}

/// A random secret for this process, for the unknown-user disguise.
fn process_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        fill_random(&mut secret);
        secret
    })
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

/// RFC 5929 §4.1 `tls-server-end-point` data for our end-entity certificate (DER): its
/// hash under the hash function of its signatureAlgorithm, with MD5 and SHA-1 replaced by
/// SHA-256. `None` when that is undefined (EdDSA, no single hash) or unsupported (SHA-224),
/// or when the certificate can't be read: then don't offer this binding.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let algorithm = der::signature_hash(cert_der)?;
    Some(digest::digest(algorithm, cert_der).as_ref().to_vec())
}

/// Just enough DER to read a Certificate's outer signatureAlgorithm (RFC 5280 §4.1).
mod der {
    use ring::digest;

    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    /// `[0]` constructed, context-specific: RSASSA-PSS-params.hashAlgorithm.
    const CONTEXT_0: u8 = 0xa0;

    /// 1.2.840.113549.1.1 (PKCS #1), followed by one byte.
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    /// 1.2.840.10045.4 (ANSI X9.62 signatures).
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    /// 1.2.840.10040.4.3 dsa-with-sha1.
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
    /// 2.16.840.1.101.3.4.3 (NIST signature algorithms: DSA with SHA-2).
    const NIST_SIG: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    /// 2.16.840.1.101.3.4.2 (NIST hash algorithms).
    const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    /// 1.3.14.3.2.26 SHA-1.
    const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];

    /// One TLV: `(tag, contents, rest)`. Definite lengths only (DER), up to 4 length bytes.
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, input) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers: never in the fields we read
        }
        let (&first, mut input) = input.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || input.len() < n {
                return None; // indefinite length, or absurdly long
            }
            let (bytes, rest) = input.split_at(n);
            input = rest;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        if input.len() < len {
            return None;
        }
        let (contents, rest) = input.split_at(len);
        Some((tag, contents, rest))
    }

    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        match tlv(input)? {
            (t, contents, rest) if t == tag => Some((contents, rest)),
            _ => None,
        }
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`,
    /// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
    pub(super) fn signature_hash(cert: &[u8]) -> Option<&'static digest::Algorithm> {
        let (cert, _) = expect(cert, SEQUENCE)?;
        let (_tbs, rest) = expect(cert, SEQUENCE)?;
        let (algorithm_id, _) = expect(rest, SEQUENCE)?;
        let (oid, params) = expect(algorithm_id, OID)?;
        hash_for_signature(oid, params)
    }

    fn hash_for_signature(oid: &[u8], params: &[u8]) -> Option<&'static digest::Algorithm> {
        // RFC 5929 §4.1: MD5 and SHA-1 are upgraded to SHA-256.
        const UPGRADED: &digest::Algorithm = &digest::SHA256;
        if let Some(&[n]) = oid.strip_prefix(PKCS1) {
            return match n {
                4 | 5 | 11 => Some(UPGRADED), // md5, sha1, sha256 WithRSAEncryption
                12 => Some(&digest::SHA384),
                13 => Some(&digest::SHA512),
                10 => pss_hash(params),
                _ => None, // sha224WithRSAEncryption (ring has no SHA-224), unknown
            };
        }
        if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
            return Some(UPGRADED);
        }
        if let Some(&[n]) = oid.strip_prefix(ECDSA_SHA2) {
            return match n {
                2 => Some(&digest::SHA256),
                3 => Some(&digest::SHA384),
                4 => Some(&digest::SHA512),
                _ => None, // SHA-224
            };
        }
        if let Some(&[n]) = oid.strip_prefix(NIST_SIG) {
            return match n {
                2 => Some(&digest::SHA256), // dsa-with-sha256
                _ => None,
            };
        }
        None // Ed25519, Ed448 and anything else: RFC 5929 leaves these undefined
    }

    /// RSASSA-PSS (RFC 4055 §3.1): the hash is in the parameters, SHA-1 by default.
    fn pss_hash(params: &[u8]) -> Option<&'static digest::Algorithm> {
        let (params, _) = expect(params, SEQUENCE)?;
        let hash_oid = match tlv(params) {
            Some((CONTEXT_0, explicit, _)) => {
                let (algorithm_id, _) = expect(explicit, SEQUENCE)?;
                expect(algorithm_id, OID)?.0
            }
            _ => SHA1,
        };
        if hash_oid == SHA1 {
            return Some(&digest::SHA256);
        }
        match hash_oid.strip_prefix(NIST_HASH)? {
            [1] => Some(&digest::SHA256),
            [2] => Some(&digest::SHA384),
            [3] => Some(&digest::SHA512),
            _ => None,
        }
    }
}

/// A SCRAM and PLAIN client, for integration tests and the load generator.
pub mod client {
    use super::{
        ct_eq, encode_saslname, fill_random, normalize_password, Hash, Mechanism, ScramKeys,
        BASE64, MIN_ITERATIONS, NONCE_RANDOM_LEN,
    };
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
}

#[cfg(test)]
mod tests {
    use super::client::{self, ScramClient};
    use super::*;

    const SCRAMS: [Mechanism; 4] = [
        Mechanism::ScramSha1,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha256Plus,
    ];

    fn tls() -> ChannelBindings {
        ChannelBindings {
            tls_exporter: Some(vec![7; 32]),
            tls_server_end_point: Some(vec![9; 32]),
        }
    }

    fn creds() -> StoredCredentials {
        StoredCredentials::derive("pencil", DEFAULT_ITERATIONS)
    }

    fn scram(start: Start) -> ScramStart {
        match start {
            Start::Scram(s) => s,
            Start::Plain { .. } => panic!("expected SCRAM"),
        }
    }

    /// A whole exchange; returns the server's verdict after checking the client agrees.
    fn login(
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
        let (server_first, wait) = s.challenge_with_nonce(Some(&creds), "3rfcNHYJY1ZVvWVs7j");
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
            s.challenge_with_nonce(Some(&creds), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
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
    fn verify_plain_and_check_plain() {
        let creds = creds();
        assert!(creds.salt.len() >= 16);
        assert_eq!(creds.iterations, DEFAULT_ITERATIONS);
        assert!(creds.verify_plain("pencil"));
        assert!(!creds.verify_plain("Pencil"));
        assert!(!creds.verify_plain(""));
        assert_eq!(check_plain(Some(&creds), "pencil"), Ok(()));
        assert_eq!(
            check_plain(Some(&creds), "nope"),
            Err(Failure::NotAuthorized)
        );
        assert_eq!(check_plain(None, "pencil"), Err(Failure::NotAuthorized));
        // Never below the floor; salts are random.
        let weak = StoredCredentials::derive("pencil", 1);
        assert_eq!(weak.iterations, MIN_ITERATIONS);
        assert_ne!(weak.salt, creds.salt);
        assert_ne!(weak.sha256, creds.sha256);
        assert_eq!(weak.sha1.stored_key.len(), 20);
        assert_eq!(weak.sha256.server_key.len(), 32);
        let dbg = format!("{creds:?}");
        assert!(
            !dbg.contains("stored_key") && !dbg.contains("salt"),
            "{dbg}"
        );
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

    // tls-server-end-point.

    fn rcgen_cert(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn end_point_of_rcgen_certificates() {
        let p256 = rcgen_cert(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            tls_server_end_point(&p256).unwrap(),
            digest::digest(&digest::SHA256, &p256).as_ref()
        );
        let p384 = rcgen_cert(&rcgen::PKCS_ECDSA_P384_SHA384);
        let got = tls_server_end_point(&p384).unwrap();
        assert_eq!(got.len(), 48);
        assert_eq!(got, digest::digest(&digest::SHA384, &p384).as_ref());
        // EdDSA has no single hash: RFC 5929 leaves it undefined.
        assert_eq!(
            tls_server_end_point(&rcgen_cert(&rcgen::PKCS_ED25519)),
            None
        );
    }

    /// DER TLV with a length in short or long form.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    /// A Certificate skeleton: a dummy (long) tbsCertificate, the algorithm, a bit string.
    fn cert_with(algorithm_id: &[u8]) -> Vec<u8> {
        let tbs = tlv(0x30, &[0x02; 300]);
        let sig = tlv(0x03, &[0, 1, 2, 3]);
        tlv(0x30, &[tbs, tlv(0x30, algorithm_id), sig].concat())
    }

    fn oid(bytes: &[u8]) -> Vec<u8> {
        tlv(0x06, bytes)
    }

    const NULL: [u8; 2] = [0x05, 0x00];
    const PKCS1: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];

    fn rsa(n: u8) -> Vec<u8> {
        [oid(&[&PKCS1[..], &[n]].concat()), NULL.to_vec()].concat()
    }

    fn pss(hash_oid: Option<&[u8]>) -> Vec<u8> {
        let params = match hash_oid {
            Some(h) => tlv(
                0x30,
                &tlv(0xa0, &tlv(0x30, &[oid(h), NULL.to_vec()].concat())),
            ),
            None => tlv(0x30, &[]),
        };
        [oid(&[&PKCS1[..], &[10]].concat()), params].concat()
    }

    #[test]
    fn end_point_of_hand_built_der() {
        let nist = |n: u8| [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n];
        let cases: Vec<(Vec<u8>, Option<&'static digest::Algorithm>)> = vec![
            (rsa(4), Some(&digest::SHA256)),  // md5WithRSAEncryption
            (rsa(5), Some(&digest::SHA256)),  // sha1WithRSAEncryption
            (rsa(11), Some(&digest::SHA256)), // sha256WithRSAEncryption
            (rsa(12), Some(&digest::SHA384)),
            (rsa(13), Some(&digest::SHA512)),
            (rsa(14), None), // sha224: not in ring
            (
                oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01]),
                Some(&digest::SHA256),
            ),
            (
                oid(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]),
                Some(&digest::SHA512),
            ),
            (
                oid(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02]),
                Some(&digest::SHA256),
            ),
            (pss(None), Some(&digest::SHA256)), // default hash SHA-1, upgraded
            (
                pss(Some(&[0x2b, 0x0e, 0x03, 0x02, 0x1a])),
                Some(&digest::SHA256),
            ),
            (pss(Some(&nist(1))), Some(&digest::SHA256)),
            (pss(Some(&nist(2))), Some(&digest::SHA384)),
            (pss(Some(&nist(3))), Some(&digest::SHA512)),
            (pss(Some(&nist(4))), None),      // sha224
            (oid(&[0x2b, 0x65, 0x70]), None), // Ed25519
            (oid(&[0x2b, 0x65, 0x71]), None), // Ed448
        ];
        for (i, (algorithm_id, want)) in cases.into_iter().enumerate() {
            let cert = cert_with(&algorithm_id);
            let got = tls_server_end_point(&cert);
            let want = want.map(|alg| digest::digest(alg, &cert).as_ref().to_vec());
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn end_point_of_garbage_is_none() {
        let good = cert_with(&rsa(11));
        assert!(tls_server_end_point(&good).is_some());
        // Every truncation fails cleanly, never panics.
        for n in 0..good.len() {
            assert_eq!(tls_server_end_point(&good[..n]), None, "truncated at {n}");
        }
        for bad in [
            &[][..],
            &[0x30, 0x80, 0x00, 0x00],             // indefinite length
            &[0x30, 0x85, 1, 0, 0, 0, 0],          // 5 length bytes
            &[0x31, 0x00],                         // SET, not SEQUENCE
            &[0x30, 0x02, 0x30, 0x00],             // no signatureAlgorithm
            &[0x30, 0x04, 0x30, 0x00, 0x30, 0x00], // empty AlgorithmIdentifier
            &[0x30, 0x06, 0x30, 0x00, 0x30, 0x02, 0x1f, 0x00], // high tag number
        ] {
            assert_eq!(tls_server_end_point(bad), None, "{bad:?}");
        }
        // Every single-byte corruption is handled without panicking.
        for i in 0..good.len() {
            for b in [0x00, 0x80, 0x84, 0xff] {
                let mut c = good.clone();
                c[i] = b;
                let _ = tls_server_end_point(&c);
            }
        }
    }
}
