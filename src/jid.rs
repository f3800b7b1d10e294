//! JIDs per RFC 7622: parsing, normalization and compact types usable as map keys.
//!
//! A JID is `[localpart "@"] domainpart ["/" resourcepart]`, split per RFC 7622 §3.1: the
//! resourcepart starts at the first `/`, the localpart ends at the first `@` before it.
//! Each part is prepared on its own and must be 1..=1023 bytes afterwards (§3.2–§3.4):
//!
//! - **localpart** (§3.3): PRECIS UsernameCaseMapped (RFC 8265 §3.3), slightly simplified:
//!   fullwidth ASCII → ASCII, Unicode `to_lowercase`, NFC; then the IdentifierClass
//!   (RFC 8264 §4.2): printable ASCII, or letters/digits/marks (`Ll Lu Lo Lm Nd Mn Mc`)
//!   without a compatibility decomposition; minus the §3.3.1 characters `" & ' / : < > @`.
//!   Not done: the PRECIS exception table, CONTEXTJ/CONTEXTO rules (so ZWJ/ZWNJ and
//!   U+00B7 are refused outright) and the bidi rule.
//! - **domainpart** (§3.2): an IPv6 literal `[…]`, an IPv4 address, or a domain name run
//!   through UTS-46 (`idna`, STD3 rules, DNS lengths) and stored as U-labels, lowercase,
//!   without a trailing dot. A name whose last label is all digits must be IPv4.
//! - **resourcepart** (§3.4): OpaqueString-like: NFC only, no case folding; control
//!   characters are refused. Everything else is kept as the client sent it.
//!
//! Representation: one `Arc<str>` holding the normalized JID plus `u16` offsets of the
//! `@` and `/` (1023 × 3 + 2 bytes fits a `u16`). `Arc` rather than `Box` because JIDs are
//! cloned far more often than built: every session holds its own, the router keys maps by
//! `BareJid`, and each routed stanza carries copies of `from`/`to`; a clone is then one
//! atomic increment instead of an allocation, for 16 extra bytes per distinct JID. A
//! `BareJid` may be a prefix of a full JID's string (it keeps its own end offset), so that
//! [`FullJid::bare`], which every routed stanza needs, shares the string instead of
//! copying it. Equality, hashing and ordering use the string alone, and a `BareJid` map can
//! be searched with a `&str` ([`FullJid::bare_str`]).
//!
//! Preparation has ASCII fast paths for what nearly every JID on the wire is (ASCII
//! localpart and resourcepart, an ASCII LDH domain name); they give exactly what the full
//! Unicode path gives, which the tests check against it, and an already normalized JID is
//! stored with one allocation.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::GeneralCategory;
use icu_properties::CodePointMapData;
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// The longest a part may be after preparation, in bytes (RFC 7622 §3.2–§3.4).
pub const MAX_PART_LEN: usize = 1023;

/// No preparation step shrinks text more than three times (fullwidth `Ａ` and the Kelvin
/// sign are 3 bytes and become 1; NFC composes at most 3:1), so longer input is refused
/// before doing any Unicode work on it.
const MAX_RAW_PART_LEN: usize = 3 * MAX_PART_LEN;

/// RFC 7622 §3.3.1: characters forbidden in a localpart even though PRECIS allows them.
const LOCAL_FORBIDDEN: &[u8] = b"\"&'/:<>@";

/// Which part of a JID an [`Error`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Before the `@`.
    Local,
    /// Between the `@` and the `/`.
    Domain,
    /// After the `/`.
    Resource,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Local => "localpart",
            Part::Domain => "domainpart",
            Part::Resource => "resourcepart",
        })
    }
}

/// Why a string is not a valid JID; every variant becomes `jid-malformed` on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The whole string is empty.
    Empty,
    /// A part that is present is empty (`@example.com`, `juliet@`, `example.com/`).
    EmptyPart(Part),
    /// A part is longer than [`MAX_PART_LEN`] bytes after preparation.
    TooLong(Part),
    /// A part contains a character its profile refuses (JIDs are addresses, not secrets,
    /// so the character may be shown).
    Forbidden(Part, char),
    /// The domainpart is neither an IDNA2008/UTS-46 domain name nor an IP address.
    InvalidDomain,
    /// A full JID was given where a bare JID is required.
    NotBare,
    /// A bare JID was given where a full JID is required.
    NotFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("empty JID"),
            Error::EmptyPart(part) => write!(f, "empty {part}"),
            Error::TooLong(part) => write!(f, "{part} longer than {MAX_PART_LEN} bytes"),
            Error::Forbidden(part, c) => write!(f, "character {c:?} not allowed in {part}"),
            Error::InvalidDomain => f.write_str("invalid domainpart"),
            Error::NotBare => f.write_str("expected a bare JID, got a full JID"),
            Error::NotFull => f.write_str("expected a full JID, got a bare JID"),
        }
    }
}

impl std::error::Error for Error {}

/// Normalizes a localpart (a bare username) as a JID would: the CLI and SASL use this so
/// that `Juliet` logs in as the account `juliet`.
pub fn nodeprep(local: &str) -> Result<String, Error> {
    prep_local(local).map(Cow::into_owned)
}

/// Normalizes a domainpart: lowercase, U-labels, no trailing dot, canonical IP literals.
pub fn nameprep(domain: &str) -> Result<String, Error> {
    prep_domain(domain).map(Cow::into_owned)
}

/// Normalizes a resourcepart (NFC; refuses controls), e.g. the one a client asks to bind.
pub fn resourceprep(resource: &str) -> Result<String, Error> {
    prep_resource(resource).map(Cow::into_owned)
}

/// A bare JID `[localpart@]domainpart`, normalized.
#[derive(Clone)]
pub struct BareJid {
    /// The JID is `s[..end]`: the rest, if any, is the resourcepart of the full JID this
    /// bare JID was taken from.
    s: Arc<str>,
    /// Offset of the `@`; 0 when there is no localpart (a localpart is never empty, so a
    /// real `@` is never at 0).
    at: u16,
    /// Where the bare JID ends in `s`.
    end: u16,
}

