//! The byte stream under an XMPP stream: plain TCP, or TLS over it (RFC 6120 §5, XEP-0368).

use super::websocket::{self, Decoder, Piece, WsError};
use crate::sasl::ChannelBindings;
use crate::stanza::{StreamCondition, StreamError};
use crate::xml::reader::StreamReader;
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::Async;
use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A connection's transport.
pub enum Transport {
    /// The socket itself: 16 bytes, where `async_net::TcpStream` is 120 (an `Arc` and two
    /// cached readiness futures) in every connection's future.
    Plain(Async<TcpStream>),
    /// Boxed: rustls state is large and most of the enum's life is spent in this variant.
    ///
    /// What an idle TLS session keeps (rustls 0.23 buffered API, measured with massif):
    /// rustls' receive buffer, 4096 bytes (`DeframerVecBuffer::prepare_read` sizes it to
    /// 4 KiB before every `read_tls` and never below once allocated; only the unbuffered
    /// API would let us free it while idle); this box, ~1.2 KB (`ServerConnection`); two
    /// AEAD keys, 560 bytes each (ring's `LessSafeKey` is sized for AES-GCM whatever the
    /// suite); the handshake deframer's span buffer, 640 bytes, and ~200 bytes of queue
    /// capacity, both kept by rustls after the handshake; the TLS 1.3 traffic key schedule,
    /// ~220 bytes (key updates, `tls-exporter`). None of it can be released through the
    /// buffered API.
    Tls(Box<TlsStream<Async<TcpStream>>>),
    /// TLS as the client: server-to-server streams we open (RFC 6120 §5, XEP-0368).
    ClientTls(Box<futures_rustls::client::TlsStream<Async<TcpStream>>>),
    /// XMPP over WebSocket (RFC 7395): the connection the HTTP server upgraded.
    WebSocket(Box<WsStream>),
    /// After the socket was handed to a TLS handshake that failed, or after close.
    Closed,
}

/// A client that closes TLS without `close_notify` (most mobile clients going away, every
/// client killed) has simply disconnected: rustls reports it as an `UnexpectedEof` error
/// whose text carries a URL into its manual. It is an end of stream here, so the session
/// logs "connection closed by client". XMPP has its own end (`</stream:stream>`), so a
/// truncation cannot be mistaken for a complete conversation.
fn eof_without_close_notify(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        r => r,
    }
}

/// A failed handshake in plain words for the log (the session logs "TLS handshake failed:
/// …" at info); rustls' own description, with its type names, goes to the debug log.
fn plain_handshake_error(e: io::Error) -> io::Error {
    use rustls::{AlertDescription as A, Error as E};
    let plain = if e.kind() == io::ErrorKind::UnexpectedEof {
        "the client closed the connection during the handshake"
    } else {
        match e.get_ref().and_then(|i| i.downcast_ref::<E>()) {
            Some(E::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::UnsupportedCertificate
                | A::CertificateRevoked,
            )) => {
                "the client does not accept the server's certificate (a self-signed one must \
                 be accepted in the app: compare `roost cert-fingerprint`; or use --cert)"
            }
            Some(E::AlertReceived(_)) => "the client gave up the handshake",
            Some(E::PeerIncompatible(_)) => {
                "the client's TLS has no version or cipher in common with the server's"
            }
            Some(
                E::InvalidMessage(_)
                | E::InappropriateMessage { .. }
                | E::InappropriateHandshakeMessage { .. }
                | E::PeerMisbehaved(_)
                | E::PeerSentOversizedRecord
                | E::DecryptError,
            ) => "the client sent data that is not valid TLS",
            _ => return e,
        }
    };
    log::debug!("TLS handshake failed: {e}");
    io::Error::new(e.kind(), plain)
}

/// The byte stream under a WebSocket: whatever the HTTP server upgraded (TLS or plain TCP).
pub trait WsIo: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> WsIo for T {}

/// In the write buffer of a WebSocket session, the end of one message: every top-level
/// element is a message of its own (RFC 7395 §3.3.3). U+0000 cannot occur in anything we
/// serialize (XML 1.0 forbids it and `xml::escape_into` replaces it), so it cannot be
/// mistaken for content.
pub const MESSAGE_END: char = '\0';

/// A WebSocket connection carrying XMPP (RFC 7395).
pub struct WsStream {
    io: Box<dyn WsIo>,
    decoder: Decoder,
    /// Bytes read after the end of a message, decoded before the socket is read again: a
    /// message is handed to the reader on its own.
    rest: Vec<u8>,
    /// Control frames (pongs, our ping) waiting for the next write.
    control: Vec<u8>,
    /// Under TLS (HTTPS, or a reverse proxy's on a loopback port).
    secure: bool,
    /// The close code we send when we close (RFC 6455 §7.4).
    close_code: u16,
}

