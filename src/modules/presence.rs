//! Presence (RFC 6121 §3 subscriptions, §4 exchanging presence): broadcasts to subscribers,
//! probes answered from the router's table, directed presence, the subscription state
//! machine of Appendix A applied to both rosters, and the pending requests of §3.1.3.

use super::roster::push_item;
use super::Ctx;
use super::{account_key, storage_failed};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::{blocks, send_to, Core, Dest, Event, FilterPoint};
use crate::session::SessionHandle;
use crate::stanza::{PresenceType, StanzaCondition, StanzaError};
use crate::storage::roster::{self as store, Item};
use crate::subscription::Kind;
use crate::xml::Element;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;

/// Where a presence is going: the JID its `to` names (a local or remote one), or `None`
/// for the server itself.
fn target(dest: &Dest) -> Option<Jid> {
    match dest {
        Dest::Bare(b) => Some(Jid::Bare(b.clone())),
        Dest::Full(f) => Some(Jid::Full(f.clone())),
        Dest::Remote(j) | Dest::Service(j) => Some(j.clone()),
        _ => None,
    }
}

/// Handles a presence stanza (its `from` stamped): from a local session, the user's side
/// of RFC 6121 (broadcast, directed presence, subscriptions, probes); from anyone else,
/// the contact's side (delivery, subscription state, probe answers).
pub async fn route(ctx: &mut Ctx<'_>, presence: Element, dest: Dest) {
    let Some(session) = ctx.session() else {
        return from_elsewhere(ctx, presence, dest).await;
    };
    match PresenceType::of(&presence) {
        Some(PresenceType::Available | PresenceType::Unavailable) => {
            match (&dest, target(&dest)) {
                (Dest::None, _) => broadcast(ctx, session, presence).await,
                (_, Some(to)) => directed(ctx, session, presence, to).await,
                // Presence to the server itself has no effect.
                _ => {}
            }
        }
        Some(
            t @ (PresenceType::Subscribe
            | PresenceType::Subscribed
            | PresenceType::Unsubscribe
            | PresenceType::Unsubscribed),
        ) => {
            let kind = Kind::from_presence(t).expect("matched above");
            // Subscriptions are to accounts.
            let Some(contact) = target(&dest).map(|j| j.to_bare()) else {
                return;
            };
            let me = ctx.bare_jid();
            // RFC 6121 §3.1.2: subscription stanzas carry the user's bare JID.
            let mut p = presence;
            p.set_attr("from", me.to_string());
            p.set_attr("to", contact.to_string());
            subscription(ctx.core, &me, &contact, kind, p).await;
        }
        Some(PresenceType::Probe) => {
            // RFC 6121 §4.3: probes are the server's business, but a client's probe gets
            // the same answer a server would give it.
            let Some(contact) = target(&dest).map(|j| j.to_bare()) else {
                return;
            };
            let me = ctx.bare_jid();
            if contact.domain() != ctx.core.domain {
                if subscribed_to(ctx.core, &me, &contact).await {
                    let mut p = presence;
                    p.set_attr("from", me.to_string());
                    p.set_attr("to", contact.to_string());
                    send_to(ctx.core, p);
                }
                return;
            }
            if contact == me || subscribed_to(ctx.core, &me, &contact).await {
                for p in probe_answer(ctx.core, &contact, &session.jid).await {
                    ctx.replies.push(p);
                }
            }
        }
        Some(PresenceType::Error) => {
            if let Some(to) = target(&dest) {
                directed(ctx, session, presence, to).await;
            }
        }
        None => ctx.reply_error(
            &presence,
            StanzaError::with_text(StanzaCondition::BadRequest, "unknown presence type"),
        ),
    }
}

/// A presence from another server, a hosted service or the server itself, for a local
/// JID: subscription stanzas go through Appendix A.3, probes are answered, the rest is
/// delivered.
async fn from_elsewhere(ctx: &mut Ctx<'_>, presence: Element, dest: Dest) {
    let Some(to) = target(&dest) else {
        return;
    };
    if to.domain() != ctx.core.domain {
        // Our own stanza on its way out (a server-built presence for a remote JID).
        send_to(ctx.core, presence);
        return;
    }
    let from = ctx.from.clone();
    match PresenceType::of(&presence) {
        Some(
            t @ (PresenceType::Subscribe
            | PresenceType::Subscribed
            | PresenceType::Unsubscribe
            | PresenceType::Unsubscribed),
        ) => {
            let kind = Kind::from_presence(t).expect("matched above");
            let mut p = presence;
            p.set_attr("from", from.to_bare().to_string());
            p.set_attr("to", to.to_bare().to_string());
            inbound(ctx.core, &from.to_bare(), &to.to_bare(), kind, p).await;
        }
        Some(PresenceType::Probe) => {
            let contact = to.to_bare();
            let subscribed = roster_item(ctx.core, &contact, &from.to_bare())
                .await
                .is_some_and(|i| i.state.is_from());
            if subscribed {
                for p in probe_answer_for(ctx.core, &contact, &from).await {
                    send_to(ctx.core, p);
                }
            }
        }
        _ => send_to(ctx.core, presence),
    }
}

