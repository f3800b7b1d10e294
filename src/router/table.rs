//! The shape of the feature table (after Prosody's `iq-get/host/urn:xmpp:ping:ping`
//! vocabulary): what one feature module declares — disco identities, features and items,
//! stream features, IQ routes, message and presence routes, the events it listens to and
//! the state it keeps. The rows themselves are `modules::MODULES`; the router reads them
//! through [`Core`](super::Core) and never names a module.

use super::{Core, Dest, Origin};
use crate::jid::{BareJid, FullJid, Jid};
use crate::session::SessionHandle;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future that may move between worker threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// IQ `type` a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IqType {
    Get,
    Set,
}

/// Whom an IQ is addressed to, as the router classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server's domain (or no `to` from a client).
    Host,
    /// A local account's bare JID: the server answers on the account's behalf (the
    /// sender's own account included).
    Account(BareJid),
}

/// Which targets a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serves {
    Host,
    Account,
    Both,
}

impl Serves {
    pub fn matches(self, t: &Target) -> bool {
        matches!(
            (self, t),
            (Serves::Both, _)
                | (Serves::Host, Target::Host)
                | (Serves::Account, Target::Account(_))
        )
    }
}

/// An IQ handler: one async function, boxed by [`iq_handler!`](crate::iq_handler).
pub type IqFn = for<'a, 'b> fn(&'a mut Ctx<'b>, &'a Iq<'a>) -> BoxFuture<'a, IqResult>;

/// One IQ route: type, target kind and payload (name, namespace) → handler.
pub struct IqRoute {
    pub ty: IqType,
    pub serves: Serves,
    pub name: &'static str,
    pub ns: &'static str,
    pub handler: IqFn,
}

/// The two stanza kinds routed by handlers other than IQ routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Message,
    Presence,
}

/// A message or presence handler: gets the stanza (its `from` stamped, its `to`
/// classified) for a destination that is not a hosted service.
pub type StanzaFn = for<'a, 'b> fn(&'a mut Ctx<'b>, Element, Dest) -> BoxFuture<'a, ()>;

/// One message or presence route. For each kind, the route with the highest priority
/// whose `types` match gets the stanza; none is the unhandled case.
pub struct StanzaRoute {
    pub kind: Kind,
    /// The `type` attributes served (`""` for none); empty means every type.
    pub types: &'static [&'static str],
    pub priority: i32,
    pub handler: StanzaFn,
}

impl StanzaRoute {
    fn serves(&self, kind: Kind, ty: &str) -> bool {
        self.kind == kind && (self.types.is_empty() || self.types.contains(&ty))
    }
}

