//! The server: configuration, TLS, router and storage shared by every connection; the
//! listeners and the executor's small thread pool; signals and orderly shutdown.

use crate::config::Config;
use crate::router::Router;
use crate::storage::{Storage, StorageError};
use crate::tls::{Tls, TlsError};
use async_net::TcpListener;
use smol::channel::{Receiver, Sender};
use smol::Executor;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why the server could not start.
#[derive(Debug)]
pub enum ServerError {
    Config(String),
    Bind(SocketAddr, std::io::Error),
    Tls(TlsError),
    Storage(StorageError),
    Io(std::io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => write!(f, "{e}"),
            ServerError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Storage(e) => write!(f, "{e}"),
            ServerError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Fills `buf` with random bytes from the operating system.
///
/// Small requests (ids: two per archived message) are served from a per-thread pool of 256
/// bytes from the OS, so that they cost one `getrandom` call per 256 bytes instead of one
/// each; bytes are handed out once and wiped from the pool.
pub fn random(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    use std::cell::RefCell;
    const POOL: usize = 256;
    fn os(buf: &mut [u8]) {
        ring::rand::SystemRandom::new()
            .fill(buf)
            .expect("the OS random source failed");
    }
    thread_local! {
        // The pool and how many of its bytes (from the front) are used up.
        static BYTES: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
    }
    if buf.len() > 32 {
        return os(buf);
    }
    BYTES.with_borrow_mut(|(pool, used)| {
        if POOL - *used < buf.len() {
            os(pool);
            *used = 0;
        }
        let taken = &mut pool[*used..*used + buf.len()];
        buf.copy_from_slice(taken);
        taken.fill(0);
        *used += buf.len();
    });
}

/// `bytes` random bytes as lowercase hex: stream, session and push ids.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    random(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// State shared by every connection.
pub struct Server {
    pub config: Config,
    /// The served domain, normalized.
    pub domain: String,
    pub tls: Tls,
    pub storage: Storage,
    pub router: Router,
    /// XEP-0115: verified client capabilities (`modules::caps`).
    pub caps: crate::modules::caps::CapsCache,
    /// XEP-0441 archive preferences of accounts seen (`modules::archive`).
    pub archive_prefs: crate::modules::archive::PrefsCache,
    pub throttle: Throttle,
    /// Resumable sessions (XEP-0198).
    pub sm: crate::c2s::sm::Registry,
    next_id: AtomicU64,
    connections: AtomicUsize,
    unauthed: Mutex<HashMap<IpAddr, usize>>,
    /// Closed (never sent on) to tell every task to stop.
    shutdown_rx: Receiver<()>,
    shutdown_tx: Mutex<Option<Sender<()>>>,
    pub started: Instant,
}

/// Holds one connection's place in the connection counts; released on drop (also when a
/// session panics).
pub struct ConnGuard {
    server: Arc<Server>,
    ip: IpAddr,
    /// Still counted among the address's unauthenticated connections.
    unauthed: bool,
    /// When the connection was accepted (the authentication deadline counts from here).
    pub since: Instant,
}

impl ConnGuard {
    /// The connection authenticated: it no longer counts against its address's limit.
    pub fn authenticated(&mut self) {
        if std::mem::take(&mut self.unauthed) {
            self.release_unauthed();
        }
    }

    fn release_unauthed(&self) {
        let mut map = self
            .server
            .unauthed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.server.connections.fetch_sub(1, Ordering::Relaxed);
        if self.unauthed {
            self.release_unauthed();
        }
    }
}

impl Server {
    /// A process-unique connection id (`c2s:N` in the log).
    pub fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a new connection, or refuses it over the limits (all connections, and
    /// unauthenticated ones per address).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, &'static str> {
        if self.connections.fetch_add(1, Ordering::Relaxed) >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return Err("too many connections");
        }
        let mut map = self.unauthed.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.config.max_unauth_per_ip {
            drop(map);
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return Err("too many connections from this address");
        }
        *n += 1;
        Ok(ConnGuard {
            server: self.clone(),
            ip,
            unauthed: true,
            since: Instant::now(),
        })
    }

    /// Number of open client connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Resolves when the server shuts down.
    pub fn shutdown_signal(&self) -> Receiver<()> {
        self.shutdown_rx.clone()
    }

    fn begin_shutdown(&self) {
        self.shutdown_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

/// Slows repeated authentication failures down, per address and per account.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Failures are forgotten after this long without another.
const THROTTLE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The longest delay before a failure is answered.
const THROTTLE_MAX: Duration = Duration::from_secs(8);

impl Throttle {
    fn keys(peer: &SocketAddr, username: &str) -> [String; 2] {
        [format!("ip:{}", peer.ip()), format!("user:{username}")]
    }

    /// Records a failure and returns how long to wait before answering it: nothing for the
    /// first two, then doubling from 250 ms up to 8 s.
    pub fn failure(&self, peer: &SocketAddr, username: &str) -> Duration {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, t)| now.duration_since(*t) < THROTTLE_MEMORY);
        }
        let mut worst = 0;
        for key in Self::keys(peer, username) {
            let e = map.entry(key).or_insert((0, now));
            if now.duration_since(e.1) >= THROTTLE_MEMORY {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = now;
            worst = worst.max(e.0);
        }
        if worst <= 2 {
            return Duration::ZERO;
        }
        let ms = 250u64.saturating_mul(1 << (worst - 3).min(8));
        Duration::from_millis(ms).min(THROTTLE_MAX)
    }

    /// Forgets the failures of an address and an account after a success.
    pub fn clear(&self, peer: &SocketAddr, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in Self::keys(peer, username) {
            map.remove(&key);
        }
    }
}

/// A started server: its addresses and the handle to stop it.
pub struct Running {
    pub server: Arc<Server>,
    /// STARTTLS client listeners' actual addresses.
    pub c2s_addrs: Vec<SocketAddr>,
    /// Direct TLS client listeners' actual addresses.
    pub tls_addrs: Vec<SocketAddr>,
    stop_tx: Sender<()>,
    threads: Vec<JoinHandle<()>>,
    ex: Arc<Executor<'static>>,
}

/// Opens storage, loads TLS, binds the listeners and starts `config.threads` worker
/// threads.
pub fn start(config: Config) -> Result<Running, ServerError> {
    launch(config, 0)
}

/// `start`, with `on_caller` of the worker threads left to the caller, which will run the
/// executor itself (`run` does, on the main thread: one thread fewer, with its stack and
/// malloc arena).
fn launch(config: Config, on_caller: usize) -> Result<Running, ServerError> {
    let domain = crate::jid::nameprep(&config.domain)
        .map_err(|e| ServerError::Config(format!("--domain {}: {e}", config.domain)))?;
    if config.insecure_allow_plaintext {
        log::warn!(
            "!!! --insecure-allow-plaintext: clients may authenticate WITHOUT TLS; \
             passwords can be read on the network. Use only for tests on loopback. !!!"
        );
    }
    let storage = Storage::open(&config.data_dir).map_err(ServerError::Storage)?;
    // On the owner thread's connection: a second connection would check the migrations
    // again and grow the heap with its own page cache and lookaside buffers.
    let (served, days) = (domain.clone(), config.archive_expires_days);
    let data_dir = config.data_dir.clone();
    smol::block_on(storage.call(move |conn| {
        // Refuses a database holding the accounts of another domain.
        crate::storage::accounts::claim_domain(conn, &served, &data_dir)?;
        // The first archive expiry pass, before any client can query (XEP-0313).
        crate::modules::archive::expire(conn, days, crate::datetime::unix_now())?;
        // The migrations and the expiry pass filled SQLite's page cache with every page of
        // a small database (~110 KiB of heap, massif); an idle server does not need them.
        conn.execute_batch("PRAGMA shrink_memory")?;
        Ok(())
    }))
    .map_err(ServerError::Storage)?;
    let tls = Tls::load(
        config.cert.as_deref(),
        config.key.as_deref(),
        &config.data_dir,
        &domain,
    )
    .map_err(ServerError::Tls)?;
    let (shutdown_tx, shutdown_rx) = smol::channel::bounded(1);
    let threads_n = config.threads.max(1).saturating_sub(on_caller);
    let server = Arc::new(Server {
        domain,
        tls,
        storage,
        router: Router::new(),
        caps: Default::default(),
        archive_prefs: Default::default(),
        throttle: Throttle::default(),
        sm: Default::default(),
        next_id: AtomicU64::new(1),
        connections: AtomicUsize::new(0),
        unauthed: Mutex::new(HashMap::new()),
        shutdown_rx,
        shutdown_tx: Mutex::new(Some(shutdown_tx)),
        started: Instant::now(),
        config,
    });

    let mut c2s_addrs = Vec::new();
    let mut tls_addrs = Vec::new();
    let mut listeners = Vec::new();
    for ip in &server.config.bind {
        for (port, direct_tls) in [
            (server.config.c2s_port, false),
            (server.config.c2s_tls_port, true),
        ] {
            let addr = SocketAddr::new(*ip, port);
            let l =
                smol::block_on(TcpListener::bind(addr)).map_err(|e| ServerError::Bind(addr, e))?;
            let local = l.local_addr().map_err(ServerError::Io)?;
            log::info!(
                "listening on {local} ({})",
                if direct_tls { "direct TLS" } else { "STARTTLS" }
            );
            if direct_tls {
                tls_addrs.push(local);
            } else {
                c2s_addrs.push(local);
            }
            listeners.push((l, direct_tls));
        }
    }

    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    for (l, direct_tls) in listeners {
        ex.spawn(accept_loop(server.clone(), ex.clone(), l, direct_tls))
            .detach();
    }
    ex.spawn(crate::modules::archive::expiry_task(server.clone()))
        .detach();
    // Ends the sessions of accounts deleted or given a new password by the command line.
    ex.spawn(crate::kick::watch(server.clone())).detach();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut threads = Vec::new();
    for i in 0..threads_n {
        let ex = ex.clone();
        let stop_rx = stop_rx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("roost-{i}"))
                .spawn(move || {
                    let _ = smol::block_on(ex.run(stop_rx.recv()));
                })
                .map_err(ServerError::Io)?,
        );
    }
    Ok(Running {
        server,
        c2s_addrs,
        tls_addrs,
        stop_tx,
        threads,
        ex,
    })
}

