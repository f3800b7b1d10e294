//! The router's table of connected resources, keyed by bare JID.
//!
//! Critical sections are short and never held across an `.await`.

use crate::jid::{BareJid, FullJid};
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
    /// Fetched the block list: receives block list pushes (XEP-0191).
    pub blocklist_interested: bool,
    /// Enabled message carbons (XEP-0280): gets copies of its account's messages.
    pub carbons: bool,
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
    /// The account's block list (XEP-0191), kept in memory while it is online.
    blocked: Arc<Vec<String>>,
}

/// All connected resources of all local accounts.
#[derive(Default)]
pub struct Router {
    table: RwLock<HashMap<BareJid, Account>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
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
            blocklist_interested: false,
            carbons: false,
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

use crate::jid::Jid;
use crate::modules::{self, Ctx, Iq, IqType, Target};
use crate::stanza::{StanzaCondition, StanzaError};
/// Where a stanza from a client is going (RFC 6120 §10, RFC 6121 §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// No `to`: the sender's own account (RFC 6120 §10.3).
    None,
    /// The server's domain.
    Host,
    /// A full JID at the server's domain without a localpart (`domain/resource`).
    HostResource,
    /// A bare JID at our domain (the sender's own included).
    Bare(BareJid),
    /// A full JID at our domain.
    Full(FullJid),
    /// Another domain: federation does not exist yet.
    Remote,
}

/// Classifies a stanza's `to` (already validated as a JID by the caller).
pub fn classify(domain: &str, to: Option<&str>) -> Result<Dest, StanzaError> {
    let to = to
        .map(Jid::parse)
        .transpose()
        .map_err(|_| StanzaError::new(StanzaCondition::JidMalformed))?;
    Ok(classify_jid(domain, to))
}

/// [`classify`] for a `to` parsed already.
pub fn classify_jid(domain: &str, to: Option<Jid>) -> Dest {
    let Some(jid) = to else {
        return Dest::None;
    };
    if jid.domain() != domain {
        return Dest::Remote;
    }
    match jid {
        Jid::Bare(b) if b.node().is_none() => Dest::Host,
        Jid::Full(f) if f.node().is_none() => Dest::HostResource,
        Jid::Bare(b) => Dest::Bare(b),
        Jid::Full(f) => Dest::Full(f),
    }
}

/// Routes a stanza from the session in `ctx` (its `from` already stamped). Answers for the
/// sender go to `ctx.replies`.
pub async fn route(ctx: &mut Ctx<'_>, stanza: Element) {
    let dest = match classify(&ctx.server.domain, stanza.attr("to")) {
        Ok(d) => d,
        Err(e) => {
            ctx.reply_error(&stanza, e);
            return;
        }
    };
    route_dest(ctx, stanza, dest).await;
}

/// [`route`] for a caller that has parsed the stanza's `to` already (the connection checks
/// it before routing): the JID is not prepared a second time.
pub async fn route_to(ctx: &mut Ctx<'_>, stanza: Element, to: Option<Jid>) {
    let dest = classify_jid(&ctx.server.domain, to);
    route_dest(ctx, stanza, dest).await;
}

async fn route_dest(ctx: &mut Ctx<'_>, stanza: Element, dest: Dest) {
    if dest == Dest::Remote {
        ctx.reply_error(
            &stanza,
            StanzaError::with_text(
                StanzaCondition::RemoteServerNotFound,
                "this server does not talk to other servers yet",
            ),
        );
        return;
    }
    match stanza.name.as_str() {
        "iq" => route_iq(ctx, stanza, dest).await,
        "message" => modules::message::route(ctx, stanza, dest).await,
        "presence" => modules::presence::route(ctx, stanza, dest).await,
        _ => {}
    }
}

