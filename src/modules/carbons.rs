//! XEP-0280 Message Carbons: a resource enables or disables carbons for itself (the set of
//! sessions that did is this module's state, [`Enabled`]); a delivered message eligible for carbons (§6) is
//! copied, wrapped in XEP-0297 `<forwarded/>`, as `<sent/>` to the sender's other
//! carbon-enabled resources (§8) and as `<received/>` to the recipient's carbon-enabled
//! resources that did not get it (§7). `<private/>` (§9) and the XEP-0334 `<no-copy/>` hint
//! prevent copies.

use super::{Ctx, Iq, IqResult, Target};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::router::{send_to, Event};
use crate::stanza::call;
use crate::stanza::hints::{self, Hint};
use crate::stanza::MessageType;
use crate::stanza::{forward, StanzaCondition};
use crate::xml::{Element, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The carbons namespace.
pub use crate::ns::CARBONS as NS;
/// XEP-0045 occupant information: messages from a room are not copied (§6).
use crate::ns::MUC_USER as NS_MUC_USER;

/// Is a message eligible for carbons (§6)? Chat messages, normal ones with a body and
/// XEP-0353 call invitations of type normal too (so a call rings, and stops ringing, on
/// every device; Prosody copies them too); not errors, groupchat or headlines, nor
/// anything from a room, marked `<private/>` or hinted `<no-copy/>`.
pub fn eligible(message: &Element) -> bool {
    if message.child("private", NS).is_some()
        || hints::has(message, Hint::NoCopy)
        || message.child("x", NS_MUC_USER).is_some()
    {
        return false;
    }
    match MessageType::of(message) {
        MessageType::Chat => true,
        MessageType::Normal if call::is_call(message) => true,
        MessageType::Normal => message.child("body", ns::CLIENT).is_some(),
        MessageType::Error | MessageType::Groupchat | MessageType::Headline => false,
    }
}

/// Removes `<private/>`: the receiving server SHOULD before delivery (§9).
pub fn strip_private(message: &mut Element) {
    message
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("private", NS)));
}

/// The sessions that enabled carbons, by account: (full JID, session id) of each (a newer
/// session with the same JID replaces the older one, and must send its own `<enable/>`).
/// Keyed by account so that a message looks at its two accounts only.
#[derive(Default)]
pub struct Enabled(Mutex<HashMap<BareJid, Vec<(FullJid, u64)>>>);

impl Enabled {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BareJid, Vec<(FullJid, u64)>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Session `id` bound to `jid` wants copies (`on`) or no longer does.
    fn set(&self, jid: &FullJid, id: u64, on: bool) {
        let mut map = self.lock();
        let bare = jid.bare();
        let list = map.entry(bare.clone()).or_default();
        list.retain(|(j, i)| j != jid && *i != id);
        if on {
            list.push((jid.clone(), id));
        }
        if list.is_empty() {
            map.remove(&bare);
        }
    }
}

/// Turns carbons on for session `id` bound to `jid`: XEP-0386 Bind 2's inline `<enable/>`.
pub fn enable_inline(core: &Core, jid: &FullJid, id: u64) {
    core.state::<Enabled>().set(jid, id, true);
}

/// A session that ends forgets its flag.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    if let Event::Unbound { jid, id } = event {
        let mut map = core.state::<Enabled>().lock();
        let bare = jid.bare();
        if let Some(list) = map.get_mut(&bare) {
            list.retain(|(_, i)| i != id);
            if list.is_empty() {
                map.remove(&bare);
            }
        }
    }
}

/// `<enable/>` and `<disable/>` (§4, §5), for the sending resource only; asking again is
/// not an error (§10.1).
pub async fn handle(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let session = ctx.local()?;
    if let Target::Account(a) = &iq.target {
        if *a != ctx.bare_jid() {
            return Err(StanzaCondition::NotAllowed.into());
        }
    }
    let on = iq.payload.name == "enable";
    let id = session.id;
    ctx.core.state::<Enabled>().set(&session.jid, id, on);
    log::debug!(
        "c2s:{id} carbons {}",
        if on { "enabled" } else { "disabled" }
    );
    Ok(None)
}

