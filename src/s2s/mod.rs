//! Federation: server-to-server streams (RFC 6120), authenticated with SASL EXTERNAL
//! (XEP-0178) when the peer's certificate is valid for its domain, else with dialback
//! (XEP-0220, keys as XEP-0185 says), always under TLS (STARTTLS on 5269, direct TLS on
//! 5270 as XEP-0368 says).
//!
//! [`S2s`] is the routing core's [`Remote`]: stanzas for another domain go to the
//! outgoing stream for (our sending domain, their domain), started on demand, which queues
//! them (bounded) while it connects and bounces them (`remote-server-not-found`,
//! `remote-server-timeout`) when it cannot. Incoming streams hand stanzas to
//! [`crate::router::process`] with `Origin::Remote(domain)` for a domain they authenticated.
//! One outgoing and one incoming stream per pair of domains; idle ones close.

pub mod dns;
mod incoming;
mod outgoing;
pub mod stream;
pub mod verify;

use crate::config::S2sConfig;
use crate::router::{Core, Remote};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use smol::channel::{Receiver, Sender, TrySendError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a domain whose server could not be reached is not tried again (its stanzas
/// bounce at once): a presence broadcast to many contacts there makes one attempt.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// How long a dialback verification may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);

/// Flood control for the stanzas one connection brings in: a token bucket of
/// `stanza_rate` per second holding twice that. A peer past it is not read until a token
/// is back (TCP pushes back on it); nothing is dropped, and other connections and local
/// clients go on meanwhile.
pub(crate) struct Flood {
    rate: f32,
    tokens: f32,
    at: Instant,
    /// Times reading was paused (the first is logged at info).
    pub paused: u64,
}

impl Flood {
    pub(crate) fn new(rate: u32) -> Flood {
        let rate = rate.max(1) as f32;
        Flood {
            rate,
            tokens: 2.0 * rate,
            at: Instant::now(),
            paused: 0,
        }
    }

    /// Takes a token for one stanza: how long to stop reading when none was left.
    pub(crate) fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f32() * self.rate;
        self.tokens = (self.tokens + refill).min(2.0 * self.rate);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            return None;
        }
        self.paused += 1;
        Some(Duration::from_secs_f32(-self.tokens / self.rate))
    }

    /// Waits out the pause a stanza needs, if any; logs the first one.
    pub(crate) async fn throttle(&mut self, tag: &str) {
        if let Some(wait) = self.take() {
            if self.paused == 1 {
                log::info!(
                    "{tag} the peer sends more than {} stanzas/s: reading slowed down",
                    self.rate
                );
            }
            smol::Timer::after(wait).await;
        }
    }
}

/// What an outgoing stream's task is asked to do.
enum Cmd {
    Stanza(Element),
    /// XEP-0220 §2.3: ask the peer (the authoritative server) if `key` is its key for our
    /// incoming stream `id`.
    Verify {
        id: String,
        key: String,
        reply: Sender<bool>,
    },
}

/// (our domain, their domain).
type Pair = (String, String);

