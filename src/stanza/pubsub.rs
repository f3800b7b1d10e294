//! XEP-0060 Publish-Subscribe as a typed view, for the subset a XEP-0163 PEP service
//! serves: requests in the `pubsub` and `pubsub#owner` namespaces (§6.5 items, §7.1 publish
//! with §7.1.5 publish-options, §7.2 retract, §8.1 create, §8.2 configure, §8.4 delete,
//! §8.5 purge), the node configuration options (§16.4, with XEP-0223's persistent private
//! nodes), the `pubsub#errors` conditions, and `pubsub#event` notifications.

use super::forms::{parse_bool, DataForm, Field};
use super::{StanzaCondition, StanzaError};
use crate::xml::Element;

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

/// The longest node name or item id accepted: room for any JID (bookmark items are named
/// by room JIDs, XEP-0402).
pub const MAX_NAME: usize = 3072;

/// Who may retrieve a node's items (§4.5). `authorize` is not offered: a PEP service has
/// no one to approve requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessModel {
    /// Anyone, contacts or not.
    Open,
    /// Contacts subscribed to the owner's presence (`from` or `both`): the PEP default.
    Presence,
    /// Contacts in the owner's roster.
    Roster,
    /// The owner only (XEP-0223 private nodes).
    Whitelist,
}

impl AccessModel {
    pub fn name(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
        }
    }

    pub fn parse(s: &str) -> Option<AccessModel> {
        Some(match s.trim() {
            "open" => AccessModel::Open,
            "presence" => AccessModel::Presence,
            "roster" => AccessModel::Roster,
            "whitelist" => AccessModel::Whitelist,
            _ => return None,
        })
    }
}

/// When the last published item is sent (`pubsub#send_last_published_item`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    /// XEP-0163 §4.3.4: the PEP default, to newly available resources too.
    OnSubAndPresence,
}

impl SendLast {
    pub fn name(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSub => "on_sub",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    pub fn parse(s: &str) -> Option<SendLast> {
        Some(match s.trim() {
            "never" => SendLast::Never,
            "on_sub" => SendLast::OnSub,
            "on_sub_and_presence" => SendLast::OnSubAndPresence,
            _ => return None,
        })
    }
}

/// `pubsub#max_items`: a number, or `max` (XEP-0060 §7.1.5, the `config-node-max` feature):
/// as many as the service allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemLimit {
    Max,
    Count(u32),
}

impl ItemLimit {
    pub fn parse(s: &str) -> Option<ItemLimit> {
        match s.trim() {
            "max" => Some(ItemLimit::Max),
            n => n.parse().ok().map(ItemLimit::Count),
        }
    }

    pub fn value(self) -> String {
        match self {
            ItemLimit::Max => "max".into(),
            ItemLimit::Count(n) => n.to_string(),
        }
    }

    /// How many items to keep, given the service's own cap.
    pub fn effective(self, cap: u32) -> u32 {
        match self {
            ItemLimit::Max => cap,
            ItemLimit::Count(n) => n.min(cap),
        }
    }
}

/// A node's configuration, with XEP-0163's smart defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub access_model: AccessModel,
    pub persist_items: bool,
    pub max_items: ItemLimit,
    pub send_last: SendLast,
    pub deliver_notifications: bool,
    pub deliver_payloads: bool,
    pub notify_retract: bool,
    pub notify_delete: bool,
    /// Empty when not set.
    pub title: String,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            access_model: AccessModel::Presence,
            persist_items: true,
            max_items: ItemLimit::Count(1),
            send_last: SendLast::OnSubAndPresence,
            deliver_notifications: true,
            deliver_payloads: true,
            notify_retract: true,
            notify_delete: true,
            title: String::new(),
        }
    }
}

/// The configuration options this service knows, as form `var`s.
pub mod var {
    pub const ACCESS_MODEL: &str = "pubsub#access_model";
    pub const PERSIST_ITEMS: &str = "pubsub#persist_items";
    pub const MAX_ITEMS: &str = "pubsub#max_items";
    pub const SEND_LAST: &str = "pubsub#send_last_published_item";
    pub const DELIVER_NOTIFICATIONS: &str = "pubsub#deliver_notifications";
    pub const DELIVER_PAYLOADS: &str = "pubsub#deliver_payloads";
    pub const NOTIFY_RETRACT: &str = "pubsub#notify_retract";
    pub const NOTIFY_DELETE: &str = "pubsub#notify_delete";
    pub const TITLE: &str = "pubsub#title";
    /// Only `publishers` (the owner) is possible on a PEP node.
    pub const PUBLISH_MODEL: &str = "pubsub#publish_model";
}

/// Why an option cannot be set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// Not an option this service has.
    Unknown,
    /// A value the option cannot take.
    Invalid,
}

