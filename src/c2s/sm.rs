//! XEP-0198 Stream Management: counters, the queue of unacknowledged stanzas, and the
//! hand-over of a new connection to a detached session on resumption.
//!
//! A session that enabled resumption keeps its task alive when its connection breaks
//! ("detached"). A new connection that authenticates as the same account and sends
//! `<resume previd='…'/>` hands its transport over to that task through the registry
//! below; the session goes on where it was, resending what the client had not acknowledged.

use crate::jid::BareJid;
use crate::net::tls::Loaded;
use crate::net::Transport;
use crate::router::ConnGuard;
use crate::xml::reader::StreamReader;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
            })
        };
        assert!(reg.resume(&id, &dad, handoff()).is_err());
        assert!(reg.resume("nope", &mom, handoff()).is_err());
        assert!(reg.resume(&id, &mom, handoff()).is_ok());
        reg.remove(&id);
        assert!(reg.resume(&id, &mom, handoff()).is_err());
    }
}
