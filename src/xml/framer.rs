//! Sans-IO framing of an XMPP stream (RFC 6120 §4, §11): cuts the byte stream into the stream
//! header, complete top-level (depth-1) elements, and the closing `</stream:stream>`.
//!
//! roxmltree needs whole documents and a stream never ends, so this scanner finds where each
//! top-level element ends, without building anything. It tracks just enough XML to do that
//! (tags, quoted attribute values, CDATA sections, entity references, depth) and enforces what
//! RFC 6120 §11.1 forbids (comments, processing instructions, DTDs, entity references other
//! than the predefined ones → `restricted-xml`) and our limits (`policy-violation`).
//!
//! The scanner keeps its state between pushes and never looks at a byte twice, so a large
//! stanza arriving in small reads costs linear time. Each error is raised at a position fixed by
//! the input alone, so however the input is split, the same frames and the same error come out.

use super::error::{StreamCondition, StreamError};
use memchr::{memchr, memchr2, memchr3};
use std::fmt;

/// Hard limits enforced while framing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest top-level element in bytes (default 256 KiB). The stream header (with its XML
    /// declaration) is held to the same limit.
    pub max_stanza: usize,
    /// Deepest nesting inside a top-level element (the element itself is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_stanza: 256 * 1024,
            max_depth: 32,
        }
    }
}

/// One piece of the stream. It borrows the framer's buffer until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The stream header: the XML declaration if one came first, and the opening tag
    /// (`<stream:stream …>`, with any prefix).
    Header {
        decl: Option<&'a [u8]>,
        tag: &'a [u8],
    },
    /// A complete top-level element, from its `<` to its last `>`.
    Element(&'a [u8]),
    /// The closing tag of the stream; its name matched the header's.
    Close,
}

/// Why the framer gave up. Every variant maps to one stream error condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not XML (RFC 6120 §4.9.3.13): garbage, bad tags, a closing tag that does not match.
    NotWellFormed(&'static str),
    /// Character data between top-level elements (RFC 6120 §4.9.3.1 `bad-format`): see
    /// [`FrameError::condition`] for why this is not `not-well-formed`.
    TextOutsideStanza,
    /// Comments, processing instructions, DTDs, unknown entities (RFC 6120 §11.1, §4.9.3.18).
    Restricted(&'static str),
    /// Bytes that are clearly not UTF-8 (a UTF-16 or UTF-32 stream; RFC 6120 §11.6).
    UnsupportedEncoding,
    /// A top-level element (or header) larger than [`Limits::max_stanza`].
    TooLarge,
    /// Elements nested deeper than [`Limits::max_depth`].
    TooDeep,
}

impl FrameError {
    /// The stream error condition this deserves.
    pub fn condition(self) -> StreamCondition {
        match self {
            FrameError::NotWellFormed(_) => StreamCondition::NotWellFormed,
            // Character data as a child of <stream:stream/> is well-formed XML (mixed content),
            // so `not-well-formed` (§4.9.3.13: violates the rules of XML or XML-Names) would be
            // untrue; RFC 6120 §11 gives it no meaning, so it is XML "that cannot be processed":
            // `bad-format` (§4.9.3.1).
            FrameError::TextOutsideStanza => StreamCondition::BadFormat,
            FrameError::Restricted(_) => StreamCondition::RestrictedXml,
            FrameError::UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
            FrameError::TooLarge | FrameError::TooDeep => StreamCondition::PolicyViolation,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            FrameError::NotWellFormed(r) | FrameError::Restricted(r) => r,
            FrameError::TextOutsideStanza => "character data between top-level elements",
            FrameError::UnsupportedEncoding => "the stream is not UTF-8",
            FrameError::TooLarge => "top-level element too large",
            FrameError::TooDeep => "elements nested too deeply",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.condition(), self.reason())
    }
}

impl From<FrameError> for StreamError {
    fn from(e: FrameError) -> StreamError {
        StreamError::with_text(e.condition(), e.reason())
    }
}

/// Lexical state: where in the XML syntax the next unscanned byte is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    /// Character data (inside an element) or whitespace (at depth 0).
    Content,
    /// Just after `<`.
    Lt,
    /// In a start tag's name.
    StartName,
    /// In a start tag, outside quotes.
    Tag,
    /// After `/` in a start tag: only `>` may follow.
    TagSlash,
    /// In an attribute value quoted with this byte.
    Quote(u8),
    /// In an end tag's name.
    EndName,
    /// After an end tag's name: whitespace, then `>`.
    EndTail,
    /// After `<!`: `--`, `[CDATA[` or `DOCTYPE` is being matched.
    Bang,
    /// In a CDATA section; how many `]` were just seen (at most 2).
    Cdata(u8),
    /// In an entity or character reference; `Some(quote)` inside an attribute value.
    Ref(Option<u8>),
    /// In the XML declaration; whether the last byte was `?`.
    Decl(bool),
}

/// Where in the stream we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the header; `fresh` until the first byte is looked at (a BOM may be there).
    Prolog { fresh: bool },
    /// After the header.
    Stream,
    /// The header was self-closing (`<stream:stream …/>`): the close event is due.
    CloseDue,
    /// After the closing tag: nothing more is read.
    Closed,
}

