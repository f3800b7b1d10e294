//! The `kicks` table: `roost deluser` and `roost passwd` (another process) ask a running
//! server to end an account's sessions by writing a row in the same transaction as their
//! change; the server's watcher (`kick::watch`) polls for new rows.
//!
//! The poll is cheap: `PRAGMA data_version` on the storage connection changes only when
//! another connection committed something, so an idle server looks at one counter.

use super::StorageError;
use rusqlite::{params, Connection};

/// Rows older than this are removed by the next kick (the server has long seen them).
const KEEP_SECONDS: i64 = 24 * 3600;

/// Why an account's sessions are ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The account was removed (`roost deluser`).
    Deleted,
    /// The password was changed (`roost passwd`).
    Password,
    /// Not an account: the group chat room `username` at service `host` had its members
    /// changed (`roost room-add`, `adduser`, `deluser`); the server reloads them.
    Room,
    /// The account's role changed (`roost role`); the server reloads it.
    Role,
    /// The account's roster item for the contact in `detail` changed (a circle); the
    /// server pushes it to the account's clients.
    Roster,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Deleted => "deleted",
            Reason::Password => "password",
            Reason::Room => "room",
            Reason::Role => "role",
            Reason::Roster => "roster",
        }
    }

    fn parse(s: &str) -> Reason {
        match s {
            "password" => Reason::Password,
            "room" => Reason::Room,
            "role" => Reason::Role,
            "roster" => Reason::Roster,
            _ => Reason::Deleted,
        }
    }
}

/// Asks a running server (if any) to end the sessions of `username@host`. Call it in the
/// transaction that makes the change, so that both or neither are seen.
pub fn request(
    conn: &Connection,
    host: &str,
    username: &str,
    reason: Reason,
) -> Result<(), StorageError> {
    request_with(conn, host, username, reason, "")
}

/// [`request`] with a detail (the contact of a `Roster` change).
pub fn request_with(
    conn: &Connection,
    host: &str,
    username: &str,
    reason: Reason,
    detail: &str,
) -> Result<(), StorageError> {
    let now = crate::util::datetime::unix_now();
    conn.execute(
        "DELETE FROM kicks WHERE at < ?1",
        params![now - KEEP_SECONDS],
    )?;
    conn.execute(
        "INSERT INTO kicks (host, username, reason, at, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![host, username, reason.as_str(), now, detail],
    )?;
    Ok(())
}

/// What the watcher has seen: the connection's `data_version` and the last kick's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    version: i64,
    last_id: i64,
}

/// A kick: (host, username, reason, detail).
pub type Kick = (String, String, Reason, String);

/// Kicks newer than `seen`, if another connection wrote anything since; the new `Seen`.
pub fn poll(conn: &Connection, seen: Option<Seen>) -> Result<(Seen, Vec<Kick>), StorageError> {
    let version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
    let last_id = match seen {
        Some(s) if s.version == version => return Ok((s, Vec::new())),
        Some(s) => s.last_id,
        // The first poll: kicks from before the server started are history.
        None => {
            let max: i64 =
                conn.query_row("SELECT coalesce(max(id), 0) FROM kicks", [], |r| r.get(0))?;
            return Ok((
                Seen {
                    version,
                    last_id: max,
                },
                Vec::new(),
            ));
        }
    };
    let mut st = conn.prepare_cached(
        "SELECT id, host, username, reason, detail FROM kicks WHERE id > ?1 ORDER BY id",
    )?;
    let mut new_last = last_id;
    let mut kicks = Vec::new();
    let rows = st.query_map(params![last_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    for row in rows {
        let (id, host, username, reason, detail) = row?;
        new_last = new_last.max(id);
        kicks.push((host, username, Reason::parse(&reason), detail));
    }
    Ok((
        Seen {
            version,
            last_id: new_last,
        },
        kicks,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_sees_only_kicks_written_by_another_connection_after_the_first_poll() {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::storage::open_connection(dir.path()).unwrap();
        let cli = crate::storage::open_connection(dir.path()).unwrap();
        request(&cli, "h", "old", Reason::Deleted).unwrap();
        let (seen, kicks) = poll(&server, None).unwrap();
        assert!(kicks.is_empty(), "kicks from before the start are history");
        let (again, kicks) = poll(&server, Some(seen)).unwrap();
        assert_eq!((again, kicks.len()), (seen, 0), "nothing written since");
        request(&cli, "h", "mom", Reason::Password).unwrap();
        request(&cli, "h", "dad", Reason::Deleted).unwrap();
        let (later, kicks) = poll(&server, Some(seen)).unwrap();
        assert_eq!(
            kicks,
            vec![
                ("h".into(), "mom".into(), Reason::Password, String::new()),
                ("h".into(), "dad".into(), Reason::Deleted, String::new())
            ]
        );
        assert!(later.last_id > seen.last_id);
        let (_, kicks) = poll(&server, Some(later)).unwrap();
        assert!(kicks.is_empty(), "each kick is seen once");
    }
}
