//! Notifications (XEP-0163 §4.3, XEP-0060 §7.1.2): who receives a published item, filtered
//! by XEP-0115 `+notify` interests; last published items for resources that become
//! available or subscribe; the caps queries that learn those interests.

use super::{access, new_id, parse_stored, relation, Relation};
use crate::jid::{BareJid, FullJid, Jid};
use crate::modules::account_key;
use crate::modules::caps::{interested, Features, Waiter};
use crate::ns;
use crate::router::Core;
use crate::router::{blocks, send_to};
use crate::session::SessionHandle;
use crate::stanza::caps::Caps;
use crate::stanza::pubsub::{self, NodeConfig, SendLast, NS_EVENT};
use crate::storage::pep as store;
use crate::xml::Element;
use std::sync::Arc;

/// The priority of a presence (RFC 6121 §4.7.2.3), 0 if absent or invalid.
pub(super) fn priority(p: &Element) -> i8 {
    p.child("priority", ns::CLIENT)
        .and_then(|e| e.text().trim().parse().ok())
        .unwrap_or(0)
}

/// True if an available resource asked for notifications of `node` (XEP-0163 §4.2).
pub(super) fn wants(core: &Core, presence: Option<&Arc<Element>>, node: &str) -> bool {
    presence
        .and_then(|p| {
            core.state::<crate::modules::caps::CapsCache>()
                .of_presence(p)
        })
        .is_some_and(|f| interested(&f, node))
}

/// The sessions an event of `node` goes to (XEP-0163 §4.3): each available resource of
/// the owner, and each available resource with non-negative priority of each contact who
/// has a presence subscription to the owner and access to the node, if it asked for
/// `node+notify`; no one the owner blocks or who blocks the owner (§4.3.3 rule 3).
pub(super) async fn recipients(
    core: &Core,
    owner: &BareJid,
    node: &str,
    config: &NodeConfig,
) -> Vec<SessionHandle> {
    if !config.deliver_notifications {
        return Vec::new();
    }
    let mut out: Vec<SessionHandle> = core
        .sessions
        .available(owner)
        .into_iter()
        .filter(|r| wants(core, r.presence.as_ref(), node))
        .map(|r| r.handle)
        .collect();
    // Contacts here have a presence subscription: are they allowed in?
    if access(config.access_model, Relation::Contact { from: true }).is_err() {
        return out;
    }
    let roster = crate::modules::presence::roster_items(core, owner).await;
    let owner_jid = Jid::Bare(owner.clone());
    for it in roster.iter().filter(|i| i.in_roster && i.state.is_from()) {
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        let resources = core.sessions.available(&contact);
        if resources.is_empty()
            || core.is_blocked(owner, &Jid::Bare(contact.clone())).await
            || core
                .sessions
                .blocked(&contact)
                .is_some_and(|l| blocks(&l, &owner_jid))
        {
            continue;
        }
        out.extend(
            resources
                .into_iter()
                .filter(|r| r.priority >= 0 && wants(core, r.presence.as_ref(), node))
                .map(|r| r.handle),
        );
    }
    out
}

/// The available resources of contacts at other servers, as their presence told us
/// (bare JID → full JID → last available presence), bounded; and which of them got a
/// local account's last published items for which caps (so a presence update does not
/// send them again).
#[derive(Default)]
pub struct RemoteResources(
    std::sync::Mutex<RemoteMap>,
    std::sync::Mutex<std::collections::HashSet<(String, String, String)>>,
);

/// Bare JID → (full JID, last available presence).
type RemoteMap = std::collections::HashMap<String, Vec<(FullJid, Arc<Element>)>>;

/// Most remote accounts and resources per account remembered.
const REMOTE_ACCOUNTS: usize = 4096;
const REMOTE_RESOURCES: usize = 16;

impl RemoteResources {
    fn lock(&self) -> std::sync::MutexGuard<'_, RemoteMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `to` got `owner`'s last items for caps `ver`; false if it had.
    fn first_time(&self, owner: &BareJid, to: &FullJid, ver: &str) -> bool {
        let mut sent = self.1.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() >= REMOTE_ACCOUNTS * 4 {
            sent.clear();
        }
        sent.insert((owner.to_string(), to.to_string(), ver.to_owned()))
    }

