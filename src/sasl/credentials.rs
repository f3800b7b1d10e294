//! What the server stores for an account ([`StoredCredentials`]: salt, iteration count,
//! StoredKey and ServerKey per hash; never the password), the hashes behind SCRAM, and the
//! PLAIN check against stored credentials.

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::OnceLock;

use icu_normalizer::ComposingNormalizerBorrowed;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

use super::{Failure, DEFAULT_ITERATIONS, MIN_ITERATIONS, SALT_LEN};

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

    /// Whether `password` is this account's password (for PLAIN): one SHA-256 PBKDF2 run
    /// (SHA-1 for an account that has only those keys), compared with StoredKey in constant
    /// time.
    pub fn verify_plain(&self, password: &str) -> bool {
        let hash = if self.has(Hash::Sha256) {
            Hash::Sha256
        } else {
            Hash::Sha1
        };
        let password = normalize_password(password);
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let keys = ScramKeys::from_salted_password(hash, &salted);
        ct_eq(&keys.stored_key, &self.keys(hash).stored_key)
    }

    /// Whether the account has keys for `hash`: one imported from a server that stored
    /// only SCRAM-SHA-1 keys has empty SHA-256 ones until a XEP-0480 upgrade fills them.
    pub(super) fn has(&self, hash: Hash) -> bool {
        !self.keys(hash).stored_key.is_empty()
    }

    pub(super) fn keys(&self, hash: Hash) -> &ScramKeys {
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

/// A XEP-0480 SCRAM upgrade task: the client sends the SaltedPassword for a hash whose
/// keys the account lacks, computed with the account's salt and iteration count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeTask {
    ScramSha256,
    ScramSha1,
}

impl UpgradeTask {
    /// Every task offered, strongest first.
    pub const ALL: [UpgradeTask; 2] = [UpgradeTask::ScramSha256, UpgradeTask::ScramSha1];

    /// The task's name (XEP-0480 §3: `UPGR-` and the mechanism without `-PLUS`).
    pub fn name(self) -> &'static str {
        match self {
            UpgradeTask::ScramSha256 => "UPGR-SCRAM-SHA-256",
            UpgradeTask::ScramSha1 => "UPGR-SCRAM-SHA-1",
        }
    }

    pub fn from_name(name: &str) -> Option<UpgradeTask> {
        UpgradeTask::ALL.into_iter().find(|t| t.name() == name)
    }

    fn hash(self) -> Hash {
        match self {
            UpgradeTask::ScramSha256 => Hash::Sha256,
            UpgradeTask::ScramSha1 => Hash::Sha1,
        }
    }

    /// Whether `creds` lack this task's keys.
    pub fn needed(self, creds: &StoredCredentials) -> bool {
        !creds.has(self.hash())
    }

    /// The keys from the client's SaltedPassword; `None` if it is not this hash's length.
    pub fn keys(self, salted_password: &[u8]) -> Option<ScramKeys> {
        let hash = self.hash();
        (salted_password.len() == hash.len())
            .then(|| ScramKeys::from_salted_password(hash, salted_password))
    }

    /// Puts `keys` into `creds` for this task's hash.
    pub fn fill(self, creds: &mut StoredCredentials, keys: ScramKeys) {
        match self {
            UpgradeTask::ScramSha256 => creds.sha256 = keys,
            UpgradeTask::ScramSha1 => creds.sha1 = keys,
        }
    }
}

impl ScramKeys {
    /// No keys: what an account lacking a hash stores (zero-length StoredKey and ServerKey).
    pub fn none() -> ScramKeys {
        ScramKeys {
            stored_key: Vec::new(),
            server_key: Vec::new(),
        }
    }

    pub(super) fn from_salted_password(hash: Hash, salted: &[u8]) -> ScramKeys {
        let client_key = hash.hmac(salted, b"Client Key");
        ScramKeys {
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(salted, b"Server Key"),
        }
    }
}

/// The hash behind a SCRAM variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    pub(super) fn len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &digest::SHA256,
        }
    }

    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
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
    pub(super) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
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
pub(super) fn normalize_password(password: &str) -> Cow<'_, str> {
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

/// Constant-time equality for keys and proofs; the lengths are public.
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

pub(super) fn fill_random(buf: &mut [u8]) {
    // ring's SystemRandom is getrandom(2); it only fails on a broken OS, where nothing we
    // could do instead would be safe.
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random number generator failed");
}

/// A random secret for this process, for the unknown-user disguise.
pub(super) fn process_secret() -> &'static [u8; 32] {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut secret = [0u8; 32];
        fill_random(&mut secret);
        secret
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::tests::creds;

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
}
