//! Test harness: boots a real roost on 127.0.0.1 port 0 with a temporary data directory, and a
//! blocking scripted XMPP client that speaks to it over real sockets (plain, STARTTLS, direct
//! TLS). Every read has a timeout, so no test can hang.
#![allow(dead_code)]

pub mod http;

use roost::sasl::{client::ScramClient, Mechanism, StoredCredentials};
use roost::xml::framer::Limits;
use roost::xml::reader::{Event, StreamHeader, StreamReader};
use roost::xml::Element;
use roost::{Config, Running};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A command running the `roost` binary, through the cross runner (qemu) when the tests
/// run for another architecture (cross/test-qemu.sh exports the runners).
pub fn roost_cmd() -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_roost");
    let runner = match std::env::consts::ARCH {
        "aarch64" => std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok(),
        "arm" => std::env::var("CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER").ok(),
        _ => None,
    };
    let mut parts = runner.as_deref().unwrap_or("").split_whitespace();
    match parts.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(parts).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    }
}

/// A loopback port that is free for TCP and UDP now, for a server (or coturn) the test
/// starts right after on a port it must know in advance. Taken below the kernel's
/// ephemeral range (32768–60999 by default), where the port-0 listeners and client
/// sockets of the tests running at the same time get theirs, so nothing else takes it in
/// between; where each process starts depends on its PID, so two test binaries running
/// at once start apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// How long any single read may wait.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server with its own temporary data directory; stopped on drop.
pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub domain: String,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts a server after `tweak` adjusts the test configuration.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::start_in(dir, tweak)
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            domain: "localhost".into(),
            data_dir: dir.path().to_path_buf(),
            bind: vec!["127.0.0.1".parse().unwrap()],
            c2s_port: 0,
            c2s_tls_port: 0,
            http: roost::config::HttpConfig {
                https_port: 0,
                ..Default::default()
            },
            threads: 2,
            scram_iterations: 4096,
            // Federation only where a test asks for it (tests/s2s.rs): no DNS lookups.
            s2s: None,
            ..Config::default()
        };
        tweak(&mut config);
        let domain = config.domain.clone();
        let running = roost::start(config).expect("server starts");
        TestServer {
            running: Some(running),
            dir,
            domain,
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("server running")
    }

    /// The server's core: for tests that plug hosted services or a remote domain in
    /// through the public routing API.
    pub fn core(&self) -> &Arc<roost::Core> {
        &self.running().core
    }

    pub fn c2s_addr(&self) -> SocketAddr {
        self.running().c2s_addrs[0]
    }

    pub fn s2s_addr(&self) -> SocketAddr {
        self.running().s2s_addrs[0]
    }

    pub fn s2s_tls_addr(&self) -> SocketAddr {
        self.running().s2s_tls_addrs[0]
    }

    /// Federation's authenticated incoming streams (our domain, theirs, method).
    pub fn s2s_incoming(&self) -> Vec<(String, String, &'static str)> {
        self.running()
            .s2s
            .as_ref()
            .expect("federation on")
            .incoming_streams()
    }

    /// TCP connections federation made so far: (accepted on the s2s ports, opened).
    pub fn s2s_connections(&self) -> (u64, u64) {
        self.running()
            .s2s
            .as_ref()
            .expect("federation on")
            .connection_counts()
    }

    pub fn tls_addr(&self) -> SocketAddr {
        self.running().tls_addrs[0]
    }

    /// Creates an account directly in the database (as `roost adduser` does).
    pub fn add_user(&self, user: &str, password: &str) {
        let conn = roost::storage::open_connection(self.dir.path()).unwrap();
        let creds = StoredCredentials::derive(password, 4096);
        roost::storage::accounts::create(&conn, &self.domain, user, &creds).unwrap();
    }

    /// The self-signed certificate the server generated.
    pub fn cert(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        let path = self.dir.path().join(format!("{}.crt", self.domain));
        CertificateDer::from_pem_file(path).expect("generated certificate")
    }

    /// A TLS client configuration trusting the server's certificate.
    pub fn tls_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        trusting(self.cert(), versions)
    }

    /// TLS 1.3 and 1.2, trusting the server's certificate.
    pub fn default_tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls_config(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// XMPP over WebSocket (RFC 7395) over HTTPS.
    Ws(Box<WsConn>),
    Gone,
}

pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// A WebSocket client connection (RFC 6455): masked frames out, the server's frames in.
struct WsConn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// Bytes read that are not a whole frame yet.
    raw: Vec<u8>,
    /// The text message being received (fragmented).
    msg: Vec<u8>,
    /// The server's close frame: its status code.
    close_code: Option<u16>,
    /// Ping frames the server sent (each answered).
    pings: u32,
}

/// A masked client frame (RFC 6455 §5.2): `first` is FIN/opcode.
pub fn ws_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x80];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

impl WsConn {
    /// The next whole server frame in `raw`: (FIN/opcode byte, payload).
    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let r = &self.raw;
        if r.len() < 2 {
            return None;
        }
        assert_eq!(
            r[1] & 0x80,
            0,
            "server frames are not masked (RFC 6455 §5.1)"
        );
        let (len, at) = match r[1] & 0x7F {
            126 if r.len() >= 4 => (u16::from_be_bytes([r[2], r[3]]) as usize, 4),
            127 if r.len() >= 10 => (
                u64::from_be_bytes(r[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if r.len() < at + len {
            return None;
        }
        let first = r[0];
        let payload = r[at..at + len].to_vec();
        self.raw.drain(..at + len);
        Some((first, payload))
    }
}

/// The condition of a stanza error reply, if it is one.
pub fn error_condition(e: &Element) -> Option<String> {
    e.child("error", "jabber:client")?
        .elements()
        .find(|c| c.ns == NS_STANZAS && c.name != "text")
        .map(|c| c.name.to_string())
}

/// A blocking scripted XMPP client.
pub struct Client {
    conn: Conn,
    tls_config: Arc<rustls::ClientConfig>,
    reader: StreamReader,
    pub domain: String,
    /// The last stream header the server sent.
    pub header: Option<StreamHeader>,
}

/// What a read produced.
#[derive(Debug, PartialEq)]
pub enum Got {
    Header(StreamHeader),
    Element(Element),
    Close,
    /// The TCP connection ended.
    Eof,
}

impl Client {
    /// Connects to the STARTTLS port without sending anything.
    pub fn connect(server: &TestServer) -> Client {
        Client::connect_to(server.c2s_addr(), &server.domain, server.default_tls())
    }

    /// Connects to the direct TLS port and completes the handshake.
    pub fn connect_tls(server: &TestServer) -> Client {
        let mut c = Client::connect_to(server.tls_addr(), &server.domain, server.default_tls());
        c.handshake_with(c.tls_config.clone());
        c
    }

    /// Connects to any address; `tls_config` is used for STARTTLS or direct TLS.
    pub fn connect_to(
        addr: SocketAddr,
        domain: &str,
        tls_config: Arc<rustls::ClientConfig>,
    ) -> Client {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            conn: Conn::Plain(tcp),
            tls_config,
            reader: client_reader(),
            domain: domain.to_owned(),
            header: None,
        }
    }

    /// Connects over HTTPS to `/xmpp-websocket` with the `xmpp` subprotocol (RFC 7395) and
    /// completes the WebSocket handshake, checking the server's answer.
    pub fn websocket(server: &TestServer) -> Client {
        let addr = server.running().https_addrs[0];
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let name = ServerName::try_from(server.domain.clone()).unwrap();
        let conn = rustls::ClientConnection::new(server.default_tls(), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        write!(
            tls,
            "GET /xmpp-websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: xmpp\r\nOrigin: https://example.net\r\n\r\n",
            server.domain
        )
        .unwrap();
        tls.flush().unwrap();
        let mut raw = Vec::new();
        let end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut buf = [0u8; 4096];
            let n = tls.read(&mut buf).expect("handshake answer");
            assert!(n > 0, "the server closed during the WebSocket handshake");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
            "{head}"
        );
        assert!(lower.contains("sec-websocket-protocol: xmpp\r\n"), "{head}");
        raw.drain(..end);
        Client {
            conn: Conn::Ws(Box::new(WsConn {
                tls,
                raw,
                msg: Vec::new(),
                close_code: None,
                pings: 0,
            })),
            tls_config: server.default_tls(),
            reader: StreamReader::for_messages(Limits {
                max_stanza: 1 << 20,
                max_depth: 64,
            }),
            domain: server.domain.clone(),
            header: None,
        }
    }

    /// True on a WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.conn, Conn::Ws(_))
    }

    /// Sends one WebSocket frame as is (`first`: FIN and opcode).
    pub fn send_ws_frame(&mut self, first: u8, payload: &[u8]) {
        let frame = ws_frame(first, payload);
        self.send_bytes_lossy(&frame);
    }

    /// The status code of the server's WebSocket close frame, once it came.
    pub fn ws_close_code(&self) -> Option<u16> {
        match &self.conn {
            Conn::Ws(w) => w.close_code,
            _ => None,
        }
    }

    /// Ping frames the server sent so far (each was answered with a pong).
    pub fn ws_pings(&self) -> u32 {
        match &self.conn {
            Conn::Ws(w) => w.pings,
            _ => 0,
        }
    }

    /// What ends our stream: `</stream:stream>`, or `<close/>` on a WebSocket.
    pub fn stream_end(&self) -> &'static str {
        if self.is_websocket() {
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
        } else {
            "</stream:stream>"
        }
    }

