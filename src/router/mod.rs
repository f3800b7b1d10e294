//! The routing core (RFC 6120 §8, §10; RFC 6121 §8): every stanza enters with an
//! [`Origin`] — a local client session, a hosted service on a subdomain of ours, a remote
//! domain, or the server itself — and goes through one processing step, [`process`]:
//! validate it once (`from` checked and stamped, `to` parsed, IQ shape), classify its
//! destination ([`Dest`]), apply the block lists, and hand it to a hosted service, to the
//! feature table's IQ, message or presence route, or answer the unhandled case once.
//!
//! Every module sends through one exit, [`send_to`], which knows local sessions and
//! accounts, hosted services ([`Service`]) and remote domains ([`Remote`]).
//!
//! The router never names a module: it reads the feature table (`table.rs`, rows in
//! `modules::MODULES`) through [`Core`].

mod core;
pub mod sessions;
pub mod table;

pub use self::core::{ConnGuard, Core, Parts, Throttle};
pub use sessions::{blocks, Resource, SessionSet, Sessions};
pub use table::*;

use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::session::SessionHandle;
// The `type` of an IQ stanza (four values); `IqType` here is the table's route type (get, set).
use crate::stanza::IqType as IqKind;
use crate::stanza::{MessageType, PresenceType};
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::Element;
use std::sync::Arc;

/// Where a stanza comes from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A local client session (c2s over TCP, or any other transport for clients).
    Client(SessionHandle),
    /// A hosted service on this domain (a component on a subdomain of ours).
    Service(Arc<str>),
    /// A remote domain (server-to-server).
    Remote(Arc<str>),
    /// The server itself, or a stanza it already processed once and hands on (its `from`
    /// is kept as it is).
    Host,
}

/// A hosted service on a subdomain of ours (group chats, upload, a test's echo
/// service): stanzas to its domain and to JIDs at it are handed to it, `from` stamped.
/// It answers through [`send_to`] or [`process`] with `Origin::Service`.
pub trait Service: Send + Sync {
    /// A stanza for the service (or one of its JIDs).
    fn receive(&self, core: &Arc<Core>, stanza: Element);
}

/// The way to other domains (federation): stanzas whose `to` is at another domain.
pub trait Remote: Send + Sync {
    /// Queues `stanza` for its `to` domain; the implementation bounces what it cannot
    /// deliver (`remote-server-not-found`, `remote-server-timeout`).
    fn send(&self, core: &Arc<Core>, domain: &str, stanza: Element);
}

/// Where a stanza is going (RFC 6120 §10, RFC 6121 §8).
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
    /// A hosted service's domain, or a JID at it.
    Service(Jid),
    /// A JID at another domain.
    Remote(Jid),
}

/// Classifies a stanza's `to`, parsed once by the caller, for a server without hosted
/// services.
pub fn classify_jid(domain: &str, to: Option<Jid>) -> Dest {
    let Some(jid) = to else {
        return Dest::None;
    };
    if jid.domain() != domain {
        return Dest::Remote(jid);
    }
    match jid {
        Jid::Bare(b) if b.node().is_none() => Dest::Host,
        Jid::Full(f) if f.node().is_none() => Dest::HostResource,
        Jid::Bare(b) => Dest::Bare(b),
        Jid::Full(f) => Dest::Full(f),
    }
}

impl Core {
    /// [`classify_jid`] knowing the hosted services.
    pub fn classify(&self, to: Option<Jid>) -> Dest {
        match classify_jid(&self.domain, to) {
            Dest::Remote(j) if self.service(j.domain()).is_some() => Dest::Service(j),
            d => d,
        }
    }

    /// True if `owner` (a local account) blocks stanzas from (or to) `other` (XEP-0191);
    /// the list comes from the table while the account is online, from storage otherwise.
    pub async fn is_blocked(&self, owner: &BareJid, other: &Jid) -> bool {
        if owner.domain() != self.domain {
            return false;
        }
        if let Some(list) = self.sessions.blocked(owner) {
            return blocks(&list, other);
        }
        let (host, name) = crate::storage::account_key(owner);
        let list = self
            .storage
            .call(move |c| crate::storage::blocking::list(c, &host, &name))
            .await
            .unwrap_or_default();
        blocks(&list, other)
    }
}

/// XEP-0191 §3.3's error for a stanza to a JID one blocks.
pub fn blocked_error() -> StanzaError {
    StanzaError {
        app: Some(Box::new(Element::new("blocked", ns::BLOCKING_ERRORS))),
        ..StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "you have blocked this address",
        )
    }
}

