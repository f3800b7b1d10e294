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
