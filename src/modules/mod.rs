//! THE list of features: every module, with everything it adds in one row — disco
//! identities, features and forms, stream features, IQ routes, message and presence
//! routes, filters, the events it listens to and the state it keeps (after Prosody's
//! `iq-get/host/urn:xmpp:ping:ping` vocabulary). The router reads this table and never
//! names a module; `disco#info` is derived from it; the unhandled case
//! (`service-unavailable`) is written once, in `router::unhandled`.
//!
//! Adding an IQ handler is one [`IqRoute`] row and one `async fn(&mut Ctx, &Iq) -> IqResult`.

pub mod adhoc;
pub mod admin;
pub mod archive;
pub mod blocking;
pub mod caps;
pub mod carbons;
pub mod contact;
pub mod delivery;
pub mod disco;
pub mod extdisco;
pub mod last;
pub mod message;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod push;
pub mod register;
pub mod roster;
pub mod time;
pub mod vcard;
pub mod version;

use crate::ns;
use crate::router::{
    event_handler, iq_handler, stanza_handler, EventKind, FilterPoint, IqRoute, IqType, Kind,
    Listens, Module, Serves, StanzaRoute, StreamFeature, StreamPhase,
};
use crate::stanza::mam;
use crate::stanza::StanzaError;
use crate::xml::Element;

pub use crate::router::{Ctx, Iq, IqResult, Target};

/// Shorthand for a get or set route.
const fn route(
    ty: IqType,
    serves: Serves,
    name: &'static str,
    ns: &'static str,
    handler: crate::router::IqFn,
) -> IqRoute {
    IqRoute {
        ty,
        serves,
        name,
        ns,
        handler,
    }
}

use IqType::{Get, Set};
use Serves::{Account, Both, Host};