/// A completed frame, as offsets into the buffer.
enum Done {
    Header {
        decl: Option<(usize, usize)>,
        tag: (usize, usize),
    },
    Element(usize, usize),
    Close,
}

enum Step {
    Continue,
    NeedMore,
    Done(Done),
}

/// Above this, a fully consumed buffer gives its memory back at once: our budget is 9 KiB per
/// idle connection, and one large stanza must not keep its buffer alive.
const KEEP_CAPACITY: usize = 4096;

/// The UTF-8 byte order mark, tolerated at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The sans-IO framer: [`Framer::push`] bytes in, take [`Frame`]s out with [`Framer::next`].
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// Bytes before `start` are consumed: returned in a frame, or skipped whitespace.
    start: usize,
    /// Bytes before `pos` have been scanned.
    pos: usize,
    /// Where the frame being scanned began.
    frame_start: Option<usize>,
    /// The `<` of the tag being scanned.
    mark: usize,
    /// The name of the tag being scanned.
    name_start: usize,
    name_end: usize,
    /// The `&` of the reference being scanned.
    ref_start: usize,
    /// The XML declaration of the header being scanned.
    decl: Option<(usize, usize)>,
    lex: Lex,
    phase: Phase,
    /// Open elements inside the stream (0 between top-level elements).
    depth: usize,
    /// The header's qualified name, which the closing tag must repeat.
    header_name: Vec<u8>,
    /// After an error the framer is dead and repeats it.
    error: Option<FrameError>,
    /// Bytes scanned so far, to prove no byte is scanned twice.
    #[cfg(test)]
    scanned: usize,
}

