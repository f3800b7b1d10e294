//! Ending an account's live sessions from another process: the server task that polls the
//! `kicks` table (`storage::kicks`) once a second and closes the account's streams.

use crate::jid::BareJid;
use crate::router::Core;
use crate::stanza::error::{StreamCondition, StreamError};
use crate::storage::kicks::{poll, Reason};
use crate::storage::StorageError;
use std::sync::Arc;
use std::time::Duration;

/// How often the server looks for new kicks.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The stream error an account's sessions get.
pub fn stream_error(reason: Reason) -> StreamError {
    match reason {
        Reason::Deleted => StreamError::with_text(
            StreamCondition::NotAuthorized,
            "this account was deleted by the server's administrator",
        ),
        Reason::Password | Reason::Room | Reason::Role | Reason::Roster => StreamError::with_text(
            StreamCondition::NotAuthorized,
            "the password of this account was changed: log in with the new one",
        ),
    }
}

/// Closes every stream of `username` on this server; returns how many.
pub fn close_sessions(server: &Core, username: &str, reason: Reason) -> usize {
    let Ok(bare) = BareJid::new(Some(username), &server.domain) else {
        return 0;
    };
    let resources = server.sessions.resources(&bare);
    for r in &resources {
        r.handle.close(stream_error(reason));
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
                for (host, username, reason, detail) in kicks {
                    if reason == Reason::Role && host == server.domain {
                        log::info!("{username}@{host}: role changed by the command line");
                        crate::roles::reload(&server, &username).await;
                        continue;
                    }
                    if reason == Reason::Roster && host == server.domain {
                        crate::circles::push_roster(&server, &username, &detail).await;
                        continue;
                    }
                    if matches!(reason, Reason::Role | Reason::Roster) {
                        continue;
                    }
                    if reason == Reason::Room {
                        if let Some(muc) = server.state::<crate::muc::Handle>().0.get() {
                            if muc.domain == host {
                                log::info!(
                                    "{username}@{host}: members changed by the command line"
                                );
                                muc.reload_affiliations(&server, &username).await;
                            }
                        }
                        continue;
                    }
                    if host != server.domain {
                        continue;
                    }
                    let n = close_sessions(&server, &username, reason);
                    log::info!(
                        "{username}@{host}: {} by the command line; closed {n} session(s)",
                        match reason {
                            Reason::Deleted => "account deleted",
                            _ => "password changed",
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
