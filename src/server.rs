//! The server: builds the [`Core`] every connection shares (configuration, TLS, storage,
//! the feature table), binds the listeners, runs the executor's small thread pool, and
//! handles signals and orderly shutdown.

use crate::config::Config;
use crate::net::tls::{Tls, TlsError};
use crate::router::{Core, Parts};
use crate::storage::{Storage, StorageError};
use async_net::TcpListener;
use smol::channel::Sender;
use smol::Executor;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// A started server: its addresses and the handle to stop it.
pub struct Running {
    pub core: Arc<Core>,
    /// STARTTLS client listeners' actual addresses.
    pub c2s_addrs: Vec<SocketAddr>,
    /// Direct TLS client listeners' actual addresses.
    pub tls_addrs: Vec<SocketAddr>,
    /// Server-to-server listeners' actual addresses (STARTTLS, direct TLS); empty with
    /// federation off.
    pub s2s_addrs: Vec<SocketAddr>,
    pub s2s_tls_addrs: Vec<SocketAddr>,
    /// Federation, when on.
    pub s2s: Option<crate::s2s::S2s>,
    /// HTTPS listeners' actual addresses (empty with `--no-http`).
    pub https_addrs: Vec<SocketAddr>,
    /// Plain HTTP listeners' actual addresses (loopback; empty without `--http-port`).
    pub http_addrs: Vec<SocketAddr>,
    /// The HTTP service (`None` with `--no-http`).
    pub http: Option<Arc<crate::http::Http>>,
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
        crate::modules::archive::expire(conn, days, crate::util::datetime::unix_now())?;
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
    let threads_n = config.threads.max(1).saturating_sub(on_caller);
    let server = Core::new(
        config,
        Parts {
            domain,
            tls,
            storage,
            table: crate::modules::MODULES,
            // XEP-0198's resumable sessions belong to the client connections.
            extra_states: vec![
                Box::new(crate::c2s::sm::Registry::default()),
                Box::new(crate::muc::Handle::default()),
            ],
        },
    )
    .into_arc();
    smol::block_on(crate::roles::load(&server)).map_err(ServerError::Storage)?;
    if let Some(muc) = server.config.muc.clone() {
        let muc =
            smol::block_on(crate::muc::Muc::start(&server, muc)).map_err(ServerError::Config)?;
        let _ = server.state::<crate::muc::Handle>().0.set(muc);
    }

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

    let mut s2s_addrs = Vec::new();
    let mut s2s_tls_addrs = Vec::new();
    let mut s2s_listeners = Vec::new();
    let s2s = match server.config.s2s.clone() {
        Some(cfg) => {
            let s2s = crate::s2s::S2s::new(cfg.clone()).map_err(ServerError::Config)?;
            server.set_remote(Arc::new(s2s.clone()));
            for ip in &server.config.bind {
                for (port, direct_tls) in [(cfg.port, false), (cfg.tls_port, true)] {
                    let addr = SocketAddr::new(*ip, port);
                    let l = smol::block_on(TcpListener::bind(addr))
                        .map_err(|e| ServerError::Bind(addr, e))?;
                    let local = l.local_addr().map_err(ServerError::Io)?;
                    log::info!(
                        "listening on {local} (servers, {})",
                        if direct_tls { "direct TLS" } else { "STARTTLS" }
                    );
                    if direct_tls {
                        s2s_tls_addrs.push(local);
                    } else {
                        s2s_addrs.push(local);
                    }
                    s2s_listeners.push((l, direct_tls));
                }
            }
            Some(s2s)
        }
        None => None,
    };
    let (http, http_listeners) =
        if server.config.http.enabled {
            let (http, l) = bind_http(&server)?;
            (Some(http), l)
        } else {
            // No landing pages: `roost invite` prints no link.
            smol::block_on(server.storage.call(|c| {
                crate::storage::muc::set_meta(c, crate::invite::META_BASE_URL, Some(""))
            }))
            .map_err(ServerError::Storage)?;
            (None, Vec::new())
        };
    let https_addrs = addrs_of(&http_listeners, true)?;
    let http_addrs = addrs_of(&http_listeners, false)?;

    let ex: Arc<Executor<'static>> = Arc::new(Executor::new());
    server.set_executor(ex.clone());
    if let Some(s2s) = &s2s {
        for (l, direct_tls) in s2s_listeners {
            ex.spawn(s2s.clone().accept_loop(server.clone(), l, direct_tls))
                .detach();
        }
    }
    for (l, direct_tls) in listeners {
        ex.spawn(accept_loop(server.clone(), ex.clone(), l, direct_tls))
            .detach();
    }
    if http.as_ref().is_some_and(|h| h.upload.is_some()) {
        ex.spawn(crate::upload::expiry_task(server.clone()))
            .detach();
    }
    if let Some(http) = &http {
        for (l, secure) in http_listeners {
            ex.spawn(crate::http::accept_loop(
                server.clone(),
                http.clone(),
                l,
                secure,
            ))
            .detach();
        }
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
        core: server,
        c2s_addrs,
        tls_addrs,
        s2s_addrs,
        s2s_tls_addrs,
        s2s,
        https_addrs,
        http_addrs,
        http,
        stop_tx,
        threads,
        ex,
    })
}

/// HTTP listeners, each with `true` for HTTPS.
type HttpListeners = Vec<(TcpListener, bool)>;

