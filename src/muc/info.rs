//! IQs to the service, to rooms and to occupants: service discovery (XEP-0030, XEP-0045 §6
//! with the `muc#roominfo` form), unique room names (§10.1.4), room vCards and their avatar
//! hash (XEP-0486), the room archive (XEP-0313), moderation (XEP-0425), self-ping
//! (XEP-0410), and IQs between occupants passed on through the room (§7.? vCards, pings).

use super::admin::{self, Asker};
use super::message::fan_out;
use super::room::{Affiliation, HistoryItem, Role, Room};
use super::{
    error, lock, refuse, Muc, Out, MAX_PENDING_IQS, NS, NS_ADMIN, NS_MODERATE, NS_OCCUPANT_ID,
    NS_OWNER, NS_REGISTER, NS_REQUEST, NS_RETRACT, NS_ROOMINFO, NS_SELF_PING, NS_UNIQUE,
};
use crate::jid::{FullJid, Jid};
use crate::ns;
use crate::router::{result, Core};
use crate::stanza::forms::{DataForm, Field};
use crate::stanza::mam::{self, Query};
use crate::stanza::{sid, StanzaCondition, StanzaError};
use crate::storage::StorageError;
use crate::xml::Element;
use std::collections::VecDeque;
use std::sync::Arc;

/// Stanzas to the service's own domain.
pub(super) fn service_stanza(muc: &Muc, _core: &Arc<Core>, stanza: Element, out: &mut Out) {
    if stanza.name != "iq" {
        if stanza.name == "message" {
            refuse(out, &stanza, StanzaCondition::ServiceUnavailable);
        }
        return;
    }
    if !matches!(stanza.attr("type"), Some("get" | "set")) {
        return;
    }
    let Some(payload) = stanza.first_element() else {
        return;
    };
    let answer = match (stanza.attr("type"), payload.name.as_str(), &*payload.ns) {
        (Some("get"), "query", ns::DISCO_INFO) if payload.attr("node").is_none() => {
            let mut q = Element::new("query", ns::DISCO_INFO).with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "conference")
                    .with_attr("type", "text")
                    .with_attr("name", "Group chats"),
            );
            for f in [
                ns::DISCO_INFO,
                ns::DISCO_ITEMS,
                NS,
                NS_UNIQUE,
                NS_OCCUPANT_ID,
                NS_SELF_PING,
                ns::PING,
            ] {
                q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
            }
            Ok(Some(q))
        }
        (Some("get"), "query", ns::DISCO_ITEMS) if payload.attr("node").is_none() => {
            let rooms = lock(&muc.rooms);
            let mut list: Vec<&Room> = rooms
                .values()
                .filter(|r| r.config.public && !r.locked)
                .collect();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            let mut q = Element::new("query", ns::DISCO_ITEMS);
            for r in list {
                q.push(
                    Element::new("item", ns::DISCO_ITEMS)
                        .with_attr("jid", r.jid.as_str())
                        .with_attr("name", display_name(r)),
                );
            }
            Ok(Some(q))
        }
        (Some("get"), "unique", NS_UNIQUE) => Ok(Some(
            Element::new("unique", NS_UNIQUE).with_text(crate::util::random_hex(10)),
        )),
        (Some("get"), "ping", ns::PING) => Ok(None),
        _ => Err(StanzaError::from(StanzaCondition::ServiceUnavailable)),
    };
    answer_into(out, &stanza, answer);
}

fn answer_into(out: &mut Out, iq: &Element, answer: Result<Option<Element>, StanzaError>) {
    match answer {
        Ok(p) => out.push(result(iq, p)),
        Err(e) => refuse(out, iq, e),
    }
}

fn display_name(r: &Room) -> String {
    if r.config.name.is_empty() {
        r.name.clone()
    } else {
        r.config.name.clone()
    }
}

