//! XEP-0060 Publish-Subscribe as a typed view, for the subset a XEP-0163 PEP service
//! serves: requests in the `pubsub` and `pubsub#owner` namespaces (§6.5 items, §7.1 publish
//! with §7.1.5 publish-options, §7.2 retract, §8.1 create, §8.2 configure, §8.4 delete,
//! §8.5 purge), the node configuration options (§16.4, with XEP-0223's persistent private
//! nodes), the `pubsub#errors` conditions, and `pubsub#event` notifications.

use super::forms::{parse_bool, DataForm};
use super::{StanzaCondition, StanzaError};
use crate::xml::Element;

mod config;

pub use config::{var, AccessModel, ItemLimit, NodeConfig, OptionError, SendLast};

/// `http://jabber.org/protocol/pubsub`.
pub use crate::ns::PUBSUB as NS;
/// The owner use cases (§8).
pub use crate::ns::PUBSUB_OWNER as NS_OWNER;
/// Event notifications.
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// Application-specific error conditions.
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// The `FORM_TYPE` of node configuration forms.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// The `FORM_TYPE` of publish-options forms (§7.1.5).
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// The XEP-0060 features (§10) of this server's PEP service, as disco#info shows them.
pub const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#config-node-max",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
];

/// The longest node name or item id accepted: room for any JID (bookmark items are named
/// by room JIDs, XEP-0402).
pub const MAX_NAME: usize = 3072;

/// A stanza error with a `pubsub#errors` condition.
pub fn error(condition: StanzaCondition, app: &str) -> StanzaError {
    let mut e = StanzaError::new(condition);
    e.app = Some(Box::new(Element::new(app, NS_ERRORS)));
    e
}

/// `feature-not-implemented` with `<unsupported feature='…'/>`.
pub fn unsupported(feature: &str) -> StanzaError {
    let mut e = StanzaError::new(StanzaCondition::FeatureNotImplemented);
    e.app = Some(Box::new(
        Element::new("unsupported", NS_ERRORS).with_attr("feature", feature),
    ));
    e
}

/// The item of a publish request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishItem {
    /// `None`: the service picks one (§7.1.2, `item-ids`).
    pub id: Option<String>,
    pub payload: Element,
}

/// A request in the `pubsub` namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// §7.1: publish one item, creating the node if needed, with preconditions.
    Publish {
        node: String,
        item: PublishItem,
        options: Option<DataForm>,
    },
    /// §7.2: delete items, telling subscribers if `notify`.
    Retract {
        node: String,
        ids: Vec<String>,
        notify: bool,
    },
    /// §8.1: create a node, optionally configured (§8.1.3).
    Create {
        node: String,
        config: Option<DataForm>,
    },
    /// §6.5: retrieve items: all, the ones named, or the `max_items` most recent.
    Items {
        node: String,
        ids: Vec<String>,
        max_items: Option<usize>,
    },
}

/// A request in the `pubsub#owner` namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerRequest {
    /// §8.2.1: the configuration form.
    ConfigureGet { node: String },
    /// §8.2.4: a submitted configuration form (`None`: cancelled, §8.2.4.2).
    ConfigureSet {
        node: String,
        form: Option<DataForm>,
    },
    /// §8.3: the default configuration.
    Default,
    /// §8.4: delete a node.
    Delete { node: String },
    /// §8.5: delete all of a node's items.
    Purge { node: String },
}

fn bad(app: &str) -> StanzaError {
    error(StanzaCondition::BadRequest, app)
}

fn name_attr(e: &Element, attr: &str, missing: &str) -> Result<String, StanzaError> {
    match e.attr(attr) {
        Some(n) if !n.is_empty() && n.len() <= MAX_NAME => Ok(n.to_owned()),
        Some(n) if n.len() > MAX_NAME => Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            format!("names are limited to {MAX_NAME} bytes"),
        )),
        _ => Err(bad(missing)),
    }
}

fn node_of(e: &Element) -> Result<String, StanzaError> {
    name_attr(e, "node", "nodeid-required")
}

/// The form inside a `<publish-options/>` or `<configure/>`, if any, checked for its
/// `FORM_TYPE`: another one is `bad-request`.
fn inner_form(e: &Element, form_type: &str) -> Result<Option<DataForm>, StanzaError> {
    let Some(x) = e.child("x", super::forms::NS) else {
        return Ok(None);
    };
    let form = DataForm::try_from(x)
        .map_err(|err| StanzaError::with_text(StanzaCondition::BadRequest, err.to_string()))?;
    if form.ty == "cancel" {
        return Ok(None);
    }
    // COMPAT: a form without a FORM_TYPE is taken as the expected kind; some clients
    // leave it out.
    if form.form_type().is_some_and(|t| t != form_type) {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            format!("the form's FORM_TYPE must be {form_type}"),
        ));
    }
    Ok(Some(form))
}

