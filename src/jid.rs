//! JIDs per RFC 7622: parsing, normalization and compact types usable as map keys.
//!
//! STUB: the API is fixed; the implementation is being written.

use std::fmt;

/// Why a string is not a valid JID; becomes `jid-malformed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    Empty,
    Malformed(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("empty JID"),
            Error::Malformed(why) => write!(f, "malformed JID: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A bare JID `[localpart@]domainpart`, normalized.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BareJid {
    s: Box<str>,
}

/// A full JID `[localpart@]domainpart/resourcepart`, normalized.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FullJid {
    s: Box<str>,
}

/// Either kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Jid {
    Bare(BareJid),
    Full(FullJid),
}

// TEMPORARY minimal implementation until the real one lands from the `auth` branch.
impl BareJid {
    pub fn parse(s: &str) -> Result<BareJid, Error> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        if s.contains('/') {
            return Err(Error::Malformed("resource"));
        }
        Ok(BareJid {
            s: s.to_lowercase().into(),
        })
    }
    pub fn new(local: Option<&str>, domain: &str) -> Result<BareJid, Error> {
        match local {
            Some(l) => BareJid::parse(&format!("{l}@{domain}")),
            None => BareJid::parse(domain),
        }
    }
    pub fn node(&self) -> Option<&str> {
        self.s.split_once('@').map(|(l, _)| l)
    }
    pub fn domain(&self) -> &str {
        self.s.split_once('@').map(|(_, d)| d).unwrap_or(&self.s)
    }
    pub fn with_resource(&self, r: &str) -> Result<FullJid, Error> {
        if r.is_empty() {
            return Err(Error::Empty);
        }
        Ok(FullJid {
            s: format!("{}/{r}", self.s).into(),
        })
    }
    pub fn as_str(&self) -> &str {
        &self.s
    }
}
impl FullJid {
    pub fn bare(&self) -> BareJid {
        BareJid {
            s: self.s.split_once('/').unwrap().0.into(),
        }
    }
    pub fn resource(&self) -> &str {
        self.s.split_once('/').unwrap().1
    }
    pub fn as_str(&self) -> &str {
        &self.s
    }
}
impl Jid {
    pub fn parse(s: &str) -> Result<Jid, Error> {
        match s.split_once('/') {
            Some((b, r)) => Ok(Jid::Full(BareJid::parse(b)?.with_resource(r)?)),
            None => Ok(Jid::Bare(BareJid::parse(s)?)),
        }
    }
}
impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}
impl fmt::Display for FullJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}
pub fn nodeprep(s: &str) -> Result<String, Error> {
    Ok(s.to_lowercase())
}
pub fn nameprep(s: &str) -> Result<String, Error> {
    Ok(s.to_lowercase())
}
