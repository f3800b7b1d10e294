//! `StreamReader`: framer + parser, the one thing a connection task uses to read XML
//! (RFC 6120 §4.7 stream header, §4.4 closing, §4.9 stream errors, §11 XML usage).
//!
//! The framer cuts frames; each header is parsed and checked here, and each top-level element
//! is parsed in the namespace scope of the current header. Policy on the header's *content*
//! (`to` → host-unknown, `version` → unsupported-version, the default namespace →
//! invalid-namespace) belongs to the connection code, which gets it all in [`StreamHeader`].

use super::framer::{Frame, Framer, Limits};
use super::parse::{self, Scope};
use super::Element;
use crate::ns;
use crate::stanza::error::{StreamCondition, StreamError};

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
#[derive(Debug)]
pub struct StreamReader {
    framer: Framer,
    /// The current header's namespace declarations.
    scope: Scope,
    /// After an error the reader is dead and repeats it.
    failed: Option<StreamError>,
}

impl StreamReader {
    /// A reader expecting a stream header.
    pub fn new(limits: Limits) -> StreamReader {
        StreamReader {
            framer: Framer::new(limits),
            scope: Scope::default(),
            failed: None,
        }
    }

    /// Appends bytes read from the socket. Take every event with [`StreamReader::next`]
    /// (until `Ok(None)`) before pushing more: the buffer then holds at most one top-level
    /// element and one read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    /// The next complete event, `Ok(None)` if more bytes are needed, or the stream error that
    /// the input deserves (not-well-formed, restricted-xml, policy-violation, invalid-namespace,
    /// bad-namespace-prefix, unsupported-encoding …). After an error the reader is unusable.
    /// After [`Event::Close`] it yields nothing more.
    // Not `Iterator::next`: it is fallible and `None` only means "not yet".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let event = match self.read() {
            Ok(event) => event,
            Err(e) => {
                self.failed = Some(e.clone());
                return Err(e);
            }
        };
        Ok(event)
    }

    fn read(&mut self) -> Result<Option<Event>, StreamError> {
        let event = match self.framer.next()? {
            None => return Ok(None),
            Some(Frame::Header { decl, tag }) => {
                let parsed = parse::parse_header(decl, tag)?;
                // RFC 6120 §4.8 and §4.9.3.10: the header is `stream` in the streams namespace.
                // A wrong namespace (or none, or a stanza sent in its place) is
                // invalid-namespace, as Prosody does. The right namespace with another local
                // name is still well-formed XML, so not `not-well-formed` (§4.9.3.13), and no
                // namespace is wrong either: it is XML we cannot process, `bad-format`
                // (§4.9.3.1).
                if parsed.ns != ns::STREAM {
                    return Err(StreamError::with_text(
                        StreamCondition::InvalidNamespace,
                        "the stream header is not in the streams namespace",
                    ));
                }
                if parsed.name != "stream" {
                    return Err(StreamError::with_text(
                        StreamCondition::BadFormat,
                        "the stream header is not <stream>",
                    ));
                }
                self.scope = parsed.scope;
                Event::Header(parsed.header)
            }
            Some(Frame::Element(frame)) => {
                Event::Element(parse::parse_element(&self.scope, frame)?)
            }
            Some(Frame::Close) => Event::Close,
        };
        Ok(Some(event))
    }

    /// Stream restart (after STARTTLS and after SASL success): forget the header, expect a
    /// new one. Buffered bytes are kept; the caller checks [`StreamReader::has_buffered`]
    /// before a TLS handshake.
    pub fn reset(&mut self) {
        self.framer.reset();
        self.scope = Scope::default();
    }

    /// True if bytes were pushed that no event has consumed yet. Whitespace (a keepalive)
    /// does not count.
    pub fn has_buffered(&self) -> bool {
        self.framer.has_buffered()
    }

    /// Releases buffer memory while the connection is idle.
    pub fn shrink(&mut self) {
        self.framer.shrink();
    }
}
