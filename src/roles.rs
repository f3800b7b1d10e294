//! Account roles (admin, normal, limited) as a running server knows them: the accounts
//! whose role is not `normal` are kept in memory (a family has a handful), so the router
//! and the group chat service check a stanza's sender without a storage call. Loaded at
//! start; `roost role` (another process) writes a `kicks` row (`Reason::Role`) and
//! `kick::watch` reloads that account; changes made in the server process (ad-hoc
//! commands, in-band registration) call [`reload`] or [`Roles::set`] themselves.
//!
//! What each role may do is in [`Role`]'s methods (`may_federate`, `may_invite`,
//! `may_create_rooms`); the rules are enforced in `router::send_to` (federation),
//! `muc::presence` (room creation) and `modules::adhoc` (admin commands).

use crate::jid::BareJid;
use crate::router::Core;
use crate::storage::StorageError;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use crate::storage::accounts::Role;

/// The roles of this server's accounts that are not `Normal`, by username.
#[derive(Default)]
pub struct Roles(RwLock<HashMap<String, Role>>);

impl Roles {
    /// The role of `username` (at the server's domain).
    pub fn get(&self, username: &str) -> Role {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(username).copied().unwrap_or_default()
    }

    /// Records the role of `username` (what storage now says).
    pub fn set(&self, username: &str, role: Role) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if role == Role::Normal {
            map.remove(username);
        } else {
            map.insert(username.to_owned(), role);
        }
    }

    /// The admins' usernames, sorted.
    pub fn admins(&self) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = map
            .iter()
            .filter(|(_, r)| **r == Role::Admin)
            .map(|(u, _)| u.clone())
            .collect();
        v.sort();
        v
    }
}

/// The role of a local account (`Normal` for a JID at another domain: it has none here).
pub fn of(core: &Core, jid: &BareJid) -> Role {
    match jid.node() {
        Some(user) if jid.domain() == core.domain => core.state::<Roles>().get(user),
        _ => Role::Normal,
    }
}

/// Loads every account's role (at start).
pub async fn load(core: &Arc<Core>) -> Result<(), StorageError> {
    let host = core.domain.clone();
    let roles = core
        .storage
        .call(move |c| crate::storage::accounts::special_roles(c, &host))
        .await?;
    let state = core.state::<Roles>();
    for (user, role) in roles {
        state.set(&user, role);
    }
    Ok(())
}

/// Reloads one account's role from storage (after `roost role`, or a deleted account).
pub async fn reload(core: &Arc<Core>, username: &str) {
    let host = core.domain.clone();
    let user = username.to_owned();
    match core
        .storage
        .call(move |c| crate::storage::accounts::role(c, &host, &user))
        .await
    {
        Ok(role) => core
            .state::<Roles>()
            .set(username, role.unwrap_or_default()),
        Err(e) => log::error!("reloading the role of {username}: {e}"),
    }
}
