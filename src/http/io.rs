//! An HTTP connection's byte stream (plain TCP behind a reverse proxy, or TLS) and the
//! buffered reader over it that cuts requests: heads with limits and timeouts, bodies of an
//! exact length.

use super::request::{HeadError, Request};
use futures_rustls::server::TlsStream;
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The socket, with or without TLS.
pub enum Io {
    Plain(async_net::TcpStream),
    /// Boxed: rustls' state is large.
    Tls(Box<TlsStream<async_net::TcpStream>>),
}

/// A client closing TLS without `close_notify` has simply gone: end of stream. HTTP frames
/// its own messages (Content-Length), so a truncation is never taken for a whole body.
fn eof_ok(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        r => r,
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf).map(eof_ok),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            Io::Tls(s) => Pin::new(&mut **s).poll_close(cx),
        }
    }
}

/// Limits and timeouts of one connection (from `HttpConfig`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub head_timeout: Duration,
    pub transfer_timeout: Duration,
}

/// Size of a body chunk between the socket and the disk.
pub const CHUNK: usize = 32 * 1024;

/// A file read or written from the executor: the blocking calls run on smol's blocking
/// pool, with a pipe of [`CHUNK`] * 2 bytes between. (`smol::fs::File` would do the same with
/// blocking's default pipe of 8 MiB per open file: 8 MiB of heap per transfer, measured.)
pub type DiskFile = smol::Unblock<std::fs::File>;

/// Wraps an open file for async use with a small pipe.
pub fn disk_file(file: std::fs::File) -> DiskFile {
    smol::Unblock::with_capacity(CHUNK * 2, file)
}

/// One HTTP connection: the stream and the bytes read past the current request's head.
pub struct Conn {
    pub io: Io,
    pub peer: SocketAddr,
    /// True on HTTPS (false behind a reverse proxy on the plain port).
    pub secure: bool,
    pub limits: ConnLimits,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes of the current request's body not read yet.
    body_left: u64,
    /// The client sent `Expect: 100-continue` and waits for it before the body.
    expects_continue: bool,
    /// Reading the body failed (the client stalled or went): nothing more to read.
    broken: bool,
}

/// `fut`, or a `TimedOut` error after `d`.
pub async fn within<T>(
    d: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    fut.or(async {
        smol::Timer::after(d).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

impl Conn {
    pub fn new(io: Io, peer: SocketAddr, secure: bool, limits: ConnLimits) -> Conn {
        Conn {
            io,
            peer,
            secure,
            limits,
            buf: Vec::new(),
            pos: 0,
            body_left: 0,
            expects_continue: false,
            broken: false,
        }
    }

    /// Reads the next request's head. `Ok(None)`: the client closed the connection between
    /// requests (or stayed idle past the head timeout without sending a byte).
    pub async fn read_head(&mut self) -> Result<Option<Request>, HeadError> {
        // The whole head must arrive within the timeout: a client trickling header bytes
        // (slowloris) is closed when it runs out.
        let deadline = std::time::Instant::now() + self.limits.head_timeout;
        loop {
            if self.pos < self.buf.len() {
                match Request::parse(&self.buf[self.pos..], self.limits.max_headers)? {
                    Some((req, used)) => {
                        self.pos += used;
                        self.body_left = req.body_length()?;
                        self.expects_continue = req
                            .header("expect")
                            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
                        return Ok(Some(req));
                    }
                    None if self.buf.len() - self.pos >= self.limits.max_head_bytes => {
                        return Err(HeadError::TooLarge)
                    }
                    None => {}
                }
            }
            self.compact();
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let want = (self.limits.max_head_bytes + 1).min(self.buf.len() + 4096);
            let start = self.buf.len();
            self.buf.resize(want.max(start + 1), 0);
            let r = within(left, self.io.read(&mut self.buf[start..])).await;
            match r {
                Ok(0) => {
                    self.buf.truncate(start);
                    return if start == self.pos {
                        Ok(None)
                    } else {
                        Err(HeadError::Incomplete)
                    };
                }
                Ok(n) => self.buf.truncate(start + n),
                Err(e) if e.kind() == io::ErrorKind::TimedOut && start == self.pos => {
                    self.buf.truncate(start);
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.buf.truncate(start);
                    return Err(HeadError::TimedOut);
                }
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(HeadError::Io(e));
                }
            }
        }
    }

    /// Drops the consumed bytes from the buffer (and its capacity when it is empty, so an
    /// idle keep-alive connection holds no buffer).
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
    }

    /// Bytes of the current request's body not read yet.
    pub fn body_left(&self) -> u64 {
        self.body_left
    }

    /// Reads the next bytes of the current request's body into `out`; `Ok(0)` when the
    /// body is complete. A client that closes early or stalls past the transfer timeout
    /// gets an error.
    pub async fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.body_left == 0 || out.is_empty() {
            return Ok(0);
        }
        if self.expects_continue {
            self.expects_continue = false;
            self.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let max = out
            .len()
            .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        let n = if self.pos < self.buf.len() {
            let n = max.min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.buf.len() {
                self.compact();
            }
            n
        } else {
            let read = within(self.limits.transfer_timeout, self.io.read(&mut out[..max])).await;
            self.broken = !matches!(read, Ok(n) if n > 0);
            let n = read?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before the end of the body",
                ));
            }
            n
        };
        self.body_left -= n as u64;
        Ok(n)
    }

    /// Reads and drops what is left of a body the handler refused without reading (at most
    /// `max` bytes, for at most `time`), before the connection is closed: a client still
    /// sending it would otherwise get a TCP reset instead of the answer already written
    /// (the "lingering close" of HTTP/1.1 servers). A client waiting for
    /// `100 Continue` never sends the body, and one whose body already stalled or ended
    /// will not send more: nothing to drop.
    pub async fn discard_body(&mut self, max: u64, time: Duration) {
        if self.expects_continue || self.broken || self.body_left > max {
            return;
        }
        let mut buf = vec![0u8; 8192];
        let _ = within(time, async {
            while self.read_body(&mut buf).await? > 0 {}
            Ok(())
        })
        .await;
    }

    /// Writes all of `data` (and flushes it), or fails after the transfer timeout without
    /// progress.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let t = self.limits.transfer_timeout;
        within(t, async {
            self.io.write_all(data).await?;
            self.io.flush().await
        })
        .await
    }

    /// Bytes read past the head that belong to the next protocol after an upgrade
    /// (WebSocket frames a client sent right behind its handshake).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf = Vec::new();
        self.pos = 0;
        rest
    }

    /// Closes the connection (TLS close_notify, then FIN), bounded by the head timeout.
    pub async fn close(&mut self) {
        let t = self.limits.head_timeout;
        let _ = within(t, self.io.close()).await;
    }
}
