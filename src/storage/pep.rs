//! Personal eventing (XEP-0163): each account's pubsub nodes with their configuration
//! (XEP-0060 §16.4), and their items, serialized, in publication order.

use super::StorageError;
use crate::stanza::pubsub::{AccessModel, ItemLimit, NodeConfig, SendLast};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// One stored item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredItem {
    pub id: String,
    /// When it was published, in Unix seconds.
    pub published: i64,
    /// The payload, serialized.
    pub xml: String,
}

const CONFIG_COLUMNS: &str = "access_model, persist_items, max_items, send_last, \
     deliver_notifications, deliver_payloads, notify_retract, notify_delete, title";

/// A node's configuration from its row (columns in `CONFIG_COLUMNS` order, from `at`).
/// Values this build does not know (a newer roost wrote them) fall back to the defaults.
fn config_from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<NodeConfig> {
    let d = NodeConfig::default();
    let access: String = r.get(at)?;
    let max: Option<i64> = r.get(at + 2)?;
    let send_last: String = r.get(at + 3)?;
    Ok(NodeConfig {
        access_model: AccessModel::parse(&access).unwrap_or(d.access_model),
        persist_items: r.get(at + 1)?,
        max_items: match max {
            None => ItemLimit::Max,
            Some(n) => ItemLimit::Count(u32::try_from(n).unwrap_or(u32::MAX)),
        },
        send_last: SendLast::parse(&send_last).unwrap_or(d.send_last),
        deliver_notifications: r.get(at + 4)?,
        deliver_payloads: r.get(at + 5)?,
        notify_retract: r.get(at + 6)?,
        notify_delete: r.get(at + 7)?,
        title: r.get(at + 8)?,
    })
}

fn max_column(limit: ItemLimit) -> Option<i64> {
    match limit {
        ItemLimit::Max => None,
        ItemLimit::Count(n) => Some(i64::from(n)),
    }
}

/// The configuration of node `node`, if it exists.
pub fn node(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
) -> Result<Option<NodeConfig>, StorageError> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {CONFIG_COLUMNS} FROM pep_nodes
                 WHERE host = ?1 AND username = ?2 AND node = ?3"
            ),
            params![host, user, node],
            |r| config_from_row(r, 0),
        )
        .optional()?)
}

