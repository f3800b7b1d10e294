//! Room bookmarks in their two forms, converted both ways for XEP-0411 (Bookmarks
//! Conversion): XEP-0402 PEP Native Bookmarks (one `urn:xmpp:bookmarks:1` item per room,
//! named by the room's JID) and XEP-0048 Bookmarks (one `<storage xmlns='storage:bookmarks'/>`
//! element, here kept in XEP-0049 private XML storage).

use super::forms::parse_bool;
use crate::xml::{Element, Node};

/// XEP-0402's node and payload namespace.
pub const NS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0402 §3.1.1: the account feature of a server that keeps XEP-0048 private storage
/// bookmarks in sync with the PEP ones.
pub const COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
/// XEP-0048's namespace.
pub const NS_LEGACY: &str = "storage:bookmarks";

/// One room bookmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bookmark {
    /// The room's JID (XEP-0402: the item id).
    pub jid: String,
    pub name: Option<String>,
    pub autojoin: bool,
    pub nick: Option<String>,
    pub password: Option<String>,
    /// XEP-0402 `<extensions/>`: XEP-0048 has no place for them.
    pub extensions: Option<Element>,
}

fn child_text(e: &Element, name: &str) -> Option<String> {
    e.child(name, &e.ns).map(Element::text)
}

impl Bookmark {
    /// A `<conference/>` of a XEP-0048 `<storage/>`; `None` without a `jid`.
    pub fn from_legacy(conference: &Element) -> Option<Bookmark> {
        if !conference.is("conference", NS_LEGACY) {
            return None;
        }
        Some(Bookmark {
            jid: conference.attr("jid").filter(|j| !j.is_empty())?.to_owned(),
            name: conference.attr("name").map(str::to_owned),
            autojoin: conference
                .attr("autojoin")
                .and_then(parse_bool)
                .unwrap_or(false),
            nick: child_text(conference, "nick"),
            password: child_text(conference, "password"),
            extensions: None,
        })
    }

    /// The XEP-0048 `<conference/>`.
    pub fn to_legacy(&self) -> Element {
        self.to_element(NS_LEGACY, true)
    }

    /// A XEP-0402 item: its id and `<conference/>` payload; `None` if the payload is not
    /// one.
    pub fn from_pep(id: &str, conference: &Element) -> Option<Bookmark> {
        if !conference.is("conference", NS) || id.is_empty() {
            return None;
        }
        Some(Bookmark {
            jid: id.to_owned(),
            name: conference.attr("name").map(str::to_owned),
            autojoin: conference
                .attr("autojoin")
                .and_then(parse_bool)
                .unwrap_or(false),
            nick: child_text(conference, "nick"),
            password: child_text(conference, "password"),
            extensions: conference.child("extensions", NS).cloned(),
        })
    }

    /// The XEP-0402 `<conference/>` payload (the JID is the item id).
    pub fn to_pep(&self) -> Element {
        let mut e = self.to_element(NS, false);
        if let Some(x) = &self.extensions {
            e.push(x.clone());
        }
        e
    }

    fn to_element(&self, ns: &str, with_jid: bool) -> Element {
        let mut e = Element::new("conference", ns);
        if let Some(n) = &self.name {
            e.set_attr("name", n.clone());
        }
        e.set_attr("autojoin", if self.autojoin { "true" } else { "false" });
        if with_jid {
            e.set_attr("jid", self.jid.clone());
        }
        if let Some(n) = &self.nick {
            e.push(Element::new("nick", ns).with_text(n.clone()));
        }
        if let Some(p) = &self.password {
            e.push(Element::new("password", ns).with_text(p.clone()));
        }
        e
    }
}

/// The room bookmarks of a XEP-0048 `<storage/>`, the first of each JID.
pub fn from_storage(storage: &Element) -> Vec<Bookmark> {
    let mut out: Vec<Bookmark> = Vec::new();
    for b in storage.elements().filter_map(Bookmark::from_legacy) {
        if !out.iter().any(|x| x.jid == b.jid) {
            out.push(b);
        }
    }
    out
}