impl WsStream {
    /// Reads, decodes and hands the reader at most one complete message.
    fn poll_feed(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut [u8],
        reader: &mut StreamReader,
    ) -> Poll<io::Result<usize>> {
        if !self.rest.is_empty() {
            let mut rest = std::mem::take(&mut self.rest);
            let (used, stop) = self.decode(&mut rest, reader);
            if used < rest.len() {
                rest.drain(..used);
                self.rest = rest;
            }
            if let Some(r) = stop {
                return Poll::Ready(r);
            }
        }
        let n = match Pin::new(&mut *self.io).poll_read(cx, chunk) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        let (used, stop) = self.decode(&mut chunk[..n], reader);
        if used < n {
            self.rest.extend_from_slice(&chunk[used..n]);
        }
        Poll::Ready(stop.unwrap_or(Ok(n)))
    }

    /// Decodes `buf` up to the end of a message, the client's close or an error; returns
    /// how much it used and, if it stopped there, what the read yields.
    fn decode(
        &mut self,
        buf: &mut [u8],
        reader: &mut StreamReader,
    ) -> (usize, Option<io::Result<usize>>) {
        let mut pos = 0;
        loop {
            let (used, piece) = match self.decoder.next(&mut buf[pos..]) {
                Ok(p) => p,
                Err(e) => {
                    self.close_code = e.close_code();
                    reader.fail(stream_error(e));
                    return (buf.len(), Some(Ok(buf.len().max(1))));
                }
            };
            let more = matches!(piece, Piece::NeedMore);
            let stop = match piece {
                Piece::Data(d) => {
                    reader.push(d);
                    None
                }
                Piece::End => {
                    reader.end_message();
                    Some(Ok((pos + used).max(1)))
                }
                Piece::Ping(p) => {
                    // Bounded: a client that pings faster than it reads gets one answer.
                    if self.control.len() < 1024 {
                        websocket::encode(&mut self.control, websocket::opcode::PONG, &p);
                    }
                    None
                }
                Piece::Pong | Piece::NeedMore => None,
                // The client closed the WebSocket (without `<close/>`, or after it): the
                // end of the stream.
                Piece::Close(_) => Some(Ok(0)),
            };
            pos += used;
            if stop.is_some() {
                return (pos, stop);
            }
            if more {
                return (pos, None);
            }
        }
    }
}

/// The stream error a broken WebSocket deserves.
fn stream_error(e: WsError) -> StreamError {
    let condition = match e {
        WsError::TooBig => StreamCondition::PolicyViolation,
        WsError::Binary => StreamCondition::BadFormat,
        WsError::Protocol(_) => StreamCondition::NotWellFormed,
    };
    StreamError::with_text(condition, e.to_string())
}

impl Transport {
    /// A WebSocket transport over an upgraded connection; `read` holds bytes the HTTP
    /// server read past the upgrade request.
    pub fn websocket(
        io: Box<dyn WsIo>,
        read: Vec<u8>,
        secure: bool,
        max_message: usize,
    ) -> Transport {
        Transport::WebSocket(Box::new(WsStream {
            io,
            decoder: Decoder::new(max_message),
            rest: read,
            control: Vec::new(),
            secure,
            close_code: websocket::close_code::NORMAL,
        }))
    }

    /// True for a WebSocket: the session frames what it writes as messages.
    pub fn is_websocket(&self) -> bool {
        matches!(self, Transport::WebSocket(_))
    }

    /// Queues a WebSocket ping (a liveness check that every WebSocket client answers);
    /// false on other transports.
    pub fn queue_ping(&mut self) -> bool {
        match self {
            Transport::WebSocket(ws) => {
                websocket::encode(&mut ws.control, websocket::opcode::PING, b"roost");
                true
            }
            _ => false,
        }
    }

    /// True if the transport has something of its own to write (a pong).
    pub fn wants_write(&self) -> bool {
        matches!(self, Transport::WebSocket(ws) if !ws.control.is_empty())
    }

    /// Reads and hands what was read to `reader`: bytes of a byte stream, or at most one
    /// WebSocket message. `Ok(0)` is end of stream; the chunk need not be kept across a
    /// wait.
    pub fn poll_feed(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut [u8],
        reader: &mut StreamReader,
    ) -> Poll<io::Result<usize>> {
        if let Transport::WebSocket(ws) = self {
            return ws.poll_feed(cx, chunk, reader);
        }
        let r = self.poll_read(cx, chunk);
        if let Poll::Ready(Ok(n)) = r {
            reader.push(&chunk[..n]);
        }
        r
    }

    /// A plain transport over an accepted socket.
    pub fn plain(tcp: async_net::TcpStream) -> Transport {
        let shared: Arc<Async<TcpStream>> = tcp.into();
        match Arc::try_unwrap(shared) {
            Ok(tcp) => Transport::Plain(tcp),
            // Not reached (a freshly accepted stream has no clones); a duplicate of the
            // descriptor serves as well.
            Err(shared) => match shared.get_ref().try_clone().and_then(Async::new) {
                Ok(tcp) => Transport::Plain(tcp),
                Err(e) => {
                    log::warn!("cannot take over an accepted socket: {e}");
                    Transport::Closed
                }
            },
        }
    }

