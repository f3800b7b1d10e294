//! Client-to-server connections (RFC 6120 §4–§8): one task per connection that owns its
//! socket, negotiates TLS, SASL and resource binding, then hands stanzas to the router.
//!
//! The task races "next bytes from the socket" against "next item from my queue", the
//! shutdown signal and the authentication deadline; nothing else touches the socket.

mod connection;
mod csi;
mod negotiation;
mod register;
mod sasl2;
pub mod sm;

use crate::router::Core;
use async_net::TcpStream;
use smol::future::FutureExt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

pub use connection::Connection;

/// Serves one accepted TCP connection to the end, containing any panic to this session.
///
/// Not an `async fn`: the returned future is exactly the session's, so that the memory a
/// connection holds while idle is not doubled by wrappers keeping a copy of their argument.
pub fn serve(
    server: Arc<Core>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
) -> impl Future<Output = ()> {
    let id = server.next_session_id();
    log::info!(
        "c2s:{id} connect from {peer}{}",
        if direct_tls { " (direct TLS)" } else { "" }
    );
    let conn = Connection::new(server, id, peer);
    // The connection's guards (router entry, counters) are released while unwinding.
    let session = contain(id, conn.run(tcp, direct_tls));
    async move {
        if let Some(reason) = session.await {
            log::info!("c2s:{id} disconnect: {reason}");
        }
    }
}

/// Serves one client over a WebSocket (RFC 7395) to the end: `io` is the connection the
/// HTTP server upgraded (after its `101 Switching Protocols`), `read` the bytes it read past
/// the request, `secure` whether the connection is under TLS (HTTPS, or the loopback port of
/// a TLS-terminating proxy). The same session as over TCP, with message framing.
pub fn serve_websocket(
    server: Arc<Core>,
    io: Box<dyn crate::net::transport::WsIo>,
    read: Vec<u8>,
    peer: SocketAddr,
    secure: bool,
) -> impl Future<Output = ()> {
    let id = server.next_session_id();
    log::info!("c2s:{id} connect from {peer} (WebSocket)");
    let conn = Connection::new(server, id, peer);
    let session = contain(id, conn.run_websocket(io, read, secure));
    async move {
        if let Some(reason) = session.await {
            log::info!("c2s:{id} disconnect: {reason}");
        }
    }
}

/// Runs one session's future; a panic inside it is logged and ends that session only.
///
/// The session is boxed once here, so that the task holds one copy of it.
pub fn contain<T>(id: u64, session: impl Future<Output = T>) -> impl Future<Output = Option<T>> {
    let session = Box::pin(session);
    async move {
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
/// An idle connection's memory is mostly its task's future: keep it small (the budget is
/// 9 KiB per idle authenticated session in all, TLS and kernel buffers aside).
#[cfg(test)]
mod footprint {
    fn size_of_future<F: std::future::Future>(_: &F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_connection_task_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let core = crate::modules::test_core(crate::config::Config {
            data_dir: dir.path().into(),
            ..Default::default()
        });
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        let tcp = async_net::TcpStream::try_from(s).unwrap();
        let conn = super::Connection::new(core.clone(), 1, peer);
        let session = conn.run(tcp, false);
        let boxed = size_of_future(&session);
        // The task itself holds only a box: wrappers do not copy the session.
        let task = size_of_future(&super::contain(1, session));
        assert!(task <= 128, "task future {task} bytes");
        // Debug builds lay futures out less tightly than release builds; this bound
        // holds for both (1144 bytes in a debug build when it was set) and catches an
        // unboxed handler future, a buffer kept across an await or a second copy of the
        // connection growing it again.
        assert!(boxed <= 1536, "session future {boxed} bytes");
        core.storage.close();
    }
}
