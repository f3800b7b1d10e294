//! Presence (RFC 6121 §3 subscriptions, §4 exchanging presence): broadcasts to subscribers,
//! probes answered from the router's table, directed presence, the subscription state
//! machine of Appendix A applied to both rosters, and the pending requests of §3.1.3.

use super::roster::{account_parts, internal, push_item};
use super::Ctx;
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::{blocks, Dest};
use crate::server::Server;
use crate::session::Bound;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::roster::{self as store, Item};
use crate::subscription::Kind;
use crate::xml::Element;
use std::sync::Arc;

/// Handles a presence stanza from the session in `ctx` (its `from` stamped).
pub async fn route(ctx: &mut Ctx<'_>, presence: Element, dest: Dest) {
    let ty = presence.attr("type").map(str::to_owned);
    match ty.as_deref() {
        None | Some("unavailable") => match dest {
            Dest::None => broadcast(ctx, presence).await,
            Dest::Bare(_) | Dest::Full(_) => directed(ctx, presence, dest).await,
            // Presence to the server itself has no effect.
            Dest::Host | Dest::HostResource | Dest::Remote => {}
        },
        Some(t @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")) => {
            let kind = Kind::from_type(t).expect("matched above");
            let contact = match dest {
                Dest::Bare(b) => b,
                Dest::Full(f) => f.bare(),
                // Subscriptions are to accounts.
                _ => return,
            };
            let me = ctx.bare_jid();
            // RFC 6121 §3.1.2: subscription stanzas carry the user's bare JID.
            let mut p = presence;
            p.set_attr("from", me.to_string());
            p.set_attr("to", contact.to_string());
            subscription(ctx.server, &me, &contact, kind, p).await;
        }
        Some("probe") => {
            // RFC 6121 §4.3: probes are the server's business, but a client's probe gets
            // the same answer a server would give it.
            let contact = match &dest {
                Dest::Bare(b) => b.clone(),
                Dest::Full(f) => f.bare(),
                _ => return,
            };
            let me = ctx.bare_jid();
            if contact == me || subscribed_to(ctx.server, &me, &contact).await {
                let full = ctx.full_jid().clone();
                for p in probe_answer(ctx.server, &contact, &full).await {
                    ctx.replies.push(p);
                }
            }
        }
        Some("error") => directed(ctx, presence, dest).await,
        Some(_) => ctx.reply_error(
            &presence,
            StanzaError::with_text(StanzaCondition::BadRequest, "unknown presence type"),
        ),
    }
}

/// True if `user` has a subscription to `contact`'s presence (`to` or `both`).
async fn subscribed_to(server: &Server, user: &BareJid, contact: &BareJid) -> bool {
    roster_item(server, user, contact)
        .await
        .is_some_and(|i| i.state.is_to())
}

async fn roster_item(server: &Server, user: &BareJid, contact: &BareJid) -> Option<Item> {
    let (host, name) = account_parts(user);
    let contact = contact.to_string();
    server
        .storage
        .call(move |c| store::item(c, &host, &name, &contact))
        .await
        .unwrap_or_else(|e| {
            log::error!("storage: {e}");
            None
        })
}

/// Every row of `user`'s roster; empty (and logged) if storage fails.
pub(crate) async fn roster_items(server: &Server, user: &BareJid) -> Vec<Item> {
    let (host, name) = account_parts(user);
    server
        .storage
        .call(move |c| store::items(c, &host, &name))
        .await
        .unwrap_or_else(|e| {
            log::error!("storage: {e}");
            Vec::new()
        })
}

/// True if `owner` blocks stanzas from (or to) `other` (XEP-0191).
pub async fn is_blocked(server: &Server, owner: &BareJid, other: &Jid) -> bool {
    if let Some(list) = server.router.blocked(owner) {
        return blocks(&list, other);
    }
    let (host, name) = account_parts(owner);
    let list = server
        .storage
        .call(move |c| crate::storage::blocking::list(c, &host, &name))
        .await
        .unwrap_or_default();
    blocks(&list, other)
}

/// Delivers `stanza` (from `from`) to every available resource of `to`, unless `to`
/// blocks `from`. Returns how many resources got it.
pub fn deliver_available(server: &Server, to: &BareJid, from: &Jid, stanza: &Element) -> usize {
    if server.router.blocked(to).is_some_and(|l| blocks(&l, from)) {
        return 0;
    }
    // RFC 6121 §3.1, §8.5.2.1.2: subscription stanzas keep the bare JID in `to`.
    let keep_to =
        stanza.name == "presence" && stanza.attr("type").and_then(Kind::from_type).is_some();
    let mut n = 0;
    for r in server.router.available(to) {
        let mut s = stanza.clone();
        if keep_to {
            s.set_attr("to", to.to_string());
        } else {
            s.set_attr("to", &r.handle.jid);
        }
        if r.handle.send(s) {
            n += 1;
        }
    }
    n
}

