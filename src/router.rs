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
use crate::modules::{self, Ctx, Iq, IqType, Target};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

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
    let Some(to) = to else {
        return Ok(Dest::None);
    };
    let jid = Jid::parse(to).map_err(|_| StanzaError::new(StanzaCondition::JidMalformed))?;
    if jid.domain() != domain {
        return Ok(Dest::Remote);
    }
    Ok(match jid {
        Jid::Bare(b) if b.node().is_none() => Dest::Host,
        Jid::Full(f) if f.node().is_none() => Dest::HostResource,
        Jid::Bare(b) => Dest::Bare(b),
        Jid::Full(f) => Dest::Full(f),
    })
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
        // pings) end here.
        _ => return,
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
