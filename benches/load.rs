//! The load generator of issue 6, "Footprint and speed": real XMPP client sessions over TCP
//! (RFC 6120: plaintext, STARTTLS or direct TLS per XEP-0368; SASL PLAIN or SCRAM; resource
//! binding; RFC 6121 presence and chat messages) against roost or any other XMPP server on
//! this machine, measuring the server process through /proc.
//!
//! `cargo bench --bench load -- [OPTIONS] MODE [MODE OPTIONS]`; `--help` lists them. Modes:
//! - `connect`: log in N sessions and hold them: the server's memory per session and the
//!   cost of a login;
//! - `msg`: pairs of sessions exchange chat messages (to full and to bare JIDs) with a window
//!   in flight, optionally paced and with many idle sessions online: delivered messages per
//!   second, latency, server CPU per 1000 messages;
//! - `login-rate`: login + bind + logout, one after another and several at once;
//! - `fast-login`: XEP-0388 SASL2 logins with XEP-0386 Bind 2 (roost), with SCRAM asking for
//!   a XEP-0484 FAST token, then with the token: CPU per login of each and round trips;
//! - `muc`: occupants of one group chat (XEP-0045) take turns sending room messages, paced:
//!   server CPU per 1000 room messages, latency until the last occupant has a message;
//! - `muc-idle`: a few sessions fill many rooms and sit idle: server memory per room and
//!   per occupant;
//! - `roost-accounts`: creates the bench accounts in a roost data directory in one process
//!   (roost only; thousands of `roost adduser` runs would take minutes).
//!
//! Besides readable lines, every figure is printed as `RESULT <label> <name> <value>` for
//! `bench/side-by-side.sh`. The client runs on one thread (a `LocalExecutor`), so that on a
//! small machine it leaves the other cores to the server; its own CPU time is reported so
//! that a saturated client shows. Every loop is bounded in count and in time, and only
//! loopback addresses are accepted.
#![forbid(unsafe_code)]

use argh::FromArgs;
use roost::sasl::client::{plain, ScramClient};
use roost::sasl::{decode_payload, encode_payload, Mechanism, StoredCredentials};
use roost::storage::accounts::{self, AccountError};
use roost::xml::framer::Limits;
use roost::xml::reader::{Event, StreamReader};
use roost::xml::Element;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use smol::net::TcpStream;
use smol::{LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_CLIENT: &str = "jabber:client";

/// The text after the timestamp in every message body: a short chat line.
const BODY: &str = "hello from the roost load generator";
/// How often waiting loops look at their stop flags.
const TICK: Duration = Duration::from_millis(100);
/// Most latency samples kept (4 bytes each).
const MAX_SAMPLES: usize = 10_000_000;
/// Most elements skipped while waiting for one answer.
const MAX_SKIPPED: usize = 100_000;
/// Linux reports CPU times in /proc in units of USER_HZ, which is 100 on every architecture.
const USER_HZ: u64 = 100;

type Res<T> = Result<T, String>;

/// XMPP load generator: real client sessions over TCP against a server on this machine.
#[derive(FromArgs)]
struct Args {
    /// server address, loopback only (default: 127.0.0.1)
    #[argh(option, default = "IpAddr::from([127, 0, 0, 1])")]
    host: IpAddr,
    /// port for plaintext and STARTTLS connections (default: 5222)
    #[argh(option, default = "5222")]
    port: u16,
    /// port for direct TLS connections, XEP-0368 (default: 5223)
    #[argh(option, default = "5223")]
    tls_port: u16,
    /// HTTPS port for WebSocket connections, RFC 7395 (default: 5281)
    #[argh(option, default = "5281")]
    https_port: u16,
    /// the served domain (default: localhost)
    #[argh(option, default = "String::from(\"localhost\")")]
    domain: String,
    /// plain, starttls, tls (direct TLS) or websocket (RFC 7395 over HTTPS; connect and
    /// login-rate only) (default: plain)
    #[argh(option, default = "Transport::Plain")]
    transport: Transport,
    /// SASL mechanism: PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256 (default: PLAIN without TLS,
    /// SCRAM-SHA-1 with TLS)
    #[argh(option)]
    mech: Option<String>,
    /// trust this PEM certificate, e.g. the server's self-signed one
    #[argh(option)]
    ca: Option<PathBuf>,
    /// accept any server certificate (benchmarks on loopback only)
    #[argh(switch)]
    insecure_skip_verify: bool,
    /// account names are PREFIX1, PREFIX2, … (default: bench)
    #[argh(option, default = "String::from(\"bench\")")]
    users_prefix: String,
    /// how many accounts exist, PREFIX1 to PREFIX<count> (default: 100)
    #[argh(option, default = "100")]
    count: usize,
    /// the password of every account (default: pw)
    #[argh(option, default = "String::from(\"pw\")")]
    password: String,
    /// the server's process id, for its memory and CPU time from /proc
    #[argh(option)]
    server_pid: Option<u32>,
    /// the server's name in RESULT lines (default: server)
    #[argh(option, default = "String::from(\"server\")")]
    label: String,
    /// logins (and logouts) in flight at once (default: 50)
    #[argh(option, default = "50")]
    batch: usize,
    /// seconds one network step may take before the run fails (default: 30)
    #[argh(option, default = "30")]
    step_timeout: u64,
    #[argh(subcommand)]
    mode: Mode,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Mode {
    Connect(Connect),
    Msg(Msg),
    LoginRate(LoginRate),
    FastLogin(FastLogin),
    Upload(UploadBench),
    Muc(MucRoom),
    MucIdle(MucIdle),
    RoostAccounts(RoostAccounts),
}

/// XEP-0363 over HTTPS: account 1 asks the upload service for slots; one file of
/// --size-mib is uploaded and downloaded alone (throughput), then --concurrent uploads run
/// at once while the server's memory is sampled every 20 ms. HTTPS trusts --ca or
/// --insecure-skip-verify; the HTTPS address is --host with the slot URL's port.
#[derive(FromArgs)]
#[argh(subcommand, name = "upload")]
struct UploadBench {
    /// file size in MiB (default: 50)
    #[argh(option, default = "50")]
    size_mib: u64,
    /// uploads at once in the concurrent run (default: 10)
    #[argh(option, default = "10")]
    concurrent: usize,
    /// the upload service's JID (default: upload.DOMAIN)
    #[argh(option)]
    service: Option<String>,
}

/// Log in N sessions (SASL, bind, initial presence), one per account, and hold them: server
/// memory per session, logins per second, server CPU per login.
#[derive(FromArgs)]
#[argh(subcommand, name = "connect")]
struct Connect {
    /// sessions to log in (default: --count)
    #[argh(option)]
    sessions: Option<usize>,
    /// seconds to hold the sessions before measuring memory (default: 3)
    #[argh(option, default = "3.0")]
    settle: f64,
    /// do not send initial presence
    #[argh(switch)]
    no_presence: bool,
    /// most seconds for logging in every session (default: 600)
    #[argh(option, default = "600")]
    max_seconds: u64,
}

/// Pairs of sessions exchange chat messages, alternately to the full and to the bare JID,
/// with a window in flight per direction: delivered messages per second, latency, server CPU
/// per 1000 messages. Pairs use accounts 1 to 2P, idle sessions the accounts after them.
#[derive(FromArgs)]
#[argh(subcommand, name = "msg")]
struct Msg {
    /// pairs of sessions (default: 10)
    #[argh(option, default = "10")]
    pairs: usize,
    /// messages in flight per direction (default: 4)
    #[argh(option, default = "4")]
    window: usize,
    /// seconds measured (default: 10)
    #[argh(option, default = "10.0")]
    duration: f64,
    /// seconds of traffic before measuring (default: 2)
    #[argh(option, default = "2.0")]
    warmup: f64,
    /// messages per second in all directions together, paced (default: 0, as fast as the
    /// window allows)
    #[argh(option, default = "0.0")]
    rate: f64,
    /// idle sessions online meanwhile, each on its own account (default: 0)
    #[argh(option, default = "0")]
    idle: usize,
    /// idle sessions send no initial presence
    #[argh(switch)]
    idle_no_presence: bool,
    /// seconds to wait after the logins before the traffic starts (default: 2)
    #[argh(option, default = "2.0")]
    settle: f64,
}

/// Login + bind + logout (no presence): one after another, then several at once.
#[derive(FromArgs)]
#[argh(subcommand, name = "login-rate")]
struct LoginRate {
    /// logins one after another (default: 100)
    #[argh(option, default = "100")]
    sequential: usize,
    /// logins in the concurrent run (default: 300)
    #[argh(option, default = "300")]
    concurrent: usize,
    /// logins in flight in the concurrent run (default: 20)
    #[argh(option, default = "20")]
    concurrency: usize,
}

/// SASL2 + Bind 2 logins (roost): N with SCRAM (asking for a FAST token), then N with the
/// tokens, one after another, each logged out again: server and client CPU per login of
/// each kind, and the round trips from the stream features to a bound session.
#[derive(FromArgs)]
#[argh(subcommand, name = "fast-login")]
struct FastLogin {
    /// logins of each kind (default: 100)
    #[argh(option, default = "100")]
    logins: usize,
    /// the FAST logins also resume the TLS session (TLS 1.3 tickets), as a phone that
    /// reconnects does; the SCRAM logins stay full handshakes (a device's first login)
    #[argh(switch)]
    tls_resume: bool,
}

/// Occupants of one group chat (accounts 1 to N, nicks o1 … oN) send room messages in turn,
/// paced at --rate in all (occupant i sends messages i, i + N, …): server CPU per 1000 room
/// messages, and latency from sending until the last occupant (the sender's own reflection
/// included) has the message. The first occupant creates the room (instant, XEP-0045
/// §10.1.2), named for this run; everyone joins without history.
#[derive(FromArgs)]
#[argh(subcommand, name = "muc")]
struct MucRoom {
    /// occupants of the room (default: 20)
    #[argh(option, default = "20")]
    occupants: usize,
    /// room messages per second from all occupants together (default: 100)
    #[argh(option, default = "100.0")]
    rate: f64,
    /// seconds measured (default: 10)
    #[argh(option, default = "10.0")]
    duration: f64,
    /// seconds of traffic before measuring (default: 2)
    #[argh(option, default = "2.0")]
    warmup: f64,
    /// seconds to wait after the joins before the traffic starts (default: 2)
    #[argh(option, default = "2.0")]
    settle: f64,
    /// the group chat service (default: groups.<domain>)
    #[argh(option)]
    service: Option<String>,
    /// the room's name (default: bench-<a tag of this run>, a new room every run)
    #[argh(option)]
    room: Option<String>,
}

/// Sessions on accounts 1 to P fill R rooms and sit idle: the first session creates every
/// room (instant rooms, named for this run), then the others join each one. Server memory
/// per room (with its first occupant) and per further occupant.
#[derive(FromArgs)]
#[argh(subcommand, name = "muc-idle")]
struct MucIdle {
    /// rooms (default: 1000)
    #[argh(option, default = "1000")]
    rooms: usize,
    /// occupants per room, one session each (default: 5)
    #[argh(option, default = "5")]
    per_room: usize,
    /// joins in flight per session (default: 50)
    #[argh(option, default = "50")]
    window: usize,
    /// seconds to wait before each memory reading (default: 3)
    #[argh(option, default = "3.0")]
    settle: f64,
    /// the group chat service (default: groups.<domain>)
    #[argh(option)]
    service: Option<String>,
}

/// Create the accounts PREFIX1 to PREFIX<count> with --password in a roost data directory, in
/// one process (roost only; existing accounts are kept). They share one salt: each login
/// still costs the server the same.
#[derive(FromArgs)]
#[argh(subcommand, name = "roost-accounts")]
struct RoostAccounts {
    /// roost's data directory
    #[argh(option)]
    data_dir: PathBuf,
}

/// How a session reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// No TLS at all (the server must allow it: roost's `--insecure-allow-plaintext`).
    Plain,
    /// RFC 6120 §5 STARTTLS on the plaintext port.
    StartTls,
    /// XEP-0368 TLS from the first byte, on the TLS port.
    Tls,
    /// RFC 7395 XMPP over WebSocket, over HTTPS.
    WebSocket,
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Res<Transport> {
        match s {
            "plain" => Ok(Transport::Plain),
            "starttls" => Ok(Transport::StartTls),
            "tls" | "direct-tls" => Ok(Transport::Tls),
            "websocket" | "ws" => Ok(Transport::WebSocket),
            _ => Err(format!(
                "transport {s}: use plain, starttls, tls or websocket"
            )),
        }
    }
}

/// Everything a session needs to log in.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls_addr: SocketAddr,
    https_addr: SocketAddr,
    domain: String,
    transport: Transport,
    mech: Mechanism,
    tls: Option<Arc<rustls::ClientConfig>>,
    prefix: String,
    password: String,
    count: usize,
    timeout: Duration,
}