/// An IQ to a room or to an occupant.
pub(super) fn iq(
    muc: &Muc,
    core: &Arc<Core>,
    name: &str,
    nick: Option<String>,
    from: Jid,
    iq: Element,
    out: &mut Out,
) {
    let ty = iq.attr("type").unwrap_or("");
    if let Some(nick) = nick {
        return occupant_iq(muc, name, &nick, &from, iq, out);
    }
    if !matches!(ty, "get" | "set") {
        return;
    }
    let Some(payload) = iq.first_element().cloned() else {
        return;
    };
    let mut rooms = lock(&muc.rooms);
    let Some(room) = rooms.get_mut(name) else {
        drop(rooms);
        return refuse(
            out,
            &iq,
            error(StanzaCondition::ItemNotFound, "there is no such room"),
        );
    };
    let asker = Asker::of(room, &from);
    if room.locked && asker.aff != Affiliation::Owner {
        drop(rooms);
        return refuse(
            out,
            &iq,
            error(StanzaCondition::ItemNotFound, "there is no such room"),
        );
    }
    let answer = match (ty, payload.name.as_str(), &*payload.ns) {
        ("get", "query", ns::DISCO_INFO) => Ok(Some(room_info(room, payload.attr("node")))),
        ("get", "query", ns::DISCO_ITEMS) => Ok(Some(Element::new("query", ns::DISCO_ITEMS))),
        ("get", "query", NS_ADMIN) => admin::admin_get(room, &asker, &payload),
        ("set", "query", NS_ADMIN) => admin::admin_set(muc, core, room, &asker, &payload, out),
        ("get", "query", NS_OWNER) => {
            if asker.aff == Affiliation::Owner {
                Ok(Some(admin::config_form(muc, room)))
            } else {
                Err(error(
                    StanzaCondition::Forbidden,
                    "only the room's owners do that",
                ))
            }
        }
        ("set", "query", NS_OWNER) => {
            admin::owner_set(muc, core, &mut rooms, name, &asker, &payload, out)
        }
        (_, "query", NS_REGISTER) => admin::register(muc, core, room, &asker, &iq, &payload, out),
        ("get", "ping", ns::PING) => Ok(None),
        ("get", "vCard", ns::VCARD) => {
            drop(rooms);
            return vcard_get(muc, core, name, iq);
        }
        ("set", "vCard", ns::VCARD) => vcard_set(muc, core, room, &asker, &payload, out),
        ("get", "query", mam::NS) => Ok(Some(
            Element::new("query", mam::NS).with_child(Element::from(&mam::query_form())),
        )),
        ("set", "query", mam::NS) => match archive_access(room, &asker) {
            Ok(()) => {
                drop(rooms);
                return archive_query(muc, core, name, iq, payload);
            }
            Err(e) => Err(e),
        },
        ("set", "moderate", NS_MODERATE) => {
            if asker.role != Role::Moderator {
                Err(error(
                    StanzaCondition::Forbidden,
                    "only moderators retract messages",
                ))
            } else {
                drop(rooms);
                return moderate(muc, core, name, asker, iq, payload);
            }
        }
        _ => Err(StanzaCondition::ServiceUnavailable.into()),
    };
    drop(rooms);
    answer_into(out, &iq, answer);
}

/// The room's `disco#info` (XEP-0045 §6.4) with the `muc#roominfo` form (§15.5.4).
fn room_info(room: &Room, node: Option<&str>) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    if let Some(n) = node {
        q.set_attr("node", n);
    }
    q.push(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "conference")
            .with_attr("type", "text")
            .with_attr("name", display_name(room)),
    );
    let mut features = vec![
        NS,
        "http://jabber.org/protocol/muc#stable_id",
        NS_SELF_PING,
        NS_OCCUPANT_ID,
        NS_REGISTER,
        NS_REQUEST,
        NS_MODERATE,
        ns::VCARD,
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
    ];
    if room.config.archiving {
        features.push(mam::NS);
        features.push(sid::NS);
    }
    features.extend(room.features());
    for f in features {
        q.push(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
    }
    let mut form = DataForm::with_form_type("result", NS_ROOMINFO);
    let mut push = |var: &str, ty: &str, v: String| {
        form.fields.push(Field::new(var, ty).with_value(v));
    };
    push(
        "muc#roominfo_description",
        "text-single",
        room.config.description.clone(),
    );
    push(
        "muc#roominfo_subject",
        "text-single",
        room.subject.1.clone(),
    );
    push(
        "muc#roominfo_occupants",
        "text-single",
        room.occupants.len().to_string(),
    );
    push("muc#roomconfig_roomname", "text-single", display_name(room));
    push(
        "muc#roomconfig_changesubject",
        "boolean",
        if room.config.change_subject { "1" } else { "0" }.into(),
    );
    push(
        "muc#roomconfig_allowinvites",
        "boolean",
        if room.config.allow_invites { "1" } else { "0" }.into(),
    );
    let mut avatar = Field::new("muc#roominfo_avatarhash", "text-multi");
    if let Some(h) = &room.avatar_hash {
        avatar.values.push(h.clone());
    }
    form.fields.push(avatar);
    q.push(Element::from(&form));
    q
}