    /// Forgets what `to` got (it went unavailable: it gets the last items when it is back).
    fn forget_sent(&self, to: &FullJid) {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, j, _)| j != to.as_str());
    }

    /// The last available presence of a remote resource, if it is available.
    fn presence_of(&self, full: &FullJid) -> Option<Arc<Element>> {
        self.lock()
            .get(full.bare_str())
            .and_then(|l| l.iter().find(|(j, _)| j == full).map(|(_, p)| p.clone()))
    }

    /// The remembered resources of `contact`.
    pub fn of(&self, contact: &BareJid) -> Vec<(FullJid, Arc<Element>)> {
        self.lock()
            .get(contact.as_str())
            .cloned()
            .unwrap_or_default()
    }
}

/// Event (presence from another server): remembers a remote resource's available
/// presence (forgets it when unavailable) and learns its caps (XEP-0115) with a
/// `disco#info` query, so that notifications reach it (XEP-0163 §4.3 across servers);
/// once they are known, a newly seen resource gets the last published items of the local
/// account its presence went to, for the nodes it asks for (§4.3.4).
pub(super) async fn remote_presence(core: &Arc<Core>, from: &FullJid, presence: &Element) {
    let available = presence.attr("type").is_none();
    if !available {
        core.state::<RemoteResources>().forget_sent(from);
    }
    {
        let state = core.state::<RemoteResources>();
        let mut map = state.lock();
        let bare = from.bare().to_string();
        if available {
            if !map.contains_key(&bare) && map.len() >= REMOTE_ACCOUNTS {
                return;
            }
            let list = map.entry(bare).or_default();
            list.retain(|(j, _)| j != from);
            if list.len() >= REMOTE_RESOURCES {
                list.remove(0);
            }
            list.push((from.clone(), Arc::new(presence.clone())));
        } else {
            if let Some(list) = map.get_mut(&bare) {
                list.retain(|(j, _)| j != from);
                if list.is_empty() {
                    map.remove(&bare);
                }
            }
            return;
        }
    }
    let Some(caps) = Caps::of_presence(presence) else {
        return;
    };
    let owner = presence
        .attr("to")
        .and_then(|t| Jid::parse(t).ok())
        .map(|j| j.to_bare())
        .filter(|o| o.domain() == core.domain);
    let cache = core.state::<crate::modules::caps::CapsCache>();
    if let Some(features) = cache.features(&caps) {
        if let Some(owner) = owner {
            remote_last_items(core, &owner, from, presence, &caps, &features).await;
        }
        return;
    }
    let waiter = Waiter {
        jid: from.clone(),
        session: 0,
        before: None,
        owner,
    };
    if let Some(query) = cache.request(&caps, waiter, &core.domain) {
        send_to(core, query);
    }
}

/// Sends a resource at another server the last published items of `owner`'s nodes that
/// its caps ask for and that it may see, once per caps while it stays available.
async fn remote_last_items(
    core: &Core,
    owner: &BareJid,
    to: &FullJid,
    presence: &Element,
    caps: &Caps,
    features: &Arc<Features>,
) {
    if priority(presence) < 0
        || !core
            .state::<RemoteResources>()
            .first_time(owner, to, &caps.ver)
    {
        return;
    }
    for (event, published) in last_events(core, owner, &to.bare(), features, None, false).await {
        send_to(
            core,
            event_message(core, owner, to.as_str(), &event, Some(published)),
        );
    }
}

/// The resources at other servers an event of `owner`'s `node` goes to: those of contacts
/// with a presence subscription to the owner whose caps ask for `node+notify`.
async fn remote_recipients(
    core: &Core,
    owner: &BareJid,
    node: &str,
    config: &NodeConfig,
) -> Vec<FullJid> {
    if !config.deliver_notifications
        || access(config.access_model, Relation::Contact { from: true }).is_err()
    {
        return Vec::new();
    }
    let roster = crate::modules::presence::roster_items(core, owner).await;
    let mut out = Vec::new();
    for it in roster.iter().filter(|i| i.in_roster && i.state.is_from()) {
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        if contact.domain() == core.domain
            || core.is_blocked(owner, &Jid::Bare(contact.clone())).await
        {
            continue;
        }
        for (full, presence) in core.state::<RemoteResources>().of(&contact) {
            if priority(&presence) >= 0 && wants(core, Some(&presence), node) {
                out.push(full);
            }
        }
    }
    out
}

/// Sends `event` from the owner's bare JID (XEP-0163 §4.3.1) to each session, as a
/// headline message; `delay` stamps a last published item with its publication time.
pub(super) fn send_event(
    core: &Core,
    owner: &BareJid,
    to: &[SessionHandle],
    event: &Element,
    delay: Option<i64>,
) {
    for h in to {
        send_to(
            core,
            event_message(core, owner, h.jid.as_str(), event, delay),
        );
    }
}