/// Sends `presence` (its `from` set) to `to`: a local account's available resources, or
/// a remote contact.
pub fn presence_to(core: &Arc<Core>, to: &BareJid, mut presence: Element) {
    presence.set_attr("to", to.to_string());
    send_to(core, presence);
}

/// True if `user` has a subscription to `contact`'s presence (`to` or `both`).
async fn subscribed_to(core: &Core, user: &BareJid, contact: &BareJid) -> bool {
    roster_item(core, user, contact)
        .await
        .is_some_and(|i| i.state.is_to())
}

async fn roster_item(core: &Core, user: &BareJid, contact: &BareJid) -> Option<Item> {
    let (host, name) = account_key(user);
    let contact = contact.to_string();
    core.storage
        .call(move |c| store::item(c, &host, &name, &contact))
        .await
        .unwrap_or_else(|e| {
            log::error!("storage: {e}");
            None
        })
}

/// Every row of `user`'s roster; empty (and logged) if storage fails.
pub(crate) async fn roster_items(core: &Core, user: &BareJid) -> Vec<Item> {
    let (host, name) = account_key(user);
    core.storage
        .call(move |c| store::items(c, &host, &name))
        .await
        .unwrap_or_else(|e| {
            log::error!("storage: {e}");
            Vec::new()
        })
}

/// What a probe of `contact` on behalf of local session `to` returns (RFC 6121 §4.3.2):
/// the last presence of each available resource, or unavailable with the last-seen time.
async fn probe_answer(core: &Core, contact: &BareJid, to: &FullJid) -> Vec<Element> {
    probe_answer_for(core, contact, &Jid::Full(to.clone())).await
}

