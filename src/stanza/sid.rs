//! XEP-0359 Unique and Stable Stanza IDs: the `<stanza-id by='…' id='…'/>` an archiving
//! entity adds to a message (XEP-0313 §3.5), and removing the ones a sender forged.

use crate::xml::{Element, Node};

/// The stanza-id namespace.
pub const NS: &str = "urn:xmpp:sid:0";

/// `<stanza-id xmlns='urn:xmpp:sid:0' by='…' id='…'/>`.
pub fn stanza_id(by: &str, id: &str) -> Element {
    Element::new("stanza-id", NS)
        .with_attr("by", by)
        .with_attr("id", id)
}

/// The `(by, id)` pairs of a message's stanza-ids.
pub fn stanza_ids(message: &Element) -> Vec<(&str, &str)> {
    message
        .elements()
        .filter(|e| e.is("stanza-id", NS))
        .filter_map(|e| Some((e.attr("by")?, e.attr("id")?)))
        .collect()
}

/// Removes every stanza-id whose `by` satisfies `forged` (a missing `by` counts as `""`);
/// returns how many went. XEP-0359 §5: an entity adding stanza-ids MUST remove those
/// claiming to be by itself that it did not add.
pub fn remove_where(message: &mut Element, forged: impl Fn(&str) -> bool) -> usize {
    let before = message.children.len();
    message.children.retain(|n| match n {
        Node::Element(e) if e.is("stanza-id", NS) => !forged(e.attr("by").unwrap_or("")),
        _ => true,
    });
    before - message.children.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    #[test]
    fn builds_and_reads() {
        let mut m = Element::new("message", crate::ns::CLIENT);
        m.push(stanza_id("a@b", "x1"));
        assert_eq!(
            m.to_client_string(),
            "<message><stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='x1'/></message>"
        );
        assert_eq!(stanza_ids(&m), vec![("a@b", "x1")]);
    }

    #[test]
    fn removes_only_the_forged_ones() {
        let mut m = parse_element(
            &Scope::client(),
            b"<message><body>hi</body>\
              <stanza-id xmlns='urn:xmpp:sid:0' by='me@here' id='1'/>\
              <stanza-id xmlns='urn:xmpp:sid:0' by='muc.elsewhere' id='2'/>\
              <stanza-id xmlns='urn:other' by='me@here' id='3'/>\
              <stanza-id xmlns='urn:xmpp:sid:0' id='4'/></message>",
        )
        .unwrap();
        let n = remove_where(&mut m, |by| by == "me@here" || by.is_empty());
        assert_eq!(n, 2);
        assert_eq!(stanza_ids(&m), vec![("muc.elsewhere", "2")]);
        assert!(m.child("body", crate::ns::CLIENT).is_some());
        assert!(m.child("stanza-id", "urn:other").is_some());
    }

    #[test]
    fn ignores_incomplete_ids() {
        let m = parse_element(
            &Scope::client(),
            b"<message><stanza-id xmlns='urn:xmpp:sid:0' by='x'/></message>",
        )
        .unwrap();
        assert!(stanza_ids(&m).is_empty());
    }
}
