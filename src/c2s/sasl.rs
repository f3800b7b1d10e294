//! SASL for client streams (RFC 6120 §6): SCRAM (RFC 5802, RFC 7677) with channel binding
//! (RFC 5929 tls-server-end-point, RFC 9266 tls-exporter) and PLAIN (RFC 4616). Sans-IO.
//!
//! STUB: the API is fixed; the implementation is being written.

/// SCRAM keys for one hash function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramKeys {
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// Stored credentials (never the password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

// TEMPORARY until the real implementation lands from the `auth` branch.
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    cert_der.to_vec()
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
}
impl Mechanism {
    pub fn from_name(_: &str) -> Option<Self> {
        None
    }
    pub fn name(self) -> &'static str {
        ""
    }
    pub fn is_plus(self) -> bool {
        false
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Aborted,
    AccountDisabled,
    CredentialsExpired,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    TemporaryAuthFailure,
}
impl Failure {
    pub fn condition(&self) -> &'static str {
        ""
    }
}
#[derive(Clone, Debug, Default)]
pub struct ChannelBindings {
    pub tls_exporter: Option<Vec<u8>>,
    pub tls_server_end_point: Option<Vec<u8>>,
}
pub enum Start {
    Plain {
        authzid: Option<String>,
        username: String,
        password: String,
    },
    Scram(ScramStart),
}
pub struct ScramStart;
pub struct ScramWait;
pub fn start(_: Mechanism, _: &[u8], _: &ChannelBindings) -> Result<Start, Failure> {
    Err(Failure::Aborted)
}
impl ScramStart {
    pub fn username(&self) -> &str {
        ""
    }
    pub fn authzid(&self) -> Option<&str> {
        None
    }
    pub fn challenge(self, _: Option<&StoredCredentials>) -> (Vec<u8>, ScramWait) {
        (vec![], ScramWait)
    }
}
impl ScramWait {
    pub fn finish(self, _: &[u8]) -> Result<Vec<u8>, Failure> {
        Err(Failure::Aborted)
    }
}
impl StoredCredentials {
    pub fn derive(_: &str, _: u32) -> StoredCredentials {
        unimplemented!()
    }
    pub fn verify_plain(&self, _: &str) -> bool {
        false
    }
}
