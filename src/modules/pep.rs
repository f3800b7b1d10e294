//! XEP-0163 Personal Eventing Protocol: every account is a virtual XEP-0060 pubsub service
//! on its bare JID. The subset clients use: publish with auto-create and publish-options
//! (§7.1, XEP-0223 private nodes), retract (§7.2), items (§6.5), create (§8.1), configure
//! (§8.2), default (§8.3), delete (§8.4) and purge (§8.5); the open, presence, roster and
//! whitelist access models; notifications filtered by the XEP-0115 `+notify` interests of
//! each available resource (see `caps.rs`), and the last published item for resources that
//! become available. With it: XEP-0411 (XEP-0402 bookmarks kept in sync with XEP-0048
//! bookmarks in XEP-0049 private storage) and XEP-0398 (the XEP-0084 avatar as the
//! XEP-0054 vCard's PHOTO and as the XEP-0153 hash in presence).

use super::caps::{interested, Features, Waiter};
use super::{account_key, storage_failed, Ctx, Iq, IqResult, IqType, Target};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::router::{blocks, send_to, BoxFuture, Event};
use crate::session::SessionHandle;
use crate::stanza::bookmarks::{self, Bookmark};
use crate::stanza::caps::Caps;
use crate::stanza::disco::Identity;
use crate::stanza::forms::DataForm;
use crate::stanza::pubsub::{
    self, error, AccessModel, ItemLimit, NodeConfig, OwnerRequest, PublishItem, Request, SendLast,
    NS as PUBSUB, NS_EVENT, NS_OWNER,
};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::pep::{self as store, StoredItem};
use crate::storage::StorageError;
use crate::xml::{Element, Node};
use std::sync::Arc;

/// Most items one node keeps (what `pubsub#max_items` `max` means).
pub const MAX_ITEMS: u32 = 256;
/// Most nodes one account has. Legacy OMEMO takes one node per device.
pub const MAX_NODES: usize = 256;
/// The largest item payload, serialized: room for an avatar of about 90 KiB in base64.
pub const MAX_PAYLOAD: usize = 128 * 1024;
/// Most bytes of items one account stores in all.
pub const QUOTA: u64 = 8 * 1024 * 1024;

/// XEP-0084 avatar data and metadata nodes.
pub const AVATAR_DATA: &str = "urn:xmpp:avatar:data";
pub const AVATAR_METADATA: &str = "urn:xmpp:avatar:metadata";
/// XEP-0153's presence extension.
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0398's account feature.
pub const VCARD_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";

/// The account features of this module (XEP-0163 §6.1, XEP-0060 §10).
pub const ACCOUNT_FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#config-node-max",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    bookmarks::COMPAT,
    VCARD_CONVERSION,
];

/// The identity an account shows in `disco#info` (XEP-0163 §6.1).
pub fn identity() -> Identity {
    Identity::new("pubsub", "pep", None)
}

/// How a requester stands to a node's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    Owner,
    /// In the owner's roster; `from`: subscribed to the owner's presence (`from`/`both`).
    Contact {
        from: bool,
    },
    Stranger,
}

/// May someone with `relation` retrieve items of a node with `model`? The refusals are
/// XEP-0060 §6.5.9's: presence `not-authorized` + `presence-subscription-required`, roster
/// `not-authorized` + `not-in-roster-group`, whitelist `not-allowed` + `closed-node`.
pub fn access(model: AccessModel, relation: Relation) -> Result<(), StanzaError> {
    match (model, relation) {
        (_, Relation::Owner)
        | (AccessModel::Open, _)
        | (AccessModel::Presence, Relation::Contact { from: true })
        | (AccessModel::Roster, Relation::Contact { .. }) => Ok(()),
        (AccessModel::Presence, _) => Err(error(
            StanzaCondition::NotAuthorized,
            "presence-subscription-required",
        )),
        (AccessModel::Roster, _) => {
            Err(error(StanzaCondition::NotAuthorized, "not-in-roster-group"))
        }
        (AccessModel::Whitelist, _) => Err(error(StanzaCondition::NotAllowed, "closed-node")),
    }
}

/// How `who` stands to `owner`, from the owner's roster.
pub async fn relation(core: &Core, owner: &BareJid, who: &BareJid) -> Relation {
    if owner == who {
        return Relation::Owner;
    }
    let (host, user) = account_key(owner);
    let contact = who.to_string();
    match core
        .storage
        .call(move |c| crate::storage::roster::item(c, &host, &user, &contact))
        .await
    {
        Ok(Some(i)) if i.in_roster => Relation::Contact {
            from: i.state.is_from(),
        },
        Ok(_) => Relation::Stranger,
        Err(e) => {
            log::error!("storage: {e}");
            Relation::Stranger
        }
    }
}