/// Checks and stamps `from` for `origin` (RFC 6120 §8.1.2): a client's must be its own
/// full or bare JID and becomes the full JID; a service's and a remote domain's must be
/// at their domain. Returns the sender.
fn stamp_from(core: &Core, origin: &Origin, stanza: &mut Element) -> Result<Jid, StreamError> {
    let invalid = |why: &str| StreamError::with_text(StreamCondition::InvalidFrom, why.to_owned());
    let given: Option<Jid> = match stanza.attr("from") {
        Some(f) => Some(Jid::parse(f).map_err(|_| invalid("the from address is not a JID"))?),
        None => None,
    };
    let from = match origin {
        Origin::Client(h) => {
            let full = &h.jid;
            let ok = match &given {
                None => true,
                Some(Jid::Full(f)) => f == full,
                Some(Jid::Bare(b)) => b.as_str() == full.bare_str(),
            };
            if !ok {
                return Err(invalid("the from address is not this session's"));
            }
            Jid::Full(full.clone())
        }
        Origin::Service(domain) | Origin::Remote(domain) => match given.clone() {
            Some(j) if j.domain() == &**domain => j,
            Some(_) => return Err(invalid("the from address is not at the sending domain")),
            None if matches!(origin, Origin::Service(_)) => {
                Jid::parse(domain).map_err(|_| invalid("bad service domain"))?
            }
            None => {
                return Err(StreamError::with_text(
                    StreamCondition::ImproperAddressing,
                    "a stanza between servers needs a from address",
                ))
            }
        },
        Origin::Host => match given.clone() {
            Some(j) => j,
            None => Jid::parse(&core.domain).map_err(|_| invalid("bad domain"))?,
        },
    };
    if given.as_ref() != Some(&from) {
        stanza.set_attr("from", from.as_str());
    }
    Ok(from)
}

/// RFC 6120 §8.2.3: an IQ has an id, and a get or set exactly one payload.
fn iq_is_valid(iq: &Element) -> bool {
    let payloads = iq.elements().count();
    iq.attr("id").is_some()
        && match IqKind::of(iq) {
            Some(IqKind::Get | IqKind::Set) => payloads == 1,
            Some(IqKind::Result) => payloads <= 1,
            Some(IqKind::Error) => true,
            None => false,
        }
}

/// The one processing step for a stanza from `origin`. Answers for the sender are put in
/// `replies` for a client session (its connection writes them in order) and sent through
/// [`send_to`] for every other origin. Returns the ids of offline messages among the
/// replies (deleted once written), or the stream error that ends the sender's stream.
pub async fn process(
    core: &Arc<Core>,
    origin: &Origin,
    mut stanza: Element,
    replies: &mut Vec<Element>,
) -> Result<Vec<i64>, StreamError> {
    // A client speaks jabber:client; a server jabber:server (or the client namespace, as
    // a hosted service's stanzas are built).
    let ns_ok = stanza.ns == ns::CLIENT
        || (stanza.ns == ns::SERVER && !matches!(origin, Origin::Client(_)));
    if !matches!(stanza.name.as_str(), "message" | "presence" | "iq") || !ns_ok {
        return Err(StreamError::with_text(
            StreamCondition::UnsupportedStanzaType,
            format!("unsupported top-level element <{}/>", stanza.name),
        ));
    }
    let from = stamp_from(core, origin, &mut stanza)?;
    let mut ctx = Ctx::new(core, origin, from, replies);
    let to = match stanza.attr("to").map(Jid::parse).transpose() {
        Ok(to) => to,
        Err(_) => {
            ctx.reply_error(&stanza, StanzaCondition::JidMalformed.into());
            return Ok(finish(ctx));
        }
    };
    if stanza.name == "iq" && !iq_is_valid(&stanza) {
        ctx.reply_error(
            &stanza,
            StanzaError::with_text(StanzaCondition::BadRequest, "invalid IQ"),
        );
        return Ok(finish(ctx));
    }
    let dest = core.classify(to);
    if matches!(origin, Origin::Remote(_)) {
        match dest {
            // RFC 6120 §8.1.1.1: between servers, a stanza names its recipient.
            Dest::None => {
                return Err(StreamError::with_text(
                    StreamCondition::ImproperAddressing,
                    "a stanza between servers needs a to address",
                ))
            }
            Dest::Remote(_) => {
                return Err(StreamError::with_text(
                    StreamCondition::HostUnknown,
                    "this server does not relay for other domains",
                ))
            }
            // A limited account hears from no one on other servers: to them, it is as
            // if it did not exist (RFC 6121 §8.5.1).
            Dest::Bare(ref b) if !crate::roles::of(core, b).may_federate() => {
                unhandled(&mut ctx, &stanza);
                return Ok(finish(ctx));
            }
            Dest::Full(ref f) if !crate::roles::of(core, &f.bare()).may_federate() => {
                unhandled(&mut ctx, &stanza);
                return Ok(finish(ctx));
            }
            _ => {}
        }
    }
    if !passes_block_lists(&mut ctx, &stanza, &dest).await {
        return Ok(finish(ctx));
    }
    dispatch(&mut ctx, stanza, dest).await;
    Ok(finish(ctx))
}