/// A full JID `[localpart@]domainpart/resourcepart`, normalized.
#[derive(Clone)]
pub struct FullJid {
    s: Arc<str>,
    /// As in [`BareJid`].
    at: u16,
    /// Offset of the `/` that starts the resourcepart.
    slash: u16,
}

/// Either kind, as found in `to` and `from` attributes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Jid {
    /// No resourcepart.
    Bare(BareJid),
    /// With a resourcepart.
    Full(FullJid),
}

/// The parts of a JID after preparation, before they are joined into one string.
struct Prepared<'a> {
    local: Option<Cow<'a, str>>,
    domain: Cow<'a, str>,
    resource: Option<Cow<'a, str>>,
    /// Preparation changed nothing: the input is the normalized JID.
    unchanged: bool,
}

/// RFC 7622 §3.1 split, then each part prepared.
fn prepare(s: &str) -> Result<Prepared<'_>, Error> {
    if s.is_empty() {
        return Err(Error::Empty);
    }
    let (rest, resource) = match s.split_once('/') {
        Some((rest, resource)) => (rest, Some(resource)),
        None => (s, None),
    };
    let (local, domain) = match rest.split_once('@') {
        Some((local, domain)) => (Some(local), domain),
        None => (None, rest),
    };
    let prepared = Prepared {
        local: local.map(prep_local).transpose()?,
        domain: prep_domain(domain)?,
        resource: resource.map(prep_resource).transpose()?,
        unchanged: false,
    };
    let unchanged = prepared.local.as_deref() == local
        && prepared.domain == domain
        && prepared.resource.as_deref() == resource;
    Ok(Prepared {
        unchanged,
        ..prepared
    })
}

/// The JIDs on the wire, checked in one pass over the bytes: an ASCII JID that preparation
/// would leave as it is (a lowercase localpart of printable characters outside RFC 7622
/// §3.3.1, a lowercase LDH domain as [`ldh_domain`] takes it, a resourcepart without
/// controls). Returns the offsets of the `@` (0 if none) and of the `/` (the length if
/// none); `None` sends the JID through [`prepare`], which gives the same result for
/// everything this accepts.
fn normalized_ascii(s: &str) -> Option<(u16, u16)> {
    let b = s.as_bytes();
    let slash = memchr::memchr(b'/', b).unwrap_or(b.len());
    let head = &b[..slash];
    let (at, domain_start) = match memchr::memchr(b'@', head) {
        Some(at) => {
            let local = &head[..at];
            let ok = !local.is_empty()
                && local.len() <= MAX_PART_LEN
                && local.iter().all(|&c| {
                    c.is_ascii_graphic() && !c.is_ascii_uppercase() && !LOCAL_FORBIDDEN.contains(&c)
                });
            if !ok {
                return None;
            }
            (at, at + 1)
        }
        None => (0, 0),
    };
    match ldh_domain(&s[domain_start..slash])? {
        Cow::Borrowed(_) => {}
        Cow::Owned(_) => return None, // uppercase
    }
    if slash < b.len() {
        let resource = &b[slash + 1..];
        let ok = !resource.is_empty()
            && resource.len() <= MAX_PART_LEN
            && resource.iter().all(|&c| (0x20..0x7F).contains(&c));
        if !ok {
            return None;
        }
    }
    Some((offset(at), offset(slash)))
}

/// Joins prepared parts into `(string, at, slash)`.
fn join(local: Option<&str>, domain: &str, resource: Option<&str>) -> (Arc<str>, u16, u16) {
    let len = local.map_or(0, |l| l.len() + 1) + domain.len() + resource.map_or(0, |r| r.len() + 1);
    let mut s = String::with_capacity(len);
    let mut at = 0;
    if let Some(local) = local {
        s.push_str(local);
        at = s.len();
        s.push('@');
    }
    s.push_str(domain);
    let slash = s.len();
    if let Some(resource) = resource {
        s.push('/');
        s.push_str(resource);
    }
    // Each part is at most MAX_PART_LEN bytes, so every offset fits.
    (s.into(), offset(at), offset(slash))
}

fn offset(i: usize) -> u16 {
    debug_assert!(i <= 3 * MAX_PART_LEN + 2);
    i as u16
}

fn prep_local(s: &str) -> Result<Cow<'_, str>, Error> {
    if s.is_empty() {
        return Err(Error::EmptyPart(Part::Local));
    }
    if s.len() > MAX_RAW_PART_LEN {
        return Err(Error::TooLong(Part::Local));
    }
    let prepared: Cow<'_, str> = if s.is_ascii() {
        // The common case: no width mapping, no normalization, ASCII lowercase.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        // RFC 8265 §3.3.2: width mapping, case mapping, then NFC. The whole-string
        // `to_lowercase` (not per char) gets the Greek final sigma right.
        let widened: String = s.chars().map(width_map).collect();
        let lower = widened.to_lowercase();
        Cow::Owned(NFC.normalize(&lower).into_owned())
    };
    for c in prepared.chars() {
        if !local_char_allowed(c) {
            return Err(Error::Forbidden(Part::Local, c));
        }
    }
    check_len(prepared, Part::Local)
}

/// RFC 8265 §3.3.2 step 1: fullwidth and halfwidth forms map to their decomposition. Only
/// the fullwidth ASCII block (U+FF01..U+FF5E) and the ideographic space are mapped: other
/// width variants have a compatibility decomposition and are refused by the HasCompat rule,
/// which is the safe direction.
fn width_map(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// IdentifierClass (RFC 8264 §9) as far as general categories tell, minus RFC 7622 §3.3.1.
fn local_char_allowed(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_graphic() && !LOCAL_FORBIDDEN.contains(&(c as u8));
    }
    let letter_digit = matches!(
        GENERAL_CATEGORY.get(c),
        GeneralCategory::LowercaseLetter
            | GeneralCategory::UppercaseLetter
            | GeneralCategory::OtherLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::DecimalNumber
            | GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
    );
    // HasCompat (RFC 8264 §9.17): `ﬁ`, `²`, `ℌ`, halfwidth kana… look like other
    // identifiers, so they are refused rather than silently mapped.
    letter_digit && !has_compat(c)
}

