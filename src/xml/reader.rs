//! `StreamReader`: framer + parser, the one thing a connection task uses to read XML
//! (RFC 6120 §4.7 stream header, §4.4 closing, §4.9 stream errors, §11 XML usage).
//!
//! The framer cuts frames; each header is parsed and checked here, and each top-level element
//! is parsed in the namespace scope of the current header. Policy on the header's *content*
//! (`to` → host-unknown, `version` → unsupported-version, the default namespace →
//! invalid-namespace) belongs to the connection code, which gets it all in [`StreamHeader`].

use super::error::{StreamCondition, StreamError};
use super::framer::{Frame, Framer, Limits};
use super::parse::{self, Scope};
use super::Element;
use crate::ns;

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
    /// The parser's buffer for the wrapped frame, kept from one stanza to the next.
    text: String,
    /// Message framing (RFC 7395, XMPP over WebSocket) rather than a byte stream.
    messages: bool,
    /// In message framing: a whole message was pushed and waits to be read.
    message_ready: bool,
}

/// A wrapped-frame buffer larger than this (after a large stanza) is not kept.
const KEEP_TEXT: usize = 4096;

impl StreamReader {
    /// A reader expecting a stream header.
    pub fn new(limits: Limits) -> StreamReader {
        StreamReader {
            framer: Framer::new(limits),
            scope: Scope::default(),
            failed: None,
            text: String::new(),
            messages: false,
            message_ready: false,
        }
    }

    /// A reader for XMPP over WebSocket (RFC 7395 §3.3): each message is one complete
    /// element, pushed with [`StreamReader::push`] and ended with
    /// [`StreamReader::end_message`]. `<open/>` and `<close/>` in the framing namespace
    /// are the stream's header and end; stanzas are read in the scope of a client stream
    /// (a message declares its namespaces, and one that leaves out `jabber:client` gets it).
    /// The stanza size and depth limits are the byte stream's.
    pub fn for_messages(limits: Limits) -> StreamReader {
        let mut framer = Framer::new(limits);
        framer.skip_header();
        StreamReader {
            framer,
            scope: Scope::client(),
            failed: None,
            text: String::new(),
            messages: true,
            message_ready: false,
        }
    }

    /// True for a reader of messages (XMPP over WebSocket).
    pub fn is_messages(&self) -> bool {
        self.messages
    }

    /// In message framing: the bytes pushed since the last message are a whole message.
    pub fn end_message(&mut self) {
        self.message_ready = true;
    }

