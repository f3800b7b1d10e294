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