/// Binds the HTTPS listeners (every `bind` address) and the plain HTTP ones (loopback
/// only: a reverse proxy on the same machine), and makes the HTTP service with the base
/// URL for links.
fn bind_http(server: &Arc<Core>) -> Result<(Arc<crate::http::Http>, HttpListeners), ServerError> {
    let cfg = &server.config.http;
    let mut listeners = Vec::new();
    let mut https_port = cfg.https_port;
    for ip in &server.config.bind {
        let addr = SocketAddr::new(*ip, cfg.https_port);
        let l = smol::block_on(TcpListener::bind(addr)).map_err(|e| ServerError::Bind(addr, e))?;
        let local = l.local_addr().map_err(ServerError::Io)?;
        https_port = local.port();
        log::info!("listening on {local} (HTTPS: upload, WebSocket, host-meta, invitations)");
        listeners.push((l, true));
    }
    if let Some(port) = cfg.http_port {
        let v4 = SocketAddr::from(([127, 0, 0, 1], port));
        let l = smol::block_on(TcpListener::bind(v4)).map_err(|e| ServerError::Bind(v4, e))?;
        let local = l.local_addr().map_err(ServerError::Io)?;
        log::info!("listening on {local} (plain HTTP for a reverse proxy on this machine)");
        listeners.push((l, false));
        // The same port on IPv6 loopback, when the machine has it.
        let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, local.port()));
        match smol::block_on(TcpListener::bind(v6)) {
            Ok(l) => {
                log::info!("listening on {v6} (plain HTTP for a reverse proxy on this machine)");
                listeners.push((l, false));
            }
            Err(e) => log::debug!("no plain HTTP on {v6}: {e}"),
        }
    }
    let mut http = crate::http::Http::new(cfg, &server.domain, https_port);
    log::info!("HTTP links point to {}", http.base_url);
    // For `roost invite`, another process: the base URL of the invitation pages.
    let base = http.base_url.clone();
    smol::block_on(server.storage.call(move |c| {
        crate::storage::muc::set_meta(c, crate::invite::META_BASE_URL, Some(&base))
    }))
    .map_err(ServerError::Storage)?;
    if server.config.upload.enabled {
        let upload = crate::upload::Upload::new(server, &http.base_url).map_err(|e| {
            ServerError::Config(format!(
                "cannot create the upload directory in {}: {e}",
                server.config.data_dir.display()
            ))
        })?;
        server.add_service(&upload.domain, Arc::new(upload.clone()));
        log::info!("file upload (XEP-0363) on {}", upload.domain);
        http.upload = Some(upload);
    }
    Ok((Arc::new(http), listeners))
}

/// The addresses of the HTTPS (`secure`) or plain HTTP listeners.
fn addrs_of(
    listeners: &[(TcpListener, bool)],
    secure: bool,
) -> Result<Vec<SocketAddr>, ServerError> {
    listeners
        .iter()
        .filter(|(_, s)| *s == secure)
        .map(|(l, _)| l.local_addr().map_err(ServerError::Io))
        .collect()
}

async fn accept_loop(
    server: Arc<Core>,
    ex: Arc<Executor<'static>>,
    listener: TcpListener,
    direct_tls: bool,
) {
    let shutdown = server.shutdown_signal();
    while let Some((tcp, peer)) = crate::net::next_connection(&listener, &shutdown, "c2s").await {
        // The TLS handshake happens inside the connection's own task.
        ex.spawn(crate::c2s::serve(server.clone(), tcp, peer, direct_tls))
            .detach();
    }
}

impl Running {
    /// Closes every stream (`system-shutdown`, `</stream:stream>`), waits for the
    /// connections to end (bounded), stops the threads and flushes storage.
    pub fn stop(self) {
        log::info!("shutting down");
        // Occupants of group chats hear the rooms go (status 332) before their streams end.
        if let Some(muc) = self.core.state::<crate::muc::Handle>().0.get() {
            muc.shutdown(&self.core);
        }
        self.core.begin_shutdown();
        let deadline = Instant::now() + Duration::from_secs(5);
        // This thread helps run the sessions' closing (the only worker, under `run`).
        smol::block_on(self.ex.run(async {
            while self.core.connection_count() > 0 && Instant::now() < deadline {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
        }));
        drop(self.stop_tx);
        for t in self.threads {
            let _ = t.join();
        }
        self.core.storage.close();
        log::info!("stopped");
    }
}

/// Runs a server until SIGTERM or SIGINT; SIGHUP reloads the TLS certificate and re-reads
/// the TURN secret.
pub fn run(config: Config) -> Result<(), ServerError> {
    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt;
    let mut signals =
        Signals::new([Signal::Term, Signal::Int, Signal::Hup]).map_err(ServerError::Io)?;
    // The main thread is one of the workers: it runs the executor while it waits for signals.
    let running = launch(config, 1)?;
    crate::util::notify::ready();
    log::info!("roost serving {}", running.core.domain);
    smol::block_on(running.ex.run(async {
        while let Some(sig) = signals.next().await {
            match sig {
                Ok(Signal::Hup) => {
                    crate::util::notify::reloading();
                    match running.core.tls.reload() {
                        Ok(()) => log::info!(
                            "reloaded the certificate from {}",
                            running.core.tls.cert_path().display()
                        ),
                        Err(e) => {
                            log::error!("certificate reload failed, keeping the old one: {e}")
                        }
                    }
                    match crate::modules::extdisco::reload_secret(&running.core) {
                        Ok(Some(path)) => {
                            log::info!("re-read the TURN secret from {}", path.display())
                        }
                        Ok(None) => {}
                        Err(e) => log::error!("TURN secret not re-read, keeping the old one: {e}"),
                    }
                    crate::util::notify::ready();
                }
                Ok(_) => break,
                Err(e) => log::warn!("signal: {e}"),
            }
        }
    }));
    crate::util::notify::stopping();
    running.stop();
    Ok(())
}
