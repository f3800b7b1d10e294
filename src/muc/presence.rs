//! Occupant presence (XEP-0045 §7.1–§7.4, §7.14): entering a room (creating it if new),
//! presence updates, nick changes and leaving, with the status codes each one carries.

use super::room::{Affiliation, Occupant, Role, Room, RoomConfig};
use super::{error, strip, Muc, Out, NS, NS_OCCUPANT_ID, NS_USER};
use crate::jid::{BareJid, FullJid};
use crate::ns;
use crate::router::Core;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::{Element, Node};
use std::collections::HashMap;
use std::time::Instant;

/// Flood control per occupant: messages per second, and how many may be saved up.
pub const FLOOD_RATE: f32 = 10.0;
pub const FLOOD_BURST: f32 = 30.0;

/// Refuses a join or a nick change: the error presence carries the MUC `<x/>` as in every
/// refusal of XEP-0045 (§7.2.6 ff., §7.6), which clients match (slixmpp's `join_muc_wait`
/// and `set_self_nick` wait for `presence[@type=error]/x[muc]`).
pub(super) fn refuse_presence(out: &mut Out, stanza: &Element, err: StanzaError) {
    if let Some(mut r) = err.reply_to(stanza) {
        r.children.insert(0, Node::Element(Element::new("x", NS)));
        out.push(r);
    }
}

/// `<x xmlns='…muc#user'><item …/>codes</x>` for occupant `o` as a viewer sees it.
pub(super) fn user_x(
    room: &Room,
    o: &Occupant,
    sees_jid: bool,
    role: Role,
    codes: &[u16],
) -> Element {
    let mut item = Element::new("item", NS_USER)
        .with_attr("affiliation", room.affiliation(&o.real).as_str())
        .with_attr("role", role.as_str());
    if sees_jid {
        if let Some(s) = o.sessions.first() {
            item.set_attr("jid", s.as_str());
        }
    }
    let mut x = Element::new("x", NS_USER).with_child(item);
    for c in codes {
        x.push(status(*c));
    }
    x
}

pub(super) fn status(code: u16) -> Element {
    Element::new("status", NS_USER).with_attr("code", code.to_string())
}

/// Occupant `o`'s presence for the occupant `viewer` (its role), with `codes`.
fn presence_for(room: &Room, o: &Occupant, viewer: Role, codes: &[u16]) -> Element {
    let mut p = o.presence.clone();
    p.set_attr("from", format!("{}/{}", room.jid, o.nick));
    p.push(user_x(room, o, room.sees_real_jids(viewer), o.role, codes));
    p.push(Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", o.occupant_id.clone()));
    p
}

/// Sends occupant `i`'s presence to everyone who gets it: itself (with `self_codes` and
/// 110) and, if its role's presence is broadcast, the others (with `codes`).
pub(super) fn broadcast(room: &Room, i: usize, codes: &[u16], self_codes: &[u16], out: &mut Out) {
    let o = &room.occupants[i];
    let mut own: Vec<u16> = self_codes.to_vec();
    own.push(110);
    own.extend_from_slice(codes);
    let others = room.config.broadcasts(o.role);
    for (j, viewer) in room.occupants.iter().enumerate() {
        if j != i && !others {
            continue;
        }
        let p = presence_for(room, o, viewer.role, if j == i { &own } else { codes });
        for s in &viewer.sessions {
            let mut p = p.clone();
            p.set_attr("to", s.as_str());
            out.push(p);
        }
    }
}

/// Why an occupant leaves: status codes, an `<actor/>` and `<reason/>` (kicks and bans),
/// a `<destroy/>`, a new nick (303).
#[derive(Default)]
pub(super) struct Why<'a> {
    pub codes: &'a [u16],
    pub actor: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub extra: Option<&'a Element>,
    pub new_nick: Option<&'a str>,
}

/// Occupant `i`'s unavailable presence to everyone (and its own sessions).
pub(super) fn unavailable(room: &Room, i: usize, why: &Why<'_>, out: &mut Out) {
    let Why {
        codes,
        actor,
        reason,
        extra,
        new_nick,
    } = *why;
    let o = &room.occupants[i];
    let others = room.config.broadcasts(o.role);
    for (j, viewer) in room.occupants.iter().enumerate() {
        if j != i && !others {
            continue;
        }
        let mut c = codes.to_vec();
        if j == i {
            c.push(110);
        }
        let mut x = user_x(room, o, room.sees_real_jids(viewer.role), Role::None, &c);
        if let Some(Some(item)) = x.children.first_mut().map(|n| match n {
            crate::xml::Node::Element(e) => Some(e),
            _ => None,
        }) {
            if let Some(n) = new_nick {
                item.set_attr("nick", n);
            }
            if let Some(a) = actor {
                item.push(Element::new("actor", NS_USER).with_attr("nick", a));
            }
            if let Some(r) = reason {
                item.push(Element::new("reason", NS_USER).with_text(r));
            }
        }
        if let Some(e) = extra {
            x.push(e.clone());
        }
        let p = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", format!("{}/{}", room.jid, o.nick))
            .with_child(x)
            .with_child(
                Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", o.occupant_id.clone()),
            );
        for s in &viewer.sessions {
            let mut p = p.clone();
            p.set_attr("to", s.as_str());
            out.push(p);
        }
    }
}