/// Every node of an account with its configuration, sorted by name.
pub fn nodes(
    conn: &Connection,
    host: &str,
    user: &str,
) -> Result<Vec<(String, NodeConfig)>, StorageError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT node, {CONFIG_COLUMNS} FROM pep_nodes
         WHERE host = ?1 AND username = ?2 ORDER BY node"
    ))?;
    let rows = st.query_map(params![host, user], |r| {
        Ok((r.get(0)?, config_from_row(r, 1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many nodes an account has.
pub fn node_count(conn: &Connection, host: &str, user: &str) -> Result<usize, StorageError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM pep_nodes WHERE host = ?1 AND username = ?2",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Stores a node's configuration, creating the node if needed.
pub fn set_config(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    c: &NodeConfig,
) -> Result<(), StorageError> {
    conn.execute(
        &format!(
            "INSERT INTO pep_nodes (host, username, node, {CONFIG_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (host, username, node) DO UPDATE SET
                access_model = excluded.access_model,
                persist_items = excluded.persist_items,
                max_items = excluded.max_items,
                send_last = excluded.send_last,
                deliver_notifications = excluded.deliver_notifications,
                deliver_payloads = excluded.deliver_payloads,
                notify_retract = excluded.notify_retract,
                notify_delete = excluded.notify_delete,
                title = excluded.title"
        ),
        params![
            host,
            user,
            node,
            c.access_model.name(),
            c.persist_items,
            max_column(c.max_items),
            c.send_last.name(),
            c.deliver_notifications,
            c.deliver_payloads,
            c.notify_retract,
            c.notify_delete,
            c.title,
        ],
    )?;
    Ok(())
}

/// Deletes a node and its items; false if there was no such node.
pub fn delete_node(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
) -> Result<bool, StorageError> {
    purge(conn, host, user, node)?;
    let n = conn.execute(
        "DELETE FROM pep_nodes WHERE host = ?1 AND username = ?2 AND node = ?3",
        params![host, user, node],
    )?;
    Ok(n > 0)
}

/// Stores an item as the node's newest, replacing one with the same id.
pub fn put_item(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    item: &StoredItem,
) -> Result<(), StorageError> {
    retract(conn, host, user, node, &item.id)?;
    conn.execute(
        "INSERT INTO pep_items (host, username, node, item_id, published, xml)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![host, user, node, item.id, item.published, item.xml],
    )?;
    Ok(())
}

/// Deletes all but the `keep` newest items of a node; returns how many went.
pub fn prune(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    keep: u32,
) -> Result<usize, StorageError> {
    Ok(conn.execute(
        "DELETE FROM pep_items WHERE host = ?1 AND username = ?2 AND node = ?3 AND id NOT IN (
             SELECT id FROM pep_items WHERE host = ?1 AND username = ?2 AND node = ?3
             ORDER BY id DESC LIMIT ?4)",
        params![host, user, node, keep],
    )?)
}

/// Deletes one item; false if the node had no such item.
pub fn retract(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    id: &str,
) -> Result<bool, StorageError> {
    let n = conn.execute(
        "DELETE FROM pep_items
         WHERE host = ?1 AND username = ?2 AND node = ?3 AND item_id = ?4",
        params![host, user, node, id],
    )?;
    Ok(n > 0)
}

/// Deletes every item of a node; returns how many went.
pub fn purge(conn: &Connection, host: &str, user: &str, node: &str) -> Result<usize, StorageError> {
    Ok(conn.execute(
        "DELETE FROM pep_items WHERE host = ?1 AND username = ?2 AND node = ?3",
        params![host, user, node],
    )?)
}

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<StoredItem> {
    Ok(StoredItem {
        id: r.get(0)?,
        published: r.get(1)?,
        xml: r.get(2)?,
    })
}

/// The `max` newest items of a node (all if `None`), oldest first.
pub fn items(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    max: Option<usize>,
) -> Result<Vec<StoredItem>, StorageError> {
    let limit = max.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let mut st = conn.prepare_cached(
        "SELECT item_id, published, xml FROM (
             SELECT id, item_id, published, xml FROM pep_items
             WHERE host = ?1 AND username = ?2 AND node = ?3
             ORDER BY id DESC LIMIT ?4)
         ORDER BY id",
    )?;
    let rows = st.query_map(params![host, user, node, limit], item_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The items of a node with the given ids (those that exist), oldest first.
pub fn items_by_id(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
    ids: &[String],
) -> Result<Vec<StoredItem>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT item_id, published, xml, id FROM pep_items
         WHERE host = ?1 AND username = ?2 AND node = ?3 AND item_id = ?4",
    )?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(row) = st
            .query_row(params![host, user, node, id], |r| {
                Ok((r.get::<_, i64>(3)?, item_from_row(r)?))
            })
            .optional()?
        {
            if !found
                .iter()
                .any(|(_, i): &(i64, StoredItem)| i.id == row.1.id)
            {
                found.push(row);
            }
        }
    }
    found.sort_by_key(|(seq, _)| *seq);
    Ok(found.into_iter().map(|(_, i)| i).collect())
}

/// The newest item of a node.
pub fn last_item(
    conn: &Connection,
    host: &str,
    user: &str,
    node: &str,
) -> Result<Option<StoredItem>, StorageError> {
    Ok(items(conn, host, user, node, Some(1))?.pop())
}

/// Bytes of items an account stores in all.
pub fn account_bytes(conn: &Connection, host: &str, user: &str) -> Result<u64, StorageError> {
    let n: i64 = conn.query_row(
        "SELECT COALESCE(SUM(length(CAST(xml AS BLOB))), 0) FROM pep_items
         WHERE host = ?1 AND username = ?2",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_db as db;

    fn item(id: &str, xml: &str) -> StoredItem {
        StoredItem {
            id: id.into(),
            published: 1_700_000_000,
            xml: xml.into(),
        }
    }

    fn ids(items: &[StoredItem]) -> Vec<&str> {
        items.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn nodes_with_their_configuration() {
        let c = db();
        assert_eq!(node(&c, "h", "mom", "n").unwrap(), None);
        let cfg = NodeConfig {
            access_model: AccessModel::Whitelist,
            max_items: ItemLimit::Max,
            send_last: SendLast::Never,
            notify_retract: false,
            title: "Bookmarks".into(),
            ..NodeConfig::default()
        };
        set_config(&c, "h", "mom", "b", &cfg).unwrap();
        set_config(&c, "h", "mom", "a", &NodeConfig::default()).unwrap();
        assert_eq!(node(&c, "h", "mom", "b").unwrap(), Some(cfg.clone()));
        assert_eq!(node(&c, "h", "dad", "b").unwrap(), None);
        assert_eq!(node_count(&c, "h", "mom").unwrap(), 2);
        let all = nodes(&c, "h", "mom").unwrap();
        assert_eq!(all[0], ("a".to_owned(), NodeConfig::default()));
        assert_eq!(all[1], ("b".to_owned(), cfg.clone()));
        // Reconfigure in place.
        let open = NodeConfig {
            access_model: AccessModel::Open,
            max_items: ItemLimit::Count(7),
            ..cfg
        };
        set_config(&c, "h", "mom", "b", &open).unwrap();
        assert_eq!(node(&c, "h", "mom", "b").unwrap(), Some(open));
        assert_eq!(node_count(&c, "h", "mom").unwrap(), 2);
    }

    #[test]
    fn items_in_publication_order_with_replacement_and_pruning() {
        let c = db();
        set_config(&c, "h", "mom", "n", &NodeConfig::default()).unwrap();
        for id in ["a", "b", "c"] {
            put_item(&c, "h", "mom", "n", &item(id, &format!("<x>{id}</x>"))).unwrap();
        }
        assert_eq!(
            ids(&items(&c, "h", "mom", "n", None).unwrap()),
            ["a", "b", "c"]
        );
        // Publishing "a" again makes it the newest, with the new payload.
        put_item(&c, "h", "mom", "n", &item("a", "<x>a2</x>")).unwrap();
        let all = items(&c, "h", "mom", "n", None).unwrap();
        assert_eq!(ids(&all), ["b", "c", "a"]);
        assert_eq!(all[2].xml, "<x>a2</x>");
        assert_eq!(
            ids(&items(&c, "h", "mom", "n", Some(2)).unwrap()),
            ["c", "a"]
        );
        assert_eq!(last_item(&c, "h", "mom", "n").unwrap().unwrap().id, "a");
        let by_id = items_by_id(&c, "h", "mom", "n", &["a".into(), "zz".into(), "b".into()]);
        assert_eq!(ids(&by_id.unwrap()), ["b", "a"]);
        // Another node and another account are apart.
        put_item(&c, "h", "mom", "m", &item("a", "<y/>")).unwrap();
        put_item(&c, "h", "dad", "n", &item("a", "<z/>")).unwrap();
        assert_eq!(items(&c, "h", "mom", "n", None).unwrap().len(), 3);
        assert_eq!(prune(&c, "h", "mom", "n", 1).unwrap(), 2);
        assert_eq!(ids(&items(&c, "h", "mom", "n", None).unwrap()), ["a"]);
        assert!(retract(&c, "h", "mom", "n", "a").unwrap());
        assert!(!retract(&c, "h", "mom", "n", "a").unwrap());
        assert_eq!(last_item(&c, "h", "mom", "n").unwrap(), None);
        assert_eq!(items(&c, "h", "dad", "n", None).unwrap().len(), 1);
    }

    #[test]
    fn delete_purge_and_bytes() {
        let c = db();
        set_config(&c, "h", "mom", "n", &NodeConfig::default()).unwrap();
        put_item(&c, "h", "mom", "n", &item("a", "<x>é</x>")).unwrap();
        put_item(&c, "h", "mom", "n", &item("b", "<x/>")).unwrap();
        assert_eq!(account_bytes(&c, "h", "mom").unwrap(), 9 + 4);
        assert_eq!(purge(&c, "h", "mom", "n").unwrap(), 2);
        assert_eq!(account_bytes(&c, "h", "mom").unwrap(), 0);
        put_item(&c, "h", "mom", "n", &item("a", "<x/>")).unwrap();
        assert!(delete_node(&c, "h", "mom", "n").unwrap());
        assert!(!delete_node(&c, "h", "mom", "n").unwrap());
        assert_eq!(node(&c, "h", "mom", "n").unwrap(), None);
        assert_eq!(items(&c, "h", "mom", "n", None).unwrap(), vec![]);
    }

    #[test]
    fn deleting_the_account_deletes_its_nodes_and_items() {
        let mut c = db();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        super::super::accounts::create(&c, "h", "mom", &creds).unwrap();
        set_config(&c, "h", "mom", "n", &NodeConfig::default()).unwrap();
        put_item(&c, "h", "mom", "n", &item("a", "<x/>")).unwrap();
        set_config(&c, "h", "dad", "n", &NodeConfig::default()).unwrap();
        super::super::accounts::delete(&mut c, "h", "mom").unwrap();
        assert_eq!(node(&c, "h", "mom", "n").unwrap(), None);
        assert_eq!(items(&c, "h", "mom", "n", None).unwrap(), vec![]);
        assert!(node(&c, "h", "dad", "n").unwrap().is_some());
    }
}
