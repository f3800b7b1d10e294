//! Rosters (RFC 6121 §2) with their subscription states (Appendix A), the pending inbound
//! requests kept outside the roster (§3.1.3), and the roster version (XEP-0237).

use super::StorageError;
use crate::subscription::State;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// One roster row. `in_roster == false` rows exist only to remember a pending inbound
/// subscription request from someone not in the roster; they are never shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub contact: String,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub state: State,
    pub in_roster: bool,
    /// The subscribe stanza to deliver again while the request is pending.
    pub request: Option<String>,
    /// RFC 6121 §3.4: the user pre-approved the contact's subscription request.
    pub approved: bool,
}

impl Item {
    /// A new, empty item for `contact`.
    pub fn new(contact: &str) -> Item {
        Item {
            contact: contact.to_owned(),
            name: None,
            groups: Vec::new(),
            state: State::None,
            in_roster: true,
            request: None,
            approved: false,
        }
    }
}

const COLUMNS: &str =
    "contact, name, groups, subscription, pending_out, pending_in, in_roster, request, approved";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Item> {
    let groups: String = r.get(2)?;
    let subscription: String = r.get(3)?;
    Ok(Item {
        contact: r.get(0)?,
        name: r.get(1)?,
        groups: if groups.is_empty() {
            Vec::new()
        } else {
            groups.split('\n').map(str::to_owned).collect()
        },
        state: State::from_parts(&subscription, r.get(4)?, r.get(5)?),
        in_roster: r.get(6)?,
        request: r.get(7)?,
        approved: r.get(8)?,
    })
}

/// Every row of an account's roster, hidden ones included, sorted by contact.
pub fn items(conn: &Connection, host: &str, user: &str) -> Result<Vec<Item>, StorageError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM roster WHERE host = ?1 AND username = ?2 ORDER BY contact"
    ))?;
    let rows = st.query_map(params![host, user], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One row, if present.
pub fn item(
    conn: &Connection,
    host: &str,
    user: &str,
    contact: &str,
) -> Result<Option<Item>, StorageError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM roster WHERE host = ?1 AND username = ?2 AND contact = ?3"
    ))?;
    Ok(st
        .query_row(params![host, user, contact], from_row)
        .optional()?)
}

/// Writes a row (insert or replace) and bumps the roster version; returns the new version.
/// A row in state None that is not in the roster is deleted instead: nothing to remember.
pub fn put(conn: &Connection, host: &str, user: &str, item: &Item) -> Result<u64, StorageError> {
    if !item.in_roster && item.state == State::None {
        conn.execute(
            "DELETE FROM roster WHERE host = ?1 AND username = ?2 AND contact = ?3",
            params![host, user, item.contact],
        )?;
    } else {
        conn.execute(
            "INSERT OR REPLACE INTO roster (host, username, contact, name, groups, subscription,
                 pending_out, pending_in, in_roster, request, approved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                host,
                user,
                item.contact,
                item.name,
                item.groups.join("\n"),
                item.state.subscription(),
                item.state.pending_out(),
                item.state.pending_in(),
                item.in_roster,
                if item.state.pending_in() {
                    item.request.as_deref()
                } else {
                    None
                },
                item.approved,
            ],
        )?;
    }
    bump_version(conn, host, user)
}

/// Removes a row and bumps the version; returns the new version.
pub fn remove(
    conn: &Connection,
    host: &str,
    user: &str,
    contact: &str,
) -> Result<u64, StorageError> {
    conn.execute(
        "DELETE FROM roster WHERE host = ?1 AND username = ?2 AND contact = ?3",
        params![host, user, contact],
    )?;
    bump_version(conn, host, user)
}

/// Number of rows shown in the roster.
pub fn count(conn: &Connection, host: &str, user: &str) -> Result<usize, StorageError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM roster WHERE host = ?1 AND username = ?2 AND in_roster = 1",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// The current roster version (0 for a roster never written).
pub fn version(conn: &Connection, host: &str, user: &str) -> Result<u64, StorageError> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT version FROM roster_version WHERE host = ?1 AND username = ?2",
            params![host, user],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn bump_version(conn: &Connection, host: &str, user: &str) -> Result<u64, StorageError> {
    let v: i64 = conn.query_row(
        "INSERT INTO roster_version (host, username, version) VALUES (?1, ?2, 1)
         ON CONFLICT(host, username) DO UPDATE SET version = version + 1
         RETURNING version",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_db as db;

    #[test]
    fn put_get_remove_and_versions() {
        let c = db();
        assert_eq!(version(&c, "h", "mom").unwrap(), 0);
        let mut it = Item::new("dad@h");
        it.name = Some("Dad".into());
        it.groups = vec!["Family".into(), "Home".into()];
        it.state = State::NonePendingOut;
        it.approved = true;
        assert_eq!(put(&c, "h", "mom", &it).unwrap(), 1);
        assert_eq!(item(&c, "h", "mom", "dad@h").unwrap(), Some(it.clone()));
        assert_eq!(count(&c, "h", "mom").unwrap(), 1);
        assert_eq!(remove(&c, "h", "mom", "dad@h").unwrap(), 2);
        assert_eq!(item(&c, "h", "mom", "dad@h").unwrap(), None);
    }

    #[test]
    fn hidden_pending_rows() {
        let c = db();
        let mut it = Item::new("stranger@h");
        it.in_roster = false;
        it.state = State::NonePendingIn;
        it.request = Some("<presence type='subscribe'/>".into());
        put(&c, "h", "mom", &it).unwrap();
        assert_eq!(count(&c, "h", "mom").unwrap(), 0);
        assert_eq!(items(&c, "h", "mom").unwrap(), vec![it.clone()]);
        // Back to None while hidden: forgotten.
        it.state = State::None;
        put(&c, "h", "mom", &it).unwrap();
        assert!(items(&c, "h", "mom").unwrap().is_empty());
    }
}
