//! The session, after Prosody's doc/session.txt, with its predicates held by the types.
//!
//! A connection starts [`C2sState::Unauthed`] (Prosody's `c2s_unauthed`), becomes
//! [`C2sState::Authed`] after SASL and [`C2sState::Bound`] after resource binding. Only a
//! [`Bound`] session has a full JID ("connected resource"); its `presence` ("available
//! resource") and `interested` ("interested resource") fields exist only inside `Bound`, so
//! every available or interested resource is a connected one by construction.

use crate::jid::{FullJid, Jid};
use crate::stanza::StreamError;
use crate::xml::Element;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Most stanzas waiting in one session's outbound queue; a consumer slower than this is
/// disconnected rather than allowed to grow memory without bound.
pub const QUEUE_LIMIT: usize = 2000;

/// What other tasks send to a session's queue.
#[derive(Debug)]
pub enum Outbound {
    /// A stanza to write to the client.
    Stanza(Element),
    /// Close the stream with this error.
    Close(StreamError),
}

/// How other tasks reach a bound session: `send(x)` and `close(reason)`.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    /// Process-unique id (the `c2s:N` in the log).
    pub id: u64,
    pub jid: FullJid,
    tx: smol::channel::Sender<Outbound>,
    queued: Arc<AtomicUsize>,
}

/// The receiving end, kept by the connection task.
pub struct SessionQueue {
    rx: smol::channel::Receiver<Outbound>,
    queued: Arc<AtomicUsize>,
}

impl SessionHandle {
    /// A handle and the queue its connection task reads.
    pub fn new(id: u64, jid: FullJid) -> (SessionHandle, SessionQueue) {
        // Unbounded channel: it allocates per use, not per capacity, so an idle session
        // holds no queue memory; the bound is enforced by `queued`.
        let (tx, rx) = smol::channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            SessionHandle {
                id,
                jid,
                tx,
                queued: queued.clone(),
            },
            SessionQueue { rx, queued },
        )
    }

    /// Queues a stanza for the client. Returns false if it could not be queued (see
    /// [`SessionHandle::deliver`]).
    pub fn send(&self, stanza: Element) -> bool {
        self.deliver(stanza).is_ok()
    }

    /// Queues a stanza for the client, or gives it back: when the session is gone, or
    /// when the client is not reading fast enough (the session is then closed with
    /// `policy-violation`, and its queue handed on as undelivered).
    pub fn deliver(&self, stanza: Element) -> Result<(), Element> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE_LIMIT {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.close(StreamError::with_text(
                crate::stanza::StreamCondition::PolicyViolation,
                "too many stanzas waiting for this client",
            ));
            return Err(stanza);
        }
        match self.tx.try_send(Outbound::Stanza(stanza)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                match e.into_inner() {
                    Outbound::Stanza(s) => Err(s),
                    Outbound::Close(_) => unreachable!("a stanza was sent"),
                }
            }
        }
    }

    /// Asks the session to close its stream with `error`.
    pub fn close(&self, error: StreamError) {
        let _ = self.tx.try_send(Outbound::Close(error));
    }
}

impl SessionQueue {
    /// The next outbound item; never ends while a handle exists.
    pub async fn recv(&self) -> Option<Outbound> {
        let item = self.rx.recv().await.ok()?;
        if matches!(item, Outbound::Stanza(_)) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Some(item)
    }

    /// Refuses anything new (senders get their stanza back) while what is queued can still
    /// be taken: the session is ending and hands its queue on.
    pub fn close(&self) {
        self.rx.close();
    }

    /// The next outbound item if one is waiting.
    pub fn try_recv(&self) -> Option<Outbound> {
        let item = self.rx.try_recv().ok()?;
        if matches!(item, Outbound::Stanza(_)) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Some(item)
    }
}

/// A bound session: a connected resource.
#[derive(Debug)]
pub struct Bound {
    pub handle: SessionHandle,
    /// Resource priority (RFC 6121 §4.7.2.3), default 0.
    pub priority: i8,
    /// The last undirected available presence; `Some` makes this an available resource.
    pub presence: Option<Element>,
    /// Fetched the roster: receives roster pushes.
    pub interested: bool,
    /// Where this session sent directed available presence (RFC 6121 §4.6), to be told
    /// when it goes unavailable.
    pub directed: HashSet<Jid>,
    /// Offline messages were delivered to this session.
    pub offline_delivered: bool,
}

impl Bound {
    pub fn new(handle: SessionHandle) -> Bound {
        Bound {
            handle,
            priority: 0,
            presence: None,
            interested: false,
            directed: HashSet::new(),
            offline_delivered: false,
        }
    }

    pub fn full_jid(&self) -> &FullJid {
        &self.handle.jid
    }
}

/// Where a client connection stands.
#[derive(Debug)]
pub enum C2sState {
    /// Connected, not authenticated (`c2s_unauthed`).
    Unauthed,
    /// Authenticated as `username`, no resource yet.
    Authed { username: String },
    /// A connected resource.
    Bound(Box<Bound>),
}
