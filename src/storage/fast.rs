//! XEP-0484 FAST tokens: at most two per account and client — the one in use and, after a
//! rotation, the newer one not yet used — kept as SHA-256(token). Revoked with the password
//! (`accounts::set_credentials`) and the account (`accounts::delete`).

use super::StorageError;
use rusqlite::{params, Connection};

/// One stored token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub mechanism: String,
    /// SHA-256(token).
    pub key: Vec<u8>,
    pub issued: i64,
    pub expires: i64,
}

/// The tokens of `client` (the hex SHA-256 of its user-agent id), newest first.
pub fn tokens(
    conn: &Connection,
    host: &str,
    user: &str,
    client: &str,
) -> Result<Vec<Token>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT mechanism, key, issued, expires FROM fast_tokens
         WHERE host = ?1 AND username = ?2 AND client = ?3 ORDER BY expires DESC",
    )?;
    let rows = stmt.query_map(params![host, user, client], |r| {
        Ok(Token {
            mechanism: r.get(0)?,
            key: r.get(1)?,
            issued: r.get(2)?,
            expires: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a new token for `client`; its other tokens go, except `keep` (the one just used:
/// XEP-0484 §3.5, it stays valid until the new one is used).
pub fn issue(
    conn: &mut Connection,
    host: &str,
    user: &str,
    client: &str,
    token: &Token,
    keep: Option<&[u8]>,
) -> Result<(), StorageError> {
    let tx = conn.savepoint()?;
    tx.execute(
        "DELETE FROM fast_tokens WHERE host = ?1 AND username = ?2 AND client = ?3
         AND key IS NOT ?4",
        params![host, user, client, keep],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO fast_tokens
         (host, username, client, mechanism, key, issued, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            host,
            user,
            client,
            token.mechanism,
            token.key,
            token.issued,
            token.expires
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// A token was used: the client's tokens that expire earlier go (XEP-0484 §3.5), and this
/// one too when the client asked to invalidate it or it has expired.
pub fn used(
    conn: &Connection,
    host: &str,
    user: &str,
    client: &str,
    token: &Token,
    remove: bool,
) -> Result<(), StorageError> {
    conn.execute(
        "DELETE FROM fast_tokens WHERE host = ?1 AND username = ?2 AND client = ?3
         AND (expires < ?4 OR (?5 AND key = ?6))",
        params![host, user, client, token.expires, remove, token.key],
    )?;
    Ok(())
}

/// Every token of the account goes (a new password, a deleted account).
pub fn revoke_all(conn: &Connection, host: &str, user: &str) -> Result<usize, StorageError> {
    Ok(conn.execute(
        "DELETE FROM fast_tokens WHERE host = ?1 AND username = ?2",
        params![host, user],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: u8, expires: i64) -> Token {
        Token {
            mechanism: "HT-SHA-256-NONE".into(),
            key: vec![key; 32],
            issued: expires - 100,
            expires,
        }
    }

    #[test]
    fn issue_use_rotate_and_revoke() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let conn = &mut conn;
        let get = |c: &Connection| tokens(c, "h", "mom", "phone").unwrap();
        issue(conn, "h", "mom", "phone", &t(1, 1000), None).unwrap();
        issue(conn, "h", "mom", "laptop", &t(9, 1000), None).unwrap();
        // Rotation keeps the one in use beside the new one.
        issue(conn, "h", "mom", "phone", &t(2, 2000), Some(&[1; 32])).unwrap();
        assert_eq!(get(conn), [t(2, 2000), t(1, 1000)]);
        // Another rotation before the new one was used drops the unused one.
        issue(conn, "h", "mom", "phone", &t(3, 3000), Some(&[1; 32])).unwrap();
        assert_eq!(get(conn), [t(3, 3000), t(1, 1000)]);
        // Using the new one drops the older.
        used(conn, "h", "mom", "phone", &t(3, 3000), false).unwrap();
        assert_eq!(get(conn), [t(3, 3000)]);
        used(conn, "h", "mom", "phone", &t(3, 3000), true).unwrap();
        assert!(get(conn).is_empty());
        assert_eq!(tokens(conn, "h", "mom", "laptop").unwrap().len(), 1);
        assert_eq!(revoke_all(conn, "h", "mom").unwrap(), 1);
        assert!(tokens(conn, "h", "mom", "laptop").unwrap().is_empty());
    }
}