/// A XEP-0048 `<storage/>` with `bookmarks`, keeping what else `previous` held (its
/// `<url/>` bookmarks, which XEP-0402 has no place for).
pub fn to_storage(bookmarks: &[Bookmark], previous: Option<&Element>) -> Element {
    let mut storage = Element::new("storage", NS_LEGACY);
    for b in bookmarks {
        storage.push(b.to_legacy());
    }
    if let Some(prev) = previous {
        for n in &prev.children {
            if let Node::Element(e) = n {
                if !e.is("conference", NS_LEGACY) {
                    storage.push(e.clone());
                }
            }
        }
    }
    storage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    #[test]
    fn legacy_to_pep_and_back() {
        let storage = parse(
            "<storage xmlns='storage:bookmarks'>\
             <conference name='Council' autojoin='1' jid='council@muc.example'>\
             <nick>Puck</nick><password>pw</password></conference>\
             <conference jid='plain@muc.example'/>\
             <conference jid='council@muc.example' name='dup'/>\
             <conference name='no jid'/>\
             <url name='Site' url='https://example.org/'/></storage>",
        );
        let bookmarks = from_storage(&storage);
        assert_eq!(bookmarks.len(), 2);
        let council = &bookmarks[0];
        assert_eq!(council.jid, "council@muc.example");
        assert_eq!(council.name.as_deref(), Some("Council"));
        assert!(council.autojoin);
        assert_eq!(council.nick.as_deref(), Some("Puck"));
        assert_eq!(council.password.as_deref(), Some("pw"));
        assert_eq!(
            council.to_pep().to_client_string(),
            "<conference xmlns='urn:xmpp:bookmarks:1' name='Council' autojoin='true'>\
             <nick>Puck</nick><password>pw</password></conference>"
        );
        assert!(!bookmarks[1].autojoin);
        assert_eq!(bookmarks[1].name, None);

        let back = to_storage(&bookmarks, Some(&storage));
        assert_eq!(
            back.to_client_string(),
            "<storage xmlns='storage:bookmarks'>\
             <conference name='Council' autojoin='true' jid='council@muc.example'>\
             <nick>Puck</nick><password>pw</password></conference>\
             <conference autojoin='false' jid='plain@muc.example'/>\
             <url name='Site' url='https://example.org/'/></storage>"
        );
        assert_eq!(from_storage(&back), bookmarks);
    }

    #[test]
    fn pep_to_legacy_and_back_keeps_extensions_on_the_pep_side() {
        let payload = parse(
            "<conference xmlns='urn:xmpp:bookmarks:1' name='The Play' autojoin='true'>\
             <nick>JC</nick><extensions><state xmlns='http://myclient.example/bookmark/state' \
             minimized='true'/></extensions></conference>",
        );
        let b = Bookmark::from_pep("theplay@conference.shakespeare.lit", &payload).unwrap();
        assert_eq!(b.jid, "theplay@conference.shakespeare.lit");
        assert!(b.autojoin);
        assert!(b.extensions.is_some());
        assert_eq!(b.to_pep(), payload);
        let legacy = b.to_legacy();
        assert_eq!(
            legacy.to_client_string(),
            "<conference xmlns='storage:bookmarks' name='The Play' autojoin='true' \
             jid='theplay@conference.shakespeare.lit'><nick>JC</nick></conference>"
        );
        let again = Bookmark::from_legacy(&legacy).unwrap();
        assert_eq!(again.extensions, None);
        assert_eq!(
            Bookmark {
                extensions: b.extensions.clone(),
                ..again
            },
            b
        );
    }

    #[test]
    fn invalid_bookmarks() {
        assert_eq!(
            Bookmark::from_pep("", &parse("<conference xmlns='urn:xmpp:bookmarks:1'/>")),
            None
        );
        assert_eq!(
            Bookmark::from_pep("r@m", &parse("<conference xmlns='storage:bookmarks'/>")),
            None
        );
        assert_eq!(
            Bookmark::from_legacy(&parse("<conference xmlns='storage:bookmarks' jid=''/>")),
            None
        );
        assert_eq!(
            Bookmark::from_legacy(&parse("<url xmlns='storage:bookmarks' url='x'/>")),
            None
        );
    }
}
