//! XEP-0163 Personal Eventing Protocol: every account is a virtual XEP-0060 pubsub service
//! on its bare JID. The subset clients use: publish with auto-create and publish-options
//! (§7.1, XEP-0223 private nodes), retract (§7.2), items (§6.5), create (§8.1), configure
//! (§8.2), default (§8.3), delete (§8.4) and purge (§8.5); the open, presence, roster and
//! whitelist access models; notifications filtered by the XEP-0115 `+notify` interests of
//! each available resource (see `caps.rs`), and the last published item for resources that
//! become available. With it: XEP-0411 (XEP-0402 bookmarks kept in sync with XEP-0048
//! bookmarks in XEP-0049 private storage) and XEP-0398 (the XEP-0084 avatar as the
//! XEP-0054 vCard's PHOTO and as the XEP-0153 hash in presence).

mod access;
mod avatar;
mod bookmarks_sync;
pub(crate) mod notify;

use super::{account_key, storage_failed, Ctx, Iq, IqResult, IqType, Target};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::router::{BoxFuture, Event};
use crate::stanza::bookmarks;
use crate::stanza::disco::Identity;
use crate::stanza::forms::DataForm;
use crate::stanza::pubsub::{
    self, error, NodeConfig, OwnerRequest, PublishItem, Request, NS as PUBSUB, NS_OWNER,
};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::pep::{self as store, StoredItem};
use crate::storage::StorageError;
use crate::xml::Element;
use bookmarks_sync::{bookmarks_from_private_if_missing, bookmarks_to_private};
use notify::{notify_items, recipients, send_event};
use std::sync::Arc;

pub use access::{access, relation, Relation};
pub use avatar::{
    vcard_with_avatar, with_avatar_hash, AVATAR_DATA, AVATAR_METADATA, VCARD_CONVERSION,
    VCARD_UPDATE,
};

/// Most items one node keeps (what `pubsub#max_items` `max` means).
pub const MAX_ITEMS: u32 = 256;
/// Most nodes one account has. Legacy OMEMO takes one node per device.
pub const MAX_NODES: usize = 256;
/// The largest item payload, serialized: room for an avatar of about 90 KiB in base64.
pub const MAX_PAYLOAD: usize = 128 * 1024;
/// Most bytes of items one account stores in all.
pub const QUOTA: u64 = 8 * 1024 * 1024;

/// The account features of this module (XEP-0163 §6.1, XEP-0060 §10): the pubsub ones,
/// XEP-0411's and XEP-0398's.
pub const ACCOUNT_FEATURES: &[&str] = &{
    let mut all = [""; pubsub::FEATURES.len() + 2];
    let mut i = 0;
    while i < pubsub::FEATURES.len() {
        all[i] = pubsub::FEATURES[i];
        i += 1;
    }
    all[i] = bookmarks::COMPAT;
    all[i + 1] = VCARD_CONVERSION;
    all
};

/// The identity an account shows in `disco#info` (XEP-0163 §6.1).
pub fn identity() -> Identity {
    Identity::new("pubsub", "pep", None)
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

/// What this module does when something happens elsewhere.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    match event {
        Event::Available {
            session,
            presence,
            previous,
        } => notify::available(core, session, presence, *previous).await,
        Event::SubscriptionApproved { owner, subscriber } => {
            notify::subscribed(core, owner, subscriber).await
        }
        Event::HostIqResponse {
            from: Jid::Full(from),
            iq,
        } => notify::iq_response(core, from, iq).await,
        Event::PrivateStored { owner, query } => {
            bookmarks_sync::private_stored(core, owner, query).await
        }
        Event::RemotePresence { from, presence } => {
            notify::remote_presence(core, from, presence).await
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
