//! Rosters (RFC 6121 §2) with versioning (XEP-0237) and pushes to interested resources.

use super::{account_key, storage_failed, Ctx, Iq, IqResult, IqType, Target};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::roster::{self as store, Item};
use crate::subscription::Kind;
use crate::xml::Element;
use std::sync::Arc;

/// Longest item name and group name, in bytes.
const MAX_NAME: usize = 1024;
/// Most groups on one item.
const MAX_GROUPS: usize = 64;

/// The `<item/>` of a roster result or push.
pub fn item_element(item: &Item) -> Element {
    let mut e = Element::new("item", ns::ROSTER)
        .with_attr("jid", item.contact.clone())
        .with_attr("subscription", item.state.subscription());
    if let Some(n) = &item.name {
        e.set_attr("name", n.clone());
    }
    if item.state.pending_out() {
        e.set_attr("ask", "subscribe");
    }
    // RFC 6121 §3.4: a pre-approved subscription.
    if item.approved {
        e.set_attr("approved", "true");
    }
    for g in &item.groups {
        e.push(Element::new("group", ns::ROSTER).with_text(g.clone()));
    }
    e
}

/// Sends a roster push (RFC 6121 §2.1.6) of `item` to every interested resource of
/// `account`.
pub fn push(core: &Arc<Core>, account: &BareJid, item: Element, version: u64) {
    let query = Element::new("query", ns::ROSTER)
        .with_attr("ver", version.to_string())
        .with_child(item);
    crate::router::push_iq(core, account, |r| r.interested, "push", &query);
}

/// Pushes a stored item (or its removal if it is no longer shown).
pub fn push_item(core: &Arc<Core>, account: &BareJid, item: &Item, version: u64) {
    let e = if item.in_roster {
        item_element(item)
    } else {
        Element::new("item", ns::ROSTER)
            .with_attr("jid", item.contact.clone())
            .with_attr("subscription", "remove")
    };
    push(core, account, e, version);
}

/// `jabber:iq:roster` get and set, on one's own account only.
pub async fn handle(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let me = ctx.bare_jid();
    if iq.target != Target::Account(me.clone()) {
        return Err(StanzaError::new(StanzaCondition::Forbidden));
    }
    match iq.ty {
        IqType::Get => get(ctx, iq, &me).await,
        IqType::Set => set(ctx, iq, &me).await,
    }
}

async fn get(ctx: &mut Ctx<'_>, iq: &Iq<'_>, me: &BareJid) -> IqResult {
    // The resource is now interested: it receives roster pushes.
    if let Some(s) = ctx.session() {
        ctx.core
            .sessions
            .update(&s.jid, s.id, |r| r.interested = true);
    }
    let (host, user) = account_key(me);
    let client_ver = iq.payload.attr("ver").map(str::to_owned);
    let (version, items) = ctx
        .core
        .storage
        .call(move |c| {
            Ok((
                store::version(c, &host, &user)?,
                store::items(c, &host, &user)?,
            ))
        })
        .await
        .map_err(storage_failed)?;
    // XEP-0237: an unchanged roster is answered with an empty result; pushes follow.
    if client_ver.as_deref() == Some(version.to_string().as_str()) {
        return Ok(None);
    }
    let mut q = Element::new("query", ns::ROSTER).with_attr("ver", version.to_string());
    for it in items.iter().filter(|i| i.in_roster) {
        q.push(item_element(it));
    }
    Ok(Some(q))
}

/// The checked content of a roster set.
struct SetItem {
    contact: BareJid,
    remove: bool,
    name: Option<String>,
    groups: Vec<String>,
}

/// RFC 6121 §2.3.3 / §2.5.3: exactly one item, a bare JID, sane names and groups.
fn parse_set(query: &Element) -> Result<SetItem, StanzaError> {
    let mut items = query.elements().filter(|e| e.is("item", ns::ROSTER));
    let (Some(item), None) = (items.next(), items.next()) else {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "a roster set carries exactly one item",
        ));
    };
    let jid = item
        .attr("jid")
        .ok_or_else(|| StanzaError::with_text(StanzaCondition::BadRequest, "item without jid"))?;
    let contact = match Jid::parse(jid) {
        Ok(Jid::Bare(b)) => b,
        Ok(Jid::Full(_)) => {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "roster items are bare JIDs",
            ))
        }
        Err(_) => return Err(StanzaError::new(StanzaCondition::JidMalformed)),
    };
    let remove = item.attr("subscription") == Some("remove");
    let name = item
        .attr("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if name.as_ref().is_some_and(|n| n.len() > MAX_NAME) {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "item name too long",
        ));
    }
    let mut groups: Vec<String> = Vec::new();
    for g in item.elements().filter(|e| e.is("group", ns::ROSTER)) {
        let g = g.text();
        if g.is_empty() {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "empty group name",
            ));
        }
        if g.len() > MAX_NAME || g.contains('\n') {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAcceptable,
                "group name too long or with a line break",
            ));
        }
        if groups.contains(&g) {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "duplicate group",
            ));
        }
        groups.push(g);
    }
    if groups.len() > MAX_GROUPS {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "too many groups",
        ));
    }
    Ok(SetItem {
        contact,
        remove,
        name,
        groups,
    })
}