/// Runs `f` on the storage thread; a failure is an `internal-server-error`.
async fn db<R, F>(core: &Core, f: F) -> Result<R, StanzaError>
where
    R: Send + 'static,
    F: FnOnce(&mut rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
{
    core.storage.call(f).await.map_err(storage_failed)
}

/// The account an IQ addresses (the routes serve accounts only).
fn owner_of(iq: &Iq<'_>) -> Result<BareJid, StanzaError> {
    match &iq.target {
        Target::Account(a) => Ok(a.clone()),
        Target::Host => Err(StanzaCondition::ServiceUnavailable.into()),
    }
}

/// Only the owner publishes, configures and deletes (XEP-0163 §2.2): others get
/// `forbidden` (XEP-0060 §7.1.3.1).
fn only_owner(ctx: &Ctx<'_>, owner: &BareJid) -> Result<(), StanzaError> {
    if *owner == ctx.bare_jid() {
        Ok(())
    } else {
        Err(StanzaCondition::Forbidden.into())
    }
}

/// A random id for items and notifications.
fn new_id() -> String {
    crate::util::random_hex(8)
}

fn parse_stored(xml: &str) -> Option<Element> {
    crate::xml::parse::parse_element(&crate::xml::parse::Scope::default(), xml.as_bytes())
        .map_err(|e| log::error!("storage: a stored PEP item does not parse: {e}"))
        .ok()
}

/// `pubsub` requests (XEP-0060 §6.5, §7.1, §7.2, §8.1) to an account.
pub async fn handle(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let owner = owner_of(iq)?;
    match Request::parse(iq.payload, iq.ty == IqType::Set)? {
        Request::Publish {
            node,
            item,
            options,
        } => {
            only_owner(ctx, &owner)?;
            publish(ctx.core, &owner, &node, item, options).await
        }
        Request::Retract { node, ids, notify } => {
            only_owner(ctx, &owner)?;
            retract(ctx.core, &owner, &node, ids, notify).await
        }
        Request::Create { node, config } => {
            only_owner(ctx, &owner)?;
            create(ctx.core, &owner, &node, config).await
        }
        Request::Items {
            node,
            ids,
            max_items,
        } => items(ctx.core, &owner, &ctx.bare_jid(), &node, ids, max_items).await,
    }
}

/// `pubsub#owner` requests (XEP-0060 §8.2–8.5): the owner's only.
pub async fn handle_owner(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let owner = owner_of(iq)?;
    let request = OwnerRequest::parse(iq.payload, iq.ty == IqType::Set)?;
    only_owner(ctx, &owner)?;
    let core = ctx.core;
    let (host, user) = account_key(&owner);
    let wrap = |child: Element| Element::new("pubsub", NS_OWNER).with_child(child);
    match request {
        OwnerRequest::Default => Ok(Some(wrap(
            Element::new("default", NS_OWNER)
                .with_child(Element::from(&NodeConfig::default().to_form())),
        ))),
        OwnerRequest::ConfigureGet { node } => {
            let n = node.clone();
            let config = db(core, move |c| store::node(c, &host, &user, &n))
                .await?
                .ok_or(StanzaCondition::ItemNotFound)?;
            Ok(Some(wrap(
                Element::new("configure", NS_OWNER)
                    .with_attr("node", node)
                    .with_child(Element::from(&config.to_form())),
            )))
        }
        OwnerRequest::ConfigureSet { node, form } => {
            let Some(form) = form else {
                // Cancelled (§8.2.4.2): nothing changes.
                return Ok(None);
            };
            let n = node.clone();
            let changed = db(core, move |c| {
                let tx = c.savepoint()?;
                let Some(mut config) = store::node(&tx, &host, &user, &n)? else {
                    return Ok(Err(StanzaError::from(StanzaCondition::ItemNotFound)));
                };
                if let Err(e) = config.apply_form(&form) {
                    return Ok(Err(e));
                }
                store::set_config(&tx, &host, &user, &n, &config)?;
                let keep = if config.persist_items {
                    config.max_items.effective(MAX_ITEMS)
                } else {
                    0
                };
                let pruned = store::prune(&tx, &host, &user, &n, keep)?;
                tx.commit()?;
                Ok(Ok(pruned))
            })
            .await??;
            if changed > 0 && node == bookmarks::NS {
                bookmarks_to_private(core, &owner).await;
            }
            Ok(None)
        }
        OwnerRequest::Delete { node } => {
            let n = node.clone();
            let config = db(core, move |c| {
                let tx = c.savepoint()?;
                let config = store::node(&tx, &host, &user, &n)?;
                store::delete_node(&tx, &host, &user, &n)?;
                tx.commit()?;
                Ok(config)
            })
            .await?
            .ok_or(StanzaCondition::ItemNotFound)?;
            if config.notify_delete {
                let to = recipients(core, &owner, &node, &config).await;
                send_event(core, &owner, &to, &pubsub::event_delete(&node), None);
            }
            if node == bookmarks::NS {
                bookmarks_to_private(core, &owner).await;
            }
            Ok(None)
        }
        OwnerRequest::Purge { node } => {
            let n = node.clone();
            let config = db(core, move |c| {
                let config = store::node(c, &host, &user, &n)?;
                store::purge(c, &host, &user, &n)?;
                Ok(config)
            })
            .await?
            .ok_or(StanzaCondition::ItemNotFound)?;
            let to = recipients(core, &owner, &node, &config).await;
            send_event(core, &owner, &to, &pubsub::event_purge(&node), None);
            if node == bookmarks::NS {
                bookmarks_to_private(core, &owner).await;
            }
            Ok(None)
        }
    }
}

/// Why a publish was refused inside its transaction.
enum Refused {
    /// §7.1.5: the node exists with another configuration, or an option cannot be met.
    Precondition,
    TooManyNodes,
    Quota,
}

impl From<Refused> for StanzaError {
    fn from(r: Refused) -> StanzaError {
        match r {
            Refused::Precondition => error(StanzaCondition::Conflict, "precondition-not-met"),
            Refused::TooManyNodes => {
                let mut e = error(StanzaCondition::PolicyViolation, "max-nodes-exceeded");
                e.text = Some(format!("an account may have at most {MAX_NODES} nodes"));
                e
            }
            Refused::Quota => StanzaError::with_text(
                StanzaCondition::PolicyViolation,
                format!(
                    "personal eventing data is limited to {} MiB per account",
                    QUOTA / (1024 * 1024)
                ),
            ),
        }
    }
}

/// Stores a published item in one transaction: the node is created if missing (with the
/// publish-options applied) or checked against them; the item is kept if the node
/// persists items, the oldest beyond `max_items` go. Returns the node's configuration.
async fn store_item(
    core: &Core,
    owner: &BareJid,
    node: &str,
    item: StoredItem,
    options: Option<DataForm>,
) -> Result<NodeConfig, StanzaError> {
    let (host, user) = account_key(owner);
    let node = node.to_owned();
    db(core, move |c| {
        let tx = c.savepoint()?;
        let config = match store::node(&tx, &host, &user, &node)? {
            Some(config) => {
                if options.as_ref().is_some_and(|o| !config.meets(o)) {
                    return Ok(Err(Refused::Precondition));
                }
                config
            }
            None => {
                if store::node_count(&tx, &host, &user)? >= MAX_NODES {
                    return Ok(Err(Refused::TooManyNodes));
                }
                let config = match &options {
                    None => NodeConfig::default(),
                    Some(o) => match NodeConfig::default().with_options(o) {
                        Some(c) => c,
                        None => return Ok(Err(Refused::Precondition)),
                    },
                };
                store::set_config(&tx, &host, &user, &node, &config)?;
                config
            }
        };
        if config.persist_items {
            store::put_item(&tx, &host, &user, &node, &item)?;
            store::prune(
                &tx,
                &host,
                &user,
                &node,
                config.max_items.effective(MAX_ITEMS),
            )?;
            if store::account_bytes(&tx, &host, &user)? > QUOTA {
                return Ok(Err(Refused::Quota));
            }
        }
        tx.commit()?;
        Ok(Ok(config))
    })
    .await?
    .map_err(StanzaError::from)
}

/// Publish (§7.1): stores the item, tells the interested, answers with the item id.
async fn publish(
    core: &Arc<Core>,
    owner: &BareJid,
    node: &str,
    item: PublishItem,
    options: Option<DataForm>,
) -> IqResult {
    let xml = item.payload.to_string();
    if xml.len() > MAX_PAYLOAD {
        let mut e = error(StanzaCondition::NotAcceptable, "payload-too-big");
        e.text = Some(format!("items are limited to {} KiB", MAX_PAYLOAD / 1024));
        return Err(e);
    }
    let id = item.id.unwrap_or_else(new_id);
    let stored = StoredItem {
        id: id.clone(),
        published: crate::util::datetime::unix_now(),
        xml,
    };
    let config = store_item(core, owner, node, stored, options).await?;
    notify_items(core, owner, node, &config, vec![(id.clone(), item.payload)]).await;
    if node == bookmarks::NS {
        bookmarks_to_private(core, owner).await;
    }
    Ok(Some(
        Element::new("pubsub", PUBSUB).with_child(
            Element::new("publish", PUBSUB)
                .with_attr("node", node)
                .with_child(pubsub::item(PUBSUB, &id, None)),
        ),
    ))
}

/// Retract (§7.2): deletes the items; tells the interested if asked to or if the node says
/// so (`pubsub#notify_retract`).
async fn retract(
    core: &Arc<Core>,
    owner: &BareJid,
    node: &str,
    ids: Vec<String>,
    notify: bool,
) -> IqResult {
    let (host, user) = account_key(owner);
    let n = node.to_owned();
    let (config, gone) = db(core, move |c| {
        let tx = c.savepoint()?;
        let Some(config) = store::node(&tx, &host, &user, &n)? else {
            return Ok(None);
        };
        let mut gone = Vec::new();
        for id in ids {
            if store::retract(&tx, &host, &user, &n, &id)? {
                gone.push(id);
            }
        }
        tx.commit()?;
        Ok(Some((config, gone)))
    })
    .await?
    .ok_or(StanzaCondition::ItemNotFound)?;
    if gone.is_empty() {
        return Err(StanzaCondition::ItemNotFound.into());
    }
    if notify || config.notify_retract {
        let to = recipients(core, owner, node, &config).await;
        send_event(core, owner, &to, &pubsub::event_retract(node, &gone), None);
    }
    if node == bookmarks::NS {
        bookmarks_to_private(core, owner).await;
    }
    Ok(None)
}

/// Create (§8.1), with a configuration form (§8.1.3): `conflict` if the node exists.
async fn create(core: &Core, owner: &BareJid, node: &str, form: Option<DataForm>) -> IqResult {
    let mut config = NodeConfig::default();
    if let Some(f) = &form {
        config.apply_form(f)?;
    }
    let (host, user) = account_key(owner);
    let n = node.to_owned();
    db(core, move |c| {
        let tx = c.savepoint()?;
        if store::node(&tx, &host, &user, &n)?.is_some() {
            return Ok(Err(StanzaError::from(StanzaCondition::Conflict)));
        }
        if store::node_count(&tx, &host, &user)? >= MAX_NODES {
            return Ok(Err(Refused::TooManyNodes.into()));
        }
        store::set_config(&tx, &host, &user, &n, &config)?;
        tx.commit()?;
        Ok(Ok(()))
    })
    .await??;
    Ok(None)
}

/// Items (§6.5): all, the ones named, or the `max_items` newest, if the requester has
/// access.
async fn items(
    core: &Arc<Core>,
    owner: &BareJid,
    requester: &BareJid,
    node: &str,
    ids: Vec<String>,
    max_items: Option<usize>,
) -> IqResult {
    let relation = relation(core, owner, requester).await;
    if relation == Relation::Owner && node == bookmarks::NS {
        bookmarks_from_private_if_missing(core, owner).await;
    }
    let (host, user) = account_key(owner);
    let n = node.to_owned();
    let config = db(core, move |c| store::node(c, &host, &user, &n))
        .await?
        .ok_or(StanzaCondition::ItemNotFound)?;
    access(config.access_model, relation)?;
    let (host, user) = account_key(owner);
    let n = node.to_owned();
    let named = !ids.is_empty();
    let found = db(core, move |c| {
        if named {
            store::items_by_id(c, &host, &user, &n, &ids)
        } else {
            store::items(c, &host, &user, &n, max_items)
        }
    })
    .await?;
    if named && found.is_empty() {
        return Err(StanzaCondition::ItemNotFound.into());
    }
    let mut list = Element::new("items", PUBSUB).with_attr("node", node);
    for i in found {
        list.push(pubsub::item(PUBSUB, &i.id, parse_stored(&i.xml)));
    }
    Ok(Some(Element::new("pubsub", PUBSUB).with_child(list)))
}

/// The priority of a presence (RFC 6121 §4.7.2.3), 0 if absent or invalid.
fn priority(p: &Element) -> i8 {
    p.child("priority", ns::CLIENT)
        .and_then(|e| e.text().trim().parse().ok())
        .unwrap_or(0)
}

/// True if an available resource asked for notifications of `node` (XEP-0163 §4.2).
fn wants(core: &Core, presence: Option<&Arc<Element>>, node: &str) -> bool {
    presence
        .and_then(|p| core.state::<super::caps::CapsCache>().of_presence(p))
        .is_some_and(|f| interested(&f, node))
}

/// The sessions an event of `node` goes to (XEP-0163 §4.3): each available resource of
/// the owner, and each available resource with non-negative priority of each contact who
/// has a presence subscription to the owner and access to the node, if it asked for
/// `node+notify`; no one the owner blocks or who blocks the owner (§4.3.3 rule 3).
async fn recipients(
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
    let roster = super::presence::roster_items(core, owner).await;
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

/// Sends `event` from the owner's bare JID (XEP-0163 §4.3.1) to each session, as a
/// headline message; `delay` stamps a last published item with its publication time.
fn send_event(
    core: &Core,
    owner: &BareJid,
    to: &[SessionHandle],
    event: &Element,
    delay: Option<i64>,
) {
    for h in to {
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("from", owner.to_string())
            .with_attr("to", h.jid.to_string())
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
        send_to(core, m);
    }
}

/// One notification per published item, with the payload unless the node says not to
/// (`pubsub#deliver_payloads`).
async fn notify_items(
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
    if to.is_empty() {
        return;
    }
    for (id, payload) in published {
        let payload = config.deliver_payloads.then_some(payload);
        let event = pubsub::event_items(node, vec![pubsub::item(NS_EVENT, &id, payload)]);
        send_event(core, owner, &to, &event, None);
    }
}

/// Sends a session the last published item of each node it may see and asked for
/// (XEP-0163 §4.3.4), from its own account and from each contact whose presence it
/// receives; interests already in `before` (its previous presence's) are not new.
async fn send_last_items(
    core: &Arc<Core>,
    to: &SessionHandle,
    features: &Arc<Features>,
    before: Option<Arc<Features>>,
) {
    let me = to.jid.bare();
    let roster = super::presence::roster_items(core, &me).await;
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
async fn last_items_of(
    core: &Core,
    owner: &BareJid,
    to: &SessionHandle,
    features: &Arc<Features>,
    before: Option<Arc<Features>>,
    on_subscription: bool,
) {
    let me = to.jid.bare();
    let relation = relation(core, owner, &me).await;
    if let Relation::Contact { from: false } | Relation::Stranger = relation {
        return;
    }
    if relation != Relation::Owner
        && (core.is_blocked(owner, &Jid::Bare(me.clone())).await
            || core
                .sessions
                .blocked(&me)
                .is_some_and(|l| blocks(&l, &Jid::Bare(owner.clone()))))
    {
        return;
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
    for (node, config, item) in last {
        let payload = if config.deliver_payloads {
            parse_stored(&item.xml)
        } else {
            None
        };
        let event = pubsub::event_items(&node, vec![pubsub::item(NS_EVENT, &item.id, payload)]);
        send_event(
            core,
            owner,
            std::slice::from_ref(to),
            &event,
            Some(item.published),
        );
    }
}

/// What this module does when something happens elsewhere.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    match event {
        Event::Available {
            session,
            presence,
            previous,
        } => available(core, session, presence, *previous).await,
        Event::SubscriptionApproved { owner, subscriber } => {
            subscribed(core, owner, subscriber).await
        }
        Event::HostIqResponse {
            from: Jid::Full(from),
            iq,
        } => iq_response(core, from, iq).await,
        Event::PrivateStored { owner, query } => private_stored(core, owner, query).await,
        _ => {}
    }
}

/// Event (subscription approved): `subscriber` now has a presence subscription to `owner`,
/// an automatic PEP subscription (XEP-0163 §4.1): its available resources get the owner's
/// last published items they asked for (§4.3.4, "all new subscribers").
async fn subscribed(core: &Core, owner: &BareJid, subscriber: &BareJid) {
    for r in core.sessions.available(subscriber) {
        let features = r
            .presence
            .as_ref()
            .and_then(|p| core.state::<super::caps::CapsCache>().of_presence(p));
        if let (true, Some(features)) = (r.priority >= 0, features) {
            last_items_of(core, owner, &r.handle, &features, None, true).await;
        }
    }
}

/// Event (presence broadcast): a resource sent available presence. Once its caps are known
/// (asked of it with `disco#info` if they are new), it gets the last published items of
/// the nodes it newly asked for, if its priority is non-negative (XEP-0163 §4.3.3 rule 2).
async fn available(
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
    let before = previous.and_then(|p| core.state::<super::caps::CapsCache>().of_presence(p));
    match core.state::<super::caps::CapsCache>().features(&caps) {
        Some(features) => send_last_items(core, handle, &features, before).await,
        None => {
            let waiter = Waiter {
                jid: handle.jid.clone(),
                session: handle.id,
                before,
            };
            if let Some(query) =
                core.state::<super::caps::CapsCache>()
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
async fn iq_response(core: &Arc<Core>, from: &FullJid, iq: &Element) {
    let Some(answered) = core.state::<super::caps::CapsCache>().answer(iq, from) else {
        return;
    };
    for w in answered.waiters {
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

/// The table's `account_items` (`disco#items` on an account, XEP-0163 §6.2).
pub fn disco_items<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    requester: &'a BareJid,
) -> BoxFuture<'a, Result<Element, StanzaError>> {
    Box::pin(items_visible(core, owner, requester))
}

/// The table's `account_node_info` (`disco#info` on an account's node).
pub fn disco_node_info<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    requester: &'a BareJid,
    node: &'a str,
) -> BoxFuture<'a, Result<Element, StanzaError>> {
    Box::pin(node_info(core, owner, requester, node))
}

/// The table's presence filter (XEP-0398 §4).
pub fn with_avatar_hash<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    _requester: &'a BareJid,
    presence: Element,
) -> BoxFuture<'a, Element> {
    Box::pin(avatar_hash(core, owner, presence))
}

/// The table's vCard filter (XEP-0398 §3.1).
pub fn vcard_with_avatar<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    requester: &'a BareJid,
    vcard: Element,
) -> BoxFuture<'a, Element> {
    Box::pin(vcard_avatar(core, owner, requester, vcard))
}

