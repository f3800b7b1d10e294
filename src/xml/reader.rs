//! `StreamReader`: framer + parser, the one thing a connection task uses to read XML.
//!
//! STUB: the API is fixed; the implementation is being written.

use super::framer::Limits;
use super::Element;
use crate::stanza::error::StreamError;

/// The opening `<stream:stream …>` tag, with what the server needs from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// The default namespace (`xmlns`), normally `jabber:client`.
    pub default_ns: Option<String>,
}

/// What the reader yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A stream header (at the start, and after each reset).
    Header(StreamHeader),
    /// A complete top-level element.
    Element(Element),
    /// `</stream:stream>`.
    Close,
}

/// Framer + parser. Feed bytes with [`StreamReader::push`], take events with
/// [`StreamReader::next`]; whitespace between top-level elements is a keepalive and yields
/// nothing.
pub struct StreamReader {
    _limits: Limits,
}

impl StreamReader {
    pub fn new(limits: Limits) -> StreamReader {
        StreamReader { _limits: limits }
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, _bytes: &[u8]) {}

    /// The next complete event, `Ok(None)` if more bytes are needed, or the stream error that
    /// the input deserves (not-well-formed, restricted-xml, policy-violation, invalid-namespace,
    /// bad-namespace-prefix, unsupported-encoding …). After an error the reader is unusable.
    pub fn next(&mut self) -> Result<Option<Event>, StreamError> {
        Ok(None)
    }

    /// Stream restart (after STARTTLS and after SASL success): forget the header, expect a
    /// new one. Buffered bytes are kept; the caller checks [`StreamReader::has_buffered`]
    /// before a TLS handshake.
    pub fn reset(&mut self) {}

    /// True if bytes were pushed that no event has consumed yet.
    pub fn has_buffered(&self) -> bool {
        false
    }

    /// Releases buffer memory while the connection is idle.
    pub fn shrink(&mut self) {}
}
