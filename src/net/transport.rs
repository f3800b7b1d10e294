//! The byte stream under an XMPP stream: plain TCP, or TLS over it (RFC 6120 §5, XEP-0368).

use crate::sasl::ChannelBindings;
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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

impl Transport {
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
            Transport::Closed => Poll::Ready(Ok(0)),
        }
    }

    /// Writes all of `data` and flushes it to the socket.
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
            Transport::Closed => {}
        }
    }

    /// True once TLS is established.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_) | Transport::ClientTls(_))
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