/// An authenticated incoming stream: its id, how it authenticated, and the sender whose
/// drop tells it a newer stream replaced it.
type InStream = (u64, &'static str, Sender<()>);

/// Federation's shared state.
pub struct Inner {
    config: S2sConfig,
    /// The trust roots, loaded at the first server-to-server handshake: an idle server
    /// that never federates does not keep them (~90 KiB of heap for Debian's bundle).
    trust: std::sync::OnceLock<verify::Trust>,
    /// HMAC key for dialback keys (XEP-0185): the hex SHA-256 of a random secret made at
    /// start.
    db_secret: String,
    /// Outgoing streams' queues by (our domain, their domain).
    outgoing: Mutex<HashMap<(String, String), Sender<Cmd>>>,
    /// Authenticated incoming streams by (our domain, their domain): the stream's id and
    /// the sender whose drop tells it a newer stream replaced it.
    incoming: Mutex<HashMap<Pair, InStream>>,
    /// Domains recently unreachable, until when.
    down: Mutex<HashMap<String, Instant>>,
    /// Connections to the s2s ports per address in the current minute: (its start, count).
    connects: Mutex<HashMap<std::net::IpAddr, (Instant, u32)>>,
    /// Bidirectional incoming streams (XEP-0288) that also carry our stanzas to the peer,
    /// by (our domain, their domain): used when there is no outgoing stream of our own.
    bidi: Mutex<HashMap<Pair, Sender<Element>>>,
    /// TCP connections accepted on the s2s ports, and opened to peers, since start.
    accepted: AtomicU64,
    connected: AtomicU64,
}

/// The routing core's way to other domains.
#[derive(Clone)]
pub struct S2s(pub Arc<Inner>);

impl S2s {
    /// Checks the `--s2s-trust` files (a bad one stops the start).
    pub fn new(config: S2sConfig) -> Result<S2s, String> {
        // Only the --s2s-trust files here: parsing the system's bundle at start would leave
        // its freed heap in the idle server's resident memory (+80 KiB measured).
        verify::Trust::check(&config.trust)?;
        let mut secret = [0u8; 32];
        crate::util::random(&mut secret);
        let db_secret = db_secret_of(&hex(&secret));
        Ok(S2s(Arc::new(Inner {
            config,
            trust: std::sync::OnceLock::new(),
            db_secret,
            outgoing: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            connects: Mutex::new(HashMap::new()),
            bidi: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            connected: AtomicU64::new(0),
        })))
    }

    /// Accepts peers on `listener` until shutdown.
    pub async fn accept_loop(
        self,
        core: Arc<Core>,
        listener: async_net::TcpListener,
        direct_tls: bool,
    ) {
        let shutdown = core.shutdown_signal();
        while let Some((tcp, peer)) = crate::net::next_connection(&listener, &shutdown, "s2s").await
        {
            if !self.0.allow_connect(peer.ip()) {
                drop(tcp);
                continue;
            }
            self.0.accepted.fetch_add(1, Ordering::Relaxed);
            let fut = incoming::serve(self.0.clone(), core.clone(), tcp, peer, direct_tls);
            core.spawn(async move {
                let _ = crate::c2s::contain(0, fut).await;
            });
        }
    }
}

impl S2s {
    /// TCP connections accepted on the s2s ports, and opened to peers, since start.
    pub fn connection_counts(&self) -> (u64, u64) {
        (
            self.0.accepted.load(Ordering::Relaxed),
            self.0.connected.load(Ordering::Relaxed),
        )
    }

    /// The authenticated incoming streams: (our domain, their domain, method).
    pub fn incoming_streams(&self) -> Vec<(String, String, &'static str)> {
        let map = self.0.incoming.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map
            .iter()
            .map(|((l, r), (_, m, _))| (l.clone(), r.clone(), *m))
            .collect();
        v.sort();
        v
    }
}

impl Remote for S2s {
    fn send(&self, core: &Arc<Core>, domain: &str, stanza: Element) {
        let local = stanza
            .attr("from")
            .and_then(|f| crate::jid::Jid::parse(f).ok())
            .map(|j| j.domain().to_owned());
        let Some(local) = local.filter(|l| is_local(core, l)) else {
            log::warn!(
                "s2s: a <{}/> to {domain} not from a domain of ours was dropped",
                stanza.name
            );
            return;
        };
        if self.0.is_down(domain) {
            crate::router::bounce(
                core,
                &stanza,
                StanzaError::with_text(
                    StanzaCondition::RemoteServerNotFound,
                    format!("the server of {domain} could not be reached a moment ago"),
                ),
            );
            return;
        }
        if let Err(Cmd::Stanza(s)) = self.0.command(core, &local, domain, Cmd::Stanza(stanza)) {
            crate::router::bounce(
                core,
                &s,
                StanzaError::with_text(
                    StanzaCondition::ResourceConstraint,
                    format!("too many stanzas waiting for {domain}"),
                ),
            );
        }
    }
}

impl Inner {
    /// Hands `cmd` to the outgoing stream (local, remote), starting it if needed; gives it
    /// back if that stream's queue is full.
    fn command(
        self: &Arc<Self>,
        core: &Arc<Core>,
        local: &str,
        remote: &str,
        cmd: Cmd,
    ) -> Result<(), Cmd> {
        let key = (local.to_owned(), remote.to_owned());
        let mut map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        let cmd = match map.get(&key) {
            Some(tx) => match tx.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(c)) => return Err(c),
                Err(TrySendError::Closed(c)) => c,
            },
            None => cmd,
        };
        // No outgoing stream of ours: a bidirectional one the peer opened carries stanzas
        // (dialback verifications always go on our own).
        let cmd = match cmd {
            Cmd::Stanza(s) => {
                let mut bidi = self.bidi.lock().unwrap_or_else(|p| p.into_inner());
                match bidi.get(&key) {
                    Some(tx) => match tx.try_send(s) {
                        Ok(()) => return Ok(()),
                        Err(TrySendError::Full(s)) => return Err(Cmd::Stanza(s)),
                        Err(TrySendError::Closed(s)) => {
                            bidi.remove(&key);
                            Cmd::Stanza(s)
                        }
                    },
                    None => Cmd::Stanza(s),
                }
            }
            verify => verify,
        };
        let (tx, rx) = smol::channel::bounded(self.config.queue_limit.max(1));
        let _ = tx.try_send(cmd);
        map.insert(key, tx.clone());
        drop(map);
        core.spawn(outgoing::run(
            self.clone(),
            core.clone(),
            local.to_owned(),
            remote.to_owned(),
            rx,
            tx,
        ));
        Ok(())
    }

    /// The trust roots (loaded on first use; they loaded at start, so an error now means
    /// the files changed: no certificate is then valid, and peers use dialback).
    fn trust(&self) -> &verify::Trust {
        self.trust.get_or_init(|| {
            let trust = verify::Trust::load(&self.config.trust).unwrap_or_else(|e| {
                log::warn!("s2s: {e}");
                verify::Trust::none()
            });
            log::info!("s2s: {} trusted certificate authorities", trust.roots);
            trust
        })
    }

    /// Forgets the outgoing stream (local, remote) if `tx` is still its queue.
    fn forget_outgoing(&self, local: &str, remote: &str, tx: &Sender<Cmd>) {
        let key = (local.to_owned(), remote.to_owned());
        let mut map = self.outgoing.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|t| t.same_channel(tx)) {
            map.remove(&key);
        }
    }

    /// Registers an authenticated incoming stream; an older one for the same pair is told
    /// to close. Returns what tells this one.
    fn register_incoming(
        &self,
        local: &str,
        remote: &str,
        id: u64,
        method: &'static str,
    ) -> Receiver<()> {
        let (tx, rx) = smol::channel::bounded(1);
        let key = (local.to_owned(), remote.to_owned());
        // Dropping the old sender tells the old stream.
        let _old = self
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (id, method, tx));
        rx
    }

    /// A bidirectional incoming stream (XEP-0288) takes our stanzas for (local, remote).
    fn register_bidi(&self, local: &str, remote: &str, tx: Sender<Element>) {
        self.bidi
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((local.to_owned(), remote.to_owned()), tx);
    }

    /// Forgets the pairs whose bidirectional stream had the queue `tx`.
    fn forget_bidi(&self, tx: &Sender<Element>) {
        self.bidi
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| !t.same_channel(tx));
    }

    fn forget_incoming(&self, id: u64) {
        self.incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (i, _, _)| *i != id);
    }

    /// Counts a connection from `ip`; false past `connects_per_minute` in this minute (the
    /// first refusal in a minute is logged).
    fn allow_connect(&self, ip: std::net::IpAddr) -> bool {
        let mut map = self.connects.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > 4096 {
            map.retain(|_, (since, _)| now.duration_since(*since) < MINUTE);
        }
        let (since, n) = map.entry(ip).or_insert((now, 0));
        if now.duration_since(*since) >= MINUTE {
            (*since, *n) = (now, 0);
        }
        *n += 1;
        let limit = self.config.connects_per_minute.max(1);
        if *n == limit + 1 {
            log::info!("s2s: {ip} opened more than {limit} connections this minute; closing more");
        }
        *n <= limit
    }

    fn is_down(&self, domain: &str) -> bool {
        let mut map = self.down.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, until| *until > now);
        map.contains_key(domain)
    }

    fn mark_down(&self, domain: &str) {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_owned(), Instant::now() + DOWN_FOR);
    }

    /// XEP-0185: HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' stream id), hex.
    fn dialback_key(&self, receiving: &str, originating: &str, id: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.db_secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("{receiving} {originating} {id}").as_bytes());
        hex(tag.as_ref())
    }

    /// XEP-0220 §2.4: as the authoritative server, answers a `<db:verify/>` about one of our
    /// own keys (on an incoming stream, or on our outgoing one that the peer also uses,
    /// XEP-0288).
    async fn answer_verify(
        &self,
        core: &Core,
        st: &mut stream::Stream,
        (from, to, id): (&str, &str, &str),
        key: &str,
    ) -> std::io::Result<()> {
        let valid = is_local(core, to) && self.dialback_key(from, to, id) == key.trim();
        let verdict = if valid { "valid" } else { "invalid" };
        st.send_db(
            "verify",
            &[("from", to), ("to", from), ("id", id), ("type", verdict)],
            None,
        )
        .await
    }

    /// Asks `remote` (through our outgoing stream from `local`) whether `key` is its key
    /// for our incoming stream `id` (XEP-0220 §2.3). False on any failure.
    async fn verify(
        self: &Arc<Self>,
        core: &Arc<Core>,
        local: &str,
        remote: &str,
        id: &str,
        key: &str,
    ) -> bool {
        let (tx, rx) = smol::channel::bounded(1);
        let cmd = Cmd::Verify {
            id: id.to_owned(),
            key: key.to_owned(),
            reply: tx,
        };
        if self.command(core, local, remote, cmd).is_err() {
            return false;
        }
        let answer = async { rx.recv().await.unwrap_or(false) };
        let timeout = async {
            smol::Timer::after(VERIFY_TIMEOUT).await;
            false
        };
        smol::future::or(answer, timeout).await
    }

    /// Where to connect for `domain`: the test override, or DNS.
    async fn targets(&self, domain: &str) -> Vec<(dns::Target, Option<SocketAddr>)> {
        let fixed: Vec<_> = self
            .config
            .static_hosts
            .iter()
            .filter(|(d, _, _)| d == domain)
            .map(|(d, a, tls)| {
                (
                    dns::Target {
                        host: d.clone(),
                        port: a.port(),
                        direct_tls: *tls,
                    },
                    Some(*a),
                )
            })
            .collect();
        if !fixed.is_empty() {
            return fixed;
        }
        dns::targets(domain)
            .await
            .into_iter()
            .map(|t| (t, None))
            .collect()
    }
}

