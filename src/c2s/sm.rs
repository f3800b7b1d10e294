//! XEP-0198 Stream Management: counters, the queue of unacknowledged stanzas, and the
//! hand-over of a new connection to a detached session on resumption.
//!
//! A session that enabled resumption keeps its task alive when its connection breaks
//! ("detached"). A new connection that authenticates as the same account and sends
//! `<resume previd='…'/>` hands its transport over to that task through the registry
//! below; the session goes on where it was, resending what the client had not acknowledged.

use super::connection::{io_error, Connection, Flow};
use crate::jid::BareJid;
use crate::net::tls::Loaded;
use crate::net::transport::MESSAGE_END;
use crate::net::Transport;
use crate::ns;
use crate::router::ConnGuard;
use crate::session::{C2sState, Outbound};
use crate::stanza::{StreamCondition, StreamError};
use crate::xml::reader::StreamReader;
use crate::xml::Element;
use smol::future::FutureExt;
use smol::Timer;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use crate::ns::SM as NS;

/// What a new connection hands to a detached session on `<resume/>`.
pub struct Handoff {
    pub transport: Transport,
    pub reader: StreamReader,
    pub tls: Option<Arc<Loaded>>,
    pub guard: Option<ConnGuard>,
    pub peer: SocketAddr,
    /// The new connection's id (for the log).
    pub conn_id: u64,
    /// The client's `h`: how many of our stanzas it handled.
    pub h: u32,
    /// The new stream's `xml:lang`.
    pub lang: Option<String>,
    /// Resumption inside XEP-0388 authentication: the `<success/>` to answer with, which
    /// gets the session's full JID and `<resumed/>`.
    pub sasl2: Option<Element>,
}

/// Where a resumable session listens for a hand-over, and whose it is.
type Entry = (BareJid, smol::channel::Sender<Box<Handoff>>);

