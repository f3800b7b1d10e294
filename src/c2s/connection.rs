//! One client connection: the task that owns the socket, its main loop and stanza
//! handling (RFC 6120 §8), the outbound queue and the write path. Stream negotiation
//! (§4–§7, RFC 3921 §3) is in `negotiation.rs`, XEP-0198 in `sm.rs`, XEP-0352 in `csi.rs`:
//! more `impl Connection` blocks over the fields below.

use super::csi;
use super::negotiation::SaslExchange;
use super::sm::{self, Handoff, Sm};
use crate::net::tls::Loaded;
use crate::net::transport::{WsIo, MESSAGE_END};
use crate::net::Transport;
use crate::ns;
use crate::router::{ConnGuard, Core, Origin};
use crate::session::{C2sState, Outbound, SessionQueue};
use crate::stanza::IqType;
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::reader::{Event, StreamReader};
use crate::xml::Element;
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

/// A client connection.
pub struct Connection {
    pub(super) server: Arc<Core>,
    pub(super) id: u64,
    pub(super) peer: SocketAddr,
    pub(super) transport: Transport,
    pub(super) reader: StreamReader,
    pub(super) state: C2sState,
    /// Between our header and the client's next header (start, after TLS, after SASL).
    pub(super) expect_header: bool,
    /// The TLS configuration our handshake used (its certificate's channel binding).
    pub(super) tls: Option<Arc<Loaded>>,
    /// Boxed: a SCRAM exchange is large and lives only during authentication.
    pub(super) sasl: Option<Box<SaslExchange>>,
    pub(super) auth_failures: u32,
    /// When the client last sent anything, and when we pinged it since (XEP-0199).
    pub(super) last_read: Instant,
    pub(super) ping_sent: Option<Instant>,
    pub(super) queue: Option<SessionQueue>,
    pub(super) out: String,
    pub(super) guard: Option<ConnGuard>,
    /// XEP-0198 state once the client enabled stream management.
    pub(super) sm: Option<Box<Sm>>,
    /// When we last wrote to the client.
    pub(super) last_out: Instant,
    /// XEP-0352: the client said it is inactive; what waits for it.
    pub(super) inactive: bool,
    pub(super) held: csi::Held,
    /// The transport broke (EOF, read or write error) rather than closing cleanly.
    pub(super) lost: bool,
    /// We decided to close the stream (an error, shutdown, the client's close).
    pub(super) closing: bool,
    /// Handling the events of one read: replies wait in `out` for one write at its end.
    pub(super) deferring: bool,
    /// The `xml:lang` of the client's last stream header (RFC 6120 §4.7.4), stamped on
    /// its stanzas that carry none (§8.1.5).
    pub(super) lang: Option<String>,
    /// XEP-0445: the invitation token the client presented before registering.
    pub(super) preauth: Option<Box<crate::invite::Presented>>,
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
            preauth: None,
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

