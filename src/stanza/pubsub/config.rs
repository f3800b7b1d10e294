//! XEP-0060 node configuration (§16.4, with XEP-0223's persistent private nodes): access
//! models, item limits, when the last item is sent, and the `pubsub#node_config` and
//! `pubsub#publish-options` forms that read and change them.

use super::NODE_CONFIG;
use crate::stanza::forms::{parse_bool, DataForm, Field};
use crate::stanza::{StanzaCondition, StanzaError};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::pubsub::tests::{field, options, parse};
    use crate::xml::Element;

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
}
