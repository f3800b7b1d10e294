//! Owned XML elements, a builder and our own serializer (RFC 6120 §11: XML usage on streams).
//!
//! Stanzas are parsed once by roxmltree (see `parse`) into the owned [`Element`] below; the
//! serializer escapes `& < > " '` and declares a namespace only where it differs from the
//! parent's, so that `jabber:client` stanzas on a client stream carry no `xmlns` at all.
//! It also escapes what a parser would normalize away (CR; tab and LF in attribute values), so
//! that every element parses back to itself, and it writes elements in the streams namespace
//! with the `stream:` prefix, which our own stream header declares.
//!
//! Copies are cheap, because a routed message is copied for the archive and for each
//! recipient: common names and namespaces are static ([`Name`]), and attribute values and
//! text are shared (`Arc<str>`), so a copy allocates only its vectors.

pub mod error;
pub mod framer;
pub mod parse;
pub mod reader;

use crate::ns;
use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An element or attribute name, or a namespace URI. The ones every stanza has
/// (`message`, `body`, `jabber:client`, `to`, `id`, …, see [`Name::new`]) point into a
/// static table, so that parsing, building and cloning a stanza allocate only for its
/// values and text; any other name is an owned string. Compares, hashes and prints as the
/// string it holds.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Cow<'static, str>);

impl Name {
    /// `s`, from the static table if it is there.
    pub fn new(s: &str) -> Name {
        match common(s) {
            Some(c) => Name(Cow::Borrowed(c)),
            None => Name(Cow::Owned(s.to_owned())),
        }
    }

