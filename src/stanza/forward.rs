//! XEP-0297 Stanza Forwarding, with the XEP-0203 `<delay/>` that dates a forwarded stanza:
//! how archive results (XEP-0313) and carbon copies (XEP-0280) wrap a message.

use crate::xml::Element;

/// The forwarding namespace.
pub const NS: &str = "urn:xmpp:forward:0";
/// XEP-0203 delayed delivery.
pub use crate::ns::DELAY as NS_DELAY;

/// `<forwarded xmlns='urn:xmpp:forward:0'>[<delay stamp='…'/>]stanza</forwarded>`.
pub fn forwarded(stanza: Element, stamp: Option<&str>) -> Element {
    let mut f = Element::new("forwarded", NS);
    if let Some(s) = stamp {
        f.push(Element::new("delay", NS_DELAY).with_attr("stamp", s));
    }
    f.push(stanza);
    f
}

/// The stamp and the stanza of a `<forwarded/>`: `None` if it is not one or holds no
/// stanza.
pub fn unwrap(forwarded: &Element) -> Option<(Option<&str>, &Element)> {
    if !forwarded.is("forwarded", NS) {
        return None;
    }
    let stamp = forwarded
        .child("delay", NS_DELAY)
        .and_then(|d| d.attr("stamp"));
    let stanza = forwarded
        .elements()
        .find(|e| matches!(e.name.as_str(), "message" | "presence" | "iq"))?;
    Some((stamp, stanza))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;
    use crate::xml::parse::{parse_element, Scope};

    #[test]
    fn wraps_and_unwraps() {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"));
        let f = forwarded(m.clone(), Some("2026-01-01T00:00:00Z"));
        let s = f.to_client_string();
        assert_eq!(
            s,
            "<forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>\
             <message xmlns='jabber:client' to='a@b'><body>hi</body></message></forwarded>"
        );
        let parsed = parse_element(&Scope::client(), s.as_bytes()).unwrap();
        assert_eq!(
            unwrap(&parsed),
            Some((Some("2026-01-01T00:00:00Z"), &m)),
            "the inner message keeps the client namespace"
        );
        let bare = forwarded(m.clone(), None);
        assert_eq!(unwrap(&bare), Some((None, &m)));
    }

    #[test]
    fn rejects_what_is_not_a_forwarded_stanza() {
        assert_eq!(unwrap(&Element::new("forwarded", "urn:other")), None);
        assert_eq!(unwrap(&Element::new("forwarded", NS)), None);
    }
}