/// `disco#items` on an account, XEP-0163 §6.2: the nodes the requester may see.
async fn items_visible(
    core: &Core,
    owner: &BareJid,
    requester: &BareJid,
) -> Result<Element, StanzaError> {
    let relation = relation(core, owner, requester).await;
    let (host, user) = account_key(owner);
    let nodes = db(core, move |c| store::nodes(c, &host, &user)).await?;
    let mut q = Element::new("query", ns::DISCO_ITEMS);
    for (node, config) in nodes {
        if access(config.access_model, relation).is_ok() {
            let mut item = Element::new("item", ns::DISCO_ITEMS)
                .with_attr("jid", owner.to_string())
                .with_attr("node", node);
            if !config.title.is_empty() {
                item.set_attr("name", config.title);
            }
            q.push(item);
        }
    }
    Ok(q)
}

/// `disco#info` on an account with a node, XEP-0060 §5.3: a node the requester may see is
/// a `pubsub/leaf`; any other is `item-not-found`, so that a node's existence does not
/// leak.
async fn node_info(
    core: &Core,
    owner: &BareJid,
    requester: &BareJid,
    node: &str,
) -> Result<Element, StanzaError> {
    let relation = relation(core, owner, requester).await;
    let (host, user) = account_key(owner);
    let n = node.to_owned();
    let visible = db(core, move |c| store::node(c, &host, &user, &n))
        .await?
        .is_some_and(|c| access(c.access_model, relation).is_ok());
    if !visible {
        return Err(StanzaCondition::ItemNotFound.into());
    }
    Ok(Element::new("query", ns::DISCO_INFO)
        .with_attr("node", node)
        .with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "pubsub")
                .with_attr("type", "leaf"),
        )
        .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", PUBSUB)))
}

