//! The server side of the WebSocket protocol (RFC 6455 §5) under XMPP's WebSocket binding
//! (RFC 7395): a sans-IO frame decoder and encoder, and the accept key of the opening
//! handshake (§4.2.2), which the HTTP server answers.
//!
//! Ours rather than tungstenite's: its codec keeps a read buffer (allocated eagerly, 128 KiB
//! by default) and a write buffer that never shrinks in every connection, where an idle
//! XMPP session must stay within a few kilobytes. Here the payload of a text message is
//! unmasked in place in the read chunk and goes straight into the session's XML reader, whose
//! buffer is given back when idle; the decoder itself is some 50 bytes. Only what XMPP needs
//! is here: no extensions (no compression), text messages, ping/pong and close.

use std::fmt;

/// The GUID of RFC 6455 §1.3 that the accept key hashes with the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2 step 5.4).
pub fn accept_key(client_key: &str) -> String {
    use base64::Engine;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(client_key.trim().as_bytes());
    ctx.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// Close codes (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const TOO_BIG: u16 = 1009;
}

/// Why the decoder gave up: the client broke RFC 6455 (or our size limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsError {
    /// A frame or message that RFC 6455 §5 forbids (the text says which rule).
    Protocol(&'static str),
    /// A binary message: RFC 7395 §3.2 carries XMPP in text messages only.
    Binary,
    /// A message longer than the largest stanza.
    TooBig,
}

impl WsError {
    /// The close code this deserves (RFC 6455 §7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Protocol(_) => close_code::PROTOCOL_ERROR,
            WsError::Binary => close_code::UNSUPPORTED_DATA,
            WsError::TooBig => close_code::TOO_BIG,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Protocol(why) => write!(f, "WebSocket protocol error: {why}"),
            WsError::Binary => f.write_str("binary WebSocket messages do not carry XMPP"),
            WsError::TooBig => f.write_str("WebSocket message too large"),
        }
    }
}

/// What the decoder found next in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// More of the current text message, unmasked.
    Data(&'a [u8]),
    /// The current text message is complete.
    End,
    /// A ping with its payload: answer with a pong carrying the same.
    Ping(Vec<u8>),
    /// A pong (the answer to our ping, or unsolicited: a keepalive).
    Pong,
    /// The client's close frame, with its status code if it gave one.
    Close(Option<u16>),
    /// The input is used up: read more.
    NeedMore,
}

/// The longest frame header: 2 bytes, an 8-byte length and the 4-byte mask.
const MAX_HEADER: usize = 14;

/// The frame being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already read (the mask's phase).
    done: u64,
}

/// Decodes the frames a client sends: [`Decoder::next`] on each read's bytes until
/// [`Piece::NeedMore`].
#[derive(Debug)]
pub struct Decoder {
    /// A frame header that arrived in pieces.
    head: [u8; MAX_HEADER],
    head_len: u8,
    frame: Option<Frame>,
    /// A text message is open (its first frame came, its last has not).
    in_message: bool,
    /// Bytes of the open message so far.
    message_len: usize,
    max_message: usize,
    /// The payload of a control frame, which may arrive in pieces (at most 125 bytes).
    control: Vec<u8>,
    /// The last data of a message was returned: its end is reported next.
    end_due: bool,
    /// After an error or a close frame nothing more is decoded.
    done: bool,
}