/// Sends the replies of a non-client origin; gives back the offline ids.
fn finish(ctx: Ctx<'_>) -> Vec<i64> {
    if !matches!(ctx.origin, Origin::Client(_)) {
        for r in ctx.replies.drain(..) {
            send_to(ctx.core, r);
        }
    }
    ctx.offline_ids
}

/// XEP-0191 §3.3, §3.5 for messages and IQs between a local account and anyone else: the
/// sender's own list (an error tells the sender) and the recipient's (as if the account
/// did not exist). Presence has its own rules (broadcasts skip blocked contacts) in the
/// presence module.
async fn passes_block_lists(ctx: &mut Ctx<'_>, stanza: &Element, dest: &Dest) -> bool {
    if stanza.name == "presence" {
        return true;
    }
    let me = ctx.bare_jid();
    let other = match dest {
        Dest::Bare(b) if *b != me => Jid::Bare(b.clone()),
        Dest::Full(f) if f.bare_str() != me.as_str() => Jid::Full(f.clone()),
        Dest::Remote(j) | Dest::Service(j) => j.clone(),
        _ => return true,
    };
    let request = stanza.name == "message" || IqKind::of(stanza).is_some_and(IqKind::is_request);
    let is_error = stanza.attr("type") == Some("error");
    if ctx
        .core
        .sessions
        .blocked(&me)
        .is_some_and(|l| blocks(&l, &other))
    {
        if request && !is_error {
            ctx.reply_error(stanza, blocked_error());
        }
        return false;
    }
    if matches!(dest, Dest::Bare(_) | Dest::Full(_)) {
        let from = ctx.from.clone();
        if ctx.core.is_blocked(&other.to_bare(), &from).await {
            if request && !is_error {
                ctx.reply_error(stanza, StanzaCondition::ServiceUnavailable.into());
            }
            return false;
        }
    }
    true
}

async fn dispatch(ctx: &mut Ctx<'_>, stanza: Element, dest: Dest) {
    // A client's presence to a service (joining a group chat) is directed presence: the
    // presence route remembers it, so the service hears when the session goes.
    let client_presence = stanza.name == "presence" && matches!(ctx.origin, Origin::Client(_));
    if let (Dest::Service(to), false) = (&dest, client_presence) {
        match ctx.core.service(to.domain()) {
            Some(s) => s.receive(ctx.core, stanza),
            None => unhandled(ctx, &stanza),
        }
        return;
    }
    match stanza.name.as_str() {
        "iq" => route_iq(ctx, stanza, dest).await,
        name => {
            let kind = if name == "message" {
                Kind::Message
            } else {
                Kind::Presence
            };
            let ty = stanza.attr("type").unwrap_or("");
            match ctx.core.table.find_stanza(kind, ty) {
                Some(handler) => handler(ctx, stanza, dest).await,
                None => unhandled(ctx, &stanza),
            }
        }
    }
}

