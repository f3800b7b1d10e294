//! roxmltree behind one module: a frame from the framer → an owned [`Element`], and the
//! stream header → [`StreamHeader`] (RFC 6120 §4.7, §11).
//!
//! A top-level element is not a document on its own: its prefixes and default namespace were
//! declared on the stream header. So each frame is wrapped in a synthetic root that re-declares
//! the header's namespaces ([`Scope`]), parsed, checked for what RFC 6120 §11.1 forbids, and
//! copied into an owned [`Element`] at once. Switching to another parser touches only this file.
//! The wrapper is kept small, since roxmltree reads it for every stanza: a one-letter name, and
//! the header's prefixes only for frames that use them.

use super::error::{StreamCondition, StreamError};
use super::reader::StreamHeader;
use super::{escape_attr_into, Element, Name, Node};
use crate::ns;
use std::fmt;
use std::sync::Arc;

/// Name of the synthetic root. Its end tag cannot be forged by a frame: roxmltree would see a
/// mismatched end tag inside the frame's own element first. One letter, because roxmltree
/// reads it twice for every stanza.
const WRAPPER: &str = "f";

/// The namespace declarations in scope for top-level elements: those of the stream header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `<f xmlns='…' xmlns:stream='…'>`, built once per stream header.
    open: String,
    /// The same with the default namespace only: `<f xmlns='…'>`.
    open_default: String,
    /// The prefixes declared (`stream`): a frame that contains none of them followed by
    /// `:` cannot use one, so it is wrapped in `open_default`, which roxmltree parses faster.
    prefixes: Vec<Vec<u8>>,
}

impl Scope {
    /// A scope declaring `decls`: `(None, uri)` is the default namespace, `(Some(p), uri)`
    /// binds prefix `p`.
    pub fn new<'a>(decls: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Scope {
        let mut default = String::new();
        let mut prefixed = String::new();
        let mut prefixes = Vec::new();
        for (prefix, uri) in decls {
            let decl = match prefix {
                Some(p) => {
                    prefixes.push(p.as_bytes().to_vec());
                    prefixed.push_str(" xmlns:");
                    prefixed.push_str(p);
                    &mut prefixed
                }
                None => {
                    default.push_str(" xmlns");
                    &mut default
                }
            };
            decl.push_str("='");
            escape_attr_into(decl, uri);
            decl.push('\'');
        }
        Scope {
            open: format!("<{WRAPPER}{default}{prefixed}>"),
            open_default: format!("<{WRAPPER}{default}>"),
            prefixes,
        }
    }

    /// The scope of a client stream: `jabber:client` and the `stream` prefix.
    pub fn client() -> Scope {
        Scope::new([(None, ns::CLIENT), (Some("stream"), ns::STREAM)])
    }
}

impl Default for Scope {
    /// No declarations at all.
    fn default() -> Scope {
        Scope::new([])
    }
}

/// Why a frame could not be parsed. Every variant maps to one stream error condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// RFC 6120 §4.9.3.13.
    NotWellFormed(&'static str),
    /// An undeclared prefix (RFC 6120 §4.9.3.2).
    BadNamespacePrefix,
    /// Comments, processing instructions, DTDs, unknown entities (RFC 6120 §11.1).
    Restricted(&'static str),
    /// An XML declaration naming an encoding other than UTF-8 (RFC 6120 §11.6).
    UnsupportedEncoding,
    /// One of roxmltree's own limits (nodes, attributes, namespaces).
    TooMany,
}

impl ParseError {
    /// The stream error condition this deserves.
    pub fn condition(self) -> StreamCondition {
        match self {
            ParseError::NotWellFormed(_) => StreamCondition::NotWellFormed,
            ParseError::BadNamespacePrefix => StreamCondition::BadNamespacePrefix,
            ParseError::Restricted(_) => StreamCondition::RestrictedXml,
            ParseError::UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
            ParseError::TooMany => StreamCondition::PolicyViolation,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            ParseError::NotWellFormed(r) | ParseError::Restricted(r) => r,
            ParseError::BadNamespacePrefix => "undeclared namespace prefix",
            ParseError::UnsupportedEncoding => "only UTF-8 is allowed",
            ParseError::TooMany => "too many nodes, attributes or namespaces",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.condition(), self.reason())
    }
}

impl From<ParseError> for StreamError {
    fn from(e: ParseError) -> StreamError {
        StreamError::with_text(e.condition(), e.reason())
    }
}

/// A parsed stream header, before the reader's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedHeader {
    /// What the connection code gets.
    pub header: StreamHeader,
    /// The header element's local name (`stream`).
    pub name: String,
    /// The header element's namespace (`http://etherx.jabber.org/streams`), `""` if none.
    pub ns: String,
    /// The header's namespace declarations, for the frames that follow.
    pub scope: Scope,
}