    /// Runs a TLS handshake on the plain connection.
    pub fn handshake_with(&mut self, config: Arc<rustls::ClientConfig>) {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            panic!("TLS over TLS");
        };
        let name = ServerName::try_from(self.domain.clone()).unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + READ_TIMEOUT;
        while s.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "TLS handshake timed out");
            s.conn.complete_io(&mut s.sock).expect("TLS handshake");
        }
        self.conn = Conn::Tls(Box::new(s));
        self.reader = client_reader();
    }

    /// Sends raw text.
    pub fn send(&mut self, text: &str) {
        let r = match &mut self.conn {
            Conn::Plain(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            Conn::Tls(s) => s.write_all(text.as_bytes()).and_then(|_| s.flush()),
            // One message per send: tests send one element at a time.
            Conn::Ws(w) => w
                .tls
                .write_all(&ws_frame(0x81, text.as_bytes()))
                .and_then(|_| w.tls.flush()),
            Conn::Gone => panic!("not connected"),
        };
        r.expect("send");
    }

    /// Sends raw bytes, ignoring errors (the server may have closed already).
    pub fn send_bytes_lossy(&mut self, bytes: &[u8]) {
        let _ = match &mut self.conn {
            Conn::Plain(s) => s.write_all(bytes),
            Conn::Tls(s) => s.write_all(bytes),
            Conn::Ws(w) => w.tls.write_all(bytes),
            Conn::Gone => Ok(()),
        };
    }

    /// The next thing from the server (panics after READ_TIMEOUT).
    pub fn next(&mut self) -> Got {
        self.next_within(READ_TIMEOUT)
            .expect("timed out waiting for the server")
    }

    /// The next thing from the server, or `None` if nothing comes within `wait`.
    pub fn next_within(&mut self, wait: Duration) -> Option<Got> {
        let deadline = Instant::now() + wait;
        loop {
            match self.reader.next() {
                Ok(Some(Event::Header(h))) => {
                    self.header = Some(h.clone());
                    return Some(Got::Header(h));
                }
                Ok(Some(Event::Element(e))) => return Some(Got::Element(e)),
                Ok(Some(Event::Close)) => return Some(Got::Close),
                Ok(None) => {}
                Err(e) => panic!("server sent bad XML: {e}"),
            }
            if let Conn::Ws(w) = &mut self.conn {
                // Whole frames first: a message goes to the reader, a ping is answered.
                if let Some((first, payload)) = w.take_frame() {
                    match first & 0x0F {
                        0x0 | 0x1 => {
                            w.msg.extend_from_slice(&payload);
                            if first & 0x80 != 0 {
                                self.reader.push(&std::mem::take(&mut w.msg));
                                self.reader.end_message();
                            }
                        }
                        0x9 => {
                            w.pings += 1;
                            let _ = w.tls.write_all(&ws_frame(0x8A, &payload));
                        }
                        0xA => {}
                        0x8 => {
                            w.close_code = (payload.len() >= 2)
                                .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            return Some(Got::Eof);
                        }
                        op => panic!("server sent WebSocket opcode {op}"),
                    }
                    continue;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let sock = match &self.conn {
                Conn::Plain(s) => s,
                Conn::Tls(s) => &s.sock,
                Conn::Ws(w) => &w.tls.sock,
                Conn::Gone => return Some(Got::Eof),
            };
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = match &mut self.conn {
                Conn::Plain(s) => s.read(&mut buf),
                Conn::Tls(s) => s.read(&mut buf),
                Conn::Ws(w) => w.tls.read(&mut buf),
                Conn::Gone => Ok(0),
            };
            match n {
                Ok(0) => return Some(Got::Eof),
                Ok(n) => match &mut self.conn {
                    Conn::Ws(w) => w.raw.extend_from_slice(&buf[..n]),
                    _ => self.reader.push(&buf[..n]),
                },
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(_) => return Some(Got::Eof),
            }
        }
    }

    /// Reads elements until one satisfies `want` (at most 100, each within READ_TIMEOUT);
    /// the others are skipped.
    pub fn wait_for(&mut self, what: &str, want: impl Fn(&Element) -> bool) -> Element {
        for _ in 0..100 {
            match self.next() {
                Got::Element(e) if want(&e) => return e,
                Got::Element(_) => continue,
                other => panic!("waiting for {what}, got {other:?}"),
            }
        }
        panic!("waiting for {what}: too many other stanzas");
    }

    /// Asserts that nothing arrives within `wait`.
    pub fn assert_silent(&mut self, wait: Duration) {
        if let Some(got) = self.next_within(wait) {
            panic!("expected silence, got {got:?}");
        }
    }

    /// Collects every element that arrives until `wait` passes with nothing new.
    pub fn drain(&mut self, wait: Duration) -> Vec<Element> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match self.next_within(wait) {
                Some(Got::Element(e)) => out.push(e),
                Some(other) => panic!("while draining, got {other:?}"),
                None => break,
            }
        }
        out
    }

    /// Sends an IQ and returns its reply (other stanzas on the way are skipped).
    pub fn iq(&mut self, xml: &str) -> Element {
        let id =
            roost::xml::parse::parse_element(&roost::xml::parse::Scope::client(), xml.as_bytes())
                .expect("test IQ parses")
                .attr("id")
                .expect("test IQ has an id")
                .to_owned();
        self.send(xml);
        self.wait_for("the IQ reply", |e| {
            e.name == "iq"
                && e.attr("id") == Some(id.as_str())
                && matches!(e.attr("type"), Some("result") | Some("error"))
        })
    }

    /// The next element (panics on anything else).
    pub fn element(&mut self) -> Element {
        match self.next() {
            Got::Element(e) => e,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    /// Opens a stream to our domain and returns the features.
    pub fn open(&mut self) -> Element {
        let to = self.domain.clone();
        if self.is_websocket() {
            return self.open_raw(&format!(
                "<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>"
            ));
        }
        self.open_raw(&format!(
            "<?xml version='1.0'?><stream:stream to='{to}' version='1.0' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams'>"
        ))
    }

    /// Sends a custom stream header; expects the server's header then its features.
    pub fn open_raw(&mut self, header: &str) -> Element {
        self.restart();
        self.send(header);
        match self.next() {
            Got::Header(_) => {}
            other => panic!("expected the server's stream header, got {other:?}"),
        }
        let f = self.element();
        assert!(f.is("features", NS_STREAM), "expected features, got {f}");
        f
    }

    /// Forgets the server's previous stream header before a stream restart.
    pub fn restart(&mut self) {
        if self.header.take().is_some() {
            self.reader.reset();
        }
    }

    /// Expects a stream error and the end of the stream; returns the condition name.
    pub fn expect_stream_error(&mut self) -> String {
        let mut got = self.next();
        if let Got::Header(_) = got {
            got = self.next();
        }
        let e = match got {
            Got::Element(e) if e.is("error", NS_STREAM) => e,
            other => panic!("expected a stream error, got {other:?}"),
        };
        let cond = e
            .elements()
            .find(|c| c.ns == NS_STREAMS && c.name != "text")
            .expect("a condition")
            .name
            .to_string();
        assert_eq!(self.next(), Got::Close, "</stream:stream> after the error");
        // Answer the closing handshake, then the server closes TCP.
        if self.is_websocket() {
            let close = ws_frame(0x81, self.stream_end().as_bytes());
            self.send_bytes_lossy(&close);
        } else {
            self.send_bytes_lossy(b"</stream:stream>");
        }
        cond
    }

    /// Skips stanzas until a stream error comes (bounded); returns its condition.
    pub fn wait_stream_error(&mut self) -> String {
        for _ in 0..100 {
            match self.next() {
                Got::Element(e) if e.is("error", NS_STREAM) => {
                    return e
                        .elements()
                        .find(|c| c.ns == NS_STREAMS && c.name != "text")
                        .expect("a condition")
                        .name
                        .to_string();
                }
                Got::Element(_) => continue,
                other => panic!("expected a stream error, got {other:?}"),
            }
        }
        panic!("no stream error among 100 stanzas");
    }

    /// STARTTLS on an open plaintext stream; reopens the stream, returns the features.
    pub fn starttls(&mut self) -> Element {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        let p = self.element();
        assert!(p.is("proceed", NS_TLS), "expected proceed, got {p}");
        self.handshake_with(self.tls_config.clone());
        self.open()
    }

    /// The channel binding data for `cb_type` on this TLS connection.
    pub fn channel_binding(&self, cb_type: &str) -> Vec<u8> {
        let Conn::Tls(s) = &self.conn else {
            panic!("channel binding needs TLS")
        };
        match cb_type {
            "tls-exporter" => s
                .conn
                .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                .unwrap()
                .to_vec(),
            "tls-server-end-point" => {
                let cert = &s.conn.peer_certificates().unwrap()[0];
                roost::sasl::tls_server_end_point(cert).expect("known signature algorithm")
            }
            other => panic!("unknown channel binding {other}"),
        }
    }

    /// Runs a SCRAM exchange. Ok(()) on success, Err(condition) on failure.
    pub fn scram(
        &mut self,
        mech: Mechanism,
        user: &str,
        password: &str,
        cb: Option<&'static str>,
    ) -> Result<(), String> {
        let binding = cb.map(|t| (t, self.channel_binding(t)));
        let mut client = ScramClient::new(mech, user, password, binding).expect("SCRAM setup");
        let first = client.client_first();
        self.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
            mech.name(),
            b64(&first)
        ));
        let e = self.element();
        if e.is("failure", NS_SASL) {
            return Err(failure_condition(&e));
        }
        assert!(e.is("challenge", NS_SASL), "expected challenge, got {e}");
        let final_msg = client
            .handle_server_first(&unb64(&e.text()))
            .expect("server-first message");
        self.send(&format!(
            "<response xmlns='{NS_SASL}'>{}</response>",
            b64(&final_msg)
        ));
        let e = self.element();
        if e.is("failure", NS_SASL) {
            return Err(failure_condition(&e));
        }
        assert!(e.is("success", NS_SASL), "expected success, got {e}");
        client
            .verify_server_final(&unb64(&e.text()))
            .expect("the server proves it knows the password");
        Ok(())
    }

    /// SASL PLAIN. Ok(()) on success, Err(condition) on failure.
    pub fn plain(&mut self, user: &str, password: &str) -> Result<(), String> {
        let data = roost::sasl::client::plain(user, password);
        self.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
            b64(&data)
        ));
        let e = self.element();
        if e.is("failure", NS_SASL) {
            return Err(failure_condition(&e));
        }
        assert!(e.is("success", NS_SASL), "expected success, got {e}");
        Ok(())
    }

    /// Binds a resource (or lets the server pick one) after a stream restart; returns the
    /// full JID.
    pub fn bind(&mut self, resource: Option<&str>) -> String {
        let f = self.open();
        assert!(f.child("bind", NS_BIND).is_some(), "bind offered: {f}");
        self.bind_here(resource)
    }

    /// Binds on the stream as it is (its features already read).
    pub fn bind_here(&mut self, resource: Option<&str>) -> String {
        let res = resource
            .map(|r| format!("<resource>{}</resource>", roost::xml::escape(r)))
            .unwrap_or_default();
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'>{res}</bind></iq>"
        ));
        let iq = self.element();
        assert_eq!(iq.attr("type"), Some("result"), "bind result: {iq}");
        iq.child("bind", NS_BIND)
            .and_then(|b| b.child("jid", NS_BIND))
            .expect("bound jid")
            .text()
    }

    /// STARTTLS + SCRAM-SHA-256, then the restarted stream's features (no bind yet).
    pub fn authenticated(server: &TestServer, user: &str, password: &str) -> (Client, Element) {
        let mut c = Client::connect(server);
        c.open();
        c.starttls();
        c.scram(Mechanism::ScramSha256, user, password, None)
            .expect("login");
        let f = c.open();
        (c, f)
    }

    /// Direct TLS + SCRAM-SHA-256, then the restarted stream's features (no bind yet).
    pub fn authenticated_tls(server: &TestServer, user: &str, password: &str) -> (Client, Element) {
        let mut c = Client::connect_tls(server);
        c.open();
        c.scram(Mechanism::ScramSha256, user, password, None)
            .expect("login");
        let f = c.open();
        (c, f)
    }

    /// STARTTLS + SCRAM-SHA-256 + bind: a logged-in client.
    pub fn login(server: &TestServer, user: &str, password: &str, resource: &str) -> Client {
        let mut c = Client::connect(server);
        c.login_as(user, password, resource);
        c
    }

    /// Sends `presence` (an initial presence) and waits for its reflection from this
    /// client's `resource` (RFC 6121 §4.2.2); other stanzas on the way are skipped.
    pub fn announce(&mut self, resource: &str, presence: &str) {
        self.send(presence);
        let own = format!("/{resource}");
        self.wait_for("own presence", |e| {
            e.name == "presence" && e.attr("from").is_some_and(|f| f.ends_with(&own))
        });
    }

    /// Fetches the roster (the resource becomes interested), expecting a result.
    pub fn roster_get(&mut self) -> Element {
        let r = self.iq("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
        assert_eq!(r.attr("type"), Some("result"), "{r}");
        r
    }

    /// On a fresh plaintext connection: open, STARTTLS, SCRAM-SHA-256, bind.
    pub fn login_as(&mut self, user: &str, password: &str, resource: &str) {
        let c = self;
        c.open();
        c.starttls();
        c.scram(Mechanism::ScramSha256, user, password, None)
            .expect("login");
        c.bind(Some(resource));
    }

    /// Sends `</stream:stream>` and expects the server's close and then EOF.
    pub fn close(mut self) {
        let end = self.stream_end();
        self.send(end);
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline);
            match self.next() {
                Got::Close => break,
                Got::Element(_) => continue,
                other => panic!("expected </stream:stream>, got {other:?}"),
            }
        }
        assert_eq!(self.next(), Got::Eof);
    }

    /// True if the server has closed the TCP connection (reads to EOF, bounded).
    pub fn is_closed(&mut self) -> bool {
        matches!(self.next(), Got::Eof)
    }
}

/// A TLS client configuration trusting only `cert`.
pub fn trusting(
    cert: CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn client_reader() -> StreamReader {
    StreamReader::new(Limits {
        max_stanza: 1 << 20,
        max_depth: 64,
    })
}

pub fn failure_condition(e: &Element) -> String {
    e.elements()
        .find(|c| c.name != "text")
        .map(|c| c.name.to_string())
        .unwrap_or_default()
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("base64 from the server")
}