    /// A name that is a static string already.
    pub const fn from_static(s: &'static str) -> Name {
        Name(Cow::Borrowed(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The names and namespaces of what a server routes all day: stanzas and their usual
/// children and attributes, and the namespaces of `ns` and the modules. A `match` on the
/// string, which the compiler turns into a switch on the length and a few comparisons.
fn common(s: &str) -> Option<&'static str> {
    Some(match s {
        // Namespaces.
        ns::CLIENT => ns::CLIENT,
        ns::SERVER => ns::SERVER,
        ns::STREAM => ns::STREAM,
        ns::STREAMS => ns::STREAMS,
        ns::STANZAS => ns::STANZAS,
        ns::TLS => ns::TLS,
        ns::SASL => ns::SASL,
        ns::BIND => ns::BIND,
        ns::SESSION => ns::SESSION,
        ns::PING => ns::PING,
        ns::DISCO_INFO => ns::DISCO_INFO,
        ns::DISCO_ITEMS => ns::DISCO_ITEMS,
        ns::ROSTER => ns::ROSTER,
        ns::CAPS => ns::CAPS,
        "http://jabber.org/protocol/chatstates" => "http://jabber.org/protocol/chatstates",
        "urn:xmpp:receipts" => "urn:xmpp:receipts",
        "urn:xmpp:chat-markers:0" => "urn:xmpp:chat-markers:0",
        "urn:xmpp:sid:0" => "urn:xmpp:sid:0",
        "urn:xmpp:delay" => "urn:xmpp:delay",
        "urn:xmpp:carbons:2" => "urn:xmpp:carbons:2",
        "urn:xmpp:forward:0" => "urn:xmpp:forward:0",
        "urn:xmpp:hints" => "urn:xmpp:hints",
        "urn:xmpp:mam:2" => "urn:xmpp:mam:2",
        "urn:xmpp:sm:3" => "urn:xmpp:sm:3",
        "urn:xmpp:csi:0" => "urn:xmpp:csi:0",
        "vcard-temp:x:update" => "vcard-temp:x:update",
        "jabber:x:oob" => "jabber:x:oob",
        "eu.siacs.conversations.axolotl" => "eu.siacs.conversations.axolotl",
        "urn:xmpp:eme:0" => "urn:xmpp:eme:0",
        // Elements.
        "message" => "message",
        "presence" => "presence",
        "iq" => "iq",
        "body" => "body",
        "subject" => "subject",
        "thread" => "thread",
        "show" => "show",
        "status" => "status",
        "priority" => "priority",
        "error" => "error",
        "text" => "text",
        "query" => "query",
        "item" => "item",
        "c" => "c",
        "x" => "x",
        "delay" => "delay",
        "stanza-id" => "stanza-id",
        "origin-id" => "origin-id",
        "active" => "active",
        "composing" => "composing",
        "paused" => "paused",
        "inactive" => "inactive",
        "gone" => "gone",
        "request" => "request",
        "received" => "received",
        "displayed" => "displayed",
        "markable" => "markable",
        "sent" => "sent",
        "forwarded" => "forwarded",
        "private" => "private",
        "no-copy" => "no-copy",
        "no-store" => "no-store",
        "store" => "store",
        "ping" => "ping",
        "r" => "r",
        "a" => "a",
        "encrypted" => "encrypted",
        "header" => "header",
        "key" => "key",
        "payload" => "payload",
        // Attributes.
        "to" => "to",
        "from" => "from",
        "id" => "id",
        "type" => "type",
        "xml:lang" => "xml:lang",
        "by" => "by",
        "stamp" => "stamp",
        "node" => "node",
        "ver" => "ver",
        "hash" => "hash",
        "jid" => "jid",
        "name" => "name",
        "h" => "h",
        "sid" => "sid",
        "rid" => "rid",
        "namespace" => "namespace",
        _ => return None,
    })
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        match common(&s) {
            Some(c) => Name(Cow::Borrowed(c)),
            None => Name(Cow::Owned(s)),
        }
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0.into_owned()
    }
}

macro_rules! name_eq {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Name {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<Name> for $t {
            fn eq(&self, other: &Name) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
name_eq!(str, &str, String);

/// One child of an element: another element or character data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Shared, like attribute values: the copies of a stanza (the archive's, each
    /// recipient's) share its text instead of allocating it again.
    Text(Arc<str>),
    /// Children already serialized in their parent's namespace, written as they are: one
    /// serialization shared by many copies of a stanza (a room message's fan-out). Not
    /// seen by `elements()` or `text()`: only what is sent on unread is made of it.
    Raw(Arc<str>),
}

/// An owned XML element with its namespace resolved.
///
/// Attribute names are unqualified, except attributes in the XML namespace, which keep the
/// `xml:` prefix (`xml:lang`). Attributes in other namespaces are not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub name: Name,
    pub ns: Name,
    /// Values are shared between copies of the element, like text.
    pub attrs: Vec<(Name, Arc<str>)>,
    pub children: Vec<Node>,
}

impl Element {
    /// An empty element `name` in namespace `ns`.
    pub fn new(name: &str, ns: &str) -> Element {
        Element {
            name: Name::new(name),
            ns: Name::new(ns),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// True if this is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &**v)
    }

    /// Sets (or replaces) attribute `name`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<Arc<str>>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((Name::new(name), value)),
        }
    }

    /// Removes attribute `name`, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<Arc<str>> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }

    /// Builder form of [`Element::set_attr`].
    pub fn with_attr(mut self, name: &str, value: impl Into<Arc<str>>) -> Element {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends character data.
    pub fn with_text(mut self, text: impl Into<Arc<str>>) -> Element {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Appends a child element.
    pub fn push(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) | Node::Raw(_) => None,
        })
    }

    /// The first child element `name` in namespace `ns`.
    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, ns))
    }

    /// The first child element, whatever its name: an IQ's payload.
    pub fn first_element(&self) -> Option<&Element> {
        self.elements().next()
    }

    /// The character data directly inside this element, concatenated.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// This element with its children serialized once into one shared [`Node::Raw`],
    /// except the child elements `keep` wants left as elements (what later readers still
    /// look at): its copies (each with its own `to`) then cost a clone of the attributes
    /// and of the kept children each, not a serialization. For stanzas that are only sent.
    pub fn with_serialized_children(mut self, keep: impl Fn(&Element) -> bool) -> Element {
        let mut inner = String::with_capacity(256);
        let mut kept = Vec::new();
        for n in std::mem::take(&mut self.children) {
            match n {
                Node::Element(e) if keep(&e) => kept.push(Node::Element(e)),
                Node::Element(e) => e.write_to(&mut inner, &self.ns),
                Node::Text(t) => escape_into(&mut inner, &t),
                Node::Raw(r) => inner.push_str(&r),
            }
        }
        kept.push(Node::Raw(inner.into()));
        self.children = kept;
        self
    }

    /// Serializes this element as a top-level child of a stream whose default namespace is
    /// `parent_ns` (`jabber:client` for stanzas on a client stream).
    pub fn write_to(&self, out: &mut String, parent_ns: &str) {
        // Stream-level elements use the `stream:` prefix the header declared.
        let stream_level = self.ns == ns::STREAM;
        out.push('<');
        if stream_level {
            out.push_str("stream:");
        }
        out.push_str(&self.name);
        if !stream_level && self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_attr_into(out, &self.ns);
            out.push('\'');
        }
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("='");
            escape_attr_into(out, v);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        // Children of a stream-level element inherit the stream's default namespace.
        let inner_ns = if stream_level { parent_ns } else { &self.ns };
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_to(out, inner_ns),
                Node::Text(t) => escape_into(out, t),
                Node::Raw(r) => out.push_str(r),
            }
        }
        out.push_str("</");
        if stream_level {
            out.push_str("stream:");
        }
        out.push_str(&self.name);
        out.push('>');
    }

    /// Serializes as a document of its own, every namespace declared, the `stream` prefix
    /// too on a stream-level element: a message of XMPP over WebSocket (RFC 7395 §3.3.3).
    pub fn write_standalone(&self, out: &mut String) {
        let start = out.len();
        self.write_to(out, "");
        if self.ns == ns::STREAM {
            let at = start + "<stream:".len() + self.name.len();
            out.insert_str(at, " xmlns:stream='http://etherx.jabber.org/streams'");
        }
    }

    /// Serializes with `jabber:client` as the surrounding namespace.
    pub fn to_client_string(&self) -> String {
        let mut s = String::with_capacity(128);
        self.write_to(&mut s, ns::CLIENT);
        s
    }
}

