//! XEP-0411: XEP-0402 bookmarks (PEP) kept in sync with XEP-0048 bookmarks in XEP-0049
//! private storage.

use super::notify::{notify_items, recipients, send_event};
use super::{parse_stored, MAX_ITEMS, MAX_NODES, QUOTA};
use crate::jid::BareJid;
use crate::modules::account_key;
use crate::router::Core;
use crate::stanza::bookmarks::{self, Bookmark};
use crate::stanza::pubsub::{self, AccessModel, ItemLimit, NodeConfig, SendLast};
use crate::storage::pep::{self as store, StoredItem};
use crate::xml::Element;

/// The configuration XEP-0402 §3.2 asks for: private, persistent, as many items as there
/// are rooms, never sent unasked.
pub(super) fn bookmarks_config() -> NodeConfig {
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
pub(super) async fn private_stored(core: &Core, owner: &BareJid, query: &Element) {
    if let Some(storage) = query.child("storage", bookmarks::NS_LEGACY) {
        bookmarks_from_legacy(core, owner, bookmarks::from_storage(storage), true).await;
    }
}

/// Makes the XEP-0402 node hold exactly `wanted` (keeping each room's `<extensions/>`,
/// which XEP-0048 cannot carry), creating it if needed, and notifies the changes. With
/// `replace` false, nothing happens if the node exists already.
pub(super) async fn bookmarks_from_legacy(
    core: &Core,
    owner: &BareJid,
    wanted: Vec<Bookmark>,
    replace: bool,
) {
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
pub(super) async fn bookmarks_from_private_if_missing(core: &Core, owner: &BareJid) {
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
pub(super) async fn bookmarks_to_private(core: &Core, owner: &BareJid) {
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
            crate::storage::private::set(c, &host, &user, &[entry], crate::modules::private::QUOTA)
        })
        .await;
    match result {
        Ok(true) => {}
        Ok(false) => log::warn!("pep: {owner}: bookmarks over the private storage quota"),
        Err(e) => log::error!("storage: {e}"),
    }
}
