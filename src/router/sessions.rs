//! The table of connected resources of local accounts, keyed by bare JID: the one place
//! a session's routing state lives (after Prosody's doc/session.txt: *connected* is in the
//! table, *available* has `presence`, *interested* has `interested`).
//!
//! Critical sections are short and never held across an `.await`.

use crate::jid::{BareJid, FullJid, Jid};
use crate::session::SessionHandle;
use crate::xml::Element;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One connected resource as the router sees it.
#[derive(Clone, Debug)]
pub struct Resource {
    pub handle: SessionHandle,
    pub priority: i8,
    /// The last undirected available presence: `Some` makes this an available resource.
    pub presence: Option<Arc<Element>>,
    /// Fetched the roster: receives roster pushes.
    pub interested: bool,
    /// Enabled push notifications (XEP-0357): hibernates longer.
    pub push: bool,
}

impl Resource {
    pub fn is_available(&self) -> bool {
        self.presence.is_some()
    }
}

/// An account with at least one connected resource.
#[derive(Default)]
struct Account {
    resources: Vec<Resource>,
    /// The account's block list (XEP-0191), kept in memory while it is online: the router
    /// applies it to every stanza to and from the account.
    blocked: Arc<Vec<String>>,
}

/// All connected resources of all local accounts.
#[derive(Default)]
pub struct Sessions {
    table: RwLock<HashMap<BareJid, Account>>,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Account>> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Account>> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a bound session; `blocked` is the account's block list as stored (used if the
    /// account was not online yet). If the same full JID was bound already, the older
    /// session is removed and returned: the newer one wins (RFC 6120 §7.7.2.2), and the
    /// caller closes the older one with `conflict`.
    pub fn bind(&self, handle: SessionHandle, blocked: Vec<String>) -> Option<SessionHandle> {
        let mut table = self.write();
        let account = table.entry(handle.jid.bare()).or_insert_with(|| Account {
            resources: Vec::new(),
            blocked: Arc::new(blocked),
        });
        let list = &mut account.resources;
        let old = list
            .iter()
            .position(|r| r.handle.jid == handle.jid)
            .map(|i| list.swap_remove(i).handle);
        list.push(Resource {
            handle,
            priority: 0,
            presence: None,
            interested: false,
            push: false,
        });
        old
    }

    /// Removes session `id` bound to `jid` (a newer session with the same JID stays).
    pub fn unbind(&self, jid: &FullJid, id: u64) {
        let bare = jid.bare_str();
        let mut table = self.write();
        if let Some(account) = table.get_mut(bare) {
            account.resources.retain(|r| r.handle.id != id);
            if account.resources.is_empty() {
                table.remove(bare);
            }
        }
    }

    /// The routing state of session `id` bound to `jid`, if it is still bound.
    pub fn resource(&self, jid: &FullJid, id: u64) -> Option<Resource> {
        self.read()
            .get(jid.bare_str())?
            .resources
            .iter()
            .find(|r| r.handle.id == id)
            .cloned()
    }

    /// Changes what the router knows of session `id` (presence, priority, interest).
    pub fn update(&self, jid: &FullJid, id: u64, f: impl FnOnce(&mut Resource)) {
        let mut table = self.write();
        if let Some(r) = table
            .get_mut(jid.bare_str())
            .and_then(|a| a.resources.iter_mut().find(|r| r.handle.id == id))
        {
            f(r);
        }
    }

    /// The session bound to a full JID.
    pub fn get(&self, jid: &FullJid) -> Option<SessionHandle> {
        self.read()
            .get(jid.bare_str())?
            .resources
            .iter()
            .find(|r| &r.handle.jid == jid)
            .map(|r| r.handle.clone())
    }

    /// The connected resources of an account.
    pub fn resources(&self, bare: &BareJid) -> Vec<Resource> {
        self.read()
            .get(bare)
            .map(|a| a.resources.clone())
            .unwrap_or_default()
    }

    /// Runs `f` on the connected resources of an account (none if it is offline), under
    /// the table's read lock: for callers that need a few fields of a few resources rather
    /// than a copy of every one. `f` must be short and must not call the router.
    pub fn with_resources<R>(&self, bare: &BareJid, f: impl FnOnce(&[Resource]) -> R) -> R {
        let table = self.read();
        f(table.get(bare).map_or(&[], |a| &a.resources[..]))
    }

    /// The available resources of an account.
    pub fn available(&self, bare: &BareJid) -> Vec<Resource> {
        self.read()
            .get(bare)
            .map(|a| {
                a.resources
                    .iter()
                    .filter(|r| r.is_available())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The block list of an online account (`None` if it is not online).
    pub fn blocked(&self, bare: &BareJid) -> Option<Arc<Vec<String>>> {
        self.read().get(bare).map(|a| a.blocked.clone())
    }

    /// Replaces an online account's in-memory block list.
    pub fn set_blocked(&self, bare: &BareJid, list: Vec<String>) {
        if let Some(a) = self.write().get_mut(bare) {
            a.blocked = Arc::new(list);
        }
    }

    /// Every bound session (for shutdown and account removal).
    pub fn all(&self) -> Vec<SessionHandle> {
        self.read()
            .values()
            .flat_map(|a| a.resources.iter().map(|r| r.handle.clone()))
            .collect()
    }

    /// Number of bound sessions.
    pub fn len(&self) -> usize {
        self.read().values().map(|a| a.resources.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// XEP-0191 (with XEP-0016 matching): does a block list entry cover `jid`? An entry is a
/// full JID, a bare JID, a domain, or `domain/resource`.
pub fn blocks(list: &[String], jid: &Jid) -> bool {
    if list.is_empty() {
        return false;
    }
    let bare = jid.to_bare();
    list.iter().any(|entry| {
        entry == jid.as_str()
            || entry == bare.as_str()
            || entry == jid.domain()
            || jid
                .resource()
                .is_some_and(|r| jid.node().is_none() && *entry == format!("{}/{r}", jid.domain()))
    })
}

/// A feature's set of sessions by id (those that asked for block list pushes, those that
/// got their offline messages): what a module keeps per session when a flag is enough.
/// The module forgets a session on `Event::Unbound`.
#[derive(Default)]
pub struct SessionSet(std::sync::Mutex<std::collections::HashSet<u64>>);

impl SessionSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds session `id`; false if it was there already.
    pub fn insert(&self, id: u64) -> bool {
        self.lock().insert(id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.lock().contains(&id)
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}
