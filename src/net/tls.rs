//! TLS for client streams (RFC 6120 §5, XEP-0368) with rustls on the `ring` provider.
//!
//! The certificate chain and key come from PEM files (`--cert`, `--key`, as Let's Encrypt
//! writes them) or, without them, from a self-signed certificate generated once into the
//! data directory. `reload` (SIGHUP) swaps the configuration for new handshakes; sessions
//! already established keep theirs.

use futures_rustls::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why the TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    Io(PathBuf, std::io::Error),
    Pem(PathBuf, String),
    NoCertificate(PathBuf),
    Rustls(rustls::Error),
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::Pem(p, e) => write!(f, "{}: not a usable PEM file: {e}", p.display()),
            TlsError::NoCertificate(p) => write!(f, "{}: no certificate in file", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
            TlsError::Generate(e) => write!(f, "generating a self-signed certificate: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// One loaded certificate: the rustls configuration and what SASL channel binding needs.
pub struct Loaded {
    pub acceptor: TlsAcceptor,
    /// RFC 5929 `tls-server-end-point` data for the end-entity certificate (`None` if its
    /// signature algorithm is one we cannot map to a hash).
    pub server_end_point: Option<Vec<u8>>,
}

/// The server's TLS state; cheap to read on every connection.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<Loaded>>,
}

impl Tls {
    /// Loads `cert`/`key`, or generates (once) a self-signed certificate for `domain` into
    /// `data_dir` when neither is given.
    pub fn load(
        cert: Option<&Path>,
        key: Option<&Path>,
        data_dir: &Path,
        domain: &str,
    ) -> Result<Tls, TlsError> {
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
            _ => self_signed(data_dir, domain)?,
        };
        let loaded = build(&cert, &key)?;
        Ok(Tls {
            cert,
            key,
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the certificate and key; on error the old configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = build(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    /// The certificate file in use.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Io(path.to_path_buf(), e))
}

fn build(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(cert_path.to_path_buf(), e.to_string()))?;
    let first = chain
        .first()
        .ok_or_else(|| TlsError::NoCertificate(cert_path.to_path_buf()))?;
    let server_end_point = crate::sasl::tls_server_end_point(first);
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| TlsError::Pem(key_path.to_path_buf(), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    // XEP-0368: direct TLS clients may offer ALPN "xmpp-client".
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        server_end_point,
    })
}

/// Paths of the self-signed certificate for `domain`, generated on first use.
fn self_signed(data_dir: &Path, domain: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = data_dir.join(format!("{domain}.crt"));
    let key = data_dir.join(format!("{domain}.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    log::warn!(
        "no --cert/--key given: generating a self-signed certificate for {domain} in {} \
         (clients will ask to trust it; use a real certificate for a public server)",
        data_dir.display()
    );
    std::fs::create_dir_all(data_dir).map_err(|e| TlsError::Io(data_dir.to_path_buf(), e))?;
    let generated = rcgen::generate_simple_self_signed(vec![domain.to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| TlsError::Io(cert.clone(), e))?;
    Ok((cert, key))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError::Io(path.to_path_buf(), e))?;
    f.write_all(data)
        .map_err(|e| TlsError::Io(path.to_path_buf(), e))
}