impl Request {
    /// Parses a `<pubsub xmlns='http://jabber.org/protocol/pubsub'/>` of an IQ get (`set`
    /// false) or set.
    pub fn parse(pubsub: &Element, set: bool) -> Result<Request, StanzaError> {
        let verbs: &[&str] = if set {
            &[
                "publish",
                "retract",
                "create",
                "subscribe",
                "unsubscribe",
                "options",
            ]
        } else {
            &[
                "items",
                "subscriptions",
                "affiliations",
                "options",
                "default",
            ]
        };
        let Some(verb) = pubsub
            .elements()
            .find(|e| e.ns == NS && verbs.contains(&e.name.as_str()))
        else {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "no pubsub request",
            ));
        };
        match verb.name.as_str() {
            "publish" => {
                let node = node_of(verb)?;
                let items: Vec<&Element> = verb.elements().filter(|e| e.is("item", NS)).collect();
                let item = match items.as_slice() {
                    [] => return Err(bad("item-required")),
                    [one] => *one,
                    _ => return Err(bad("invalid-payload")),
                };
                let payload = match item.elements().collect::<Vec<_>>().as_slice() {
                    [] => return Err(bad("payload-required")),
                    [one] => (*one).clone(),
                    _ => return Err(bad("invalid-payload")),
                };
                let id = match item.attr("id") {
                    None | Some("") => None,
                    Some(_) => Some(name_attr(item, "id", "item-required")?),
                };
                let options = match pubsub.child("publish-options", NS) {
                    Some(po) => inner_form(po, PUBLISH_OPTIONS)?,
                    None => None,
                };
                Ok(Request::Publish {
                    node,
                    item: PublishItem { id, payload },
                    options,
                })
            }
            "retract" => {
                let node = node_of(verb)?;
                let ids = verb
                    .elements()
                    .filter(|e| e.is("item", NS))
                    .map(|i| name_attr(i, "id", "item-required"))
                    .collect::<Result<Vec<_>, _>>()?;
                if ids.is_empty() {
                    return Err(bad("item-required"));
                }
                let notify = verb.attr("notify").and_then(parse_bool).unwrap_or(false);
                Ok(Request::Retract { node, ids, notify })
            }
            "create" => {
                if verb.attr("node").is_none_or(str::is_empty) {
                    return Err(unsupported("instant-nodes"));
                }
                let node = node_of(verb)?;
                let config = match pubsub.child("configure", NS) {
                    Some(c) => inner_form(c, NODE_CONFIG)?,
                    None => None,
                };
                Ok(Request::Create { node, config })
            }
            "items" => {
                let node = node_of(verb)?;
                let ids = verb
                    .elements()
                    .filter(|e| e.is("item", NS))
                    .map(|i| name_attr(i, "id", "item-required"))
                    .collect::<Result<Vec<_>, _>>()?;
                let max_items = match verb.attr("max_items") {
                    None => None,
                    Some(m) => Some(m.trim().parse::<usize>().map_err(|_| {
                        StanzaError::with_text(
                            StanzaCondition::BadRequest,
                            "max_items must be a number",
                        )
                    })?),
                };
                Ok(Request::Items {
                    node,
                    ids,
                    max_items,
                })
            }
            "subscribe" | "unsubscribe" | "options" => Err(unsupported("subscribe")),
            "subscriptions" => Err(unsupported("retrieve-subscriptions")),
            "affiliations" => Err(unsupported("retrieve-affiliations")),
            "default" => Err(unsupported("retrieve-default-sub")),
            _ => unreachable!("only the verbs listed above are matched"),
        }
    }
}

impl OwnerRequest {
    /// Parses a `<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/>` of an IQ get
    /// (`set` false) or set.
    pub fn parse(pubsub: &Element, set: bool) -> Result<OwnerRequest, StanzaError> {
        let Some(verb) = pubsub.elements().find(|e| e.ns == NS_OWNER) else {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "no pubsub#owner request",
            ));
        };
        match (verb.name.as_str(), set) {
            ("configure", false) => Ok(OwnerRequest::ConfigureGet {
                node: node_of(verb)?,
            }),
            ("configure", true) => Ok(OwnerRequest::ConfigureSet {
                node: node_of(verb)?,
                form: inner_form(verb, NODE_CONFIG)?,
            }),
            ("default", false) => Ok(OwnerRequest::Default),
            ("delete", true) => Ok(OwnerRequest::Delete {
                node: node_of(verb)?,
            }),
            ("purge", true) => Ok(OwnerRequest::Purge {
                node: node_of(verb)?,
            }),
            ("affiliations", _) => Err(unsupported("modify-affiliations")),
            ("subscriptions", _) => Err(unsupported("manage-subscriptions")),
            _ => Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                format!("no such pubsub#owner request: {}", verb.name),
            )),
        }
    }
}