/// Parses one top-level element (a frame from the framer) in the namespace `scope` of its
/// stream header.
pub fn parse_element(scope: &Scope, frame: &[u8]) -> Result<Element, ParseError> {
    parse_element_with(&mut String::new(), scope, frame)
}

/// [`parse_element`] with a buffer for the wrapped frame that the caller keeps, so that a
/// stream reuses one allocation for all its stanzas. The buffer's content is replaced.
pub fn parse_element_with(
    text: &mut String,
    scope: &Scope,
    frame: &[u8],
) -> Result<Element, ParseError> {
    // Invalid UTF-8 breaks XML 1.0 §4.3.3 (a fatal, well-formedness error); it is not an
    // attempt at another encoding, which only a declaration can announce (RFC 6120 §11.6).
    let frame =
        std::str::from_utf8(frame).map_err(|_| ParseError::NotWellFormed("invalid UTF-8"))?;
    text.clear();
    // Colons are few (prefixed names, namespace URIs): each is checked for a prefix before it.
    let uses_prefix = !scope.prefixes.is_empty()
        && memchr::memchr_iter(b':', frame.as_bytes()).any(|i| {
            let before = &frame.as_bytes()[..i];
            scope.prefixes.iter().any(|p| before.ends_with(p))
        });
    let open = if uses_prefix {
        &scope.open
    } else {
        &scope.open_default
    };
    text.reserve(open.len() + frame.len() + WRAPPER.len() + 3);
    text.push_str(open);
    text.push_str(frame);
    text.push_str("</");
    text.push_str(WRAPPER);
    text.push('>');
    let doc = parse_document(text)?;
    let mut found = None;
    for node in doc.root_element().children() {
        match node.node_type() {
            roxmltree::NodeType::Element if found.is_none() => found = Some(node),
            roxmltree::NodeType::Element => {
                return Err(ParseError::NotWellFormed(
                    "more than one element in a frame",
                ))
            }
            roxmltree::NodeType::Text => {
                return Err(ParseError::NotWellFormed("text outside the element"))
            }
            _ => return Err(restricted_node(node)),
        }
    }
    match found {
        Some(node) => to_element(node),
        None => Err(ParseError::NotWellFormed("no element in a frame")),
    }
}

/// Parses the stream header: the XML declaration if any, and the opening tag (RFC 6120 §4.7).
pub fn parse_header(decl: Option<&[u8]>, tag: &[u8]) -> Result<ParsedHeader, ParseError> {
    if let Some(d) = decl {
        check_declaration(d)?;
    }
    let tag = std::str::from_utf8(tag).map_err(|_| ParseError::NotWellFormed("invalid UTF-8"))?;
    // Close the tag so that it is a whole document: `<stream:stream …>` → `<stream:stream …/>`.
    let mut text = String::with_capacity(tag.len() + 1);
    if tag.ends_with("/>") {
        text.push_str(tag);
    } else {
        text.push_str(tag.strip_suffix('>').unwrap_or(tag));
        text.push_str("/>");
    }
    let doc = parse_document(&text)?;
    let root = doc.root_element();
    if let Some(node) = doc.root().children().find(|n| !n.is_element()) {
        return Err(restricted_node(node));
    }
    let mut header = StreamHeader::default();
    for a in root.attributes() {
        let slot = match (a.namespace(), a.name()) {
            (None, "to") => &mut header.to,
            (None, "from") => &mut header.from,
            (None, "id") => &mut header.id,
            (None, "version") => &mut header.version,
            (Some(ns::XML), "lang") => &mut header.lang,
            _ => continue,
        };
        *slot = Some(a.value().to_owned());
    }
    header.default_ns = root.default_namespace().map(str::to_owned);
    let scope = Scope::new(
        root.namespaces()
            .filter(|n| n.name() != Some("xml"))
            .map(|n| (n.name(), n.uri())),
    );
    Ok(ParsedHeader {
        header,
        name: root.tag_name().name().to_owned(),
        ns: root.tag_name().namespace().unwrap_or("").to_owned(),
        scope,
    })
}

/// The one call into roxmltree.
fn parse_document(text: &str) -> Result<roxmltree::Document<'_>, ParseError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, options).map_err(map_error)
}

