//! XEP-0334 Message Processing Hints: `<store/>`, `<no-store/>`, `<no-permanent-store/>`
//! (archiving, XEP-0313) and `<no-copy/>` (carbons, XEP-0280).

use crate::xml::Element;

/// The hints namespace.
pub const NS: &str = "urn:xmpp:hints";

/// The hints roost acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Do not store the message permanently (archive).
    NoPermanentStore,
    /// Do not store it at all.
    NoStore,
    /// Do not copy it to other resources.
    NoCopy,
    /// Store it even if it would not be stored otherwise.
    Store,
}

impl Hint {
    /// The element name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Hint::NoPermanentStore => "no-permanent-store",
            Hint::NoStore => "no-store",
            Hint::NoCopy => "no-copy",
            Hint::Store => "store",
        }
    }

    /// The hint as an element, to add to a message.
    pub fn to_element(self) -> Element {
        Element::new(self.name(), NS)
    }
}

/// True if `message` carries `hint`.
pub fn has(message: &Element, hint: Hint) -> bool {
    message.child(hint.name(), NS).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    #[test]
    fn finds_hints_by_name_and_namespace() {
        let m = parse_element(
            &Scope::client(),
            b"<message><no-copy xmlns='urn:xmpp:hints'/><store xmlns='urn:other'/></message>",
        )
        .unwrap();
        assert!(has(&m, Hint::NoCopy));
        assert!(!has(&m, Hint::Store), "another namespace is not a hint");
        assert!(!has(&m, Hint::NoStore));
    }

    #[test]
    fn serializes() {
        assert_eq!(
            Hint::NoPermanentStore.to_element().to_client_string(),
            "<no-permanent-store xmlns='urn:xmpp:hints'/>"
        );
        let mut m = Element::new("message", crate::ns::CLIENT);
        m.push(Hint::Store.to_element());
        assert!(has(&m, Hint::Store));
    }
}