/// The modules.
pub static MODULES: &[Module] = &[
    Module {
        name: "disco",
        identities: &[("server", "im", Some("roost"))],
        features: &[ns::DISCO_INFO, ns::DISCO_ITEMS],
        account_identities: &[("account", "registered", None)],
        account_features: &[ns::DISCO_INFO, ns::DISCO_ITEMS],
        // XEP-0115 §6.3: the server's capabilities, so clients skip a disco#info.
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: disco::caps_element,
        }],
        state: Some(|| Box::new(disco::HostInfo::default())),
        iq: &[
            route(Get, Both, "query", ns::DISCO_INFO, iq_handler!(disco::info)),
            route(
                Get,
                Both,
                "query",
                ns::DISCO_ITEMS,
                iq_handler!(disco::items),
            ),
        ],
        ..Module::EMPTY
    },
    Module {
        name: "roster",
        // XEP-0237 roster versioning is a stream feature, not a disco feature.
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: |_| roster::ver_feature(),
        }],
        iq: &[
            route(
                Get,
                Account,
                "query",
                ns::ROSTER,
                iq_handler!(roster::handle),
            ),
            route(
                Set,
                Account,
                "query",
                ns::ROSTER,
                iq_handler!(roster::handle),
            ),
        ],
        ..Module::EMPTY
    },
    Module {
        name: "presence",
        // RFC 6121 §3.4.1 subscription pre-approval.
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: |_| Element::new("sub", ns::PRE_APPROVAL),
        }],
        stanzas: &[StanzaRoute {
            kind: Kind::Presence,
            types: &[],
            priority: 0,
            handler: stanza_handler!(presence::route),
        }],
        events: Some(Listens {
            to: &[EventKind::Unbound],
            handler: event_handler!(presence::on_event),
        }),
        state: Some(|| Box::new(presence::Directed::default())),
        ..Module::EMPTY
    },
    Module {
        name: "message",
        // XEP-0160 has no IQs; XEP-0013's feature name tells clients messages are kept.
        features: &["msgoffline"],
        stanzas: &[StanzaRoute {
            kind: Kind::Message,
            types: &[],
            priority: 0,
            handler: stanza_handler!(message::route),
        }],
        events: Some(Listens {
            to: &[EventKind::Unbound],
            handler: event_handler!(message::on_event),
        }),
        state: Some(|| Box::new(message::OfflineDelivered::default())),
        ..Module::EMPTY
    },
    Module {
        name: "session",
        // RFC 3921's session establishment, kept optional for old clients (c2s answers it).
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: |_| {
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION))
            },
        }],
        ..Module::EMPTY
    },
    Module {
        name: "sm",
        // XEP-0198: negotiated by the connection (c2s/sm.rs), which keeps its registry.
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: |_| Element::new("sm", ns::SM),
        }],
        ..Module::EMPTY
    },
    Module {
        name: "csi",
        // XEP-0352: the connection holds back what can wait (c2s/csi.rs).
        stream_features: &[StreamFeature {
            phase: StreamPhase::Authenticated,
            element: |_| Element::new("csi", ns::CSI),
        }],
        ..Module::EMPTY
    },
    Module {
        name: "blocking",
        features: &[ns::BLOCKING],
        iq: &[
            route(
                Get,
                Account,
                "blocklist",
                ns::BLOCKING,
                iq_handler!(blocking::handle),
            ),
            route(
                Set,
                Account,
                "block",
                ns::BLOCKING,
                iq_handler!(blocking::handle),
            ),
            route(
                Set,
                Account,
                "unblock",
                ns::BLOCKING,
                iq_handler!(blocking::handle),
            ),
        ],
        events: Some(Listens {
            to: &[EventKind::Unbound],
            handler: event_handler!(blocking::on_event),
        }),
        state: Some(|| Box::new(blocking::Interested::default())),
        ..Module::EMPTY
    },
    Module {
        name: "ping",
        features: &[ns::PING],
        account_features: &[ns::PING],
        iq: &[route(
            Get,
            Both,
            "ping",
            ns::PING,
            iq_handler!(ping::handle),
        )],
        ..Module::EMPTY
    },
    Module {
        name: "version",
        features: &[ns::VERSION],
        iq: &[route(
            Get,
            Host,
            "query",
            ns::VERSION,
            iq_handler!(version::handle),
        )],
        ..Module::EMPTY
    },
    Module {
        name: "time",
        features: &[ns::TIME],
        iq: &[route(
            Get,
            Host,
            "time",
            ns::TIME,
            iq_handler!(time::handle),
        )],
        ..Module::EMPTY
    },
    Module {
        name: "last",
        features: &[ns::LAST],
        account_features: &[ns::LAST],
        iq: &[route(
            Get,
            Both,
            "query",
            ns::LAST,
            iq_handler!(last::handle),
        )],
        ..Module::EMPTY
    },
    Module {
        name: "vcard",
        features: &[ns::VCARD],
        account_features: &[ns::VCARD],
        iq: &[
            route(Get, Account, "vCard", ns::VCARD, iq_handler!(vcard::get)),
            route(Set, Account, "vCard", ns::VCARD, iq_handler!(vcard::set)),
        ],
        ..Module::EMPTY
    },
    Module {
        name: "private",
        features: &[ns::PRIVATE],
        // Only the account itself may use it: no account feature.
        iq: &[
            route(
                Get,
                Account,
                "query",
                ns::PRIVATE,
                iq_handler!(private::get),
            ),
            route(
                Set,
                Account,
                "query",
                ns::PRIVATE,
                iq_handler!(private::set),
            ),
        ],
        ..Module::EMPTY
    },
    Module {
        name: "archive",
        // XEP-0313 §6: announced on the archive's JID, the account's bare JID; with the
        // XEP-0359 stanza-ids the archive adds to messages.
        account_features: &[mam::NS, mam::NS_EXTENDED, crate::stanza::sid::NS],
        iq: &[
            route(Set, Account, "query", mam::NS, iq_handler!(archive::query)),
            route(Get, Account, "query", mam::NS, iq_handler!(archive::form)),
            route(
                Get,
                Account,
                "metadata",
                mam::NS,
                iq_handler!(archive::metadata),
            ),
            route(Get, Account, "prefs", mam::NS, iq_handler!(archive::prefs)),
            route(Set, Account, "prefs", mam::NS, iq_handler!(archive::prefs)),
        ],
        state: Some(|| Box::new(archive::PrefsCache::default())),
        ..Module::EMPTY
    },
    Module {
        name: "carbons",
        features: &[ns::CARBONS],
        iq: &[
            route(
                Set,
                Both,
                "enable",
                ns::CARBONS,
                iq_handler!(carbons::handle),
            ),
            route(
                Set,
                Both,
                "disable",
                ns::CARBONS,
                iq_handler!(carbons::handle),
            ),
        ],
        events: Some(Listens {
            to: &[EventKind::Unbound],
            handler: event_handler!(carbons::on_event),
        }),
        state: Some(|| Box::new(carbons::Enabled::default())),
        ..Module::EMPTY
    },
    Module {
        name: "caps",
        // XEP-0115: the verified capabilities of clients, asked once per `ver` (pep.rs
        // asks, and listens for the answers).
        state: Some(|| Box::new(caps::CapsCache::default())),
        ..Module::EMPTY
    },
    Module {
        name: "pep",
        // XEP-0163: a service on each account's bare JID, not on the server's domain.
        account_identities: &[("pubsub", "pep", None)],
        account_features: pep::ACCOUNT_FEATURES,
        account_items: Some(pep::disco_items),
        account_node_info: Some(pep::disco_node_info),
        iq: &[
            route(Get, Account, "pubsub", ns::PUBSUB, iq_handler!(pep::handle)),
            route(Set, Account, "pubsub", ns::PUBSUB, iq_handler!(pep::handle)),
            route(
                Get,
                Account,
                "pubsub",
                ns::PUBSUB_OWNER,
                iq_handler!(pep::handle_owner),
            ),
            route(
                Set,
                Account,
                "pubsub",
                ns::PUBSUB_OWNER,
                iq_handler!(pep::handle_owner),
            ),
        ],
        filters: &[
            (FilterPoint::Presence, pep::with_avatar_hash),
            (FilterPoint::Vcard, pep::vcard_with_avatar),
        ],
        events: Some(Listens {
            to: &[
                EventKind::Available,
                EventKind::SubscriptionApproved,
                EventKind::HostIqResponse,
                EventKind::PrivateStored,
                EventKind::RemotePresence,
            ],
            handler: event_handler!(pep::on_event),
        }),
        // Remote contacts' available resources, for notifications across federation.
        state: Some(|| Box::new(pep::notify::RemoteResources::default())),
        ..Module::EMPTY
    },
    Module {
        name: "extdisco",
        // XEP-0215: STUN/TURN for calls, with coturn's REST credentials (--turn-host).
        features: &[ns::EXTDISCO, ns::EXTDISCO_1],
        iq: &[
            route(
                Get,
                Host,
                "services",
                ns::EXTDISCO,
                iq_handler!(extdisco::services_query),
            ),
            route(
                Get,
                Host,
                "services",
                ns::EXTDISCO_1,
                iq_handler!(extdisco::services_query),
            ),
            route(
                Get,
                Host,
                "credentials",
                ns::EXTDISCO,
                iq_handler!(extdisco::credentials_query),
            ),
            route(
                Get,
                Host,
                "credentials",
                ns::EXTDISCO_1,
                iq_handler!(extdisco::credentials_query),
            ),
        ],
        state: Some(|| Box::new(extdisco::Secret::default())),
        ..Module::EMPTY
    },
    Module {
        name: "push",
        // XEP-0357, with Tigase's priority marking for important notifications.
        account_features: &[push::NS, push::NS_PRIORITY],
        iq: &[
            route(Set, Account, "enable", push::NS, iq_handler!(push::enable)),
            route(
                Set,
                Account,
                "disable",
                push::NS,
                iq_handler!(push::disable),
            ),
        ],
        events: Some(Listens {
            to: &[
                EventKind::StoredOffline,
                EventKind::Hibernating,
                EventKind::QueuedWhileHibernated,
                EventKind::AccountIqResponse,
            ],
            handler: event_handler!(push::on_event),
        }),
        state: Some(|| Box::new(push::Pending::default())),

        ..Module::EMPTY
    },
    Module {
        name: "contact",
        // XEP-0157: contact addresses from --contact-admin and --contact-abuse.
        host_forms: Some(contact::form),
        ..Module::EMPTY
    },
    Module {
        name: "adhoc",
        // XEP-0050 ad-hoc commands on the server's domain, XEP-0133 for admins.
        features: &[adhoc::NS],
        host_node_items: Some(adhoc::items),
        host_node_info: Some(adhoc::info),
        iq: &[route(
            Set,
            Host,
            "command",
            adhoc::NS,
            iq_handler!(adhoc::execute),
        )],
        state: Some(|| Box::new(adhoc::Sessions::default())),
        ..Module::EMPTY
    },
    Module {
        name: "roles",
        // Account roles (admin, normal, limited) kept in memory for the router's checks.
        state: Some(|| Box::new(crate::roles::Roles::default())),
        ..Module::EMPTY
    },
    Module {
        name: "register",
        // XEP-0077 after login: password change and account removal. Registration before
        // login is in the stream negotiation (c2s::register), which uses this state.
        features: &[ns::REGISTER],
        state: Some(|| Box::new(register::OpenLimit::default())),
        iq: &[
            route(Get, Both, "query", ns::REGISTER, iq_handler!(register::get)),
            route(Set, Both, "query", ns::REGISTER, iq_handler!(register::set)),
        ],
        ..Module::EMPTY
    },
];