/// The current XEP-0084 avatar of an account: the metadata's `<info/>` that is not an
/// external URL (XEP-0398 §3.1), as (id, type); `Some(None)` if the account published
/// that it has no avatar (an empty `<metadata/>`), `None` if it never published one.
async fn avatar_info(core: &Core, owner: &BareJid) -> Option<Option<(String, String)>> {
    let (host, user) = account_key(owner);
    let last = core
        .storage
        .call(move |c| store::last_item(c, &host, &user, AVATAR_METADATA))
        .await
        .map_err(|e| log::error!("storage: {e}"))
        .ok()??;
    let metadata = parse_stored(&last.xml)?;
    let info = metadata
        .elements()
        .filter(|e| e.is("info", AVATAR_METADATA) && e.attr("url").is_none())
        .find_map(|i| Some((i.attr("id")?.to_owned(), i.attr("type")?.to_owned())));
    Some(info)
}

/// XEP-0398 §4: the avatar's XEP-0153 hash in an account's available presence. A
/// client's own `<photo/>` (empty or not) is kept; an `<x/>` without one is filled.
async fn avatar_hash(core: &Core, owner: &BareJid, mut presence: Element) -> Element {
    let has_photo = presence
        .elements()
        .any(|x| x.is("x", VCARD_UPDATE) && x.child("photo", VCARD_UPDATE).is_some());
    if has_photo {
        return presence;
    }
    let Some(info) = avatar_info(core, owner).await else {
        return presence;
    };
    presence
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("x", VCARD_UPDATE)));
    let mut photo = Element::new("photo", VCARD_UPDATE);
    if let Some((id, _)) = info {
        photo = photo.with_text(id);
    }
    presence.push(Element::new("x", VCARD_UPDATE).with_child(photo));
    presence
}

