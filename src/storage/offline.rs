//! Offline messages (RFC 6121 §5, XEP-0160): stored in order, delivered with their stamp,
//! deleted only once written to a session.

use super::StorageError;
use rusqlite::{params, Connection};

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    /// XEP-0082 date-time at which the server stored it.
    pub stamp: String,
    /// The serialized stanza.
    pub stanza: String,
}

/// Stores a message unless the account already holds `limit`; returns false when full.
pub fn store(
    conn: &Connection,
    host: &str,
    user: &str,
    stamp: &str,
    stanza: &str,
    limit: usize,
) -> Result<bool, StorageError> {
    if count(conn, host, user)? >= limit {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO offline (host, username, stamp, stanza) VALUES (?1, ?2, ?3, ?4)",
        params![host, user, stamp, stanza],
    )?;
    Ok(true)
}

/// Messages waiting for an account, oldest first.
pub fn load(conn: &Connection, host: &str, user: &str) -> Result<Vec<Stored>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT id, stamp, stanza FROM offline WHERE host = ?1 AND username = ?2 ORDER BY id",
    )?;
    let rows = st.query_map(params![host, user], |r| {
        Ok(Stored {
            id: r.get(0)?,
            stamp: r.get(1)?,
            stanza: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes delivered messages.
pub fn delete(conn: &mut Connection, ids: &[i64]) -> Result<(), StorageError> {
    let tx = conn.savepoint()?;
    {
        let mut st = tx.prepare_cached("DELETE FROM offline WHERE id = ?1")?;
        for id in ids {
            st.execute(params![id])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Number of messages waiting.
pub fn count(conn: &Connection, host: &str, user: &str) -> Result<usize, StorageError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM offline WHERE host = ?1 AND username = ?2",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_delete_in_order_with_a_limit() {
        let mut c = crate::storage::test_db();
        assert!(store(&c, "h", "kid", "2026-01-01T00:00:00Z", "<m1/>", 2).unwrap());
        assert!(store(&c, "h", "kid", "2026-01-01T00:00:01Z", "<m2/>", 2).unwrap());
        assert!(!store(&c, "h", "kid", "2026-01-01T00:00:02Z", "<m3/>", 2).unwrap());
        let got = load(&c, "h", "kid").unwrap();
        assert_eq!(
            got.iter().map(|s| s.stanza.as_str()).collect::<Vec<_>>(),
            vec!["<m1/>", "<m2/>"]
        );
        delete(&mut c, &[got[0].id]).unwrap();
        assert_eq!(count(&c, "h", "kid").unwrap(), 1);
    }
}