impl Framer {
    /// A framer expecting a stream header.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            frame_start: None,
            mark: 0,
            name_start: 0,
            name_end: 0,
            ref_start: 0,
            decl: None,
            lex: Lex::Content,
            phase: Phase::Prolog { fresh: true },
            depth: 0,
            header_name: Vec::new(),
            error: None,
            #[cfg(test)]
            scanned: 0,
        }
    }

    /// Appends bytes read from the socket. Call [`Framer::next`] until it returns `Ok(None)`
    /// before pushing more, so that the buffer holds at most one frame and one read.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed (or the stream is closed),
    /// or the error the input deserves. After an error the framer repeats it.
    // Not `Iterator::next`: a frame borrows the buffer, and `None` only means "not yet".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.start == self.buf.len() {
            // Nothing left: forgetting it is free, unlike draining a partly used buffer.
            self.compact();
        }
        match self.phase {
            Phase::Closed => return Ok(None),
            Phase::CloseDue => {
                self.phase = Phase::Closed;
                return Ok(Some(Frame::Close));
            }
            Phase::Prolog { .. } | Phase::Stream => {}
        }
        #[cfg(test)]
        let before = self.pos;
        let scanned = self.scan();
        #[cfg(test)]
        {
            self.scanned += self.pos - before;
        }
        match scanned {
            Err(e) => {
                self.error = Some(e);
                Err(e)
            }
            Ok(None) => {
                if self.start == self.buf.len() {
                    // All consumed (keepalives, say): forget it now, and give back a buffer
                    // that a large stanza left behind.
                    self.compact();
                    if self.buf.capacity() > KEEP_CAPACITY {
                        self.release();
                    }
                }
                Ok(None)
            }
            Ok(Some(Done::Header { decl, tag })) => Ok(Some(Frame::Header {
                decl: decl.map(|(a, b)| &self.buf[a..b]),
                tag: &self.buf[tag.0..tag.1],
            })),
            Ok(Some(Done::Element(a, b))) => Ok(Some(Frame::Element(&self.buf[a..b]))),
            Ok(Some(Done::Close)) => Ok(Some(Frame::Close)),
        }
    }

    /// Stream restart: forget the header and expect a new one (an XML declaration may precede
    /// it again). Bytes not yet returned in a frame are kept and scanned afresh.
    pub fn reset(&mut self) {
        self.pos = self.start;
        self.frame_start = None;
        self.decl = None;
        self.lex = Lex::Content;
        self.phase = Phase::Prolog { fresh: true };
        self.depth = 0;
        self.header_name.clear();
    }

    /// Starts a stream that has no header in the byte stream (RFC 7395: a WebSocket's
    /// `<open/>` is a message of its own, read by the caller): top-level elements are
    /// framed at once.
    pub fn skip_header(&mut self) {
        self.reset();
        self.phase = Phase::Stream;
    }

    /// True if bytes other than whitespace were pushed that no frame has consumed yet.
    /// Whitespace is a keepalive (RFC 6120 §4.6.1, §11.7) and carries nothing.
    pub fn has_buffered(&self) -> bool {
        self.buf[self.start..].iter().any(|&b| !is_ws(b))
    }

    /// Releases buffer memory: all of it if nothing is buffered, the excess otherwise.
    pub fn shrink(&mut self) {
        self.release();
        self.buf.shrink_to_fit();
        self.header_name.shrink_to_fit();
    }

    /// Frees the buffer if nothing is left in it.
    fn release(&mut self) {
        self.compact();
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Drops consumed bytes from the front of the buffer and moves every offset with them.
    fn compact(&mut self) {
        let n = self.start;
        if n == 0 {
            return;
        }
        self.buf.drain(..n);
        self.start = 0;
        self.pos -= n;
        self.frame_start = self.frame_start.map(|f| f - n);
        self.decl = self.decl.map(|(a, b)| (a - n, b - n));
        // Outside a frame these are stale and unused; saturating keeps them harmless.
        self.mark = self.mark.saturating_sub(n);
        self.name_start = self.name_start.saturating_sub(n);
        self.name_end = self.name_end.saturating_sub(n);
        self.ref_start = self.ref_start.saturating_sub(n);
    }

    fn scan(&mut self) -> Result<Option<Done>, FrameError> {
        loop {
            // Inside a frame, never scan past its size limit: a frame that is not complete when
            // the limit is reached is too large, whatever the bytes after it are.
            let end = match self.frame_start {
                Some(fs) => {
                    let limit = fs.saturating_add(self.limits.max_stanza);
                    if self.pos >= limit {
                        return Err(FrameError::TooLarge);
                    }
                    limit.min(self.buf.len())
                }
                None => self.buf.len(),
            };
            if self.pos >= end {
                return Ok(None);
            }
            match self.step(end)? {
                Step::Continue => {}
                Step::NeedMore => return Ok(None),
                Step::Done(done) => return Ok(Some(done)),
            }
        }
    }

    /// Scans from `pos` (< `end`), making progress or asking for more bytes.
    fn step(&mut self, end: usize) -> Result<Step, FrameError> {
        match self.lex {
            Lex::Content if self.depth > 0 => match memchr2(b'<', b'&', &self.buf[self.pos..end]) {
                None => self.pos = end,
                Some(i) => {
                    self.pos += i;
                    if self.buf[self.pos] == b'<' {
                        self.mark = self.pos;
                        self.lex = Lex::Lt;
                    } else {
                        self.ref_start = self.pos;
                        self.lex = Lex::Ref(None);
                    }
                    self.pos += 1;
                }
            },
            Lex::Content => return self.between(end),
            Lex::Lt => self.after_lt()?,
            Lex::StartName => {
                while self.pos < end {
                    let b = self.buf[self.pos];
                    if is_ws(b) || b == b'>' || b == b'/' {
                        self.name_end = self.pos;
                        self.lex = Lex::Tag;
                        break;
                    }
                    if !is_name_byte(b) {
                        return Err(FrameError::NotWellFormed("invalid character in a tag name"));
                    }
                    self.pos += 1;
                }
            }
            Lex::Tag => {
                // Attribute names, '=' and whitespace: roxmltree checks their syntax, so they
                // are skipped in one run up to the next byte that matters here.
                let rest = &self.buf[self.pos..end];
                let Some(i) = rest
                    .iter()
                    .position(|&b| matches!(b, b'>' | b'/' | b'"' | b'\'' | b'<'))
                else {
                    self.pos = end;
                    return Ok(Step::Continue);
                };
                let b = rest[i];
                self.pos += i + 1;
                match b {
                    b'>' => return Ok(self.start_tag_done(false)),
                    b'/' => self.lex = Lex::TagSlash,
                    b'"' | b'\'' => self.lex = Lex::Quote(b),
                    b'<' => return Err(FrameError::NotWellFormed("'<' inside a tag")),
                    // Not reached: the run stops only at the bytes above.
                    _ => {}
                }
            }
            Lex::TagSlash => {
                if self.buf[self.pos] != b'>' {
                    return Err(FrameError::NotWellFormed("'/' inside a tag"));
                }
                self.pos += 1;
                return Ok(self.start_tag_done(true));
            }
            Lex::Quote(q) => match memchr3(q, b'<', b'&', &self.buf[self.pos..end]) {
                None => self.pos = end,
                Some(i) => {
                    self.pos += i;
                    let b = self.buf[self.pos];
                    if b == q {
                        self.lex = Lex::Tag;
                    } else if b == b'<' {
                        return Err(FrameError::NotWellFormed("'<' in an attribute value"));
                    } else {
                        self.ref_start = self.pos;
                        self.lex = Lex::Ref(Some(q));
                    }
                    self.pos += 1;
                }
            },
            Lex::EndName => {
                while self.pos < end {
                    let b = self.buf[self.pos];
                    if is_ws(b) || b == b'>' {
                        if self.pos == self.name_start {
                            return Err(FrameError::NotWellFormed("end tag without a name"));
                        }
                        self.name_end = self.pos;
                        self.lex = Lex::EndTail;
                        break;
                    }
                    if !is_name_byte(b) || (self.pos == self.name_start && !is_name_start(b)) {
                        return Err(FrameError::NotWellFormed("invalid character in a tag name"));
                    }
                    self.pos += 1;
                }
            }
            Lex::EndTail => {
                let b = self.buf[self.pos];
                self.pos += 1;
                if b == b'>' {
                    return self.end_tag_done();
                }
                if !is_ws(b) {
                    return Err(FrameError::NotWellFormed("junk in an end tag"));
                }
            }
            Lex::Bang => self.after_bang()?,
            Lex::Cdata(mut brackets) => {
                while self.pos < end {
                    let b = self.buf[self.pos];
                    if b == b']' {
                        brackets = (brackets + 1).min(2);
                        self.pos += 1;
                    } else if b == b'>' && brackets == 2 {
                        self.pos += 1;
                        self.lex = Lex::Content;
                        return Ok(Step::Continue);
                    } else {
                        brackets = 0;
                        self.pos =
                            memchr(b']', &self.buf[self.pos..end]).map_or(end, |i| self.pos + i);
                    }
                }
                self.lex = Lex::Cdata(brackets);
            }
            Lex::Ref(quote) => {
                while self.pos < end {
                    let b = self.buf[self.pos];
                    if b == b';' {
                        check_reference(&self.buf[self.ref_start + 1..self.pos])?;
                        self.pos += 1;
                        self.lex = match quote {
                            None => Lex::Content,
                            Some(q) => Lex::Quote(q),
                        };
                        break;
                    }
                    if !(is_name_byte(b) || b == b'#') {
                        return Err(FrameError::NotWellFormed("malformed entity reference"));
                    }
                    self.pos += 1;
                }
            }
            Lex::Decl(mut question) => {
                while self.pos < end {
                    let b = self.buf[self.pos];
                    self.pos += 1;
                    if question && b == b'>' {
                        // Only `<?xml` + whitespace is the declaration; any other target is a
                        // processing instruction, which RFC 6120 §11.1 forbids.
                        let d = &self.buf[self.mark..self.pos];
                        if !(d.len() > 5 && d.starts_with(b"<?xml") && is_ws(d[5])) {
                            return Err(FrameError::Restricted("processing instruction"));
                        }
                        self.decl = Some((self.mark, self.pos));
                        self.lex = Lex::Content;
                        return Ok(Step::Continue);
                    }
                    question = b == b'?';
                }
                self.lex = Lex::Decl(question);
            }
        }
        Ok(Step::Continue)
    }

    /// Depth 0: before the header, between top-level elements, or between the XML
    /// declaration and the header.
    fn between(&mut self, end: usize) -> Result<Step, FrameError> {
        if let Phase::Prolog { fresh: true } = self.phase {
            if self.buf[self.pos] == BOM[0] {
                if end - self.pos < BOM.len() {
                    return Ok(Step::NeedMore);
                }
                // COMPAT: RFC 6120 §11.6 says not to send a BOM; a UTF-8 one is harmless.
                if &self.buf[self.pos..self.pos + BOM.len()] == BOM {
                    self.pos += BOM.len();
                    self.start = self.pos;
                }
            }
            self.phase = Phase::Prolog { fresh: false };
            return Ok(Step::Continue);
        }
        let ws = self.buf[self.pos..end]
            .iter()
            .take_while(|&&b| is_ws(b))
            .count();
        self.pos += ws;
        if self.frame_start.is_none() {
            // Keepalives are consumed at once, so that they never grow the buffer.
            self.start = self.pos;
        }
        if self.pos == end {
            return Ok(Step::Continue);
        }
        let b = self.buf[self.pos];
        if b == b'<' {
            self.frame_start.get_or_insert(self.pos);
            self.mark = self.pos;
            self.pos += 1;
            self.lex = Lex::Lt;
            return Ok(Step::Continue);
        }
        Err(match self.phase {
            // UTF-16 and UTF-32 streams start with a BOM or a NUL byte next to '<'.
            Phase::Prolog { .. } if matches!(b, 0x00 | 0xFE | 0xFF) => {
                FrameError::UnsupportedEncoding
            }
            Phase::Prolog { .. } => FrameError::NotWellFormed("text before the stream header"),
            _ if b < 0x20 => FrameError::NotWellFormed("control character"),
            _ if b < 0x80 => FrameError::TextOutsideStanza,
            // Text is bad-format, but bytes that are not even UTF-8 are not-well-formed: look
            // at the whole sequence (waiting for it, so that the answer does not depend on
            // how the bytes arrived).
            _ => {
                let width = match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => return Err(FrameError::NotWellFormed("invalid UTF-8")),
                };
                if end - self.pos < width {
                    return Ok(Step::NeedMore);
                }
                match std::str::from_utf8(&self.buf[self.pos..self.pos + width]) {
                    Ok(_) => FrameError::TextOutsideStanza,
                    Err(_) => FrameError::NotWellFormed("invalid UTF-8"),
                }
            }
        })
    }

    fn after_lt(&mut self) -> Result<(), FrameError> {
        let b = self.buf[self.pos];
        let prolog = matches!(self.phase, Phase::Prolog { .. });
        match b {
            b'/' if prolog => return Err(FrameError::NotWellFormed("end tag before the header")),
            b'/' => {
                self.name_start = self.pos + 1;
                self.lex = Lex::EndName;
            }
            b'!' => self.lex = Lex::Bang,
            // The declaration may only open the stream: nothing before it in this frame.
            // COMPAT: whitespace before it is skipped, although XML 1.0 §2.8 wants it first.
            b'?' if prolog && self.decl.is_none() && self.frame_start == Some(self.mark) => {
                self.lex = Lex::Decl(false)
            }
            b'?' => return Err(FrameError::Restricted("processing instruction")),
            0x00 if prolog => return Err(FrameError::UnsupportedEncoding),
            _ if is_name_start(b) => {
                // The header's element is at depth 0; a top-level element is at depth 1.
                if !prolog && self.depth >= self.limits.max_depth {
                    return Err(FrameError::TooDeep);
                }
                self.name_start = self.pos;
                self.lex = Lex::StartName;
            }
            _ => return Err(FrameError::NotWellFormed("'<' not followed by a name")),
        }
        self.pos += 1;
        Ok(())
    }

    fn after_bang(&mut self) -> Result<(), FrameError> {
        let b = self.buf[self.pos];
        let k = self.pos - (self.mark + 2);
        let first = if k == 0 { b } else { self.buf[self.mark + 2] };
        let word: &[u8] = match first {
            b'-' => b"--",
            b'[' => b"[CDATA[",
            b'D' => b"DOCTYPE",
            _ => return Err(FrameError::NotWellFormed("'<!' not followed by CDATA")),
        };
        // `k < word.len()`: the state is left as soon as a word is complete.
        if word[k] != b {
            return Err(FrameError::NotWellFormed("'<!' not followed by CDATA"));
        }
        self.pos += 1;
        if k + 1 == word.len() {
            match first {
                b'-' => return Err(FrameError::Restricted("comment")),
                b'D' => return Err(FrameError::Restricted("document type declaration")),
                _ if matches!(self.phase, Phase::Prolog { .. }) => {
                    return Err(FrameError::NotWellFormed("CDATA before the stream header"))
                }
                _ if self.depth == 0 => return Err(FrameError::TextOutsideStanza),
                _ => self.lex = Lex::Cdata(0),
            }
        }
        Ok(())
    }

    /// `pos` is just after the `>` of a start tag.
    fn start_tag_done(&mut self, empty: bool) -> Step {
        let end = self.pos;
        self.lex = Lex::Content;
        if let Phase::Prolog { .. } = self.phase {
            self.header_name = self.buf[self.name_start..self.name_end].to_vec();
            let decl = self.decl.take();
            self.phase = if empty {
                Phase::CloseDue
            } else {
                Phase::Stream
            };
            self.frame_start = None;
            self.start = end;
            return Step::Done(Done::Header {
                decl,
                tag: (self.mark, end),
            });
        }
        if !empty {
            self.depth += 1;
            return Step::Continue;
        }
        if self.depth == 0 {
            return self.frame_done(end);
        }
        Step::Continue
    }

    /// `pos` is just after the `>` of an end tag.
    fn end_tag_done(&mut self) -> Result<Step, FrameError> {
        let end = self.pos;
        self.lex = Lex::Content;
        if self.depth == 0 {
            if self.buf[self.name_start..self.name_end] != self.header_name[..] {
                return Err(FrameError::NotWellFormed(
                    "closing tag does not match the stream header",
                ));
            }
            self.phase = Phase::Closed;
            self.frame_start = None;
            self.start = end;
            return Ok(Step::Done(Done::Close));
        }
        self.depth -= 1;
        if self.depth == 0 {
            return Ok(self.frame_done(end));
        }
        Ok(Step::Continue)
    }

    fn frame_done(&mut self, end: usize) -> Step {
        let begin = self.frame_start.take().unwrap_or(self.mark);
        self.start = end;
        Step::Done(Done::Element(begin, end))
    }
}

