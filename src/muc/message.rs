//! Messages to a room (XEP-0045 §7.4–§7.5, §7.8, §8.1, §8.6): group messages (archived
//! once, kept for history, stamped with the room's stanza-id and the sender's occupant
//! id), the subject, private messages through the room, mediated invitations and declines,
//! and voice requests.

use super::presence::{broadcast, FLOOD_BURST, FLOOD_RATE};
use super::room::{AffEntry, Affiliation, HistoryItem, Role, Room};
use super::{error, not_joined, refuse, strip, Muc, Out, NS_OCCUPANT_ID, NS_REQUEST, NS_USER};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::stanza::forms::{self, DataForm, Field};
use crate::stanza::hints::{self, Hint};
use crate::stanza::{sid, StanzaCondition};
use crate::xml::Element;
use std::collections::HashMap;

/// Is a group message archived (XEP-0313 §5.1.1 for rooms): with a body or a store hint,
/// never with a no-store one.
fn archivable(m: &Element) -> bool {
    !hints::has(m, Hint::NoStore)
        && !hints::has(m, Hint::NoPermanentStore)
        && (m.child("body", ns::CLIENT).is_some() || hints::has(m, Hint::Store))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    muc: &Muc,
    core: &Core,
    rooms: &mut HashMap<String, Room>,
    name: &str,
    nick: Option<String>,
    from: Jid,
    stanza: Element,
    out: &mut Out,
) {
    if stanza.attr("type") == Some("error") {
        return;
    }
    let Some(room) = rooms.get_mut(name) else {
        refuse(
            out,
            &stanza,
            error(StanzaCondition::ItemNotFound, "there is no such room"),
        );
        return;
    };
    if let Some(nick) = nick {
        return private(room, &nick, &from, stanza, out);
    }
    if let Some(x) = stanza.child("x", NS_USER) {
        if x.child("invite", NS_USER).is_some() || x.child("decline", NS_USER).is_some() {
            let x = x.clone();
            return invitations(muc, core, room, &from, &x, &stanza, out);
        }
    }
    if let Some(form) = stanza
        .child("x", forms::NS)
        .and_then(|x| DataForm::try_from(x).ok())
        .filter(|f| f.form_type() == Some(NS_REQUEST))
    {
        return voice(room, &from, &form, &stanza, out);
    }
    if stanza.attr("type") != Some("groupchat") {
        refuse(
            out,
            &stanza,
            error(
                StanzaCondition::BadRequest,
                "messages to a room are of type groupchat",
            ),
        );
        return;
    }
    groupchat(muc, core, room, &from, stanza, out);
}

/// XEP-0045 §7.4: a message to every occupant.
fn groupchat(muc: &Muc, core: &Core, room: &mut Room, from: &Jid, stanza: Element, out: &mut Out) {
    let Some(i) = room.joined(from) else {
        refuse(out, &stanza, not_joined());
        return;
    };
    if room.occupants[i].role < Role::Participant {
        refuse(
            out,
            &stanza,
            error(StanzaCondition::Forbidden, "you have no voice in this room"),
        );
        return;
    }
    let mut m = stanza;
    let size = m.to_client_string().len();
    if size > muc.config.max_message_size {
        refuse(
            out,
            &m,
            error(
                StanzaCondition::PolicyViolation,
                &format!(
                    "a room message may have at most {} bytes",
                    muc.config.max_message_size
                ),
            ),
        );
        return;
    }
    if !room.take_token(i, FLOOD_RATE, FLOOD_BURST) {
        refuse(
            out,
            &m,
            error(
                StanzaCondition::ResourceConstraint,
                "you are sending too fast; wait a moment",
            ),
        );
        return;
    }
    let o = &room.occupants[i];
    let nick = o.nick.clone();
    let subject_only =
        m.child("subject", ns::CLIENT).is_some() && m.child("body", ns::CLIENT).is_none();
    if subject_only {
        let may = o.role == Role::Moderator || room.config.change_subject;
        if !may {
            refuse(
                out,
                &m,
                error(
                    StanzaCondition::Forbidden,
                    "only moderators change this room's subject",
                ),
            );
            return;
        }
        let text = m
            .child("subject", ns::CLIENT)
            .map(Element::text)
            .unwrap_or_default();
        room.subject = (nick.clone(), text);
        muc.save(core, room);
    }
    m.remove_attr("to");
    m.set_attr("from", format!("{}/{}", room.jid, nick));
    strip(&mut m, "occupant-id", NS_OCCUPANT_ID);
    let by = room.jid.to_string();
    sid::remove_where(&mut m, |b| b == by || b.is_empty());
    m.push(
        Element::new("occupant-id", NS_OCCUPANT_ID)
            .with_attr("id", room.occupants[i].occupant_id.clone()),
    );
    let now = crate::util::datetime::unix_now();
    let mut archive_id = None;
    if !subject_only && room.config.archiving && archivable(&m) {
        let id = crate::modules::archive::new_id();
        m.push(sid::stanza_id(&by, &id));
        let stored = m.to_client_string();
        let host = muc.domain.clone();
        let room_name = room.name.clone();
        let with_full = format!("{by}/{nick}");
        let id2 = id.clone();
        let by2 = by.clone();
        core.storage.submit("archiving a room message", move |c| {
            crate::storage::archive::insert(
                c,
                &crate::storage::archive::NewEntry {
                    host: &host,
                    username: &room_name,
                    id: &id2,
                    with_bare: &by2,
                    with_full: &with_full,
                    stanza: &stored,
                    now,
                },
            )
            .map(|_| ())
        });
        archive_id = Some(id);
    }
    if !subject_only && m.child("body", ns::CLIENT).is_some() && muc.config.history > 0 {
        let chars = m.to_client_string().len();
        room.history.push_back(HistoryItem {
            message: m.clone(),
            at: now,
            chars,
            archive_id,
        });
        while room.history.len() > muc.config.history {
            room.history.pop_front();
        }
    }
    fan_out(room, m, out);
}

