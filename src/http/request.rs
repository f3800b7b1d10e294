//! HTTP/1.1 messages (RFC 9110, RFC 9112): a request head parsed by `httparse`, and the
//! response we write.
//!
//! Only what roost serves is accepted: bodies framed by `Content-Length` (XEP-0363 uploads
//! always announce theirs); `Transfer-Encoding` is refused with 501 rather than guessed at,
//! and conflicting lengths are refused with 400, so no request can be read two ways
//! (request smuggling through a proxy).

use std::fmt;

/// Why a request head was refused; each maps to a status, and the connection is closed.
#[derive(Debug)]
pub enum HeadError {
    /// Not HTTP/1.x, or a malformed line or header.
    Malformed,
    /// The head is larger than the limit (431).
    TooLarge,
    /// More header fields than the limit (431).
    TooManyHeaders,
    /// A body framed in a way we do not read (`Transfer-Encoding`) (501).
    UnsupportedFraming,
    /// An invalid or repeated `Content-Length` (400).
    BadLength,
    /// The head did not arrive within the head timeout (408).
    TimedOut,
    /// The client closed the connection in the middle of a head.
    Incomplete,
    Io(std::io::Error),
}

impl HeadError {
    /// The status to answer with, if the client can still be answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HeadError::Malformed | HeadError::BadLength => Some(400),
            HeadError::TooLarge | HeadError::TooManyHeaders => Some(431),
            HeadError::UnsupportedFraming => Some(501),
            HeadError::TimedOut => Some(408),
            HeadError::Incomplete | HeadError::Io(_) => None,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Malformed => write!(f, "malformed request"),
            HeadError::TooLarge => write!(f, "request header too large"),
            HeadError::TooManyHeaders => write!(f, "too many header fields"),
            HeadError::UnsupportedFraming => {
                write!(f, "Transfer-Encoding is not supported: send Content-Length")
            }
            HeadError::BadLength => write!(f, "invalid Content-Length"),
            HeadError::TimedOut => write!(f, "request header timeout"),
            HeadError::Incomplete => write!(f, "connection closed within a request header"),
            HeadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A request head.
#[derive(Debug)]
pub struct Request {
    /// As sent (methods are case-sensitive).
    pub method: String,
    /// The request target (origin form: path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header fields, names lowercased, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Parses a head from the start of `buf`: `Ok(None)` if it is not complete yet, else
    /// the request and the bytes it used.
    pub fn parse(buf: &[u8], max_headers: usize) -> Result<Option<(Request, usize)>, HeadError> {
        let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(_) => return Err(HeadError::Malformed),
        };
        let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
            return Err(HeadError::Malformed);
        };
        let headers = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        Ok(Some((
            Request {
                method: method.to_owned(),
                target: target.to_owned(),
                minor,
                headers,
            },
            used,
        )))
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The body's length: 0 without `Content-Length`; errors for `Transfer-Encoding` and
    /// for invalid or differing lengths.
    pub fn body_length(&self) -> Result<u64, HeadError> {
        if self.header("transfer-encoding").is_some() {
            return Err(HeadError::UnsupportedFraming);
        }
        let mut length = None;
        for (_, v) in self.headers.iter().filter(|(n, _)| n == "content-length") {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::BadLength);
            }
            let n: u64 = v.parse().map_err(|_| HeadError::BadLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::BadLength);
            }
            length = Some(n);
        }
        Ok(length.unwrap_or(0))
    }

    /// True if the request announced a `Content-Length`.
    pub fn has_length(&self) -> bool {
        self.header("content-length").is_some()
    }

    /// True if the client wants the connection kept open after the response.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("");
        let has = |t: &str| conn.split(',').any(|c| c.trim().eq_ignore_ascii_case(t));
        if self.minor == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// A response body.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes of an open file from `offset`, streamed in chunks.
    File {
        file: super::io::DiskFile,
        offset: u64,
        len: u64,
    },
}

/// A response: status, header fields and body (`Content-Length` is added from the body).
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
        }
    }

    /// A short plain-text response (errors: the text says what was wrong).
    pub fn text(status: u16, text: impl Into<String>) -> Response {
        let mut body = text.into().into_bytes();
        body.push(b'\n');
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(Body::Bytes(body))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The length of the body.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// The status line and header fields, with `Content-Length`, `Connection` and the
    /// fields every response carries.
    pub fn head(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut h = String::with_capacity(256);
        let _ = write!(h, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            let _ = write!(h, "{n}: {v}\r\n");
        }
        // Upload links and host-meta are fetched by web clients on other origins (CORS);
        // nothing here depends on cookies or ambient credentials.
        if !self
            .headers
            .iter()
            .any(|(n, _)| *n == "Access-Control-Allow-Origin")
        {
            h.push_str("Access-Control-Allow-Origin: *\r\n");
        }
        h.push_str("X-Content-Type-Options: nosniff\r\n");
        if self.status != 204 && self.status != 304 && !(100..200).contains(&self.status) {
            let _ = write!(h, "Content-Length: {}\r\n", self.body_len());
        }
        if self.close {
            h.push_str("Connection: close\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// The reason phrase for a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_parsed_when_complete() {
        let text =
            b"PUT /upload/ab/c.jpg?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        assert!(Request::parse(&text[..20], 8).unwrap().is_none());
        let (req, used) = Request::parse(text, 8).unwrap().unwrap();
        assert_eq!(used, text.len() - 5);
        assert_eq!(req.method, "PUT");
        assert_eq!(req.path(), "/upload/ab/c.jpg");
        assert_eq!(req.header("content-length"), Some("5"));
        assert_eq!(req.body_length().unwrap(), 5);
        assert!(req.keep_alive());
    }

    #[test]
    fn framing_that_could_be_read_two_ways_is_refused() {
        let parse = |t: &str| Request::parse(t.as_bytes(), 8).unwrap().unwrap().0;
        let te = parse("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(
            te.body_length(),
            Err(HeadError::UnsupportedFraming)
        ));
        let two = parse("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert!(matches!(two.body_length(), Err(HeadError::BadLength)));
        let sign = parse("PUT / HTTP/1.1\r\nContent-Length: +5\r\n\r\n");
        assert!(matches!(sign.body_length(), Err(HeadError::BadLength)));
        let same = parse("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(same.body_length().unwrap(), 5);
    }

    #[test]
    fn too_many_headers_and_garbage_are_errors() {
        let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(
            Request::parse(many.as_bytes(), 2),
            Err(HeadError::TooManyHeaders)
        ));
        assert!(matches!(
            Request::parse(b"\x16\x03\x01\x02\x00\x01\r\n\r\n", 8),
            Err(HeadError::Malformed)
        ));
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let parse = |t: &str| Request::parse(t.as_bytes(), 8).unwrap().unwrap().0;
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(!parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
    }
}