/// Something that happened, told to every module that listens (`Module::events`), in the
/// order of the table. Emitted in one place each; modules never call each other's hooks.
#[derive(Debug)]
pub enum Event<'a> {
    /// A resource sent available presence (initial or an update); `previous` is the one
    /// it replaced (`None`: initial presence).
    Available {
        session: &'a SessionHandle,
        presence: &'a Element,
        previous: Option<&'a Element>,
    },
    /// `subscriber` may now see `owner`'s presence (RFC 6121 §3.1.5).
    SubscriptionApproved {
        owner: &'a BareJid,
        subscriber: &'a BareJid,
    },
    /// A result or error IQ addressed to the server itself (answers to its own queries).
    HostIqResponse { from: &'a Jid, iq: &'a Element },
    /// An account stored XEP-0049 private XML.
    PrivateStored {
        owner: &'a BareJid,
        query: &'a Element,
    },
    /// A session left the router's table: per-session state may go.
    Unbound { jid: &'a FullJid, id: u64 },
    /// A resource at another server sent presence (available or unavailable) to a local
    /// account: what it announces (its caps) may matter here.
    RemotePresence {
        from: &'a FullJid,
        presence: &'a Element,
    },
    /// A message for `to` was stored offline: no session took it.
    StoredOffline {
        to: &'a BareJid,
        message: &'a Element,
    },
    /// A session lost its connection and waits for a resumption (XEP-0198), with
    /// `unacked` stanzas its client had not acknowledged.
    Hibernating { jid: &'a FullJid, unacked: usize },
    /// Stanzas came for a hibernating session (gathered for about a second, a call
    /// invitation at once): how many wait, and the last.
    QueuedWhileHibernated {
        jid: &'a FullJid,
        waiting: usize,
        last: &'a Element,
    },
    /// A result or error IQ addressed to a local account's bare JID: the answer to what
    /// the server sent in the account's name (a push notification).
    AccountIqResponse {
        account: &'a BareJid,
        from: &'a Jid,
        iq: &'a Element,
    },
}

/// The kinds of [`Event`], for the table's rows to say which ones a module listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Available,
    SubscriptionApproved,
    HostIqResponse,
    PrivateStored,
    Unbound,
    RemotePresence,
    StoredOffline,
    Hibernating,
    QueuedWhileHibernated,
    AccountIqResponse,
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Available { .. } => EventKind::Available,
            Event::SubscriptionApproved { .. } => EventKind::SubscriptionApproved,
            Event::HostIqResponse { .. } => EventKind::HostIqResponse,
            Event::PrivateStored { .. } => EventKind::PrivateStored,
            Event::Unbound { .. } => EventKind::Unbound,
            Event::RemotePresence { .. } => EventKind::RemotePresence,
            Event::StoredOffline { .. } => EventKind::StoredOffline,
            Event::Hibernating { .. } => EventKind::Hibernating,
            Event::QueuedWhileHibernated { .. } => EventKind::QueuedWhileHibernated,
            Event::AccountIqResponse { .. } => EventKind::AccountIqResponse,
        }
    }
}

/// A listener for [`Event`]s.
pub type EventFn = for<'a> fn(&'a Arc<Core>, &'a Event<'a>) -> BoxFuture<'a, ()>;

/// The events a module listens to, and its listener.
pub struct Listens {
    pub to: &'static [EventKind],
    pub handler: EventFn,
}

/// A module's `disco#items` of an account (owner, requester).
pub type AccountItemsFn = for<'a> fn(
    &'a Arc<Core>,
    &'a BareJid,
    &'a BareJid,
) -> BoxFuture<'a, Result<Element, StanzaError>>;

/// A module's `disco#info` on a node of an account (owner, requester, node).
pub type AccountNodeInfoFn = for<'a> fn(
    &'a Arc<Core>,
    &'a BareJid,
    &'a BareJid,
    &'a str,
) -> BoxFuture<'a, Result<Element, StanzaError>>;

/// Changes what an account shows before it leaves (owner, requester): the avatar hash in
/// presence, the avatar in a vCard.
pub type FilterFn =
    for<'a> fn(&'a Arc<Core>, &'a BareJid, &'a BareJid, Element) -> BoxFuture<'a, Element>;

/// Where a filter applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterPoint {
    /// An account's available presence, before it is broadcast.
    Presence,
    /// An account's vCard, before it is returned.
    Vcard,
}

/// One disco identity: category, type, name.
/// Answers `disco#items` or `disco#info` on a node of the server's domain for the
/// requester (a bare JID), if the module serves the node; the error if it may not see it.
pub type HostNodeFn = fn(&Core, &BareJid, &str) -> Option<Result<Element, StanzaError>>;

pub type IdentityRow = (&'static str, &'static str, Option<&'static str>);

/// When a stream feature is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamPhase {
    /// After authentication, before binding (with `<bind/>`).
    Authenticated,
}

/// One stream feature a module offers: the element, built when needed.
pub struct StreamFeature {
    pub phase: StreamPhase,
    pub element: fn(&Core) -> Element,
}