/// XEP-0398 §3.1: the account's XEP-0084 avatar as the vCard's PHOTO, if the requester
/// may see the avatar data and its SHA-1 matches the metadata's id.
async fn vcard_avatar(
    core: &Core,
    owner: &BareJid,
    requester: &BareJid,
    mut vcard: Element,
) -> Element {
    let Some(Some((id, ty))) = avatar_info(core, owner).await else {
        return vcard;
    };
    let relation = relation(core, owner, requester).await;
    let (host, user) = account_key(owner);
    let wanted = id.clone();
    let data = core
        .storage
        .call(move |c| {
            let Some(config) = store::node(c, &host, &user, AVATAR_DATA)? else {
                return Ok(None);
            };
            if access(config.access_model, relation).is_err() {
                return Ok(None);
            }
            Ok(store::items_by_id(c, &host, &user, AVATAR_DATA, &[wanted])?.pop())
        })
        .await
        .map_err(|e| log::error!("storage: {e}"))
        .ok()
        .flatten();
    let Some(binval) = data
        .and_then(|i| parse_stored(&i.xml))
        .filter(|d| d.is("data", AVATAR_DATA))
        .map(|d| d.text())
    else {
        return vcard;
    };
    let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) else {
        return vcard;
    };
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if !hex.eq_ignore_ascii_case(&id) {
        log::debug!("pep: {owner}'s avatar data does not hash to its id");
        return vcard;
    }
    vcard
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("PHOTO", ns::VCARD)));
    vcard.push(
        Element::new("PHOTO", ns::VCARD)
            .with_child(Element::new("TYPE", ns::VCARD).with_text(ty))
            .with_child(Element::new("BINVAL", ns::VCARD).with_text(compact)),
    );
    vcard
}

