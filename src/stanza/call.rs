//! XEP-0353 Jingle Message Initiation: the call invitations (`<propose/>`, `<retract/>`,
//! `<accept/>`, `<proceed/>`, `<reject/>`, `<ringing/>`, `<finish/>`) that ring every
//! device of the callee before a Jingle session starts. The server treats them as messages
//! that matter (as Prosody does): copied by carbons, archived so a missed call shows
//! later, never held back by CSI, and given to every available resource of the callee.

use crate::xml::Element;

/// The namespace of XEP-0353 since 0.3, and the one of its 0.6 revision (Dino, Monal).
pub const NS: &str = "urn:xmpp:jingle-message:0";
pub const NS_1: &str = "urn:xmpp:jingle-message:1";

/// True if `message` carries a call invitation element (of either namespace).
pub fn is_call(message: &Element) -> bool {
    message.elements().any(|e| e.ns == NS || e.ns == NS_1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), s.as_bytes()).unwrap()
    }

    #[test]
    fn calls_and_not_calls() {
        for s in [
            "<message type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='a'/></message>",
            "<message><retract xmlns='urn:xmpp:jingle-message:0' id='a'/></message>",
            "<message><proceed xmlns='urn:xmpp:jingle-message:1' id='a'/></message>",
        ] {
            assert!(is_call(&el(s)), "{s}");
        }
        for s in [
            "<message type='chat'><body>propose</body></message>",
            "<message><x xmlns='urn:xmpp:jingle-message:2'/></message>",
        ] {
            assert!(!is_call(&el(s)), "{s}");
        }
    }
}
