//! XEP-0030 Service Discovery `disco#info` results as a typed view, and the XEP-0115 §5.1
//! verification string and `ver` hash computed from them.

use crate::ns;
use crate::xml::Element;
use std::fmt;

/// One `<identity/>` of a `disco#info` result (XEP-0030 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    // Field order is the XEP-0115 §5.1 sort order: category, type, xml:lang.
    pub category: String,
    pub ty: String,
    pub lang: Option<String>,
    pub name: Option<String>,
}

impl Identity {
    /// An identity without `xml:lang`.
    pub fn new(category: &str, ty: &str, name: Option<&str>) -> Identity {
        Identity {
            category: category.to_owned(),
            ty: ty.to_owned(),
            lang: None,
            name: name.map(str::to_owned),
        }
    }
}

/// A `disco#info` result: `<query xmlns='…disco#info' node='…'>` with identities and
/// features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoInfo {
    pub node: Option<String>,
    pub identities: Vec<Identity>,
    pub features: Vec<String>,
}

/// Why an element is not a valid `disco#info` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoError {
    /// Not `<query xmlns='http://jabber.org/protocol/disco#info'/>`.
    NotInfo,
    /// An identity without `category` or `type`, or a feature without `var`.
    MissingAttribute(&'static str),
    /// XEP-0030 §3.1: at least one identity.
    NoIdentity,
    /// XEP-0115 §5.4: the same feature twice, or the same identity twice.
    Duplicate,
}

impl fmt::Display for DiscoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoError::NotInfo => f.write_str("not a disco#info query"),
            DiscoError::MissingAttribute(a) => write!(f, "missing attribute '{a}'"),
            DiscoError::NoIdentity => f.write_str("no identity"),
            DiscoError::Duplicate => f.write_str("a feature or identity appears twice"),
        }
    }
}

impl std::error::Error for DiscoError {}

impl TryFrom<&Element> for DiscoInfo {
    type Error = DiscoError;

    fn try_from(e: &Element) -> Result<DiscoInfo, DiscoError> {
        if !e.is("query", ns::DISCO_INFO) {
            return Err(DiscoError::NotInfo);
        }
        let mut info = DiscoInfo {
            node: e.attr("node").map(str::to_owned),
            identities: Vec::new(),
            features: Vec::new(),
        };
        for child in e.elements().filter(|c| c.ns == ns::DISCO_INFO) {
            match child.name.as_str() {
                "identity" => info.identities.push(Identity {
                    category: child
                        .attr("category")
                        .ok_or(DiscoError::MissingAttribute("category"))?
                        .to_owned(),
                    ty: child
                        .attr("type")
                        .ok_or(DiscoError::MissingAttribute("type"))?
                        .to_owned(),
                    lang: child.attr("xml:lang").map(str::to_owned),
                    name: child.attr("name").map(str::to_owned),
                }),
                "feature" => info.features.push(
                    child
                        .attr("var")
                        .ok_or(DiscoError::MissingAttribute("var"))?
                        .to_owned(),
                ),
                _ => {}
            }
        }
        if info.identities.is_empty() {
            return Err(DiscoError::NoIdentity);
        }
        let mut features = info.features.clone();
        features.sort();
        features.dedup();
        let mut ids: Vec<_> = info
            .identities
            .iter()
            .map(|i| (&i.category, &i.ty, &i.lang))
            .collect();
        ids.sort();
        ids.dedup();
        if features.len() != info.features.len() || ids.len() != info.identities.len() {
            return Err(DiscoError::Duplicate);
        }
        Ok(info)
    }
}

impl From<&DiscoInfo> for Element {
    fn from(info: &DiscoInfo) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO);
        if let Some(node) = &info.node {
            q.set_attr("node", node.clone());
        }
        for i in &info.identities {
            let mut e = Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", i.category.clone())
                .with_attr("type", i.ty.clone());
            if let Some(lang) = &i.lang {
                e.set_attr("xml:lang", lang.clone());
            }
            if let Some(name) = &i.name {
                e.set_attr("name", name.clone());
            }
            q.push(e);
        }
        for f in &info.features {
            q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f.clone()));
        }
        q
    }
}