/// Resumable sessions by stream id.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// Registers a resumable session; returns its id and the receiving end.
    pub fn register(&self, account: BareJid) -> (String, smol::channel::Receiver<Box<Handoff>>) {
        let id = crate::util::random_hex(15);
        let (tx, rx) = smol::channel::bounded(1);
        self.lock().insert(id.clone(), (account, tx));
        (id, rx)
    }

    /// Forgets a session (it ended or expired).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Hands `handoff` to the session `id` if it belongs to `account`. Gives the handoff
    /// back if there is no such session (or it is ending).
    pub fn resume(
        &self,
        id: &str,
        account: &BareJid,
        handoff: Box<Handoff>,
    ) -> Result<(), Box<Handoff>> {
        let tx = match self.lock().get(id) {
            Some((owner, tx)) if owner == account => tx.clone(),
            _ => return Err(handoff),
        };
        tx.try_send(handoff).map_err(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why an `<a/>` was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct TooHigh {
    pub h: u32,
    pub sent: u32,
}

/// The counters and unacknowledged queue of one session.
pub struct Sm {
    /// The resumption id (`None` without resumption).
    pub id: Option<String>,
    pub resume_rx: Option<smol::channel::Receiver<Box<Handoff>>>,
    /// Stanzas received from the client since `<enable/>` (our `h`).
    pub received: u32,
    /// Stanzas sent to the client since `<enable/>`.
    pub sent: u32,
    /// Our stanzas the client has not acknowledged yet, serialized as sent, oldest first.
    pub unacked: VecDeque<Box<str>>,
    /// An `<r/>` is out and its `<a/>` has not come.
    pub requested: bool,
}

impl Sm {
    pub fn new(id: Option<(String, smol::channel::Receiver<Box<Handoff>>)>) -> Sm {
        let (id, resume_rx) = match id {
            Some((id, rx)) => (Some(id), Some(rx)),
            None => (None, None),
        };
        Sm {
            id,
            resume_rx,
            received: 0,
            sent: 0,
            unacked: VecDeque::new(),
            requested: false,
        }
    }

    /// A stanza was written to the client.
    pub fn sent(&mut self, serialized: &str) {
        self.sent = self.sent.wrapping_add(1);
        self.unacked.push_back(serialized.into());
    }

    /// The client acknowledged `h` stanzas in all (modulo 2^32): drop them from the queue.
    pub fn ack(&mut self, h: u32) -> Result<(), TooHigh> {
        let acked = self.sent.wrapping_sub(self.unacked.len() as u32);
        let newly = h.wrapping_sub(acked) as usize;
        if newly > self.unacked.len() {
            return Err(TooHigh { h, sent: self.sent });
        }
        self.unacked.drain(..newly);
        self.requested = false;
        if self.unacked.is_empty() && self.unacked.capacity() > 64 {
            self.unacked.shrink_to_fit();
        }
        Ok(())
    }
}

/// The `Connection` side of XEP-0198.
impl Connection {
    pub(super) fn resumable(&self) -> bool {
        self.sm.as_ref().is_some_and(|s| s.id.is_some())
    }

    /// Waits, without a connection, for a resumption; `None` when the resumption timeout
    /// passes or the server shuts down. Meanwhile features hear that the session
    /// hibernates and, gathered for about a second (a call invitation at once), what comes
    /// for it (push notifications, XEP-0357); what comes stays queued for the resumption.
    pub(super) async fn detached(&mut self) -> Option<Box<Handoff>> {
        let rx = self.sm.as_ref().and_then(|s| s.resume_rx.clone())?;
        let jid = match &self.state {
            C2sState::Bound(b) => Some(b.full_jid().clone()),
            _ => None,
        };
        // A resource with push enabled hibernates longer (XEP-0357 apps are woken up).
        let push = jid.as_ref().is_some_and(|j| {
            self.server.sessions.with_resources(&j.bare(), |all| {
                all.iter().any(|r| r.handle.id == self.id && r.push)
            })
        });
        let timeout = match (&self.server.config.push, push) {
            (Some(p), true) => p.hibernation.max(self.server.config.resume_timeout),
            _ => self.server.config.resume_timeout,
        };
        log::info!(
            "c2s:{} detached; resumable for {} s",
            self.id,
            timeout.as_secs()
        );
        self.transport.shutdown().await;
        let unacked = self.sm.as_ref().map_or(0, |s| s.unacked.len());
        if let Some(jid) = &jid {
            self.server
                .emit(crate::router::Event::Hibernating { jid, unacked })
                .await;
        }
        let shutdown = self.server.shutdown_signal();
        let deadline = Instant::now() + timeout;
        let mut seen = self.queue.as_ref().map_or(0, |q| q.waiting().0);
        enum Woke {
            Resumed(Option<Box<Handoff>>),
            Stopped,
            More,
        }
        loop {
            let resume = async { Woke::Resumed(rx.recv().await.ok()) };
            let stop = async {
                let _ = shutdown.recv().await;
                Woke::Stopped
            };
            let expire = async {
                Timer::at(deadline).await;
                Woke::Stopped
            };
            let more = async {
                match (&self.queue, &jid) {
                    // Only a session with push enabled has someone to tell.
                    (Some(q), Some(_)) if push => {
                        q.more_than(seen).await;
                        Woke::More
                    }
                    _ => std::future::pending().await,
                }
            };
            match resume.or(stop).or(expire).or(more).await {
                Woke::Resumed(h) => return h,
                Woke::Stopped => return None,
                Woke::More => {}
            }
            let (Some(q), Some(jid)) = (&self.queue, &jid) else {
                return None;
            };
            let call = q
                .waiting()
                .1
                .is_some_and(|e| crate::stanza::call::is_call(&e));
            if !call {
                // Gather what comes within a second into one notification.
                let resume = async { Woke::Resumed(rx.recv().await.ok()) };
                let gather = async {
                    Timer::after(std::time::Duration::from_secs(1)).await;
                    Woke::More
                };
                let expire = async {
                    Timer::at(deadline).await;
                    Woke::Stopped
                };
                match resume.or(expire).or(gather).await {
                    Woke::Resumed(h) => return h,
                    Woke::Stopped => return None,
                    Woke::More => {}
                }
            }
            let (waiting, newest) = q.waiting();
            seen = waiting;
            if let Some(last) = newest {
                self.server
                    .emit(crate::router::Event::QueuedWhileHibernated {
                        jid,
                        waiting: waiting + unacked,
                        last: &last,
                    })
                    .await;
            }
        }
    }

    /// Takes over a new connection that resumed this session (XEP-0198 §5): acknowledge,
    /// then resend what the client has not handled.
    pub(super) async fn adopt(&mut self, handoff: Box<Handoff>) {
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
        let resumed = Element::new("resumed", NS)
            .with_attr("previd", previd)
            .with_attr("h", sm.received.to_string());
        let ws = self.transport.is_websocket();
        // Inline resumption (XEP-0388): the SASL2 success carries the resumed.
        let answer = match handoff.sasl2 {
            Some(mut success) => {
                if let C2sState::Bound(b) = &self.state {
                    success.push(
                        Element::new("authorization-identifier", ns::SASL2)
                            .with_text(b.full_jid().to_string()),
                    );
                }
                success.push(resumed);
                success
            }
            None => resumed,
        };
        if ws {
            answer.write_standalone(&mut self.out);
            self.out.push(MESSAGE_END);
        } else {
            answer.write_to(&mut self.out, ns::CLIENT);
        }
        let scope = crate::xml::parse::Scope::client();
        for s in &sm.unacked {
            if ws {
                // Kept as they went out, perhaps on a TCP stream where `jabber:client` was
                // the stream's: each becomes a message that declares it.
                match crate::xml::parse::parse_element(&scope, s.as_bytes()) {
                    Ok(e) => e.write_standalone(&mut self.out),
                    Err(_) => continue,
                }
                self.out.push(MESSAGE_END);
            } else {
                self.out.push_str(s);
            }
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
    pub(super) async fn requeue_undelivered(&mut self) {
        let C2sState::Bound(b) = &self.state else {
            return;
        };
        let account = b.full_jid().bare();
        let mut pending: Vec<Element> = Vec::new();
        if let Some(sm) = self.sm.as_mut() {
            if let Some(id) = &sm.id {
                self.server.state::<Registry>().remove(id);
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

    /// XEP-0198 nonzas: `<enable/>` and `<resume/>` (negotiation), `<r/>` and `<a/>`.
    pub(super) async fn on_sm(&mut self, e: Element) -> Result<Flow, StreamError> {
        let failed =
            |cond: &str| Element::new("failed", NS).with_child(Element::new(cond, ns::STANZAS));
        match (e.name.as_str(), &self.state) {
            ("enable", C2sState::Bound(_)) if self.sm.is_none() => {
                let enabled = self.sm_enable(&e);
                self.queue_element(&enabled);
            }
            ("enable", _) => self.queue_element(&failed("unexpected-request")),
            ("resume", C2sState::Authed { username }) => {
                return self.resume(&e, username.clone()).await;
            }
            ("resume", _) => self.queue_element(&failed("unexpected-request")),
            ("r", _) => {
                if let Some(sm) = &self.sm {
                    let a = Element::new("a", NS).with_attr("h", sm.received.to_string());
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
                            Element::new("handled-count-too-high", NS)
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

    /// `<enable/>` on a bound stream (or inline in XEP-0386 Bind 2): starts counting and,
    /// when asked, makes the session resumable; returns `<enabled/>`.
    pub(super) fn sm_enable(&mut self, e: &Element) -> Element {
        let resume = matches!(e.attr("resume"), Some("true") | Some("1"));
        let registered = match (&self.state, resume) {
            (C2sState::Bound(b), true) => Some(
                self.server
                    .state::<Registry>()
                    .register(b.full_jid().bare()),
            ),
            _ => None,
        };
        let mut enabled = Element::new("enabled", NS);
        if let Some((id, _)) = &registered {
            enabled.set_attr("id", id.clone());
            enabled.set_attr("resume", "true");
            enabled.set_attr(
                "max",
                self.server.config.resume_timeout.as_secs().to_string(),
            );
        }
        self.sm = Some(Box::new(Sm::new(registered)));
        enabled
    }

    /// Hands this connection to the detached session `previd` of `username`; gives the
    /// connection back (false) when there is no such session. `sasl2` is the XEP-0388
    /// `<success/>` the resumed session answers with.
    pub(super) async fn hand_over(
        &mut self,
        previd: &str,
        h: u32,
        username: &str,
        sasl2: Option<Element>,
    ) -> Result<bool, StreamError> {
        let account = BareJid::new(Some(username), &self.server.domain)
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
            sasl2,
        });
        match self
            .server
            .state::<Registry>()
            .resume(previd, &account, handoff)
        {
            Ok(()) => Ok(true),
            Err(back) => {
                self.transport = back.transport;
                self.reader = back.reader;
                self.tls = back.tls;
                self.guard = back.guard;
                self.lang = back.lang;
                Ok(false)
            }
        }
    }

    /// `<resume previd h/>` after authentication: hand this connection to the detached
    /// session, or say it cannot be resumed.
    async fn resume(&mut self, e: &Element, username: String) -> Result<Flow, StreamError> {
        let (Some(previd), Some(h)) = (
            e.attr("previd"),
            e.attr("h").and_then(|h| h.parse::<u32>().ok()),
        ) else {
            self.queue_element(
                &Element::new("failed", NS).with_child(Element::new("bad-request", ns::STANZAS)),
            );
            self.flush().await.map_err(io_error)?;
            return Ok(Flow::Continue);
        };
        if self.hand_over(previd, h, &username, None).await? {
            return Ok(Flow::End("handed over to the resumed session".into()));
        }
        self.queue_element(
            &Element::new("failed", NS).with_child(Element::new("item-not-found", ns::STANZAS)),
        );
        self.flush().await.map_err(io_error)?;
        Ok(Flow::Continue)
    }

    /// Sends `<r/>` (XEP-0198).
    pub(super) fn request_ack(&mut self) {
        if let Some(sm) = self.sm.as_mut() {
            sm.requested = true;
            self.out.push_str("<r xmlns='urn:xmpp:sm:3'/>");
            self.end_message();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_drop_from_the_front() {
        let mut sm = Sm::new(None);
        for s in ["<a1/>", "<a2/>", "<a3/>"] {
            sm.sent(s);
        }
        sm.requested = true;
        sm.ack(1).unwrap();
        assert_eq!(sm.unacked, ["<a2/>", "<a3/>"].map(Box::from));
        assert!(!sm.requested);
        // The same h again changes nothing.
        sm.ack(1).unwrap();
        assert_eq!(sm.unacked.len(), 2);
        sm.ack(3).unwrap();
        assert!(sm.unacked.is_empty());
        assert_eq!(sm.ack(4), Err(TooHigh { h: 4, sent: 3 }));
    }

    #[test]
    fn counters_wrap_around() {
        let mut sm = Sm::new(None);
        sm.sent = u32::MAX - 1;
        sm.sent("<x/>");
        sm.sent("<y/>");
        sm.sent("<z/>");
        assert_eq!(sm.sent, 1);
        // acked so far: u32::MAX - 1; the client has now handled two more.
        sm.ack(0).unwrap();
        assert_eq!(sm.unacked, ["<z/>"].map(Box::from));
    }

    #[test]
    fn registry_checks_the_account() {
        let reg = Registry::default();
        let mom = BareJid::parse("mom@localhost").unwrap();
        let dad = BareJid::parse("dad@localhost").unwrap();
        let (id, _rx) = reg.register(mom.clone());
        assert_eq!(id.len(), 30);
        let handoff = || {
            Box::new(Handoff {
                transport: Transport::Closed,
                reader: StreamReader::new(Default::default()),
                tls: None,
                guard: None,
                peer: "127.0.0.1:1".parse().unwrap(),
                conn_id: 2,
                h: 0,
                lang: None,
                sasl2: None,
            })
        };
        assert!(reg.resume(&id, &dad, handoff()).is_err());
        assert!(reg.resume("nope", &mom, handoff()).is_err());
        assert!(reg.resume(&id, &mom, handoff()).is_ok());
        reg.remove(&id);
        assert!(reg.resume(&id, &mom, handoff()).is_err());
    }
}