async fn set(ctx: &mut Ctx<'_>, iq: &Iq<'_>, me: &BareJid) -> IqResult {
    let req = parse_set(iq.payload)?;
    let (host, user) = account_key(me);
    let contact = req.contact.to_string();
    let existing = {
        let (host, user, contact) = (host.clone(), user.clone(), contact.clone());
        ctx.core
            .storage
            .call(move |c| store::item(c, &host, &user, &contact))
            .await
            .map_err(storage_failed)?
    };
    if req.remove {
        let Some(item) = existing.filter(|i| i.in_roster) else {
            return Err(StanzaError::new(StanzaCondition::ItemNotFound));
        };
        // RFC 6121 §2.5.2: cancel both subscriptions, then remove the item. The server
        // sends them on the user's behalf: through the router, as from the user's session.
        let st = item.state;
        let mut cancel = Vec::new();
        if st.is_to() || st.pending_out() {
            cancel.push(subscription_presence(me, &req.contact, Kind::Unsubscribe));
        }
        if st.is_from() || st.pending_in() {
            cancel.push(subscription_presence(me, &req.contact, Kind::Unsubscribed));
        }
        for p in cancel {
            Box::pin(crate::router::process(ctx.core, ctx.origin, p, ctx.replies))
                .await
                .map_err(|e| {
                    log::error!("roster: cancelling a subscription: {e}");
                    StanzaError::new(StanzaCondition::InternalServerError)
                })?;
        }
        let version = ctx
            .core
            .storage
            .call(move |c| store::remove(c, &host, &user, &contact))
            .await
            .map_err(storage_failed)?;
        push(
            ctx.core,
            me,
            Element::new("item", ns::ROSTER)
                .with_attr("jid", req.contact.to_string())
                .with_attr("subscription", "remove"),
            version,
        );
        return Ok(None);
    }
    let is_new = existing.as_ref().is_none_or(|i| !i.in_roster);
    let mut item = existing.unwrap_or_else(|| Item::new(&contact));
    item.in_roster = true;
    item.name = req.name;
    item.groups = req.groups;
    let saved = item.clone();
    let limit = ctx.core.config.roster_limit;
    let result = ctx
        .core
        .storage
        .call(move |c| {
            if is_new && store::count(c, &host, &user)? >= limit {
                return Ok(None);
            }
            Ok(Some(store::put(c, &host, &user, &saved)?))
        })
        .await
        .map_err(storage_failed)?;
    let Some(version) = result else {
        // A full roster refuses new items.
        return Err(StanzaError::with_text(
            StanzaCondition::NotAllowed,
            "the roster is full",
        ));
    };
    push_item(ctx.core, me, &item, version);
    Ok(None)
}

/// A subscription presence from `from` to `to`, as the server generates it.
pub fn subscription_presence(from: &BareJid, to: &BareJid, kind: Kind) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", kind.as_type())
}

/// XEP-0237 §2: the roster versioning stream feature.
pub fn ver_feature() -> Element {
    Element::new("ver", ns::ROSTERVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(items: &str) -> Element {
        let text = format!("<query xmlns='jabber:iq:roster'>{items}</query>");
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), text.as_bytes())
            .unwrap()
    }

    #[test]
    fn parses_a_valid_set() {
        let q = query("<item jid='Dad@Example.org' name='Dad'><group>Family</group><group>Home</group></item>");
        let s = parse_set(&q).unwrap();
        assert_eq!(s.contact.as_str(), "dad@example.org");
        assert_eq!(s.name.as_deref(), Some("Dad"));
        assert_eq!(s.groups, vec!["Family", "Home"]);
        assert!(!s.remove);
        let q = query("<item jid='dad@example.org' subscription='remove'/>");
        assert!(parse_set(&q).unwrap().remove);
    }

    #[test]
    fn rejects_bad_items() {
        let cases = [
            ("", StanzaCondition::BadRequest),
            (
                "<item jid='a@x'/><item jid='b@x'/>",
                StanzaCondition::BadRequest,
            ),
            ("<item/>", StanzaCondition::BadRequest),
            ("<item jid='a@x/r'/>", StanzaCondition::BadRequest),
            ("<item jid='a@b@c'/>", StanzaCondition::JidMalformed),
            (
                "<item jid='a@x'><group>g</group><group>g</group></item>",
                StanzaCondition::BadRequest,
            ),
            (
                "<item jid='a@x'><group></group></item>",
                StanzaCondition::NotAcceptable,
            ),
        ];
        for (items, want) in cases {
            assert_eq!(
                parse_set(&query(items)).err().map(|e| e.condition),
                Some(want),
                "{items}"
            );
        }
        let long = format!("<item jid='a@x' name='{}'/>", "n".repeat(MAX_NAME + 1));
        assert_eq!(
            parse_set(&query(&long)).err().map(|e| e.condition),
            Some(StanzaCondition::NotAcceptable)
        );
    }

    #[test]
    fn item_serialization() {
        let mut it = Item::new("dad@x");
        it.name = Some("Dad".into());
        it.groups = vec!["Family".into()];
        it.state = crate::subscription::State::NonePendingOut;
        assert_eq!(
            item_element(&it).to_client_string(),
            "<item xmlns='jabber:iq:roster' jid='dad@x' subscription='none' name='Dad' \
             ask='subscribe'><group>Family</group></item>"
        );
    }
}
