//! The router's table of connected resources, keyed by bare JID.
//!
//! Critical sections are short and never held across an `.await`.

use crate::jid::{BareJid, FullJid};
use crate::session::SessionHandle;
use std::collections::HashMap;
use std::sync::RwLock;

/// One connected resource as the router sees it.
#[derive(Clone, Debug)]
pub struct Resource {
    pub handle: SessionHandle,
    pub priority: i8,
    pub available: bool,
    pub interested: bool,
}

/// All connected resources of all local accounts.
#[derive(Default)]
pub struct Router {
    table: RwLock<HashMap<BareJid, Vec<Resource>>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a bound session. If the same full JID was bound already, the older session is
    /// removed and returned: the newer one wins (RFC 6120 §7.7.2.2), and the caller closes
    /// the older one with `conflict`.
    pub fn bind(&self, handle: SessionHandle) -> Option<SessionHandle> {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        let list = table.entry(handle.jid.bare()).or_default();
        let old = list
            .iter()
            .position(|r| r.handle.jid == handle.jid)
            .map(|i| list.swap_remove(i).handle);
        list.push(Resource {
            handle,
            priority: 0,
            available: false,
            interested: false,
        });
        old
    }

    /// Removes session `id` bound to `jid` (a newer session with the same JID stays).
    pub fn unbind(&self, jid: &FullJid, id: u64) {
        let bare = jid.bare();
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = table.get_mut(&bare) {
            list.retain(|r| r.handle.id != id);
            if list.is_empty() {
                table.remove(&bare);
            }
        }
    }

    /// The session bound to a full JID.
    pub fn get(&self, jid: &FullJid) -> Option<SessionHandle> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table
            .get(&jid.bare())?
            .iter()
            .find(|r| &r.handle.jid == jid)
            .map(|r| r.handle.clone())
    }

    /// The connected resources of an account.
    pub fn resources(&self, bare: &BareJid) -> Vec<Resource> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table.get(bare).cloned().unwrap_or_default()
    }

    /// Every bound session (for shutdown and account removal).
    pub fn all(&self) -> Vec<SessionHandle> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table
            .values()
            .flat_map(|l| l.iter().map(|r| r.handle.clone()))
            .collect()
    }

    /// Number of bound sessions.
    pub fn len(&self) -> usize {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

use crate::jid::Jid;
use crate::server::Server;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

/// Routes a stanza from the bound session `from` (its `from` already stamped) and returns
/// what goes back to the sender.
///
/// For now: stanzas to a connected full JID are delivered; everything else addressed to an
/// entity gets the one fallback error (`service-unavailable`), presence is dropped. The full
/// RFC 6121 §8.5 rules come with the instant-messaging modules.
pub fn route(server: &Server, from: &FullJid, stanza: Element) -> Vec<Element> {
    let target = match stanza.attr("to").map(Jid::parse) {
        Some(Ok(j)) => Some(j),
        Some(Err(_)) => {
            return StanzaError::new(StanzaCondition::JidMalformed)
                .reply_to(&stanza)
                .into_iter()
                .collect()
        }
        None => None,
    };
    if let Some(Jid::Full(full)) = &target {
        if let Some(h) = server.router.get(full) {
            h.send(stanza);
            return Vec::new();
        }
    }
    let _ = from;
    if stanza.name == "presence" {
        return Vec::new();
    }
    unhandled(&stanza)
}

/// The unhandled case, written once: `service-unavailable` for IQ get/set and messages;
/// nothing for results and errors (an error is never answered with an error).
pub fn unhandled(stanza: &Element) -> Vec<Element> {
    if stanza.name == "iq" && !matches!(stanza.attr("type"), Some("get") | Some("set")) {
        return Vec::new();
    }
    StanzaError::new(StanzaCondition::ServiceUnavailable)
        .reply_to(stanza)
        .into_iter()
        .collect()
}