/// The headline message that carries `event` from `owner` to `to`.
fn event_message(
    core: &Core,
    owner: &BareJid,
    to: &str,
    event: &Element,
    delay: Option<i64>,
) -> Element {
    let mut m = Element::new("message", ns::CLIENT)
        .with_attr("from", owner.to_string())
        .with_attr("to", to)
        .with_attr("type", "headline")
        .with_attr("id", new_id())
        .with_child(event.clone());
    if let Some(t) = delay {
        m.push(
            Element::new("delay", crate::ns::DELAY)
                .with_attr("from", core.domain.clone())
                .with_attr("stamp", crate::util::datetime::format(t)),
        );
    }
    m
}

/// One notification per published item, with the payload unless the node says not to
/// (`pubsub#deliver_payloads`).
pub(super) async fn notify_items(
    core: &Core,
    owner: &BareJid,
    node: &str,
    config: &NodeConfig,
    published: Vec<(String, Element)>,
) {
    if published.is_empty() {
        return;
    }
    let to = recipients(core, owner, node, config).await;
    let remote = remote_recipients(core, owner, node, config).await;
    if to.is_empty() && remote.is_empty() {
        return;
    }
    for (id, payload) in published {
        let payload = config.deliver_payloads.then_some(payload);
        let event = pubsub::event_items(node, vec![pubsub::item(NS_EVENT, &id, payload)]);
        send_event(core, owner, &to, &event, None);
        for full in &remote {
            send_to(
                core,
                Element::new("message", ns::CLIENT)
                    .with_attr("from", owner.to_string())
                    .with_attr("to", full.to_string())
                    .with_attr("type", "headline")
                    .with_attr("id", new_id())
                    .with_child(event.clone()),
            );
        }
    }
}

/// Sends a session the last published item of each node it may see and asked for
/// (XEP-0163 §4.3.4), from its own account and from each contact whose presence it
/// receives; interests already in `before` (its previous presence's) are not new.
pub(super) async fn send_last_items(
    core: &Arc<Core>,
    to: &SessionHandle,
    features: &Arc<Features>,
    before: Option<Arc<Features>>,
) {
    let me = to.jid.bare();
    let roster = crate::modules::presence::roster_items(core, &me).await;
    let mut owners = vec![me];
    owners.extend(
        roster
            .iter()
            .filter(|i| i.in_roster && i.state.is_to())
            .filter_map(|i| BareJid::parse(&i.contact).ok())
            .filter(|c| c.domain() == core.domain),
    );
    for owner in owners {
        last_items_of(core, &owner, to, features, before.clone(), false).await;
    }
}

/// Sends a session the last published item of each of `owner`'s nodes that it may see,
/// that it newly asked for (beyond `before`), and that sends its last item on presence
/// (or, `on_subscription`, on a new subscription too): if the session's account is the
/// owner or has a presence subscription to it, and neither blocks the other.
pub(super) async fn last_items_of(
    core: &Core,
    owner: &BareJid,
    to: &SessionHandle,
    features: &Arc<Features>,
    before: Option<Arc<Features>>,
    on_subscription: bool,
) {
    let me = to.jid.bare();
    for (event, published) in last_events(core, owner, &me, features, before, on_subscription).await
    {
        send_event(
            core,
            owner,
            std::slice::from_ref(to),
            &event,
            Some(published),
        );
    }
}

/// The events (with their publication times) carrying the last published item of each of
/// `owner`'s nodes that `me` may see, newly asked for (beyond `before`), and sent on
/// presence (or, `on_subscription`, on a new subscription too).
async fn last_events(
    core: &Core,
    owner: &BareJid,
    me: &BareJid,
    features: &Arc<Features>,
    before: Option<Arc<Features>>,
    on_subscription: bool,
) -> Vec<(Element, i64)> {
    let relation = relation(core, owner, me).await;
    if let Relation::Contact { from: false } | Relation::Stranger = relation {
        return Vec::new();
    }
    if relation != Relation::Owner
        && (core.is_blocked(owner, &Jid::Bare(me.clone())).await
            || core
                .sessions
                .blocked(me)
                .is_some_and(|l| blocks(&l, &Jid::Bare(owner.clone()))))
    {
        return Vec::new();
    }
    let (host, user) = account_key(owner);
    let features = features.clone();
    let last = core
        .storage
        .call(move |c| {
            let mut out = Vec::new();
            for (node, config) in store::nodes(c, &host, &user)? {
                let new_interest = interested(&features, &node)
                    && !before.as_ref().is_some_and(|b| interested(b, &node));
                let when = match config.send_last {
                    SendLast::OnSubAndPresence => true,
                    SendLast::OnSub => on_subscription,
                    SendLast::Never => false,
                };
                if !new_interest
                    || !when
                    || !config.persist_items
                    || !config.deliver_notifications
                    || access(config.access_model, relation).is_err()
                {
                    continue;
                }
                if let Some(item) = store::last_item(c, &host, &user, &node)? {
                    out.push((node, config, item));
                }
            }
            Ok(out)
        })
        .await
        .unwrap_or_else(|e| {
            log::error!("storage: {e}");
            Vec::new()
        });
    last.into_iter()
        .map(|(node, config, item)| {
            let payload = if config.deliver_payloads {
                parse_stored(&item.xml)
            } else {
                None
            };
            let event = pubsub::event_items(&node, vec![pubsub::item(NS_EVENT, &item.id, payload)]);
            (event, item.published)
        })
        .collect()
}