impl Target {
    /// The name of account `i` (1-based).
    fn user(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // `cargo bench` appends `--bench` to a harness-less bench's arguments.
    let rest: Vec<&str> = argv
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| *a != "--bench")
        .collect();
    let args = match Args::from_args(&["load"], &rest) {
        Ok(a) => a,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!(
                        "{}\nRun `cargo bench --bench load -- --help` for help.",
                        early.output
                    );
                    ExitCode::FAILURE
                }
            };
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Res<()> {
    if !args.host.is_loopback() {
        return Err(format!(
            "--host {}: the load generator only talks to this machine (127.0.0.1 or ::1)",
            args.host
        ));
    }
    if let Mode::RoostAccounts(r) = &args.mode {
        return roost_accounts(&args, r);
    }
    if args.transport == Transport::WebSocket && matches!(args.mode, Mode::Msg(_)) {
        return Err("--transport websocket: for connect and login-rate only".into());
    }
    let mech = match &args.mech {
        Some(name) => Mechanism::from_name(&name.to_ascii_uppercase())
            .filter(|m| !m.is_plus())
            .ok_or_else(|| format!("--mech {name}: use PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256"))?,
        None if args.transport == Transport::Plain => Mechanism::Plain,
        None => Mechanism::ScramSha1,
    };
    let tls = match args.transport {
        Transport::Plain => None,
        _ => Some(tls_config(&args)?),
    };
    let target = Rc::new(Target {
        addr: SocketAddr::new(args.host, args.port),
        tls_addr: SocketAddr::new(args.host, args.tls_port),
        https_addr: SocketAddr::new(args.host, args.https_port),
        domain: args.domain.clone(),
        transport: args.transport,
        mech,
        tls,
        prefix: args.users_prefix.clone(),
        password: args.password.clone(),
        count: args.count,
        timeout: Duration::from_secs(args.step_timeout.max(1)),
    });
    now_us();
    let out = Out {
        label: args.label.clone(),
        server: Probe {
            pid: args.server_pid,
        },
    };
    println!(
        "# {} against {} ({}, {:?}, {}), server pid {}, load average {}",
        match &args.mode {
            Mode::Connect(_) => "connect",
            Mode::Msg(_) => "msg",
            Mode::LoginRate(_) => "login-rate",
            Mode::FastLogin(_) => "fast-login",
            Mode::Upload(_) => "upload",
            Mode::Muc(_) => "muc",
            Mode::MucIdle(_) => "muc-idle",
            Mode::RoostAccounts(_) => "roost-accounts",
        },
        args.label,
        target.addr,
        target.transport,
        target.mech,
        args.server_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "not given: no memory or CPU figures".into()),
        loadavg()
    );
    // One thread for the client; tasks live as long as the process.
    let ex: &'static LocalExecutor<'static> = Box::leak(Box::new(LocalExecutor::new()));
    let batch = args.batch.max(1);
    smol::block_on(ex.run(async {
        match &args.mode {
            Mode::Connect(c) => connect_mode(ex, &target, &out, c, batch).await,
            Mode::Msg(m) => msg_mode(ex, &target, &out, m, batch).await,
            Mode::LoginRate(l) => login_rate_mode(ex, &target, &out, l).await,
            Mode::FastLogin(f) => fast_login_mode(&target, &out, f).await,
            Mode::Upload(u) => upload_mode(ex, &target, &out, u, tls_config(&args)?).await,
            Mode::Muc(m) => muc_mode(ex, &target, &out, m, batch).await,
            Mode::MucIdle(m) => muc_idle_mode(ex, &target, &out, m, batch).await,
            Mode::RoostAccounts(_) => unreachable!("handled above"),
        }
    }))?;
    out.value("load_avg_1min_end", loadavg_1(), "");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Measuring

/// The server process, seen through /proc.
struct Probe {
    pid: Option<u32>,
}

/// Memory of a process in KiB: resident (VmRSS), its peak (VmHWM), and the anonymous part
/// of the resident memory (RssAnon: heap and stacks, without the mapped binary and
/// libraries, which are shared and can be paged back in from disk).
#[derive(Clone, Copy, Debug)]
struct Mem {
    rss: u64,
    hwm: u64,
    anon: u64,
}

impl Probe {
    fn cpu(&self) -> Option<Duration> {
        cpu_of(&self.pid?.to_string())
    }

    fn mem(&self) -> Option<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Mem {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
            anon: field("RssAnon:")?,
        })
    }
}

/// User + system CPU time of a process (all its threads) from /proc/PID/stat.
fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5); fields[0] is field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

fn self_cpu() -> Duration {
    cpu_of("self").unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn loadavg_1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Microseconds since the first call (the timestamps in message bodies).
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Where results go.
struct Out {
    label: String,
    server: Probe,
}

impl Out {
    fn value(&self, name: &str, value: f64, unit: &str) {
        let shown = if value.is_finite() && value.fract() != 0.0 {
            format!("{value:.3}")
        } else {
            format!("{value}")
        };
        println!("RESULT {} {name} {shown} {unit}", self.label);
    }

    fn note(&self, text: &str) {
        println!("# {text}");
    }

    /// A snapshot of the server's CPU time, our own, and the clock.
    fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            server: self.server.cpu(),
            client: self_cpu(),
        }
    }

    /// Wall time, per-item server and client CPU between two marks, reported as
    /// `{prefix}server_cpu_ms_per_{per}` etc.
    fn costs(&self, prefix: &str, a: &Mark, b: &Mark, items: f64, per: (&str, f64)) -> f64 {
        let wall = b.at.duration_since(a.at).as_secs_f64();
        let (per_name, per_n) = per;
        if let (Some(s0), Some(s1)) = (a.server, b.server) {
            let ms = (s1 - s0).as_secs_f64() * 1000.0;
            self.value(
                &format!("{prefix}server_cpu_ms_per_{per_name}"),
                ms / (items / per_n),
                "ms",
            );
            self.value(
                &format!("{prefix}server_cpu_pct"),
                ms / 10.0 / wall,
                "% of one core",
            );
        }
        let client_ms = (b.client - a.client).as_secs_f64() * 1000.0;
        self.value(
            &format!("{prefix}client_cpu_pct"),
            client_ms / 10.0 / wall,
            "% of one core",
        );
        wall
    }

    fn memory(&self, name: &str) -> Option<Mem> {
        let m = self.server.mem()?;
        self.value(&format!("{name}_rss_kib"), m.rss as f64, "KiB");
        self.value(&format!("{name}_hwm_kib"), m.hwm as f64, "KiB");
        self.value(&format!("{name}_anon_kib"), m.anon as f64, "KiB");
        Some(m)
    }
}

