//! The `type` of a message stanza (RFC 6121 §5.2.2).

use crate::xml::Element;

/// The message types of RFC 6121 §5.2.2 (absent or unknown means `normal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Chat,
    Error,
    Groupchat,
    Headline,
    Normal,
}

impl MessageType {
    /// The type named `s`; `None` for a value RFC 6121 does not define.
    pub fn parse(s: &str) -> Option<MessageType> {
        match s {
            "chat" => Some(MessageType::Chat),
            "error" => Some(MessageType::Error),
            "groupchat" => Some(MessageType::Groupchat),
            "headline" => Some(MessageType::Headline),
            "normal" => Some(MessageType::Normal),
            _ => None,
        }
    }

    /// The type of `message`: `normal` when absent or unknown (RFC 6121 §5.2.2).
    pub fn of(message: &Element) -> MessageType {
        message
            .attr("type")
            .and_then(MessageType::parse)
            .unwrap_or(MessageType::Normal)
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Chat => "chat",
            MessageType::Error => "error",
            MessageType::Groupchat => "groupchat",
            MessageType::Headline => "headline",
            MessageType::Normal => "normal",
        }
    }
}

/// A XEP-0353 call invitation (`<propose/>`): it wakes phones at once.
pub fn is_call(stanza: &Element) -> bool {
    stanza
        .child("propose", "urn:xmpp:jingle-message:0")
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn parses_and_serializes() {
        use MessageType::*;
        for t in [Chat, Error, Groupchat, Headline, Normal] {
            assert_eq!(MessageType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn absent_or_unknown_is_normal() {
        for bad in ["", "Chat", "CHAT", "get", "chat "] {
            assert_eq!(MessageType::parse(bad), None, "{bad:?}");
        }
        let m = Element::new("message", ns::CLIENT);
        assert_eq!(MessageType::of(&m), MessageType::Normal);
        assert_eq!(
            MessageType::of(&m.clone().with_attr("type", "bogus")),
            MessageType::Normal
        );
        assert_eq!(
            MessageType::of(&m.with_attr("type", "groupchat")),
            MessageType::Groupchat
        );
    }
}
