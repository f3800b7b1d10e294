//! Typed server settings with defaults that serve at once (`roost serve` with no arguments).

use crate::xml::framer::Limits;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything `run` needs. `main.rs` fills it from the command line; tests build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one domain served (normalized by `jid::nameprep`).
    pub domain: String,
    /// Holds `roost.db` and, without `cert`/`key`, the self-signed certificate.
    pub data_dir: PathBuf,
    /// Addresses to listen on; `::` listens on IPv6 and (dual-stack) IPv4.
    pub bind: Vec<IpAddr>,
    /// Client port with STARTTLS (RFC 6120); 0 picks a free port.
    pub c2s_port: u16,
    /// Client port with direct TLS (XEP-0368); 0 picks a free port.
    pub c2s_tls_port: u16,
    /// PEM certificate chain and private key (as Let's Encrypt writes them).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Worker threads of the executor (under `run` the main thread is the first). One is
    /// the default: at a family's load a second one mostly adds cross-thread wake-ups (more
    /// CPU per message, same latency) and costs a stack and a malloc arena.
    pub threads: usize,
    /// Lets clients authenticate without TLS (PLAIN and SCRAM on a plaintext stream).
    pub insecure_allow_plaintext: bool,
    /// Stanza size and nesting limits.
    pub limits: Limits,
    /// Close connections that have not authenticated and bound within this time.
    pub auth_timeout: Duration,
    /// Ping a bound client that has been silent this long (XEP-0199)…
    pub ping_interval: Duration,
    /// …and close its stream if the ping is not answered within this.
    pub ping_timeout: Duration,
    /// How long a session whose connection broke stays resumable (XEP-0198).
    pub resume_timeout: Duration,
    /// Most stanzas a client may leave unacknowledged (XEP-0198) before it is closed.
    pub sm_max_unacked: usize,
    /// Most simultaneous connections in all.
    pub max_connections: usize,
    /// Most simultaneous unauthenticated connections from one IP address.
    pub max_unauth_per_ip: usize,
    /// SCRAM iteration count for new and changed passwords.
    pub scram_iterations: u32,
    /// Most items in one roster (a roster set beyond it gets `not-allowed`).
    pub roster_limit: usize,
    /// Most offline messages kept for one account; beyond it senders get
    /// `service-unavailable`.
    pub offline_limit: usize,
    /// Days an archived message is kept (XEP-0313); 0 keeps messages forever.
    pub archive_expires_days: u32,
    /// XEP-0157 contact addresses (URIs such as `mailto:` or `xmpp:`) for the server's
    /// administrators and for abuse reports.
    pub contact_admin: Vec<String>,
    pub contact_abuse: Vec<String>,
    /// The TURN server (coturn) whose services and credentials clients get (XEP-0215);
    /// `None` answers an empty list.
    pub turn: Option<TurnConfig>,
    /// How long a XEP-0484 FAST token stays valid; zero turns FAST off.
    pub fast_token_ttl: Duration,
    /// A token older than this is replaced at its next use (XEP-0484 §3.5).
    pub fast_token_rotate: Duration,
    /// In-band registration (XEP-0077) without an invitation; off by default.
    pub open_registration: bool,
    /// With open registration: one new account per IP address per this long.
    pub registration_interval: Duration,
    /// Group chats (XEP-0045); `None` turns them off.
    pub muc: Option<MucConfig>,
    /// Federation (server-to-server, RFC 6120); `None` turns it off.
    pub s2s: Option<S2sConfig>,
    /// Push notifications (XEP-0357); `None` turns them off.
    pub push: Option<PushConfig>,
    /// The HTTP service: upload, WebSocket, host-meta.
    pub http: HttpConfig,
    /// XEP-0363 file upload on `upload.<domain>`.
    pub upload: UploadConfig,
}

/// The HTTP service (`src/http/`): HTTPS on the client addresses, optionally plain HTTP on
/// loopback for a reverse proxy.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// False: no HTTP listener at all (and no upload service, which needs it).
    pub enabled: bool,
    /// HTTPS port on every `bind` address; 0 picks a free port.
    pub https_port: u16,
    /// Plain HTTP port on loopback only (127.0.0.1 and ::1), for a reverse proxy that
    /// terminates TLS; `None`: no plain listener.
    pub http_port: Option<u16>,
    /// The base URL handed out in links (upload slots, host-meta), without a trailing
    /// `/`; `None`: `https://<domain>:<https_port>`.
    pub external_url: Option<String>,
    /// XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`, and its link in host-meta.
    pub websocket: bool,
    /// Most bytes in a request's head (request line and headers).
    pub max_head_bytes: usize,
    /// Most header fields in a request.
    pub max_headers: usize,
    /// Time for the TLS handshake and for each request head (also the keep-alive idle time).
    pub head_timeout: Duration,
    /// Longest wait for the next bytes of a body being received or room to send the next
    /// ones: a stalled transfer is closed.
    pub transfer_timeout: Duration,
    /// Most simultaneous HTTP connections from one IP address.
    pub max_per_ip: usize,
    /// Most simultaneous HTTP connections in all.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            enabled: true,
            https_port: 5281,
            http_port: None,
            external_url: None,
            websocket: true,
            max_head_bytes: 16 * 1024,
            max_headers: 48,
            head_timeout: Duration::from_secs(20),
            transfer_timeout: Duration::from_secs(60),
            max_per_ip: 16,
            max_connections: 512,
        }
    }
}