fn bool_value(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

impl NodeConfig {
    /// The value of option `var`, as a form value (`None` for an unknown option).
    pub fn get(&self, var: &str) -> Option<String> {
        Some(match var {
            var::ACCESS_MODEL => self.access_model.name().to_owned(),
            var::PERSIST_ITEMS => bool_value(self.persist_items),
            var::MAX_ITEMS => self.max_items.value(),
            var::SEND_LAST => self.send_last.name().to_owned(),
            var::DELIVER_NOTIFICATIONS => bool_value(self.deliver_notifications),
            var::DELIVER_PAYLOADS => bool_value(self.deliver_payloads),
            var::NOTIFY_RETRACT => bool_value(self.notify_retract),
            var::NOTIFY_DELETE => bool_value(self.notify_delete),
            var::TITLE => self.title.clone(),
            var::PUBLISH_MODEL => "publishers".to_owned(),
            _ => return None,
        })
    }

    /// Sets option `var` from a field's values.
    pub fn set(&mut self, var: &str, values: &[String]) -> Result<(), OptionError> {
        let value = values.first().map(String::as_str).unwrap_or("");
        let boolean = || parse_bool(value).ok_or(OptionError::Invalid);
        match var {
            var::ACCESS_MODEL => {
                self.access_model = AccessModel::parse(value).ok_or(OptionError::Invalid)?
            }
            var::PERSIST_ITEMS => self.persist_items = boolean()?,
            var::MAX_ITEMS => {
                self.max_items = ItemLimit::parse(value).ok_or(OptionError::Invalid)?
            }
            var::SEND_LAST => {
                self.send_last = SendLast::parse(value).ok_or(OptionError::Invalid)?
            }
            var::DELIVER_NOTIFICATIONS => self.deliver_notifications = boolean()?,
            var::DELIVER_PAYLOADS => self.deliver_payloads = boolean()?,
            var::NOTIFY_RETRACT => self.notify_retract = boolean()?,
            var::NOTIFY_DELETE => self.notify_delete = boolean()?,
            var::TITLE => self.title = value.to_owned(),
            var::PUBLISH_MODEL => {
                if value.trim() != "publishers" {
                    return Err(OptionError::Invalid);
                }
            }
            _ => return Err(OptionError::Unknown),
        }
        Ok(())
    }

    /// The configuration form (§8.2.1), of type `form` for a get.
    pub fn to_form(&self) -> DataForm {
        let mut f = DataForm::with_form_type("form", NODE_CONFIG);
        let field =
            |var: &str, ty: &str| Field::new(var, ty).with_value(self.get(var).unwrap_or_default());
        f.fields
            .push(field(var::ACCESS_MODEL, "list-single").with_options(&[
                "open",
                "presence",
                "roster",
                "whitelist",
            ]));
        f.fields.push(field(var::PERSIST_ITEMS, "boolean"));
        f.fields.push(field(var::MAX_ITEMS, "text-single"));
        f.fields
            .push(field(var::SEND_LAST, "list-single").with_options(&[
                "never",
                "on_sub",
                "on_sub_and_presence",
            ]));
        for var in [
            var::DELIVER_NOTIFICATIONS,
            var::DELIVER_PAYLOADS,
            var::NOTIFY_RETRACT,
            var::NOTIFY_DELETE,
        ] {
            f.fields.push(field(var, "boolean"));
        }
        f.fields.push(field(var::TITLE, "text-single"));
        f.fields
            .push(field(var::PUBLISH_MODEL, "list-single").with_options(&["publishers"]));
        f
    }

    /// Applies a submitted configuration form (§8.2.4). Options this service does not
    /// know are ignored; a value an option cannot take is `not-acceptable` (§8.2.5.3).
    pub fn apply_form(&mut self, form: &DataForm) -> Result<(), StanzaError> {
        if form.form_type().is_some_and(|t| t != NODE_CONFIG) {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "not a node configuration form",
            ));
        }
        let mut next = self.clone();
        for f in form.data_fields() {
            if let Err(OptionError::Invalid) = next.set(&f.var, &f.values) {
                return Err(StanzaError::with_text(
                    StanzaCondition::NotAcceptable,
                    format!("unsupported value for {}", f.var),
                ));
            }
        }
        *self = next;
        Ok(())
    }

    /// True if the node meets every precondition of a publish-options form (§7.1.5): each
    /// option has the value asked for, compared as values (`true` is `1`). An option this
    /// service does not know can never be met.
    pub fn meets(&self, options: &DataForm) -> bool {
        options.data_fields().all(|f| {
            let mut wanted = self.clone();
            wanted.set(&f.var, &f.values).is_ok() && wanted.get(&f.var) == self.get(&f.var)
        })
    }

    /// The configuration of a node auto-created by a publish with `options`
    /// (XEP-0060 §7.1.5, XEP-0223): these defaults with the options applied; `None` if one
    /// of them cannot be set.
    pub fn with_options(mut self, options: &DataForm) -> Option<NodeConfig> {
        for f in options.data_fields() {
            self.set(&f.var, &f.values).ok()?;
        }
        Some(self)
    }
}

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

    fn parse(xml: &str) -> Element {
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

    fn options(fields: &str) -> DataForm {
        DataForm::try_from(&parse(&format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
             <value>{PUBLISH_OPTIONS}</value></field>{fields}</x>"
        )))
        .unwrap()
    }

    fn field(var: &str, value: &str) -> String {
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
    fn config_form_round_trips_and_applies() {
        let cfg = NodeConfig {
            access_model: AccessModel::Open,
            max_items: ItemLimit::Max,
            title: "Devices".into(),
            ..NodeConfig::default()
        };
        let form = cfg.to_form();
        assert_eq!(form.form_type(), Some(NODE_CONFIG));
        assert_eq!(form.value(var::ACCESS_MODEL), Some("open"));
        assert_eq!(form.value(var::MAX_ITEMS), Some("max"));
        assert_eq!(form.value(var::PERSIST_ITEMS), Some("1"));
        assert_eq!(form.value(var::SEND_LAST), Some("on_sub_and_presence"));
        let back = DataForm::try_from(&Element::from(&form)).unwrap();
        let mut applied = NodeConfig::default();
        applied.apply_form(&back).unwrap();
        assert_eq!(applied, cfg);

        // Unknown options are ignored; invalid values refuse the whole form.
        let mut c = NodeConfig::default();
        let submit = |fields: &str| {
            DataForm::try_from(&parse(&format!(
                "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
                 <value>{NODE_CONFIG}</value></field>{fields}</x>"
            )))
            .unwrap()
        };
        c.apply_form(&submit(
            &(field("pubsub#type", "x") + &field(var::PERSIST_ITEMS, "false")),
        ))
        .unwrap();
        assert!(!c.persist_items);
        for bad in [
            field(var::ACCESS_MODEL, "authorize"),
            field(var::MAX_ITEMS, "-1"),
            field(var::NOTIFY_RETRACT, "maybe"),
            field(var::PUBLISH_MODEL, "open"),
        ] {
            let before = c.clone();
            let e = c
                .apply_form(&submit(&(field(var::TITLE, "changed") + &bad)))
                .unwrap_err();
            assert_eq!(e.condition, StanzaCondition::NotAcceptable, "{bad}");
            assert_eq!(c, before, "nothing applied from a refused form");
        }
        let wrong_type = options(&field(var::TITLE, "x"));
        assert_eq!(
            c.apply_form(&wrong_type).unwrap_err().condition,
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn publish_options_preconditions() {
        let default = NodeConfig::default();
        // Values compare as values: true is 1.
        assert!(default.meets(&options(&field(var::PERSIST_ITEMS, "true"))));
        assert!(default.meets(&options(&field(var::ACCESS_MODEL, "presence"))));
        assert!(default.meets(&options("")));
        assert!(!default.meets(&options(&field(var::ACCESS_MODEL, "open"))));
        assert!(!default.meets(&options(&field(var::MAX_ITEMS, "max"))));
        // An option we do not know, or a value we cannot take, is never met.
        assert!(!default.meets(&options(&field("pubsub#type", "urn:x"))));
        assert!(!default.meets(&options(&field(var::ACCESS_MODEL, "authorize"))));

        let bookmarks = options(
            &(field(var::PERSIST_ITEMS, "true")
                + &field(var::MAX_ITEMS, "max")
                + &field(var::SEND_LAST, "never")
                + &field(var::ACCESS_MODEL, "whitelist")),
        );
        let created = NodeConfig::default().with_options(&bookmarks).unwrap();
        assert_eq!(created.access_model, AccessModel::Whitelist);
        assert_eq!(created.max_items, ItemLimit::Max);
        assert_eq!(created.send_last, SendLast::Never);
        assert!(created.meets(&bookmarks));
        assert!(!default.meets(&bookmarks));
        assert_eq!(
            NodeConfig::default().with_options(&options(&field("pubsub#type", "x"))),
            None
        );
        assert_eq!(
            NodeConfig::default().with_options(&options(&field(var::MAX_ITEMS, "lots"))),
            None
        );
    }

    #[test]
    fn item_limits() {
        assert_eq!(ItemLimit::parse("max"), Some(ItemLimit::Max));
        assert_eq!(ItemLimit::parse(" 10 "), Some(ItemLimit::Count(10)));
        assert_eq!(ItemLimit::parse("-1"), None);
        assert_eq!(ItemLimit::Max.effective(256), 256);
        assert_eq!(ItemLimit::Count(1000).effective(256), 256);
        assert_eq!(ItemLimit::Count(3).effective(256), 3);
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