fn has_compat(c: char) -> bool {
    let mut buf = [0u8; 4];
    let one = c.encode_utf8(&mut buf);
    NFKC.normalize(one) != *one
}

const NFC: ComposingNormalizerBorrowed<'static> = ComposingNormalizerBorrowed::new_nfc();
const NFKC: ComposingNormalizerBorrowed<'static> = ComposingNormalizerBorrowed::new_nfkc();
const GENERAL_CATEGORY: icu_properties::CodePointMapDataBorrowed<'static, GeneralCategory> =
    CodePointMapData::<GeneralCategory>::new();

fn prep_domain(s: &str) -> Result<Cow<'_, str>, Error> {
    match ldh_domain(s) {
        Some(d) => Ok(d),
        None => prep_domain_full(s),
    }
}

/// The fast path of [`prep_domain`], for the domains nearly every JID has: an ASCII name of
/// letters, digits and hyphens (RFC 5890 §2.3.1 "LDH"), labels of 1..=63 bytes not starting
/// or ending with a hyphen, at most 253 bytes, whose last label is not all digits. UTS-46
/// maps such a name to its lowercase form and accepts it; `None` sends everything else
/// (uppercase-free or not) to the full path: non-ASCII, a trailing dot, IP addresses, and
/// labels with `--` in the third and fourth place (A-labels `xn--…` among them), which need
/// decoding and validation.
fn ldh_domain(s: &str) -> Option<Cow<'_, str>> {
    if s.is_empty() || s.len() > 253 {
        return None;
    }
    let mut upper = false;
    let mut last_all_digits = false;
    for label in s.as_bytes().split(|&b| b == b'.') {
        let (&first, &last) = (label.first()?, label.last()?);
        if label.len() > 63 || first == b'-' || last == b'-' || label.get(2..4) == Some(b"--") {
            return None;
        }
        let mut digits = true;
        for &b in label {
            match b {
                b'0'..=b'9' => {}
                b'a'..=b'z' | b'-' => digits = false,
                b'A'..=b'Z' => {
                    digits = false;
                    upper = true;
                }
                _ => return None,
            }
        }
        last_all_digits = digits;
    }
    if last_all_digits {
        return None; // an IPv4 address, or invalid
    }
    Some(if upper {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    })
}

/// [`prep_domain`] through UTS-46.
fn prep_domain_full(s: &str) -> Result<Cow<'_, str>, Error> {
    if s.is_empty() {
        return Err(Error::EmptyPart(Part::Domain));
    }
    if s.len() > MAX_RAW_PART_LEN {
        return Err(Error::TooLong(Part::Domain));
    }
    if let Some(inner) = s.strip_prefix('[') {
        // RFC 7622 §3.2: IP-literal from RFC 3986 (IPvFuture is not supported); stored in
        // the RFC 5952 canonical form so that `[::1]` and `[0:0::1]` are one JID.
        let addr = inner
            .strip_suffix(']')
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .ok_or(Error::InvalidDomain)?;
        return Ok(Cow::Owned(format!("[{addr}]")));
    }
    // UTS-46 maps case, width and the ideographic full stop, and validates IDNA2008 labels.
    // STD3 keeps names to letters, digits and hyphens; DNS lengths (63/253) because a
    // domainpart must be resolvable. The root dot is allowed here and stripped below, so
    // that `example.com.` and `example.com` are the same JID (RFC 7622 §3.2).
    let uts46 = Uts46::new();
    let ascii = uts46
        .to_ascii(
            s.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::VerifyAllowRootDot,
        )
        .map_err(|_| Error::InvalidDomain)?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    if ascii.is_empty() {
        return Err(Error::EmptyPart(Part::Domain));
    }
    // No top-level domain is numeric, so an all-digit last label means an IPv4 address;
    // a strict parse refuses `1.2.3.999`, `01.2.3.4` and `1.2.3` alike.
    let last = ascii.rsplit('.').next().unwrap_or(ascii);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        let addr: Ipv4Addr = ascii.parse().map_err(|_| Error::InvalidDomain)?;
        return Ok(Cow::Owned(addr.to_string()));
    }
    let unicode = if ascii.contains("xn--") {
        let (unicode, result) = uts46.to_unicode(
            ascii.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
        );
        result.map_err(|_| Error::InvalidDomain)?;
        Cow::Owned(unicode.into_owned())
    } else if ascii == s {
        // Already canonical: the common case for a `to` attribute, kept without copying.
        Cow::Borrowed(s)
    } else {
        Cow::Owned(ascii.to_owned())
    };
    check_len(unicode, Part::Domain)
}

fn prep_resource(s: &str) -> Result<Cow<'_, str>, Error> {
    if s.is_empty() {
        return Err(Error::EmptyPart(Part::Resource));
    }
    if s.len() > MAX_RAW_PART_LEN {
        return Err(Error::TooLong(Part::Resource));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(Error::Forbidden(Part::Resource, c));
    }
    if s.is_ascii() {
        // ASCII is always in NFC.
        return check_len(Cow::Borrowed(s), Part::Resource);
    }
    check_len(NFC.normalize(s), Part::Resource)
}