/// XEP-0363 file upload limits.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    /// False: no `upload.<domain>` service.
    pub enabled: bool,
    /// Largest file, in bytes.
    pub max_size: u64,
    /// Most bytes of stored files per account.
    pub quota: u64,
    /// Most bytes one account may upload in 24 hours.
    pub daily_quota: u64,
    /// Most bytes of stored files in all.
    pub disk_cap: u64,
    /// Days a file is kept; 0 keeps files forever. `None`: `archive_expires_days`.
    pub expires_days: Option<u32>,
    /// How long a slot may wait for its upload.
    pub slot_timeout: Duration,
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        const MIB: u64 = 1024 * 1024;
        UploadConfig {
            enabled: true,
            max_size: 100 * MIB,
            quota: 1024 * MIB,
            daily_quota: 512 * MIB,
            disk_cap: 10 * 1024 * MIB,
            expires_days: None,
            slot_timeout: Duration::from_secs(600),
        }
    }
}

/// Push notification settings.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// Send the sender and the body to the app server (they then pass through the app
    /// vendor's and Apple's or Google's servers).
    pub include_body: bool,
    /// How long a session with push enabled stays resumable (XEP-0198).
    pub hibernation: Duration,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            include_body: false,
            hibernation: Duration::from_secs(72 * 3600),
        }
    }
}

/// Federation's settings.
#[derive(Clone, Debug)]
pub struct S2sConfig {
    /// Server port with STARTTLS (RFC 6120); 0 picks a free port.
    pub port: u16,
    /// Server port with direct TLS (XEP-0368); 0 picks a free port.
    pub tls_port: u16,
    /// PEM files of certificate authorities trusted for peers besides the system's.
    pub trust: Vec<PathBuf>,
    /// Peers must present a valid certificate (no dialback).
    pub secure_auth: bool,
    /// Close a server-to-server stream after this long without a stanza.
    pub idle_timeout: Duration,
    /// Most stanzas waiting for one domain's connection.
    pub queue_limit: usize,
    /// Stanzas per second one incoming server-to-server connection may send (twice as
    /// many may come at once); past it the connection is not read until the rate allows.
    pub stanza_rate: u32,
    /// Connections one address may open to the s2s ports per minute; more are closed at
    /// once.
    pub connects_per_minute: u32,
    /// Offer and ask for bidirectional streams (XEP-0288): one TCP connection per peer.
    pub bidi: bool,
    /// Tests only: where to reach a domain (address, direct TLS) instead of DNS. Empty in
    /// production: no flag sets it.
    pub static_hosts: Vec<(String, std::net::SocketAddr, bool)>,
}

impl Default for S2sConfig {
    fn default() -> S2sConfig {
        S2sConfig {
            port: 5269,
            tls_port: 5270,
            trust: Vec::new(),
            secure_auth: false,
            idle_timeout: Duration::from_secs(600),
            queue_limit: 256,
            stanza_rate: 100,
            connects_per_minute: 30,
            bidi: true,
            static_hosts: Vec::new(),
        }
    }
}

/// The group chat service's settings.
#[derive(Clone, Debug)]
pub struct MucConfig {
    /// The service's domain; `None`: `groups.<domain>`.
    pub domain: Option<String>,
    /// The family room's name (its localpart) made at first start; `None`: none.
    pub family_room: Option<String>,
    /// Most occupants in one room.
    pub max_occupants: usize,
    /// Most rooms one account owns.
    pub rooms_per_account: usize,
    /// Messages kept per room for the history sent on join.
    pub history: usize,
    /// Largest room message in bytes.
    pub max_message_size: usize,
}

impl Default for MucConfig {
    fn default() -> MucConfig {
        MucConfig {
            domain: None,
            family_room: Some("family".into()),
            max_occupants: 100,
            rooms_per_account: 20,
            history: 50,
            max_message_size: 64 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            domain: "localhost".into(),
            data_dir: PathBuf::from("./roost-data"),
            bind: vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
            c2s_port: 5222,
            c2s_tls_port: 5223,
            cert: None,
            key: None,
            threads: 1,
            insecure_allow_plaintext: false,
            limits: Limits::default(),
            auth_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(300),
            ping_timeout: Duration::from_secs(60),
            // Monal hibernates for a long time.
            resume_timeout: Duration::from_secs(3600),
            sm_max_unacked: 1000,
            max_connections: 20_000,
            max_unauth_per_ip: 32,
            scram_iterations: 4096,
            roster_limit: 1000,
            offline_limit: 1000,
            archive_expires_days: 0,
            contact_admin: Vec::new(),
            contact_abuse: Vec::new(),
            turn: None,
            // Prosody's defaults: three weeks, rotated daily.
            fast_token_ttl: Duration::from_secs(21 * 86_400),
            fast_token_rotate: Duration::from_secs(86_400),
            open_registration: false,
            registration_interval: Duration::from_secs(600),
            muc: Some(MucConfig::default()),
            s2s: Some(S2sConfig::default()),
            push: Some(PushConfig::default()),
            http: HttpConfig::default(),
            upload: UploadConfig::default(),
        }
    }
}

impl Config {
    /// Days an uploaded file is kept (0: forever).
    pub fn upload_expires_days(&self) -> u32 {
        self.upload
            .expires_days
            .unwrap_or(self.archive_expires_days)
    }
}

/// The TURN server roost hands out (from `--turn-host` and friends).
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// Host name (or address) clients reach coturn at.
    pub host: String,
    /// STUN/TURN port over UDP and TCP (3478).
    pub port: u16,
    /// TURN over TLS port (`turns`), when coturn has a certificate.
    pub tls_port: Option<u16>,
    /// coturn's `static-auth-secret`.
    pub secret: Vec<u8>,
    /// The file it was read from, re-read on SIGHUP; `None`: the secret never changes.
    pub secret_file: Option<std::path::PathBuf>,
    /// How long handed-out credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
