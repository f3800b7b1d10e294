//! Channel bindings (RFC 5056) for SCRAM-PLUS: `tls-exporter` (RFC 9266) and
//! `tls-server-end-point` (RFC 5929 §4), and what a connection can offer.

use std::fmt;

use ring::digest;

use super::der;

/// Channel binding type names (RFC 5056 registry), as they appear in `p=` and XEP-0440.
pub const CB_TLS_EXPORTER: &str = "tls-exporter";
/// See [`CB_TLS_EXPORTER`].
pub const CB_TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// RFC 9266 §2: the exporter label for `tls-exporter`, used with an empty context.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// RFC 9266 §2: the length of the exported keying material.
pub const TLS_EXPORTER_LEN: usize = 32;

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

/// RFC 5929 §4.1 `tls-server-end-point` data for our end-entity certificate (DER): its
/// hash under the hash function of its signatureAlgorithm, with MD5 and SHA-1 replaced by
/// SHA-256. `None` when that is undefined (EdDSA, no single hash) or unsupported (SHA-224),
/// or when the certificate can't be read: then don't offer this binding.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let algorithm = der::signature_hash(cert_der)?;
    Some(digest::digest(algorithm, cert_der).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
