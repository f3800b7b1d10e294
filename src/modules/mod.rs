//! THE list of features: every module, the disco features it adds and the IQ payloads it
//! answers, written out in one place (after Prosody's `iq-get/host/urn:xmpp:ping:ping`
//! vocabulary). `disco#info` is derived from this same list, and the unhandled case
//! (`service-unavailable`) is written once, in `router::unhandled`.

pub mod archive;
pub mod blocking;
pub mod caps;
pub mod carbons;
pub mod delivery;
pub mod disco;
pub mod last;
pub mod message;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod roster;
pub mod time;
pub mod vcard;
pub mod version;

use crate::jid::{BareJid, FullJid};
use crate::ns;
use crate::server::Server;
use crate::session::Bound;
use crate::stanza::mam;
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
    /// `disco#info` features an account's bare JID announces for it: what anyone may ask
    /// of an account (RFC 6121, XEP-0030).
    pub account_features: &'static [&'static str],
    pub iq: &'static [IqRoute],
}

/// Every IQ handler, dispatched by [`call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Blocking,
    Roster,
    Ping,
    DiscoInfo,
    DiscoItems,
    Version,
    Time,
    Last,
    VcardGet,
    VcardSet,
    PrivateGet,
    PrivateSet,
    ArchiveQuery,
    ArchiveForm,
    ArchiveMetadata,
    ArchivePrefs,
    Carbons,
    PubSub,
    PubSubOwner,
}

/// The modules.
pub static MODULES: &[Module] = &[
    Module {
        name: "roster",
        // Roster versioning is a stream feature (XEP-0237), not a disco feature.
        features: &[],
        account_features: &[],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "query",
                ns: ns::ROSTER,
                handler: Handler::Roster,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "query",
                ns: ns::ROSTER,
                handler: Handler::Roster,
            },
        ],
    },
    Module {
        name: "offline",
        // XEP-0160 has no IQs; XEP-0013's feature name tells clients messages are kept.
        features: &["msgoffline"],
        account_features: &[],
        iq: &[],
    },
    Module {
        name: "blocking",
        features: &[blocking::NS],
        account_features: &[],
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
        features: &[ns::PING],
        account_features: &[ns::PING],
        iq: &[IqRoute {
            ty: IqType::Get,
            serves: Serves::Both,
            name: "ping",
            ns: ns::PING,
            handler: Handler::Ping,
        }],
    },
    Module {
        name: "disco",
        features: &[ns::DISCO_INFO, ns::DISCO_ITEMS],
        account_features: &[ns::DISCO_INFO, ns::DISCO_ITEMS],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Both,
                name: "query",
                ns: ns::DISCO_INFO,
                handler: Handler::DiscoInfo,
            },
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Both,
                name: "query",
                ns: ns::DISCO_ITEMS,
                handler: Handler::DiscoItems,
            },
        ],
    },
    Module {
        name: "version",
        features: &[ns::VERSION],
        account_features: &[],
        iq: &[IqRoute {
            ty: IqType::Get,
            serves: Serves::Host,
            name: "query",
            ns: ns::VERSION,
            handler: Handler::Version,
        }],
    },
    Module {
        name: "time",
        features: &[ns::TIME],
        account_features: &[],
        iq: &[IqRoute {
            ty: IqType::Get,
            serves: Serves::Host,
            name: "time",
            ns: ns::TIME,
            handler: Handler::Time,
        }],
    },
    Module {
        name: "last",
        features: &[ns::LAST],
        account_features: &[ns::LAST],
        iq: &[IqRoute {
            ty: IqType::Get,
            serves: Serves::Both,
            name: "query",
            ns: ns::LAST,
            handler: Handler::Last,
        }],
    },
    Module {
        name: "vcard",
        features: &[ns::VCARD],
        account_features: &[ns::VCARD],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "vCard",
                ns: ns::VCARD,
                handler: Handler::VcardGet,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "vCard",
                ns: ns::VCARD,
                handler: Handler::VcardSet,
            },
        ],
    },
    Module {
        name: "private",
        features: &[ns::PRIVATE],
        // Only the account itself may use it.
        account_features: &[],
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "query",
                ns: ns::PRIVATE,
                handler: Handler::PrivateGet,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "query",
                ns: ns::PRIVATE,
                handler: Handler::PrivateSet,
            },
        ],
    },
    Module {
        name: "archive",
        // XEP-0313 §6: announced on the archive's JID, the account's bare JID; with the
        // XEP-0359 stanza-ids the archive adds to messages.
        features: &[],
        account_features: &[mam::NS, mam::NS_EXTENDED, crate::stanza::sid::NS],
        iq: &[
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "query",
                ns: mam::NS,
                handler: Handler::ArchiveQuery,
            },
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "query",
                ns: mam::NS,
                handler: Handler::ArchiveForm,
            },
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "metadata",
                ns: mam::NS,
                handler: Handler::ArchiveMetadata,
            },
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "prefs",
                ns: mam::NS,
                handler: Handler::ArchivePrefs,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "prefs",
                ns: mam::NS,
                handler: Handler::ArchivePrefs,
            },
        ],
    },
    Module {
        name: "carbons",
        features: &[carbons::NS],
        account_features: &[],
        iq: &[
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Both,
                name: "enable",
                ns: carbons::NS,
                handler: Handler::Carbons,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Both,
                name: "disable",
                ns: carbons::NS,
                handler: Handler::Carbons,
            },
        ],
    },
    Module {
        name: "pep",
        // XEP-0163: a service on each account's bare JID, not on the server's domain.
        features: &[],
        account_features: pep::ACCOUNT_FEATURES,
        iq: &[
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "pubsub",
                ns: crate::stanza::pubsub::NS,
                handler: Handler::PubSub,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "pubsub",
                ns: crate::stanza::pubsub::NS,
                handler: Handler::PubSub,
            },
            IqRoute {
                ty: IqType::Get,
                serves: Serves::Account,
                name: "pubsub",
                ns: crate::stanza::pubsub::NS_OWNER,
                handler: Handler::PubSubOwner,
            },
            IqRoute {
                ty: IqType::Set,
                serves: Serves::Account,
                name: "pubsub",
                ns: crate::stanza::pubsub::NS_OWNER,
                handler: Handler::PubSubOwner,
            },
        ],
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
        if jid.as_str() == self.full_jid().bare_str()
            || self.server.router.with_resources(jid, |r| !r.is_empty())
        {
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
        Handler::Roster => roster::handle(ctx, iq).await,
        Handler::Ping => ping::handle(ctx, iq).await,
        Handler::DiscoInfo => disco::info(ctx, iq).await,
        Handler::DiscoItems => disco::items(ctx, iq).await,
        Handler::Version => version::handle(ctx, iq).await,
        Handler::Time => time::handle(ctx, iq).await,
        Handler::Last => last::handle(ctx, iq).await,
        Handler::VcardGet => vcard::get(ctx, iq).await,
        Handler::VcardSet => vcard::set(ctx, iq).await,
        Handler::PrivateGet => private::get(ctx, iq).await,
        Handler::PrivateSet => private::set(ctx, iq).await,
        Handler::ArchiveQuery => archive::query(ctx, iq).await,
        Handler::ArchiveForm => archive::form(ctx, iq).await,
        Handler::ArchiveMetadata => archive::metadata(ctx, iq).await,
        Handler::ArchivePrefs => archive::prefs(ctx, iq).await,
        Handler::Carbons => carbons::handle(ctx, iq).await,
        Handler::PubSub => pep::handle(ctx, iq).await,
        Handler::PubSubOwner => pep::handle_owner(ctx, iq).await,
    }
}

