//! What `roost check` needs to know of a certificate (RFC 5280): the DNS names it is valid
//! for (subjectAltName dNSName entries, §4.2.1.6) and its validity period (§4.1.2.5), read
//! with a small DER walk. rustls and webpki check certificates but do not hand these out,
//! and an X.509 crate would cost more binary than these few lines.

/// The facts of one certificate.
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    /// subjectAltName dNSName entries, as written (possibly `*.example.org`).
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The contents of an element that must have `tag`, and what follows.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, body, rest) = element(input)?;
    (t == tag).then_some((body, rest))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// id-ce-subjectAltName, 2.5.29.17.
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, body: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(body).ok()?;
    let full = match tag {
        UTC_TIME if s.len() == 13 => {
            let yy: u32 = s.get(0..2)?.parse().ok()?;
            format!("{}{s}", if yy < 50 { "20" } else { "19" })
        }
        GENERALIZED_TIME if s.len() == 15 => s.to_owned(),
        _ => return None,
    };
    if !full.ends_with('Z') {
        return None;
    }
    let x = format!(
        "{}-{}-{}T{}:{}:{}Z",
        full.get(0..4)?,
        full.get(4..6)?,
        full.get(6..8)?,
        full.get(8..10)?,
        full.get(10..12)?,
        full.get(12..14)?
    );
    crate::util::datetime::parse(&x)
}

/// Reads a DER certificate; `None` if it is not one this walk understands.
pub fn facts(der: &[u8]) -> Option<Facts> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (validity, after_validity) = expect(rest, SEQUENCE)?;
    let (t1, b1, v) = element(validity)?;
    let (t2, b2, _) = element(v)?;
    let not_before = time(t1, b1)?;
    let not_after = time(t2, b2)?;
    // subject, subjectPublicKeyInfo
    rest = element(after_validity)?.2;
    rest = element(rest)?.2;
    let mut names = Vec::new();
    while let Some((tag, body, next)) = element(rest) {
        rest = next;
        // extensions [3] EXPLICIT SEQUENCE OF Extension
        if tag != 0xa3 {
            continue;
        }
        let (mut exts, _) = expect(body, SEQUENCE)?;
        while let Some((ext, next)) = expect(exts, SEQUENCE) {
            exts = next;
            let (oid, mut fields) = expect(ext, 0x06)?;
            if oid != SAN_OID {
                continue;
            }
            if fields.first() == Some(&0x01) {
                fields = element(fields)?.2; // critical
            }
            let (octets, _) = expect(fields, 0x04)?;
            let (mut general_names, _) = expect(octets, SEQUENCE)?;
            while let Some((t, b, next)) = element(general_names) {
                general_names = next;
                // dNSName [2] IMPLICIT IA5String
                if t == 0x82 {
                    if let Ok(n) = std::str::from_utf8(b) {
                        names.push(n.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    Some(Facts {
        names,
        not_before,
        not_after,
    })
}

/// Whether a certificate name (`example.org`, `*.example.org`) covers `host` (RFC 6125
/// §6.4.3: a wildcard stands for exactly one whole leftmost label).
pub fn covers(name: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_gives_its_names_and_validity() {
        let now = 1_800_000_000;
        let (pem, _) = crate::net::tls::generate_self_signed("example.org", now).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let f = facts(&der).unwrap();
        assert_eq!(
            f.names,
            ["example.org", "groups.example.org", "upload.example.org"]
        );
        assert_eq!(f.not_before, now - 86_400);
        assert_eq!(
            f.not_after,
            f.not_before + crate::net::tls::SELF_SIGNED_VALIDITY.as_secs() as i64
        );
    }

    #[test]
    fn garbage_and_truncations_are_refused() {
        assert_eq!(facts(b""), None);
        assert_eq!(facts(b"\x30\x82\xff"), None);
        let (pem, _) = crate::net::tls::generate_self_signed("a.example", 1_800_000_000).unwrap();
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        for cut in [1, 10, 100, der.len() / 2] {
            assert_eq!(facts(&der[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("example.org", "EXAMPLE.org."));
        assert!(covers("*.example.org", "groups.example.org"));
        assert!(!covers("*.example.org", "example.org"));
        assert!(!covers("*.example.org", "a.groups.example.org"));
        assert!(!covers("example.org", "groups.example.org"));
    }
}
