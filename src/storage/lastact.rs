//! Last activity (XEP-0012): when an account's last resource went offline, and its status.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension};

/// Records that the account went offline at `seconds` (Unix time) with `status`.
pub fn set(
    conn: &Connection,
    host: &str,
    user: &str,
    seconds: i64,
    status: &str,
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT OR REPLACE INTO last_activity (host, username, seconds, status)
         VALUES (?1, ?2, ?3, ?4)",
        params![host, user, seconds, status],
    )?;
    Ok(())
}

/// When the account was last seen going offline, and its status then.
pub fn get(
    conn: &Connection,
    host: &str,
    user: &str,
) -> Result<Option<(i64, String)>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT seconds, status FROM last_activity WHERE host = ?1 AND username = ?2",
            params![host, user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}