    /// The transport under the stream failed in a way that deserves a stream error: the
    /// reader yields it from now on.
    pub fn fail(&mut self, err: StreamError) {
        if self.failed.is_none() {
            self.failed = Some(err);
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
        if self.messages {
            return self.read_message();
        }
        let event = match self.framer.next()? {
            None => return Ok(None),
            Some(Frame::Header { decl, tag }) => {
                let parsed = parse::parse_header(decl, tag)?;
                // RFC 6120 §4.8: the header is `stream` in the streams namespace. A wrong
                // namespace, or none, or a stanza sent in its place, is `invalid-namespace`
                // (§4.9.3.10; Prosody does the same). The right namespace with another local
                // name is well-formed XML, so `not-well-formed` (§4.9.3.13: breaks XML or
                // XML-Names) would be untrue; it is XML we cannot process: `bad-format`
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
                let parsed = parse::parse_element_with(&mut self.text, &self.scope, frame);
                if self.text.capacity() > KEEP_TEXT {
                    self.text = String::new();
                }
                Event::Element(parsed?)
            }
            Some(Frame::Close) => Event::Close,
        };
        Ok(Some(event))
    }

    /// One message of XMPP over WebSocket: exactly one element (RFC 7395 §3.3.3).
    fn read_message(&mut self) -> Result<Option<Event>, StreamError> {
        if !self.message_ready {
            return Ok(None);
        }
        self.message_ready = false;
        let element = match self.framer.next()? {
            Some(Frame::Element(frame)) => {
                let parsed = parse::parse_element_with(&mut self.text, &self.scope, frame);
                if self.text.capacity() > KEEP_TEXT {
                    self.text = String::new();
                }
                parsed?
            }
            None => {
                // Whitespace alone carries nothing (a keepalive, as on a byte stream).
                if !self.framer.has_buffered() {
                    return Ok(None);
                }
                return Err(StreamError::with_text(
                    StreamCondition::NotWellFormed,
                    "a WebSocket message must hold one complete element",
                ));
            }
            Some(_) => {
                return Err(StreamError::with_text(
                    StreamCondition::NotWellFormed,
                    "a stream header or end in a WebSocket message",
                ))
            }
        };
        if self.framer.has_buffered() {
            return Err(StreamError::with_text(
                StreamCondition::NotWellFormed,
                "a WebSocket message must hold only one element",
            ));
        }
        if element.ns != ns::FRAMING {
            return Ok(Some(Event::Element(element)));
        }
        match element.name.as_str() {
            "open" => {
                let attr = |n: &str| element.attr(n).map(str::to_owned);
                Ok(Some(Event::Header(StreamHeader {
                    to: attr("to"),
                    from: attr("from"),
                    id: attr("id"),
                    version: attr("version"),
                    lang: attr("xml:lang"),
                    // RFC 7395 §3.3.1: stanzas carry `jabber:client` themselves.
                    default_ns: Some(ns::CLIENT.to_owned()),
                })))
            }
            "close" => Ok(Some(Event::Close)),
            _ => Err(StreamError::with_text(
                StreamCondition::UnsupportedStanzaType,
                "unknown element in the framing namespace",
            )),
        }
    }

    /// Stream restart (after STARTTLS and after SASL success): forget the header, expect a
    /// new one. Buffered bytes are kept; the caller checks [`StreamReader::has_buffered`]
    /// before a TLS handshake. In message framing there is nothing to forget: the next
    /// `<open/>` is a message like any other.
    pub fn reset(&mut self) {
        if self.messages {
            return;
        }
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
        self.text = String::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

    /// Pushes `chunks` in turn, collecting events until the first error.
    fn events(chunks: &[&[u8]]) -> (Vec<Event>, Option<StreamError>) {
        let mut r = StreamReader::new(Limits::default());
        let mut out = Vec::new();
        for c in chunks {
            r.push(c);
            loop {
                match r.next() {
                    Ok(Some(e)) => out.push(e),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    fn condition(input: &str) -> Option<StreamCondition> {
        events(&[input.as_bytes()]).1.map(|e| e.condition)
    }

    #[test]
    fn reads_a_client_stream() {
        let input = format!(
            "<?xml version='1.0'?>{HEADER} <stream:features/>\n<message to='a@b'>\
             <body>hi &amp; bye</body></message> <iq xmlns='jabber:server' id='1'/>\
             </stream:stream>"
        );
        let (ev, err) = events(&[input.as_bytes()]);
        assert_eq!(err, None);
        assert_eq!(
            ev,
            [
                Event::Header(StreamHeader {
                    to: Some("example.org".into()),
                    version: Some("1.0".into()),
                    default_ns: Some(ns::CLIENT.into()),
                    ..StreamHeader::default()
                }),
                Event::Element(Element::new("features", ns::STREAM)),
                Event::Element(
                    Element::new("message", ns::CLIENT)
                        .with_attr("to", "a@b")
                        .with_child(Element::new("body", ns::CLIENT).with_text("hi & bye"))
                ),
                // The connection code judges a stanza in the wrong namespace; the reader
                // reports it faithfully.
                Event::Element(Element::new("iq", ns::SERVER).with_attr("id", "1")),
                Event::Close,
            ]
        );
        // The same events however the bytes arrive.
        let bytes = input.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(events(&[a, b]), (ev.clone(), None), "split at {i}");
        }
    }

    #[test]
    fn the_header_must_be_stream_in_the_streams_namespace() {
        use StreamCondition::*;
        let ok = "<s:stream xmlns:s='http://etherx.jabber.org/streams'>";
        assert_eq!(condition(ok), None);
        for (header, expected) in [
            (
                "<stream:stream xmlns:stream='http://etherx.jabber.org/streams/'>",
                InvalidNamespace,
            ),
            (
                "<stream:stream xmlns:stream='jabber:client'>",
                InvalidNamespace,
            ),
            ("<stream xmlns='jabber:client'>", InvalidNamespace),
            ("<stream>", InvalidNamespace),
            ("<iq xmlns='jabber:client' type='get'>", InvalidNamespace),
            (
                "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
                BadFormat,
            ),
            ("<stream:stream>", BadNamespacePrefix),
            (
                "<stream:stream xmlns:stream='x' a='1' a='2'>",
                NotWellFormed,
            ),
        ] {
            assert_eq!(condition(header), Some(expected), "{header}");
        }
    }

    #[test]
    fn errors_carry_the_right_condition() {
        use StreamCondition::*;
        for (body, expected) in [
            ("<message><!-- c --></message>", RestrictedXml),
            ("<message>&ent;</message>", RestrictedXml),
            ("<x:message/>", BadNamespacePrefix),
            ("<message></iq>", NotWellFormed),
            ("<message>\u{1}</message>", NotWellFormed),
            ("text", BadFormat),
            ("</stream:stream2>", NotWellFormed),
        ] {
            assert_eq!(
                condition(&format!("{HEADER}{body}")),
                Some(expected),
                "{body}"
            );
        }
        let decl = format!("<?xml version='1.0' encoding='ISO-8859-1'?>{HEADER}");
        assert_eq!(condition(&decl), Some(UnsupportedEncoding));
        let mut bad_utf8 = HEADER.as_bytes().to_vec();
        bad_utf8.extend_from_slice(b"<message>\xFF</message>");
        assert_eq!(
            events(&[&bad_utf8]).1.map(|e| e.condition),
            Some(NotWellFormed)
        );
        let mut r = StreamReader::new(Limits {
            max_stanza: 1024,
            max_depth: 2,
        });
        r.push(format!("{HEADER}<a><b><c/></b></a>").as_bytes());
        assert!(r.next().unwrap().is_some());
        let e = r.next().unwrap_err();
        assert_eq!(e.condition, PolicyViolation);
        // The reader is dead after an error.
        r.reset();
        r.push(HEADER.as_bytes());
        assert_eq!(r.next(), Err(e));
    }

    #[test]
    fn restart_after_sasl_success_takes_the_new_header() {
        let mut r = StreamReader::new(Limits::default());
        r.push(
            format!("{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AA==</auth>")
                .as_bytes(),
        );
        assert!(matches!(r.next(), Ok(Some(Event::Header(_)))));
        assert!(matches!(r.next(), Ok(Some(Event::Element(_)))));
        assert_eq!(r.next(), Ok(None));
        r.reset();
        // The new header declares other namespaces; stanzas follow them, not the old ones.
        r.push(
            b"<?xml version='1.0'?><s:stream xmlns='jabber:server' \
              xmlns:s='http://etherx.jabber.org/streams'><s:features/><iq/>",
        );
        let Ok(Some(Event::Header(h))) = r.next() else {
            panic!("no header")
        };
        assert_eq!(h.default_ns.as_deref(), Some(ns::SERVER));
        assert_eq!(
            r.next(),
            Ok(Some(Event::Element(Element::new("features", ns::STREAM))))
        );
        assert_eq!(
            r.next(),
            Ok(Some(Event::Element(Element::new("iq", ns::SERVER))))
        );
        // The old `stream` prefix is gone.
        r.push(b"<stream:features/>");
        assert_eq!(
            r.next().unwrap_err().condition,
            StreamCondition::BadNamespacePrefix
        );
    }

    /// Reads WebSocket messages (RFC 7395) one at a time.
    fn messages(msgs: &[&str], limits: Limits) -> Vec<Result<Option<Event>, StreamError>> {
        let mut r = StreamReader::for_messages(limits);
        msgs.iter()
            .map(|m| {
                r.push(m.as_bytes());
                r.end_message();
                let e = r.next();
                // One message, one event at most.
                if let Ok(Some(_)) = e {
                    assert_eq!(r.next(), Ok(None));
                }
                e
            })
            .collect()
    }

    #[test]
    fn websocket_messages_open_stanzas_and_close() {
        let got = messages(
            &[
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' \
                 version='1.0' xml:lang='de'/>",
                " ",
                "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>",
                // Lenient: a stanza that leaves out jabber:client, a stream-level element
                // without its prefix declared.
                "<presence/>",
                "<stream:error><x/></stream:error>",
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'></open>",
                "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            ],
            Limits::default(),
        );
        assert_eq!(
            got[0],
            Ok(Some(Event::Header(StreamHeader {
                to: Some("example.org".into()),
                version: Some("1.0".into()),
                lang: Some("de".into()),
                default_ns: Some(ns::CLIENT.into()),
                ..StreamHeader::default()
            })))
        );
        assert_eq!(got[1], Ok(None));
        assert_eq!(
            got[2],
            Ok(Some(Event::Element(
                Element::new("message", ns::CLIENT)
                    .with_attr("to", "a@b")
                    .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
            )))
        );
        assert_eq!(
            got[3],
            Ok(Some(Event::Element(Element::new("presence", ns::CLIENT))))
        );
        assert!(matches!(&got[4], Ok(Some(Event::Element(e))) if e.ns == ns::STREAM));
        assert!(matches!(got[5], Ok(Some(Event::Header(_)))));
        assert_eq!(got[6], Ok(Some(Event::Close)));
    }

    #[test]
    fn a_websocket_message_is_one_complete_element_within_the_limits() {
        use StreamCondition::*;
        let limits = Limits {
            max_stanza: 64,
            max_depth: 2,
        };
        for (msg, expected) in [
            ("<message/><message/>", NotWellFormed),
            ("<message>", NotWellFormed),
            ("</message>", NotWellFormed),
            ("text", BadFormat),
            ("<message><!-- c --></message>", RestrictedXml),
            ("<a><b><c/></b></a>", PolicyViolation),
            (
                &*format!("<message>{}</message>", "x".repeat(64)),
                PolicyViolation,
            ),
            (
                "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                NotWellFormed,
            ),
            (
                "<nope xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
                UnsupportedStanzaType,
            ),
        ] {
            let got = messages(&[msg], limits);
            assert_eq!(
                got[0].as_ref().map_err(|e| e.condition),
                Err(expected),
                "{msg}"
            );
        }
        // Nothing is read before the message ends.
        let mut r = StreamReader::for_messages(limits);
        r.push(b"<presence/>");
        assert_eq!(r.next(), Ok(None));
        r.end_message();
        assert!(matches!(r.next(), Ok(Some(Event::Element(_)))));
        // A restart changes nothing in message framing.
        r.reset();
        r.push(b"<iq/>");
        r.end_message();
        assert!(matches!(r.next(), Ok(Some(Event::Element(_)))));
        r.fail(StreamError::new(PolicyViolation));
        assert_eq!(r.next().unwrap_err().condition, PolicyViolation);
    }

    #[test]
    fn pipelined_bytes_after_starttls_are_visible() {
        let mut r = StreamReader::new(Limits::default());
        r.push(
            format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get'/>")
                .as_bytes(),
        );
        assert!(matches!(r.next(), Ok(Some(Event::Header(_)))));
        assert!(matches!(r.next(), Ok(Some(Event::Element(e))) if e.name == "starttls"));
        r.reset();
        assert!(
            r.has_buffered(),
            "injected plaintext must be noticed before the handshake"
        );

        let mut r = StreamReader::new(Limits::default());
        r.push(
            format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\r\n").as_bytes(),
        );
        assert!(matches!(r.next(), Ok(Some(Event::Header(_)))));
        assert!(matches!(r.next(), Ok(Some(Event::Element(_)))));
        r.reset();
        assert!(!r.has_buffered());
        r.shrink();
    }
}