impl Decoder {
    /// A decoder refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            head: [0; MAX_HEADER],
            head_len: 0,
            frame: None,
            in_message: false,
            message_len: 0,
            max_message,
            control: Vec::new(),
            end_due: false,
            done: false,
        }
    }

    /// True between the first and the last frame of a message, or inside a frame.
    pub fn mid_message(&self) -> bool {
        self.in_message || self.frame.is_some() || self.head_len > 0 || self.end_due
    }

    /// The next piece from `input`, and how many of its bytes that used. Payload is
    /// unmasked in place. After an error, or after [`Piece::Close`], it yields
    /// `NeedMore` and uses nothing.
    pub fn next<'a>(&mut self, input: &'a mut [u8]) -> Result<(usize, Piece<'a>), WsError> {
        if self.done {
            return Ok((input.len(), Piece::NeedMore));
        }
        let r = self.step(input);
        if r.is_err() {
            self.done = true;
        }
        r
    }

    fn step<'a>(&mut self, input: &'a mut [u8]) -> Result<(usize, Piece<'a>), WsError> {
        if self.end_due {
            self.end_due = false;
            return Ok((0, self.end_message()));
        }
        let mut used = 0;
        let mut frame = match self.frame {
            Some(f) => f,
            None => {
                // Gather the header: its length is known from its first two bytes.
                loop {
                    let have = self.head_len as usize;
                    let need = header_len(&self.head[..have]);
                    if have >= need {
                        break;
                    }
                    if used == input.len() {
                        return Ok((used, Piece::NeedMore));
                    }
                    let take = (need - have).min(input.len() - used);
                    self.head[have..have + take].copy_from_slice(&input[used..used + take]);
                    self.head_len += take as u8;
                    used += take;
                }
                let f = self.start_frame()?;
                self.head_len = 0;
                self.frame = Some(f);
                f
            }
        };
        let take = frame.remaining.min((input.len() - used) as u64) as usize;
        if take == 0 && frame.remaining > 0 {
            self.frame = Some(frame);
            return Ok((used, Piece::NeedMore));
        }
        let payload = &mut input[used..used + take];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= frame.mask[((frame.done as usize) + i) % 4];
        }
        used += take;
        frame.remaining -= take as u64;
        frame.done += take as u64;
        let complete = frame.remaining == 0;
        self.frame = if complete { None } else { Some(frame) };
        if frame.opcode >= opcode::CLOSE {
            self.control.extend_from_slice(payload);
            if !complete {
                return Ok((used, Piece::NeedMore));
            }
            let body = std::mem::take(&mut self.control);
            return Ok((used, self.control_piece(frame.opcode, body)?));
        }
        // A data frame of the text message.
        let last = complete && frame.fin;
        if take > 0 {
            self.end_due = last;
            return Ok((used, Piece::Data(payload)));
        }
        if last {
            return Ok((used, self.end_message()));
        }
        // An empty non-final frame: nothing to report.
        Ok((used, Piece::Data(&[])))
    }

    fn end_message(&mut self) -> Piece<'static> {
        self.in_message = false;
        self.message_len = 0;
        Piece::End
    }

    /// Checks a complete header against RFC 6455 §5.2–§5.5 and our limits.
    fn start_frame(&mut self) -> Result<Frame, WsError> {
        let h = &self.head[..self.head_len as usize];
        let fin = h[0] & 0x80 != 0;
        if h[0] & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits set without an extension"));
        }
        let op = h[0] & 0x0F;
        if h[1] & 0x80 == 0 {
            return Err(WsError::Protocol("a client frame must be masked"));
        }
        let (len, at) = match h[1] & 0x7F {
            126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(WsError::Protocol("payload length with the high bit set"));
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[at..at + 4]);
        match op {
            opcode::CLOSE | opcode::PING | opcode::PONG => {
                if !fin {
                    return Err(WsError::Protocol("a fragmented control frame"));
                }
                if len > 125 {
                    return Err(WsError::Protocol("a control frame longer than 125 bytes"));
                }
            }
            opcode::TEXT => {
                if self.in_message {
                    return Err(WsError::Protocol("a new message before the last one ended"));
                }
                self.in_message = true;
            }
            opcode::CONTINUATION => {
                if !self.in_message {
                    return Err(WsError::Protocol("a continuation frame without a message"));
                }
            }
            opcode::BINARY => return Err(WsError::Binary),
            _ => return Err(WsError::Protocol("unknown opcode")),
        }
        if op < opcode::CLOSE {
            self.message_len = usize::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(self.message_len))
                .filter(|&l| l <= self.max_message)
                .ok_or(WsError::TooBig)?;
        }
        Ok(Frame {
            opcode: op,
            fin,
            mask,
            remaining: len,
            done: 0,
        })
    }

    fn control_piece(&mut self, op: u8, body: Vec<u8>) -> Result<Piece<'static>, WsError> {
        Ok(match op {
            opcode::PING => Piece::Ping(body),
            opcode::PONG => Piece::Pong,
            _ => {
                // RFC 6455 §5.5.1: an optional 2-byte code, then UTF-8 text.
                self.done = true;
                match body.len() {
                    0 => Piece::Close(None),
                    1 => return Err(WsError::Protocol("a close frame with a 1-byte body")),
                    _ => {
                        if std::str::from_utf8(&body[2..]).is_err() {
                            return Err(WsError::Protocol("a close reason that is not UTF-8"));
                        }
                        Piece::Close(Some(u16::from_be_bytes([body[0], body[1]])))
                    }
                }
            }
        })
    }
}

