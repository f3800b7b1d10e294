//! XEP-0191 Blocking Command: the block list, block/unblock with pushes to the resources
//! that fetched it, and the presence consequences of §3.3.1 and §3.4.
//! Messages and IQs to and from blocked JIDs are stopped in the router's processing step,
//! presence in `presence` (broadcasts skip blocked contacts) and the router's exit.

use super::{account_key, storage_failed};
use super::{Ctx, Iq, IqResult, IqType, Target};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::router::{blocks, Core, Event, SessionSet};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use std::sync::Arc;

pub use crate::ns::BLOCKING as NS;
/// Most entries in one block list.
const MAX_ITEMS: usize = 1000;

/// The JIDs of a `<block/>` or `<unblock/>` (normalized).
fn items(payload: &Element) -> Result<Vec<String>, StanzaError> {
    payload
        .elements()
        .filter(|e| e.is("item", NS))
        .map(|e| {
            let j = e.attr("jid").ok_or_else(|| {
                StanzaError::with_text(StanzaCondition::BadRequest, "item without jid")
            })?;
            Jid::parse(j)
                .map(|j| j.to_string())
                .map_err(|_| StanzaError::new(StanzaCondition::JidMalformed))
        })
        .collect()
}

/// `<blocklist/>` get, `<block/>` and `<unblock/>` set, on one's own account.
pub async fn handle(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let me = ctx.bare_jid();
    if iq.target != Target::Account(me.clone()) {
        return Err(StanzaError::new(StanzaCondition::Forbidden));
    }
    let (host, user) = account_key(&me);
    match (iq.ty, iq.payload.name.as_str()) {
        (IqType::Get, "blocklist") => {
            if let Some(s) = ctx.session() {
                ctx.core.state::<Interested>().0.insert(s.id);
            }
            let list = ctx
                .core
                .storage
                .call(move |c| crate::storage::blocking::list(c, &host, &user))
                .await
                .map_err(storage_failed)?;
            let mut e = Element::new("blocklist", NS);
            for j in list {
                e.push(Element::new("item", NS).with_attr("jid", j));
            }
            Ok(Some(e))
        }
        (IqType::Set, "block") => {
            let jids = items(iq.payload)?;
            if jids.is_empty() {
                return Err(StanzaError::with_text(
                    StanzaCondition::BadRequest,
                    "block at least one JID",
                ));
            }
            let before = ctx.core.sessions.blocked(&me).unwrap_or_default();
            let add = jids.clone();
            let list = ctx
                .core
                .storage
                .call(move |c| {
                    let mut all = crate::storage::blocking::list(c, &host, &user)?;
                    all.extend(add.iter().cloned());
                    all.sort();
                    all.dedup();
                    if all.len() > MAX_ITEMS {
                        return Ok(None);
                    }
                    crate::storage::blocking::add(c, &host, &user, &add)?;
                    Ok(Some(all))
                })
                .await
                .map_err(storage_failed)?
                .ok_or_else(|| {
                    StanzaError::with_text(StanzaCondition::ResourceConstraint, "block list full")
                })?;
            // §3.3.1: contacts who saw us available and are now blocked see us leave.
            tell_newly_blocked(ctx, &me, &before, &list).await;
            ctx.core.sessions.set_blocked(&me, list);
            push(ctx, &me, iq.payload);
            Ok(None)
        }
        (IqType::Set, "unblock") => {
            let jids = items(iq.payload)?;
            let before = ctx.core.sessions.blocked(&me).unwrap_or_default();
            let remove = jids.clone();
            let list = ctx
                .core
                .storage
                .call(move |c| {
                    crate::storage::blocking::remove(c, &host, &user, &remove)?;
                    crate::storage::blocking::list(c, &host, &user)
                })
                .await
                .map_err(storage_failed)?;
            ctx.core.sessions.set_blocked(&me, list.clone());
            // §3.4: the unblocked get our current presence again.
            tell_unblocked(ctx, &me, &before, &list).await;
            push(ctx, &me, iq.payload);
            Ok(None)
        }
        _ => Err(StanzaError::new(StanzaCondition::BadRequest)),
    }
}

/// The sessions (by id) that fetched their block list: they get block list pushes.
#[derive(Default)]
pub struct Interested(SessionSet);

/// A session that ends is forgotten.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    if let Event::Unbound { id, .. } = event {
        core.state::<Interested>().0.remove(*id);
    }
}

/// A block or unblock push to every resource that fetched the block list.
fn push(ctx: &Ctx<'_>, me: &BareJid, payload: &Element) {
    let interested = ctx.core.state::<Interested>();
    let wants = |r: &crate::router::Resource| interested.0.contains(r.handle.id);
    crate::router::push_iq(ctx.core, me, wants, "block", payload);
}

/// Subscribers matched by `now` but not by `before`.
async fn subscribers_changed(
    ctx: &Ctx<'_>,
    me: &BareJid,
    before: &[String],
    now: &[String],
    newly_blocked: bool,
) -> Vec<BareJid> {
    super::presence::roster_items(ctx.core, me)
        .await
        .into_iter()
        .filter(|i| i.state.is_from())
        .filter_map(|i| BareJid::parse(&i.contact).ok())
        .filter(|c| {
            let j = Jid::Bare(c.clone());
            let (was, is) = (blocks(before, &j), blocks(now, &j));
            if newly_blocked {
                is && !was
            } else {
                was && !is
            }
        })
        .collect()
}

async fn tell_newly_blocked(ctx: &Ctx<'_>, me: &BareJid, before: &[String], now: &[String]) {
    for contact in subscribers_changed(ctx, me, before, now, true).await {
        for r in ctx.core.sessions.available(me) {
            let p = Element::new("presence", ns::CLIENT)
                .with_attr("from", r.handle.jid.to_string())
                .with_attr("type", "unavailable");
            super::presence::presence_to(ctx.core, &contact, p);
        }
    }
}

async fn tell_unblocked(ctx: &Ctx<'_>, me: &BareJid, before: &[String], now: &[String]) {
    for contact in subscribers_changed(ctx, me, before, now, false).await {
        for r in ctx.core.sessions.available(me) {
            if let Some(p) = &r.presence {
                super::presence::presence_to(ctx.core, &contact, (**p).clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(text: &str) -> Element {
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), text.as_bytes())
            .unwrap()
    }

    #[test]
    fn parses_items() {
        let b = el("<block xmlns='urn:xmpp:blocking'><item jid='Spam@Example.org'/><item jid='example.net'/></block>");
        assert_eq!(items(&b).unwrap(), vec!["spam@example.org", "example.net"]);
        let bad = el("<block xmlns='urn:xmpp:blocking'><item jid='a@b@c'/></block>");
        assert_eq!(
            items(&bad).unwrap_err().condition,
            StanzaCondition::JidMalformed
        );
        let none = el("<block xmlns='urn:xmpp:blocking'><item/></block>");
        assert_eq!(
            items(&none).unwrap_err().condition,
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn matching() {
        let list = vec!["spam@example.org".to_string(), "evil.example".to_string()];
        let j = |s: &str| Jid::parse(s).unwrap();
        assert!(blocks(&list, &j("spam@example.org/phone")));
        assert!(blocks(&list, &j("spam@example.org")));
        assert!(blocks(&list, &j("anyone@evil.example/x")));
        assert!(!blocks(&list, &j("mom@example.org")));
        let full = vec!["kid@example.org/game".to_string()];
        assert!(blocks(&full, &j("kid@example.org/game")));
        assert!(!blocks(&full, &j("kid@example.org/phone")));
        assert!(!blocks(&full, &j("kid@example.org")));
    }
}