/// IQs (RFC 6120 §8.2.3, RFC 6121 §8.5): get/set to the server or to an account are
/// answered by the table's IQ routes; to a full JID, a service or a remote domain they are
/// passed on.
async fn route_iq(ctx: &mut Ctx<'_>, iq: Element, dest: Dest) {
    let target = match dest {
        Dest::None => match ctx.session() {
            Some(_) => Target::Account(ctx.bare_jid()),
            None => Target::Host,
        },
        Dest::Host => Target::Host,
        Dest::Bare(b) => {
            if !ctx.account_exists(&b).await {
                ctx.reply_error(&iq, StanzaCondition::ServiceUnavailable.into());
                return;
            }
            Target::Account(b)
        }
        Dest::Full(f) => {
            match ctx.core.sessions.get(&f) {
                Some(h) => {
                    h.send(iq);
                }
                None => unhandled(ctx, &iq),
            }
            return;
        }
        Dest::Remote(_) => {
            send_to(ctx.core, iq);
            return;
        }
        Dest::HostResource | Dest::Service(_) => {
            unhandled(ctx, &iq);
            return;
        }
    };
    let ty = match IqKind::of(&iq) {
        Some(IqKind::Get) => IqType::Get,
        Some(IqKind::Set) => IqType::Set,
        // Results and errors addressed to the server or an account (answers to our
        // pings and caps queries) end here.
        _ => {
            let from = ctx.from.clone();
            match &target {
                Target::Host => {
                    ctx.core
                        .emit(Event::HostIqResponse {
                            from: &from,
                            iq: &iq,
                        })
                        .await
                }
                Target::Account(account) => {
                    ctx.core
                        .emit(Event::AccountIqResponse {
                            account,
                            from: &from,
                            iq: &iq,
                        })
                        .await
                }
            }
            return;
        }
    };
    let Some(payload) = iq.first_element() else {
        ctx.reply_error(&iq, StanzaCondition::BadRequest.into());
        return;
    };
    let Some(handler) = ctx.core.table.find_iq(ty, &target, payload) else {
        unhandled(ctx, &iq);
        return;
    };
    let request = Iq {
        stanza: &iq,
        ty,
        target,
        payload,
    };
    match handler(ctx, &request).await {
        Ok(payload) => ctx.replies.push(result(&iq, payload)),
        Err(e) => ctx.reply_error(&iq, e),
    }
}

/// The unhandled case, written once: `service-unavailable` for IQ get/set and messages;
/// nothing for results and errors (an error is never answered with an error) and presence.
pub fn unhandled(ctx: &mut Ctx<'_>, stanza: &Element) {
    let answered = match stanza.name.as_str() {
        "iq" => IqKind::of(stanza).is_some_and(IqKind::is_request),
        "message" => MessageType::of(stanza) != MessageType::Error,
        _ => false,
    };
    if answered {
        ctx.reply_error(stanza, StanzaCondition::ServiceUnavailable.into());
    }
}

/// The one exit: sends a stanza the server built (its `from` and `to` set) to where `to`
/// points — a local session, a local account's available resources (presence), a hosted
/// service or a remote domain. What needs the feature table (a message or IQ for an
/// account or the server) is processed as from the server; what the server made for a
/// resource that is gone (pushes, notifications, copies) is dropped.
pub fn send_to(core: &Core, stanza: Element) {
    let to = match stanza.attr("to").map(Jid::parse) {
        Some(Ok(j)) => j,
        _ => {
            log::warn!(
                "router: a <{}/> without a valid to was dropped",
                stanza.name
            );
            return;
        }
    };
    match core.classify(Some(to)) {
        Dest::Service(to) => match (core.service(to.domain()), core.arc()) {
            (Some(s), Some(core)) => s.receive(&core, stanza),
            _ => log::debug!("router: service {} is gone", to.domain()),
        },
        Dest::Remote(_) if !may_federate(core, &stanza) => refuse_federation(core, &stanza),
        Dest::Remote(to) => match (core.remote(), core.arc()) {
            (Some(r), Some(core)) => r.send(&core, to.domain(), stanza),
            _ => bounce(
                core,
                &stanza,
                StanzaError::with_text(
                    StanzaCondition::RemoteServerNotFound,
                    "this server does not talk to other servers",
                ),
            ),
        },
        Dest::Full(f) => {
            if stanza.name == "presence" && is_blocked_presence(core, &f.bare(), &stanza) {
                return;
            }
            // Clients' messages to a resource that is gone are the message module's
            // (RFC 6121 §8.5.3.2.1); they do not come through here.
            match core.sessions.get(&f) {
                Some(h) => {
                    h.send(stanza);
                }
                None => log::debug!("router: {f} is gone; a <{}/> was dropped", stanza.name),
            }
        }
        Dest::Bare(b) if stanza.name == "presence" => {
            deliver_presence(core, &b, &stanza);
        }
        Dest::None => log::warn!("router: a stanza without to"),
        _ => process_later(core, stanza),
    }
}

/// May the sender of this stanza, if it is a local account, talk to other servers? A
/// limited account (`roles`) may not.
fn may_federate(core: &Core, stanza: &Element) -> bool {
    // Errors may go: the server's answers for the account (`service-unavailable` to
    // a stranger's message) are errors.
    if stanza.attr("type") == Some("error") {
        return true;
    }
    match stanza.attr("from").and_then(|f| Jid::parse(f).ok()) {
        Some(from) => crate::roles::of(core, &from.to_bare()).may_federate(),
        None => true,
    }
}

