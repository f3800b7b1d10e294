//! Certificates between servers (RFC 6120 §13.7.2, RFC 6125, XEP-0178): the TLS
//! configurations for both directions, and the check that a peer's certificate is valid for
//! its domain.
//!
//! Both directions accept any certificate during the handshake (its signature over the
//! handshake is still checked, so the peer holds the key) and judge it afterwards: a valid
//! one allows SASL EXTERNAL, anything else leaves dialback. A peer's certificate is checked
//! as a *server* certificate for its domain in both directions: rustls' client-certificate
//! verifier demands the clientAuth extended key usage, which public CAs no longer issue
//! (Prosody and ejabberd check the same way).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bundle of the system's trust roots on Debian (ca-certificates).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate authorities peers' certificates are checked against.
pub struct Trust {
    verifier: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// How many roots were loaded (for the start-up log).
    pub roots: usize,
}

impl Trust {
    /// The system's roots (`$SSL_CERT_FILE`, else Debian's bundle; missing is not an error:
    /// peers then use dialback) and the PEM files of `--s2s-trust` (which must load).
    pub fn load(extra: &[PathBuf]) -> Result<Trust, String> {
        let mut store = rustls::RootCertStore::empty();
        let system = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SYSTEM_ROOTS));
        if let Ok(certs) = read_pem(&system) {
            store.add_parsable_certificates(certs);
        }
        for path in extra {
            let certs = read_pem(path)?;
            if certs.is_empty() {
                return Err(format!(
                    "--s2s-trust {}: no certificate in file",
                    path.display()
                ));
            }
            let (_, bad) = store.add_parsable_certificates(certs);
            if bad > 0 {
                return Err(format!(
                    "--s2s-trust {}: {bad} certificate(s) cannot be used as trust roots",
                    path.display()
                ));
            }
        }
        let roots = store.len();
        let verifier = if roots == 0 {
            None
        } else {
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(store),
                    provider(),
                )
                .build()
                .map_err(|e| format!("trust roots: {e}"))?,
            )
        };
        Ok(Trust { verifier, roots })
    }

    /// Checks that each of `extra` holds certificates usable as trust roots.
    pub fn check(extra: &[PathBuf]) -> Result<(), String> {
        for path in extra {
            let certs = read_pem(path)?;
            if certs.is_empty() {
                return Err(format!(
                    "--s2s-trust {}: no certificate in file",
                    path.display()
                ));
            }
            let (_, bad) = rustls::RootCertStore::empty().add_parsable_certificates(certs);
            if bad > 0 {
                return Err(format!(
                    "--s2s-trust {}: {bad} certificate(s) cannot be used as trust roots",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    /// No trust roots: no certificate is valid.
    pub fn none() -> Trust {
        Trust {
            verifier: None,
            roots: 0,
        }
    }

    /// True if `chain` (end entity first) is a valid server certificate for `domain` now.
    pub fn valid_for(&self, chain: Option<&[CertificateDer<'static>]>, domain: &str) -> bool {
        let (Some(v), Some([end, rest @ ..])) = (&self.verifier, chain) else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain.to_owned()) else {
            return false;
        };
        v.verify_server_cert(end, rest, &name, &[], UnixTime::now())
            .is_ok()
    }
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM file: {e}", path.display()))
}

/// Accepts any certificate in the handshake, checking only the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

const ALPN: &[u8] = b"xmpp-server";

/// The TLS acceptor for peers connecting to us: our certificate, theirs asked for.
pub fn acceptor(tls: &crate::net::tls::Tls) -> Result<futures_rustls::TlsAcceptor, Error> {
    let loaded = tls.current();
    let p = provider();
    let mut config = rustls::ServerConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(AnyCertificate(p)))
        .with_single_cert(loaded.chain.clone(), loaded.key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(futures_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The TLS connector for streams we open: our certificate presented as the client's.
pub fn connector(
    tls: &crate::net::tls::Tls,
    direct_tls: bool,
) -> Result<futures_rustls::TlsConnector, Error> {
    let loaded = tls.current();
    let p = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(p)))
        .with_client_auth_cert(loaded.chain.clone(), loaded.key.clone_key())?;
    if direct_tls {
        config.alpn_protocols = vec![ALPN.to_vec()];
    }
    Ok(futures_rustls::TlsConnector::from(Arc::new(config)))
}