    /// Reads some bytes; `Ok(0)` is end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(s) => eof_without_close_notify(s.read(buf).await),
            Transport::ClientTls(s) => eof_without_close_notify(s.read(buf).await),
            Transport::WebSocket(s) => s.io.read(buf).await,
            Transport::Closed => Ok(0),
        }
    }

    /// Reads some bytes if some are ready, else arranges for a wake-up when they are: the
    /// caller's buffer need not be kept across the wait. `Ok(0)` is end of stream.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(&mut **s)
                .poll_read(cx, buf)
                .map(eof_without_close_notify),
            Transport::ClientTls(s) => Pin::new(&mut **s)
                .poll_read(cx, buf)
                .map(eof_without_close_notify),
            Transport::WebSocket(s) => Pin::new(&mut *s.io).poll_read(cx, buf),
            Transport::Closed => Poll::Ready(Ok(0)),
        }
    }

    /// Writes all of `data` and flushes it to the socket. On a WebSocket, each part of
    /// `data` up to a [`MESSAGE_END`] is a text message, after the pending control frames.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.write_all(data).await,
            Transport::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Transport::ClientTls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Transport::WebSocket(s) => {
                let mut frames = std::mem::take(&mut s.control);
                frames.reserve(data.len() + 16);
                for message in data.split(|&b| b == MESSAGE_END as u8) {
                    if !message.is_empty() {
                        websocket::encode(&mut frames, websocket::opcode::TEXT, message);
                    }
                }
                s.io.write_all(&frames).await?;
                s.io.flush().await
            }
            Transport::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Shuts the connection down (TLS close_notify, then TCP FIN).
    pub async fn shutdown(&mut self) {
        match std::mem::replace(self, Transport::Closed) {
            Transport::Plain(s) => {
                let _ = s.get_ref().shutdown(std::net::Shutdown::Both);
            }
            Transport::Tls(mut s) => {
                let _ = s.close().await;
                let _ = s.get_ref().0.get_ref().shutdown(std::net::Shutdown::Both);
            }
            Transport::ClientTls(mut s) => {
                let _ = s.close().await;
                let _ = s.get_ref().0.get_ref().shutdown(std::net::Shutdown::Both);
            }
            Transport::WebSocket(mut s) => {
                // RFC 6455 §7.1.2: our close frame; the connection then closes under it.
                let mut frames = std::mem::take(&mut s.control);
                websocket::encode_close(&mut frames, s.close_code);
                let _ = s.io.write_all(&frames).await;
                let _ = s.io.close().await;
            }
            Transport::Closed => {}
        }
    }

    /// True once TLS is established (for a WebSocket: under the HTTP connection).
    pub fn is_tls(&self) -> bool {
        match self {
            Transport::Tls(_) | Transport::ClientTls(_) => true,
            Transport::WebSocket(ws) => ws.secure,
            _ => false,
        }
    }

    /// Runs the client side of a TLS handshake on the plain socket (s2s streams we open).
    pub async fn connect_tls(
        &mut self,
        connector: &futures_rustls::TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<()> {
        let Transport::Plain(tcp) = std::mem::replace(self, Transport::Closed) else {
            return Err(io::Error::other("TLS is already established"));
        };
        let tls = connector.connect(name, tcp).await?;
        *self = Transport::ClientTls(Box::new(tls));
        Ok(())
    }

    /// The certificate chain the peer presented in the TLS handshake, if any.
    pub fn peer_certificates(&self) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        let certs = match self {
            Transport::Tls(s) => s.get_ref().1.peer_certificates(),
            Transport::ClientTls(s) => s.get_ref().1.peer_certificates(),
            _ => None,
        }?;
        Some(certs.iter().map(|c| c.clone().into_owned()).collect())
    }

    /// Runs the server side of a TLS handshake on the plain socket.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let Transport::Plain(tcp) = std::mem::replace(self, Transport::Closed) else {
            return Err(io::Error::other("TLS is already established"));
        };
        let tls = acceptor.accept(tcp).await.map_err(plain_handshake_error)?;
        *self = Transport::Tls(Box::new(tls));
        Ok(())
    }

    /// The channel bindings this connection can offer to SASL: `tls-server-end-point`
    /// (RFC 5929) always under TLS, `tls-exporter` (RFC 9266) only on TLS 1.3, where its
    /// security does not depend on the extended master secret.
    pub fn channel_bindings(&self, server_end_point: Option<&[u8]>) -> ChannelBindings {
        let Transport::Tls(s) = self else {
            return ChannelBindings::default();
        };
        let conn = s.get_ref().1;
        let tls_exporter = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            conn.export_keying_material(
                [0u8; crate::sasl::TLS_EXPORTER_LEN],
                crate::sasl::TLS_EXPORTER_LABEL,
                None,
            )
            .ok()
            .map(|k| k.to_vec())
        } else {
            None
        };
        ChannelBindings {
            tls_exporter,
            tls_server_end_point: server_end_point.map(<[u8]>::to_vec),
        }
    }
}