/// One feature module: everything it adds, in one row.
pub struct Module {
    pub name: &'static str,
    /// `disco#info` identities and features on the server's domain.
    pub identities: &'static [IdentityRow],
    pub features: &'static [&'static str],
    /// `disco#info` identities and features on an account's bare JID (what anyone may ask
    /// of an account, RFC 6121, XEP-0030).
    pub account_identities: &'static [IdentityRow],
    pub account_features: &'static [&'static str],
    /// `disco#items` on an account, and `disco#info` on an account's nodes.
    pub account_items: Option<AccountItemsFn>,
    pub account_node_info: Option<AccountNodeInfoFn>,
    /// `disco#items` and `disco#info` on a node of the server's domain (ad-hoc commands):
    /// `None` when the module does not serve that node.
    pub host_node_items: Option<HostNodeFn>,
    pub host_node_info: Option<HostNodeFn>,
    /// Extended `disco#info` forms (XEP-0128) on the server's domain, from the
    /// configuration.
    pub host_forms: Option<fn(&Core) -> Option<Element>>,
    /// Stream features offered to clients.
    pub stream_features: &'static [StreamFeature],
    pub iq: &'static [IqRoute],
    pub stanzas: &'static [StanzaRoute],
    pub filters: &'static [(FilterPoint, FilterFn)],
    pub events: Option<Listens>,
    /// The module's own state, one per server, made when the server starts; reached with
    /// [`Core::state`](super::Core::state).
    pub state: Option<fn() -> Box<dyn std::any::Any + Send + Sync>>,
}

impl Module {
    /// A row with nothing in it, for `..Module::EMPTY`.
    pub const EMPTY: Module = Module {
        name: "",
        identities: &[],
        features: &[],
        account_identities: &[],
        account_features: &[],
        account_items: None,
        account_node_info: None,
        host_node_items: None,
        host_node_info: None,
        host_forms: None,
        stream_features: &[],
        iq: &[],
        stanzas: &[],
        filters: &[],
        events: None,
        state: None,
    };
}

/// The feature table as the router uses it.
pub struct Table(pub &'static [Module]);

impl Table {
    /// The handler for an IQ get/set to `target`, if any module serves it.
    pub fn find_iq(&self, ty: IqType, target: &Target, payload: &Element) -> Option<IqFn> {
        self.0
            .iter()
            .flat_map(|m| m.iq.iter())
            .find(|r| r.ty == ty && r.serves.matches(target) && payload.is(r.name, r.ns))
            .map(|r| r.handler)
    }

    /// The message or presence handler for a stanza of `kind` and `type` attribute `ty`.
    pub fn find_stanza(&self, kind: Kind, ty: &str) -> Option<StanzaFn> {
        self.0
            .iter()
            .flat_map(|m| m.stanzas.iter())
            .filter(|r| r.serves(kind, ty))
            .max_by_key(|r| r.priority)
            .map(|r| r.handler)
    }

    /// Every module's host features.
    pub fn features(&self) -> impl Iterator<Item = &'static str> {
        self.0.iter().flat_map(|m| m.features.iter().copied())
    }

    /// Every module's account features.
    pub fn account_features(&self) -> impl Iterator<Item = &'static str> {
        self.0
            .iter()
            .flat_map(|m| m.account_features.iter().copied())
    }

    pub fn modules(&self) -> impl Iterator<Item = &'static Module> {
        self.0.iter()
    }

    /// Runs every filter at `point` over `stanza`, in the table's order.
    pub async fn filter(
        &self,
        core: &Arc<Core>,
        point: FilterPoint,
        owner: &BareJid,
        requester: &BareJid,
        mut stanza: Element,
    ) -> Element {
        for (_, f) in self
            .0
            .iter()
            .flat_map(|m| m.filters.iter())
            .filter(|(p, _)| *p == point)
        {
            stanza = f(core, owner, requester, stanza).await;
        }
        stanza
    }
}

