//! One client connection's stream negotiation and stanza loop (RFC 6120 §4 streams, §5
//! STARTTLS, §6 SASL, §7 resource binding, §8 stanzas; RFC 3921 §3 session).

use super::csi;
use super::sm::{self, Handoff, Sm};
use crate::jid::{BareJid, FullJid};
use crate::net::tls::Loaded;
use crate::net::Transport;
use crate::ns;
use crate::router::{ConnGuard, Core, Origin, StreamPhase};
use crate::sasl::{self, ChannelBindings, Failure, Mechanism, ScramWait, Start};
use crate::session::{Bound, C2sState, Outbound, SessionHandle, SessionQueue};
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::reader::{Event, StreamHeader, StreamReader};
use crate::xml::{escape, Element};
use async_net::TcpStream;
use smol::future::FutureExt;
use smol::Timer;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Bytes read from the socket at a time, into a chunk of the worker thread (read bytes go
/// straight to the reader): it is never in an idle connection's future, and it is not
/// zeroed again on every poll as a chunk on the stack would be.
const READ_CHUNK: usize = 4096;

thread_local! {
    static CHUNK: std::cell::Cell<Option<Box<[u8; READ_CHUNK]>>> = const { std::cell::Cell::new(None) };
}
/// Outbound stanzas taken from the queue for one write: the loop takes what is already
/// waiting, up to this many items or until `out` holds this many bytes…
const BATCH_ITEMS: usize = 64;
const BATCH_BYTES: usize = 16 * 1024;
/// …into a write buffer that starts at this size (it is given back when the connection
/// goes idle, and most stanzas fit in one allocation).
const OUT_INITIAL: usize = 512;
/// How long to wait for the client's `</stream:stream>` after ours.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// SASL failures tolerated on one connection before it is closed.
const MAX_AUTH_FAILURES: u32 = 5;
/// XEP-0198: ask for an ack once this many stanzas are unacknowledged…
const ACK_EVERY: usize = 5;
/// …or when some have waited this long.
const ACK_DELAY: Duration = Duration::from_secs(5);

/// Why a connection ended (for the log).
pub type Reason = String;

/// What woke the connection task.
enum Wake {
    Read(std::io::Result<usize>),
    Out(Option<Outbound>),
    Shutdown,
    Deadline,
    /// A new connection resumes this session (XEP-0198).
    Resume(Box<Handoff>),
}

/// A SASL exchange in progress.
enum SaslExchange {
    /// `<auth/>` came without an initial response: we sent an empty challenge and wait
    /// for the client's first message in a `<response/>`.
    Initial(Mechanism),
    /// Waiting for the client's final SCRAM message.
    Scram { wait: ScramWait, username: String },
}

/// A client connection.
pub struct Connection {
    server: Arc<Core>,
    id: u64,
    peer: SocketAddr,
    transport: Transport,
    reader: StreamReader,
    state: C2sState,
    /// Between our header and the client's next header (start, after TLS, after SASL).
    expect_header: bool,
    /// The TLS configuration our handshake used (its certificate's channel binding).
    tls: Option<Arc<Loaded>>,
    /// Boxed: a SCRAM exchange is large and lives only during authentication.
    sasl: Option<Box<SaslExchange>>,
    auth_failures: u32,
    /// When the client last sent anything, and when we pinged it since (XEP-0199).
    last_read: Instant,
    ping_sent: Option<Instant>,
    queue: Option<SessionQueue>,
    out: String,
    guard: Option<ConnGuard>,
    /// XEP-0198 state once the client enabled stream management.
    sm: Option<Box<Sm>>,
    /// When we last wrote to the client.
    last_out: Instant,
    /// XEP-0352: the client said it is inactive; what waits for it.
    inactive: bool,
    held: csi::Held,
    /// The transport broke (EOF, read or write error) rather than closing cleanly.
    lost: bool,
    /// We decided to close the stream (an error, shutdown, the client's close).
    closing: bool,
    /// Handling the events of one read: replies wait in `out` for one write at its end.
    deferring: bool,
    /// The `xml:lang` of the client's last stream header (RFC 6120 §4.7.4), stamped on
    /// its stanzas that carry none (§8.1.5).
    lang: Option<String>,
}

impl Connection {
    pub fn new(server: Arc<Core>, id: u64, peer: SocketAddr) -> Connection {
        let limits = server.config.limits;
        Connection {
            server,
            id,
            peer,
            transport: Transport::Closed,
            reader: StreamReader::new(limits),
            state: C2sState::Unauthed,
            expect_header: true,
            tls: None,
            sasl: None,
            auth_failures: 0,
            last_read: Instant::now(),
            ping_sent: None,
            queue: None,
            out: String::new(),
            guard: None,
            sm: None,
            last_out: Instant::now(),
            inactive: false,
            held: csi::Held::default(),
            lost: false,
            closing: false,
            deferring: false,
            lang: None,
        }
    }

    /// Runs the connection to its end; returns why it ended.
    ///
    /// Not an `async fn`: rustc would keep its parameters in the future besides the
    /// connection they are moved into, doubling what every session holds.
    pub fn run(mut self, tcp: TcpStream, direct_tls: bool) -> impl Future<Output = Reason> {
        self.transport = Transport::plain(tcp);
        async move { self.serve(direct_tls).await }
    }

    async fn serve(&mut self, direct_tls: bool) -> Reason {
        let guard = match self.server.admit(self.peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                // Refused before any XML: answer with a stream error if we can.
                if !direct_tls {
                    self.send_header(None);
                    Box::pin(self.stream_error(StreamError::with_text(
                        StreamCondition::PolicyViolation,
                        why,
                    )))
                    .await;
                }
                Box::pin(self.transport.shutdown()).await;
                return format!("refused: {why}");
            }
        };
        self.guard = Some(guard);
        if direct_tls {
            if let Err(e) = Box::pin(self.handshake()).await {
                Box::pin(self.transport.shutdown()).await;
                return format!("TLS handshake failed: {e}");
            }
        }
        let mut reason = self.main_loop().await;
        // XEP-0198: a broken connection of a resumable session detaches it; it waits for a
        // resumption before it ends.
        while self.lost && !self.closing && self.resumable() {
            match Box::pin(self.detached()).await {
                Some(handoff) => {
                    Box::pin(self.adopt(handoff)).await;
                    reason = self.main_loop().await;
                }
                None => {
                    reason = format!("{reason}; not resumed in time");
                    break;
                }
            }
        }
        Box::pin(self.end_session()).await;
        // Hand on what was never delivered while still bound, so that what arrives
        // meanwhile queues behind it and keeps its order; then leave the router.
        Box::pin(self.requeue_undelivered()).await;
        if let C2sState::Bound(b) = &self.state {
            // Features forget what they kept for this session.
            let jid = b.full_jid().clone();
            Box::pin(self.server.emit(crate::router::Event::Unbound {
                jid: &jid,
                id: self.id,
            }))
            .await;
        }
        self.cleanup();
        reason
    }

    fn resumable(&self) -> bool {
        self.sm.as_ref().is_some_and(|s| s.id.is_some())
    }

    /// Waits, without a connection, for a resumption; `None` when the resumption timeout
    /// passes or the server shuts down.
    async fn detached(&mut self) -> Option<Box<Handoff>> {
        let rx = self.sm.as_ref().and_then(|s| s.resume_rx.clone())?;
        log::info!(
            "c2s:{} detached; resumable for {} s",
            self.id,
            self.server.config.resume_timeout.as_secs()
        );
        self.transport.shutdown().await;
        let shutdown = self.server.shutdown_signal();
        let resume = async { rx.recv().await.ok() };
        let stop = async {
            let _ = shutdown.recv().await;
            None
        };
        let expire = async {
            Timer::after(self.server.config.resume_timeout).await;
            None
        };
        resume.or(stop).or(expire).await
    }

    /// Takes over a new connection that resumed this session (XEP-0198 §5): acknowledge,
    /// then resend what the client has not handled.
    async fn adopt(&mut self, handoff: Box<Handoff>) {
        log::info!(
            "c2s:{} resumed by c2s:{} from {}",
            self.id,
            handoff.conn_id,
            handoff.peer
        );
        if !matches!(self.transport, Transport::Closed) {
            // The old connection was still open (the client saw it die first).
            self.transport.shutdown().await;
        }
        self.transport = handoff.transport;
        self.reader = handoff.reader;
        self.tls = handoff.tls;
        self.peer = handoff.peer;
        self.lang = handoff.lang;
        self.guard = handoff.guard;
        self.lost = false;
        self.last_read = Instant::now();
        self.ping_sent = None;
        // XEP-0352 (0.2.1): a resumed stream starts active; what was held goes out below.
        self.inactive = false;
        let Some(sm) = self.sm.as_mut() else {
            return;
        };
        let previd = sm.id.clone().unwrap_or_default();
        if sm.ack(handoff.h).is_err() {
            // The client claims more than we sent: resume anyway and resend everything.
            log::warn!("c2s:{} resumed with an h above what was sent", self.id);
        }
        sm.requested = false;
        let resumed = Element::new("resumed", sm::NS)
            .with_attr("previd", previd)
            .with_attr("h", sm.received.to_string());
        resumed.write_to(&mut self.out, ns::CLIENT);
        for s in &sm.unacked {
            self.out.push_str(s);
        }
        for h in self.held.take() {
            self.queue_element(&h);
        }
        if self.flush().await.is_err() {
            self.lost = true;
        }
    }

    /// After the session ended: what it never handed to the client — unacknowledged
    /// stanzas (XEP-0198) and its queue — is not lost: messages go to offline storage (and
    /// from there to the next session), IQ requests are answered with an error.
    async fn requeue_undelivered(&mut self) {
        let C2sState::Bound(b) = &self.state else {
            return;
        };
        let account = b.full_jid().bare();
        let mut pending: Vec<Element> = Vec::new();
        if let Some(sm) = self.sm.as_mut() {
            if let Some(id) = &sm.id {
                self.server.state::<sm::Registry>().remove(id);
            }
            let scope = crate::xml::parse::Scope::client();
            for s in sm.unacked.drain(..) {
                if let Ok(e) = crate::xml::parse::parse_element(&scope, s.as_bytes()) {
                    pending.push(e);
                }
            }
        }
        pending.extend(self.held.take());
        if let Some(q) = &self.queue {
            q.close();
            while let Some(item) = q.try_recv() {
                if let Outbound::Stanza(e) = item {
                    pending.push(e);
                }
            }
        }
        for stanza in pending {
            crate::modules::message::undelivered(&self.server, &account, stanza).await;
        }
    }

    /// Performs the TLS handshake with the current certificate.
    async fn handshake(&mut self) -> std::io::Result<()> {
        let loaded = self.server.tls.current();
        let acceptor = loaded.acceptor.clone();
        let hs = self.transport.start_tls(&acceptor);
        let timeout = async {
            Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(std::io::ErrorKind::TimedOut.into())
        };
        hs.or(timeout).await?;
        self.tls = Some(loaded);
        Ok(())
    }

    /// When the timer should fire: the authentication deadline before binding; after it,
    /// the time to ping a silent client (XEP-0199) or to give up on an unanswered ping.
    fn deadline(&self) -> Option<Instant> {
        match self.state {
            C2sState::Bound(_) => {
                let ping = match self.ping_sent {
                    Some(sent) => sent + self.server.config.ping_timeout,
                    None => self.last_read + self.server.config.ping_interval,
                };
                // XEP-0198: ask for an ack a little after unacknowledged stanzas went out.
                let ack = self
                    .sm
                    .as_ref()
                    .filter(|s| !s.unacked.is_empty() && !s.requested)
                    .map(|_| self.last_out + ACK_DELAY);
                Some(ack.map_or(ping, |a| a.min(ping)))
            }
            _ => self
                .guard
                .as_ref()
                .map(|g| g.since + self.server.config.auth_timeout),
        }
    }

    async fn main_loop(&mut self) -> Reason {
        let shutdown = self.server.shutdown_signal();
        // Kept across wake-ups: one shutdown listener for the loop, not one per wake-up.
        let mut stop = pin!(shutdown.recv());
        // One timer for the connection. It is re-armed only when the deadline comes
        // earlier; a deadline that moved later (each read moves the ping deadline) is found
        // when the timer fires, and the timer is then set again.
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        loop {
            // An idle connection holds no write buffer.
            if self.out.is_empty() && self.out.capacity() > 0 {
                self.out = String::new();
            }
            match (self.deadline(), armed) {
                (Some(d), Some(a)) if d >= a => {}
                (Some(d), _) => {
                    timer.set_at(d);
                    armed = Some(d);
                }
                (None, Some(_)) => {
                    timer.clear();
                    armed = None;
                }
                (None, None) => {}
            }
            // Cloned (a reference count): the future below must not borrow `self.sm`.
            let resume_rx = self.sm.as_ref().and_then(|s| s.resume_rx.clone());
            let resume = async {
                match resume_rx {
                    Some(rx) => match rx.recv().await {
                        Ok(h) => Wake::Resume(h),
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            let wake = poll_fn(|cx| {
                // Taken and put back, so that even a nested use could not share it.
                let mut chunk = CHUNK.take().unwrap_or_else(|| Box::new([0u8; READ_CHUNK]));
                let read = self.transport.poll_read(cx, &mut chunk[..]);
                if let Poll::Ready(Ok(n)) = read {
                    self.reader.push(&chunk[..n]);
                }
                CHUNK.set(Some(chunk));
                if let Poll::Ready(r) = read {
                    return Poll::Ready(Wake::Read(r));
                }
                if let Some(q) = &self.queue {
                    if let Poll::Ready(item) = q.poll_recv(cx) {
                        return Poll::Ready(Wake::Out(item));
                    }
                }
                if stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
                // A timer that fired is not polled again before it is set.
                if timer.will_fire() && Pin::new(&mut timer).poll(cx).is_ready() {
                    return Poll::Ready(Wake::Deadline);
                }
                Poll::Pending
            })
            .or(resume)
            .await;
            match wake {
                Wake::Read(Ok(0)) => {
                    self.lost = true;
                    return "connection closed by client".into();
                }
                Wake::Read(Err(e)) => {
                    self.lost = true;
                    return format!("read error: {e}");
                }
                Wake::Resume(handoff) => {
                    // The client resumed on a new connection before this one died.
                    Box::pin(self.adopt(handoff)).await;
                    if self.lost {
                        return "resumed connection lost".into();
                    }
                }
                Wake::Read(Ok(_)) => {
                    self.last_read = Instant::now();
                    self.ping_sent = None;
                    // Replies to everything this read brought go out in one write.
                    self.deferring = true;
                    let end = Box::pin(self.drain_events()).await;
                    self.deferring = false;
                    if let Some(reason) = end {
                        if !self.out.is_empty() && !matches!(self.transport, Transport::Closed) {
                            let _ = Box::pin(self.write_out()).await;
                        }
                        return reason;
                    }
                    if let Err(e) = Box::pin(self.flush()).await {
                        return format!("write error: {e}");
                    }
                    self.reader.shrink();
                }
                Wake::Out(Some(first)) => {
                    // Everything already waiting goes out in one write.
                    let mut item = first;
                    let mut taken = 0;
                    loop {
                        match item {
                            Outbound::Stanza(s) => self.outbound(s),
                            Outbound::Close(err) => {
                                let reason = format!("closed by server: {err}");
                                Box::pin(self.stream_error(err)).await;
                                return reason;
                            }
                        }
                        taken += 1;
                        if taken >= BATCH_ITEMS || self.out.len() >= BATCH_BYTES {
                            break;
                        }
                        match self.queue.as_ref().and_then(|q| q.try_recv()) {
                            Some(next) => item = next,
                            None => break,
                        }
                    }
                    if let Err(e) = Box::pin(self.flush()).await {
                        return format!("write error: {e}");
                    }
                }
                Wake::Out(None) => return "session queue closed".into(),
                Wake::Shutdown => {
                    Box::pin(self.stream_error(StreamError::new(StreamCondition::SystemShutdown)))
                        .await;
                    return "server shutdown".into();
                }
                Wake::Deadline => {
                    armed = None;
                    if self.deadline().is_some_and(|d| d > Instant::now()) {
                        // The deadline moved later since the timer was set.
                        continue;
                    }
                    if let Some(reason) = Box::pin(self.deadline_passed()).await {
                        return reason;
                    }
                }
            }
        }
    }

    /// An outbound stanza from the queue: into `out`, or held back for an inactive client
    /// (XEP-0352); when too many are held, all of them go into `out`.
    fn outbound(&mut self, s: Element) {
        if self.inactive {
            if let Some(key) = csi::hold_key(&s) {
                if self.held.hold(key, s) {
                    for h in self.held.take() {
                        self.queue_element(&h);
                    }
                }
                return;
            }
        }
        self.queue_element(&s);
    }

    /// The timer's deadline passed: ask for an ack (XEP-0198), ping a silent client
    /// (XEP-0199), or give up on it; before binding, the authentication took too long.
    /// `Some(reason)` ends the connection.
    async fn deadline_passed(&mut self) -> Option<Reason> {
        let C2sState::Bound(b) = &self.state else {
            self.stream_error(StreamError::with_text(
                StreamCondition::ConnectionTimeout,
                "authentication took too long",
            ))
            .await;
            return Some("authentication timeout".into());
        };
        if self
            .sm
            .as_ref()
            .is_some_and(|s| !s.unacked.is_empty() && !s.requested)
            && Instant::now() >= self.last_out + ACK_DELAY
        {
            self.request_ack();
            return self
                .flush()
                .await
                .err()
                .map(|e| format!("write error: {e}"));
        }
        if self.ping_sent.is_some() {
            self.stream_error(StreamError::with_text(
                StreamCondition::ConnectionTimeout,
                "no answer to ping",
            ))
            .await;
            return Some("ping timeout".into());
        }
        // XEP-0199 §4.2: is the client still there?
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("ping{}", self.id))
            .with_attr("from", self.server.domain.clone())
            .with_attr("to", b.full_jid().to_string())
            .with_child(Element::new("ping", ns::PING));
        self.ping_sent = Some(Instant::now());
        self.send_element(&ping)
            .await
            .err()
            .map(|e| format!("write error: {e}"))
    }

    /// Handles every complete event in the reader; `Some(reason)` ends the connection.
    async fn drain_events(&mut self) -> Option<Reason> {
        loop {
            let event = match self.reader.next() {
                Ok(Some(e)) => e,
                Ok(None) => return None,
                Err(err) => {
                    if self.expect_header {
                        // RFC 6120 §4.9.1.1: our header comes before any stream error.
                        self.send_header(None);
                    }
                    let reason = format!("stream error: {err}");
                    self.stream_error(err).await;
                    return Some(reason);
                }
            };
            let result = match event {
                Event::Header(h) => self.on_header(h).await,
                Event::Element(e) => {
                    if self.expect_header {
                        Err(StreamError::with_text(
                            StreamCondition::NotWellFormed,
                            "element before the stream header",
                        ))
                    } else {
                        self.on_element(e).await
                    }
                }
                Event::Close => {
                    self.closing = true;
                    self.out.push_str("</stream:stream>");
                    let _ = self.write_out().await;
                    self.transport.shutdown().await;
                    return Some("stream closed by client".into());
                }
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::End(reason)) => return Some(reason),
                Err(err) => {
                    let reason = format!("stream error: {err}");
                    self.stream_error(err).await;
                    return Some(reason);
                }
            }
        }
    }

    /// Validates the client's stream header (RFC 6120 §4.7, §4.9.3) and answers with ours
    /// and the stream features for the current state.
    async fn on_header(&mut self, h: StreamHeader) -> Result<Flow, StreamError> {
        if !self.expect_header {
            return Err(StreamError::with_text(
                StreamCondition::NotWellFormed,
                "unexpected stream header",
            ));
        }
        self.send_header(h.from.as_deref());
        self.expect_header = false;
        self.lang = h.lang.filter(|l| !l.is_empty());
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            return Err(StreamError::with_text(
                StreamCondition::InvalidNamespace,
                "the default namespace must be jabber:client",
            ));
        }
        match h.version.as_deref().map(parse_version) {
            Some(Some((1, _))) => {}
            Some(None) => {
                return Err(StreamError::with_text(
                    StreamCondition::BadFormat,
                    "malformed version attribute",
                ))
            }
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::UnsupportedVersion,
                    "only XMPP 1.0 streams are supported",
                ))
            }
        }
        let to_ok =
            h.to.as_deref()
                .and_then(|to| crate::jid::nameprep(to).ok())
                .is_some_and(|to| to == self.server.domain);
        if !to_ok {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve that domain",
            ));
        }
        let features = self.features();
        self.queue_element(&features);
        self.flush().await.map_err(io_error)?;
        Ok(Flow::Continue)
    }

    /// The stream features for the current state (RFC 6120 §4.3.2).
    fn features(&self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        let secure = self.transport.is_tls();
        let plaintext_ok = self.server.config.insecure_allow_plaintext;
        match &self.state {
            C2sState::Unauthed => {
                if !secure {
                    let mut starttls = Element::new("starttls", ns::TLS);
                    if !plaintext_ok {
                        starttls.push(Element::new("required", ns::TLS));
                    }
                    f.push(starttls);
                }
                if secure || plaintext_ok {
                    let mut mechs = Element::new("mechanisms", ns::SASL);
                    for m in self.offered_mechanisms() {
                        mechs.push(Element::new("mechanism", ns::SASL).with_text(m.name()));
                    }
                    f.push(mechs);
                }
                let cb = self.channel_bindings();
                if !cb.is_empty() {
                    // XEP-0440: which channel-binding types -PLUS may use here.
                    let mut types = Element::new("sasl-channel-binding", ns::SASL_CB);
                    for t in cb.types() {
                        types.push(
                            Element::new("channel-binding", ns::SASL_CB).with_attr("type", t),
                        );
                    }
                    f.push(types);
                }
            }
            C2sState::Authed { .. } => {
                f.push(Element::new("bind", ns::BIND));
                // What the feature table offers (roster versioning, sm, csi, session, caps…).
                for sf in self
                    .server
                    .table
                    .modules()
                    .flat_map(|m| m.stream_features.iter())
                    .filter(|sf| sf.phase == StreamPhase::Authenticated)
                {
                    f.push((sf.element)(&self.server));
                }
            }
            C2sState::Bound(_) => {}
        }
        f
    }

    /// -PLUS only with channel binding data, PLAIN only under TLS (or when plaintext is
    /// explicitly allowed), nothing before TLS unless plaintext is allowed.
    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        let secure = self.transport.is_tls();
        if !secure && !self.server.config.insecure_allow_plaintext {
            return Vec::new();
        }
        Mechanism::offered(&self.channel_bindings(), true)
    }

    fn channel_bindings(&self) -> ChannelBindings {
        match &self.tls {
            Some(t) => self
                .transport
                .channel_bindings(t.server_end_point.as_deref()),
            None => ChannelBindings::default(),
        }
    }

    async fn on_element(&mut self, e: Element) -> Result<Flow, StreamError> {
        log::debug!("c2s:{} <{} xmlns='{}'>", self.id, e.name, e.ns);
        if e.ns == ns::STREAM {
            if e.name == "error" {
                return Ok(Flow::End("stream error from client".into()));
            }
            return Err(StreamError::with_text(
                StreamCondition::UnsupportedStanzaType,
                "unexpected stream-level element",
            ));
        }
        if e.ns == sm::NS && !matches!(self.state, C2sState::Unauthed) {
            return self.on_sm(e).await;
        }
        if e.ns == csi::NS && matches!(self.state, C2sState::Bound(_)) {
            return self.on_csi(e).await;
        }
        match &self.state {
            C2sState::Unauthed => self.on_unauthed(e).await,
            C2sState::Authed { .. } => self.on_authed(e).await,
            C2sState::Bound(_) => self.on_stanza(e).await,
        }
    }

    /// XEP-0352: `<active/>` delivers what was held back; `<inactive/>` starts holding.
    async fn on_csi(&mut self, e: Element) -> Result<Flow, StreamError> {
        match e.name.as_str() {
            "inactive" => self.inactive = true,
            "active" => {
                self.inactive = false;
                for h in self.held.take() {
                    self.queue_element(&h);
                }
                self.flush().await.map_err(io_error)?;
            }
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    "unknown client state element",
                ))
            }
        }
        Ok(Flow::Continue)
    }

    /// XEP-0198 nonzas: `<enable/>` and `<resume/>` (negotiation), `<r/>` and `<a/>`.
    async fn on_sm(&mut self, e: Element) -> Result<Flow, StreamError> {
        let failed =
            |cond: &str| Element::new("failed", sm::NS).with_child(Element::new(cond, ns::STANZAS));
        match (e.name.as_str(), &self.state) {
            ("enable", C2sState::Bound(b)) if self.sm.is_none() => {
                let resume = matches!(e.attr("resume"), Some("true") | Some("1"));
                let registered = resume.then(|| {
                    self.server
                        .state::<sm::Registry>()
                        .register(b.full_jid().bare())
                });
                let mut enabled = Element::new("enabled", sm::NS);
                if let Some((id, _)) = &registered {
                    enabled.set_attr("id", id.clone());
                    enabled.set_attr("resume", "true");
                    enabled.set_attr(
                        "max",
                        self.server.config.resume_timeout.as_secs().to_string(),
                    );
                }
                self.sm = Some(Box::new(Sm::new(registered)));
                self.queue_element(&enabled);
            }
            ("enable", _) => self.queue_element(&failed("unexpected-request")),
            ("resume", C2sState::Authed { username }) => {
                return self.resume(&e, username.clone()).await;
            }
            ("resume", _) => self.queue_element(&failed("unexpected-request")),
            ("r", _) => {
                if let Some(sm) = &self.sm {
                    let a = Element::new("a", sm::NS).with_attr("h", sm.received.to_string());
                    self.queue_element(&a);
                }
            }
            ("a", _) => {
                let h = e.attr("h").and_then(|h| h.parse::<u32>().ok());
                if let (Some(sm), Some(h)) = (self.sm.as_mut(), h) {
                    if let Err(too_high) = sm.ack(h) {
                        let mut err = StreamError::with_text(
                            StreamCondition::UndefinedCondition,
                            "acknowledged more stanzas than were sent",
                        );
                        err.app = Some(Box::new(
                            Element::new("handled-count-too-high", sm::NS)
                                .with_attr("h", too_high.h.to_string())
                                .with_attr("send-count", too_high.sent.to_string()),
                        ));
                        return Err(err);
                    }
                }
            }
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    "unknown stream management element",
                ))
            }
        }
        self.flush().await.map_err(io_error)?;
        Ok(Flow::Continue)
    }

    /// `<resume previd h/>` after authentication: hand this connection to the detached
    /// session, or say it cannot be resumed.
    async fn resume(&mut self, e: &Element, username: String) -> Result<Flow, StreamError> {
        let (Some(previd), Some(h)) = (
            e.attr("previd"),
            e.attr("h").and_then(|h| h.parse::<u32>().ok()),
        ) else {
            self.queue_element(
                &Element::new("failed", sm::NS)
                    .with_child(Element::new("bad-request", ns::STANZAS)),
            );
            self.flush().await.map_err(io_error)?;
            return Ok(Flow::Continue);
        };
        let account = BareJid::new(Some(&username), &self.server.domain)
            .map_err(|_| StreamError::new(StreamCondition::InternalServerError))?;
        // What this connection owes its client goes out before the transport moves on.
        self.write_out().await.map_err(io_error)?;
        let handoff = Box::new(Handoff {
            transport: std::mem::replace(&mut self.transport, Transport::Closed),
            reader: std::mem::replace(
                &mut self.reader,
                StreamReader::new(self.server.config.limits),
            ),
            tls: self.tls.take(),
            guard: self.guard.take(),
            peer: self.peer,
            conn_id: self.id,
            h,
            lang: self.lang.take(),
        });
        match self
            .server
            .state::<sm::Registry>()
            .resume(previd, &account, handoff)
        {
            Ok(()) => Ok(Flow::End("handed over to the resumed session".into())),
            Err(back) => {
                self.transport = back.transport;
                self.reader = back.reader;
                self.tls = back.tls;
                self.guard = back.guard;
                self.queue_element(
                    &Element::new("failed", sm::NS)
                        .with_child(Element::new("item-not-found", ns::STANZAS)),
                );
                self.flush().await.map_err(io_error)?;
                Ok(Flow::Continue)
            }
        }
    }

    /// Sends `<r/>` (XEP-0198).
    fn request_ack(&mut self) {
        if let Some(sm) = self.sm.as_mut() {
            sm.requested = true;
            self.out.push_str("<r xmlns='urn:xmpp:sm:3'/>");
        }
    }

    /// Before authentication: STARTTLS and SASL only (RFC 6120 §5.4, §6.4).
    async fn on_unauthed(&mut self, e: Element) -> Result<Flow, StreamError> {
        if e.ns == ns::TLS && e.name == "starttls" {
            if self.transport.is_tls() {
                self.queue_element(&Element::new("failure", ns::TLS));
                self.out.push_str("</stream:stream>");
                let _ = self.write_out().await;
                return Ok(Flow::End("STARTTLS on a TLS stream".into()));
            }
            // Bytes after <starttls/> were sent before our <proceed/>: they would be read
            // as TLS records or, worse, as if protected by TLS. Refuse.
            if self.reader.has_buffered() {
                return Err(StreamError::with_text(
                    StreamCondition::PolicyViolation,
                    "data pipelined after <starttls/>",
                ));
            }
            // In plaintext, before the handshake.
            self.queue_element(&Element::new("proceed", ns::TLS));
            self.write_out().await.map_err(io_error)?;
            if let Err(e) = self.handshake().await {
                return Ok(Flow::End(format!("TLS handshake failed: {e}")));
            }
            self.restart();
            return Ok(Flow::Continue);
        }
        if e.ns == ns::SASL {
            return self.on_sasl(e).await;
        }
        Err(StreamError::with_text(
            StreamCondition::NotAuthorized,
            "authenticate first",
        ))
    }

    /// SASL negotiation (RFC 6120 §6.4).
    async fn on_sasl(&mut self, e: Element) -> Result<Flow, StreamError> {
        let outcome = match (e.name.as_str(), self.sasl.take().map(|b| *b)) {
            ("auth", None) => self.sasl_auth(&e).await,
            ("response", Some(SaslExchange::Initial(mech))) => {
                match sasl::decode_payload(&e.text()) {
                    Ok(initial) => self.sasl_start(mech, &initial).await,
                    Err(f) => Err((f, None)),
                }
            }
            ("response", Some(SaslExchange::Scram { wait, username })) => {
                match sasl::decode_payload(&e.text()).and_then(|data| wait.finish(&data)) {
                    Ok(success) => Ok(Some((username, success))),
                    Err(f) => Err((f, Some(username))),
                }
            }
            ("abort", Some(SaslExchange::Scram { username, .. })) => {
                Err((Failure::Aborted, Some(username)))
            }
            ("abort", _) => Err((Failure::Aborted, None)),
            // A new <auth/> in the middle of an exchange abandons the old one.
            ("auth", Some(_)) => Err((Failure::Aborted, None)),
            _ => Err((Failure::MalformedRequest, None)),
        };
        match outcome {
            // A challenge was sent; the exchange goes on.
            Ok(None) => Ok(Flow::Continue),
            Ok(Some((username, success))) => {
                self.server.throttle.clear(&self.peer, &username);
                log::info!(
                    "c2s:{} authenticated as {}@{}",
                    self.id,
                    username,
                    self.server.domain
                );
                let mut s = Element::new("success", ns::SASL);
                if !success.is_empty() {
                    s = s.with_text(sasl::encode_payload(&success));
                }
                self.queue_element(&s);
                self.flush().await.map_err(io_error)?;
                self.state = C2sState::Authed { username };
                if let Some(g) = self.guard.as_mut() {
                    g.authenticated();
                }
                self.restart();
                Ok(Flow::Continue)
            }
            Err((failure, username)) => {
                if failure != Failure::Aborted {
                    self.auth_failures += 1;
                    // Only a failed credential check (a named account) is slowed down: a
                    // client probing mechanisms or channel-binding types (slixmpp tries
                    // tls-unique on TLS 1.2) has guessed no password.
                    let delay = match username.as_deref() {
                        Some(u) if !u.is_empty() => self.server.throttle.failure(&self.peer, u),
                        _ => Duration::ZERO,
                    };
                    log::info!(
                        "c2s:{} authentication failed ({}){}",
                        self.id,
                        failure.condition(),
                        username
                            .as_deref()
                            .map(|u| format!(" for {u}"))
                            .unwrap_or_default()
                    );
                    // Slows down password guessing, per address and per account.
                    Timer::after(delay).await;
                }
                self.queue_element(
                    &Element::new("failure", ns::SASL)
                        .with_child(Element::new(failure.condition(), ns::SASL)),
                );
                self.flush().await.map_err(io_error)?;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    return Err(StreamError::with_text(
                        StreamCondition::PolicyViolation,
                        "too many failed authentication attempts",
                    ));
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// `<auth mechanism='…'>`: checks the mechanism and starts the exchange.
    async fn sasl_auth(&mut self, e: &Element) -> SaslOutcome {
        let secure = self.transport.is_tls();
        if !secure && !self.server.config.insecure_allow_plaintext {
            return Err((Failure::EncryptionRequired, None));
        }
        let mech = e
            .attr("mechanism")
            .and_then(Mechanism::from_name)
            .filter(|m| self.offered_mechanisms().contains(m))
            .ok_or((Failure::InvalidMechanism, None))?;
        // RFC 6120 §6.4.2: no text means no initial response: ask for it with an empty
        // challenge; "=" is an empty initial response.
        let text = e.text();
        if text.trim().is_empty() {
            self.send_challenge(&[]).await?;
            self.sasl = Some(Box::new(SaslExchange::Initial(mech)));
            return Ok(None);
        }
        let initial = sasl::decode_payload(&text).map_err(|f| (f, None))?;
        self.sasl_start(mech, &initial).await
    }

    /// The client's first message: PLAIN completes at once, SCRAM sends its challenge.
    /// `Ok(None)` if a challenge was sent, `Ok(Some((user, success data)))` on success.
    async fn sasl_start(&mut self, mech: Mechanism, initial: &[u8]) -> SaslOutcome {
        let cb = self.channel_bindings();
        match sasl::start(mech, initial, &cb).map_err(|f| (f, None))? {
            Start::Plain {
                authzid,
                username,
                password,
            } => {
                let Ok(username) = crate::jid::nodeprep(&username) else {
                    sasl::check_plain(None, &password).map_err(|f| (f, None))?;
                    unreachable!("check_plain without credentials always fails");
                };
                let creds = self.lookup(&username).await?;
                sasl::check_plain(creds.as_ref(), &password)
                    .map_err(|f| (f, Some(username.clone())))?;
                self.check_authzid(authzid.as_deref(), &username)?;
                Ok(Some((username, Vec::new())))
            }
            Start::Scram(start) => {
                // A name that cannot be an account is answered as a missing account, so
                // that the exchange looks the same either way.
                let username = crate::jid::nodeprep(start.username()).unwrap_or_default();
                if !username.is_empty() {
                    self.check_authzid(start.authzid(), &username)?;
                }
                let creds = if username.is_empty() {
                    None
                } else {
                    self.lookup(&username).await?
                };
                let (challenge, wait) = start.challenge(creds.as_ref());
                self.send_challenge(&challenge).await?;
                self.sasl = Some(Box::new(SaslExchange::Scram { wait, username }));
                Ok(None)
            }
        }
    }

    async fn send_challenge(&mut self, data: &[u8]) -> Result<(), (Failure, Option<String>)> {
        self.queue_element(
            &Element::new("challenge", ns::SASL).with_text(sasl::encode_payload(data)),
        );
        self.flush()
            .await
            .map_err(|_| (Failure::TemporaryAuthFailure, None))
    }

    /// An authorization identity may only name the authenticating account itself.
    fn check_authzid(
        &self,
        authzid: Option<&str>,
        username: &str,
    ) -> Result<(), (Failure, Option<String>)> {
        let own = BareJid::new(Some(username), &self.server.domain)
            .map_err(|_| (Failure::NotAuthorized, None))?;
        sasl::check_authzid(authzid, &own).map_err(|f| (f, Some(username.to_owned())))
    }

    async fn lookup(
        &self,
        username: &str,
    ) -> Result<Option<sasl::StoredCredentials>, (Failure, Option<String>)> {
        let host = self.server.domain.clone();
        let user = username.to_owned();
        self.server
            .storage
            .call(move |c| crate::storage::accounts::credentials(c, &host, &user))
            .await
            .map_err(|e| {
                log::error!("c2s:{} credential lookup failed: {e}", self.id);
                (Failure::TemporaryAuthFailure, Some(username.to_owned()))
            })
    }

    /// After SASL, before binding: resource binding and the legacy session (RFC 6120 §7).
    async fn on_authed(&mut self, e: Element) -> Result<Flow, StreamError> {
        if e.name == "iq" && e.ns == ns::CLIENT {
            if let Some(payload) = e.first_element() {
                if payload.is("bind", ns::BIND) && e.attr("type") == Some("set") {
                    return self.bind(&e).await;
                }
                if payload.is("session", ns::SESSION) {
                    self.reply_result(&e, None).await?;
                    return Ok(Flow::Continue);
                }
            }
        }
        Err(StreamError::with_text(
            StreamCondition::NotAuthorized,
            "bind a resource first",
        ))
    }

    /// Resource binding (RFC 6120 §7.5–§7.7): the client's resource or a generated one; on a
    /// conflict the newer session wins and the older gets a `conflict` stream error.
    async fn bind(&mut self, iq: &Element) -> Result<Flow, StreamError> {
        let C2sState::Authed { username } = &self.state else {
            unreachable!("bind is only handled in the Authed state");
        };
        let username = username.clone();
        let bare = BareJid::new(Some(username.as_str()), &self.server.domain)
            .map_err(|_| StreamError::new(StreamCondition::InternalServerError))?;
        let requested = iq
            .first_element()
            .and_then(|b| b.child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let jid = match requested {
            Some(r) => match bare.with_resource(&r) {
                Ok(j) => j,
                Err(_) => {
                    let err = StanzaError::with_text(
                        StanzaCondition::BadRequest,
                        "the resource is not a valid resourcepart",
                    );
                    self.reply_error(iq, err).await?;
                    return Ok(Flow::Continue);
                }
            },
            None => generated_resource(&bare),
        };
        let blocked = {
            let (host, user) = (self.server.domain.clone(), username.clone());
            self.server
                .storage
                .call(move |c| crate::storage::blocking::list(c, &host, &user))
                .await
                .map_err(|e| {
                    log::error!("c2s:{} loading the block list failed: {e}", self.id);
                    StreamError::new(StreamCondition::InternalServerError)
                })?
        };
        let (handle, queue) = SessionHandle::new(self.id, jid.clone());
        if let Some(old) = self.server.sessions.bind(handle.clone(), blocked) {
            log::info!("c2s:{} replaces c2s:{} as {}", self.id, old.id, jid);
            old.close(StreamError::with_text(
                StreamCondition::Conflict,
                "replaced by a new connection for the same resource",
            ));
        }
        log::info!("c2s:{} bound {}", self.id, jid);
        self.queue = Some(queue);
        self.state = C2sState::Bound(Box::new(Bound::new(handle)));
        let result = Element::new("bind", ns::BIND)
            .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
        self.reply_result(iq, Some(result)).await?;
        Ok(Flow::Continue)
    }

    /// A stanza from a bound client (RFC 6120 §8): validated, `from` stamped, handed on.
    async fn on_stanza(&mut self, mut e: Element) -> Result<Flow, StreamError> {
        if let Some(sm) = self.sm.as_mut() {
            sm.received = sm.received.wrapping_add(1);
        }
        let C2sState::Bound(bound) = &self.state else {
            unreachable!("stanzas are only handled in the Bound state");
        };
        // What only a client connection knows: RFC 3921's session IQ (answered, nothing to
        // do) and a second bind (not allowed); everything else is the router's.
        if e.name == "iq" && e.attr("type") == Some("set") && e.attr("id").is_some() {
            let full = bound.full_jid();
            let to_server = e
                .attr("to")
                .is_none_or(|t| t == self.server.domain || t == full.bare_str());
            if let (true, Some(p)) = (to_server, e.first_element()) {
                if p.is("session", ns::SESSION) {
                    self.reply_result(&e, None).await?;
                    return Ok(Flow::Continue);
                }
                if p.is("bind", ns::BIND) {
                    self.reply_error(&e, StanzaCondition::NotAllowed.into())
                        .await?;
                    return Ok(Flow::Continue);
                }
            }
        }
        // RFC 6120 §8.1.5: a stanza without xml:lang gets the stream's.
        if e.attr("xml:lang").is_none() {
            if let Some(lang) = &self.lang {
                e.set_attr("xml:lang", lang.as_str());
            }
        }
        let origin = Origin::Client(bound.handle.clone());
        let mut replies = Vec::new();
        let offline_ids = crate::router::process(&self.server, &origin, e, &mut replies).await?;
        for r in &replies {
            self.queue_element(r);
        }
        if !offline_ids.is_empty() {
            // Only what was written may be deleted: write now, not at the end of the read.
            self.write_out().await.map_err(io_error)?;
            // Written to the socket: now they may go (RFC 6121 §5: nothing is lost if the
            // connection died before).
            self.server
                .storage
                .call(move |c| crate::storage::offline::delete(c, &offline_ids))
                .await
                .map_err(|e| {
                    log::error!("c2s:{} deleting delivered offline messages: {e}", self.id);
                    StreamError::new(StreamCondition::InternalServerError)
                })?;
        }
        Ok(Flow::Continue)
    }

    /// Stream restart after TLS or SASL success (RFC 6120 §4.3.3).
    fn restart(&mut self) {
        self.reader.reset();
        self.expect_header = true;
    }

    fn send_header(&mut self, client_from: Option<&str>) {
        self.out.push_str("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='");
        self.out.push_str(&crate::util::random_hex(16));
        self.out.push_str("' from='");
        self.out.push_str(&escape(&self.server.domain));
        self.out.push('\'');
        if let Some(to) = client_from {
            if crate::jid::Jid::parse(to).is_ok() {
                self.out.push_str(" to='");
                self.out.push_str(&escape(to));
                self.out.push('\'');
            }
        }
        self.out.push('>');
    }

    async fn reply_result(
        &mut self,
        iq: &Element,
        payload: Option<Element>,
    ) -> Result<(), StreamError> {
        let mut r = Element::new("iq", ns::CLIENT).with_attr("type", "result");
        if let Some(id) = iq.attr("id") {
            r.set_attr("id", id);
        }
        if let Some(p) = payload {
            r.push(p);
        }
        self.queue_element(&r);
        self.flush().await.map_err(io_error)
    }

    async fn reply_error(&mut self, stanza: &Element, err: StanzaError) -> Result<(), StreamError> {
        if let Some(r) = err.reply_to(stanza) {
            self.queue_element(&r);
            self.flush().await.map_err(io_error)?;
        }
        Ok(())
    }

    fn queue_element(&mut self, e: &Element) {
        if self.out.capacity() == 0 {
            // Given back when idle: start at a size most stanzas fit in, not at 8 bytes.
            self.out.reserve(OUT_INITIAL);
        }
        let start = self.out.len();
        e.write_to(&mut self.out, ns::CLIENT);
        if let Some(sm) = self.sm.as_mut() {
            if e.ns == ns::CLIENT && matches!(e.name.as_str(), "message" | "presence" | "iq") {
                sm.sent(&self.out[start..]);
            }
        }
    }

    async fn send_element(&mut self, e: &Element) -> std::io::Result<()> {
        self.queue_element(e);
        self.flush().await
    }

    /// Writes what is queued in `out`; while the events of one read are handled, the write
    /// waits for the end of the read.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.deferring {
            return Ok(());
        }
        self.write_out().await
    }

    /// Writes what is queued in `out` now.
    async fn write_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self
            .sm
            .as_ref()
            .is_some_and(|s| s.unacked.len() >= ACK_EVERY && !s.requested)
        {
            self.request_ack();
        }
        if self
            .sm
            .as_ref()
            .is_some_and(|sm| sm.unacked.len() > self.server.config.sm_max_unacked)
            && !self.closing
        {
            // XEP-0198 §4: a client that acknowledges nothing is closed, not detached;
            // its unacknowledged stanzas are handed on when the session ends.
            self.closing = true;
            self.out.clear();
            let err = StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many unacknowledged stanzas",
            );
            err.to_element().write_to(&mut self.out, ns::CLIENT);
            self.out.push_str("</stream:stream>");
            let _ = self.transport.write_all(self.out.as_bytes()).await;
            self.out.clear();
            self.transport.shutdown().await;
            return Err(std::io::Error::other("too many unacknowledged stanzas"));
        }
        self.last_out = Instant::now();
        let r = self.transport.write_all(self.out.as_bytes()).await;
        if r.is_err() {
            self.lost = true;
        }
        self.out.clear();
        r
    }

    /// Sends a stream error, closes our stream and waits briefly for the client's close.
    async fn stream_error(&mut self, err: StreamError) {
        log::debug!("c2s:{} stream error {}", self.id, err);
        self.queue_element(&err.to_element());
        self.close_stream().await;
    }

    /// The closing handshake (RFC 6120 §4.4): our `</stream:stream>`, then wait a moment
    /// for the client's before closing the TCP connection.
    async fn close_stream(&mut self) {
        self.closing = true;
        self.out.push_str("</stream:stream>");
        if self.write_out().await.is_ok() {
            let mut buf = [0u8; 256];
            let wait = async {
                for _ in 0..64 {
                    match self.transport.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            self.reader.push(&buf[..n]);
                            loop {
                                match self.reader.next() {
                                    Ok(Some(Event::Close)) | Err(_) => return,
                                    Ok(Some(_)) => {}
                                    Ok(None) => break,
                                }
                            }
                        }
                    }
                }
            };
            wait.or(async {
                Timer::after(CLOSE_GRACE).await;
            })
            .await;
        }
        self.transport.shutdown().await;
    }

    /// A bound session ends (by either side, or a broken connection): everyone who saw it
    /// available, or got its directed presence, gets unavailable (RFC 6121 §4.5).
    async fn end_session(&mut self) {
        if let C2sState::Bound(b) = &self.state {
            let p = Element::new("presence", ns::CLIENT).with_attr("type", "unavailable");
            crate::modules::presence::went_unavailable(&self.server, &b.handle, p).await;
        }
    }

    fn cleanup(&mut self) {
        if let C2sState::Bound(b) = &self.state {
            self.server.sessions.unbind(b.full_jid(), self.id);
        }
    }
}

impl Drop for Connection {
    /// Runs on panics too, so that a crashed session never stays in the router.
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// The result of a SASL step: `Ok(None)` while the exchange goes on, `Ok(Some((username,
/// success data)))` when it succeeded, or the failure and the username if known.
type SaslOutcome = Result<Option<(String, Vec<u8>)>, (Failure, Option<String>)>;

/// What the loop does after an element.
enum Flow {
    Continue,
    End(Reason),
}

fn io_error(e: std::io::Error) -> StreamError {
    StreamError::with_text(StreamCondition::UndefinedCondition, e.to_string())
}

/// `major.minor` of a version attribute (RFC 6120 §4.7.5).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A server-generated resource: "roost-" and 8 random hex digits.
fn generated_resource(bare: &BareJid) -> FullJid {
    bare.with_resource(&format!("roost-{}", crate::util::random_hex(4)))
        .expect("a hex resource is always valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0"), Some((1, 0)));
        assert_eq!(parse_version("1.12"), Some((1, 12)));
        assert_eq!(parse_version("2.0"), Some((2, 0)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("one.zero"), None);
    }
}