/// [`probe_answer`] for any asker `to`.
async fn probe_answer_for(core: &Core, contact: &BareJid, to: &Jid) -> Vec<Element> {
    if core.is_blocked(contact, to).await {
        return Vec::new();
    }
    let available = core.sessions.available(contact);
    if !available.is_empty() {
        return available
            .iter()
            .filter_map(|r| r.presence.as_ref())
            .map(|p| {
                let mut p = (**p).clone();
                p.set_attr("to", to.to_string());
                p
            })
            .collect();
    }
    let (host, name) = account_key(contact);
    let last = core
        .storage
        .call(move |c| crate::storage::lastact::get(c, &host, &name))
        .await
        .ok()
        .flatten();
    let mut p = Element::new("presence", ns::CLIENT)
        .with_attr("from", contact.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", "unavailable");
    if let Some((seconds, status)) = last {
        if !status.is_empty() {
            p.push(Element::new("status", ns::CLIENT).with_text(status));
        }
        p.push(
            Element::new("delay", crate::ns::DELAY)
                .with_attr("from", core.domain.clone())
                .with_attr("stamp", crate::util::datetime::format(seconds)),
        );
    }
    vec![p]
}

/// The priority of an available presence (RFC 6121 §4.7.2.3): -128..=127, default 0.
fn priority_of(p: &Element) -> Result<i8, StanzaError> {
    match p.child("priority", ns::CLIENT) {
        None => Ok(0),
        Some(e) => e.text().trim().parse::<i8>().map_err(|_| {
            StanzaError::with_text(StanzaCondition::BadRequest, "priority must be -128..127")
        }),
    }
}

/// Undirected presence from the client: initial presence, updates, and unavailable.
async fn broadcast(ctx: &mut Ctx<'_>, session: &SessionHandle, presence: Element) {
    if PresenceType::of(&presence) == Some(PresenceType::Unavailable) {
        let own = presence.clone();
        // RFC 6121 §4.5.2: also to the resource that sent it, whose stream stays open
        // (went_unavailable took it out of the available ones first).
        if went_unavailable(ctx.core, session, presence).await {
            let mut own = own;
            own.set_attr("from", &session.jid);
            own.set_attr("to", &session.jid);
            own.set_attr("type", "unavailable");
            ctx.replies.push(own);
        }
        return;
    }
    let priority = match priority_of(&presence) {
        Ok(p) => p,
        Err(e) => {
            ctx.reply_error(&presence, e);
            return;
        }
    };
    let core = ctx.core;
    let me = ctx.bare_jid();
    let full = session.jid.clone();
    let id = session.id;
    // XEP-0398: the avatar's hash for vCard-based clients (a filter of pep/avatar.rs).
    let presence = core
        .table
        .filter(core, FilterPoint::Presence, &me, &me, presence)
        .await;
    let shared = Arc::new(presence.clone());
    let mut previous = None;
    core.sessions.update(&full, id, |r| {
        previous = r.presence.replace(shared);
        r.priority = priority;
    });
    let initial = previous.is_none();

    let items = roster_items(core, &me).await;
    let own_list = core.sessions.blocked(&me).unwrap_or_default();
    // To subscribers (RFC 6121 §4.2.2, §4.4.2), then to all of our own available
    // resources, this one included.
    for it in items.iter().filter(|i| i.state.is_from()) {
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        if blocks(&own_list, &Jid::Bare(contact.clone())) {
            continue;
        }
        presence_to(core, &contact, presence.clone());
    }
    // Our own copy is the first reply, ahead of the probe answers, the pending requests
    // and the offline messages below (the order clients and Prosody expect); the other
    // resources get theirs through the router.
    for r in core.sessions.available(&me) {
        if r.handle.id != id {
            let mut p = presence.clone();
            p.set_attr("to", &r.handle.jid);
            send_to(core, p);
        }
    }
    let mut own = presence.clone();
    own.set_attr("to", &full);
    ctx.replies.push(own);
    core.emit(Event::Available {
        session,
        presence: &presence,
        previous: previous.as_deref(),
    })
    .await;

    if initial {
        // Probes (RFC 6121 §4.2.2): the presence of everyone we are subscribed to, and of
        // our other resources.
        for it in items.iter().filter(|i| i.state.is_to()) {
            let Ok(contact) = BareJid::parse(&it.contact) else {
                continue;
            };
            if blocks(&own_list, &Jid::Bare(contact.clone())) {
                continue;
            }
            if contact.domain() != core.domain {
                let probe = Element::new("presence", ns::CLIENT)
                    .with_attr("from", me.to_string())
                    .with_attr("type", "probe");
                presence_to(core, &contact, probe);
                continue;
            }
            for p in probe_answer(core, &contact, &full).await {
                ctx.replies.push(p);
            }
        }
        for r in core.sessions.available(&me) {
            if r.handle.id == id {
                continue;
            }
            if let Some(p) = &r.presence {
                let mut p = (**p).clone();
                p.set_attr("to", full.to_string());
                ctx.replies.push(p);
            }
        }
        // Subscription requests that arrived while we were offline (RFC 6121 §3.1.3).
        let scope = crate::xml::parse::Scope::client();
        for it in items.iter().filter(|i| i.state.pending_in()) {
            let stored = it
                .request
                .as_deref()
                .and_then(|x| super::stored_stanza(&scope, x))
                .unwrap_or_else(|| {
                    Element::new("presence", ns::CLIENT)
                        .with_attr("from", it.contact.clone())
                        .with_attr("type", "subscribe")
                });
            let mut p = stored;
            p.set_attr("to", me.to_string());
            ctx.replies.push(p);
        }
    }
    if priority >= 0 {
        super::message::deliver_offline(ctx, session).await;
    }
}

/// Where each session sent directed available presence (RFC 6121 §4.6), by session id,
/// to be told when it goes unavailable.
#[derive(Default)]
pub struct Directed(Mutex<HashMap<u64, HashSet<Jid>>>);

impl Directed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, HashSet<Jid>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A session that ends is forgotten (its unavailable presence went out before).
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    if let Event::Unbound { id, .. } = event {
        core.state::<Directed>().lock().remove(id);
    }
}

