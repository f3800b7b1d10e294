//! Blocking lists (XEP-0191).

use super::StorageError;
use rusqlite::{params, Connection};

/// The blocked JIDs of an account, sorted.
pub fn list(conn: &Connection, host: &str, user: &str) -> Result<Vec<String>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT jid FROM blocklist WHERE host = ?1 AND username = ?2 ORDER BY jid",
    )?;
    let rows = st.query_map(params![host, user], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Adds JIDs (already blocked ones are kept once).
pub fn add(
    conn: &mut Connection,
    host: &str,
    user: &str,
    jids: &[String],
) -> Result<(), StorageError> {
    let tx = conn.savepoint()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO blocklist (host, username, jid) VALUES (?1, ?2, ?3)",
        )?;
        for j in jids {
            st.execute(params![host, user, j])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Removes JIDs; an empty slice removes them all.
pub fn remove(
    conn: &mut Connection,
    host: &str,
    user: &str,
    jids: &[String],
) -> Result<(), StorageError> {
    let tx = conn.savepoint()?;
    if jids.is_empty() {
        tx.execute(
            "DELETE FROM blocklist WHERE host = ?1 AND username = ?2",
            params![host, user],
        )?;
    } else {
        let mut st = tx.prepare_cached(
            "DELETE FROM blocklist WHERE host = ?1 AND username = ?2 AND jid = ?3",
        )?;
        for j in jids {
            st.execute(params![host, user, j])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove() {
        let mut c = crate::storage::test_db();
        add(
            &mut c,
            "h",
            "mom",
            &["b@x".into(), "a@x".into(), "a@x".into()],
        )
        .unwrap();
        assert_eq!(list(&c, "h", "mom").unwrap(), vec!["a@x", "b@x"]);
        remove(&mut c, "h", "mom", &["a@x".into()]).unwrap();
        assert_eq!(list(&c, "h", "mom").unwrap(), vec!["b@x"]);
        remove(&mut c, "h", "mom", &[]).unwrap();
        assert!(list(&c, "h", "mom").unwrap().is_empty());
    }
}
