//! XEP-0352 Client State Indication: while a client says it is inactive, stanzas it would
//! not wake up for (presence updates, chat states) are held back, only the latest per
//! sender kept, and delivered when it becomes active; everything else goes out at once.

use super::connection::{io_error, Connection, Flow};
use crate::stanza::{MessageType, PresenceType};
use crate::stanza::{StreamCondition, StreamError};
use crate::xml::Element;

use crate::ns::CHATSTATES as NS_CHATSTATES;
pub use crate::ns::CSI as NS;
/// Most stanzas held for one session; past it the held ones are delivered.
const MAX_HELD: usize = 500;

/// What may wait: `Some(key)` for a stanza that can be held (the key says which older
/// held stanza it replaces), `None` for one that must go out now.
pub fn hold_key(stanza: &Element) -> Option<String> {
    let from = stanza.attr("from").unwrap_or("");
    match stanza.name.as_str() {
        // Available and unavailable presence; subscription requests and errors are urgent.
        "presence"
            if matches!(
                PresenceType::of(stanza),
                Some(PresenceType::Available | PresenceType::Unavailable)
            ) =>
        {
            Some(format!("p {from}"))
        }
        // A message carrying only a chat state (typing…): nothing to notify about.
        "message"
            if MessageType::of(stanza) != MessageType::Error
                && stanza.elements().next().is_some()
                && stanza.elements().all(|e| e.ns == NS_CHATSTATES) =>
        {
            Some(format!("c {from}"))
        }
        _ => None,
    }
}

/// The stanzas held back for an inactive client.
#[derive(Default)]
pub struct Held {
    items: Vec<(String, Element)>,
}

impl Held {
    /// Holds `stanza` under `key`, dropping an older one with the same key. Returns true
    /// when the queue is full and should be delivered now.
    pub fn hold(&mut self, key: String, stanza: Element) -> bool {
        self.items.retain(|(k, _)| *k != key);
        self.items.push((key, stanza));
        self.items.len() >= MAX_HELD
    }

    /// Everything held, in the order it arrived (for the last of each key).
    pub fn take(&mut self) -> Vec<Element> {
        std::mem::take(&mut self.items)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

/// The `Connection` side of XEP-0352.
impl Connection {
    /// XEP-0352: `<active/>` delivers what was held back; `<inactive/>` starts holding.
    pub(super) async fn on_csi(&mut self, e: Element) -> Result<Flow, StreamError> {
        match e.name.as_str() {
            "inactive" => self.inactive = true,
            "active" => {
                self.inactive = false;
                for h in self.held.take() {
                    self.queue_element(&h);
                }
                self.flush().await.map_err(io_error)?;
            }
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    "unknown client state element",
                ))
            }
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), s.as_bytes()).unwrap()
    }

    #[test]
    fn what_waits_and_what_does_not() {
        let held = [
            "<presence from='dad@x/pc'/>",
            "<presence from='dad@x/pc' type='unavailable'/>",
            "<message from='dad@x/pc' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        ];
        for s in held {
            assert!(hold_key(&el(s)).is_some(), "{s}");
        }
        let urgent = [
            "<presence from='dad@x' type='subscribe'/>",
            "<presence from='dad@x' type='error'/>",
            "<message from='dad@x/pc' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message from='dad@x/pc'/>",
            // XEP-0353: a call rings now, even with a chat state beside it.
            "<message from='dad@x/pc' type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>",
            "<message from='dad@x/pc'><retract xmlns='urn:xmpp:jingle-message:0' id='c1'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<iq from='dad@x/pc' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        ];
        for s in urgent {
            assert!(hold_key(&el(s)).is_none(), "{s}");
        }
    }

    #[test]
    fn only_the_latest_per_sender_is_kept_in_order() {
        let mut h = Held::default();
        for s in [
            "<presence from='dad@x/pc'><show>away</show></presence>",
            "<presence from='gran@x/pc'/>",
            "<presence from='dad@x/pc'><show>dnd</show></presence>",
        ] {
            let e = el(s);
            assert!(!h.hold(hold_key(&e).unwrap(), e));
        }
        let out = h.take();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].attr("from"), Some("gran@x/pc"));
        assert_eq!(out[1].child("show", "jabber:client").unwrap().text(), "dnd");
        assert!(h.take().is_empty());
    }
}