/// How long the header starting with `head` is (at least 2 bytes are needed to tell).
fn header_len(head: &[u8]) -> usize {
    if head.len() < 2 {
        return 2;
    }
    let ext = match head[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    // Client frames are always masked; an unmasked one is refused once its header is in.
    let mask = if head[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// Appends one unmasked, unfragmented server frame (RFC 6455 §5.2).
pub fn encode(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    out.push(0x80 | op);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` (RFC 6455 §5.5.1).
pub fn encode_close(out: &mut Vec<u8>, code: u16) {
    encode(out, opcode::CLOSE, &code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame, as a browser sends it.
    fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Everything the decoder makes of `chunks`, data joined per message.
    fn decode(dec: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<String>, WsError> {
        let mut out = Vec::new();
        let mut msg = Vec::new();
        for c in chunks {
            let mut buf = c.to_vec();
            let mut pos = 0;
            loop {
                let (used, piece) = dec.next(&mut buf[pos..])?;
                let stop = matches!(piece, Piece::NeedMore);
                match piece {
                    Piece::Data(d) => msg.extend_from_slice(d),
                    Piece::End => out.push(String::from_utf8(std::mem::take(&mut msg)).unwrap()),
                    Piece::Ping(p) => out.push(format!("ping:{}", String::from_utf8(p).unwrap())),
                    Piece::Pong => out.push("pong".into()),
                    Piece::Close(c) => out.push(format!("close:{c:?}")),
                    Piece::NeedMore => {}
                }
                pos += used;
                if stop {
                    assert_eq!(pos, buf.len(), "NeedMore leaves nothing unused");
                    break;
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn the_accept_key_of_rfc_6455() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn messages_pings_and_close_however_the_bytes_arrive() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut input = client_frame(0x81, b"<open xmlns='x'/>", mask);
        // A fragmented message with a ping in between (RFC 6455 §5.4) and an empty frame.
        input.extend(client_frame(0x01, b"<message>", [1, 2, 3, 4]));
        input.extend(client_frame(0x89, b"hi", [9, 9, 9, 9]));
        input.extend(client_frame(0x00, b"", [5, 6, 7, 8]));
        input.extend(client_frame(0x80, b"</message>", [5, 6, 7, 8]));
        let long = "x".repeat(70_000);
        input.extend(client_frame(0x81, long.as_bytes(), mask));
        input.extend(client_frame(0x8A, b"", mask));
        input.extend(client_frame(0x88, &1000u16.to_be_bytes(), mask));
        let expected = vec![
            "<open xmlns='x'/>".to_string(),
            "ping:hi".into(),
            "<message></message>".into(),
            long.clone(),
            "pong".into(),
            "close:Some(1000)".into(),
        ];
        assert_eq!(
            decode(&mut Decoder::new(100_000), &[&input]),
            Ok(expected.clone())
        );
        // Split at many offsets (each one in the headers and around them).
        for i in (0..input.len()).step_by(97).chain(0..40) {
            let (a, b) = input.split_at(i);
            let got = decode(&mut Decoder::new(100_000), &[a, b]);
            assert_eq!(got, Ok(expected.clone()), "split at {i}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = input[..200].chunks(1).collect();
        let got = decode(&mut Decoder::new(100_000), &bytes).unwrap();
        assert_eq!(got[..3], expected[..3]);
    }

    #[test]
    fn rule_breaking_frames_are_refused() {
        let m = [1, 2, 3, 4];
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (
                {
                    let mut f = client_frame(0x81, b"x", m);
                    f[1] &= 0x7F;
                    f.truncate(2);
                    f.push(b'x');
                    f
                },
                WsError::Protocol("a client frame must be masked"),
            ),
            (
                client_frame(0xC1, b"x", m),
                WsError::Protocol("reserved bits set without an extension"),
            ),
            (client_frame(0x82, b"x", m), WsError::Binary),
            (
                client_frame(0x80, b"x", m),
                WsError::Protocol("a continuation frame without a message"),
            ),
            (
                client_frame(0x09, b"x", m),
                WsError::Protocol("a fragmented control frame"),
            ),
            (
                client_frame(0x89, &[b'p'; 126], m),
                WsError::Protocol("a control frame longer than 125 bytes"),
            ),
            (
                client_frame(0x83, b"x", m),
                WsError::Protocol("unknown opcode"),
            ),
            (client_frame(0x81, &[b'x'; 101], m), WsError::TooBig),
            (
                {
                    let mut f = client_frame(0x01, &[b'x'; 60], m);
                    f.extend(client_frame(0x80, &[b'x'; 60], m));
                    f
                },
                WsError::TooBig,
            ),
            (
                {
                    let mut f = client_frame(0x01, b"a", m);
                    f.extend(client_frame(0x81, b"b", m));
                    f
                },
                WsError::Protocol("a new message before the last one ended"),
            ),
            (
                client_frame(0x88, &[3], m),
                WsError::Protocol("a close frame with a 1-byte body"),
            ),
        ];
        for (input, err) in cases {
            let mut dec = Decoder::new(100);
            assert_eq!(decode(&mut dec, &[&input]), Err(err), "{input:02x?}");
            // Dead after an error.
            assert_eq!(dec.next(&mut [0x81, 0x80]), Ok((2, Piece::NeedMore)));
        }
        // A 64-bit length with its high bit set.
        let mut f = vec![0x81, 0x80 | 127];
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        f.extend_from_slice(&m);
        assert_eq!(
            decode(&mut Decoder::new(100), &[&f]),
            Err(WsError::Protocol("payload length with the high bit set"))
        );
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        for (n, header) in [
            (0usize, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            encode(&mut out, opcode::TEXT, &vec![b'a'; n]);
            assert_eq!(out[..header.len()], header[..], "{n}");
            assert_eq!(out.len(), header.len() + n);
        }
        let mut out = Vec::new();
        encode_close(&mut out, close_code::NORMAL);
        assert_eq!(out, [0x88, 2, 0x03, 0xE8]);
    }
}