fn check_len(s: Cow<'_, str>, part: Part) -> Result<Cow<'_, str>, Error> {
    if s.len() > MAX_PART_LEN {
        Err(Error::TooLong(part))
    } else {
        Ok(s)
    }
}

impl BareJid {
    /// Parses and normalizes a bare JID; a JID with a resourcepart is [`Error::NotBare`].
    pub fn parse(s: &str) -> Result<BareJid, Error> {
        match Jid::parse(s)? {
            Jid::Bare(bare) => Ok(bare),
            Jid::Full(_) => Err(Error::NotBare),
        }
    }

    /// Builds a bare JID from parts, normalizing each.
    pub fn new(local: Option<&str>, domain: &str) -> Result<BareJid, Error> {
        let local = local.map(prep_local).transpose()?;
        let domain = prep_domain(domain)?;
        let (s, at, end) = join(local.as_deref(), &domain, None);
        Ok(BareJid { s, at, end })
    }

    /// This JID with a resourcepart (normalized).
    pub fn with_resource(&self, resource: &str) -> Result<FullJid, Error> {
        let resource = prep_resource(resource)?;
        let (s, at, slash) = join(self.node(), self.domain(), Some(&resource));
        Ok(FullJid { s, at, slash })
    }

    /// The localpart, if any.
    pub fn node(&self) -> Option<&str> {
        (self.at > 0).then(|| &self.s[..usize::from(self.at)])
    }

    /// Same as [`BareJid::node`].
    pub fn local(&self) -> Option<&str> {
        self.node()
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        &self.s[domain_start(self.at)..usize::from(self.end)]
    }

    /// The whole normalized JID.
    pub fn as_str(&self) -> &str {
        &self.s[..usize::from(self.end)]
    }
}

/// Where the domainpart starts given the `@` offset (0 = no localpart).
fn domain_start(at: u16) -> usize {
    if at == 0 {
        0
    } else {
        usize::from(at) + 1
    }
}

impl FullJid {
    /// Parses and normalizes a full JID; a JID without a resourcepart is [`Error::NotFull`].
    pub fn parse(s: &str) -> Result<FullJid, Error> {
        match Jid::parse(s)? {
            Jid::Full(full) => Ok(full),
            Jid::Bare(_) => Err(Error::NotFull),
        }
    }

    /// Builds a full JID from parts, normalizing each.
    pub fn new(local: Option<&str>, domain: &str, resource: &str) -> Result<FullJid, Error> {
        BareJid::new(local, domain)?.with_resource(resource)
    }

    /// The bare JID, sharing this JID's string (no allocation).
    pub fn bare(&self) -> BareJid {
        BareJid {
            s: self.s.clone(),
            at: self.at,
            end: self.slash,
        }
    }

    /// The bare JID as a string: a key for maps of [`BareJid`] without a clone.
    pub fn bare_str(&self) -> &str {
        &self.s[..usize::from(self.slash)]
    }

    /// The localpart, if any.
    pub fn node(&self) -> Option<&str> {
        (self.at > 0).then(|| &self.s[..usize::from(self.at)])
    }

    /// Same as [`FullJid::node`].
    pub fn local(&self) -> Option<&str> {
        self.node()
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        &self.s[domain_start(self.at)..usize::from(self.slash)]
    }

    /// The resourcepart.
    pub fn resource(&self) -> &str {
        &self.s[usize::from(self.slash) + 1..]
    }

    /// The whole normalized JID.
    pub fn as_str(&self) -> &str {
        &self.s
    }
}

impl Jid {
    /// Parses and normalizes a JID of either kind (RFC 7622 §3.1).
    pub fn parse(s: &str) -> Result<Jid, Error> {
        if let Some((at, slash)) = normalized_ascii(s) {
            let s: Arc<str> = Arc::from(s);
            return Ok(if usize::from(slash) < s.len() {
                Jid::Full(FullJid { s, at, slash })
            } else {
                Jid::Bare(BareJid { s, at, end: slash })
            });
        }
        let p = prepare(s)?;
        let (s, at, slash) = if p.unchanged {
            // The common case: one allocation, no joining.
            let at = p.local.as_ref().map_or(0, |l| l.len());
            let slash = at + usize::from(at > 0) + p.domain.len();
            (Arc::from(s), offset(at), offset(slash))
        } else {
            join(p.local.as_deref(), &p.domain, p.resource.as_deref())
        };
        Ok(match p.resource {
            Some(_) => Jid::Full(FullJid { s, at, slash }),
            None => Jid::Bare(BareJid { s, at, end: slash }),
        })
    }

    /// The localpart, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Jid::Bare(j) => j.node(),
            Jid::Full(j) => j.node(),
        }
    }

    /// Same as [`Jid::node`].
    pub fn local(&self) -> Option<&str> {
        self.node()
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        match self {
            Jid::Bare(j) => j.domain(),
            Jid::Full(j) => j.domain(),
        }
    }

    /// The resourcepart of a full JID.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Jid::Bare(_) => None,
            Jid::Full(j) => Some(j.resource()),
        }
    }

    /// The bare JID (a clone for a bare JID, a new string for a full one).
    pub fn to_bare(&self) -> BareJid {
        match self {
            Jid::Bare(j) => j.clone(),
            Jid::Full(j) => j.bare(),
        }
    }

    /// Whether this JID has no resourcepart.
    pub fn is_bare(&self) -> bool {
        matches!(self, Jid::Bare(_))
    }

    /// Whether this JID has a resourcepart.
    pub fn is_full(&self) -> bool {
        matches!(self, Jid::Full(_))
    }

    /// The whole normalized JID.
    pub fn as_str(&self) -> &str {
        match self {
            Jid::Bare(j) => j.as_str(),
            Jid::Full(j) => j.as_str(),
        }
    }
}

macro_rules! string_traits {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        /// Ordered as strings: a bare JID sorts right before its full JIDs.
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.as_str())
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }
    };
}

string_traits!(BareJid);
string_traits!(FullJid);

/// A JID as an attribute value (`to`, `from`): a full JID shares its string, so stamping a
/// stanza with it allocates nothing.
impl From<&FullJid> for Arc<str> {
    fn from(j: &FullJid) -> Arc<str> {
        j.s.clone()
    }
}

/// A bare JID as an attribute value: shares its string unless it was taken from a full JID.
impl From<&BareJid> for Arc<str> {
    fn from(j: &BareJid) -> Arc<str> {
        if usize::from(j.end) == j.s.len() {
            j.s.clone()
        } else {
            Arc::from(j.as_str())
        }
    }
}

/// Either kind as an attribute value, as [`FullJid`] and [`BareJid`].
impl From<&Jid> for Arc<str> {
    fn from(j: &Jid) -> Arc<str> {
        match j {
            Jid::Bare(b) => b.into(),
            Jid::Full(f) => f.into(),
        }
    }
}

