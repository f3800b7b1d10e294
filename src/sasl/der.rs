//! Just enough DER to read a Certificate's outer signatureAlgorithm (RFC 5280 §4.1).

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

#[cfg(test)]
mod tests {
    use crate::sasl::tls_server_end_point;
    use ring::digest;

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