/// The configuration XEP-0402 §3.2 asks for: private, persistent, as many items as there
/// are rooms, never sent unasked.
fn bookmarks_config() -> NodeConfig {
    NodeConfig {
        access_model: AccessModel::Whitelist,
        persist_items: true,
        max_items: ItemLimit::Max,
        send_last: SendLast::Never,
        ..NodeConfig::default()
    }
}

/// Event (private storage set, XEP-0411): XEP-0048 bookmarks stored in private storage
/// become XEP-0402 items: new or changed rooms are published, removed ones retracted, with
/// notifications. `query` is the private storage query that was stored.
async fn private_stored(core: &Core, owner: &BareJid, query: &Element) {
    if let Some(storage) = query.child("storage", bookmarks::NS_LEGACY) {
        bookmarks_from_legacy(core, owner, bookmarks::from_storage(storage), true).await;
    }
}

/// Makes the XEP-0402 node hold exactly `wanted` (keeping each room's `<extensions/>`,
/// which XEP-0048 cannot carry), creating it if needed, and notifies the changes. With
/// `replace` false, nothing happens if the node exists already.
async fn bookmarks_from_legacy(core: &Core, owner: &BareJid, wanted: Vec<Bookmark>, replace: bool) {
    let (host, user) = account_key(owner);
    let now = crate::util::datetime::unix_now();
    let result = core
        .storage
        .call(move |c| {
            let tx = c.savepoint()?;
            let config = match store::node(&tx, &host, &user, bookmarks::NS)? {
                Some(_) if !replace => return Ok(None),
                Some(config) => config,
                None => {
                    if store::node_count(&tx, &host, &user)? >= MAX_NODES {
                        return Ok(None);
                    }
                    let config = bookmarks_config();
                    store::set_config(&tx, &host, &user, bookmarks::NS, &config)?;
                    config
                }
            };
            let existing: Vec<Bookmark> = store::items(&tx, &host, &user, bookmarks::NS, None)?
                .iter()
                .filter_map(|i| Bookmark::from_pep(&i.id, &parse_stored(&i.xml)?))
                .collect();
            let mut published = Vec::new();
            for mut b in wanted.iter().cloned() {
                let old = existing.iter().find(|o| o.jid == b.jid);
                b.extensions = old.and_then(|o| o.extensions.clone());
                if old == Some(&b) {
                    continue;
                }
                let payload = b.to_pep();
                let item = StoredItem {
                    id: b.jid.clone(),
                    published: now,
                    xml: payload.to_string(),
                };
                store::put_item(&tx, &host, &user, bookmarks::NS, &item)?;
                published.push((b.jid, payload));
            }
            let mut retracted = Vec::new();
            for old in existing {
                if !wanted.iter().any(|b| b.jid == old.jid) {
                    store::retract(&tx, &host, &user, bookmarks::NS, &old.jid)?;
                    retracted.push(old.jid);
                }
            }
            store::prune(
                &tx,
                &host,
                &user,
                bookmarks::NS,
                config.max_items.effective(MAX_ITEMS),
            )?;
            if store::account_bytes(&tx, &host, &user)? > QUOTA {
                log::warn!("pep: {user}: bookmarks over the quota are not converted");
                return Ok(None);
            }
            tx.commit()?;
            Ok(Some((config, published, retracted)))
        })
        .await;
    let (config, published, retracted) = match result {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            log::error!("storage: {e}");
            return;
        }
    };
    notify_items(core, owner, bookmarks::NS, &config, published).await;
    if !retracted.is_empty() && config.notify_retract {
        let to = recipients(core, owner, bookmarks::NS, &config).await;
        send_event(
            core,
            owner,
            &to,
            &pubsub::event_retract(bookmarks::NS, &retracted),
            None,
        );
    }
}