/// IQs (RFC 6120 §8.2.3, RFC 6121 §8.5): get/set to the server or to an account are
/// answered by the modules; to a full JID they are delivered to that session.
async fn route_iq(ctx: &mut Ctx<'_>, iq: Element, dest: Dest) {
    // XEP-0191 §3.3 and §3.5: no IQs to or from blocked JIDs (the own account excepted).
    let other = match &dest {
        Dest::Bare(b) if *b != ctx.bare_jid() => Some(Jid::Bare(b.clone())),
        Dest::Full(f) if f.bare() != ctx.bare_jid() => Some(Jid::Full(f.clone())),
        _ => None,
    };
    if let Some(other) = other {
        let me = ctx.bare_jid();
        if ctx
            .server
            .router
            .blocked(&me)
            .is_some_and(|l| blocks(&l, &other))
        {
            if matches!(iq.attr("type"), Some("get") | Some("set")) {
                ctx.reply_error(&iq, modules::message::blocked_error());
            }
            return;
        }
        let from = Jid::Full(ctx.full_jid().clone());
        if modules::presence::is_blocked(ctx.server, &other.to_bare(), &from).await {
            unhandled(ctx, &iq);
            return;
        }
    }
    let target = match dest {
        Dest::None => Target::Account(ctx.bare_jid()),
        Dest::Host => Target::Host,
        Dest::Bare(b) => {
            if !ctx.account_exists(&b).await {
                ctx.reply_error(&iq, StanzaCondition::ServiceUnavailable.into());
                return;
            }
            Target::Account(b)
        }
        Dest::Full(f) => {
            match ctx.server.router.get(&f) {
                Some(h) => {
                    h.send(iq);
                }
                None => unhandled(ctx, &iq),
            }
            return;
        }
        Dest::HostResource | Dest::Remote => {
            unhandled(ctx, &iq);
            return;
        }
    };
    let ty = match iq.attr("type") {
        Some("get") => IqType::Get,
        Some("set") => IqType::Set,
        // Results and errors addressed to the server or an account (answers to our
        // pings and caps queries) end here.
        _ => {
            if target == Target::Host {
                // XEP-0115: answers to the server's caps queries (pep.rs).
                modules::pep::iq_response(ctx.server, ctx.full_jid(), &iq).await;
            }
            return;
        }
    };
    let Some(payload) = iq.first_element() else {
        ctx.reply_error(&iq, StanzaCondition::BadRequest.into());
        return;
    };
    let Some(handler) = modules::find(ty, &target, payload) else {
        unhandled(ctx, &iq);
        return;
    };
    let request = Iq {
        stanza: &iq,
        ty,
        target,
        payload,
    };
    match modules::call(handler, ctx, &request).await {
        Ok(payload) => ctx.replies.push(modules::result(&iq, payload)),
        Err(e) => ctx.reply_error(&iq, e),
    }
}

/// The unhandled case, written once: `service-unavailable` for IQ get/set and messages;
/// nothing for results and errors (an error is never answered with an error).
pub fn unhandled(ctx: &mut Ctx<'_>, stanza: &Element) {
    if stanza.name == "iq" && !matches!(stanza.attr("type"), Some("get") | Some("set")) {
        return;
    }
    ctx.reply_error(stanza, StanzaCondition::ServiceUnavailable.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_targets() {
        let bare = |s: &str| Dest::Bare(BareJid::parse(s).unwrap());
        let full = |s: &str| Dest::Full(FullJid::parse(s).unwrap());
        for (to, want) in [
            (None, Dest::None),
            (Some("example.org"), Dest::Host),
            (Some("EXAMPLE.org."), Dest::Host),
            (Some("example.org/x"), Dest::HostResource),
            (Some("a@example.org"), bare("a@example.org")),
            (Some("A@Example.org/R"), full("a@example.org/R")),
            (Some("a@other.org/r"), Dest::Remote),
        ] {
            assert_eq!(classify("example.org", to), Ok(want.clone()), "{to:?}");
            let parsed = to.map(|t| Jid::parse(t).unwrap());
            assert_eq!(classify_jid("example.org", parsed), want, "{to:?}");
        }
        assert_eq!(
            classify("example.org", Some("a@@b")),
            Err(StanzaError::new(StanzaCondition::JidMalformed))
        );
    }
}
