//! Push notification registrations (XEP-0357), per account.

use super::StorageError;
use rusqlite::{params, Connection};

/// One app server registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The app server's JID.
    pub jid: String,
    pub node: String,
    /// The resource whose session enabled it.
    pub resource: String,
    /// The publish-options form, serialized ('' when none).
    pub options: String,
    /// Unix seconds.
    pub created: i64,
    /// Errors from the app server in a row.
    pub errors: u32,
}

/// An account's registrations, oldest first.
pub fn list(conn: &Connection, host: &str, user: &str) -> Result<Vec<Registration>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT jid, node, resource, options, created, errors FROM push_registrations
         WHERE host = ?1 AND username = ?2 ORDER BY created, jid, node",
    )?;
    let rows = st.query_map(params![host, user], |r| {
        Ok(Registration {
            jid: r.get(0)?,
            node: r.get(1)?,
            resource: r.get(2)?,
            options: r.get(3)?,
            created: r.get(4)?,
            errors: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds (or replaces, same app server and node) a registration, keeping at most `max`:
/// the oldest go. Returns how many were dropped.
pub fn enable(
    conn: &Connection,
    host: &str,
    user: &str,
    reg: &Registration,
    max: usize,
) -> Result<usize, StorageError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO push_registrations
         (host, username, jid, node, resource, options, created, errors)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
    )?
    .execute(params![
        host,
        user,
        reg.jid,
        reg.node,
        reg.resource,
        reg.options,
        reg.created
    ])?;
    let all = list(conn, host, user)?;
    let extra = all.len().saturating_sub(max);
    for old in all
        .iter()
        .filter(|r| !(r.jid == reg.jid && r.node == reg.node))
        .take(extra)
    {
        disable(conn, host, user, &old.jid, Some(&old.node))?;
    }
    Ok(extra)
}

/// Removes the registrations for app server `jid` (one node, or all); returns how many.
pub fn disable(
    conn: &Connection,
    host: &str,
    user: &str,
    jid: &str,
    node: Option<&str>,
) -> Result<usize, StorageError> {
    let n = match node {
        Some(n) => conn
            .prepare_cached(
                "DELETE FROM push_registrations
                 WHERE host = ?1 AND username = ?2 AND jid = ?3 AND node = ?4",
            )?
            .execute(params![host, user, jid, n])?,
        None => conn
            .prepare_cached(
                "DELETE FROM push_registrations WHERE host = ?1 AND username = ?2 AND jid = ?3",
            )?
            .execute(params![host, user, jid])?,
    };
    Ok(n)
}

/// Counts an app server's answer: an error adds one (returns the new count), a success
/// resets the count.
pub fn answered(
    conn: &Connection,
    host: &str,
    user: &str,
    jid: &str,
    node: &str,
    error: bool,
) -> Result<u32, StorageError> {
    let sql = if error {
        "UPDATE push_registrations SET errors = errors + 1
         WHERE host = ?1 AND username = ?2 AND jid = ?3 AND node = ?4"
    } else {
        "UPDATE push_registrations SET errors = 0
         WHERE host = ?1 AND username = ?2 AND jid = ?3 AND node = ?4"
    };
    conn.prepare_cached(sql)?
        .execute(params![host, user, jid, node])?;
    Ok(list(conn, host, user)?
        .into_iter()
        .find(|r| r.jid == jid && r.node == node)
        .map_or(0, |r| r.errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(jid: &str, node: &str, created: i64) -> Registration {
        Registration {
            jid: jid.into(),
            node: node.into(),
            resource: "phone".into(),
            options: String::new(),
            created,
            errors: 0,
        }
    }

    #[test]
    fn at_most_max_registrations_the_oldest_go() {
        let c = super::super::test_db();
        for i in 0..6 {
            enable(&c, "h", "mom", &reg("push.example", &format!("n{i}"), i), 5).unwrap();
        }
        let all = list(&c, "h", "mom").unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].node, "n1");
        // Same app server and node: replaced, not added.
        enable(&c, "h", "mom", &reg("push.example", "n5", 9), 5).unwrap();
        assert_eq!(list(&c, "h", "mom").unwrap().len(), 5);
        assert_eq!(
            answered(&c, "h", "mom", "push.example", "n5", true).unwrap(),
            1
        );
        assert_eq!(
            answered(&c, "h", "mom", "push.example", "n5", true).unwrap(),
            2
        );
        assert_eq!(
            answered(&c, "h", "mom", "push.example", "n5", false).unwrap(),
            0
        );
        assert_eq!(
            disable(&c, "h", "mom", "push.example", Some("n5")).unwrap(),
            1
        );
        assert_eq!(disable(&c, "h", "mom", "push.example", None).unwrap(), 4);
        assert!(list(&c, "h", "mom").unwrap().is_empty());
    }
}