async fn accept_loop(
    server: Arc<Server>,
    ex: Arc<Executor<'static>>,
    listener: TcpListener,
    direct_tls: bool,
) {
    let shutdown = server.shutdown_signal();
    loop {
        let accepted = async { Some(listener.accept().await) };
        let stop = async {
            let _ = shutdown.recv().await;
            None
        };
        match smol::future::or(stop, accepted).await {
            None => return,
            Some(Ok((tcp, peer))) => {
                let _ = tcp.set_nodelay(true);
                // The TLS handshake happens inside the connection's own task.
                ex.spawn(crate::c2s::serve(server.clone(), tcp, peer, direct_tls))
                    .detach();
            }
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Running {
    /// Closes every stream (`system-shutdown`, `</stream:stream>`), waits for the
    /// connections to end (bounded), stops the threads and flushes storage.
    pub fn stop(self) {
        log::info!("shutting down");
        self.server.begin_shutdown();
        let deadline = Instant::now() + Duration::from_secs(5);
        // This thread helps run the sessions' closing (the only worker, under `run`).
        smol::block_on(self.ex.run(async {
            while self.server.connection_count() > 0 && Instant::now() < deadline {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
        }));
        drop(self.stop_tx);
        for t in self.threads {
            let _ = t.join();
        }
        self.server.storage.close();
        log::info!("stopped");
    }
}

/// Runs a server until SIGTERM or SIGINT; SIGHUP reloads the TLS certificate.
pub fn run(config: Config) -> Result<(), ServerError> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    let mut signals =
        Signals::new([Signal::Term, Signal::Int, Signal::Hup]).map_err(ServerError::Io)?;
    // The main thread is one of the workers: it runs the executor while it waits for signals.
    let running = launch(config, 1)?;
    crate::notify::ready();
    log::info!("roost serving {}", running.server.domain);
    smol::block_on(running.ex.run(async {
        while let Some(sig) = signals.next().await {
            match sig {
                Ok(Signal::Hup) => {
                    crate::notify::reloading();
                    match running.server.tls.reload() {
                        Ok(()) => log::info!(
                            "reloaded the certificate from {}",
                            running.server.tls.cert_path().display()
                        ),
                        Err(e) => {
                            log::error!("certificate reload failed, keeping the old one: {e}")
                        }
                    }
                    crate::notify::ready();
                }
                Ok(_) => break,
                Err(e) => log::warn!("signal: {e}"),
            }
        }
    }));
    crate::notify::stopping();
    running.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_random_bytes_are_never_handed_out_twice() {
        // 1000 × 10 bytes: the pool (256) is refilled many times, at uneven boundaries.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut b = [0u8; 10];
            random(&mut b);
            assert_ne!(b, [0u8; 10], "zeros: a wiped pool was handed out");
            assert!(seen.insert(b), "the same bytes twice");
        }
        let mut big = [0u8; 64];
        random(&mut big);
        assert_ne!(big, [0u8; 64]);
    }

    #[test]
    fn throttle_slows_repeated_failures_per_address_and_account() {
        let t = Throttle::default();
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1000".parse().unwrap();
        assert_eq!(t.failure(&a, "mom"), Duration::ZERO);
        assert_eq!(t.failure(&a, "mom"), Duration::ZERO);
        let d3 = t.failure(&a, "mom");
        let d4 = t.failure(&a, "mom");
        assert!(d3 > Duration::ZERO && d4 > d3, "{d3:?} {d4:?}");
        // Another address guessing the same account is slowed down too.
        assert!(t.failure(&b, "mom") > Duration::ZERO);
        // And the first address is slowed down for another account.
        assert!(t.failure(&a, "dad") > Duration::ZERO);
        for _ in 0..20 {
            assert!(t.failure(&a, "mom") <= THROTTLE_MAX);
        }
        // A success forgets the address and account.
        t.clear(&b, "kid");
        t.clear(&a, "mom");
        assert_eq!(t.failure(&a, "mom"), Duration::ZERO);
    }
}
