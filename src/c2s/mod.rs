//! Client-to-server connections (RFC 6120 §4–§8): one task per connection that owns its
//! socket, negotiates TLS, SASL and resource binding, then hands stanzas to the router.
//!
//! The task races "next bytes from the socket" against "next item from my queue", the
//! shutdown signal and the authentication deadline; nothing else touches the socket.

pub mod sasl;
mod stream;
mod transport;

use crate::server::Server;
use async_net::TcpStream;
use smol::future::FutureExt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

pub use stream::Connection;
pub use transport::Transport;

/// Serves one accepted TCP connection to the end, containing any panic to this session.
pub async fn serve(server: Arc<Server>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let id = server.next_session_id();
    log::info!(
        "c2s:{id} connect from {peer}{}",
        if direct_tls { " (direct TLS)" } else { "" }
    );
    let conn = Connection::new(server.clone(), id, peer);
    // The connection's guards (router entry, counters) are released while unwinding.
    if let Some(reason) = contain(id, conn.run(tcp, direct_tls)).await {
        log::info!("c2s:{id} disconnect: {reason}");
    }
}

/// Runs one session's future; a panic inside it is logged and ends that session only.
pub async fn contain<T>(id: u64, session: impl std::future::Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(session).catch_unwind().await {
        Ok(v) => Some(v),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("c2s:{id} disconnect: the session panicked (a bug): {what}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::contain;

    #[test]
    fn a_panicking_session_is_contained_and_others_go_on() {
        let ex = smol::Executor::new();
        smol::block_on(ex.run(async {
            let bad = ex.spawn(contain(1, async {
                if std::hint::black_box(true) {
                    panic!("a bug in one session");
                }
                7
            }));
            let good = ex.spawn(contain(2, async { 42 }));
            assert_eq!(bad.await, None);
            assert_eq!(good.await, Some(42));
        }));
    }
}
