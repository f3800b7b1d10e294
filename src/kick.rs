//! Ending an account's live sessions from another process: `roost deluser` and
//! `roost passwd` write a row into the `kicks` table (in the same transaction as their
//! change), and the server, which polls it once a second, closes the account's streams.
//!
//! The poll is cheap: `PRAGMA data_version` on the storage connection changes only when
//! another connection committed something, so an idle server looks at one counter.

use crate::jid::BareJid;
use crate::router::Core;
use crate::stanza::error::{StreamCondition, StreamError};
use crate::storage::StorageError;
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::time::Duration;

/// How often the server looks for new kicks.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Rows older than this are removed by the next kick (the server has long seen them).
const KEEP_SECONDS: i64 = 24 * 3600;

/// Why an account's sessions are ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The account was removed (`roost deluser`).
    Deleted,
    /// The password was changed (`roost passwd`).
    Password,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Deleted => "deleted",
            Reason::Password => "password",
        }
    }

    fn parse(s: &str) -> Reason {
        match s {
            "password" => Reason::Password,
            _ => Reason::Deleted,
        }
    }

    /// The stream error the account's sessions get.
    pub fn stream_error(self) -> StreamError {
        match self {
            Reason::Deleted => StreamError::with_text(
                StreamCondition::NotAuthorized,
                "this account was deleted by the server's administrator",
            ),
            Reason::Password => StreamError::with_text(
                StreamCondition::NotAuthorized,
                "the password of this account was changed: log in with the new one",
            ),
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
    let now = crate::util::datetime::unix_now();
    conn.execute(
        "DELETE FROM kicks WHERE at < ?1",
        params![now - KEEP_SECONDS],
    )?;
    conn.execute(
        "INSERT INTO kicks (host, username, reason, at) VALUES (?1, ?2, ?3, ?4)",
        params![host, username, reason.as_str(), now],
    )?;
    Ok(())
}

/// What the watcher has seen: the connection's `data_version` and the last kick's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    version: i64,
    last_id: i64,
}

/// A kick: (host, username, reason).
type Kick = (String, String, Reason);

/// Kicks newer than `seen`, if another connection wrote anything since; the new `Seen`.
fn poll(conn: &Connection, seen: Option<Seen>) -> Result<(Seen, Vec<Kick>), StorageError> {
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
    let mut st = conn
        .prepare_cached("SELECT id, host, username, reason FROM kicks WHERE id > ?1 ORDER BY id")?;
    let mut new_last = last_id;
    let mut kicks = Vec::new();
    let rows = st.query_map(params![last_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (id, host, username, reason) = row?;
        new_last = new_last.max(id);
        kicks.push((host, username, Reason::parse(&reason)));
    }
    Ok((
        Seen {
            version,
            last_id: new_last,
        },
        kicks,
    ))
}

/// Closes every stream of `username` on this server; returns how many.
pub fn close_sessions(server: &Core, username: &str, reason: Reason) -> usize {
    let Ok(bare) = BareJid::new(Some(username), &server.domain) else {
        return 0;
    };
    let resources = server.sessions.resources(&bare);
    for r in &resources {
        r.handle.close(reason.stream_error());
    }
    resources.len()
}

/// The server task: once a second, ends the sessions that `roost deluser`/`roost passwd`
/// asked to end. Stops at shutdown.
pub async fn watch(server: Arc<Core>) {
    use smol::future::FutureExt;
    let shutdown = server.shutdown_signal();
    let mut seen = None;
    loop {
        match server.storage.call(move |c| poll(c, seen)).await {
            Ok((now, kicks)) => {
                seen = Some(now);
                for (host, username, reason) in kicks {
                    if host != server.domain {
                        continue;
                    }
                    let n = close_sessions(&server, &username, reason);
                    log::info!(
                        "{username}@{host}: {} by the command line; closed {n} session(s)",
                        match reason {
                            Reason::Deleted => "account deleted",
                            Reason::Password => "password changed",
                        }
                    );
                }
            }
            Err(StorageError::Closed) => return,
            Err(e) => log::error!("looking for accounts to log out: {e}"),
        }
        let stop = async {
            let _ = shutdown.recv().await;
            true
        };
        let timer = async {
            smol::Timer::after(POLL_INTERVAL).await;
            false
        };
        if stop.or(timer).await {
            return;
        }
    }
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
                ("h".into(), "mom".into(), Reason::Password),
                ("h".into(), "dad".into(), Reason::Deleted)
            ]
        );
        assert!(later.last_id > seen.last_id);
        let (_, kicks) = poll(&server, Some(later)).unwrap();
        assert!(kicks.is_empty(), "each kick is seen once");
    }
}