/// Every feature of every module, for `disco#info` on the server's domain.
pub fn features() -> impl Iterator<Item = &'static str> {
    crate::router::Table(MODULES).features()
}

/// Every account feature of every module, for `disco#info` on an account's bare JID.
pub fn account_features() -> impl Iterator<Item = &'static str> {
    crate::router::Table(MODULES).account_features()
}

pub use crate::storage::account_key;

/// An element a module stored serialized (by `Element`'s `Display`), parsed back.
pub fn stored_element(xml: &str) -> Result<Element, StanzaError> {
    crate::xml::parse::parse_element(&crate::xml::parse::Scope::default(), xml.as_bytes()).map_err(
        |e| {
            log::error!("storage: a stored element does not parse: {e}");
            crate::stanza::StanzaCondition::InternalServerError.into()
        },
    )
}

/// A stanza a module stored with `to_client_string` (offline messages, archived messages,
/// subscription requests), parsed back in the `jabber:client` scope it was written in.
pub fn stored_stanza(scope: &crate::xml::parse::Scope, xml: &str) -> Option<Element> {
    crate::xml::parse::parse_element(scope, xml.as_bytes())
        .map_err(|e| log::error!("storage: a stored stanza does not parse: {e}"))
        .ok()
}

/// The error a handler answers when storage fails (logged here, never shown to the client).
pub fn storage_failed(e: crate::storage::StorageError) -> StanzaError {
    log::error!("storage: {e}");
    crate::stanza::StanzaCondition::InternalServerError.into()
}

/// A server core with the whole feature table and storage in `config.data_dir`, without
/// listeners or an executor: for unit tests of modules.
#[cfg(test)]
pub(crate) fn test_core(config: crate::config::Config) -> std::sync::Arc<crate::router::Core> {
    let dir = config.data_dir.clone();
    let storage = crate::storage::Storage::open(&dir).unwrap();
    let tls = crate::net::tls::Tls::load(None, None, &dir, &config.domain).unwrap();
    crate::router::Core::new(
        config,
        crate::router::Parts {
            domain: "localhost".into(),
            tls,
            storage,
            table: MODULES,
            extra_states: Vec::new(),
        },
    )
    .into_arc()
}
