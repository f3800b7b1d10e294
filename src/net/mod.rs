//! The byte streams under XMPP streams: TLS configuration (certificates, reload) and the
//! transport a connection reads and writes (plain TCP, or TLS over it).

pub mod tls;
pub mod transport;
pub mod websocket;

pub use transport::Transport;