/// What a probe of `contact` on behalf of `to` returns (RFC 6121 §4.3.2): the last
/// presence of each available resource, or unavailable with the last-seen time.
async fn probe_answer(server: &Server, contact: &BareJid, to: &FullJid) -> Vec<Element> {
    if is_blocked(server, contact, &Jid::Full(to.clone())).await {
        return Vec::new();
    }
    let available = server.router.available(contact);
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
    let (host, name) = account_parts(contact);
    let last = server
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
            Element::new("delay", "urn:xmpp:delay")
                .with_attr("from", server.domain.clone())
                .with_attr("stamp", crate::datetime::format(seconds)),
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
async fn broadcast(ctx: &mut Ctx<'_>, presence: Element) {
    if presence.attr("type") == Some("unavailable") {
        let was_available = ctx.session.presence.is_some();
        let mut own = presence.clone();
        went_unavailable(ctx.server, ctx.session, presence).await;
        // RFC 6121 §4.5.2: also to the resource that sent it (went_unavailable already
        // took it out of the available ones); its stream stays open.
        if was_available {
            let full = ctx.full_jid().to_string();
            own.set_attr("from", full.clone());
            own.set_attr("to", full);
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
    let me = ctx.bare_jid();
    // XEP-0398: the PEP avatar's hash for vCard-based clients (pep.rs).
    let presence = super::pep::with_avatar_hash(ctx.server, &me, presence).await;
    let full = ctx.full_jid().clone();
    let previous = ctx.session.presence.replace(presence.clone());
    let initial = previous.is_none();
    let shared = Arc::new(presence.clone());
    ctx.session.priority = priority;
    let id = ctx.session.handle.id;
    ctx.server.router.update(&full, id, |r| {
        r.presence = Some(shared);
        r.priority = priority;
    });

    let items = roster_items(ctx.server, &me).await;
    let own_list = ctx.server.router.blocked(&me).unwrap_or_default();
    let from = Jid::Full(full.clone());
    // To subscribers (RFC 6121 §4.2.2, §4.4.2), then to all of our own available
    // resources, this one included.
    for it in items.iter().filter(|i| i.state.is_from()) {
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        if blocks(&own_list, &Jid::Bare(contact.clone())) {
            continue;
        }
        deliver_available(ctx.server, &contact, &from, &presence);
    }
    // Our own copy is the first reply, ahead of the probe answers, the pending requests
    // and the offline messages queued below (the order clients and Prosody expect); the
    // other resources get theirs through their queues.
    for r in ctx.server.router.available(&me) {
        if r.handle.id != id {
            let mut p = presence.clone();
            p.set_attr("to", &r.handle.jid);
            r.handle.send(p);
        }
    }
    let mut own = presence.clone();
    own.set_attr("to", full.to_string());
    ctx.replies.push(own);
    // XEP-0163: last published items for this resource's +notify interests (pep.rs).
    super::pep::available(
        ctx.server,
        &ctx.session.handle,
        &presence,
        previous.as_ref(),
    )
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
            for p in probe_answer(ctx.server, &contact, &full).await {
                ctx.replies.push(p);
            }
        }
        for r in ctx.server.router.available(&me) {
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
        for it in items.iter().filter(|i| i.state.pending_in()) {
            let stored = it
                .request
                .as_deref()
                .and_then(|x| {
                    crate::xml::parse::parse_element(
                        &crate::xml::parse::Scope::client(),
                        x.as_bytes(),
                    )
                    .ok()
                })
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
    if priority >= 0 && !ctx.session.offline_delivered {
        super::message::deliver_offline(ctx).await;
    }
}

/// The session goes unavailable (its unavailable presence, or its end): tell subscribers,
/// our own resources and directed-presence recipients; remember when we were last seen.
pub async fn went_unavailable(server: &Arc<Server>, session: &mut Bound, mut presence: Element) {
    let full = session.full_jid().clone();
    let me = full.bare();
    presence.set_attr("from", full.to_string());
    presence.set_attr("type", "unavailable");
    presence.remove_attr("to");
    let was_available = session.presence.take().is_some();
    let directed: Vec<Jid> = session.directed.drain().collect();
    let id = session.handle.id;
    server.router.update(&full, id, |r| r.presence = None);
    let from = Jid::Full(full.clone());
    for to in directed {
        deliver_directed(server, &to, &from, &presence);
    }
    if !was_available {
        return;
    }
    let own_list = server.router.blocked(&me).unwrap_or_default();
    for it in roster_items(server, &me).await {
        if !it.state.is_from() {
            continue;
        }
        let Ok(contact) = BareJid::parse(&it.contact) else {
            continue;
        };
        if !blocks(&own_list, &Jid::Bare(contact.clone())) {
            deliver_available(server, &contact, &from, &presence);
        }
    }
    deliver_available(server, &me, &from, &presence);
    if server.router.available(&me).is_empty() {
        let status = presence
            .child("status", ns::CLIENT)
            .map(|s| s.text())
            .unwrap_or_default();
        let (host, name) = account_parts(&me);
        let now = crate::datetime::unix_now();
        if let Err(e) = server
            .storage
            .call(move |c| crate::storage::lastact::set(c, &host, &name, now, &status))
            .await
        {
            log::error!("storage: {e}");
        }
    }
}

/// Delivers a directed presence to a full JID if connected, or to a bare JID's available
/// resources.
fn deliver_directed(server: &Server, to: &Jid, from: &Jid, presence: &Element) {
    match to {
        Jid::Full(f) => {
            if server
                .router
                .blocked(&f.bare())
                .is_some_and(|l| blocks(&l, from))
            {
                return;
            }
            if let Some(h) = server.router.get(f) {
                let mut p = presence.clone();
                p.set_attr("to", f.to_string());
                h.send(p);
            }
        }
        Jid::Bare(b) => {
            deliver_available(server, b, from, presence);
        }
    }
}

/// Directed presence (RFC 6121 §4.6): delivered, and remembered so that the recipient
/// hears of our unavailability.
async fn directed(ctx: &mut Ctx<'_>, presence: Element, dest: Dest) {
    let to = match dest {
        Dest::Bare(b) => Jid::Bare(b),
        Dest::Full(f) => Jid::Full(f),
        _ => return,
    };
    let me = ctx.bare_jid();
    if ctx
        .server
        .router
        .blocked(&me)
        .is_some_and(|l| blocks(&l, &to))
    {
        return;
    }
    let from = Jid::Full(ctx.full_jid().clone());
    deliver_directed(ctx.server, &to, &from, &presence);
    match presence.attr("type") {
        None => {
            // Subscribers hear our broadcasts anyway; track only the others.
            let subscriber = roster_item(ctx.server, &me, &to.to_bare())
                .await
                .is_some_and(|i| i.state.is_from());
            if !subscriber {
                ctx.session.directed.insert(to);
            }
        }
        Some("unavailable") => {
            ctx.session.directed.remove(&to);
        }
        _ => {}
    }
}

/// A subscription stanza from local account `user` to `contact` (the stanza's from/to
/// already set): Appendix A.2 on the user's roster, then, if routed, A.3 on the contact's.
pub async fn subscription(
    server: &Arc<Server>,
    user: &BareJid,
    contact: &BareJid,
    kind: Kind,
    stanza: Element,
) {
    let (host, name) = account_parts(user);
    let contact_s = contact.to_string();
    let result = server
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
            log::error!("subscription {user} → {contact}: {}", internal(e));
            return;
        }
    };
    if let Some(v) = version {
        push_item(server, user, &mine, v);
    }
    if route {
        inbound(server, user, contact, kind, stanza).await;
    }
}

/// A subscription stanza arriving for local account `to` from `from` (Appendix A.3): the
/// state change, the push, the delivery (or the pending request kept for later), the
/// automatic `subscribed` of §3.1.3, and the presence that follows a change.
async fn inbound(server: &Arc<Server>, from: &BareJid, to: &BareJid, kind: Kind, stanza: Element) {
    let from_jid = Jid::Bare(from.clone());
    if is_blocked(server, to, &from_jid).await {
        return;
    }
    let (host, name) = account_parts(to);
    let from_s = from.to_string();
    let stanza_text = stanza.to_client_string();
    let result = server
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
            log::error!("subscription {from} → {to}: {}", internal(e));
            return;
        }
    };
    // RFC 6121 §3.1.6 (likewise §3.2.3, §3.3.3): the stanza reaches the user's resources
    // before the roster push that records it.
    if route {
        deliver_available(server, to, &from_jid, &stanza);
    }
    if let Some(v) = version {
        if theirs.in_roster {
            push_item(server, to, &theirs, v);
        }
    }
    if auto {
        // RFC 6121 §3.1.3: already subscribed (or §3.4: pre-approved): the server answers
        // for the contact.
        let reply = super::roster::subscription_presence(to, from, Kind::Subscribed);
        Box::pin(inbound(server, to, from, Kind::Subscribed, reply)).await;
        return;
    }
    if !route {
        return;
    }
    match kind {
        // `to` may now see `from`'s presence: send the current one (§3.1.5, §3.1.6).
        Kind::Subscribed => {
            for r in server.router.available(from) {
                if let Some(p) = &r.presence {
                    deliver_available(server, to, &Jid::Full(r.handle.jid.clone()), p);
                }
            }
            // XEP-0163 §4.3.4: a new subscriber gets the last published items (pep.rs).
            super::pep::subscribed(server, from, to).await;
        }
        // `to` no longer sees `from`: unavailable from each of its resources (§3.2.2).
        Kind::Unsubscribed => {
            for r in server.router.available(from) {
                let p = unavailable_from(&r.handle.jid);
                deliver_available(server, to, &Jid::Full(r.handle.jid.clone()), &p);
            }
        }
        // `from` no longer sees `to`: unavailable from `to`'s resources (§3.3.2).
        Kind::Unsubscribe => {
            for r in server.router.available(to) {
                let p = unavailable_from(&r.handle.jid);
                deliver_available(server, from, &Jid::Full(r.handle.jid.clone()), &p);
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