/// Before the owner's first XEP-0402 read: bookmarks stored by XEP-0048 before the node
/// existed become its items.
async fn bookmarks_from_private_if_missing(core: &Core, owner: &BareJid) {
    let (host, user) = account_key(owner);
    let stored = core
        .storage
        .call(move |c| {
            if store::node(c, &host, &user, bookmarks::NS)?.is_some() {
                return Ok(None);
            }
            crate::storage::private::get(c, &host, &user, "storage", bookmarks::NS_LEGACY)
        })
        .await
        .map_err(|e| log::error!("storage: {e}"))
        .ok()
        .flatten();
    if let Some(storage) = stored.as_deref().and_then(parse_stored) {
        let wanted = bookmarks::from_storage(&storage);
        if !wanted.is_empty() {
            bookmarks_from_legacy(core, owner, wanted, false).await;
        }
    }
}

/// After a change of the XEP-0402 node (XEP-0411): the XEP-0048 `<storage/>` in private
/// storage is rewritten from its items, keeping what else it held (URL bookmarks).
async fn bookmarks_to_private(core: &Core, owner: &BareJid) {
    let (host, user) = account_key(owner);
    let result = core
        .storage
        .call(move |c| {
            let rooms: Vec<Bookmark> = store::items(c, &host, &user, bookmarks::NS, None)?
                .iter()
                .filter_map(|i| Bookmark::from_pep(&i.id, &parse_stored(&i.xml)?))
                .collect();
            let previous =
                crate::storage::private::get(c, &host, &user, "storage", bookmarks::NS_LEGACY)?
                    .as_deref()
                    .and_then(parse_stored);
            let storage = bookmarks::to_storage(&rooms, previous.as_ref());
            let entry = crate::storage::private::Entry {
                name: "storage".into(),
                ns: bookmarks::NS_LEGACY.into(),
                xml: storage.to_string(),
            };
            crate::storage::private::set(c, &host, &user, &[entry], super::private::QUOTA)
        })
        .await;
    match result {
        Ok(true) => {}
        Ok(false) => log::warn!("pep: {owner}: bookmarks over the private storage quota"),
        Err(e) => log::error!("storage: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_decisions() {
        use AccessModel::*;
        let owner = Relation::Owner;
        let both = Relation::Contact { from: true };
        let to_only = Relation::Contact { from: false };
        let stranger = Relation::Stranger;
        let ok = |m, r| access(m, r).is_ok();
        let refusal = |m, r| {
            let e = access(m, r).unwrap_err();
            (e.condition, e.app.map(|a| a.name).unwrap_or_default())
        };
        // The owner sees everything; open is for anyone.
        for m in [Open, Presence, Roster, Whitelist] {
            assert!(ok(m, owner), "{m:?}");
        }
        for r in [both, to_only, stranger] {
            assert!(ok(Open, r), "{r:?}");
        }
        // Presence: only contacts subscribed to the owner's presence.
        assert!(ok(Presence, both));
        for r in [to_only, stranger] {
            assert_eq!(
                refusal(Presence, r),
                (
                    StanzaCondition::NotAuthorized,
                    "presence-subscription-required".into()
                )
            );
        }
        // Roster: anyone in the roster.
        assert!(ok(Roster, both));
        assert!(ok(Roster, to_only));
        assert_eq!(
            refusal(Roster, stranger),
            (StanzaCondition::NotAuthorized, "not-in-roster-group".into())
        );
        // Whitelist: the owner only.
        for r in [both, to_only, stranger] {
            assert_eq!(
                refusal(Whitelist, r),
                (StanzaCondition::NotAllowed, "closed-node".into())
            );
        }
    }

    #[test]
    fn refusals_carry_pubsub_conditions() {
        let e = StanzaError::from(Refused::Precondition);
        assert_eq!(e.condition, StanzaCondition::Conflict);
        assert_eq!(e.app.unwrap().name, "precondition-not-met");
        let e = StanzaError::from(Refused::TooManyNodes);
        assert_eq!(e.condition, StanzaCondition::PolicyViolation);
        assert_eq!(
            StanzaError::from(Refused::Quota).condition,
            StanzaCondition::PolicyViolation
        );
    }

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

    #[test]
    fn features_are_sorted_and_named_for_pubsub() {
        let mut sorted = ACCOUNT_FEATURES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ACCOUNT_FEATURES.len());
        for f in ACCOUNT_FEATURES {
            assert!(
                f.starts_with("http://jabber.org/protocol/pubsub#")
                    || *f == bookmarks::COMPAT
                    || *f == VCARD_CONVERSION,
                "{f}"
            );
        }
    }
}