/// True if `domain` is ours: the served domain or a hosted service's.
fn is_local(core: &Core, domain: &str) -> bool {
    domain == core.domain || core.service(domain).is_some()
}

/// XEP-0185's HMAC key: the hex SHA-256 of the secret.
fn db_secret_of(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_bucket_holds_a_burst_then_paces_at_the_rate() {
        let mut f = Flood::new(10);
        for _ in 0..20 {
            assert_eq!(f.take(), None);
        }
        let wait = f.take().expect("the 21st stanza at once waits");
        assert!(wait <= Duration::from_millis(101), "{wait:?}");
        assert!(wait >= Duration::from_millis(90), "{wait:?}");
        assert_eq!(f.paused, 1);
    }

    #[test]
    fn dialback_keys_depend_on_every_input() {
        let s = S2s::new(S2sConfig::default()).unwrap();
        let k = s.0.dialback_key("b.example", "a.example", "id1");
        assert_eq!(k.len(), 64);
        assert_eq!(k, s.0.dialback_key("b.example", "a.example", "id1"));
        assert_ne!(k, s.0.dialback_key("a.example", "b.example", "id1"));
        assert_ne!(k, s.0.dialback_key("b.example", "a.example", "id2"));
        let other = S2s::new(S2sConfig::default()).unwrap();
        assert_ne!(k, other.0.dialback_key("b.example", "a.example", "id1"));
    }
}
