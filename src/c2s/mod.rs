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
    let result = AssertUnwindSafe(conn.run(tcp, direct_tls))
        .catch_unwind()
        .await;
    match result {
        Ok(reason) => log::info!("c2s:{id} disconnect: {reason}"),
        // The connection's guards (router entry, counters) were released while unwinding.
        Err(_) => log::error!("c2s:{id} disconnect: the session panicked (a bug); closed it"),
    }
}