/// `<item id='…'>payload</item>` in namespace `ns` (the payload left out if `None`).
pub fn item(ns: &str, id: &str, payload: Option<Element>) -> Element {
    let mut e = Element::new("item", ns).with_attr("id", id);
    if let Some(p) = payload {
        e.push(p);
    }
    e
}

/// `<event xmlns='…#event'>` around one child.
fn event(child: Element) -> Element {
    Element::new("event", NS_EVENT).with_child(child)
}

/// The event of published items: `<items node='…'><item …/></items>`.
pub fn event_items(node: &str, items: Vec<Element>) -> Element {
    let mut e = Element::new("items", NS_EVENT).with_attr("node", node);
    for i in items {
        e.push(i);
    }
    event(e)
}

/// The event of retracted items (§7.2.2.1).
pub fn event_retract(node: &str, ids: &[String]) -> Element {
    let mut e = Element::new("items", NS_EVENT).with_attr("node", node);
    for id in ids {
        e.push(Element::new("retract", NS_EVENT).with_attr("id", id.clone()));
    }
    event(e)
}

/// The event of a deleted node (§8.4.2).
pub fn event_delete(node: &str) -> Element {
    event(Element::new("delete", NS_EVENT).with_attr("node", node))
}

/// The event of a purged node (§8.5.2).
pub fn event_purge(node: &str) -> Element {
    event(Element::new("purge", NS_EVENT).with_attr("node", node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    pub(super) fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    fn pubsub(inner: &str) -> Element {
        parse(&format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>{inner}</pubsub>"
        ))
    }

    fn owner(inner: &str) -> Element {
        parse(&format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>{inner}</pubsub>"
        ))
    }

    /// The `pubsub#errors` condition of an error, or the stanza condition's name.
    fn app(e: &StanzaError) -> String {
        e.app
            .as_ref()
            .map(|a| a.name.to_string())
            .unwrap_or_else(|| e.condition.name().to_owned())
    }

    pub(super) fn options(fields: &str) -> DataForm {
        DataForm::try_from(&parse(&format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{PUBLISH_OPTIONS}</value></field>{fields}</x>"
        )))
        .unwrap()
    }

    pub(super) fn field(var: &str, value: &str) -> String {
        format!("<field var='{var}'><value>{value}</value></field>")
    }

    #[test]
    fn parse_publish_with_options() {
        let r = Request::parse(
            &pubsub(
                "<publish node='urn:xmpp:bookmarks:1'><item id='room@muc'>\
                 <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'>\
                 <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='pubsub#access_model'><value>whitelist</value></field>\
                 <field var='pubsub#max_items'><value>max</value></field>\
                 </x></publish-options>",
            ),
            true,
        )
        .unwrap();
        let Request::Publish {
            node,
            item,
            options,
        } = r
        else {
            panic!("not a publish: {r:?}");
        };
        assert_eq!(node, "urn:xmpp:bookmarks:1");
        assert_eq!(item.id.as_deref(), Some("room@muc"));
        assert!(item.payload.is("conference", "urn:xmpp:bookmarks:1"));
        let options = options.unwrap();
        assert_eq!(options.value(var::ACCESS_MODEL), Some("whitelist"));
        assert_eq!(options.value(var::MAX_ITEMS), Some("max"));
        // No id: the service picks one.
        let r = Request::parse(
            &pubsub("<publish node='n'><item><x xmlns='urn:x'/></item></publish>"),
            true,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::Publish {
                item: PublishItem { id: None, .. },
                options: None,
                ..
            }
        ));
    }

    #[test]
    fn parse_other_requests() {
        assert_eq!(
            Request::parse(
                &pubsub("<retract node='n' notify='true'><item id='a'/><item id='b'/></retract>"),
                true
            )
            .unwrap(),
            Request::Retract {
                node: "n".into(),
                ids: vec!["a".into(), "b".into()],
                notify: true
            }
        );
        assert_eq!(
            Request::parse(&pubsub("<retract node='n'><item id='a'/></retract>"), true).unwrap(),
            Request::Retract {
                node: "n".into(),
                ids: vec!["a".into()],
                notify: false
            }
        );
        assert_eq!(
            Request::parse(&pubsub("<items node='n' max_items='2'/>"), false).unwrap(),
            Request::Items {
                node: "n".into(),
                ids: vec![],
                max_items: Some(2)
            }
        );
        assert_eq!(
            Request::parse(&pubsub("<items node='n'><item id='x'/></items>"), false).unwrap(),
            Request::Items {
                node: "n".into(),
                ids: vec!["x".into()],
                max_items: None
            }
        );
        assert!(matches!(
            Request::parse(&pubsub("<create node='n'/><configure/>"), true).unwrap(),
            Request::Create { config: None, .. }
        ));
        // No FORM_TYPE: taken as a node configuration form.
        let Request::Create {
            config: Some(form), ..
        } = Request::parse(
            &pubsub(
                "<create node='n'/><configure><x xmlns='jabber:x:data' type='submit'>\
                 <field var='pubsub#access_model'><value>open</value></field></x></configure>",
            ),
            true,
        )
        .unwrap()
        else {
            panic!("a create with a form");
        };
        assert_eq!(form.value(var::ACCESS_MODEL), Some("open"));
        assert_eq!(
            OwnerRequest::parse(&owner("<configure node='n'/>"), false).unwrap(),
            OwnerRequest::ConfigureGet { node: "n".into() }
        );
        assert_eq!(
            OwnerRequest::parse(&owner("<delete node='n'/>"), true).unwrap(),
            OwnerRequest::Delete { node: "n".into() }
        );
        assert_eq!(
            OwnerRequest::parse(&owner("<purge node='n'/>"), true).unwrap(),
            OwnerRequest::Purge { node: "n".into() }
        );
        assert_eq!(
            OwnerRequest::parse(&owner("<default/>"), false).unwrap(),
            OwnerRequest::Default
        );
        assert_eq!(
            OwnerRequest::parse(
                &owner("<configure node='n'><x xmlns='jabber:x:data' type='cancel'/></configure>"),
                true
            )
            .unwrap(),
            OwnerRequest::ConfigureSet {
                node: "n".into(),
                form: None
            }
        );
    }

    #[test]
    fn invalid_requests() {
        for (inner, set, want) in [
            ("<publish><item><x xmlns='u'/></item></publish>", true, "nodeid-required"),
            ("<publish node=''><item><x xmlns='u'/></item></publish>", true, "nodeid-required"),
            ("<publish node='n'/>", true, "item-required"),
            ("<publish node='n'><item/></publish>", true, "payload-required"),
            (
                "<publish node='n'><item><a xmlns='u'/><b xmlns='u'/></item></publish>",
                true,
                "invalid-payload",
            ),
            (
                "<publish node='n'><item><a xmlns='u'/></item><item><a xmlns='u'/></item></publish>",
                true,
                "invalid-payload",
            ),
            ("<retract node='n'/>", true, "item-required"),
            ("<retract><item id='a'/></retract>", true, "nodeid-required"),
            ("<retract node='n'><item/></retract>", true, "item-required"),
            ("<items/>", false, "nodeid-required"),
            ("<items node='n' max_items='x'/>", false, "bad-request"),
            ("<subscribe node='n' jid='a@b'/>", true, "unsupported"),
            ("<create/>", true, "unsupported"),
            ("<publish node='n'/>", false, "bad-request"),
            ("", true, "bad-request"),
            (
                "<publish node='n'><item><a xmlns='u'/></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>urn:other</value></field>\
                 </x></publish-options>",
                true,
                "bad-request",
            ),
        ] {
            let e = Request::parse(&pubsub(inner), set).unwrap_err();
            assert_eq!(app(&e), want, "{inner}");
        }
        let long = "n".repeat(MAX_NAME + 1);
        let e = Request::parse(&pubsub(&format!("<items node='{long}'/>")), false).unwrap_err();
        assert_eq!(e.condition, StanzaCondition::NotAcceptable);
        for (inner, set) in [
            ("<delete/>", true),
            ("<delete node='n'/>", false),
            ("<affiliations node='n'/>", false),
            ("", true),
        ] {
            assert!(OwnerRequest::parse(&owner(inner), set).is_err(), "{inner}");
        }
    }

    #[test]
    fn errors_and_events_serialize() {
        let e = error(StanzaCondition::Conflict, "precondition-not-met");
        assert_eq!(
            e.to_element().to_client_string(),
            "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error>"
        );
        assert_eq!(
            unsupported("subscribe").app.unwrap().attr("feature"),
            Some("subscribe")
        );
        let ev = event_items(
            "n",
            vec![item(NS_EVENT, "i1", Some(Element::new("x", "urn:x")))],
        );
        assert_eq!(
            ev.to_client_string(),
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>\
             <item id='i1'><x xmlns='urn:x'/></item></items></event>"
        );
        assert_eq!(
            event_retract("n", &["a".into()]).to_client_string(),
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>\
             <retract id='a'/></items></event>"
        );
        assert_eq!(
            event_delete("n").to_client_string(),
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='n'/></event>"
        );
        assert_eq!(
            event_purge("n").to_client_string(),
            "<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='n'/></event>"
        );
    }
}