/// Event (subscription approved): `subscriber` now has a presence subscription to `owner`,
/// an automatic PEP subscription (XEP-0163 §4.1): its available resources get the owner's
/// last published items they asked for (§4.3.4, "all new subscribers").
pub(super) async fn subscribed(core: &Core, owner: &BareJid, subscriber: &BareJid) {
    for r in core.sessions.available(subscriber) {
        let features = r.presence.as_ref().and_then(|p| {
            core.state::<crate::modules::caps::CapsCache>()
                .of_presence(p)
        });
        if let (true, Some(features)) = (r.priority >= 0, features) {
            last_items_of(core, owner, &r.handle, &features, None, true).await;
        }
    }
}

/// Event (presence broadcast): a resource sent available presence. Once its caps are known
/// (asked of it with `disco#info` if they are new), it gets the last published items of
/// the nodes it newly asked for, if its priority is non-negative (XEP-0163 §4.3.3 rule 2).
pub(super) async fn available(
    core: &Arc<Core>,
    handle: &SessionHandle,
    presence: &Element,
    previous: Option<&Element>,
) {
    if priority(presence) < 0 {
        return;
    }
    let Some(caps) = Caps::of_presence(presence) else {
        return;
    };
    let previous = previous.filter(|p| priority(p) >= 0);
    if previous.is_some_and(|p| Caps::of_presence(p).as_ref() == Some(&caps)) {
        return;
    }
    let before = previous.and_then(|p| {
        core.state::<crate::modules::caps::CapsCache>()
            .of_presence(p)
    });
    match core
        .state::<crate::modules::caps::CapsCache>()
        .features(&caps)
    {
        Some(features) => send_last_items(core, handle, &features, before).await,
        None => {
            let waiter = Waiter {
                jid: handle.jid.clone(),
                session: handle.id,
                before,
                owner: None,
            };
            if let Some(query) =
                core.state::<crate::modules::caps::CapsCache>()
                    .request(&caps, waiter, &core.domain)
            {
                send_to(core, query);
            }
        }
    }
}

/// Event (router): an IQ result or error addressed to the server, from `from`. Answers to
/// our caps queries fill the cache; the resources that waited for them get their last
/// published items if they still announce those caps.
pub(super) async fn iq_response(core: &Arc<Core>, from: &FullJid, iq: &Element) {
    let Some(answered) = core
        .state::<crate::modules::caps::CapsCache>()
        .answer(iq, from)
    else {
        return;
    };
    for w in answered.waiters {
        if let (0, Some(owner)) = (w.session, &w.owner) {
            // A resource at another server, if it still announces these caps.
            let presence = core.state::<RemoteResources>().presence_of(&w.jid);
            if let Some(p) =
                presence.filter(|p| Caps::of_presence(p).as_ref() == Some(&answered.caps))
            {
                remote_last_items(core, owner, &w.jid, &p, &answered.caps, &answered.features)
                    .await;
            }
            continue;
        }
        let Some(r) = core
            .sessions
            .resources(&w.jid.bare())
            .into_iter()
            .find(|r| r.handle.id == w.session)
        else {
            continue;
        };
        let still = r.presence.as_ref().is_some_and(|p| {
            priority(p) >= 0 && Caps::of_presence(p).as_ref() == Some(&answered.caps)
        });
        if still {
            send_last_items(core, &r.handle, &answered.features, w.before).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_default_to_zero() {
        let p = |x: &str| {
            crate::xml::parse::parse_element(
                &crate::xml::parse::Scope::client(),
                format!("<presence>{x}</presence>").as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(priority(&p("")), 0);
        assert_eq!(priority(&p("<priority>-1</priority>")), -1);
        assert_eq!(priority(&p("<priority>5</priority>")), 5);
        assert_eq!(priority(&p("<priority>x</priority>")), 0);
    }
}
