//! THE list of features: every module, the disco features it adds and the IQ payloads it
//! answers, written out in one place (after Prosody's `iq-get/host/urn:xmpp:ping:ping`
//! vocabulary). `disco#info` is derived from this same list, and the unhandled case
//! (`service-unavailable`) is written once, in `router::unhandled`.

pub mod blocking;
pub mod message;
pub mod ping;
pub mod presence;
pub mod roster;

use crate::jid::{BareJid, FullJid};
use crate::server::Server;
use crate::session::Bound;
use crate::stanza::StanzaError;
use crate::xml::Element;
use std::sync::Arc;

/// IQ `type` a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IqType {
    Get,
    Set,
}

/// Whom an IQ is addressed to, as the router classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The server's domain (or no `to`).
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
    fn matches(self, t: &Target) -> bool {
        matches!(
            (self, t),
            (Serves::Both, _)
                | (Serves::Host, Target::Host)
                | (Serves::Account, Target::Account(_))
        )
    }
}

/// One IQ route: type, target kind and payload (name, namespace) → handler.
pub struct IqRoute {
    pub ty: IqType,
    pub serves: Serves,
    pub name: &'static str,
    pub ns: &'static str,
    pub handler: Handler,
}

/// One feature module.
pub struct Module {
    pub name: &'static str,
    /// `disco#info` features the server announces for it.
    pub features: &'static [&'static str],
    pub iq: &'static [IqRoute],
}

/// Every IQ handler, dispatched by [`call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Blocking,
    Ping,
    Roster,
}

/// The modules.
pub static MODULES: &[Module] = &[
    Module {
        name: "roster",
        // Roster versioning is a stream feature (XEP-0237), not a disco feature.
        features: &[],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "query",
                ns: crate::ns::ROSTER,
                handler: Handler::Roster,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "query",
                ns: crate::ns::ROSTER,
                handler: Handler::Roster,
            },
        ],
    },
    Module {
        name: "offline",
        // XEP-0160 has no IQs; XEP-0013's feature name tells clients messages are kept.
        features: &["msgoffline"],
        iq: &[],
    },
    Module {
        name: "blocking",
        features: &[blocking::NS],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "blocklist",
                ns: blocking::NS,
                handler: Handler::Blocking,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "block",
                ns: blocking::NS,
                handler: Handler::Blocking,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "unblock",
                ns: blocking::NS,
                handler: Handler::Blocking,
            },
        ],
    },
    Module {
        name: "ping",
        features: &[crate::ns::PING],
        iq: &[IqRoute {
            ty: IqType::Get,
            serves: Serves::Both,
            name: "ping",
            ns: crate::ns::PING,
            handler: Handler::Ping,
        }],
    },
];

/// What a handler has to work with.
pub struct Ctx<'a> {
    pub server: &'a Arc<Server>,
    /// The sending session.
    pub session: &'a mut Bound,
    /// Stanzas for the sender's own client, written after the handler returns.
    pub replies: &'a mut Vec<Element>,
    /// Offline messages among `replies`: deleted once the replies are written.
    pub offline_ids: Vec<i64>,
}

impl Ctx<'_> {
    pub fn full_jid(&self) -> &FullJid {
        self.session.full_jid()
    }

    pub fn bare_jid(&self) -> BareJid {
        self.session.full_jid().bare()
    }

    /// Queues the error reply to `stanza` for the sender (never for an error).
    pub fn reply_error(&mut self, stanza: &Element, err: StanzaError) {
        if let Some(r) = err.reply_to(stanza) {
            self.replies.push(r);
        }
    }

    /// True if `jid` is an account here (cheap when it is online or the sender's own).
    pub async fn account_exists(&self, jid: &BareJid) -> bool {
        if *jid == self.bare_jid() || !self.server.router.resources(jid).is_empty() {
            return true;
        }
        let (host, user) = (jid.domain().to_owned(), jid.node().unwrap_or("").to_owned());
        match self
            .server
            .storage
            .call(move |c| crate::storage::accounts::exists(c, &host, &user))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                log::error!("account lookup failed: {e}");
                false
            }
        }
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

/// The handler for an IQ get/set to `target`, if any module serves it.
pub fn find(ty: IqType, target: &Target, payload: &Element) -> Option<Handler> {
    MODULES
        .iter()
        .flat_map(|m| m.iq.iter())
        .find(|r| r.ty == ty && r.serves.matches(target) && payload.is(r.name, r.ns))
        .map(|r| r.handler)
}

/// Runs a handler.
pub async fn call(h: Handler, ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    match h {
        Handler::Blocking => blocking::handle(ctx, iq).await,
        Handler::Ping => ping::handle(ctx, iq).await,
        Handler::Roster => roster::handle(ctx, iq).await,
    }
}

/// Every feature of every module, for `disco#info`.
pub fn features() -> impl Iterator<Item = &'static str> {
    MODULES.iter().flat_map(|m| m.features.iter().copied())
}

/// The `type='result'` reply to `iq` with `payload`.
pub fn result(iq: &Element, payload: Option<Element>) -> Element {
    let mut r = Element::new("iq", crate::ns::CLIENT).with_attr("type", "result");
    if let Some(id) = iq.attr("id") {
        r.set_attr("id", id);
    }
    if let Some(from) = iq.attr("to") {
        r.set_attr("from", from);
    }
    if let Some(to) = iq.attr("from") {
        r.set_attr("to", to);
    }
    if let Some(p) = payload {
        r.push(p);
    }
    r
}
