//! The byte streams under XMPP streams: TLS configuration (certificates, reload) and the
//! transport a connection reads and writes (plain TCP, or TLS over it).

pub mod selfsigned;
pub mod tls;
pub mod transport;
pub mod websocket;
pub mod x509;

pub use transport::Transport;

/// The next connection on `listener` (`TCP_NODELAY` set), or `None` once `shutdown` fires.
/// A failed accept (EMFILE and friends) is logged as `what`'s and retried after a pause,
/// instead of spinning. Every listener's accept loop (c2s, s2s, HTTP) waits here.
pub async fn next_connection(
    listener: &async_net::TcpListener,
    shutdown: &smol::channel::Receiver<()>,
    what: &str,
) -> Option<(async_net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = async { Some(listener.accept().await) };
        let stop = async {
            let _ = shutdown.recv().await;
            None
        };
        match smol::future::or(stop, accepted).await? {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return Some((tcp, peer));
            }
            Err(e) => {
                log::warn!("{what}: accept failed: {e}");
                smol::Timer::after(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