/// IQs to `room/nick`: a self-ping is answered (XEP-0410); others are passed to the
/// occupant with the sender's room JID, and their answers passed back.
fn occupant_iq(muc: &Muc, name: &str, nick: &str, from: &Jid, iq: Element, out: &mut Out) {
    let rooms = lock(&muc.rooms);
    let Some(room) = rooms.get(name) else {
        drop(rooms);
        return refuse(
            out,
            &iq,
            error(StanzaCondition::ItemNotFound, "there is no such room"),
        );
    };
    let me = room.joined(from);
    let ty = iq.attr("type").unwrap_or("");
    if matches!(ty, "result" | "error") {
        // The answer to an IQ we passed on.
        let Some(id) = iq.attr("id") else { return };
        let Some((asker, orig_id, asker_nick)) = lock(&muc.pending).remove(id) else {
            return;
        };
        let Some(me) = me else { return };
        if asker_nick != nick {
            return;
        }
        let mut a = iq.clone();
        a.set_attr("from", format!("{}/{}", room.jid, room.occupants[me].nick));
        a.set_attr("to", asker.as_str());
        a.set_attr("id", orig_id);
        out.push(a);
        return;
    }
    let Some(me) = me else {
        drop(rooms);
        return refuse(out, &iq, super::not_joined());
    };
    let is_ping = iq.first_element().is_some_and(|p| p.is("ping", ns::PING));
    if room.occupants[me].nick == nick && is_ping {
        out.push(result(&iq, None));
        return;
    }
    let Some(target) = room.occupant(nick) else {
        drop(rooms);
        return refuse(
            out,
            &iq,
            error(
                StanzaCondition::ItemNotFound,
                "nobody has that nickname here",
            ),
        );
    };
    let Some(session) = target.sessions.first() else {
        return;
    };
    let Jid::Full(asker) = from.clone() else {
        return;
    };
    let mut pending = lock(&muc.pending);
    if pending.len() >= MAX_PENDING_IQS {
        drop(pending);
        drop(rooms);
        return refuse(out, &iq, StanzaCondition::ResourceConstraint);
    }
    let id = format!("muc{}", crate::util::random_hex(8));
    pending.insert(
        id.clone(),
        (
            asker,
            iq.attr("id").unwrap_or("").to_owned(),
            room.occupants[me].nick.clone(),
        ),
    );
    let mut f = iq;
    f.set_attr("from", format!("{}/{}", room.jid, room.occupants[me].nick));
    f.set_attr("to", session.as_str());
    f.set_attr("id", id);
    out.push(f);
}

/// XEP-0486: the room's avatar hash, in presence from the room's bare JID.
pub(super) fn avatar_presence(room: &Room, hash: &str, to: &FullJid) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", room.jid.as_str())
        .with_attr("to", to.as_str())
        .with_child(
            Element::new("x", ns::VCARD_UPDATE)
                .with_child(Element::new("photo", ns::VCARD_UPDATE).with_text(hash)),
        )
}

/// SHA-1 of a vCard's PHOTO BINVAL (decoded), hex; `None` without a photo.
fn avatar_hash(vcard: &Element) -> Option<String> {
    use base64::Engine;
    let binval = vcard
        .child("PHOTO", ns::VCARD)?
        .child("BINVAL", ns::VCARD)?
        .text();
    let clean: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .ok()?;
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    Some(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The avatar hash of a stored room vCard.
pub(super) fn avatar_hash_of_stored(xml: &str) -> Option<String> {
    let v = crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), xml.as_bytes())
        .ok()?;
    avatar_hash(&v)
}