/// A carbon copy: `<message from='account' to='resource' type='…'><sent|received>
/// <forwarded>message</forwarded></…></message>` (§7, §8).
pub fn wrap(kind: &str, account: &BareJid, to: &FullJid, message: &Element) -> Element {
    let mut m = Element::new("message", ns::CLIENT)
        .with_attr("from", account)
        .with_attr("to", to);
    if let Some(t) = message.attr("type") {
        m.set_attr("type", t);
    }
    m.push(Element::new(kind, NS).with_child(forward::forwarded(message.clone(), None)));
    m
}

/// Could [`copy`] send anything: has a resource of the sender's account (other than the
/// sender) or of the recipient's enabled carbons?
pub fn any_wanted(core: &Core, sender: &Jid, recipient: &BareJid) -> bool {
    let enabled = core.state::<Enabled>().lock();
    if enabled.is_empty() {
        return false;
    }
    let on = |account: &BareJid| {
        enabled
            .get(account)
            .is_some_and(|l| l.iter().any(|(j, _)| j.as_str() != sender.as_str()))
    };
    let own = sender.to_bare();
    on(&own) || (*recipient != own && on(recipient))
}

/// Sends the copies of a message from `sender` that was delivered to the resources
/// `delivered` of `recipient` (none if it went to offline storage): `sent` is the message as
/// the sender's archive knows it, `received` as the recipient got it. Call only for
/// [`eligible`] messages. Each resource gets at most one copy.
pub fn copy(
    core: &Arc<Core>,
    sent: &Element,
    received: &Element,
    sender: &Jid,
    recipient: &BareJid,
    delivered: &[FullJid],
) {
    // The sessions that want copies, picked under this module's lock (most accounts have
    // none); the copies are made after.
    let wanting = |account: &BareJid, skip: Option<&Jid>| -> Vec<FullJid> {
        let enabled = core.state::<Enabled>().lock();
        enabled
            .get(account)
            .into_iter()
            .flatten()
            .map(|(j, _)| j)
            .filter(|j| skip.is_none_or(|s| s.as_str() != j.as_str()))
            .filter(|j| !delivered.contains(j))
            .cloned()
            .collect()
    };
    let own = sender.to_bare();
    for to in wanting(&own, Some(sender)) {
        send_to(core, wrap("sent", &own, &to, sent));
    }
    if *recipient == own {
        // A message to one's own account: the sent copies reached every other resource.
        return;
    }
    for to in wanting(recipient, None) {
        send_to(core, wrap("received", recipient, &to, received));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn msg(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    #[test]
    fn eligibility() {
        let yes = [
            "<message type='chat'/>",
            "<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message><body>normal with a body</body></message>",
            "<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
            "<message><accept xmlns='urn:xmpp:jingle-message:1' id='c'/></message>",
        ];
        let no = [
            "<message/>",
            "<message type='normal'><received xmlns='urn:xmpp:receipts' id='x'/></message>",
            "<message type='error'><body>x</body></message>",
            "<message type='groupchat'><body>x</body></message>",
            "<message type='headline'><body>x</body></message>",
            "<message type='error'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
            "<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/>\
             <no-copy xmlns='urn:xmpp:hints'/></message>",
            "<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
            "<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
            "<message type='chat'><body>x</body>\
             <x xmlns='http://jabber.org/protocol/muc#user'/></message>",
        ];
        for x in yes {
            assert!(eligible(&msg(x)), "{x}");
        }
        for x in no {
            assert!(!eligible(&msg(x)), "{x}");
        }
    }

    #[test]
    fn wraps_a_copy() {
        let m = msg("<message type='chat' from='a@h/x' to='b@h'><body>hi</body></message>");
        let c = wrap(
            "received",
            &BareJid::parse("b@h").unwrap(),
            &FullJid::parse("b@h/y").unwrap(),
            &m,
        );
        assert_eq!(
            c.to_client_string(),
            "<message from='b@h' to='b@h/y' type='chat'>\
             <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' type='chat' from='a@h/x' to='b@h'>\
             <body>hi</body></message></forwarded></received></message>"
        );
    }

    #[test]
    fn strips_private() {
        let mut m = msg(
            "<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/>\
             <private xmlns='urn:other'/></message>",
        );
        strip_private(&mut m);
        assert!(m.child("private", NS).is_none());
        assert!(m.child("private", "urn:other").is_some());
        assert!(m.child("body", ns::CLIENT).is_some());
    }
}