fn map_error(e: roxmltree::Error) -> ParseError {
    use roxmltree::Error as E;
    match e {
        E::UnknownNamespace(..) | E::InvalidElementNamePrefix(..) => ParseError::BadNamespacePrefix,
        E::UnknownEntityReference(..) | E::EntityReferenceLoop(..) => {
            ParseError::Restricted("entity reference")
        }
        E::DtdDetected => ParseError::Restricted("document type declaration"),
        E::NodesLimitReached | E::AttributesLimitReached | E::NamespacesLimitReached => {
            ParseError::TooMany
        }
        E::UnexpectedCloseTag(..) => ParseError::NotWellFormed("mismatched end tag"),
        E::DuplicatedAttribute(..) => ParseError::NotWellFormed("duplicated attribute"),
        E::DuplicatedNamespace(..) => ParseError::NotWellFormed("duplicated namespace"),
        E::InvalidXmlPrefixUri(..) | E::UnexpectedXmlUri(..) | E::UnexpectedXmlnsUri(..) => {
            ParseError::NotWellFormed("misuse of the xml or xmlns namespace")
        }
        E::NonXmlChar(..) => ParseError::NotWellFormed("character not allowed in XML"),
        E::MalformedEntityReference(..) => ParseError::NotWellFormed("malformed entity reference"),
        E::InvalidName(..) => ParseError::NotWellFormed("invalid name"),
        _ => ParseError::NotWellFormed("not well-formed XML"),
    }
}

fn restricted_node(node: roxmltree::Node) -> ParseError {
    if node.is_pi() {
        ParseError::Restricted("processing instruction")
    } else if node.is_comment() {
        ParseError::Restricted("comment")
    } else {
        ParseError::NotWellFormed("unexpected node")
    }
}

/// Copies a roxmltree element into an owned [`Element`]. Iterative, so that no input can
/// exhaust the stack (the framer bounds depth, but this function does not rely on it).
fn to_element(root: roxmltree::Node) -> Result<Element, ParseError> {
    // Stanzas are shallow: one allocation for the stack, almost always.
    let mut stack = Vec::with_capacity(8);
    stack.push((shallow(root), root.children()));
    while let Some((_, children)) = stack.last_mut() {
        match children.next() {
            Some(node) if node.is_element() => stack.push((shallow(node), node.children())),
            Some(node) if node.is_text() => {
                let text = Arc::from(node.text().unwrap_or_default());
                if let Some((parent, _)) = stack.last_mut() {
                    parent.children.push(Node::Text(text));
                }
            }
            Some(node) => return Err(restricted_node(node)),
            None => {
                let Some((done, _)) = stack.pop() else { break };
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(Node::Element(done)),
                    None => return Ok(done),
                }
            }
        }
    }
    Err(ParseError::NotWellFormed("no element in a frame"))
}

/// The element itself, without children: local name, namespace URI, and the attributes we
/// keep (unqualified ones, and `xml:*` with their prefix).
fn shallow(node: roxmltree::Node) -> Element {
    let name = node.tag_name();
    let mut e = Element::new(name.name(), name.namespace().unwrap_or(""));
    for a in node.attributes() {
        match a.namespace() {
            None => e.attrs.push((Name::new(a.name()), Arc::from(a.value()))),
            Some(ns::XML) if a.name() == "lang" => e
                .attrs
                .push((Name::from_static("xml:lang"), Arc::from(a.value()))),
            Some(ns::XML) => e.attrs.push((
                Name::from(format!("xml:{}", a.name())),
                Arc::from(a.value()),
            )),
            // Attributes in other namespaces mean nothing to the server.
            Some(_) => {}
        }
    }
    e
}

