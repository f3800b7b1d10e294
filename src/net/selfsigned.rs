//! A self-signed X.509 certificate (ECDSA P-256 with SHA-256) for the server's names, in
//! DER written here with ring's key and signature: the certificate rcgen made for roost,
//! byte for byte up to the (randomized) signature, in ~100 lines instead of rcgen, yasna,
//! pem and the `time` crate (~70 KB of the binary).
//!
//! The certificate: version 3, serial from the SHA-256 of the public key (20 bytes, top bit
//! clear), issuer = subject = CN=<first name> (UTF8String), validity as UTCTime (1950–2049)
//! or GeneralizedTime, the P-256 public key, and one extension, subjectAltName (not
//! critical) with every name as a dNSName.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

/// id-ecPublicKey (1.2.840.10045.2.1) and prime256v1 (1.2.840.10045.3.1.7).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// commonName (2.5.4.3) and subjectAltName (2.5.29.17).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// A DER element: `tag`, its length, then `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A positive INTEGER from big-endian bytes (leading zeros dropped, a zero byte added when
/// the top bit is set).
fn positive_integer(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes
        .iter()
        .take_while(|&&b| b == 0)
        .count()
        .min(bytes.len() - 1);
    let mut content = Vec::with_capacity(bytes.len() + 1);
    if bytes[skip] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[skip..]);
    tlv(0x02, &content)
}

/// UTCTime for the years 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
fn time(unix: i64) -> Vec<u8> {
    let stamp = crate::util::datetime::format(unix); // YYYY-MM-DDThh:mm:ssZ
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let year: i64 = digits[..4].parse().unwrap_or(0);
    if (1950..2050).contains(&year) {
        tlv(0x17, format!("{}Z", &digits[2..]).as_bytes())
    } else {
        tlv(0x18, format!("{digits}Z").as_bytes())
    }
}

/// The DER certificate and the PKCS#8 DER key for `names` (the first is the CN), valid
/// from `not_before` to `not_after` (Unix seconds).
pub fn generate(
    names: &[String],
    not_before: i64,
    not_after: i64,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| "cannot make a key")?;
    let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
        .map_err(|_| "cannot read the new key")?;
    let public = key.public_key().as_ref();

    let mut serial = ring::digest::digest(&ring::digest::SHA256, public).as_ref()[..20].to_vec();
    serial[0] &= 0x7f;
    let sig_alg = seq(&[&tlv(0x06, ECDSA_SHA256)]);
    let cn = names.first().ok_or("no name for the certificate")?;
    let name = seq(&[&tlv(
        0x31,
        &seq(&[&tlv(0x06, COMMON_NAME), &tlv(0x0c, cn.as_bytes())]),
    )]);
    let spki = seq(&[
        &seq(&[&tlv(0x06, EC_PUBLIC_KEY), &tlv(0x06, PRIME256V1)]),
        &tlv(0x03, &[&[0u8][..], public].concat()),
    ]);
    let dns_names: Vec<Vec<u8>> = names.iter().map(|n| tlv(0x82, n.as_bytes())).collect();
    let san = seq(&[
        &tlv(0x06, SUBJECT_ALT_NAME),
        &tlv(0x04, &tlv(0x30, &dns_names.concat())),
    ]);
    let tbs = seq(&[
        &tlv(0xa0, &tlv(0x02, &[2])),
        &positive_integer(&serial),
        &sig_alg,
        &name,
        &seq(&[&time(not_before), &time(not_after)]),
        &name,
        &spki,
        &tlv(0xa3, &seq(&[&san])),
    ]);
    let sig = key
        .sign(&rng, &tbs)
        .map_err(|_| "cannot sign the certificate")?;
    let cert = seq(&[
        &tbs,
        &sig_alg,
        &tlv(0x03, &[&[0u8][..], sig.as_ref()].concat()),
    ]);
    Ok((cert, pkcs8.as_ref().to_vec()))
}

/// PEM text for DER `der` with `label`: base64 in lines of 64, LF line ends.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TBSCertificate and signature of a DER certificate (outer SEQUENCE of three).
    fn split(cert: &[u8]) -> (&[u8], &[u8]) {
        fn element(d: &[u8]) -> (usize, usize) {
            // (header length, content length)
            if d[1] < 0x80 {
                (2, d[1] as usize)
            } else {
                let n = (d[1] & 0x7f) as usize;
                let len = d[2..2 + n].iter().fold(0, |a, &b| a << 8 | b as usize);
                (2 + n, len)
            }
        }
        let (h, _) = element(cert);
        let body = &cert[h..];
        let (th, tl) = element(body);
        let tbs = &body[..th + tl];
        let rest = &body[th + tl..];
        let (ah, al) = element(rest);
        let bits = &rest[ah + al..];
        let (bh, _) = element(bits);
        (tbs, &bits[bh + 1..])
    }

    #[test]
    fn the_same_certificate_rcgen_made_and_a_valid_signature() {
        let names: Vec<String> = ["family.example", "groups.family.example"]
            .map(String::from)
            .to_vec();
        // 2025-12-31T00:00:00Z to five years later; and a date past 2049.
        for (from, to) in [
            (1_767_139_200, 1_924_819_200),
            (1_767_139_200, 2_556_144_000),
        ] {
            let (cert, key) = generate(&names, from, to).unwrap();
            let (tbs, sig) = split(&cert);
            let public = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &key,
                &SystemRandom::new(),
            )
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                &public,
            )
            .verify(tbs, sig)
            .expect("the signature verifies with the certificate's key");

            // rcgen, with the same key and parameters, writes the same TBSCertificate.
            let key_pair = rcgen::KeyPair::try_from(key.as_slice()).unwrap();
            let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, names[0].as_str());
            params.not_before =
                rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(from as u64);
            params.not_after =
                rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(to as u64);
            let theirs = params.self_signed(&key_pair).unwrap();
            assert_eq!(tbs, split(theirs.der()).0, "from {from} to {to}");
        }
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(positive_integer(&[0, 0, 5]), [0x02, 1, 5]);
        assert_eq!(positive_integer(&[0x80]), [0x02, 2, 0, 0x80]);
        assert_eq!(positive_integer(&[0, 0]), [0x02, 1, 0]);
        assert_eq!(time(0), tlv(0x17, b"700101000000Z"));
        assert_eq!(time(2_556_144_000), tlv(0x18, b"20510101000000Z"));
    }

    #[test]
    fn pem_lines_of_64() {
        let p = pem("CERTIFICATE", &[0xab; 100]);
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        // 100 bytes are 136 base64 characters.
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END CERTIFICATE-----");
        assert_eq!(lines.len(), 5);
    }
}