/// XML whitespace (XML 1.0 §2.3 `S`).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A byte that may start a name. Non-ASCII bytes are let through: roxmltree checks the
/// characters they encode.
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn is_name_byte(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

/// The text between `&` and `;`. Character references and the five predefined entities are
/// fine; any other name would need a DTD, which RFC 6120 §11.1 forbids.
fn check_reference(r: &[u8]) -> Result<(), FrameError> {
    let ok = if let Some(hex) = r.strip_prefix(b"#x") {
        !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit)
    } else if let Some(dec) = r.strip_prefix(b"#") {
        !dec.is_empty() && dec.iter().all(u8::is_ascii_digit)
    } else if matches!(r, b"amp" | b"lt" | b"gt" | b"quot" | b"apos") {
        true
    } else if r.first().is_some_and(|&b| is_name_start(b)) && !r.contains(&b'#') {
        return Err(FrameError::Restricted("entity reference"));
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(FrameError::NotWellFormed("malformed entity reference"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a [`Frame`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Header(Option<String>, String),
        Element(String),
        Close,
    }

    fn own(f: Frame<'_>) -> Owned {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match f {
            Frame::Header { decl, tag } => Owned::Header(decl.map(s), s(tag)),
            Frame::Element(e) => Owned::Element(s(e)),
            Frame::Close => Owned::Close,
        }
    }

    /// Drains every frame the framer has.
    fn drain(f: &mut Framer, out: &mut Vec<Owned>) -> Result<(), FrameError> {
        while let Some(frame) = f.next()? {
            out.push(own(frame));
        }
        Ok(())
    }

    /// Feeds `chunks` one after another, taking every frame after each push.
    fn run_chunks(limits: Limits, chunks: &[&[u8]]) -> (Vec<Owned>, Option<FrameError>) {
        let mut f = Framer::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            if let Err(e) = drain(&mut f, &mut out) {
                return (out, Some(e));
            }
        }
        (out, None)
    }

    fn run(input: &[u8]) -> (Vec<Owned>, Option<FrameError>) {
        run_chunks(Limits::default(), &[input])
    }

    const HEADER: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>";

    /// The error that `body`, sent after a header, deserves.
    fn error_after_header(body: &str) -> Option<FrameError> {
        run(format!("{HEADER}{body}").as_bytes()).1
    }

    const MESSAGE: &str = "<message to='a@example.org' id=\"x>y/z\" type='chat'>\
        <body>a &amp; b &#x263A; &#65; &lt;&gt;&quot;&apos; \u{e9}t\u{e9}</body>\
        <data><![CDATA[ <not> a ]] tag ]]]></data></message>";
    const IQ: &str =
        "<iq type='get' id='1'><query xmlns='jabber:iq:roster' a = '/>' b=\"'\" /></iq>";

    fn realistic() -> String {
        format!(
            "<?xml version='1.0' encoding='UTF-8'?>\n{HEADER}\n \n{MESSAGE} \t\r\n<presence/>\
             \n\n{IQ}<r xmlns='urn:xmpp:sm:3'/> </stream:stream>"
        )
    }

    fn realistic_frames() -> Vec<Owned> {
        vec![
            Owned::Header(
                Some("<?xml version='1.0' encoding='UTF-8'?>".into()),
                HEADER.into(),
            ),
            Owned::Element(MESSAGE.into()),
            Owned::Element("<presence/>".into()),
            Owned::Element(IQ.into()),
            Owned::Element("<r xmlns='urn:xmpp:sm:3'/>".into()),
            Owned::Close,
        ]
    }

    #[test]
    fn frames_a_realistic_stream() {
        let input = realistic();
        assert_eq!(run(input.as_bytes()), (realistic_frames(), None));
    }

    #[test]
    fn same_frames_however_the_input_is_split() {
        let input = realistic();
        let input = input.as_bytes();
        let expected = (realistic_frames(), None);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                run_chunks(Limits::default(), &[a, b]),
                expected,
                "split at {i}"
            );
            for j in (i..=input.len()).step_by(7) {
                let (b, c) = b.split_at(j - i);
                assert_eq!(
                    run_chunks(Limits::default(), &[a, b, c]),
                    expected,
                    "split at {i} and {j}"
                );
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            run_chunks(Limits::default(), &bytes),
            expected,
            "byte by byte"
        );
    }

    #[test]
    fn same_error_however_the_input_is_split() {
        // Each error is raised at a position fixed by the input, so the size limit and a later
        // syntax error cannot swap places depending on how the bytes arrived.
        let limits = Limits {
            max_stanza: 40,
            max_depth: 4,
        };
        for body in [
            "<a>0123456789012345678901234567890123456789</a>",
            "<a>0123456789012345678</b><!-- -->01234567890123456789</a>",
            "<a><b><c><d><e/></d></c></b></a>",
            "<a>&bogus;</a>",
            "<a x='<'/>",
        ] {
            let input = format!("{HEADER}{body}");
            let input = input.as_bytes();
            let whole = run_chunks(limits, &[input]);
            assert!(whole.1.is_some(), "{body} must fail");
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                assert_eq!(run_chunks(limits, &[a, b]), whole, "{body} split at {i}");
            }
        }
    }

    #[test]
    fn no_byte_is_scanned_twice() {
        // A 200 KiB stanza in 7-byte reads: a framer that rescanned its buffer on every push
        // would scan about 3 GB here.
        let body = "x<y/>&amp;".repeat(20 * 1024);
        let input = format!("{HEADER}<message><body>{body}</body></message>");
        let mut f = Framer::new(Limits::default());
        let mut frames = Vec::new();
        for c in input.as_bytes().chunks(7) {
            f.push(c);
            drain(&mut f, &mut frames).unwrap();
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(f.scanned, input.len());
    }

    #[test]
    fn keepalives_yield_nothing_and_are_not_kept() {
        let mut f = Framer::new(Limits::default());
        f.push(HEADER.as_bytes());
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
        let capacity = f.buf.capacity();
        for _ in 0..10_000 {
            f.push(b" \n\t\r ");
            assert_eq!(f.next(), Ok(None));
            assert!(!f.has_buffered());
        }
        assert_eq!(f.buf.len(), 0);
        assert_eq!(f.buf.capacity(), capacity);
        f.push(b"  <presence/>");
        assert_eq!(f.next(), Ok(Some(Frame::Element(b"<presence/>"))));
    }

    #[test]
    fn restricted_xml_is_rejected() {
        let r = |what| Some(FrameError::Restricted(what));
        let cases = [
            ("<!-- hi -->", r("comment")),
            ("<message><!-- hi --></message>", r("comment")),
            ("<?php echo 1 ?>", r("processing instruction")),
            ("<message><?pi x?></message>", r("processing instruction")),
            ("<?xml version='1.0'?>", r("processing instruction")),
            ("<!DOCTYPE x>", r("document type declaration")),
            ("<message>&lol;</message>", r("entity reference")),
            ("<message a='&lol;'/>", r("entity reference")),
        ];
        for (body, expected) in cases {
            assert_eq!(error_after_header(body), expected, "{body}");
        }
        let prolog_cases = [
            ("<!-- hi -->", r("comment")),
            ("<!DOCTYPE stream>", r("document type declaration")),
            ("<?xml-stylesheet href='x'?>", r("processing instruction")),
            (
                "<?xml version='1.0'?><?xml version='1.0'?>",
                r("processing instruction"),
            ),
        ];
        for (prolog, expected) in prolog_cases {
            let input = format!("{prolog}{HEADER}");
            assert_eq!(run(input.as_bytes()).1, expected, "{prolog}");
        }
    }

    #[test]
    fn references_are_checked() {
        let ok = "<m a='&amp;&lt;&gt;&quot;&apos;&#10;&#x1F600;'>&amp;&lt;&gt;&quot;&apos;&#65;&#x41;</m>";
        assert_eq!(error_after_header(ok), None);
        let bad = Some(FrameError::NotWellFormed("malformed entity reference"));
        for body in [
            "<m>&;</m>",
            "<m>&#;</m>",
            "<m>&#x;</m>",
            "<m>&#12a;</m>",
            "<m>& amp;</m>",
            "<m a='&#xZ;'/>",
        ] {
            assert_eq!(error_after_header(body), bad, "{body}");
        }
    }

    #[test]
    fn size_limit_is_a_policy_violation() {
        let limits = Limits {
            max_stanza: 32,
            max_depth: 32,
        };
        // The framer does not care about names; a short header keeps the numbers readable.
        let run32 = |body: &str| run_chunks(limits, &[format!("<s>{body}").as_bytes()]);
        let exact = format!("<m>{}</m>", "x".repeat(32 - 7));
        assert_eq!(exact.len(), 32);
        let (frames, err) = run32(&exact);
        assert_eq!((frames.len(), err), (2, None));
        let over = format!("<m>{}</m>", "x".repeat(32 - 6));
        assert_eq!(run32(&over).1, Some(FrameError::TooLarge));
        // An unfinished stanza fails as soon as it is too large, not when it ends.
        assert_eq!(
            run32(&format!("<m>{}", "x".repeat(40))).1,
            Some(FrameError::TooLarge)
        );
        // The header is held to the limit too.
        assert_eq!(
            run_chunks(limits, &[HEADER.as_bytes()]).1,
            Some(FrameError::TooLarge)
        );
        assert_eq!(
            FrameError::TooLarge.condition(),
            StreamCondition::PolicyViolation
        );
    }

    #[test]
    fn depth_limit_is_a_policy_violation() {
        let limits = Limits {
            max_stanza: 1024,
            max_depth: 3,
        };
        let input = format!("{HEADER}<a><b><c/></b><b><c>t</c></b></a>");
        let (frames, err) = run_chunks(limits, &[input.as_bytes()]);
        assert_eq!((frames.len(), err), (2, None));
        let input = format!("{HEADER}<a><b><c><d/></c></b></a>");
        assert_eq!(
            run_chunks(limits, &[input.as_bytes()]).1,
            Some(FrameError::TooDeep)
        );
        assert_eq!(
            FrameError::TooDeep.condition(),
            StreamCondition::PolicyViolation
        );
    }

    #[test]
    fn text_outside_stanzas() {
        assert_eq!(
            error_after_header("hello"),
            Some(FrameError::TextOutsideStanza)
        );
        assert_eq!(
            error_after_header("<presence/>x"),
            Some(FrameError::TextOutsideStanza)
        );
        assert_eq!(
            error_after_header("<![CDATA[x]]>"),
            Some(FrameError::TextOutsideStanza)
        );
        assert_eq!(
            FrameError::TextOutsideStanza.condition(),
            StreamCondition::BadFormat
        );
        assert_eq!(
            error_after_header("\u{e9}t\u{e9}"),
            Some(FrameError::TextOutsideStanza)
        );
        let mut bad = HEADER.as_bytes().to_vec();
        bad.extend_from_slice(b"\xE9t\xE9");
        let invalid_utf8 = Some(FrameError::NotWellFormed("invalid UTF-8"));
        assert_eq!(run(&bad).1, invalid_utf8);
        let (a, b) = bad.split_at(bad.len() - 2);
        assert_eq!(run_chunks(Limits::default(), &[a, b]).1, invalid_utf8);
        assert_eq!(
            error_after_header("\x16\x03\x01"),
            Some(FrameError::NotWellFormed("control character"))
        );
        assert_eq!(
            run(b"GET / HTTP/1.1\r\n").1,
            Some(FrameError::NotWellFormed("text before the stream header"))
        );
    }

    #[test]
    fn markup_errors_are_not_well_formed() {
        for body in [
            "<message a='<'/>",
            "< message/>",
            "<1a/>",
            "<m/ >",
            "<m></ m>",
            "<m></>",
            "<m></m x>",
            "<m><!x></m>",
            "<m><![CDAT></m>",
            "<m a='1' <b/>",
        ] {
            assert!(
                matches!(error_after_header(body), Some(FrameError::NotWellFormed(_))),
                "{body}: {:?}",
                error_after_header(body)
            );
        }
        assert!(matches!(
            run(b"</stream:stream>").1,
            Some(FrameError::NotWellFormed(_))
        ));
    }

    #[test]
    fn closing_tag_must_match_the_header() {
        let header = "<s:stream xmlns:s='http://etherx.jabber.org/streams'>";
        let (frames, err) = run(format!("{header}<a/></s:stream >").as_bytes());
        assert_eq!((frames.len(), err), (3, None));
        assert_eq!(frames[2], Owned::Close);
        let err = run(format!("{header}</stream:stream>").as_bytes()).1;
        assert_eq!(
            err,
            Some(FrameError::NotWellFormed(
                "closing tag does not match the stream header"
            ))
        );
    }

    #[test]
    fn nothing_is_read_after_the_close() {
        let mut f = Framer::new(Limits::default());
        f.push(format!("{HEADER}</stream:stream><garbage").as_bytes());
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
        assert_eq!(f.next(), Ok(Some(Frame::Close)));
        assert_eq!(f.next(), Ok(None));
        assert!(f.has_buffered());
    }

    #[test]
    fn a_self_closing_header_opens_and_closes() {
        let (frames, err) = run(b"<stream:stream xmlns:stream='x'/>");
        assert_eq!(err, None);
        assert_eq!(
            frames,
            vec![
                Owned::Header(None, "<stream:stream xmlns:stream='x'/>".into()),
                Owned::Close
            ]
        );
    }

    #[test]
    fn reset_expects_a_new_header() {
        let mut f = Framer::new(Limits::default());
        f.push(format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>").as_bytes());
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
        assert!(matches!(f.next(), Ok(Some(Frame::Element(_)))));
        assert_eq!(f.next(), Ok(None));
        f.reset();
        assert!(!f.has_buffered());
        // A new stream may start with a declaration again, and needs a header first.
        let decl = "<?xml version='1.0'?>";
        f.push(format!("{decl}{HEADER}<presence/>").as_bytes());
        assert_eq!(
            f.next().map(|o| o.map(own)),
            Ok(Some(Owned::Header(Some(decl.into()), HEADER.into())))
        );
        assert_eq!(f.next(), Ok(Some(Frame::Element(b"<presence/>"))));
        f.reset();
        f.push(b"<presence/>");
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
    }

    #[test]
    fn pipelined_bytes_are_buffered() {
        let mut f = Framer::new(Limits::default());
        f.push(
            format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq").as_bytes(),
        );
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
        assert!(matches!(f.next(), Ok(Some(Frame::Element(_)))));
        // What a connection sees when it acts on <starttls/> at once.
        assert!(f.has_buffered());
        f.reset();
        assert!(f.has_buffered());

        let mut f = Framer::new(Limits::default());
        f.push(format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n").as_bytes());
        assert!(matches!(f.next(), Ok(Some(Frame::Header { .. }))));
        assert!(matches!(f.next(), Ok(Some(Frame::Element(_)))));
        assert!(
            !f.has_buffered(),
            "a trailing keepalive is not pipelined data"
        );
    }

    #[test]
    fn encodings() {
        // UTF-16 with and without a byte order mark.
        assert_eq!(
            run(b"\xFE\xFF\x00<").1,
            Some(FrameError::UnsupportedEncoding)
        );
        assert_eq!(
            run(b"\xFF\xFE<\x00").1,
            Some(FrameError::UnsupportedEncoding)
        );
        assert_eq!(run(b"<\x00?\x00").1, Some(FrameError::UnsupportedEncoding));
        // A UTF-8 byte order mark is skipped, even when it arrives byte by byte.
        let input = format!("\u{FEFF}{HEADER}");
        let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        let (frames, err) = run_chunks(Limits::default(), &bytes);
        assert_eq!(frames, vec![Owned::Header(None, HEADER.into())]);
        assert_eq!(err, None);
    }

    #[test]
    fn errors_are_sticky() {
        let mut f = Framer::new(Limits::default());
        f.push(b"junk");
        let e = f.next().unwrap_err();
        f.push(HEADER.as_bytes());
        assert_eq!(f.next(), Err(e));
        f.reset();
        assert_eq!(f.next(), Err(e));
    }

    #[test]
    fn memory_is_given_back() {
        let big = format!("<message><body>{}</body></message>", "x".repeat(100_000));
        let mut f = Framer::new(Limits::default());
        f.push(HEADER.as_bytes());
        assert!(f.next().unwrap().is_some());
        f.push(big.as_bytes());
        assert_eq!(
            f.next().unwrap().map(own),
            Some(Owned::Element(big.clone()))
        );
        // Once the big frame is consumed, the next call releases the buffer by itself.
        assert_eq!(f.next(), Ok(None));
        assert_eq!(f.buf.capacity(), 0);
        // shrink() releases a small one too, and trims a partly used one.
        f.push(b"<presence/>");
        assert!(f.next().unwrap().is_some());
        f.shrink();
        assert_eq!(f.buf.capacity(), 0);
        f.push(&big.as_bytes()[..50_000]);
        assert_eq!(f.next(), Ok(None));
        f.shrink();
        assert_eq!(f.buf.capacity(), 50_000);
    }
}