/// The session goes unavailable (its unavailable presence, or its end): tell subscribers,
/// our own resources and directed-presence recipients; remember when we were last seen.
/// Returns whether it was available.
pub async fn went_unavailable(
    core: &Arc<Core>,
    session: &SessionHandle,
    mut presence: Element,
) -> bool {
    let full = session.jid.clone();
    let me = full.bare();
    presence.set_attr("from", full.to_string());
    presence.set_attr("type", "unavailable");
    presence.remove_attr("to");
    let mut was_available = false;
    core.sessions.update(&full, session.id, |r| {
        was_available = r.presence.take().is_some();
    });
    let directed = core.state::<Directed>().lock().remove(&session.id);
    for to in directed.into_iter().flatten() {
        let mut p = presence.clone();
        p.set_attr("to", to.as_str());
        send_to(core, p);
    }
    if !was_available {
        return false;
    }
    let own_list = core.sessions.blocked(&me).unwrap_or_default();
    for it in roster_items(core, &me).await {
        if !it.state.is_from() {
            continue;
        }
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        if !blocks(&own_list, &Jid::Bare(contact.clone())) {
            presence_to(core, &contact, presence.clone());
        }
    }
    presence_to(core, &me, presence.clone());
    if core.sessions.available(&me).is_empty() {
        let status = presence
            .child("status", ns::CLIENT)
            .map(|s| s.text())
            .unwrap_or_default();
        let (host, name) = account_key(&me);
        let now = crate::util::datetime::unix_now();
        if let Err(e) = core
            .storage
            .call(move |c| crate::storage::lastact::set(c, &host, &name, now, &status))
            .await
        {
            log::error!("storage: {e}");
        }
    }
    true
}

/// Directed presence (RFC 6121 §4.6): delivered, and remembered so that the recipient
/// hears of our unavailability.
async fn directed(ctx: &mut Ctx<'_>, session: &SessionHandle, presence: Element, to: Jid) {
    let me = ctx.bare_jid();
    if ctx
        .core
        .sessions
        .blocked(&me)
        .is_some_and(|l| blocks(&l, &to))
    {
        return;
    }
    let ty = PresenceType::of(&presence);
    let mut p = presence;
    p.set_attr("to", to.as_str());
    send_to(ctx.core, p);
    match ty {
        Some(PresenceType::Available) => {
            // Subscribers hear our broadcasts anyway; track only the others.
            let subscriber = roster_item(ctx.core, &me, &to.to_bare())
                .await
                .is_some_and(|i| i.state.is_from());
            if !subscriber {
                ctx.core
                    .state::<Directed>()
                    .lock()
                    .entry(session.id)
                    .or_default()
                    .insert(to);
            }
        }
        Some(PresenceType::Unavailable) => {
            if let Some(set) = ctx.core.state::<Directed>().lock().get_mut(&session.id) {
                set.remove(&to);
            }
        }
        _ => {}
    }
}

/// A subscription stanza from local account `user` to `contact` (the stanza's from/to
/// already set): Appendix A.2 on the user's roster, then, if routed, A.3 on the contact's
/// (here, or at the contact's server).
pub async fn subscription(
    core: &Arc<Core>,
    user: &BareJid,
    contact: &BareJid,
    kind: Kind,
    stanza: Element,
) {
    let (host, name) = account_key(user);
    let contact_s = contact.to_string();
    let result = core
        .storage
        .call(move |c| {
            let mut mine = store::item(c, &host, &name, &contact_s)?.unwrap_or_else(|| {
                let mut i = Item::new(&contact_s);
                i.in_roster = false;
                i
            });
            let before = mine.clone();
            let step = mine.state.outbound(kind);
            mine.state = step.state;
            // RFC 6121 §3.4.2: `subscribed` with no request pending (None, None + Pending
            // Out, To) is a pre-approval: kept in the roster item, not routed. An
            // `unsubscribed` cancels it.
            if kind == Kind::Subscribed && !step.route && !mine.state.is_from() {
                mine.approved = true;
                mine.in_roster = true;
            }
            if kind == Kind::Unsubscribed {
                mine.approved = false;
            }
            // Asking for a subscription puts the contact in the roster (RFC 6121 §3.1.2);
            // approving one does too (§3.1.5).
            if matches!(kind, Kind::Subscribe | Kind::Subscribed) && step.route {
                mine.in_roster = true;
            }
            let version = if mine != before {
                Some(store::put(c, &host, &name, &mine)?)
            } else {
                None
            };
            Ok((mine, version, step.route))
        })
        .await;
    let (mine, version, route) = match result {
        Ok(r) => r,
        Err(e) => {
            log::error!("subscription {user} → {contact}: {}", storage_failed(e));
            return;
        }
    };
    if let Some(v) = version {
        push_item(core, user, &mine, v);
    }
    if !route {
        return;
    }
    if contact.domain() == core.domain {
        inbound(core, user, contact, kind, stanza).await;
    } else {
        send_to(core, stanza);
    }
}