/// Removes every occupant with an unavailable presence carrying `codes` (a destroyed
/// room, a shutdown).
pub(super) fn remove_all(room: &mut Room, codes: &[u16], destroy: Option<&Element>, out: &mut Out) {
    for o in &room.occupants {
        let x = {
            let mut x = Element::new("x", NS_USER).with_child(
                Element::new("item", NS_USER)
                    .with_attr("affiliation", room.affiliation(&o.real).as_str())
                    .with_attr("role", "none"),
            );
            for c in codes {
                x.push(status(*c));
            }
            if let Some(d) = destroy {
                x.push(d.clone());
            }
            x
        };
        for s in &o.sessions {
            out.push(
                Element::new("presence", ns::CLIENT)
                    .with_attr("type", "unavailable")
                    .with_attr("from", format!("{}/{}", room.jid, o.nick))
                    .with_attr("to", s.as_str())
                    .with_child(x.clone()),
            );
        }
    }
    room.occupants.clear();
}

/// The occupant's presence as kept: no addressing, no `<x/>` of the join, nothing the
/// room adds itself (a forged occupant-id or muc#user payload).
fn kept_presence(stanza: &Element) -> Element {
    let mut p = stanza.clone();
    p.remove_attr("to");
    p.remove_attr("from");
    p.remove_attr("id");
    strip(&mut p, "x", NS);
    strip(&mut p, "x", NS_USER);
    strip(&mut p, "occupant-id", NS_OCCUPANT_ID);
    p
}

#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    muc: &Muc,
    core: &Core,
    rooms: &mut HashMap<String, Room>,
    name: &str,
    nick: &str,
    real: FullJid,
    stanza: Element,
    out: &mut Out,
) {
    match stanza.attr("type") {
        None => {}
        Some("unavailable") => return leave(muc, core, rooms, name, &real, &stanza, &[], out),
        // XEP-0045 §7.2.? (Prosody): an error from an occupant removes it (333).
        Some("error") => return leave(muc, core, rooms, name, &real, &stanza, &[333], out),
        // Subscriptions and probes to a room are not answered.
        Some(_) => return,
    }
    let existing = rooms.get(name).and_then(|r| r.by_session(&real));
    match existing {
        Some(i) if rooms[name].occupants[i].nick == nick => {
            // A presence update (status, show, a new avatar hash).
            let room = rooms.get_mut(name).expect("exists");
            room.occupants[i].presence = kept_presence(&stanza);
            broadcast(room, i, &[], &[], out);
        }
        Some(i) => change_nick(rooms.get_mut(name).expect("exists"), i, nick, &stanza, out),
        None => join(muc, core, rooms, name, nick, real, stanza, out),
    }
}

/// XEP-0045 §7.6: a new nick, unless taken or registered to someone else.
fn change_nick(room: &mut Room, i: usize, nick: &str, stanza: &Element, out: &mut Out) {
    let real = room.occupants[i].real.clone();
    if room.occupant(nick).is_some_and(|o| o.real != real)
        || room.nick_owner(nick).is_some_and(|o| *o != real)
    {
        refuse_presence(
            out,
            stanza,
            error(StanzaCondition::Conflict, "that nickname is taken"),
        );
        return;
    }
    let why = Why {
        codes: &[303],
        new_nick: Some(nick),
        ..Why::default()
    };
    unavailable(room, i, &why, out);
    let o = &mut room.occupants[i];
    o.nick = nick.to_owned();
    o.presence = kept_presence(stanza);
    broadcast(room, i, &[], &[], out);
}