/// What a handler has to work with: the server, where the stanza came from, who sent it,
/// and the answers for the sender.
pub struct Ctx<'a> {
    pub core: &'a Arc<Core>,
    pub origin: &'a Origin,
    /// The sender, as validated and stamped by the router.
    pub from: Jid,
    /// Stanzas for the sender, sent after the handler returns (written to a client's
    /// stream directly, in order).
    pub replies: &'a mut Vec<Element>,
    /// Offline messages among `replies`: deleted once the replies are written.
    pub offline_ids: Vec<i64>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        core: &'a Arc<Core>,
        origin: &'a Origin,
        from: Jid,
        replies: &'a mut Vec<Element>,
    ) -> Self {
        Ctx {
            core,
            origin,
            from,
            replies,
            offline_ids: Vec::new(),
        }
    }

    /// The sending local client session, if the stanza came from one.
    pub fn session(&self) -> Option<&'a SessionHandle> {
        match self.origin {
            Origin::Client(h) => Some(h),
            _ => None,
        }
    }

    /// The sending local client session, or `forbidden` for anyone else: for what only
    /// an account's own sessions may do.
    pub fn local(&self) -> Result<&'a SessionHandle, StanzaError> {
        self.session().ok_or_else(|| {
            StanzaError::with_text(StanzaCondition::Forbidden, "only for local sessions")
        })
    }

    /// The sender's bare JID.
    pub fn bare_jid(&self) -> BareJid {
        self.from.to_bare()
    }

    /// Queues the error reply to `stanza` for the sender (never for an error).
    pub fn reply_error(&mut self, stanza: &Element, err: StanzaError) {
        if let Some(r) = err.reply_to(stanza) {
            self.replies.push(r);
        }
    }

    /// True if `jid` is an account here (cheap when it is online or the sender's own).
    pub async fn account_exists(&self, jid: &BareJid) -> bool {
        self.core.account_exists(jid, Some(&self.from)).await
    }
}

/// An IQ as a handler sees it.
pub struct Iq<'a> {
    pub stanza: &'a Element,
    pub ty: IqType,
    pub target: Target,
    /// The one payload child of a get/set.
    pub payload: &'a Element,
}

/// A handler's answer: the result's payload, or an error.
pub type IqResult = Result<Option<Element>, StanzaError>;

/// Wraps an `async fn(&mut Ctx, &Iq) -> IqResult` as a table's [`IqFn`].
macro_rules! iq_handler {
    ($f:path) => {{
        fn handler<'a, 'b>(
            ctx: &'a mut $crate::router::Ctx<'b>,
            iq: &'a $crate::router::Iq<'a>,
        ) -> $crate::router::BoxFuture<'a, $crate::router::IqResult> {
            Box::pin($f(ctx, iq))
        }
        handler as $crate::router::IqFn
    }};
}

/// Wraps an `async fn(&mut Ctx, Element, Dest)` as a table's [`StanzaFn`].
macro_rules! stanza_handler {
    ($f:path) => {{
        fn handler<'a, 'b>(
            ctx: &'a mut $crate::router::Ctx<'b>,
            stanza: $crate::xml::Element,
            dest: $crate::router::Dest,
        ) -> $crate::router::BoxFuture<'a, ()> {
            Box::pin($f(ctx, stanza, dest))
        }
        handler as $crate::router::StanzaFn
    }};
}

/// Wraps an `async fn(&Arc<Core>, &Event)` as a table's [`EventFn`].
macro_rules! event_handler {
    ($f:path) => {{
        fn handler<'a>(
            core: &'a std::sync::Arc<$crate::router::Core>,
            event: &'a $crate::router::Event<'a>,
        ) -> $crate::router::BoxFuture<'a, ()> {
            Box::pin($f(core, event))
        }
        handler as $crate::router::EventFn
    }};
}

pub(crate) use {event_handler, iq_handler, stanza_handler};

/// The `type='result'` reply to `iq` with `payload`.
pub fn result(iq: &Element, payload: Option<Element>) -> Element {
    let mut r = crate::stanza::error::reply_frame(iq, "result");
    if let Some(p) = payload {
        r.push(p);
    }
    r
}
