//! XEP-0115 Entity Capabilities of our clients, for the filtered notifications of XEP-0163
//! (§4.2, XEP-0060 §9.2): a cache of verified `ver` → features, filled by asking a resource
//! (`disco#info` on `node#ver`, from the server to its full JID) the first time its `ver`
//! is seen. A resource's own caps are its current presence in the router, so nothing here
//! has to be forgotten when it goes away.

use crate::jid::FullJid;
use crate::ns;
use crate::stanza::caps::{self, Caps};
use crate::stanza::IqType;
use crate::xml::Element;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most `ver`s remembered; the oldest is forgotten first. Clients of a family share a
/// handful of them.
pub const MAX_KNOWN: usize = 256;
/// Most `disco#info` queries in flight.
pub const MAX_PENDING: usize = 64;
/// How long a query may go unanswered before it is forgotten.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The verified features of one `ver`.
pub type Features = HashSet<String>;

/// True if `features` ask for notifications of `node` (`node+notify`, XEP-0163 §4.2).
pub fn interested(features: &Features, node: &str) -> bool {
    // One allocation per check; features sets are small and checks rare.
    features.contains(&format!("{node}+notify"))
}

/// A resource waiting for its caps to be known.
#[derive(Clone, Debug)]
pub struct Waiter {
    pub jid: FullJid,
    /// Its session id (a reconnect with the same full JID is another session).
    pub session: u64,
    /// The features of its previous presence, if they were known: only interests beyond
    /// them are new.
    pub before: Option<Arc<Features>>,
    /// A resource at another server (session 0): the local account its presence went
    /// to, whose last published items it gets once its caps are known.
    pub owner: Option<crate::jid::BareJid>,
}

struct Pending {
    caps: Caps,
    asked: FullJid,
    since: Instant,
    waiters: Vec<Waiter>,
}

#[derive(Default)]
struct Inner {
    known: HashMap<Caps, Arc<Features>>,
    order: VecDeque<Caps>,
    pending: HashMap<String, Pending>,
    next_id: u64,
}

/// A verified answer and the resources that waited for it.
pub struct Answered {
    pub caps: Caps,
    pub features: Arc<Features>,
    pub waiters: Vec<Waiter>,
}

/// The server's caps cache.
#[derive(Default)]
pub struct CapsCache {
    inner: Mutex<Inner>,
}