/// Every feature of every module, for `disco#info` on the server's domain.
pub fn features() -> impl Iterator<Item = &'static str> {
    MODULES.iter().flat_map(|m| m.features.iter().copied())
}

/// Every account feature of every module, for `disco#info` on an account's bare JID.
pub fn account_features() -> impl Iterator<Item = &'static str> {
    MODULES
        .iter()
        .flat_map(|m| m.account_features.iter().copied())
}

/// The `(host, username)` storage key of an account's bare JID.
pub fn account_key(jid: &BareJid) -> (String, String) {
    (
        jid.domain().to_owned(),
        jid.node().unwrap_or_default().to_owned(),
    )
}

/// An element a module stored serialized (by `Element`'s `Display`), parsed back.
pub fn stored_element(xml: &str) -> Result<Element, StanzaError> {
    crate::xml::parse::parse_element(&crate::xml::parse::Scope::default(), xml.as_bytes()).map_err(
        |e| {
            log::error!("storage: a stored element does not parse: {e}");
            crate::stanza::StanzaCondition::InternalServerError.into()
        },
    )
}

/// The error a handler answers when storage fails (logged here, never shown to the client).
pub fn storage_failed(e: crate::storage::StorageError) -> StanzaError {
    log::error!("storage: {e}");
    crate::stanza::StanzaCondition::InternalServerError.into()
}

/// Sends `<iq type='set'>` with `payload` to each resource of `account` that `wants` it:
/// roster pushes, block list pushes.
pub fn push_iq(
    server: &Server,
    account: &BareJid,
    wants: impl Fn(&crate::router::Resource) -> bool,
    id_prefix: &str,
    payload: &Element,
) {
    for r in server.router.resources(account) {
        if !wants(&r) {
            continue;
        }
        let iq = Element::new("iq", crate::ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", format!("{id_prefix}{}", crate::util::random_hex(6)))
            .with_attr("to", &r.handle.jid)
            .with_child(payload.clone());
        r.handle.send(iq);
    }
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