/// A subscription stanza arriving for local account `to` from `from` (Appendix A.3): the
/// state change, the push, the delivery (or the pending request kept for later), the
/// automatic `subscribed` of §3.1.3, and the presence that follows a change.
async fn inbound(core: &Arc<Core>, from: &BareJid, to: &BareJid, kind: Kind, stanza: Element) {
    let from_jid = Jid::Bare(from.clone());
    if core.is_blocked(to, &from_jid).await {
        return;
    }
    let (host, name) = account_key(to);
    let from_s = from.to_string();
    let stanza_text = stanza.to_client_string();
    let result = core
        .storage
        .call(move |c| {
            if !crate::storage::accounts::exists(c, &host, &name)? {
                return Ok(None);
            }
            let mut theirs = store::item(c, &host, &name, &from_s)?.unwrap_or_else(|| {
                let mut i = Item::new(&from_s);
                i.in_roster = false;
                i
            });
            let auto = theirs.state.auto_reply_subscribed(kind);
            let step = theirs.state.inbound(kind);
            let before = theirs.clone();
            theirs.state = step.state;
            // RFC 6121 §3.4: a pre-approved request is approved at once on the user's
            // behalf (A.2.3 from the pending state), not delivered.
            let preapproved = kind == Kind::Subscribe && step.route && theirs.approved;
            if preapproved {
                theirs.state = theirs.state.outbound(Kind::Subscribed).state;
                theirs.approved = false;
            } else if kind == Kind::Subscribe && step.route {
                theirs.request = Some(stanza_text);
            }
            let version = if theirs != before {
                Some(store::put(c, &host, &name, &theirs)?)
            } else {
                None
            };
            Ok(Some((
                theirs,
                version,
                step.route && !preapproved,
                auto || preapproved,
            )))
        })
        .await;
    let (theirs, version, route, auto) = match result {
        Ok(Some(r)) => r,
        // No such account: subscription stanzas to it vanish (RFC 6121 §8.5.2.2.2).
        Ok(None) => return,
        Err(e) => {
            log::error!("subscription {from} → {to}: {}", storage_failed(e));
            return;
        }
    };
    // RFC 6121 §3.1.6 (likewise §3.2.3, §3.3.3): the stanza reaches the user's resources
    // before the roster push that records it.
    if route {
        presence_to(core, to, stanza);
    }
    if let Some(v) = version {
        if theirs.in_roster {
            push_item(core, to, &theirs, v);
        }
    }
    if auto {
        // RFC 6121 §3.1.3: already subscribed (or §3.4: pre-approved): the server answers
        // for the contact.
        let reply = super::roster::subscription_presence(to, from, Kind::Subscribed);
        if from.domain() == core.domain {
            Box::pin(inbound(core, to, from, Kind::Subscribed, reply)).await;
        } else {
            send_to(core, reply);
        }
        return;
    }
    if !route {
        return;
    }
    match kind {
        // `to` may now see `from`'s presence: send the current one (§3.1.5, §3.1.6).
        Kind::Subscribed => {
            for r in core.sessions.available(from) {
                if let Some(p) = &r.presence {
                    presence_to(core, to, (**p).clone());
                }
            }
            // XEP-0163 §4.3.4: a new subscriber gets the last published items (pep/notify.rs).
            core.emit(Event::SubscriptionApproved {
                owner: from,
                subscriber: to,
            })
            .await;
        }
        // `to` no longer sees `from`: unavailable from each of its resources (§3.2.2).
        Kind::Unsubscribed => {
            for r in core.sessions.available(from) {
                presence_to(core, to, unavailable_from(&r.handle.jid));
            }
        }
        // `from` no longer sees `to`: unavailable from `to`'s resources (§3.3.2).
        Kind::Unsubscribe => {
            for r in core.sessions.available(to) {
                presence_to(core, from, unavailable_from(&r.handle.jid));
            }
        }
        Kind::Subscribe => {}
    }
}

fn unavailable_from(jid: &FullJid) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", jid.to_string())
        .with_attr("type", "unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(inner: &str) -> Element {
        let text = format!("<presence>{inner}</presence>");
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), text.as_bytes())
            .unwrap()
    }

    #[test]
    fn priorities() {
        assert_eq!(priority_of(&presence("")), Ok(0));
        assert_eq!(priority_of(&presence("<priority>5</priority>")), Ok(5));
        assert_eq!(priority_of(&presence("<priority>-1</priority>")), Ok(-1));
        assert_eq!(
            priority_of(&presence("<priority> 127 </priority>")),
            Ok(127)
        );
        assert!(priority_of(&presence("<priority>128</priority>")).is_err());
        assert!(priority_of(&presence("<priority>high</priority>")).is_err());
    }
}