impl CapsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verified features of `caps`, if known.
    pub fn features(&self, caps: &Caps) -> Option<Arc<Features>> {
        self.lock().known.get(caps).cloned()
    }

    /// The verified features announced by a presence, if it has caps and they are known.
    pub fn of_presence(&self, presence: &Element) -> Option<Arc<Features>> {
        self.features(&Caps::of_presence(presence)?)
    }

    /// Remembers verified features (for tests and for answers).
    pub fn insert(&self, caps: Caps, features: Features) -> Arc<Features> {
        let mut inner = self.lock();
        let features = Arc::new(features);
        if inner.known.insert(caps.clone(), features.clone()).is_none() {
            inner.order.push_back(caps);
            while inner.order.len() > MAX_KNOWN {
                if let Some(old) = inner.order.pop_front() {
                    inner.known.remove(&old);
                }
            }
        }
        features
    }

    /// Registers `waiter` for `caps`. Returns the `disco#info` query to send to the waiter
    /// (from `domain`) if none is in flight for these caps yet; `None` if one is (the waiter
    /// is told with the others) or too many are.
    pub fn request(&self, caps: &Caps, waiter: Waiter, domain: &str) -> Option<Element> {
        let mut inner = self.lock();
        let now = Instant::now();
        inner
            .pending
            .retain(|_, p| now.duration_since(p.since) < QUERY_TIMEOUT);
        if let Some(p) = inner.pending.values_mut().find(|p| p.caps == *caps) {
            if !p.waiters.iter().any(|w| {
                w.session == waiter.session && w.jid == waiter.jid && w.owner == waiter.owner
            }) {
                p.waiters.push(waiter);
            }
            return None;
        }
        if inner.pending.len() >= MAX_PENDING {
            log::warn!(
                "caps: too many disco#info queries in flight; not asking {}",
                waiter.jid
            );
            return None;
        }
        inner.next_id += 1;
        let id = format!("caps{}", inner.next_id);
        let query = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.clone())
            .with_attr("from", domain)
            .with_attr("to", waiter.jid.to_string())
            .with_child(Element::new("query", ns::DISCO_INFO).with_attr("node", caps.query_node()));
        inner.pending.insert(
            id,
            Pending {
                caps: caps.clone(),
                asked: waiter.jid.clone(),
                since: now,
                waiters: vec![waiter],
            },
        );
        Some(query)
    }

    /// An IQ result or error from `from` addressed to the server: if it answers one of our
    /// queries, it is checked against the `ver` (a lie or a mistake is never cached) and
    /// the verified features are remembered. Returns them with the waiting resources.
    pub fn answer(&self, iq: &Element, from: &FullJid) -> Option<Answered> {
        let id = iq.attr("id")?;
        let pending = {
            let mut inner = self.lock();
            if inner.pending.get(id).is_none_or(|p| p.asked != *from) {
                return None;
            }
            inner.pending.remove(id)?
        };
        let checked = match (IqType::of(iq), iq.child("query", ns::DISCO_INFO)) {
            (Some(IqType::Result), Some(q)) => {
                caps::verify(q, &pending.caps).map_err(|e| e.to_string())
            }
            _ => Err("no disco#info result".to_owned()),
        };
        match checked {
            Ok(features) => {
                let features = self.insert(pending.caps.clone(), features.into_iter().collect());
                Some(Answered {
                    caps: pending.caps,
                    features,
                    waiters: pending.waiters,
                })
            }
            Err(e) => {
                log::debug!("caps: {from} did not confirm {}: {e}", pending.caps.ver);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::caps::Algo;
    use crate::stanza::disco::{DiscoInfo, Identity};

    fn client_info(features: &[&str]) -> DiscoInfo {
        DiscoInfo {
            node: None,
            identities: vec![Identity::new("client", "phone", Some("Test"))],
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn caps_of(info: &DiscoInfo) -> Caps {
        Caps {
            algo: Algo::Sha1,
            node: "https://client.example".into(),
            ver: info.caps_ver(),
        }
    }

    fn waiter(jid: &str, session: u64) -> Waiter {
        Waiter {
            jid: FullJid::parse(jid).unwrap(),
            session,
            before: None,
            owner: None,
        }
    }

    fn answer_to(query: &Element, info: &DiscoInfo) -> Element {
        let mut q = Element::from(info);
        q.set_attr("node", query.first_element().unwrap().attr("node").unwrap());
        Element::new("iq", ns::CLIENT)
            .with_attr("type", "result")
            .with_attr("id", query.attr("id").unwrap())
            .with_attr("from", query.attr("to").unwrap())
            .with_attr("to", "localhost")
            .with_child(q)
    }

    #[test]
    fn interest_is_the_notify_feature() {
        let f: Features = ["urn:xmpp:avatar:metadata+notify", "urn:xmpp:avatar:data"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert!(interested(&f, "urn:xmpp:avatar:metadata"));
        assert!(!interested(&f, "urn:xmpp:avatar:data"));
        assert!(!interested(&f, "http://jabber.org/protocol/nick"));
    }

    #[test]
    fn one_query_per_ver_and_a_verified_answer_is_cached() {
        let cache = CapsCache::default();
        let info = client_info(&["http://jabber.org/protocol/nick+notify"]);
        let caps = caps_of(&info);
        let q = cache
            .request(&caps, waiter("dad@localhost/phone", 1), "localhost")
            .expect("a query");
        assert_eq!(q.attr("to"), Some("dad@localhost/phone"));
        assert_eq!(q.attr("from"), Some("localhost"));
        assert_eq!(
            q.first_element().unwrap().attr("node"),
            Some(caps.query_node().as_str())
        );
        // A second resource with the same ver waits for the same answer.
        assert!(cache
            .request(&caps, waiter("kid@localhost/tablet", 2), "localhost")
            .is_none());
        // Someone else answering our query is ignored.
        let a = answer_to(&q, &info);
        assert!(cache
            .answer(&a, &FullJid::parse("kid@localhost/tablet").unwrap())
            .is_none());
        let got = cache
            .answer(&a, &FullJid::parse("dad@localhost/phone").unwrap())
            .expect("verified");
        assert!(interested(&got.features, "http://jabber.org/protocol/nick"));
        assert_eq!(got.waiters.len(), 2);
        assert!(cache.features(&caps).is_some());
        // Answered once: a replay is not ours any more.
        assert!(cache
            .answer(&a, &FullJid::parse("dad@localhost/phone").unwrap())
            .is_none());
    }

    #[test]
    fn a_lie_is_not_cached() {
        let cache = CapsCache::default();
        let honest = client_info(&["urn:xmpp:ping"]);
        let caps = caps_of(&honest);
        let q = cache
            .request(&caps, waiter("dad@localhost/phone", 1), "localhost")
            .unwrap();
        let lie = client_info(&["urn:xmpp:ping", "urn:xmpp:avatar:metadata+notify"]);
        let a = answer_to(&q, &lie);
        assert!(cache
            .answer(&a, &FullJid::parse("dad@localhost/phone").unwrap())
            .is_none());
        assert!(cache.features(&caps).is_none());
        // An error answer is not cached either, and frees the slot for a new query.
        let q = cache
            .request(&caps, waiter("dad@localhost/phone", 1), "localhost")
            .expect("asked again");
        let err = Element::new("iq", ns::CLIENT)
            .with_attr("type", "error")
            .with_attr("id", q.attr("id").unwrap());
        assert!(cache
            .answer(&err, &FullJid::parse("dad@localhost/phone").unwrap())
            .is_none());
        assert!(cache.features(&caps).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = CapsCache::default();
        for i in 0..MAX_KNOWN + 10 {
            let caps = Caps {
                algo: Algo::Sha1,
                node: "n".into(),
                ver: format!("v{i}"),
            };
            cache.insert(caps, Features::new());
        }
        let inner = cache.lock();
        assert_eq!(inner.known.len(), MAX_KNOWN);
        assert!(!inner.known.keys().any(|c| c.ver == "v0"));
    }
}