#[allow(clippy::too_many_arguments)]
fn join(
    muc: &Muc,
    core: &Core,
    rooms: &mut HashMap<String, Room>,
    name: &str,
    nick: &str,
    real: FullJid,
    stanza: Element,
    out: &mut Out,
) {
    let bare = real.bare();
    let x = stanza.child("x", NS);
    let mut created = false;
    if !rooms.contains_key(name) {
        // Only the server's own accounts create rooms, up to a number each.
        if real.domain() != core.domain {
            refuse_presence(
                out,
                &stanza,
                error(
                    StanzaCondition::NotAllowed,
                    "only this server's users create rooms",
                ),
            );
            return;
        }
        // A limited account (a child's, a guest's) joins rooms it is let into but makes
        // none: a room it made could be public (roles).
        if !crate::roles::of(core, &bare).may_create_rooms() {
            refuse_presence(
                out,
                &stanza,
                error(
                    StanzaCondition::NotAllowed,
                    "this account is limited: it cannot create group chats (ask an admin \
                     for a circle)",
                ),
            );
            return;
        }
        let owned = rooms
            .values()
            .filter(|r| r.affiliation(&bare) == Affiliation::Owner)
            .count();
        if owned >= muc.config.rooms_per_account {
            refuse_presence(
                out,
                &stanza,
                error(
                    StanzaCondition::NotAllowed,
                    &format!("you own {owned} rooms already, the most allowed"),
                ),
            );
            return;
        }
        let Ok(jid) = BareJid::new(Some(name), &muc.domain) else {
            refuse_presence(out, &stanza, StanzaCondition::JidMalformed.into());
            return;
        };
        let mut secret = vec![0u8; 16];
        crate::util::random(&mut secret);
        let mut room = Room::new(name, jid, RoomConfig::new(muc.config.max_occupants), secret);
        // XEP-0045 §10.1.1: a client that speaks MUC gets a locked room to configure; one
        // that does not, an instant room.
        room.locked = x.is_some();
        room.affiliations.insert(
            bare.clone(),
            super::room::AffEntry {
                affiliation: Affiliation::Owner,
                nick: None,
                reason: String::new(),
            },
        );
        rooms.insert(name.to_owned(), room);
        created = true;
        log::info!("group chats: {bare} created {name}@{}", muc.domain);
    }
    let room = rooms.get_mut(name).expect("exists or created");
    let aff = room.affiliation(&bare);
    let refusal = if room.locked && aff != Affiliation::Owner {
        Some(error(
            StanzaCondition::ItemNotFound,
            "the room is being set up by its owner",
        ))
    } else if aff == Affiliation::Outcast {
        Some(error(
            StanzaCondition::Forbidden,
            "you are banned from this room",
        ))
    } else if room.config.members_only && aff < Affiliation::Member {
        Some(error(
            StanzaCondition::RegistrationRequired,
            "this room is for its members only",
        ))
    } else if room.config.password.is_some()
        && aff < Affiliation::Admin
        && x.and_then(|x| x.child("password", NS)).map(Element::text) != room.config.password
    {
        Some(error(
            StanzaCondition::NotAuthorized,
            "this room needs its password",
        ))
    } else if room.by_real(&bare).is_none()
        && room.occupants.len() >= room.config.max_users.min(muc.config.max_occupants)
        && aff < Affiliation::Admin
    {
        Some(error(
            StanzaCondition::ServiceUnavailable,
            "the room is full",
        ))
    } else {
        None
    };
    if let Some(e) = refusal {
        refuse_presence(out, &stanza, e);
        return;
    }
    // A registered nick is the user's in this room (210 when the service changes it).
    let mut nick = nick.to_owned();
    let mut self_codes = Vec::new();
    if let Some(registered) = room.affiliations.get(&bare).and_then(|a| a.nick.clone()) {
        if registered != nick {
            nick = registered;
            self_codes.push(210);
        }
    }
    if room.occupant(&nick).is_some_and(|o| o.real != bare)
        || room.nick_owner(&nick).is_some_and(|o| *o != bare)
    {
        refuse_presence(
            out,
            &stanza,
            error(StanzaCondition::Conflict, "that nickname is taken"),
        );
        return;
    }
    if room.config.whois_anyone {
        self_codes.push(100);
    }
    if room.config.archiving {
        self_codes.push(170);
    }
    if created {
        self_codes.push(201);
    }
    // Another session of an occupant already in under this nick joins it.
    if let Some(i) = room.occupants.iter().position(|o| o.nick == nick) {
        room.occupants[i].sessions.push(real.clone());
        room.occupants[i].presence = kept_presence(&stanza);
        send_room_state(room, Some(i), &real, out);
        broadcast(room, i, &[], &self_codes, out);
        send_history(room, x, &real, out);
        return;
    }
    let occupant = Occupant {
        nick: nick.clone(),
        real: bare.clone(),
        sessions: vec![real.clone()],
        role: room.default_role(aff),
        presence: kept_presence(&stanza),
        occupant_id: room.occupant_id(&bare),
        tokens: FLOOD_BURST,
        counted: Instant::now(),
    };
    room.occupants.push(occupant);
    let i = room.occupants.len() - 1;
    send_room_state(room, Some(i), &real, out);
    broadcast(room, i, &[], &self_codes, out);
    if created && room.locked {
        // XEP-0045 §10.1.1: the owner is told the room waits for its configuration.
        out.push(
            Element::new("message", ns::CLIENT)
                .with_attr("type", "groupchat")
                .with_attr("from", room.jid.as_str())
                .with_attr("to", real.as_str())
                .with_child(Element::new("body", ns::CLIENT).with_text(
                    "This room is locked until you configure it (or accept the defaults).",
                )),
        );
    }
    send_history(room, x, &real, out);
    let _ = core;
}