    /// Runs a connection over a WebSocket (RFC 7395) to its end: `io` is the connection the
    /// HTTP server upgraded, `read` what it had read past the request, `secure` whether
    /// it is under TLS.
    pub fn run_websocket(
        mut self,
        io: Box<dyn WsIo>,
        read: Vec<u8>,
        secure: bool,
    ) -> impl Future<Output = Reason> {
        let limits = self.server.config.limits;
        // Room for whitespace around the largest element; the reader enforces the limit.
        let max_message = limits.max_stanza.saturating_add(1024);
        self.transport = Transport::websocket(io, read, secure, max_message);
        self.reader = StreamReader::for_messages(limits);
        async move { self.serve(false).await }
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
                let read = self
                    .transport
                    .poll_feed(cx, &mut chunk[..], &mut self.reader);
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
        self.ping_sent = Some(Instant::now());
        // On a WebSocket, a ping frame: every client answers it (RFC 6455 §5.5.2).
        if self.transport.queue_ping() {
            return self
                .write_out()
                .await
                .err()
                .map(|e| format!("write error: {e}"));
        }
        // XEP-0199 §4.2: is the client still there?
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("ping{}", self.id))
            .with_attr("from", self.server.domain.clone())
            .with_attr("to", b.full_jid().to_string())
            .with_child(Element::new("ping", ns::PING));
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
                    self.push_close();
                    let _ = self.write_out().await;
                    self.transport.shutdown().await;
                    return Some("stream closed by client".into());
                }
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::End(reason)) => return Some(reason),
                Err(err) => {
                    if self.expect_header {
                        // A stanza before the WebSocket's <open/>: ours comes first.
                        self.send_header(None);
                    }
                    let reason = format!("stream error: {err}");
                    self.stream_error(err).await;
                    return Some(reason);
                }
            }
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

    /// A stanza from a bound client (RFC 6120 §8): validated, `from` stamped, handed on.
    async fn on_stanza(&mut self, mut e: Element) -> Result<Flow, StreamError> {
        if let Some(sm) = self.sm.as_mut() {
            sm.received = sm.received.wrapping_add(1);
        }
        let C2sState::Bound(bound) = &self.state else {
            unreachable!("stanzas are only handled in the Bound state");
        };
        // What only a client connection knows: RFC 3921's session IQ (answered, nothing to
        // do) and a second bind (not allowed); everything else — an ill-formed IQ too — is
        // the router's.
        if e.name == "iq"
            && IqType::of(&e) == Some(IqType::Set)
            && e.attr("id").is_some()
            && e.elements().count() == 1
        {
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

    pub(super) async fn reply_result(
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

    pub(super) async fn reply_error(
        &mut self,
        stanza: &Element,
        err: StanzaError,
    ) -> Result<(), StreamError> {
        if let Some(r) = err.reply_to(stanza) {
            self.queue_element(&r);
            self.flush().await.map_err(io_error)?;
        }
        Ok(())
    }

    pub(super) fn queue_element(&mut self, e: &Element) {
        if self.out.capacity() == 0 {
            // Given back when idle: start at a size most stanzas fit in, not at 8 bytes.
            self.out.reserve(OUT_INITIAL);
        }
        let start = self.out.len();
        let ws = self.transport.is_websocket();
        if ws {
            e.write_standalone(&mut self.out);
        } else {
            e.write_to(&mut self.out, ns::CLIENT);
        }
        if let Some(sm) = self.sm.as_mut() {
            if e.ns == ns::CLIENT && matches!(e.name.as_str(), "message" | "presence" | "iq") {
                sm.sent(&self.out[start..]);
            }
        }
        if ws {
            self.out.push(MESSAGE_END);
        }
    }

    /// Ends a top-level element written into `out` by hand: on a WebSocket, where each is
    /// a message of its own.
    pub(super) fn end_message(&mut self) {
        if self.transport.is_websocket() {
            self.out.push(MESSAGE_END);
        }
    }

    /// The end of our stream: `</stream:stream>`, or on a WebSocket `<close/>` (RFC 7395
    /// §3.6).
    pub(super) fn push_close(&mut self) {
        if self.transport.is_websocket() {
            self.out
                .push_str("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
            self.out.push(MESSAGE_END);
        } else {
            self.out.push_str("</stream:stream>");
        }
    }

    async fn send_element(&mut self, e: &Element) -> std::io::Result<()> {
        self.queue_element(e);
        self.flush().await
    }

    /// Writes what is queued in `out`; while the events of one read are handled, the write
    /// waits for the end of the read.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.deferring {
            return Ok(());
        }
        self.write_out().await
    }

    /// Writes what is queued in `out` now.
    pub(super) async fn write_out(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() && !self.transport.wants_write() {
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
            self.queue_element(&err.to_element());
            self.push_close();
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

    /// The closing handshake (RFC 6120 §4.4, RFC 7395 §3.6): our `</stream:stream>` (or
    /// `<close/>`), then wait a moment for the client's before closing the connection.
    async fn close_stream(&mut self) {
        self.closing = true;
        self.push_close();
        if self.write_out().await.is_ok() {
            let mut buf = [0u8; 256];
            let wait = async {
                for _ in 0..64 {
                    let read =
                        poll_fn(|cx| self.transport.poll_feed(cx, &mut buf, &mut self.reader));
                    match read.await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => loop {
                            match self.reader.next() {
                                Ok(Some(Event::Close)) | Err(_) => return,
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                            }
                        },
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

/// What the loop does after an element.
pub(super) enum Flow {
    Continue,
    End(Reason),
}

pub(super) fn io_error(e: std::io::Error) -> StreamError {
    StreamError::with_text(StreamCondition::UndefinedCondition, e.to_string())
}