/// The message to every session of every occupant.
pub(super) fn fan_out(room: &Room, m: Element, out: &mut Out) {
    // One serialization for all: each copy shares the serialized children. The body stays
    // an element (push notifications and stream management's readers look at it); a
    // message without one (a chat state, which client state indication holds back by its
    // children) is copied whole.
    let m = if m.child("body", ns::CLIENT).is_some() {
        m.with_serialized_children(|c| c.is("body", ns::CLIENT))
    } else {
        m
    };
    let n: usize = room.occupants.iter().map(|o| o.sessions.len()).sum();
    out.reserve(n);
    for o in &room.occupants {
        for s in &o.sessions {
            let mut c = m.clone();
            c.set_attr("to", s.as_str());
            out.push(c);
        }
    }
}

/// XEP-0045 §7.5: a private message to an occupant, where the room allows it.
fn private(room: &Room, nick: &str, from: &Jid, stanza: Element, out: &mut Out) {
    let Some(i) = room.joined(from) else {
        refuse(out, &stanza, not_joined());
        return;
    };
    if stanza.attr("type") == Some("groupchat") {
        refuse(
            out,
            &stanza,
            error(
                StanzaCondition::BadRequest,
                "a private message is not of type groupchat",
            ),
        );
        return;
    }
    let sender = &room.occupants[i];
    if !room.config.allow_pm.allows(sender.role) {
        refuse(
            out,
            &stanza,
            error(
                StanzaCondition::Forbidden,
                "private messages are not allowed in this room",
            ),
        );
        return;
    }
    let Some(target) = room.occupant(nick) else {
        refuse(
            out,
            &stanza,
            error(
                StanzaCondition::ItemNotFound,
                "nobody has that nickname here",
            ),
        );
        return;
    };
    let mut m = stanza;
    m.set_attr("from", format!("{}/{}", room.jid, sender.nick));
    strip(&mut m, "x", NS_USER);
    strip(&mut m, "occupant-id", NS_OCCUPANT_ID);
    m.push(Element::new("x", NS_USER));
    m.push(Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", sender.occupant_id.clone()));
    for s in &target.sessions {
        let mut c = m.clone();
        c.set_attr("to", s.as_str());
        out.push(c);
    }
}

/// XEP-0045 §7.8.2, §7.8.3: mediated invitations (making the invitee a member of a
/// members-only room) and declines.
fn invitations(
    muc: &Muc,
    core: &Core,
    room: &mut Room,
    from: &Jid,
    x: &Element,
    stanza: &Element,
    out: &mut Out,
) {
    let inviter = from.to_bare();
    let aff = room.affiliation(&inviter);
    let inside = room.joined(from).is_some();
    for d in x.elements().filter(|e| e.is("decline", NS_USER)) {
        let Some(to) = d.attr("to").and_then(|t| Jid::parse(t).ok()) else {
            refuse(out, stanza, StanzaCondition::JidMalformed);
            return;
        };
        let mut decline = Element::new("decline", NS_USER).with_attr("from", inviter.as_str());
        if let Some(r) = d.child("reason", NS_USER) {
            decline.push(r.clone());
        }
        out.push(
            Element::new("message", ns::CLIENT)
                .with_attr("from", room.jid.as_str())
                .with_attr("to", to.as_str())
                .with_child(Element::new("x", NS_USER).with_child(decline)),
        );
    }
    let invites: Vec<&Element> = x.elements().filter(|e| e.is("invite", NS_USER)).collect();
    if invites.is_empty() {
        return;
    }
    if !inside && aff < Affiliation::Member {
        refuse(out, stanza, not_joined());
        return;
    }
    if room.config.members_only && !room.config.allow_invites && aff < Affiliation::Admin {
        refuse(
            out,
            stanza,
            error(
                StanzaCondition::Forbidden,
                "only the room's admins invite people to it",
            ),
        );
        return;
    }
    for inv in invites {
        let Some(to) = inv.attr("to").and_then(|t| Jid::parse(t).ok()) else {
            refuse(out, stanza, StanzaCondition::JidMalformed);
            return;
        };
        let invitee: BareJid = to.to_bare();
        if room.config.members_only && room.affiliation(&invitee) == Affiliation::None {
            room.affiliations.insert(
                invitee.clone(),
                AffEntry {
                    affiliation: Affiliation::Member,
                    nick: None,
                    reason: String::new(),
                },
            );
            muc.save_affiliation(core, room, &invitee);
        }
        let mut invite = Element::new("invite", NS_USER).with_attr("from", inviter.as_str());
        let reason = inv.child("reason", NS_USER).map(Element::text);
        if let Some(r) = &reason {
            invite.push(Element::new("reason", NS_USER).with_text(r.clone()));
        }
        let mut ux = Element::new("x", NS_USER).with_child(invite);
        if let Some(p) = &room.config.password {
            ux.push(Element::new("password", NS_USER).with_text(p.clone()));
        }
        let body = match &reason {
            Some(r) if !r.is_empty() => format!("{inviter} invites you to {}: {r}", room.jid),
            _ => format!("{inviter} invites you to {}", room.jid),
        };
        out.push(
            Element::new("message", ns::CLIENT)
                .with_attr("from", room.jid.as_str())
                .with_attr("to", to.as_str())
                .with_attr("id", crate::util::random_hex(6))
                .with_child(ux)
                .with_child(Element::new("body", ns::CLIENT).with_text(body)),
        );
    }
}

/// XEP-0045 §7.13, §8.6: a visitor asks for voice (the request goes to the moderators);
/// a moderator's approval gives it.
fn voice(room: &mut Room, from: &Jid, form: &DataForm, stanza: &Element, out: &mut Out) {
    let Some(i) = room.joined(from) else {
        refuse(out, stanza, not_joined());
        return;
    };
    let approving = form.field("muc#request_allow").is_some();
    if approving {
        if room.occupants[i].role != Role::Moderator {
            refuse(
                out,
                stanza,
                error(StanzaCondition::Forbidden, "only moderators grant voice"),
            );
            return;
        }
        if form.value("muc#request_allow").and_then(forms::parse_bool) != Some(true) {
            return;
        }
        let Some(nick) = form.value("muc#roomnick") else {
            refuse(out, stanza, StanzaCondition::BadRequest);
            return;
        };
        let Some(j) = room.occupants.iter().position(|o| o.nick == nick) else {
            refuse(out, stanza, StanzaCondition::ItemNotFound);
            return;
        };
        if room.occupants[j].role == Role::Visitor {
            room.occupants[j].role = Role::Participant;
            broadcast(room, j, &[], &[], out);
        }
        return;
    }
    let o = &room.occupants[i];
    if o.role != Role::Visitor {
        return;
    }
    let mut f = DataForm::with_form_type("form", NS_REQUEST);
    f.fields
        .push(Field::new("muc#role", "list-single").with_value("participant"));
    f.fields.push(
        Field::new("muc#jid", "jid-single").with_value(
            o.sessions
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
    );
    f.fields
        .push(Field::new("muc#roomnick", "text-single").with_value(o.nick.clone()));
    f.fields
        .push(Field::new("muc#request_allow", "boolean").with_value("false"));
    let request = Element::from(&f);
    for m in room.occupants.iter().filter(|m| m.role == Role::Moderator) {
        for s in &m.sessions {
            out.push(
                Element::new("message", ns::CLIENT)
                    .with_attr("from", room.jid.as_str())
                    .with_attr("to", s.as_str())
                    .with_child(request.clone()),
            );
        }
    }
}
