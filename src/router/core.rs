//! The core every part of the server shares ([`Core`]), the connection limits and the
//! login throttle.

use super::sessions::Sessions;
use super::table::Table;
use super::{Remote, Service};
use crate::config::Config;
use crate::jid::{BareJid, Jid};
use crate::net::tls::Tls;
use crate::storage::Storage;
use smol::channel::{Receiver, Sender};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What every connection, module and service shares: configuration, certificates,
/// storage, the table of local sessions, the hosted services and the way to remote
/// domains, the feature table with each module's state.
pub struct Core {
    pub config: Config,
    /// The served domain, normalized.
    pub domain: String,
    pub tls: Tls,
    pub storage: Storage,
    /// The connected resources of local accounts.
    pub sessions: Sessions,
    pub throttle: Throttle,
    /// The feature list (`modules::MODULES`).
    pub table: Table,
    /// Each module's state, and the states other layers keep here (c2s's resumable
    /// sessions), by type.
    states: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
    /// Hosted services by domain (subdomains of ours).
    services: RwLock<HashMap<String, Arc<dyn Service>>>,
    /// How stanzas reach other domains (federation); none: they bounce.
    remote: RwLock<Option<Arc<dyn Remote>>>,
    /// The executor running the server's tasks, for work started by a stanza that must
    /// outlive its handler.
    executor: std::sync::OnceLock<Arc<smol::Executor<'static>>>,
    /// This core, for work that must hold it (set by [`Core::into_arc`]).
    this: std::sync::OnceLock<std::sync::Weak<Core>>,
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
    server: Arc<Core>,
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

impl Core {
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

    pub fn begin_shutdown(&self) {
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

/// What [`Core::new`] needs besides the configuration.
pub struct Parts {
    pub domain: String,
    pub tls: Tls,
    pub storage: Storage,
    pub table: &'static [super::Module],
    /// States of layers above the modules (c2s), by type.
    pub extra_states: Vec<Box<dyn Any + Send + Sync>>,
}

impl Core {
    pub fn new(config: Config, parts: Parts) -> Core {
        let (shutdown_tx, shutdown_rx) = smol::channel::bounded(1);
        let mut states: Vec<(TypeId, Box<dyn Any + Send + Sync>)> = Vec::new();
        for make in parts.table.iter().filter_map(|m| m.state) {
            let s = make();
            states.push(((*s).type_id(), s));
        }
        for s in parts.extra_states {
            states.push(((*s).type_id(), s));
        }
        Core {
            domain: parts.domain,
            tls: parts.tls,
            storage: parts.storage,
            sessions: Sessions::new(),
            throttle: Throttle::default(),
            table: Table(parts.table),
            states,
            services: RwLock::new(HashMap::new()),
            remote: RwLock::new(None),
            executor: std::sync::OnceLock::new(),
            this: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            unauthed: Mutex::new(HashMap::new()),
            shutdown_rx,
            shutdown_tx: Mutex::new(Some(shutdown_tx)),
            started: Instant::now(),
            config,
        }
    }

    /// The core, shared: what every connection and task holds.
    pub fn into_arc(self) -> Arc<Core> {
        let core = Arc::new(self);
        let _ = core.this.set(Arc::downgrade(&core));
        core
    }

    /// This core as an `Arc` (for a task or a service that keeps it).
    pub fn arc(&self) -> Option<Arc<Core>> {
        self.this.get().and_then(std::sync::Weak::upgrade)
    }

    /// The state of type `T` a module (or layer) keeps here.
    ///
    /// # Panics
    /// If no module declared one: a bug in the table, found by any test that starts a
    /// server.
    pub fn state<T: Any>(&self) -> &T {
        let id = TypeId::of::<T>();
        self.states
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, s)| s.downcast_ref::<T>())
            .unwrap_or_else(|| {
                panic!(
                    "no state {} in the feature table",
                    std::any::type_name::<T>()
                )
            })
    }

    /// Registers a hosted service on `domain` (a subdomain of ours): stanzas to it and
    /// to JIDs at it go to the service.
    pub fn add_service(&self, domain: &str, service: Arc<dyn Service>) {
        self.services
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_owned(), service);
    }

    /// The hosted service on `domain`, if any.
    pub fn service(&self, domain: &str) -> Option<Arc<dyn Service>> {
        let map = self.services.read().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return None;
        }
        map.get(domain).cloned()
    }

    /// The domains of the hosted services (for the server's disco#items).
    pub fn service_domains(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Sets how stanzas reach other domains (federation, or a test's capture).
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        *self.remote.write().unwrap_or_else(|p| p.into_inner()) = Some(remote);
    }

    pub(super) fn remote(&self) -> Option<Arc<dyn Remote>> {
        self.remote
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the executor for [`Core::spawn`] (once, when the server starts).
    pub fn set_executor(&self, ex: Arc<smol::Executor<'static>>) {
        let _ = self.executor.set(ex);
    }

    /// Runs `fut` on the server's executor (detached).
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        match self.executor.get() {
            Some(ex) => ex.spawn(fut).detach(),
            None => log::error!("spawn before the server started: dropped"),
        }
    }

    /// True if `jid` is an account here (cheap when it is online or is `asking`'s own).
    pub async fn account_exists(&self, jid: &BareJid, asking: Option<&Jid>) -> bool {
        if jid.domain() != self.domain {
            return false;
        }
        if asking.is_some_and(|a| a.domain() == jid.domain() && a.node() == jid.node())
            || self.sessions.with_resources(jid, |r| !r.is_empty())
        {
            return true;
        }
        let (host, user) = crate::storage::account_key(jid);
        match self
            .storage
            .call(move |c| crate::storage::accounts::exists(c, &host, &user))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                log::error!("account lookup failed: {e}");
                false
            }
        }
    }

    /// Tells every module that listens about `event`, in the table's order.
    pub async fn emit(self: &Arc<Self>, event: super::Event<'_>) {
        let kind = event.kind();
        for l in self.table.modules().filter_map(|m| m.events.as_ref()) {
            if l.to.contains(&kind) {
                (l.handler)(self, &event).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