fn vcard_get(muc: &Muc, core: &Arc<Core>, name: &str, iq: Element) {
    let host = muc.domain.clone();
    let room = name.to_owned();
    let c = core.clone();
    core.spawn(async move {
        let stored = c
            .storage
            .call(move |conn| crate::storage::vcard::get(conn, &host, &room))
            .await;
        let reply = match stored {
            Ok(Some(xml)) => match crate::xml::parse::parse_element(
                &crate::xml::parse::Scope::client(),
                xml.as_bytes(),
            ) {
                Ok(v) => result(&iq, Some(v)),
                Err(_) => return,
            },
            Ok(None) => result(&iq, Some(Element::new("vCard", ns::VCARD))),
            Err(e) => {
                log::error!("group chats: {e}");
                match StanzaError::from(StanzaCondition::InternalServerError).reply_to(&iq) {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        crate::router::send_to(&c, reply);
    });
}

/// XEP-0486: owners set the room's vCard; occupants hear the new avatar hash.
fn vcard_set(
    muc: &Muc,
    core: &Core,
    room: &mut Room,
    asker: &Asker,
    vcard: &Element,
    out: &mut Out,
) -> Result<Option<Element>, StanzaError> {
    if asker.aff != Affiliation::Owner {
        return Err(error(
            StanzaCondition::Forbidden,
            "only the room's owners set its avatar",
        ));
    }
    let xml = crate::modules::vcard::to_store(vcard)?;
    let host = muc.domain.clone();
    let name = room.name.clone();
    core.storage.submit("storing a room vCard", move |c| {
        crate::storage::vcard::set(c, &host, &name, &xml)
    });
    room.avatar_hash = avatar_hash(vcard);
    let hash = room.avatar_hash.clone().unwrap_or_default();
    for o in &room.occupants {
        for s in &o.sessions {
            out.push(avatar_presence(room, &hash, s));
        }
    }
    Ok(None)
}

/// Who reads a room's archive: not outcasts; in a members-only room, members.
fn archive_access(room: &Room, asker: &Asker) -> Result<(), StanzaError> {
    if !room.config.archiving {
        return Err(error(
            StanzaCondition::ServiceUnavailable,
            "this room is not archived",
        ));
    }
    if asker.aff == Affiliation::Outcast
        || (room.config.members_only && asker.aff < Affiliation::Member)
    {
        return Err(error(
            StanzaCondition::Forbidden,
            "only the room's members read its archive",
        ));
    }
    Ok(())
}

/// XEP-0313 on the room JID: pages of the room's archive.
fn archive_query(muc: &Muc, core: &Arc<Core>, name: &str, iq: Element, payload: Element) {
    let c = core.clone();
    let host = muc.domain.clone();
    let room_jid = format!("{name}@{}", muc.domain);
    let room = name.to_owned();
    core.spawn(async move {
        let reply_err = |e: StanzaError| e.reply_to(&iq);
        let q = match Query::try_from(&payload) {
            Ok(q) => q,
            Err(e) => {
                if let Some(r) = reply_err(error(StanzaCondition::BadRequest, &e.to_string())) {
                    crate::router::send_to(&c, r);
                }
                return;
            }
        };
        let (filter, range) = match crate::modules::archive::to_store(&q) {
            Ok(x) => x,
            Err(e) => {
                if let Some(r) = reply_err(e) {
                    crate::router::send_to(&c, r);
                }
                return;
            }
        };
        let page = c
            .storage
            .call(move |conn| {
                Ok(crate::storage::archive::query(
                    conn, &host, &room, &filter, &range,
                ))
            })
            .await;
        let to = iq.attr("from").unwrap_or("").to_owned();
        match page {
            Ok(Ok(page)) => {
                let (results, fin) =
                    crate::modules::archive::page_answer(&q, &page, &room_jid, &to);
                for r in results {
                    crate::router::send_to(&c, r);
                }
                crate::router::send_to(&c, result(&iq, Some(fin)));
            }
            Ok(Err(e)) => {
                if let Some(r) = reply_err(error(StanzaCondition::ItemNotFound, &e.to_string())) {
                    crate::router::send_to(&c, r);
                }
            }
            Err(e) => {
                log::error!("group chats: {e}");
                if let Some(r) = reply_err(StanzaCondition::InternalServerError.into()) {
                    crate::router::send_to(&c, r);
                }
            }
        }
    });
}

/// XEP-0425: a moderator retracts a message. The archive keeps a tombstone (XEP-0424);
/// the occupants get the retraction.
fn moderate(muc: &Muc, core: &Arc<Core>, name: &str, asker: Asker, iq: Element, payload: Element) {
    let Some(id) = payload.attr("id").map(str::to_owned) else {
        let mut out = Out::new();
        refuse(
            &mut out,
            &iq,
            error(StanzaCondition::BadRequest, "which message?"),
        );
        muc.flush(core, out);
        return;
    };
    if payload.child("retract", NS_RETRACT).is_none() {
        let mut out = Out::new();
        refuse(&mut out, &iq, StanzaCondition::FeatureNotImplemented);
        muc.flush(core, out);
        return;
    }
    let reason = payload.child("reason", NS_MODERATE).map(Element::text);
    let c = core.clone();
    let host = muc.domain.clone();
    let room = name.to_owned();
    let room_jid = format!("{name}@{}", muc.domain);
    let by = format!("{room_jid}/{}", asker.nick.clone().unwrap_or_default());
    let mod_id = {
        let rooms = lock(&muc.rooms);
        rooms
            .get(name)
            .map(|r| r.occupant_id(&asker.bare))
            .unwrap_or_default()
    };
    let moderated = {
        let mut m = Element::new("moderated", NS_MODERATE).with_attr("by", by.clone());
        m.push(Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", mod_id));
        m
    };
    let now = crate::util::datetime::unix_now();
    let mut tomb = Element::new("retracted", NS_RETRACT)
        .with_attr("stamp", crate::util::datetime::format(now))
        .with_child(moderated.clone());
    if let Some(r) = &reason {
        tomb.push(Element::new("reason", NS_RETRACT).with_text(r.clone()));
    }
    let id2 = id.clone();
    let (h2, r2) = (host.clone(), room.clone());
    core.spawn(async move {
        let done = c
            .storage
            .call(move |conn| {
                let Some(entry) = crate::storage::archive::entry(conn, &h2, &r2, &id2)? else {
                    return Ok(false);
                };
                let original = crate::xml::parse::parse_element(
                    &crate::xml::parse::Scope::client(),
                    entry.stanza.as_bytes(),
                )
                .map_err(|e| StorageError::Refused(e.to_string()))?;
                // The tombstone keeps the envelope and the ids, not the content.
                let mut t = Element::new("message", ns::CLIENT);
                for (k, v) in &original.attrs {
                    t.set_attr(k.as_str(), v.clone());
                }
                for e in original.elements() {
                    if e.is("occupant-id", NS_OCCUPANT_ID) || e.is("stanza-id", sid::NS) {
                        t.push(e.clone());
                    }
                }
                t.push(tomb);
                crate::storage::archive::replace(conn, &h2, &r2, &id2, &t.to_client_string())
            })
            .await;
        let core = c;
        let handle = core.state::<super::Handle>();
        let Some(muc) = handle.0.get() else { return };
        let mut out = Out::new();
        match done {
            Ok(true) => {
                let mut rooms = lock(&muc.rooms);
                if let Some(r) = rooms.get_mut(&room) {
                    r.history
                        .retain(|h: &HistoryItem| h.archive_id.as_deref() != Some(id.as_str()));
                    let mut retract = Element::new("retract", NS_RETRACT)
                        .with_attr("id", id.clone())
                        .with_child(moderated);
                    if let Some(reason) = &reason {
                        retract.push(Element::new("reason", NS_RETRACT).with_text(reason.clone()));
                    }
                    let m = Element::new("message", ns::CLIENT)
                        .with_attr("type", "groupchat")
                        .with_attr("from", room_jid.clone())
                        .with_attr("id", crate::util::random_hex(8))
                        .with_child(retract)
                        .with_child(
                            Element::new("body", ns::CLIENT)
                                .with_text("This message was retracted by a moderator."),
                        );
                    fan_out(r, m, &mut out);
                }
                drop(rooms);
                out.push(result(&iq, None));
            }
            Ok(false) => refuse(
                &mut out,
                &iq,
                error(
                    StanzaCondition::ItemNotFound,
                    "no such message in the room's archive",
                ),
            ),
            Err(e) => {
                log::error!("group chats: moderation: {e}");
                refuse(&mut out, &iq, StanzaCondition::InternalServerError);
            }
        }
        muc.flush(&core, out);
    });
}

/// The last `n` archived messages with a body, for the history after a restart.
pub(super) fn recent_history(
    conn: &rusqlite::Connection,
    host: &str,
    room: &str,
    n: usize,
) -> Result<VecDeque<HistoryItem>, StorageError> {
    let mut out = VecDeque::new();
    if n == 0 {
        return Ok(out);
    }
    let page = crate::storage::archive::query(
        conn,
        host,
        room,
        &crate::storage::archive::Filter::default(),
        &crate::storage::archive::Range {
            after: None,
            before: None,
            backwards: true,
            max: n,
        },
    )
    .map_err(|e| StorageError::Refused(e.to_string()))?;
    let scope = crate::xml::parse::Scope::client();
    for e in page.entries {
        let Ok(m) = crate::xml::parse::parse_element(&scope, e.stanza.as_bytes()) else {
            continue;
        };
        if m.child("body", ns::CLIENT).is_none() {
            continue;
        }
        out.push_back(HistoryItem {
            chars: e.stanza.len(),
            message: m,
            at: e.ts,
            archive_id: Some(e.id),
        });
    }
    Ok(out)
}