struct Mark {
    at: Instant,
    server: Option<Duration>,
    client: Duration,
}

// ---------------------------------------------------------------------------------------
// The client side of a stream

/// A TCP connection, maybe inside TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// `fut`, failing with "`what`: …" on its error or after `limit`.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Res<T> {
    let fut = async { fut.await.map_err(|e| format!("{what}: {e}")) };
    fut.or(async {
        Timer::after(limit).await;
        Err(format!("{what}: nothing within {} s", limit.as_secs_f64()))
    })
    .await
}

/// One logged-in (or logging-in) client stream.
struct Xmpp {
    conn: Conn,
    reader: StreamReader,
    buf: Box<[u8]>,
    timeout: Duration,
    /// The full JID the server bound.
    jid: String,
    /// RFC 7395: each send is a WebSocket message, and what is read are frames; `raw` holds
    /// bytes read that are not a whole frame yet.
    ws: bool,
    raw: Vec<u8>,
}

/// A masked client text frame (RFC 6455 §5.2).
fn ws_frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x3c, 0xa1, 0x07, 0x5e];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | op);
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

/// The next whole server frame at the start of `raw`: (FIN/opcode byte, payload, length).
fn ws_take(raw: &[u8]) -> Option<(u8, &[u8], usize)> {
    if raw.len() < 2 {
        return None;
    }
    let (len, at): (usize, usize) = match raw[1] & 0x7F {
        126 if raw.len() >= 4 => (u16::from_be_bytes([raw[2], raw[3]]) as usize, 4),
        127 if raw.len() >= 10 => (u64::from_be_bytes(raw[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let end = at.checked_add(len)?;
    (raw.len() >= end).then(|| (raw[0], &raw[at..end], end))
}

impl Xmpp {
    fn new(conn: Conn, timeout: Duration) -> Xmpp {
        Xmpp {
            conn,
            reader: StreamReader::new(client_limits()),
            buf: vec![0; 4096].into_boxed_slice(),
            timeout,
            jid: String::new(),
            ws: false,
            raw: Vec::new(),
        }
    }

    async fn send(&mut self, data: &str) -> Res<()> {
        let conn = &mut self.conn;
        let framed;
        let bytes = if self.ws {
            framed = ws_frame(0x1, data.as_bytes());
            &framed[..]
        } else {
            data.as_bytes()
        };
        within(self.timeout, "write", async {
            conn.write_all(bytes).await?;
            conn.flush().await
        })
        .await
    }

    /// Takes one whole WebSocket frame from `raw`: a message goes to the reader, a ping is
    /// answered. False if no whole frame is there yet.
    async fn ws_frame(&mut self) -> Res<bool> {
        let Some((first, payload, used)) = ws_take(&self.raw) else {
            return Ok(false);
        };
        match first & 0x0F {
            0x1 if first & 0x80 != 0 => {
                self.reader.push(payload);
                self.reader.end_message();
            }
            0x9 => {
                let pong = ws_frame(0xA, payload);
                within(self.timeout, "write", self.conn.write_all(&pong)).await?;
            }
            0xA => {}
            0x8 => return Err("the server closed the WebSocket".into()),
            op => return Err(format!("unexpected WebSocket frame {op:#x}")),
        }
        self.raw.drain(..used);
        Ok(true)
    }

    async fn event(&mut self) -> Res<Event> {
        loop {
            match self.reader.next() {
                Ok(Some(e)) => return Ok(e),
                Ok(None) => {}
                Err(e) => return Err(format!("the server sent bad XML: {e}")),
            }
            if self.ws && self.ws_frame().await? {
                continue;
            }
            let n = within(self.timeout, "read", self.conn.read(&mut self.buf)).await?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            if self.ws {
                self.raw.extend_from_slice(&self.buf[..n]);
            } else {
                self.reader.push(&self.buf[..n]);
            }
        }
    }

    /// The next top-level element; a stream error or the end of the stream is an error.
    async fn element(&mut self) -> Res<Element> {
        match self.event().await? {
            Event::Element(e) if e.is("error", NS_STREAM) => {
                Err(format!("stream error: {}", describe(&e)))
            }
            Event::Element(e) => Ok(e),
            Event::Header(_) => Err("an unexpected stream header".into()),
            Event::Close => Err("the server closed the stream".into()),
        }
    }

    /// The first element that `want` accepts, skipping others (a bounded number).
    async fn until(&mut self, want: impl Fn(&Element) -> bool) -> Res<Element> {
        for _ in 0..MAX_SKIPPED {
            let e = self.element().await?;
            if want(&e) {
                return Ok(e);
            }
        }
        Err("too many unexpected elements".into())
    }

    /// Opens (or, after TLS or SASL, restarts) the stream: our header, then the server's
    /// header and its features.
    async fn open(&mut self, domain: &str) -> Res<Element> {
        if self.ws {
            self.send(&format!(
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{domain}' version='1.0'/>"
            ))
            .await?;
        } else {
            self.send_header(domain).await?;
        }
        self.open_answer().await
    }

    async fn send_header(&mut self, domain: &str) -> Res<()> {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' \
             xmlns:stream='{NS_STREAM}' to='{domain}' version='1.0'>"
        ))
        .await
    }

    /// The server's header and its features.
    async fn open_answer(&mut self) -> Res<Element> {
        match self.event().await? {
            Event::Header(_) => {}
            Event::Element(e) => return Err(format!("expected a stream header: {}", describe(&e))),
            Event::Close => return Err("the server closed the stream".into()),
        }
        let features = self.element().await?;
        if !features.is("features", NS_STREAM) {
            return Err(format!("expected stream features: {}", describe(&features)));
        }
        Ok(features)
    }

    /// Closes the stream politely and waits (briefly) for the server's close.
    async fn logout(mut self) -> Res<()> {
        self.timeout = self.timeout.min(Duration::from_secs(5));
        if self.ws {
            self.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
                .await?;
        } else {
            self.send("</stream:stream>").await?;
        }
        for _ in 0..MAX_SKIPPED {
            match self.event().await {
                Ok(Event::Close) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = within(self.timeout, "close", self.conn.close()).await;
        Ok(())
    }

    /// "TLS 1.3, TLS13_AES_256_GCM_SHA384", or "no TLS".
    fn tls_info(&self) -> String {
        match &self.conn {
            Conn::Plain(_) => "no TLS".into(),
            Conn::Tls(s) => {
                let c = s.get_ref().1;
                format!(
                    "{:?}, {:?}",
                    c.protocol_version(),
                    c.negotiated_cipher_suite().map(|s| s.suite())
                )
            }
        }
    }
}

/// The client accepts what any server may send on a stream.
fn client_limits() -> Limits {
    Limits {
        max_stanza: 1024 * 1024,
        ..Limits::default()
    }
}

/// A short description of an element for error messages: its name and first child.
fn describe(e: &Element) -> String {
    let inner = e
        .elements()
        .map(|c| c.name.as_str())
        .filter(|n| *n != "text")
        .collect::<Vec<_>>()
        .join(", ");
    format!("<{}/> ({inner})", e.name)
}

fn tls_config(args: &Args) -> Res<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if args.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else if let Some(ca) = &args.ca {
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            roots
                .add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        return Err("TLS needs --ca CERT-FILE (or --insecure-skip-verify)".into());
    };
    // Each session stands for a different device: no session resumption between them.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Accepts any certificate, still checking the handshake signatures (`--insecure-skip-verify`).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls_handshake(t: &Target, tcp: TcpStream) -> Res<Conn> {
    let config = t.tls.clone().ok_or("no TLS configuration")?;
    let name = ServerName::try_from(t.domain.clone()).map_err(|e| e.to_string())?;
    let connector = futures_rustls::TlsConnector::from(config);
    let s = within(t.timeout, "TLS handshake", connector.connect(name, tcp)).await?;
    if s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        RESUMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Conn::Tls(Box::new(s)))
}

/// TLS handshakes that resumed a session (`fast-login --tls-resume`).
static RESUMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Logs in account `account` with `resource`: TCP, TLS as configured, SASL, bind; then
/// initial presence if `presence`, and if `barrier` a ping to the server whose answer shows
/// that the server has handled everything before it.
async fn login(
    t: &Target,
    account: usize,
    resource: &str,
    presence: bool,
    barrier: bool,
) -> Res<Xmpp> {
    let user = t.user(account);
    let (mut x, features) = connect(t).await?;
    authenticate(t, &mut x, &user, &features)
        .await
        .map_err(|e| format!("{user}: {e}"))?;
    x.reader.reset();
    let features = x.open(&t.domain).await?;
    if features.child("bind", NS_BIND).is_none() {
        return Err("the server offers no resource binding".into());
    }
    x.send(&format!(
        "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{resource}</resource>\
         </bind></iq>"
    ))
    .await?;
    let bound = x
        .until(|e| e.name == "iq" && e.attr("id") == Some("bind"))
        .await?;
    x.jid = bound
        .child("bind", NS_BIND)
        .and_then(|b| b.child("jid", NS_BIND))
        .map(|j| j.text())
        .filter(|_| bound.attr("type") == Some("result"))
        .ok_or_else(|| format!("binding failed: {}", describe(&bound)))?;
    if presence {
        x.send("<presence/>").await?;
    }
    if barrier {
        x.send(&format!(
            "<iq type='get' id='ready' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            t.domain
        ))
        .await?;
        x.until(|e| e.name == "iq" && e.attr("id") == Some("ready"))
            .await?;
    }
    Ok(x)
}

/// A connection with TLS as the target says, its stream open: the stream and its features.
async fn connect(t: &Target) -> Res<(Xmpp, Element)> {
    let direct = matches!(t.transport, Transport::Tls | Transport::WebSocket);
    let addr = match t.transport {
        Transport::Tls => t.tls_addr,
        Transport::WebSocket => t.https_addr,
        _ => t.addr,
    };
    let tcp = within(t.timeout, "connect", TcpStream::connect(addr)).await?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let conn = if direct {
        tls_handshake(t, tcp).await?
    } else {
        Conn::Plain(tcp)
    };
    let mut x = Xmpp::new(conn, t.timeout);
    if t.transport == Transport::WebSocket {
        websocket_upgrade(t, &mut x).await?;
    }
    let mut features = x.open(&t.domain).await?;
    if t.transport == Transport::StartTls {
        if features.child("starttls", NS_TLS).is_none() {
            return Err("the server offers no STARTTLS".into());
        }
        x.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await?;
        let proceed = x.element().await?;
        if !proceed.is("proceed", NS_TLS) {
            return Err(format!("STARTTLS refused: {}", describe(&proceed)));
        }
        let Conn::Plain(tcp) = x.conn else {
            unreachable!("STARTTLS starts from plaintext")
        };
        x = Xmpp::new(tls_handshake(t, tcp).await?, t.timeout);
        features = x.open(&t.domain).await?;
    }
    Ok((x, features))
}

/// The RFC 6455 opening handshake for the `xmpp` subprotocol (RFC 7395) on a fresh TLS
/// connection; afterwards `x` speaks in WebSocket messages.
async fn websocket_upgrade(t: &Target, x: &mut Xmpp) -> Res<()> {
    let request = format!(
        "GET /xmpp-websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
        t.domain
    );
    x.send(&request).await?;
    let end = loop {
        if let Some(i) = x.raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if x.raw.len() > 16 * 1024 {
            return Err("an HTTP answer head too long".into());
        }
        let n = within(t.timeout, "read", x.conn.read(&mut x.buf)).await?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        x.raw.extend_from_slice(&x.buf[..n]);
    };
    let head = String::from_utf8_lossy(&x.raw[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 101 ") {
        return Err(format!(
            "WebSocket handshake refused: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    x.raw.drain(..end);
    x.ws = true;
    x.reader = StreamReader::for_messages(client_limits());
    Ok(())
}

async fn authenticate(t: &Target, x: &mut Xmpp, user: &str, features: &Element) -> Res<()> {
    let offered: Vec<String> = features
        .child("mechanisms", NS_SASL)
        .map(|m| m.elements().map(Element::text).collect())
        .unwrap_or_default();
    let name = t.mech.name();
    if !offered.iter().any(|m| m == name) {
        return Err(format!(
            "the server does not offer {name} here (it offers {offered:?})"
        ));
    }
    if t.mech == Mechanism::Plain {
        let initial = encode_payload(&plain(user, &t.password));
        x.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{initial}</auth>"
        ))
        .await?;
        let r = x.element().await?;
        return if r.is("success", NS_SASL) {
            Ok(())
        } else {
            Err(format!("PLAIN failed: {}", describe(&r)))
        };
    }
    let mut scram = ScramClient::new(t.mech, user, &t.password, None).map_err(|e| e.to_string())?;
    x.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='{name}'>{}</auth>",
        encode_payload(&scram.client_first())
    ))
    .await?;
    let challenge = x.element().await?;
    if !challenge.is("challenge", NS_SASL) {
        return Err(format!("{name} failed: {}", describe(&challenge)));
    }
    let server_first =
        decode_payload(&challenge.text()).map_err(|_| "a challenge that is not base64")?;
    let client_final = scram
        .handle_server_first(&server_first)
        .map_err(|e| e.to_string())?;
    x.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        encode_payload(&client_final)
    ))
    .await?;
    let success = x.element().await?;
    if !success.is("success", NS_SASL) {
        return Err(format!("{name} failed: {}", describe(&success)));
    }
    let server_final =
        decode_payload(&success.text()).map_err(|_| "a success that is not base64")?;
    scram
        .verify_server_final(&server_final)
        .map_err(|e| e.to_string())
}

