//! The session, after Prosody's doc/session.txt, with its predicates held by the types.
//!
//! A connection starts [`C2sState::Unauthed`] (Prosody's `c2s_unauthed`), becomes
//! [`C2sState::Authed`] after SASL and [`C2sState::Bound`] after resource binding. Only a
//! [`Bound`] session has a full JID ("connected resource") and an entry in the router's
//! table; its `presence` ("available resource") and `interested` ("interested resource")
//! exist only in that entry, so every available or interested resource is a connected
//! one by construction.

use crate::jid::FullJid;
use crate::stanza::StreamError;
use crate::xml::Element;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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
pub struct SessionHandle {
    /// Process-unique id (the `c2s:N` in the log).
    pub id: u64,
    pub jid: FullJid,
    shared: Arc<Shared>,
}

/// The receiving end, kept by the connection task.
pub struct SessionQueue {
    shared: Arc<Shared>,
}

/// One session's outbound queue: a `VecDeque` behind a mutex and the waker of the one
/// task that reads it. An idle session's queue holds no buffer (the deque is replaced by
/// an empty one whenever the reader finds it drained), unlike a channel, which keeps its
/// first block of slots for good.
struct Shared {
    state: Mutex<State>,
    /// Live `SessionHandle`s: with none left nothing more can come. Outside the mutex:
    /// the router clones handles on every delivery.
    handles: AtomicUsize,
}

struct State {
    items: VecDeque<Outbound>,
    /// How many of `items` are stanzas (the rest is at most one `Close`).
    stanzas: usize,
    /// A `Close` is waiting in `items`: a later one would never be read.
    close_queued: bool,
    /// The receiving end refuses new items (it closed, or is gone).
    closed: bool,
    /// The reading task, waiting for an item.
    waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in the critical sections can leave the state half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Queues `item` and returns the waker to wake once the lock is released.
    fn push(&mut self, item: Outbound) -> Option<Waker> {
        match &item {
            Outbound::Stanza(_) => self.stanzas += 1,
            Outbound::Close(_) => self.close_queued = true,
        }
        self.items.push_back(item);
        self.waker.take()
    }

    /// Wakes `cx`'s task at the next item. The waker is cloned only when it changed:
    /// waiting again costs nothing.
    fn wait(&mut self, cx: &Context<'_>) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }

    /// The oldest item. When there is none the buffer is given back.
    fn pop(&mut self) -> Option<Outbound> {
        let Some(item) = self.items.pop_front() else {
            if self.items.capacity() > 0 {
                self.items = VecDeque::new();
            }
            return None;
        };
        match &item {
            Outbound::Stanza(_) => self.stanzas -= 1,
            Outbound::Close(_) => self.close_queued = false,
        }
        Some(item)
    }
}

impl SessionHandle {
    /// A handle and the queue its connection task reads.
    pub fn new(id: u64, jid: FullJid) -> (SessionHandle, SessionQueue) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                stanzas: 0,
                close_queued: false,
                closed: false,
                waker: None,
            }),
            handles: AtomicUsize::new(1),
        });
        (
            SessionHandle {
                id,
                jid,
                shared: shared.clone(),
            },
            SessionQueue { shared },
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
        let mut state = self.shared.lock();
        if state.closed {
            return Err(stanza);
        }
        if state.stanzas >= QUEUE_LIMIT {
            drop(state);
            self.close(StreamError::with_text(
                crate::stanza::StreamCondition::PolicyViolation,
                "too many stanzas waiting for this client",
            ));
            return Err(stanza);
        }
        let waker = state.push(Outbound::Stanza(stanza));
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Asks the session to close its stream with `error`. Only the first request counts:
    /// the session ends at it.
    pub fn close(&self, error: StreamError) {
        let mut state = self.shared.lock();
        if state.closed || state.close_queued {
            return;
        }
        let waker = state.push(Outbound::Close(error));
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Clone for SessionHandle {
    fn clone(&self) -> SessionHandle {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        SessionHandle {
            id: self.id,
            jid: self.jid.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a waiting reader learns that nothing more will come. The
            // reader checks the count under the lock, so taking the waker under it cannot
            // miss a reader about to sleep.
            let waker = self.shared.lock().waker.take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.id)
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

impl SessionQueue {
    /// The next outbound item; `None` once the queue is closed and drained, or no handle
    /// is left to send anything.
    pub async fn recv(&self) -> Option<Outbound> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`SessionQueue::recv`] as a poll: the next item, or a wake-up of `cx`'s task when
    /// one comes. Nothing is allocated to wait.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.pop() {
            return Poll::Ready(Some(item));
        }
        if state.closed || self.shared.handles.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        state.wait(cx);
        Poll::Pending
    }

    /// Refuses anything new (senders get their stanza back) while what is queued can still
    /// be taken: the session is ending and hands its queue on.
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// The next outbound item if one is waiting.
    pub fn try_recv(&self) -> Option<Outbound> {
        self.shared.lock().pop()
    }

    /// Waits, leaving them queued, until more than `seen` stanzas wait (a hibernating
    /// session watching what comes for it); returns how many do.
    pub async fn more_than(&self, seen: usize) -> usize {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.stanzas > seen {
                return Poll::Ready(state.stanzas);
            }
            state.wait(cx);
            Poll::Pending
        })
        .await
    }

    /// How many stanzas wait, and a copy of the newest.
    pub fn waiting(&self) -> (usize, Option<Element>) {
        let state = self.shared.lock();
        let newest = state.items.iter().rev().find_map(|i| match i {
            Outbound::Stanza(e) => Some(e.clone()),
            Outbound::Close(_) => None,
        });
        (state.stanzas, newest)
    }
}