/// To a session joining: every other occupant's presence (whose role is broadcast), and
/// the room's avatar hash (XEP-0486).
fn send_room_state(room: &Room, me: Option<usize>, to: &FullJid, out: &mut Out) {
    let viewer = me.map_or(Role::None, |i| room.occupants[i].role);
    for (j, o) in room.occupants.iter().enumerate() {
        if Some(j) == me || !room.config.broadcasts(o.role) {
            continue;
        }
        let mut p = presence_for(room, o, viewer, &[]);
        p.set_attr("to", to.as_str());
        out.push(p);
    }
    if let Some(hash) = &room.avatar_hash {
        out.push(super::info::avatar_presence(room, hash, to));
    }
}

/// XEP-0045 §7.2.15, §7.2.16: the history the join asks for, then the subject.
fn send_history(room: &Room, x: Option<&Element>, to: &FullJid, out: &mut Out) {
    let h = x.and_then(|x| x.child("history", NS));
    let num = |a: &str| {
        h.and_then(|h| h.attr(a))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let max_stanzas = num("maxstanzas").unwrap_or(usize::MAX);
    let max_chars = num("maxchars").unwrap_or(usize::MAX);
    let now = crate::util::datetime::unix_now();
    let since = h
        .and_then(|h| h.attr("since"))
        .and_then(crate::util::datetime::parse);
    let oldest = match (num("seconds"), since) {
        (Some(s), Some(t)) => Some((now - s as i64).max(t)),
        (Some(s), None) => Some(now - s as i64),
        (None, t) => t,
    };
    let mut chosen = Vec::new();
    let mut chars = 0usize;
    for item in room.history.iter().rev() {
        if chosen.len() >= max_stanzas {
            break;
        }
        if oldest.is_some_and(|o| item.at < o) {
            break;
        }
        chars = chars.saturating_add(item.chars);
        if chars > max_chars {
            break;
        }
        chosen.push(item);
    }
    for item in chosen.into_iter().rev() {
        let mut m = item.message.clone();
        m.set_attr("to", to.as_str());
        m.push(
            Element::new("delay", ns::DELAY)
                .with_attr("from", room.jid.as_str())
                .with_attr("stamp", crate::util::datetime::format(item.at)),
        );
        out.push(m);
    }
    let (by, text) = &room.subject;
    let from = if by.is_empty() {
        room.jid.to_string()
    } else {
        format!("{}/{}", room.jid, by)
    };
    out.push(
        Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", from)
            .with_attr("to", to.as_str())
            .with_attr("id", crate::util::random_hex(6))
            .with_child(Element::new("subject", ns::CLIENT).with_text(text.clone())),
    );
}

/// An occupant's session leaves (its unavailable presence, or an error from it). The
/// last session of a nick takes the occupant out; a temporary room empties and goes.
#[allow(clippy::too_many_arguments)]
fn leave(
    muc: &Muc,
    core: &Core,
    rooms: &mut HashMap<String, Room>,
    name: &str,
    real: &FullJid,
    stanza: &Element,
    codes: &[u16],
    out: &mut Out,
) {
    let Some(room) = rooms.get_mut(name) else {
        return;
    };
    let Some(i) = room.by_session(real) else {
        return;
    };
    if room.occupants[i].sessions.len() > 1 {
        room.occupants[i].sessions.retain(|s| s != real);
        // The leaving session alone hears it is out.
        let mut p = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", format!("{}/{}", room.jid, room.occupants[i].nick))
            .with_attr("to", real.as_str());
        p.push(user_x(room, &room.occupants[i], true, Role::None, &[110]));
        out.push(p);
        return;
    }
    let _ = stanza;
    let why = Why {
        codes,
        ..Why::default()
    };
    unavailable(room, i, &why, out);
    room.occupants.remove(i);
    if room.is_empty() && !room.config.persistent {
        muc.forget(core, rooms, name);
    }
}

/// Removes occupant `i` (kicked, banned, no longer a member) with `codes`.
pub(super) fn remove(
    room: &mut Room,
    i: usize,
    codes: &[u16],
    actor: Option<&str>,
    reason: Option<&str>,
    out: &mut Out,
) {
    let why = Why {
        codes,
        actor,
        reason,
        ..Why::default()
    };
    unavailable(room, i, &why, out);
    room.occupants.remove(i);
}