impl DiscoInfo {
    /// The XEP-0115 §5.1 verification string (without extended information forms):
    /// identities sorted by category, type and xml:lang as `category/type/lang/name<`, then
    /// the sorted features, each followed by `<`.
    pub fn caps_string(&self) -> String {
        let mut ids: Vec<&Identity> = self.identities.iter().collect();
        ids.sort();
        let mut features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        features.sort_unstable();
        let mut s = String::new();
        for i in ids {
            s.push_str(&i.category);
            s.push('/');
            s.push_str(&i.ty);
            s.push('/');
            s.push_str(i.lang.as_deref().unwrap_or(""));
            s.push('/');
            s.push_str(i.name.as_deref().unwrap_or(""));
            s.push('<');
        }
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        s
    }

    /// The XEP-0115 `ver` for `hash='sha-1'`: Base64 of the SHA-1 of [`Self::caps_string`].
    pub fn caps_ver(&self) -> String {
        use base64::Engine;
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            self.caps_string().as_bytes(),
        );
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    /// XEP-0115 §5.2, the simple example (Exodus).
    fn exodus() -> DiscoInfo {
        DiscoInfo {
            node: None,
            identities: vec![Identity::new("client", "pc", Some("Exodus 0.9.1"))],
            features: vec![
                "http://jabber.org/protocol/disco#info".into(),
                "http://jabber.org/protocol/disco#items".into(),
                "http://jabber.org/protocol/muc".into(),
                "http://jabber.org/protocol/caps".into(),
            ],
        }
    }

    #[test]
    fn caps_ver_of_the_xep_0115_simple_example() {
        let info = exodus();
        assert_eq!(
            info.caps_string(),
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<"
        );
        assert_eq!(info.caps_ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    #[test]
    fn caps_string_sorts_identities_by_category_type_lang() {
        let info = DiscoInfo {
            node: None,
            identities: vec![
                Identity {
                    lang: Some("en".into()),
                    ..Identity::new("client", "pc", Some("Psi 0.11"))
                },
                Identity {
                    lang: Some("el".into()),
                    ..Identity::new("client", "pc", Some("Ψ 0.11"))
                },
                Identity::new("account", "registered", None),
            ],
            features: vec![],
        };
        assert_eq!(
            info.caps_string(),
            "account/registered//<client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<"
        );
    }

    #[test]
    fn parse_a_result() {
        let e = parse(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='n#v'>\
             <identity category='server' type='im' name='roost'/>\
             <identity category='client' type='pc' xml:lang='en'/>\
             <feature var='urn:xmpp:ping'/><feature var='jabber:iq:version'/>\
             <x xmlns='jabber:x:data' type='result'/></query>",
        );
        let info = DiscoInfo::try_from(&e).unwrap();
        assert_eq!(info.node.as_deref(), Some("n#v"));
        assert_eq!(
            info.identities,
            vec![
                Identity::new("server", "im", Some("roost")),
                Identity {
                    lang: Some("en".into()),
                    ..Identity::new("client", "pc", None)
                }
            ]
        );
        assert_eq!(info.features, vec!["urn:xmpp:ping", "jabber:iq:version"]);
    }

    #[test]
    fn serialize_round_trips() {
        let mut info = exodus();
        info.node = Some("https://roost.example/caps#x".into());
        info.identities[0].lang = Some("en".into());
        let e = Element::from(&info);
        assert_eq!(
            e.to_client_string(),
            "<query xmlns='http://jabber.org/protocol/disco#info' \
             node='https://roost.example/caps#x'>\
             <identity category='client' type='pc' xml:lang='en' name='Exodus 0.9.1'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='http://jabber.org/protocol/muc'/>\
             <feature var='http://jabber.org/protocol/caps'/></query>"
        );
        let back = parse(&e.to_client_string());
        assert_eq!(DiscoInfo::try_from(&back).unwrap(), info);
    }

    #[test]
    fn invalid_results() {
        for (xml, err) in [
            (
                "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                DiscoError::NotInfo,
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                DiscoError::NoIdentity,
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'><identity type='im'/></query>",
                DiscoError::MissingAttribute("category"),
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'>\
                 <identity category='server'/></query>",
                DiscoError::MissingAttribute("type"),
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'>\
                 <identity category='server' type='im'/><feature/></query>",
                DiscoError::MissingAttribute("var"),
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'>\
                 <identity category='server' type='im'/>\
                 <feature var='a'/><feature var='a'/></query>",
                DiscoError::Duplicate,
            ),
            (
                "<query xmlns='http://jabber.org/protocol/disco#info'>\
                 <identity category='server' type='im' name='a'/>\
                 <identity category='server' type='im' name='b'/></query>",
                DiscoError::Duplicate,
            ),
        ] {
            assert_eq!(DiscoInfo::try_from(&parse(xml)), Err(err), "{xml}");
        }
    }
}