impl fmt::Display for Element {
    /// Serializes with every namespace declared (no surrounding stream assumed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_to(&mut s, "");
        f.write_str(&s)
    }
}

/// Appends `text` escaped for character data: `& < > " '` become entity references (so the
/// result is also safe inside a quoted attribute value), and `\r` becomes `&#xD;`, which a
/// parser would otherwise turn into `\n` (XML 1.0 §2.11). Characters that XML 1.0 forbids
/// (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF) become U+FFFD, so that nothing we
/// write can make a peer close the stream as not well-formed.
pub fn escape_into(out: &mut String, text: &str) {
    escape_with(out, text, false);
}

/// Like [`escape_into`], for attribute values: tab and LF are escaped too, because a parser
/// normalizes them to spaces inside attributes (XML 1.0 §3.3.3).
pub(crate) fn escape_attr_into(out: &mut String, text: &str) {
    escape_with(out, text, true);
}

/// Bytes that [`escape_with`] must look at: markup characters, C0 controls (tab, LF and CR
/// among them) and 0xEF, the lead byte of U+FFFE and U+FFFF. Everything else is copied as a
/// run, found with one table lookup per byte.
static SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\'' as usize] = true;
    t[0xEF] = true;
    t
};

fn escape_with(out: &mut String, text: &str, attr: bool) {
    let bytes = text.as_bytes();
    let mut last = 0;
    let mut i = 0;
    out.reserve(bytes.len());
    while i < bytes.len() {
        let b = bytes[i];
        if !SPECIAL[usize::from(b)] {
            i += 1;
            continue;
        }
        let (rep, len) = match b {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' => ("&quot;", 1),
            b'\'' => ("&apos;", 1),
            b'\r' => ("&#xD;", 1),
            b'\n' if attr => ("&#xA;", 1),
            b'\t' if attr => ("&#x9;", 1),
            b'\n' | b'\t' => {
                i += 1;
                continue;
            }
            0x00..=0x1F => ("\u{FFFD}", 1),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                ("\u{FFFD}", 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // `i` is at an ASCII byte or a lead byte, so both slices fall on char boundaries.
        out.push_str(&text[last..i]);
        out.push_str(rep);
        i += len;
        last = i;
    }
    out.push_str(&text[last..]);
}

/// `text` with `& < > " '` escaped.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    escape_into(&mut s, text);
    s
}

#[cfg(test)]
mod tests {
    use super::parse::{parse_element, Scope};
    use super::*;

    #[test]
    fn serialized_children_write_the_same_stanza() {
        // The body comes first in `tricky`, so keeping it leaves the order unchanged.
        let whole = tricky();
        let shared = tricky().with_serialized_children(|c| c.is("body", ns::CLIENT));
        assert!(shared.child("body", ns::CLIENT).is_some());
        assert!(shared.child("query", "urn:a").is_none(), "now serialized");
        for parent in [ns::CLIENT, "", ns::SERVER] {
            let (mut a, mut b) = (String::new(), String::new());
            whole.write_to(&mut a, parent);
            shared.write_to(&mut b, parent);
            assert_eq!(a, b, "{parent}");
        }
        let (mut a, mut b) = (String::new(), String::new());
        whole.write_standalone(&mut a);
        shared.write_standalone(&mut b);
        assert_eq!(a, b);
        // A copy with its own `to` parses back to the same stanza.
        let mut copy = shared.clone();
        copy.set_attr("to", "romeo@example.net");
        let mut expected = whole.clone();
        expected.set_attr("to", "romeo@example.net");
        let back = parse_element(&Scope::client(), copy.to_client_string().as_bytes()).unwrap();
        assert_eq!(
            back,
            parse_element(&Scope::client(), expected.to_client_string().as_bytes()).unwrap()
        );
    }

    /// A stanza with everything the serializer must get right.
    fn tricky() -> Element {
        Element::new("message", ns::CLIENT)
            .with_attr("to", "juliet@example.com/balcony")
            .with_attr("id", "a&b<c>d\"e'f")
            .with_attr("xml:lang", "fr")
            .with_attr("note", "line\nbreak\ttab\rreturn")
            .with_child(
                Element::new("body", ns::CLIENT)
                    .with_text("1 < 2 & 3 > 2 \"q\" 'a' ]]> \u{e9}\u{263A}\u{1F600}\r\n"),
            )
            .with_child(
                Element::new("query", "urn:a")
                    .with_child(Element::new("item", "urn:a").with_attr("jid", "x@y"))
                    .with_child(
                        Element::new("other", "urn:b")
                            .with_child(Element::new("back", "urn:a"))
                            .with_child(Element::new("none", "")),
                    ),
            )
            .with_child(
                Element::new("features", ns::STREAM)
                    .with_child(Element::new("in-client", ns::CLIENT)),
            )
    }

    #[test]
    fn round_trips_through_the_parser() {
        let e = tricky();
        let s = e.to_client_string();
        assert_eq!(parse_element(&Scope::client(), s.as_bytes()), Ok(e.clone()));
        // Standalone: every namespace declared, for a WebSocket message.
        let mut w = String::new();
        Element::new("features", ns::STREAM)
            .with_child(Element::new("bind", ns::BIND))
            .write_standalone(&mut w);
        assert_eq!(
            w,
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
        );
        w.clear();
        Element::new("message", ns::CLIENT).write_standalone(&mut w);
        assert_eq!(w, "<message xmlns='jabber:client'/>");
        // Display declares the stanza's own namespace: it parses with only `stream` declared.
        let s = e.to_string();
        let scope = Scope::new([(Some("stream"), ns::STREAM)]);
        assert_eq!(parse_element(&scope, s.as_bytes()), Ok(e));
    }

    #[test]
    fn declares_a_namespace_only_where_it_changes() {
        let s = tricky().to_client_string();
        assert!(s.starts_with("<message to="), "{s}");
        assert!(s.contains("<body>"), "{s}");
        assert!(
            s.contains(
                "<query xmlns='urn:a'><item jid='x@y'/><other xmlns='urn:b'>\
                 <back xmlns='urn:a'/><none xmlns=''/></other></query>"
            ),
            "{s}"
        );
        assert!(
            s.contains("<stream:features><in-client/></stream:features>"),
            "{s}"
        );
    }

    #[test]
    fn escapes_text_and_attributes() {
        let e = Element::new("a", "")
            .with_attr("v", "&<>\"'\t\n\r")
            .with_text("&<>\"'\t\n\r");
        assert_eq!(
            e.to_string(),
            "<a v='&amp;&lt;&gt;&quot;&apos;&#x9;&#xA;&#xD;'>&amp;&lt;&gt;&quot;&apos;\t\n&#xD;</a>"
        );
        assert_eq!(escape("plain \u{e9}"), "plain \u{e9}");
    }

    #[test]
    fn escaping_matches_a_char_by_char_reference() {
        fn reference(text: &str, attr: bool) -> String {
            let mut s = String::new();
            for c in text.chars() {
                match c {
                    '&' => s.push_str("&amp;"),
                    '<' => s.push_str("&lt;"),
                    '>' => s.push_str("&gt;"),
                    '"' => s.push_str("&quot;"),
                    '\'' => s.push_str("&apos;"),
                    '\r' => s.push_str("&#xD;"),
                    '\n' if attr => s.push_str("&#xA;"),
                    '\t' if attr => s.push_str("&#x9;"),
                    '\n' | '\t' => s.push(c),
                    '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => s.push('\u{FFFD}'),
                    _ => s.push(c),
                }
            }
            s
        }
        let mut text: String = (0u8..0x80).map(char::from).collect();
        text.push_str("\u{e9}\u{EFFF}\u{FFFD}\u{FFFE}\u{FFFF}\u{F0000}\u{1F600}x\u{FFFE}");
        for attr in [false, true] {
            for t in [
                &text[..],
                "",
                "plain",
                "\u{FFFF}",
                "a&",
                "&a",
                "\u{EF}\u{BF}",
            ] {
                let mut s = String::new();
                escape_with(&mut s, t, attr);
                assert_eq!(s, reference(t, attr), "{t:?} attr={attr}");
            }
        }
    }

    #[test]
    fn never_writes_characters_xml_forbids() {
        let e = Element::new("a", "")
            .with_attr("v", "x\u{0}y")
            .with_text("\u{1}\u{1F}\u{FFFE}\u{FFFF}\u{FFFD}\u{EFFF}ok");
        let s = e.to_string();
        assert_eq!(
            s,
            "<a v='x\u{FFFD}y'>\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{EFFF}ok</a>"
        );
        assert!(parse_element(&Scope::default(), s.as_bytes()).is_ok());
    }
}