/// Checks `<?xml version='1.x' encoding='…' standalone='…'?>` (XML 1.0 §2.8): the syntax,
/// and that the encoding, if named, is UTF-8 (RFC 6120 §11.6).
fn check_declaration(d: &[u8]) -> Result<(), ParseError> {
    const BAD: ParseError = ParseError::NotWellFormed("malformed XML declaration");
    let mut rest = d
        .strip_prefix(b"<?xml")
        .and_then(|r| r.strip_suffix(b"?>"))
        .ok_or(BAD)?;
    let mut expected: &[&[u8]] = &[b"version", b"encoding", b"standalone"];
    let mut first = true;
    loop {
        let trimmed = rest.trim_ascii_start();
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(BAD); // pseudo-attributes are separated by whitespace
        }
        let eq = trimmed.iter().position(|&b| b == b'=').ok_or(BAD)?;
        let name = trimmed[..eq].trim_ascii_end();
        let after = trimmed[eq + 1..].trim_ascii_start();
        let quote = *after.first().ok_or(BAD)?;
        if quote != b'"' && quote != b'\'' {
            return Err(BAD);
        }
        let len = after[1..].iter().position(|&b| b == quote).ok_or(BAD)?;
        let value = &after[1..1 + len];
        rest = &after[len + 2..];
        // The order is fixed and only version is required.
        let i = expected.iter().position(|&n| n == name).ok_or(BAD)?;
        if first && i != 0 {
            return Err(BAD);
        }
        first = false;
        expected = &expected[i + 1..];
        match name {
            b"version" => {
                let ok = value
                    .strip_prefix(b"1.")
                    .is_some_and(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit));
                if !ok {
                    return Err(BAD);
                }
            }
            b"encoding" => {
                let valid_name = value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !valid_name {
                    return Err(BAD);
                }
                if !value.eq_ignore_ascii_case(b"UTF-8") {
                    return Err(ParseError::UnsupportedEncoding);
                }
            }
            _ => {
                if value != b"yes" && value != b"no" {
                    return Err(BAD);
                }
            }
        }
    }
    if first {
        return Err(BAD); // version is required
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(frame: &str) -> Result<Element, ParseError> {
        parse_element(&Scope::client(), frame.as_bytes())
    }

    #[test]
    fn namespaces_are_resolved() {
        let e = client(
            "<message xmlns:x='urn:x'><x:a><b/></x:a><c xmlns='urn:c'><d/></c><e/>\
             <stream:error/></message>",
        )
        .unwrap();
        assert!(e.is("message", ns::CLIENT));
        let names: Vec<(&str, &str)> = e
            .elements()
            .map(|c| (c.name.as_str(), c.ns.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("a", "urn:x"),
                ("c", "urn:c"),
                ("e", ns::CLIENT),
                ("error", ns::STREAM)
            ]
        );
        // A prefix binds only its own element; the default namespace is inherited.
        assert!(e
            .elements()
            .next()
            .unwrap()
            .child("b", ns::CLIENT)
            .is_some());
        assert!(e.child("c", "urn:c").unwrap().child("d", "urn:c").is_some());
    }

    #[test]
    fn stanzas_take_the_scope_of_their_header() {
        let scope = Scope::new([
            (None, ns::SERVER),
            (Some("s"), ns::STREAM),
            (Some("db"), "jabber:server:dialback"),
        ]);
        let e = parse_element(&scope, b"<db:result><s:features/><x/></db:result>").unwrap();
        assert!(e.is("result", "jabber:server:dialback"));
        assert!(e.child("features", ns::STREAM).is_some());
        assert!(e.child("x", "jabber:server:dialback").is_none());
        assert!(e.child("x", ns::SERVER).is_some());
        // Without declarations there is no namespace at all.
        let e = parse_element(&Scope::default(), b"<presence/>").unwrap();
        assert!(e.is("presence", ""));
    }

    #[test]
    fn header_prefixes_are_declared_for_frames_that_use_them() {
        let scope = Scope::client();
        assert_eq!(scope.open_default, "<f xmlns='jabber:client'>");
        assert!(scope.open.contains("xmlns:stream="), "{}", scope.open);
        // With or without `stream:` in it, a frame means the same.
        let plain = client("<message><body>hi</body></message>").unwrap();
        assert_eq!(plain.child("body", ns::CLIENT).unwrap().text(), "hi");
        let e =
            client("<stream:error><x xmlns:stream='urn:s'><stream:y/></x></stream:error>").unwrap();
        assert!(e.is("error", ns::STREAM));
        assert!(e.elements().next().unwrap().child("y", "urn:s").is_some());
        let e = client("<iq><b xmlns:stream='urn:s'/>stream:text</iq>").unwrap();
        assert_eq!(e.text(), "stream:text");
        // A prefix the header did not declare is still an error.
        assert_eq!(client("<a:b/>"), Err(ParseError::BadNamespacePrefix));
        assert_eq!(
            parse_element(&Scope::new([(None, ns::CLIENT)]), b"<stream:error/>"),
            Err(ParseError::BadNamespacePrefix)
        );
    }

    #[test]
    fn attributes_are_unqualified_except_xml() {
        let e = client(
            "<message xmlns:x='urn:x' to='a@b' xml:lang='fr' x:secret='1' \
             type=\"chat\" note='a &amp; b &#x9;&#10;'/>",
        )
        .unwrap();
        let attrs: Vec<(&str, &str)> = e.attrs.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            attrs,
            [
                ("to", "a@b"),
                ("xml:lang", "fr"),
                ("type", "chat"),
                ("note", "a & b \t\n"),
            ]
        );
    }

    #[test]
    fn text_and_cdata_become_one_text_node() {
        let e = client("<body>x &lt;<![CDATA[<y> & ]]>z\u{e9}</body>").unwrap();
        assert_eq!(e.children, [Node::Text("x <<y> & z\u{e9}".into())]);
    }

    #[test]
    fn invalid_input_is_rejected() {
        let nwf = |e: Result<Element, ParseError>| matches!(e, Err(ParseError::NotWellFormed(_)));
        assert_eq!(client("<x:a/>"), Err(ParseError::BadNamespacePrefix));
        assert_eq!(client("<a x:b='1'/>"), Err(ParseError::BadNamespacePrefix));
        assert_eq!(
            client("<a>&lol;</a>"),
            Err(ParseError::Restricted("entity reference"))
        );
        // The framer rejects these first; the parser does not rely on it.
        assert_eq!(
            client("<a><!-- x --></a>"),
            Err(ParseError::Restricted("comment"))
        );
        assert_eq!(
            client("<a><?pi x?></a>"),
            Err(ParseError::Restricted("processing instruction"))
        );
        assert_eq!(
            client("<!-- x --><a/>"),
            Err(ParseError::Restricted("comment"))
        );
        assert!(nwf(client("<a><b></a></b>")));
        assert!(nwf(client("<a></f><f>")));
        assert!(nwf(client("<a></f>")));
        assert!(nwf(client("<f></f></f><f>")));
        assert!(client("<f><f/></f>").is_ok());
        assert!(nwf(client("<a x='1' x='2'/>")));
        assert!(nwf(client("<a>\u{1}</a>")));
        assert!(nwf(client("<a/><b/>")));
        assert!(nwf(client("<a/>text")));
        assert!(nwf(client("")));
        assert_eq!(
            parse_element(&Scope::client(), b"<a>\xC3\x28</a>"),
            Err(ParseError::NotWellFormed("invalid UTF-8"))
        );
        assert_eq!(
            ParseError::BadNamespacePrefix.condition(),
            StreamCondition::BadNamespacePrefix
        );
    }

    const HEADER: &str = "<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='example.org' from='me@example.org' \
        version='1.0' xml:lang='en' id='abc'>";

    #[test]
    fn header_fields_and_scope() {
        let h = parse_header(None, HEADER.as_bytes()).unwrap();
        assert_eq!(
            h.header,
            StreamHeader {
                to: Some("example.org".into()),
                from: Some("me@example.org".into()),
                id: Some("abc".into()),
                version: Some("1.0".into()),
                lang: Some("en".into()),
                default_ns: Some(ns::CLIENT.into()),
            }
        );
        assert_eq!((h.name.as_str(), h.ns.as_str()), ("stream", ns::STREAM));
        assert_eq!(h.scope, Scope::client());
        let bare = parse_header(None, b"<s:stream xmlns:s='urn:x'/>").unwrap();
        assert_eq!(bare.header, StreamHeader::default());
        assert_eq!((bare.name.as_str(), bare.ns.as_str()), ("stream", "urn:x"));
        assert_eq!(
            parse_header(None, b"<s:stream>"),
            Err(ParseError::BadNamespacePrefix)
        );
    }

    #[test]
    fn xml_declaration() {
        let ok = |d: &str| parse_header(Some(d.as_bytes()), HEADER.as_bytes()).map(|_| ());
        assert_eq!(ok("<?xml version='1.0'?>"), Ok(()));
        assert_eq!(ok("<?xml version=\"1.0\" encoding=\"utf-8\" ?>"), Ok(()));
        assert_eq!(
            ok("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"),
            Ok(())
        );
        assert_eq!(ok("<?xml version = '1.1'\n?>"), Ok(()));
        for enc in ["ISO-8859-1", "UTF-16", "utf8"] {
            let d = format!("<?xml version='1.0' encoding='{enc}'?>");
            assert_eq!(ok(&d), Err(ParseError::UnsupportedEncoding), "{enc}");
        }
        for bad in [
            "<?xml?>",
            "<?xml encoding='UTF-8'?>",
            "<?xml version='2.0'?>",
            "<?xml version='1.0'encoding='UTF-8'?>",
            "<?xml encoding='UTF-8' version='1.0'?>",
            "<?xml version='1.0' standalone='yes' encoding='UTF-8'?>",
            "<?xml version='1.0' version='1.0'?>",
            "<?xml version='1.0' standalone='maybe'?>",
            "<?xml version='1.0' encoding=''?>",
            "<?xml version='1.0' foo='bar'?>",
            "<?xml version='1.0?>",
        ] {
            assert!(
                matches!(ok(bad), Err(ParseError::NotWellFormed(_))),
                "{bad}: {:?}",
                ok(bad)
            );
        }
    }
}