/// Runs `f(0)` … `f(n - 1)` with at most `workers` in flight, stopping at the first error or
/// at `deadline`.
async fn parallel<T, F, Fut>(
    ex: &'static LocalExecutor<'static>,
    n: usize,
    workers: usize,
    deadline: Instant,
    f: F,
) -> Res<Vec<T>>
where
    T: 'static,
    F: Fn(usize) -> Fut + 'static,
    Fut: Future<Output = Res<T>> + 'static,
{
    let f = Rc::new(f);
    let next = Rc::new(Cell::new(0usize));
    let results: Rc<RefCell<Vec<Option<T>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let failed: Rc<RefCell<Option<String>>> = Rc::default();
    let tasks: Vec<_> = (0..workers.clamp(1, n.max(1)))
        .map(|_| {
            let (f, next, results, failed) =
                (f.clone(), next.clone(), results.clone(), failed.clone());
            ex.spawn(async move {
                while failed.borrow().is_none() {
                    let i = next.get();
                    if i >= n {
                        break;
                    }
                    if Instant::now() >= deadline {
                        failed
                            .borrow_mut()
                            .get_or_insert_with(|| format!("time is up after {i} of {n}"));
                        break;
                    }
                    next.set(i + 1);
                    match f(i).await {
                        Ok(v) => results.borrow_mut()[i] = Some(v),
                        Err(e) => {
                            failed.borrow_mut().get_or_insert(e);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    if let Some(e) = failed.take() {
        return Err(e);
    }
    Ok(results.take().into_iter().flatten().collect())
}

/// Logs in accounts `first` to `first + n - 1`, `workers` at a time.
async fn login_many(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    first: usize,
    n: usize,
    workers: usize,
    presence: bool,
    deadline: Instant,
) -> Res<Vec<Xmpp>> {
    if first + n - 1 > t.count {
        return Err(format!(
            "{n} sessions from account {first} need {} accounts, --count is {}",
            first + n - 1,
            t.count
        ));
    }
    let t = t.clone();
    parallel(ex, n, workers, deadline, move |i| {
        let t = t.clone();
        async move { login(&t, first + i, "load", presence, true).await }
    })
    .await
}

/// Logs every session out, `workers` at a time (a failed logout just drops the connection).
async fn logout_many(ex: &'static LocalExecutor<'static>, sessions: Vec<Xmpp>, workers: usize) {
    let n = sessions.len();
    let sessions: Rc<RefCell<Vec<Option<Xmpp>>>> =
        Rc::new(RefCell::new(sessions.into_iter().map(Some).collect()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let _ = parallel(ex, n, workers, deadline, move |i| {
        let x = sessions.borrow_mut()[i].take();
        async move {
            if let Some(x) = x {
                let _ = x.logout().await;
            }
            Ok(())
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Modes

async fn connect_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    c: &Connect,
    batch: usize,
) -> Res<()> {
    let n = c.sessions.unwrap_or(t.count);
    if n == 0 {
        return Err("no sessions to log in".into());
    }
    out.value("load_avg_1min_start", loadavg_1(), "");
    let idle = out.memory("server_idle");
    let a = out.mark();
    let deadline = Instant::now() + Duration::from_secs(c.max_seconds);
    let sessions = login_many(ex, t, 1, n, batch, !c.no_presence, deadline).await?;
    let b = out.mark();
    out.note(&format!(
        "{n} sessions logged in; TLS: {}",
        sessions[0].tls_info()
    ));
    out.value("sessions", n as f64, "");
    let wall = out.costs("login_", &a, &b, n as f64, ("login", 1.0));
    out.value("logins_per_s", n as f64 / wall, "/s");
    Timer::after(Duration::from_secs_f64(c.settle)).await;
    if let (Some(before), Some(after)) = (idle, out.memory("server_loaded")) {
        let per = (after.rss as f64 - before.rss as f64) * 1024.0 / n as f64;
        out.value("bytes_per_session", per, "B");
    }
    let a = out.mark();
    logout_many(ex, sessions, batch).await;
    let b = out.mark();
    out.costs("logout_", &a, &b, n as f64, ("logout", 1.0));
    Timer::after(Duration::from_secs_f64(c.settle.min(1.0))).await;
    out.memory("server_after_logout");
    Ok(())
}

/// Counters shared by the tasks of the `msg` mode (one thread).
#[derive(Default)]
struct Traffic {
    /// Senders stop when set…
    stop: Cell<bool>,
    /// …and receivers when this is.
    stop_readers: Cell<bool>,
    measuring: Cell<bool>,
    sent: Cell<u64>,
    received: Cell<u64>,
    /// Messages received while measuring.
    measured: Cell<u64>,
    /// Bounced messages (type error).
    errors: Cell<u64>,
    /// The first failure of a session.
    failure: RefCell<Option<String>>,
    /// Latencies in µs of the messages received while measuring.
    latencies: RefCell<Vec<u32>>,
}

impl Traffic {
    fn fail(&self, why: String) {
        self.failure.borrow_mut().get_or_insert(why);
        self.stop.set(true);
    }

    fn add(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }
}

async fn msg_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    m: &Msg,
    batch: usize,
) -> Res<()> {
    let p = m.pairs.max(1);
    let sessions = 2 * p;
    let deadline = Instant::now() + Duration::from_secs(900);
    out.value("load_avg_1min_start", loadavg_1(), "");
    out.memory("server_idle");
    // The idle crowd first, on the accounts after the pairs'.
    let a = out.mark();
    let idle = if m.idle > 0 {
        login_many(
            ex,
            t,
            sessions + 1,
            m.idle,
            batch,
            !m.idle_no_presence,
            deadline,
        )
        .await?
    } else {
        Vec::new()
    };
    let pairs = login_many(ex, t, 1, sessions, batch, true, deadline).await?;
    let b = out.mark();
    out.note(&format!(
        "{} sessions online ({sessions} in {p} pairs, {} idle, idle presence {}) in {:.1} s; TLS: {}",
        sessions + idle.len(),
        idle.len(),
        !m.idle_no_presence,
        b.at.duration_since(a.at).as_secs_f64(),
        pairs[0].tls_info()
    ));
    out.value("online", (sessions + idle.len()) as f64, "sessions");
    Timer::after(Duration::from_secs_f64(m.settle)).await;
    out.memory("server_online");

    let traffic = Rc::new(Traffic::default());
    traffic
        .latencies
        .borrow_mut()
        .reserve(((m.duration * 50_000.0) as usize).min(MAX_SAMPLES));
    let window = m.window.max(1);
    // windows[r]: free slots for messages to session r; its reader gives them back.
    let windows: Vec<(Sender<()>, Receiver<()>)> = (0..sessions)
        .map(|_| {
            let (s, r) = smol::channel::bounded(window);
            for _ in 0..window {
                s.try_send(()).expect("room for the window");
            }
            (s, r)
        })
        .collect();
    let rate = (m.rate > 0.0).then(|| m.rate / sessions as f64);
    let jids: Vec<String> = pairs.iter().map(|x| x.jid.clone()).collect();
    let mut tasks = Vec::new();
    for (i, x) in pairs.into_iter().enumerate() {
        let peer = i ^ 1;
        let (r, w) = smol::io::split(x.conn);
        tasks.push(ex.spawn(send_loop(
            w,
            windows[peer].1.clone(),
            jids[peer].clone(),
            traffic.clone(),
            rate,
            t.timeout,
        )));
        tasks.push(ex.spawn(receive_loop(
            r,
            x.reader,
            windows[i].0.clone(),
            windows[peer].0.clone(),
            traffic.clone(),
        )));
    }
    Timer::after(Duration::from_secs_f64(m.warmup)).await;
    let a = out.mark();
    let received0 = traffic.received.get();
    traffic.measuring.set(true);
    Timer::after(Duration::from_secs_f64(m.duration)).await;
    traffic.measuring.set(false);
    let b = out.mark();
    let delivered = traffic.received.get() - received0;
    traffic.stop.set(true);
    // Let what is in flight arrive (bounded), then stop the readers.
    let drain_until = Instant::now() + Duration::from_secs(10);
    while traffic.received.get() + traffic.errors.get() < traffic.sent.get()
        && Instant::now() < drain_until
    {
        Timer::after(Duration::from_millis(20)).await;
    }
    traffic.stop_readers.set(true);
    for task in tasks {
        task.await;
    }
    if let Some(why) = traffic.failure.take() {
        return Err(why);
    }
    let wall = out.costs("msg_", &a, &b, delivered as f64, ("1000_msgs", 1000.0));
    out.value("msgs_per_s", delivered as f64 / wall, "/s");
    out.value("msgs_measured", traffic.measured.get() as f64, "");
    let mut lat = traffic.latencies.take();
    lat.sort_unstable();
    for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        if let Some(v) = percentile(&lat, q) {
            out.value(&format!("latency_{name}_ms"), v as f64 / 1000.0, "ms");
        }
    }
    let lost = traffic
        .sent
        .get()
        .saturating_sub(traffic.received.get() + traffic.errors.get());
    out.value("bounced", traffic.errors.get() as f64, "");
    out.value("lost", lost as f64, "");
    logout_many(ex, idle, batch).await;
    if lost > 0 || traffic.errors.get() > 0 {
        return Err(format!(
            "{lost} messages lost and {} bounced",
            traffic.errors.get()
        ));
    }
    Ok(())
}

fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    Some(sorted[i])
}

/// Sends chat messages to `to_full` (alternately to its bare JID) while a window slot is
/// free, paced to `rate` per second if given, until `traffic.stop`.
async fn send_loop(
    mut w: WriteHalf<Conn>,
    slots: Receiver<()>,
    to_full: String,
    traffic: Rc<Traffic>,
    rate: Option<f64>,
    timeout: Duration,
) {
    let to_bare = to_full.split('/').next().unwrap_or_default().to_owned();
    let start = Instant::now();
    let mut out = String::with_capacity(256);
    let mut k: u64 = 0;
    while !traffic.stop.get() {
        let slot = async { slots.recv().await.is_ok() }
            .or(async {
                Timer::after(TICK).await;
                false
            })
            .await;
        if !slot {
            continue;
        }
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            // Sleep in ticks so that `stop` is seen.
            while Instant::now() < due && !traffic.stop.get() {
                Timer::at(due.min(Instant::now() + TICK)).await;
            }
            if traffic.stop.get() {
                break;
            }
        }
        let to = if k % 2 == 0 { &to_full } else { &to_bare };
        out.clear();
        let _ = write!(
            out,
            "<message to='{to}' type='chat' id='m{k}'><body>{} {BODY}</body></message>",
            now_us()
        );
        let written = within(timeout, "write", async {
            w.write_all(out.as_bytes()).await?;
            w.flush().await
        })
        .await;
        if let Err(e) = written {
            traffic.fail(e);
            break;
        }
        k += 1;
        Traffic::add(&traffic.sent);
    }
}

/// Reads a pair session's stream: counts messages, records their latency, and gives the
/// window slot back (to the peer's sender, or ours for a bounce), until `stop_readers`.
async fn receive_loop(
    mut r: ReadHalf<Conn>,
    mut reader: StreamReader,
    to_me: Sender<()>,
    from_me: Sender<()>,
    traffic: Rc<Traffic>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        loop {
            match reader.next() {
                Ok(Some(Event::Element(e))) if e.name == "message" => {
                    if e.attr("type") == Some("error") {
                        Traffic::add(&traffic.errors);
                        let _ = from_me.try_send(());
                        continue;
                    }
                    let sent_at = e
                        .child("body", NS_CLIENT)
                        .and_then(|b| b.text().split(' ').next()?.parse::<u64>().ok());
                    if let Some(sent_at) = sent_at {
                        Traffic::add(&traffic.received);
                        if traffic.measuring.get() {
                            Traffic::add(&traffic.measured);
                            let mut lat = traffic.latencies.borrow_mut();
                            if lat.len() < MAX_SAMPLES {
                                let us = now_us().saturating_sub(sent_at);
                                lat.push(us.min(u32::MAX as u64) as u32);
                            }
                        }
                        let _ = to_me.try_send(());
                    }
                }
                Ok(Some(Event::Element(e))) if e.is("error", NS_STREAM) => {
                    traffic.fail(format!("stream error: {}", describe(&e)));
                    return;
                }
                Ok(Some(Event::Close)) => {
                    traffic.fail("the server closed a stream".into());
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    traffic.fail(format!("the server sent bad XML: {e}"));
                    return;
                }
            }
        }
        if traffic.stop_readers.get() {
            return;
        }
        let read = async { Some(r.read(&mut buf).await) }
            .or(async {
                Timer::after(TICK).await;
                None
            })
            .await;
        match read {
            None => {}
            Some(Ok(0)) => {
                traffic.fail("the server closed a connection".into());
                return;
            }
            Some(Ok(n)) => reader.push(&buf[..n]),
            Some(Err(e)) => {
                traffic.fail(format!("read: {e}"));
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Group chats (XEP-0045)

const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";

/// A tag for this run's room names, so that every run makes new rooms (a server may keep
/// an emptied room's archive, or a tombstone of it, across runs).
fn run_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}{:x}", t.as_secs(), std::process::id())
}

/// Does a room presence carry status `code` (XEP-0045 §15.6)?
fn has_status(e: &Element, code: &str) -> bool {
    e.child("x", NS_MUC_USER).is_some_and(|x| {
        x.elements()
            .any(|s| s.name == "status" && s.attr("code") == Some(code))
    })
}

fn bare_of(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// Joins the rooms `rooms` (bare JIDs) as `nick` without history, `window` joins in flight,
/// each done at its self-presence (status 110). With `create` every room must be new
/// (status 201) and is unlocked with the instant configuration (XEP-0045 §10.1.2).
async fn join_rooms(
    x: &mut Xmpp,
    rooms: &[String],
    nick: &str,
    create: bool,
    window: usize,
) -> Res<()> {
    let mut out = String::new();
    for chunk in rooms.chunks(window.max(1)) {
        out.clear();
        for r in chunk {
            let _ = write!(
                out,
                "<presence to='{r}/{nick}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x>\
                 </presence>"
            );
        }
        x.send(&out).await?;
        let mut waiting: std::collections::HashSet<&str> =
            chunk.iter().map(String::as_str).collect();
        let mut locked = 0;
        while !waiting.is_empty() {
            let e = x.until(|e| e.name == "presence").await?;
            let room = bare_of(e.attr("from").unwrap_or_default());
            if !waiting.contains(room) {
                continue;
            }
            if e.attr("type") == Some("error") {
                return Err(format!("{nick} joining {room}: {}", describe(&e)));
            }
            if has_status(&e, "110") {
                waiting.remove(room);
                locked += usize::from(has_status(&e, "201"));
            }
        }
        if !create {
            continue;
        }
        if locked != chunk.len() {
            return Err(format!(
                "{} of {} rooms existed already (no status 201)",
                chunk.len() - locked,
                chunk.len()
            ));
        }
        out.clear();
        for r in chunk {
            let _ = write!(
                out,
                "<iq type='set' id='cfg-{r}' to='{r}'><query xmlns='{NS_MUC_OWNER}'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>"
            );
        }
        x.send(&out).await?;
        for _ in chunk {
            let e = x
                .until(|e| e.name == "iq" && e.attr("id").is_some_and(|i| i.starts_with("cfg-")))
                .await?;
            if e.attr("type") != Some("result") {
                return Err(format!(
                    "configuring {}: {}",
                    bare_of(e.attr("from").unwrap_or_default()),
                    describe(&e)
                ));
            }
        }
    }
    Ok(())
}

/// Reads a stream until `stop()`, handing every top-level element to `each` (which may end
/// the run with an error); a stream error, the end of the stream or bad XML is an error.
async fn read_elements(
    r: &mut (impl AsyncRead + Unpin),
    reader: &mut StreamReader,
    stop: impl Fn() -> bool,
    mut each: impl FnMut(Element) -> Res<()>,
) -> Res<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        loop {
            match reader.next() {
                Ok(Some(Event::Element(e))) if e.is("error", NS_STREAM) => {
                    return Err(format!("stream error: {}", describe(&e)));
                }
                Ok(Some(Event::Element(e))) => each(e)?,
                Ok(Some(Event::Close)) => return Err("the server closed a stream".into()),
                Ok(Some(Event::Header(_))) => {}
                Ok(None) => break,
                Err(e) => return Err(format!("the server sent bad XML: {e}")),
            }
        }
        if stop() {
            return Ok(());
        }
        let read = async { Some(r.read(&mut buf).await) }
            .or(async {
                Timer::after(TICK).await;
                None
            })
            .await;
        match read {
            None => {}
            Some(Ok(0)) => return Err("the server closed a connection".into()),
            Some(Ok(n)) => reader.push(&buf[..n]),
            Some(Err(e)) => return Err(format!("read: {e}")),
        }
    }
}

async fn muc_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    m: &MucRoom,
    batch: usize,
) -> Res<()> {
    let n = m.occupants.max(1);
    if m.rate <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    let service = m
        .service
        .clone()
        .unwrap_or_else(|| format!("groups.{}", t.domain));
    let name = m
        .room
        .clone()
        .unwrap_or_else(|| format!("bench-{}", run_tag()));
    let room = format!("{name}@{service}");
    let deadline = Instant::now() + Duration::from_secs(600);
    out.value("load_avg_1min_start", loadavg_1(), "");
    out.memory("server_idle");
    let mut sessions = login_many(ex, t, 1, n, batch, true, deadline).await?;
    let a = out.mark();
    for (i, x) in sessions.iter_mut().enumerate() {
        let nick = format!("o{}", i + 1);
        join_rooms(x, std::slice::from_ref(&room), &nick, i == 0, 1).await?;
    }
    let b = out.mark();
    out.note(&format!(
        "{n} occupants in {room} in {:.1} s; TLS: {}",
        b.at.duration_since(a.at).as_secs_f64(),
        sessions[0].tls_info()
    ));
    out.value("occupants", n as f64, "");
    Timer::after(Duration::from_secs_f64(m.settle)).await;
    out.memory("server_joined");

    let traffic = Rc::new(Traffic::default());
    traffic
        .latencies
        .borrow_mut()
        .reserve(((m.duration * m.rate * 1.2) as usize).min(MAX_SAMPLES));
    // Room messages not yet seen by every occupant: sequence number → occupants still to see it.
    let pending: Rc<RefCell<HashMap<u64, u32>>> = Rc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, x) in sessions.into_iter().enumerate() {
        let (mut r, w) = smol::io::split(x.conn);
        let mut reader = x.reader;
        tasks.push(ex.spawn(muc_send_loop(
            w,
            room.clone(),
            (i, n),
            traffic.clone(),
            pending.clone(),
            (start, m.rate),
            t.timeout,
        )));
        let (traffic, pending) = (traffic.clone(), pending.clone());
        tasks.push(ex.spawn(async move {
            let stop = || traffic.stop_readers.get();
            let each = |e: Element| {
                if e.name == "message" {
                    muc_received(&e, &traffic, &pending, n as u32);
                }
                Ok(())
            };
            if let Err(why) = read_elements(&mut r, &mut reader, stop, each).await {
                traffic.fail(why);
            }
        }));
    }
    Timer::after(Duration::from_secs_f64(m.warmup)).await;
    let a = out.mark();
    let completed0 = traffic.received.get();
    traffic.measuring.set(true);
    Timer::after(Duration::from_secs_f64(m.duration)).await;
    traffic.measuring.set(false);
    let b = out.mark();
    let delivered = traffic.received.get() - completed0;
    traffic.stop.set(true);
    let drain_until = Instant::now() + Duration::from_secs(30);
    while !pending.borrow().is_empty() && Instant::now() < drain_until {
        Timer::after(Duration::from_millis(20)).await;
    }
    traffic.stop_readers.set(true);
    for task in tasks {
        task.await;
    }
    if let Some(why) = traffic.failure.take() {
        return Err(why);
    }
    let wall = out.costs("muc_", &a, &b, delivered as f64, ("1000_room_msgs", 1000.0));
    out.value("room_msgs_per_s", delivered as f64 / wall, "/s");
    out.value(
        "deliveries_per_s",
        (delivered * n as u64) as f64 / wall,
        "/s",
    );
    out.value("room_msgs_measured", traffic.measured.get() as f64, "");
    let mut lat = traffic.latencies.take();
    lat.sort_unstable();
    for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)] {
        if let Some(v) = percentile(&lat, q) {
            out.value(&format!("last_latency_{name}_ms"), v as f64 / 1000.0, "ms");
        }
    }
    let lost = pending.borrow().len();
    out.value("bounced", traffic.errors.get() as f64, "");
    out.value("lost", lost as f64, "");
    if lost > 0 || traffic.errors.get() > 0 {
        return Err(format!(
            "{lost} room messages did not reach every occupant and {} bounced",
            traffic.errors.get()
        ));
    }
    Ok(())
}

/// A message an occupant received: counts the room message's arrival, and when it was the
/// last occupant to get it, its latency.
fn muc_received(e: &Element, traffic: &Traffic, pending: &RefCell<HashMap<u64, u32>>, n: u32) {
    if e.attr("type") == Some("error") {
        Traffic::add(&traffic.errors);
        return;
    }
    let Some(body) = e.child("body", NS_CLIENT).map(|b| b.text()) else {
        return; // the subject
    };
    let mut words = body.split(' ');
    let (Some(seq), Some(sent_at)) = (
        words.next().and_then(|w| w.parse::<u64>().ok()),
        words.next().and_then(|w| w.parse::<u64>().ok()),
    ) else {
        return;
    };
    let mut p = pending.borrow_mut();
    let Some(left) = p.get_mut(&seq) else {
        traffic.fail(format!("room message {seq} arrived more than {n} times"));
        return;
    };
    *left -= 1;
    if *left > 0 {
        return;
    }
    p.remove(&seq);
    Traffic::add(&traffic.received);
    if traffic.measuring.get() {
        Traffic::add(&traffic.measured);
        let mut lat = traffic.latencies.borrow_mut();
        if lat.len() < MAX_SAMPLES {
            let us = now_us().saturating_sub(sent_at);
            lat.push(us.min(u32::MAX as u64) as u32);
        }
    }
}

/// Occupant `i` of `n` sends room messages `i`, `i + n`, … each at its time on the common
/// schedule (`start` + k / `rate`), until `traffic.stop`.
async fn muc_send_loop(
    mut w: WriteHalf<Conn>,
    room: String,
    (i, n): (usize, usize),
    traffic: Rc<Traffic>,
    pending: Rc<RefCell<HashMap<u64, u32>>>,
    (start, rate): (Instant, f64),
    timeout: Duration,
) {
    let mut out = String::with_capacity(256);
    for j in 0u64.. {
        let seq = j * n as u64 + i as u64;
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        // Sleep in ticks so that `stop` is seen.
        while Instant::now() < due && !traffic.stop.get() {
            Timer::at(due.min(Instant::now() + TICK)).await;
        }
        if traffic.stop.get() {
            break;
        }
        pending.borrow_mut().insert(seq, n as u32);
        out.clear();
        let _ = write!(
            out,
            "<message to='{room}' type='groupchat' id='g{seq}'><body>{seq} {} {BODY}</body>\
             </message>",
            now_us()
        );
        let written = within(timeout, "write", async {
            w.write_all(out.as_bytes()).await?;
            w.flush().await
        })
        .await;
        if let Err(e) = written {
            traffic.fail(e);
            break;
        }
        Traffic::add(&traffic.sent);
    }
}

async fn muc_idle_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    m: &MucIdle,
    batch: usize,
) -> Res<()> {
    let p = m.per_room.max(1);
    if m.rooms == 0 {
        return Err("--rooms must be at least 1".into());
    }
    let service = m
        .service
        .clone()
        .unwrap_or_else(|| format!("groups.{}", t.domain));
    let tag = run_tag();
    let rooms: Vec<String> = (1..=m.rooms)
        .map(|k| format!("idle{k}-{tag}@{service}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let settle = Duration::from_secs_f64(m.settle);
    out.value("load_avg_1min_start", loadavg_1(), "");
    out.memory("server_idle");
    let sessions = login_many(ex, t, 1, p, batch, true, deadline).await?;
    Timer::after(settle).await;
    let m0 = out.memory("server_logged_in");
    // Each session, once in every room, is read (and what it gets dropped) by a task of its
    // own, so that the presences of later joins do not pile up in the server's queues.
    let stop = Rc::new(Cell::new(false));
    let failure: Rc<RefCell<Option<String>>> = Rc::default();
    let mut readers = Vec::new();
    let mut m1 = None;
    let a = out.mark();
    let mut mid = None;
    for (i, mut x) in sessions.into_iter().enumerate() {
        join_rooms(&mut x, &rooms, &format!("o{}", i + 1), i == 0, m.window).await?;
        let (stop, failure) = (stop.clone(), failure.clone());
        readers.push(ex.spawn(async move {
            let Xmpp {
                mut conn,
                mut reader,
                ..
            } = x;
            let done = read_elements(&mut conn, &mut reader, || stop.get(), |_| Ok(())).await;
            if let Err(why) = done {
                failure.borrow_mut().get_or_insert(why);
            }
            conn
        }));
        if i == 0 {
            let b = out.mark();
            out.costs("create_", &a, &b, m.rooms as f64, ("room", 1.0));
            Timer::after(settle).await;
            m1 = out.memory("server_rooms");
            mid = Some(out.mark());
        }
    }
    if let Some(mid) = mid.filter(|_| p > 1) {
        let b = out.mark();
        let joins = (m.rooms * (p - 1)) as f64;
        out.costs("join_", &mid, &b, joins, ("join", 1.0));
    }
    Timer::after(settle).await;
    let m2 = out.memory("server_occupied");
    stop.set(true);
    let mut conns = Vec::new();
    for r in readers {
        conns.push(r.await);
    }
    if let Some(why) = failure.take() {
        return Err(why);
    }
    out.note(&format!(
        "{} rooms of {p} occupants ({p} sessions in every room)",
        m.rooms
    ));
    if let (Some(m0), Some(m1), Some(m2)) = (m0, m1, m2) {
        let room = (m1.rss as f64 - m0.rss as f64) * 1024.0 / m.rooms as f64;
        out.value("bytes_per_room", room, "B");
        if p > 1 {
            let further = (m.rooms * (p - 1)) as f64;
            out.value(
                "bytes_per_occupant",
                (m2.rss as f64 - m1.rss as f64) * 1024.0 / further,
                "B",
            );
        }
        out.value(
            "bytes_per_room_of_all",
            (m2.rss as f64 - m0.rss as f64) * 1024.0 / m.rooms as f64,
            "B",
        );
    }
    drop(conns);
    Ok(())
}

async fn login_rate_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    l: &LoginRate,
) -> Res<()> {
    if t.count == 0 {
        return Err("no accounts".into());
    }
    out.value("load_avg_1min_start", loadavg_1(), "");
    let deadline = Instant::now() + Duration::from_secs(600);
    if l.sequential > 0 {
        let a = out.mark();
        for i in 0..l.sequential {
            if Instant::now() >= deadline {
                return Err(format!("time is up after {i} sequential logins"));
            }
            let x = login(t, i % t.count + 1, &format!("seq{i}"), false, false).await?;
            x.logout().await?;
        }
        let b = out.mark();
        let wall = out.costs("seq_", &a, &b, l.sequential as f64, ("login", 1.0));
        out.value("seq_logins_per_s", l.sequential as f64 / wall, "/s");
    }
    if l.concurrent > 0 {
        let a = out.mark();
        let target = t.clone();
        parallel(ex, l.concurrent, l.concurrency, deadline, move |i| {
            let t = target.clone();
            async move {
                let x = login(&t, i % t.count + 1, &format!("conc{i}"), false, false).await?;
                x.logout().await
            }
        })
        .await?;
        let b = out.mark();
        let wall = out.costs("conc_", &a, &b, l.concurrent as f64, ("login", 1.0));
        out.value("conc_logins_per_s", l.concurrent as f64 / wall, "/s");
    }
    Ok(())
}

const NS_SASL2: &str = "urn:xmpp:sasl:2";
const NS_FAST: &str = "urn:xmpp:fast:0";

/// One SASL2 + Bind 2 login of account `i` as client `ua`: with SCRAM asking for a FAST
/// token (`token` None), or with the token. Returns the session, the token received and
/// the round trips from the features to the bound session.
async fn sasl2_login(
    t: &Target,
    i: usize,
    token: Option<&str>,
) -> Res<(Xmpp, Option<String>, u32)> {
    let user = t.user(i);
    let (mut x, features) = connect(t).await?;
    if features.child("authentication", NS_SASL2).is_none() {
        return Err("the server offers no SASL2".into());
    }
    let ua = format!("<user-agent id='bench-{i}'/>");
    let bind = "<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind>";
    let mut trips = 0;
    let mut scram = None;
    let answer = match token {
        Some(tok) => {
            let (msg, answer) = roost::sasl::ht::client_message(&user, tok, b"");
            x.send(&format!(
                "<authenticate xmlns='{NS_SASL2}' mechanism='HT-SHA-256-NONE'>\
                 <initial-response>{}</initial-response>{ua}<fast xmlns='{NS_FAST}'/>{bind}\
                 </authenticate>",
                encode_payload(&msg)
            ))
            .await?;
            Some(answer)
        }
        None => {
            let c =
                ScramClient::new(t.mech, &user, &t.password, None).map_err(|e| e.to_string())?;
            x.send(&format!(
                "<authenticate xmlns='{NS_SASL2}' mechanism='{}'>\
                 <initial-response>{}</initial-response>{ua}\
                 <request-token xmlns='{NS_FAST}' mechanism='HT-SHA-256-NONE'/>{bind}\
                 </authenticate>",
                t.mech.name(),
                encode_payload(&c.client_first())
            ))
            .await?;
            scram = Some(c);
            None
        }
    };
    let mut reply = x.element().await?;
    trips += 1;
    if let Some(c) = scram.as_mut() {
        if !reply.is("challenge", NS_SASL2) {
            return Err(format!(
                "{user}: SCRAM via SASL2 failed: {}",
                describe(&reply)
            ));
        }
        let first = decode_payload(&reply.text()).map_err(|_| "a challenge that is not base64")?;
        let last = c.handle_server_first(&first).map_err(|e| e.to_string())?;
        x.send(&format!(
            "<response xmlns='{NS_SASL2}'>{}</response>",
            encode_payload(&last)
        ))
        .await?;
        reply = x.element().await?;
        trips += 1;
    }
    if !reply.is("success", NS_SASL2) {
        return Err(format!("{user}: SASL2 failed: {}", describe(&reply)));
    }
    let data = reply
        .child("additional-data", NS_SASL2)
        .and_then(|d| decode_payload(&d.text()).ok())
        .ok_or("a success without the server's proof")?;
    match (scram, answer) {
        (Some(c), _) => c.verify_server_final(&data).map_err(|e| e.to_string())?,
        (None, Some(a)) if a == data => {}
        _ => return Err("the server's FAST answer is wrong".into()),
    }
    x.jid = reply
        .child("authorization-identifier", NS_SASL2)
        .map(|a| a.text())
        .filter(|j| j.contains('/'))
        .ok_or("not bound by Bind 2")?;
    let new_token = reply
        .child("token", NS_FAST)
        .and_then(|t| t.attr("token"))
        .map(str::to_owned);
    Ok((x, new_token, trips))
}

/// `fast-login`: SASL2 with SCRAM (and a token asked for), then SASL2 with the tokens.
async fn fast_login_mode(t: &Rc<Target>, out: &Out, f: &FastLogin) -> Res<()> {
    if t.count == 0 || f.logins == 0 {
        return Err("no accounts or no logins".into());
    }
    if t.mech == Mechanism::Plain {
        return Err(
            "fast-login compares SCRAM with FAST: give --mech SCRAM-SHA-1 or SCRAM-SHA-256".into(),
        );
    }
    out.value("load_avg_1min_start", loadavg_1(), "");
    let deadline = Instant::now() + Duration::from_secs(600);
    let n = f.logins;
    let mut tokens: Vec<Option<String>> = vec![None; t.count.min(n)];
    let a = out.mark();
    let mut scram_trips = 0;
    for i in 0..n {
        if Instant::now() >= deadline {
            return Err(format!("time is up after {i} SCRAM logins"));
        }
        let slot = i % tokens.len();
        let (x, token, trips) = sasl2_login(t, slot + 1, None).await?;
        scram_trips = trips;
        tokens[slot] = Some(token.ok_or("no FAST token given")?);
        x.logout().await?;
    }
    let b = out.mark();
    out.costs("sasl2_scram_", &a, &b, n as f64, ("login", 1.0));
    out.value(
        "sasl2_scram_client_cpu_ms_per_login",
        (b.client - a.client).as_secs_f64() * 1000.0 / n as f64,
        "ms",
    );
    // A reconnecting phone also holds a TLS 1.3 ticket from its last connection: one
    // unmeasured login with a resuming configuration fills the store, and each later
    // handshake takes one ticket and receives new ones.
    let resuming;
    let ft: &Target = match (&t.tls, f.tls_resume) {
        (Some(tls), true) => {
            let mut c = (**tls).clone();
            c.resumption = rustls::client::Resumption::in_memory_sessions(256);
            resuming = Target {
                tls: Some(Arc::new(c)),
                ..(**t).clone()
            };
            let token = tokens[0].clone().ok_or("no token")?;
            let (x, rotated, _) = sasl2_login(&resuming, 1, Some(&token)).await?;
            if let Some(r) = rotated {
                tokens[0] = Some(r);
            }
            x.logout().await?;
            &resuming
        }
        (None, true) => return Err("--tls-resume needs a TLS transport".into()),
        _ => t,
    };
    RESUMED.store(0, std::sync::atomic::Ordering::Relaxed);
    let a = out.mark();
    let mut fast_trips = 0;
    for i in 0..n {
        if Instant::now() >= deadline {
            return Err(format!("time is up after {i} FAST logins"));
        }
        let slot = i % tokens.len();
        let token = tokens[slot].clone().ok_or("no token")?;
        let (x, rotated, trips) = sasl2_login(ft, slot + 1, Some(&token)).await?;
        fast_trips = trips;
        if let Some(r) = rotated {
            tokens[slot] = Some(r);
        }
        x.logout().await?;
    }
    let b = out.mark();
    out.costs("fast_", &a, &b, n as f64, ("login", 1.0));
    out.value(
        "fast_client_cpu_ms_per_login",
        (b.client - a.client).as_secs_f64() * 1000.0 / n as f64,
        "ms",
    );
    if f.tls_resume {
        out.value(
            "fast_tls_resumed_share",
            RESUMED.load(std::sync::atomic::Ordering::Relaxed) as f64 / n as f64,
            "",
        );
    }
    out.value("sasl2_scram_round_trips", f64::from(scram_trips), "");
    out.value("fast_round_trips", f64::from(fast_trips), "");
    out.note("round trips counted from the stream features (after TLS) to a bound session");
    Ok(())
}

/// `roost-accounts`: the accounts, straight into roost's database (as `roost adduser` does).
fn roost_accounts(args: &Args, r: &RoostAccounts) -> Res<()> {
    let conn = roost::storage::open_connection(&r.data_dir).map_err(|e| e.to_string())?;
    let domain = roost::jid::nameprep(&args.domain).map_err(|e| format!("{}: {e}", args.domain))?;
    if let Some(served) = accounts::served_domain(&conn).map_err(|e| e.to_string())? {
        if served != domain {
            return Err(format!(
                "{} serves {served}, not {domain}",
                r.data_dir.display()
            ));
        }
    }
    // The keys do not depend on the name: derive them once.
    let creds =
        StoredCredentials::derive(&args.password, roost::Config::default().scram_iterations);
    conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
    let mut created = 0;
    for i in 1..=args.count {
        let user = format!("{}{i}", args.users_prefix);
        match accounts::create(&conn, &domain, &user, &creds) {
            Ok(()) => created += 1,
            Err(AccountError::Exists) => {}
            Err(e) => return Err(format!("{user}: {e}")),
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
    println!(
        "roost-accounts: {created} created, {} already there, in {}",
        args.count - created,
        r.data_dir.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// XEP-0363 upload and download

/// A slot's PUT URL (with the headers the service asked for) and GET URL.
struct UploadSlot {
    put: String,
    headers: Vec<(String, String)>,
    get: String,
}

async fn request_slot(x: &mut Xmpp, service: &str, size: u64, n: usize) -> Res<UploadSlot> {
    const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";
    let id = format!("slot{n}");
    x.send(&format!(
        "<iq type='get' id='{id}' to='{service}'><request xmlns='{NS_UPLOAD}' \
         filename='bench{n}.bin' size='{size}' content-type='application/octet-stream'/></iq>"
    ))
    .await?;
    let reply = x
        .until(|e| e.name == "iq" && e.attr("id") == Some(id.as_str()))
        .await?;
    let slot = reply
        .child("slot", NS_UPLOAD)
        .ok_or_else(|| format!("no slot: {}", reply.to_client_string()))?;
    let put = slot.child("put", NS_UPLOAD).ok_or("a slot without put")?;
    let get = slot.child("get", NS_UPLOAD).ok_or("a slot without get")?;
    Ok(UploadSlot {
        put: put.attr("url").ok_or("put without url")?.to_owned(),
        headers: put
            .elements()
            .filter(|h| h.name == "header")
            .filter_map(|h| Some((h.attr("name")?.to_owned(), h.text())))
            .collect(),
        get: get.attr("url").ok_or("get without url")?.to_owned(),
    })
}

/// `https://host[:port]/path` → (host, port, path).
fn split_url(url: &str) -> Res<(String, u16, String)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: not an https URL"))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("{url}: bad port"))?),
        None => (hostport, 443),
    };
    Ok((
        host.to_owned(),
        port,
        if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    ))
}

/// An HTTPS connection to `url`'s port on the load generator's host, with `url`'s host as
/// the TLS server name.
async fn https(
    t: &Target,
    tls: &Arc<rustls::ClientConfig>,
    url: &str,
) -> Res<(Conn, String, String)> {
    let (host, port, path) = split_url(url)?;
    let tcp = within(
        t.timeout,
        "connect",
        TcpStream::connect((t.addr.ip(), port)),
    )
    .await?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let s = within(
        t.timeout,
        "TLS handshake",
        futures_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
    )
    .await?;
    Ok((Conn::Tls(Box::new(s)), host, path))
}

/// Reads a response head: the status and Content-Length (if any); the bytes read past
/// the head are returned too.
async fn response_head(t: &Target, conn: &mut Conn) -> Res<(u16, Option<u64>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("not an HTTP response: {head}"))?;
            let length = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            });
            return Ok((status, length, buf[i + 4..].to_vec()));
        }
        let n = within(t.timeout, "read", conn.read(&mut chunk)).await?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// PUTs `size` bytes to the slot.
async fn http_put(
    t: &Target,
    tls: &Arc<rustls::ClientConfig>,
    slot: &UploadSlot,
    size: u64,
) -> Res<()> {
    let (mut conn, host, path) = https(t, tls, &slot.put).await?;
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {size}\r\n"
    );
    for (n, v) in &slot.headers {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    head.push_str("\r\n");
    within(t.timeout, "write", conn.write_all(head.as_bytes())).await?;
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        within(t.timeout, "write", conn.write_all(&block[..n])).await?;
        left -= n as u64;
    }
    within(t.timeout, "flush", conn.flush()).await?;
    let (status, _, _) = response_head(t, &mut conn).await?;
    if !(200..300).contains(&status) {
        return Err(format!("PUT answered {status}"));
    }
    let _ = within(Duration::from_secs(2), "close", conn.close()).await;
    Ok(())
}

/// GETs a file, counting its bytes (not kept).
async fn http_get(t: &Target, tls: &Arc<rustls::ClientConfig>, url: &str) -> Res<u64> {
    let (mut conn, host, path) = https(t, tls, url).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    within(t.timeout, "write", conn.write_all(head.as_bytes())).await?;
    let (status, length, rest) = response_head(t, &mut conn).await?;
    if status != 200 {
        return Err(format!("GET answered {status}"));
    }
    let length = length.ok_or("a download without Content-Length")?;
    let mut got = rest.len() as u64;
    let mut buf = vec![0u8; 64 * 1024];
    while got < length {
        let n = within(t.timeout, "read", conn.read(&mut buf)).await?;
        if n == 0 {
            return Err(format!("the download ended at {got} of {length} bytes"));
        }
        got += n as u64;
    }
    let _ = within(Duration::from_secs(2), "close", conn.close()).await;
    Ok(got)
}

async fn upload_mode(
    ex: &'static LocalExecutor<'static>,
    t: &Rc<Target>,
    out: &Out,
    u: &UploadBench,
    tls: Arc<rustls::ClientConfig>,
) -> Res<()> {
    let service = u
        .service
        .clone()
        .unwrap_or_else(|| format!("upload.{}", t.domain));
    let size = u.size_mib * 1024 * 1024;
    let mut x = login(t, 1, "upload", false, true).await?;
    Timer::after(Duration::from_secs(1)).await;
    let idle = out.memory("idle");

    // One file alone: upload, then download.
    let slot = request_slot(&mut x, &service, size, 0).await?;
    let a = out.mark();
    http_put(t, &tls, &slot, size).await?;
    let b = out.mark();
    let wall = out.costs("upload_", &a, &b, 1.0, ("file", 1.0));
    out.value("upload_mib_per_s", u.size_mib as f64 / wall, "MiB/s");
    let got = http_get(t, &tls, &slot.get).await?;
    let c = out.mark();
    if got != size {
        return Err(format!("downloaded {got} bytes of {size}"));
    }
    let wall = out.costs("download_", &b, &c, 1.0, ("file", 1.0));
    out.value("download_mib_per_s", u.size_mib as f64 / wall, "MiB/s");
    out.memory("after_one");

    // Several at once, the server's memory sampled meanwhile.
    let mut slots = Vec::new();
    for n in 1..=u.concurrent {
        slots.push(request_slot(&mut x, &service, size, n).await?);
    }
    let peak = Rc::new(Cell::new(0u64));
    let done = Rc::new(Cell::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        let pid = out.server.pid;
        ex.spawn(async move {
            let probe = Probe { pid };
            while !done.get() {
                if let Some(m) = probe.mem() {
                    peak.set(peak.get().max(m.rss));
                }
                Timer::after(Duration::from_millis(20)).await;
            }
        })
    };
    let a = out.mark();
    let tasks: Vec<_> = slots
        .into_iter()
        .map(|slot| {
            let (t, tls) = (t.clone(), tls.clone());
            ex.spawn(async move { http_put(&t, &tls, &slot, size).await })
        })
        .collect();
    let mut failed = None;
    for task in tasks {
        if let Err(e) = task.await {
            failed.get_or_insert(e);
        }
    }
    let b = out.mark();
    done.set(true);
    sampler.await;
    if let Some(e) = failed {
        return Err(format!("a concurrent upload failed: {e}"));
    }
    let wall = out.costs("concurrent_", &a, &b, u.concurrent as f64, ("file", 1.0));
    out.value(
        "concurrent_upload_mib_per_s",
        (u.size_mib * u.concurrent as u64) as f64 / wall,
        "MiB/s",
    );
    if let Some(idle) = idle {
        out.value("concurrent_rss_peak_kib", peak.get() as f64, "KiB");
        out.value(
            "concurrent_rss_above_idle_kib",
            peak.get().saturating_sub(idle.rss) as f64,
            "KiB",
        );
    }
    out.memory("after_concurrent");
    x.logout().await
}