/// The text of the error a limited account gets for a stanza to another server.
pub const NOT_FEDERATING: &str =
    "this account is limited to this server: it cannot reach people on other servers \
     (an admin can change that with `roost role`)";

/// A limited account's stanza to another server: requests (messages, IQ get/set,
/// subscription requests and answers) get `not-allowed` with the reason; what the server
/// sends on the account's behalf (presence broadcasts, notifications, results, errors)
/// is dropped.
fn refuse_federation(core: &Core, stanza: &Element) {
    let request = match stanza.name.as_str() {
        "message" => !matches!(
            MessageType::of(stanza),
            MessageType::Error | MessageType::Headline
        ),
        "iq" => IqKind::of(stanza).is_some_and(IqKind::is_request),
        _ => PresenceType::of(stanza).is_some_and(PresenceType::is_subscription),
    };
    log::debug!(
        "router: a <{}/> from a limited account to another server was refused",
        stanza.name
    );
    if request {
        bounce(
            core,
            stanza,
            StanzaError::with_text(StanzaCondition::NotAllowed, NOT_FEDERATING),
        );
    }
}

/// Processes a stanza from the server itself on its own task.
fn process_later(core: &Core, stanza: Element) {
    let Some(arc) = core.arc() else { return };
    core.spawn(async move {
        let mut replies = Vec::new();
        let _ = process(&arc, &Origin::Host, stanza, &mut replies).await;
    });
}

/// Does local account `to` block the sender of this presence?
fn is_blocked_presence(core: &Core, to: &BareJid, stanza: &Element) -> bool {
    match stanza.attr("from").map(Jid::parse) {
        Some(Ok(from)) => core.sessions.blocked(to).is_some_and(|l| blocks(&l, &from)),
        _ => false,
    }
}

/// The error reply to a stanza the server could not send, back to its sender.
pub fn bounce(core: &Core, stanza: &Element, err: StanzaError) {
    if let Some(reply) = err.reply_to(stanza) {
        if reply.attr("to").is_some() {
            send_to(core, reply);
        }
    }
}

/// A presence for a local bare JID: to each available resource (RFC 6121 §8.5.2.1.1),
/// unless the account blocks the sender. Subscription stanzas keep their bare `to`
/// (RFC 6121 §8.5.2.1.2: the server MUST NOT rewrite it); others get the resource's.
fn deliver_presence(core: &Core, to: &BareJid, stanza: &Element) {
    if is_blocked_presence(core, to, stanza) {
        return;
    }
    let keep_to = PresenceType::of(stanza).is_some_and(PresenceType::is_subscription);
    for r in core.sessions.available(to) {
        let mut s = stanza.clone();
        if !keep_to {
            s.set_attr("to", &r.handle.jid);
        }
        r.handle.send(s);
    }
}

/// Sends `<iq type='set'>` with `payload` to each resource of `account` that `wants` it:
/// roster pushes, block list pushes.
pub fn push_iq(
    core: &Core,
    account: &BareJid,
    wants: impl Fn(&Resource) -> bool,
    id_prefix: &str,
    payload: &Element,
) {
    // The router hands these to the sessions it picked itself: no `to` to parse again.
    let targets: Vec<SessionHandle> = core.sessions.with_resources(account, |all| {
        all.iter()
            .filter(|r| wants(r))
            .map(|r| r.handle.clone())
            .collect()
    });
    for h in targets {
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("{id_prefix}{}", crate::util::random_hex(6)))
            .with_attr("to", &h.jid)
            .with_child(payload.clone());
        h.send(iq);
    }
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
            (
                Some("a@other.org/r"),
                Dest::Remote(Jid::parse("a@other.org/r").unwrap()),
            ),
        ] {
            let parsed = to.map(|t| Jid::parse(t).unwrap());
            assert_eq!(classify_jid("example.org", parsed), want, "{to:?}");
        }
    }

    #[test]
    fn iq_shapes() {
        let iq = |s: &str| {
            crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), s.as_bytes())
                .unwrap()
        };
        assert!(iq_is_valid(&iq(
            "<iq id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        )));
        assert!(!iq_is_valid(&iq(
            "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
        )));
        assert!(!iq_is_valid(&iq("<iq id='1' type='get'/>")));
        assert!(!iq_is_valid(&iq(
            "<iq id='1' type='set'><a xmlns='x'/><b xmlns='x'/></iq>"
        )));
        assert!(iq_is_valid(&iq("<iq id='1' type='result'/>")));
        assert!(iq_is_valid(&iq("<iq id='1' type='error'/>")));
        assert!(!iq_is_valid(&iq("<iq id='1' type='other'/>")));
    }
}
