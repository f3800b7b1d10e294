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
    /// The private key is not the certificate's.
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
    },
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::Pem(p, e) => write!(f, "{}: not a usable PEM file: {e}", p.display()),
            TlsError::NoCertificate(p) => write!(f, "{}: no certificate in file", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
            TlsError::Mismatch { cert, key } => write!(
                f,
                "the private key {} does not match the certificate {}: give the key that \
                 was made with it (from Let's Encrypt: privkey.pem and fullchain.pem of the \
                 same directory)",
                key.display(),
                cert.display()
            ),
            TlsError::Generate(e) => write!(f, "generating a self-signed certificate: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// One loaded certificate: the rustls configuration and what SASL channel binding needs.
pub struct Loaded {
    pub acceptor: TlsAcceptor,
    /// The same certificate for the HTTPS service (upload, WebSocket, host-meta): its own
    /// ALPN list (`http/1.1`), since rustls refuses a client whose ALPN offer has nothing
    /// in common with the server's, and browsers offer `h2, http/1.1`.
    pub http_acceptor: TlsAcceptor,
    /// RFC 5929 `tls-server-end-point` data for the end-entity certificate (`None` if its
    /// signature algorithm is one we cannot map to a hash).
    pub server_end_point: Option<Vec<u8>>,
    /// The certificate chain and key, for the server-to-server configurations (which ask
    /// the peer for its certificate, and present ours as a client).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
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
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            },
            e => TlsError::Rustls(e),
        })?;
    let mut http = config.clone();
    // XEP-0368: direct TLS clients may offer ALPN "xmpp-client".
    config.alpn_protocols = vec![b"xmpp-client".to_vec()];
    // HTTP/1.1 only: a browser offering h2 falls back to it.
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        http_acceptor: TlsAcceptor::from(Arc::new(http)),
        server_end_point,
        chain,
        key,
    })
}

/// How long a generated self-signed certificate is valid.
pub const SELF_SIGNED_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(5 * 365 * 24 * 3600);

/// Where the self-signed certificate and key for `domain` live in `data_dir`.
pub fn self_signed_paths(data_dir: &Path, domain: &str) -> (PathBuf, PathBuf) {
    (
        data_dir.join(format!("{domain}.crt")),
        data_dir.join(format!("{domain}.key")),
    )
}

/// Paths of the self-signed certificate for `domain`, generated on first use.
fn self_signed(data_dir: &Path, domain: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = self_signed_paths(data_dir, domain);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    log::warn!(
        "no --cert/--key given: generating a self-signed certificate for {domain} in {} \
         (clients will ask to trust it: compare with `roost cert-fingerprint`; use a real \
         certificate for a public server)",
        data_dir.display()
    );
    std::fs::create_dir_all(data_dir).map_err(|e| TlsError::Io(data_dir.to_path_buf(), e))?;
    let (cert_pem, key_pem) = generate_self_signed(domain, crate::util::datetime::unix_now())?;
    write_private(&key, key_pem.as_bytes())?;
    std::fs::write(&cert, cert_pem).map_err(|e| TlsError::Io(cert.clone(), e))?;
    Ok((cert, key))
}

/// A self-signed certificate (PEM) and its key (PEM) for `domain` and its service
/// subdomains (`groups.`, `upload.`): CN and subjectAltName name the domain, valid from a
/// day before `now` (clocks differ) for [`SELF_SIGNED_VALIDITY`].
pub fn generate_self_signed(domain: &str, now: i64) -> Result<(String, String), TlsError> {
    let mut names = vec![domain.to_string()];
    names.extend(
        crate::storage::rename::SERVICES
            .iter()
            .map(|s| format!("{s}.{domain}")),
    );
    let not_before = now.saturating_sub(24 * 3600).max(0);
    let not_after = not_before + SELF_SIGNED_VALIDITY.as_secs() as i64;
    let (cert, key) =
        super::selfsigned::generate(&names, not_before, not_after).map_err(TlsError::Generate)?;
    Ok((
        super::selfsigned::pem("CERTIFICATE", &cert),
        super::selfsigned::pem("PRIVATE KEY", &key),
    ))
}

/// A certificate's fingerprints as clients show them: uppercase hex pairs joined by `:`.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprints {
    pub sha256: String,
    pub sha1: String,
}

/// The fingerprints of the first certificate in a PEM file (the server's own, in a chain).
pub fn fingerprints(cert_path: &Path) -> Result<Fingerprints, TlsError> {
    let first = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .next()
        .ok_or_else(|| TlsError::NoCertificate(cert_path.to_path_buf()))?
        .map_err(|e| TlsError::Pem(cert_path.to_path_buf(), e.to_string()))?;
    Ok(fingerprints_of(&first))
}

/// The fingerprints of a DER certificate.
pub fn fingerprints_of(der: &[u8]) -> Fingerprints {
    let hex = |d: ring::digest::Digest| {
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    Fingerprints {
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, der)),
        sha1: hex(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            der,
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The DER of the first certificate in a PEM text.
    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// True if the DER contains `needle` (names are stored as plain ASCII strings).
    fn contains(der: &[u8], needle: &str) -> bool {
        der.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn the_self_signed_certificate_names_the_domain_and_its_services_for_five_years() {
        // 2026-01-01T00:00:00Z
        let now = 1_767_225_600;
        let (cert, key) = generate_self_signed("family.example", now).unwrap();
        let d = der(&cert);
        for name in [
            "family.example",
            "groups.family.example",
            "upload.family.example",
        ] {
            assert!(contains(&d, name), "{name} missing");
        }
        assert!(!contains(&d, "rcgen"), "rcgen's default subject name");
        // Validity as UTCTime: from 2025-12-31 to 2030-12-30 (5 × 365 days later).
        assert!(contains(&d, "251231000000Z"), "not before");
        assert!(contains(&d, "301230000000Z"), "not after");
        // The key is the certificate's: the server accepts the pair.
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        build(&c, &k).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_with_both_paths_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = generate_self_signed("a.example", 1_767_225_600).unwrap();
        let (_, other_key) = generate_self_signed("a.example", 1_767_225_600).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, other_key).unwrap();
        let err = build(&c, &k).err().expect("a mismatched key is refused");
        let msg = err.to_string();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{msg}");
        assert!(msg.contains(&*k.to_string_lossy()) && msg.contains("does not match"));
    }

    #[test]
    fn fingerprints_are_colon_separated_uppercase_hex() {
        let f = fingerprints_of(b"abc");
        // SHA-256("abc") and SHA-1("abc").
        assert!(
            f.sha256.starts_with("BA:78:16:BF:8F:01:CF:EA"),
            "{}",
            f.sha256
        );
        assert_eq!(f.sha256.len(), 32 * 3 - 1);
        assert_eq!(
            f.sha1,
            "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D"
        );
    }
}