impl Drop for SessionQueue {
    /// Nobody will read what is queued: refuse more and free it.
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.waker = None;
        let items = std::mem::take(&mut state.items);
        state.stanzas = 0;
        state.close_queued = false;
        drop(state);
        drop(items);
    }
}

/// A bound session: a connected resource. Its routing state (priority, presence,
/// interest — the seed's three predicates) lives once, in the router's table
/// (`router::Sessions`); features keep their per-session state themselves.
#[derive(Debug)]
pub struct Bound {
    pub handle: SessionHandle,
}

impl Bound {
    pub fn new(handle: SessionHandle) -> Bound {
        Bound { handle }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::StreamCondition;

    fn queue() -> (SessionHandle, SessionQueue) {
        SessionHandle::new(1, FullJid::parse("mom@localhost/pc").unwrap())
    }

    fn msg(n: usize) -> Element {
        Element::new("message", crate::ns::CLIENT).with_attr("id", n.to_string())
    }

    fn id(item: Option<Outbound>) -> String {
        match item {
            Some(Outbound::Stanza(e)) => e.attr("id").unwrap().to_string(),
            other => panic!("not a stanza: {other:?}"),
        }
    }

    fn capacity(q: &SessionQueue) -> usize {
        q.shared.lock().items.capacity()
    }

    #[test]
    fn items_come_out_in_order_and_a_drained_queue_holds_no_buffer() {
        let (h, q) = queue();
        assert_eq!(capacity(&q), 0);
        for n in 0..10 {
            assert!(h.send(msg(n)));
        }
        h.close(StreamError::new(StreamCondition::Conflict));
        assert!(capacity(&q) >= 11);
        for n in 0..10 {
            assert_eq!(id(smol::block_on(q.recv())), n.to_string());
        }
        assert!(matches!(
            q.try_recv(),
            Some(Outbound::Close(StreamError {
                condition: StreamCondition::Conflict,
                ..
            }))
        ));
        assert!(q.try_recv().is_none());
        assert_eq!(capacity(&q), 0);
    }

    #[test]
    fn a_full_queue_gives_the_stanza_back_and_closes_with_policy_violation() {
        let (h, q) = queue();
        for n in 0..QUEUE_LIMIT {
            assert!(h.deliver(msg(n)).is_ok());
        }
        let back = h.deliver(msg(QUEUE_LIMIT)).unwrap_err();
        assert_eq!(back.attr("id"), Some(QUEUE_LIMIT.to_string().as_str()));
        assert!(h.deliver(msg(QUEUE_LIMIT + 1)).is_err());
        // Only the first close counts: the session ends at it.
        h.close(StreamError::new(StreamCondition::Conflict));
        for n in 0..QUEUE_LIMIT {
            assert_eq!(id(q.try_recv()), n.to_string());
        }
        match q.try_recv() {
            Some(Outbound::Close(e)) => assert_eq!(e.condition, StreamCondition::PolicyViolation),
            other => panic!("expected the close: {other:?}"),
        }
        assert!(q.try_recv().is_none());
        // Taken: there is room again.
        assert!(h.send(msg(0)));
    }

    #[test]
    fn a_closed_queue_refuses_new_stanzas_and_hands_on_the_queued_ones() {
        let (h, q) = queue();
        assert!(h.send(msg(1)));
        q.close();
        let back = h.deliver(msg(2)).unwrap_err();
        assert_eq!(back.attr("id"), Some("2"));
        h.close(StreamError::new(StreamCondition::Conflict));
        assert_eq!(id(q.try_recv()), "1");
        assert!(q.try_recv().is_none());
        assert!(smol::block_on(q.recv()).is_none());
    }

    #[test]
    fn a_dropped_queue_refuses_stanzas() {
        let (h, q) = queue();
        assert!(h.send(msg(1)));
        drop(q);
        assert!(h.deliver(msg(2)).is_err());
        assert_eq!(h.shared.lock().items.len(), 0);
    }

    #[test]
    fn recv_waits_for_a_stanza_from_another_thread() {
        let (h, q) = queue();
        let sender = std::thread::spawn(move || {
            for n in 0..100 {
                assert!(h.send(msg(n)));
            }
        });
        for n in 0..100 {
            assert_eq!(id(smol::block_on(q.recv())), n.to_string());
        }
        sender.join().unwrap();
    }

    #[test]
    fn recv_ends_when_the_last_handle_is_dropped() {
        let (h, q) = queue();
        let h2 = h.clone();
        assert!(h2.send(msg(1)));
        drop(h);
        let dropper = std::thread::spawn(move || drop(h2));
        assert_eq!(id(smol::block_on(q.recv())), "1");
        assert!(smol::block_on(q.recv()).is_none());
        dropper.join().unwrap();
    }
}
