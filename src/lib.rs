//! roost: a small-footprint XMPP server (RFC 6120, RFC 6121) for a family on a Raspberry Pi.
//!
//! `run(config)` boots a whole server, so tests start real servers in-process.
#![forbid(unsafe_code)]

pub mod backup;
pub mod c2s;
pub mod circles;
pub mod config;
pub mod http;
pub mod invite;
pub mod jid;
pub mod kick;
pub mod modules;
pub mod muc;
pub mod net;
pub mod ns;
pub mod pie;
pub mod roles;
pub mod router;
pub mod s2s;
pub mod sasl;
pub mod server;
pub mod session;
pub mod stanza;
pub mod storage;
pub mod subscription;
pub mod turn_setup;
pub mod upload;
pub mod util;
pub mod xml;

pub use config::Config;
pub use router::Core;
pub use server::{run, start, Running};