/// Equality and hashing are the string's, so a `&str` ([`FullJid::bare_str`]) finds a
/// `BareJid` key without building one.
impl std::borrow::Borrow<str> for BareJid {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// `Jid` derives PartialEq/Eq/Hash (the variants hold different strings anyway) but orders by
// string too, so that sorted lists read naturally.
impl PartialOrd for Jid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered as strings, like [`BareJid`] and [`FullJid`].
impl Ord for Jid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({:?})", self.as_str())
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Jid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Jid, Error> {
        Jid::parse(s)
    }
}

impl From<BareJid> for Jid {
    fn from(j: BareJid) -> Jid {
        Jid::Bare(j)
    }
}

impl From<FullJid> for Jid {
    fn from(j: FullJid) -> Jid {
        Jid::Full(j)
    }
}

impl TryFrom<Jid> for BareJid {
    type Error = Error;
    fn try_from(j: Jid) -> Result<BareJid, Error> {
        match j {
            Jid::Bare(j) => Ok(j),
            Jid::Full(_) => Err(Error::NotBare),
        }
    }
}

impl TryFrom<Jid> for FullJid {
    type Error = Error;
    fn try_from(j: Jid) -> Result<FullJid, Error> {
        match j {
            Jid::Full(j) => Ok(j),
            Jid::Bare(_) => Err(Error::NotFull),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    fn norm(s: &str) -> String {
        Jid::parse(s).unwrap().to_string()
    }

    // simple: parts and accessors.

    #[test]
    fn simple_parts() {
        let j = FullJid::parse("juliet@example.com/balcony").unwrap();
        assert_eq!(j.node(), Some("juliet"));
        assert_eq!(j.local(), Some("juliet"));
        assert_eq!(j.domain(), "example.com");
        assert_eq!(j.resource(), "balcony");
        assert_eq!(j.bare().as_str(), "juliet@example.com");
        assert_eq!(j.bare().node(), Some("juliet"));
        assert_eq!(j.bare().domain(), "example.com");

        let b = BareJid::parse("example.com").unwrap();
        assert_eq!(b.node(), None);
        assert_eq!(b.domain(), "example.com");

        let f = FullJid::parse("example.com/a/b@c").unwrap();
        assert_eq!(f.node(), None);
        assert_eq!(f.domain(), "example.com");
        assert_eq!(f.resource(), "a/b@c");

        let j = Jid::parse("romeo@montague.example/orchard").unwrap();
        assert!(j.is_full());
        assert_eq!(j.resource(), Some("orchard"));
        assert_eq!(j.to_bare().as_str(), "romeo@montague.example");
        let j = Jid::parse("romeo@montague.example").unwrap();
        assert!(j.is_bare());
        assert_eq!(j.resource(), None);
        assert_eq!(j.domain(), "montague.example");
    }

    #[test]
    fn simple_kinds_are_enforced() {
        assert_eq!(BareJid::parse("a@b/c"), Err(Error::NotBare));
        assert_eq!(FullJid::parse("a@b"), Err(Error::NotFull));
        assert_eq!("a@b/c".parse::<Jid>().unwrap().as_str(), "a@b/c");
        assert!("a@b".parse::<BareJid>().is_ok());
        assert!("a@b/c".parse::<FullJid>().is_ok());
        let full: FullJid = Jid::parse("a@b/c").unwrap().try_into().unwrap();
        assert_eq!(BareJid::try_from(Jid::from(full)), Err(Error::NotBare));
        let bare = BareJid::parse("a@b").unwrap();
        assert_eq!(FullJid::try_from(Jid::from(bare)), Err(Error::NotFull));
    }

    #[test]
    fn simple_builders() {
        let b = BareJid::new(Some("Juliet"), "EXAMPLE.com.").unwrap();
        assert_eq!(b.as_str(), "juliet@example.com");
        let f = b.with_resource("Balcony").unwrap();
        assert_eq!(f.as_str(), "juliet@example.com/Balcony");
        assert_eq!(f.bare(), b);
        assert_eq!(
            BareJid::new(None, "example.com").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            FullJid::new(None, "Example.com", "x").unwrap().as_str(),
            "example.com/x"
        );
        assert_eq!(b.with_resource(""), Err(Error::EmptyPart(Part::Resource)));
        assert_eq!(
            BareJid::new(Some(""), "x"),
            Err(Error::EmptyPart(Part::Local))
        );
        assert_eq!(
            BareJid::new(Some("a@b"), "x"),
            Err(Error::Forbidden(Part::Local, '@'))
        );
    }

    // serialise: normalization and the canonical string form.

    #[test]
    fn serialise_normalizes_case() {
        assert_eq!(
            norm("Juliet@Example.COM/Balcony"),
            "juliet@example.com/Balcony"
        );
        assert_eq!(norm("EXAMPLE.COM"), "example.com");
        assert_eq!(norm("a@b/RESOURCE"), "a@b/RESOURCE");
        assert_eq!(nodeprep("ROMEO").unwrap(), "romeo");
        assert_eq!(nameprep("Example.COM.").unwrap(), "example.com");
    }

    #[test]
    fn serialise_idn_domains() {
        assert_eq!(norm("user@BÜCHER.example"), "user@bücher.example");
        assert_eq!(norm("user@xn--bcher-kva.example"), "user@bücher.example");
        assert_eq!(norm("user@XN--BCHER-KVA.example"), "user@bücher.example");
        assert_eq!(norm("bücher.example"), "bücher.example");
        // Ideographic full stop and fullwidth letters are mapped by UTS-46.
        assert_eq!(norm("user@ｅｘａｍｐｌｅ。com"), "user@example.com");
    }

    #[test]
    fn serialise_trailing_dot() {
        assert_eq!(norm("juliet@example.com./x"), "juliet@example.com/x");
        assert_eq!(norm("example.com."), "example.com");
        assert_eq!(Jid::parse("example.com.."), Err(Error::InvalidDomain));
        assert!(Jid::parse(".").is_err());
    }

    #[test]
    fn serialise_ip_literals() {
        assert_eq!(norm("juliet@[::1]/x"), "juliet@[::1]/x");
        assert_eq!(norm("[0:0:0:0:0:0:0:1]"), "[::1]");
        assert_eq!(norm("[2001:DB8::A]"), "[2001:db8::a]");
        assert_eq!(norm("a@192.0.2.1"), "a@192.0.2.1");
        assert_eq!(norm("192.0.2.1./r"), "192.0.2.1/r");
        assert_eq!(BareJid::parse("a@[::1]").unwrap().domain(), "[::1]");
    }

    #[test]
    fn serialise_unicode_localparts() {
        // Fullwidth → ASCII, then lowercase.
        assert_eq!(nodeprep("ＪＵＬＩＥＴ").unwrap(), "juliet");
        assert_eq!(nodeprep("ÅNGSTRÖM").unwrap(), "ångström");
        // NFC: e + combining acute → é.
        assert_eq!(nodeprep("cafe\u{301}").unwrap(), "caf\u{e9}");
        // Greek final sigma through whole-string lowercasing.
        assert_eq!(nodeprep("ΟΔΥΣΣΕΥΣ").unwrap(), "οδυσσευς");
        // ß is not case-folded to ss (UsernameCaseMapped uses toLowerCase).
        assert_eq!(nodeprep("straße").unwrap(), "straße");
        // Printable ASCII outside §3.3.1 is fine.
        assert_eq!(
            nodeprep("a.b-c_d+e!#$%*=?^`{|}~").unwrap(),
            "a.b-c_d+e!#$%*=?^`{|}~"
        );
    }

    #[test]
    fn serialise_resource_is_opaque() {
        assert_eq!(norm("a@b/ Mixed Case ☃ "), "a@b/ Mixed Case ☃ ");
        assert_eq!(norm("a@b/ＡＢ"), "a@b/ＡＢ");
        // NFC only.
        assert_eq!(norm("a@b/cafe\u{301}"), "a@b/caf\u{e9}");
        assert_eq!(resourceprep("Phone").unwrap(), "Phone");
    }

    #[test]
    fn serialise_display_debug() {
        let j = Jid::parse("A@B/C").unwrap();
        assert_eq!(j.to_string(), "a@b/C");
        assert_eq!(format!("{j:?}"), "Jid(\"a@b/C\")");
        assert_eq!(format!("{:?}", j.to_bare()), "BareJid(\"a@b\")");
        // Parsing the canonical form gives it back.
        for s in ["a@b/C", "bücher.example", "[::1]/x", "x@192.0.2.1"] {
            assert_eq!(norm(s), s);
        }
    }

    // invalid: empty parts, forbidden characters, lengths, bad domains.

    #[test]
    fn invalid_empty_parts() {
        assert_eq!(Jid::parse(""), Err(Error::Empty));
        assert_eq!(Jid::parse("@x"), Err(Error::EmptyPart(Part::Local)));
        assert_eq!(Jid::parse("x/"), Err(Error::EmptyPart(Part::Resource)));
        assert_eq!(Jid::parse("a@"), Err(Error::EmptyPart(Part::Domain)));
        assert_eq!(Jid::parse("a@/r"), Err(Error::EmptyPart(Part::Domain)));
        assert_eq!(Jid::parse("/r"), Err(Error::EmptyPart(Part::Domain)));
        assert_eq!(Jid::parse("@"), Err(Error::EmptyPart(Part::Local)));
        assert_eq!(nodeprep(""), Err(Error::EmptyPart(Part::Local)));
    }

    #[test]
    fn invalid_forbidden_local_characters() {
        // '@' ends the localpart, so "a@b@c" puts '@' in the domain instead.
        for c in ['"', '&', '\'', ':', '<', '>', '@'] {
            assert_eq!(
                nodeprep(&format!("a{c}b")),
                Err(Error::Forbidden(Part::Local, c))
            );
        }
        for c in ['"', '&', '\'', ':', '<', '>'] {
            assert_eq!(
                Jid::parse(&format!("a{c}b@example.com")),
                Err(Error::Forbidden(Part::Local, c)),
                "{c:?}"
            );
        }
        assert_eq!(nodeprep("a/b"), Err(Error::Forbidden(Part::Local, '/')));
        assert_eq!(Jid::parse("a@b@c"), Err(Error::InvalidDomain));
        // '/' starts the resource: "a/b@c" is domain "a", resource "b@c".
        assert_eq!(norm("a/b@c"), "a/b@c");
        // Spaces and controls, ASCII and not.
        for c in [
            ' ', '\t', '\n', '\0', '\u{7f}', '\u{85}', '\u{a0}', '\u{3000}', '\u{2028}',
        ] {
            let r = nodeprep(&format!("a{c}b"));
            assert!(
                matches!(r, Err(Error::Forbidden(Part::Local, _))),
                "{c:?}: {r:?}"
            );
        }
        // Invisible format characters, symbols, compatibility characters.
        for c in [
            '\u{200b}', '\u{200d}', '\u{feff}', '\u{ad}', '☃', '€', '©', 'ﬁ', '²', 'ℌ', '\u{e000}',
        ] {
            let r = nodeprep(&format!("a{c}b"));
            assert!(
                matches!(r, Err(Error::Forbidden(Part::Local, _))),
                "{c:?}: {r:?}"
            );
        }
    }

    #[test]
    fn invalid_resource_controls() {
        for c in ['\0', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert_eq!(
                Jid::parse(&format!("a@b/x{c}y")),
                Err(Error::Forbidden(Part::Resource, c))
            );
        }
    }

    #[test]
    fn invalid_domains() {
        for d in [
            "exa mple.com",
            "exa_mple.com",
            "-example.com",
            "example-.com",
            "example..com",
            ".example.com",
            "a\"b",
            "a<b",
            "[::1",
            "[not-an-ip]",
            "[fe80::1%eth0]",
            "1.2.3.999",
            "01.2.3.4",
            "1.2.3",
            "example.123",
            "xn--a.example",
        ] {
            assert_eq!(Jid::parse(d), Err(Error::InvalidDomain), "{d}");
        }
        // DNS lengths: a label over 63, a name over 253.
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(nameprep(&long_label), Err(Error::InvalidDomain));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert_eq!(nameprep(&long_name), Err(Error::InvalidDomain));
        assert!(nameprep(&vec!["abcdefghi"; 25].join(".")).is_ok());
    }

    #[test]
    fn invalid_over_long_parts() {
        let max = "a".repeat(MAX_PART_LEN);
        let over = "a".repeat(MAX_PART_LEN + 1);
        assert!(Jid::parse(&format!("{max}@example.com/{max}")).is_ok());
        assert_eq!(
            Jid::parse(&format!("{over}@example.com")),
            Err(Error::TooLong(Part::Local))
        );
        assert_eq!(
            Jid::parse(&format!("a@example.com/{over}")),
            Err(Error::TooLong(Part::Resource))
        );
        assert_eq!(
            Jid::parse(&"a".repeat(MAX_RAW_PART_LEN + 1)),
            Err(Error::TooLong(Part::Domain))
        );
        // Length is counted after preparation: 1023 fullwidth letters (3 bytes each) fit.
        let wide = "ａ".repeat(MAX_PART_LEN);
        assert_eq!(nodeprep(&wide).unwrap(), max);
        // ...and multi-byte characters count in bytes.
        assert_eq!(nodeprep(&"é".repeat(512)), Err(Error::TooLong(Part::Local)));
        assert_eq!(
            resourceprep(&"☃".repeat(342)),
            Err(Error::TooLong(Part::Resource))
        );
        // The longest JID still has offsets that fit.
        let j = FullJid::parse(&format!("{max}@{}/{max}", "[::1]")).unwrap();
        assert_eq!(j.node(), Some(max.as_str()));
        assert_eq!(j.resource(), max);
    }

    // map keys.

    #[test]
    fn map_keys_use_normalized_form() {
        let mut sessions: HashMap<BareJid, u32> = HashMap::new();
        sessions.insert(BareJid::parse("Juliet@Example.com").unwrap(), 1);
        let key = FullJid::parse("juliet@EXAMPLE.COM./balcony")
            .unwrap()
            .bare();
        assert_eq!(sessions.get(&key), Some(&1));
        assert_eq!(
            sessions.get(&BareJid::parse("juliet@xn--bcher-kva.example").unwrap()),
            None
        );

        let mut by_jid: HashMap<Jid, &str> = HashMap::new();
        by_jid.insert(Jid::parse("a@b/c").unwrap(), "full");
        by_jid.insert(Jid::parse("a@b").unwrap(), "bare");
        assert_eq!(by_jid[&Jid::parse("A@B/c").unwrap()], "full");
        assert_eq!(by_jid[&Jid::parse("A@B").unwrap()], "bare");
        assert!(!by_jid.contains_key(&Jid::parse("a@b/C").unwrap()));

        // A clone shares the string.
        let a = BareJid::parse("a@b").unwrap();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.s, &b.s));

        let sorted: Vec<String> = ["b@x", "a@x/2", "a@x", "a@x/1"]
            .iter()
            .map(|s| Jid::parse(s).unwrap())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|j| j.to_string())
            .collect();
        assert_eq!(sorted, ["a@x", "a@x/1", "a@x/2", "b@x"]);
    }

    #[test]
    fn bare_shares_the_full_jids_string() {
        let f = FullJid::parse("juliet@example.com/balcony").unwrap();
        let b = f.bare();
        assert!(Arc::ptr_eq(&f.s, &b.s));
        assert_eq!(b.as_str(), "juliet@example.com");
        assert_eq!(b.domain(), "example.com");
        assert_eq!(b.to_string(), "juliet@example.com");
        assert_eq!(format!("{b:?}"), "BareJid(\"juliet@example.com\")");
        assert_eq!(b, BareJid::parse("juliet@example.com").unwrap());
        assert_eq!(
            b.with_resource("x").unwrap().as_str(),
            "juliet@example.com/x"
        );
        // As attribute values: shared where the string is exactly the JID.
        assert!(Arc::ptr_eq(&Arc::<str>::from(&f), &f.s));
        assert_eq!(&*Arc::<str>::from(&b), "juliet@example.com");
        let own = BareJid::parse("juliet@example.com").unwrap();
        assert!(Arc::ptr_eq(&Arc::<str>::from(&own), &own.s));
        assert_eq!(&*Arc::<str>::from(&Jid::Full(f.clone())), f.as_str());
        let host = FullJid::parse("example.com/r").unwrap().bare();
        assert_eq!((host.node(), host.domain()), (None, "example.com"));
        // A map of bare JIDs is searched by the string, equal however the key was made.
        let mut m: HashMap<BareJid, u8> = HashMap::new();
        m.insert(b, 1);
        assert_eq!(m.get(f.bare_str()), Some(&1));
        assert_eq!(
            m.get(&BareJid::parse("Juliet@Example.com").unwrap()),
            Some(&1)
        );
        assert_eq!(m.get("juliet@example.com/balcony"), None);
    }

    /// Inputs for the fast paths: ASCII with and without uppercase, non-ASCII, IP
    /// addresses, A-labels, trailing dots, bad hyphens and characters, and the lengths
    /// around the DNS limits.
    fn domain_cases() -> Vec<String> {
        let mut v: Vec<String> = [
            "example.com",
            "Example.COM",
            "localhost",
            "LOCALHOST",
            "a",
            "A",
            "a-b.c",
            "a--b.c",
            "ab--c.d",
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.example",
            "xn--a.example",
            "xn--.x",
            "ab--.x",
            "-a.b",
            "a-.b",
            "a.-b",
            "a.b-",
            "a..b",
            ".a",
            "a.",
            "a.b.",
            ".",
            "..",
            "1.2.3.4",
            "1.2.3.999",
            "01.2.3.4",
            "1.2.3",
            "a.123",
            "123.a",
            "123",
            "0",
            "a.0x",
            "0x.0",
            "a_b",
            "a b",
            "a/b",
            "a@b",
            "a\"b",
            "a*b",
            "[::1]",
            "[::1",
            "bücher.example",
            "BÜCHER.example",
            "ｅｘａｍｐｌｅ。com",
            "a。b",
            "ß.de",
            "ǅ.x",
            "\u{0}",
            "a\u{7f}",
            "a\tb",
            "é",
            "-",
            "--",
            "a-",
            "1-2.x3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [61, 62, 63, 64, 65] {
            v.push(format!("{}.x", "a".repeat(n)));
            v.push(format!("x.{}", "B".repeat(n)));
        }
        for total in 250..=256 {
            // Labels of 9 and one shorter label: total bytes exactly `total`.
            let mut d = vec!["abcdefghi"; total / 10].join(".");
            while d.len() < total {
                if d.len() + 2 <= total {
                    d.push_str(".a");
                } else {
                    d.push('b');
                }
            }
            v.push(d.clone());
            v.push(format!("{d}."));
        }
        v
    }

    #[test]
    fn domain_fast_path_agrees_with_uts46() {
        let mut cases = domain_cases();
        // Every string of up to 4 characters from an alphabet that reaches each branch.
        let alphabet = ['a', 'X', '0', '9', '-', '.', 'n', '_', 'é'];
        let mut level = vec![String::new()];
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            cases.extend(level.iter().cloned());
        }
        let mut fast = 0;
        for d in &cases {
            let full = prep_domain_full(d);
            if let Some(f) = ldh_domain(d) {
                fast += 1;
                assert_eq!(Ok(f.clone()), full, "{d:?}");
                assert_eq!(matches!(f, Cow::Borrowed(_)), f == d.as_str(), "{d:?}");
            }
            assert_eq!(prep_domain(d), full, "{d:?}");
        }
        assert!(fast > 1000, "the fast path is taken: {fast}");
    }

    #[test]
    fn resource_and_jid_fast_paths_agree_with_the_full_path() {
        // NFC (the full path) leaves ASCII alone, so both agree on every ASCII resource.
        for r in ["Phone", "a b", "x/y@z", "~!#", "\u{7f}", "a\u{1}", "", " "] {
            let full = if r.chars().any(char::is_control) || r.is_empty() {
                prep_resource(r).map(Cow::into_owned)
            } else {
                Ok(NFC.normalize(r).into_owned())
            };
            assert_eq!(prep_resource(r).map(Cow::into_owned), full, "{r:?}");
        }
        // The one-pass check agrees with preparing the parts, on JIDs made of every domain
        // case and a set of localparts and resourcepart.
        let mut fast = 0;
        let locals = [
            None,
            Some("juliet"),
            Some("Juliet"),
            Some("a.b-c_d+e!#$%*=?^`{|}~"),
            Some("a\"b"),
            Some("a&b"),
            Some("a'b"),
            Some("a:b"),
            Some("a<b"),
            Some("a>b"),
            Some(""),
            Some("a b"),
            Some("a\u{7f}"),
            Some("é"),
            Some("ＪＵＬＩＥＴ"),
        ];
        let resources = [
            None,
            Some("balcony"),
            Some("Mixed Case ~!"),
            Some("a/b@c"),
            Some(""),
            Some("x\ty"),
            Some("x\u{7f}"),
            Some("x\u{1f}"),
            Some("☃"),
            Some("cafe\u{301}"),
        ];
        for d in domain_cases() {
            for l in locals {
                for r in resources {
                    let mut jid = String::new();
                    if let Some(l) = l {
                        jid.push_str(l);
                        jid.push('@');
                    }
                    jid.push_str(&d);
                    if let Some(r) = r {
                        jid.push('/');
                        jid.push_str(r);
                    }
                    let full = prepare(&jid)
                        .map(|p| join(p.local.as_deref(), &p.domain, p.resource.as_deref()));
                    if let Some((at, slash)) = normalized_ascii(&jid) {
                        fast += 1;
                        let (joined, a, sl) = full.clone().unwrap();
                        assert_eq!((&*joined, a, sl), (jid.as_str(), at, slash), "{jid:?}");
                    }
                    let parsed = Jid::parse(&jid);
                    assert_eq!(
                        parsed.as_ref().map(Jid::as_str).map_err(Clone::clone),
                        full.as_ref().map(|f| &*f.0).map_err(Clone::clone),
                        "{jid:?}"
                    );
                }
            }
        }
        assert!(fast > 100, "the one-pass check is used: {fast}");
        // A JID stored as given (one allocation) is the one joining the parts would give.
        for s in [
            "juliet@example.com/balcony",
            "Juliet@example.com/balcony",
            "juliet@EXAMPLE.com",
            "example.com",
            "example.com/r",
            "a@b/c@d/e",
            "a@bücher.example/ü",
            "a@[::1]/x",
            "a@example.com./x",
            "a@b/cafe\u{301}",
            "ＪＵＬＩＥＴ@x/y",
            "a@1.2.3.4",
        ] {
            let p = prepare(s).unwrap();
            let joined = join(p.local.as_deref(), &p.domain, p.resource.as_deref());
            let jid = Jid::parse(s).unwrap();
            assert_eq!(jid.as_str(), &*joined.0, "{s}");
            assert_eq!(p.unchanged, jid.as_str() == s, "{s}");
            let (at, slash) = match &jid {
                Jid::Bare(b) => (b.at, b.end),
                Jid::Full(f) => (f.at, f.slash),
            };
            assert_eq!((at, slash), (joined.1, joined.2), "{s}");
        }
    }

    #[test]
    fn compact() {
        use std::mem::size_of;
        // One pointer + length, and the offsets in what would be padding anyway.
        assert_eq!(size_of::<BareJid>(), size_of::<(Arc<str>, u32)>());
        assert_eq!(size_of::<FullJid>(), size_of::<(Arc<str>, u32)>());
        assert!(size_of::<Jid>() <= size_of::<FullJid>() + size_of::<usize>());
    }
}
