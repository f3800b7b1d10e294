//! Running a room: affiliation and role lists and changes (`muc#admin`, XEP-0045 §8, §9),
//! the owner's configuration form and destruction (`muc#owner`, §10), and registered nicks
//! (`jabber:iq:register`, §7.10).

use super::message::fan_out;
use super::presence::{broadcast, remove, remove_all, status};
use super::room::{AffEntry, Affiliation, AllowPm, Role, Room};
use super::{
    error, Muc, Out, NS_ADMIN, NS_OWNER, NS_REGISTER, NS_REGISTER_FORM, NS_ROOMCONFIG, NS_USER,
};
use crate::jid::{BareJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::stanza::forms::{self, DataForm, Field};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use std::collections::HashMap;

type Answer = Result<Option<Element>, StanzaError>;

/// Who is asking: the real JID, its affiliation, its role (and nick) if joined.
pub(super) struct Asker {
    pub bare: BareJid,
    pub aff: Affiliation,
    pub role: Role,
    pub nick: Option<String>,
}

impl Asker {
    pub fn of(room: &Room, real: &Jid) -> Asker {
        let bare = real.to_bare();
        let joined = room.joined(real).map(|i| &room.occupants[i]);
        Asker {
            aff: room.affiliation(&bare),
            role: joined.map_or(Role::None, |o| o.role),
            nick: joined.map(|o| o.nick.clone()),
            bare,
        }
    }
}

fn forbidden(why: &str) -> StanzaError {
    error(StanzaCondition::Forbidden, why)
}

/// `muc#admin` get: a list by affiliation or by role.
pub(super) fn admin_get(room: &Room, asker: &Asker, query: &Element) -> Answer {
    let Some(item) = query.child("item", NS_ADMIN) else {
        return Err(StanzaCondition::BadRequest.into());
    };
    let mut q = Element::new("query", NS_ADMIN);
    if let Some(a) = item.attr("affiliation") {
        let Some(a) = Affiliation::parse(a).filter(|a| *a != Affiliation::None) else {
            return Err(StanzaCondition::BadRequest.into());
        };
        // Members of a members-only or non-anonymous room read its member lists (what
        // OMEMO needs in a private group); the outcast list is for admins.
        let may = asker.aff >= Affiliation::Admin
            || (a != Affiliation::Outcast
                && asker.aff >= Affiliation::Member
                && (room.config.members_only || room.config.whois_anyone));
        if !may {
            return Err(forbidden("you may not see that list"));
        }
        let mut list: Vec<(&BareJid, &AffEntry)> = room
            .affiliations
            .iter()
            .filter(|(_, e)| e.affiliation == a)
            .collect();
        list.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
        for (jid, e) in list {
            let mut it = Element::new("item", NS_ADMIN)
                .with_attr("affiliation", a.as_str())
                .with_attr("jid", jid.as_str());
            if let Some(n) = &e.nick {
                it.set_attr("nick", n.clone());
            }
            if !e.reason.is_empty() {
                it.push(Element::new("reason", NS_ADMIN).with_text(e.reason.clone()));
            }
            q.push(it);
        }
        return Ok(Some(q));
    }
    if let Some(r) = item.attr("role") {
        let Some(r) = Role::parse(r).filter(|r| *r != Role::None) else {
            return Err(StanzaCondition::BadRequest.into());
        };
        if asker.role != Role::Moderator {
            return Err(forbidden("only moderators see that list"));
        }
        for o in room.occupants.iter().filter(|o| o.role == r) {
            let mut it = Element::new("item", NS_ADMIN)
                .with_attr("role", r.as_str())
                .with_attr("nick", o.nick.clone())
                .with_attr("affiliation", room.affiliation(&o.real).as_str());
            if room.sees_real_jids(asker.role) {
                it.set_attr("jid", o.real.as_str());
            }
            q.push(it);
        }
        return Ok(Some(q));
    }
    Err(StanzaCondition::BadRequest.into())
}

/// One checked change of a `muc#admin` set.
enum Change {
    Role {
        nick: String,
        role: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: BareJid,
        aff: Affiliation,
        reason: Option<String>,
    },
}

/// `muc#admin` set (XEP-0045 §8, §9): every item checked first, then all applied.
pub(super) fn admin_set(
    muc: &Muc,
    core: &Core,
    room: &mut Room,
    asker: &Asker,
    query: &Element,
    out: &mut Out,
) -> Answer {
    let mut changes = Vec::new();
    for item in query.elements().filter(|e| e.is("item", NS_ADMIN)) {
        let reason = item.child("reason", NS_ADMIN).map(Element::text);
        if let Some(a) = item.attr("affiliation") {
            let aff = Affiliation::parse(a).ok_or(StanzaCondition::BadRequest)?;
            let jid = match (item.attr("jid"), item.attr("nick")) {
                (Some(j), _) => BareJid::parse(j)
                    .or_else(|_| Jid::parse(j).map(|j| j.to_bare()))
                    .map_err(|_| StanzaError::from(StanzaCondition::JidMalformed))?,
                (None, Some(n)) => room
                    .occupant(n)
                    .map(|o| o.real.clone())
                    .ok_or(StanzaCondition::ItemNotFound)?,
                (None, None) => return Err(StanzaCondition::BadRequest.into()),
            };
            let current = room.affiliation(&jid);
            match asker.aff {
                Affiliation::Owner => {}
                Affiliation::Admin => {
                    if aff >= Affiliation::Admin {
                        return Err(forbidden("only owners make admins and owners"));
                    }
                    if current >= Affiliation::Admin {
                        return Err(error(
                            StanzaCondition::NotAllowed,
                            "an admin cannot change an owner's or admin's affiliation",
                        ));
                    }
                }
                _ => return Err(forbidden("only owners and admins change affiliations")),
            }
            changes.push(Change::Affiliation { jid, aff, reason });
        } else if let Some(r) = item.attr("role") {
            let role = Role::parse(r).ok_or(StanzaCondition::BadRequest)?;
            let nick = item
                .attr("nick")
                .ok_or(StanzaCondition::BadRequest)?
                .to_owned();
            let target = room.occupant(&nick).ok_or(StanzaCondition::ItemNotFound)?;
            let target_aff = room.affiliation(&target.real);
            if asker.role != Role::Moderator {
                return Err(forbidden("only moderators change roles"));
            }
            if (role == Role::Moderator || target.role == Role::Moderator)
                && asker.aff < Affiliation::Admin
            {
                return Err(forbidden("only owners and admins change moderators"));
            }
            if role < Role::Moderator && target_aff >= Affiliation::Admin {
                return Err(error(
                    StanzaCondition::NotAllowed,
                    "an owner or admin cannot be kicked or silenced",
                ));
            }
            if target_aff > asker.aff {
                return Err(error(
                    StanzaCondition::NotAllowed,
                    "you cannot change the role of someone ranked above you",
                ));
            }
            changes.push(Change::Role { nick, role, reason });
        } else {
            return Err(StanzaCondition::BadRequest.into());
        }
    }
    // XEP-0045 §10.6: a room keeps at least one owner.
    let owners_left = room
        .affiliations
        .iter()
        .filter(|(j, e)| {
            e.affiliation == Affiliation::Owner
                && !changes.iter().any(|c| {
                    matches!(c, Change::Affiliation { jid, aff, .. } if jid == *j && *aff != Affiliation::Owner)
                })
        })
        .count()
        + changes
            .iter()
            .filter(|c| matches!(c, Change::Affiliation { aff: Affiliation::Owner, .. }))
            .count();
    let had_owner = room
        .affiliations
        .values()
        .any(|e| e.affiliation == Affiliation::Owner);
    if had_owner && owners_left == 0 {
        return Err(error(
            StanzaCondition::Conflict,
            "a room needs at least one owner",
        ));
    }
    let actor = asker.nick.clone();
    for c in changes {
        match c {
            Change::Role { nick, role, reason } => {
                let Some(i) = room.occupants.iter().position(|o| o.nick == nick) else {
                    continue;
                };
                if role == Role::None {
                    remove(room, i, &[307], actor.as_deref(), reason.as_deref(), out);
                } else {
                    room.occupants[i].role = role;
                    broadcast(room, i, &[], &[], out);
                }
            }
            Change::Affiliation { jid, aff, reason } => {
                let nick = room.affiliations.get(&jid).and_then(|e| e.nick.clone());
                if aff == Affiliation::None && nick.is_none() {
                    room.affiliations.remove(&jid);
                } else {
                    room.affiliations.insert(
                        jid.clone(),
                        AffEntry {
                            affiliation: aff,
                            nick,
                            reason: reason.clone().unwrap_or_default(),
                        },
                    );
                }
                muc.save_affiliation(core, room, &jid);
                apply_affiliation(
                    room,
                    &jid,
                    actor.as_deref().unwrap_or(""),
                    reason.as_deref(),
                    out,
                );
            }
        }
    }
    Ok(None)
}

/// After `jid`'s affiliation changed: a ban (301) or a lost membership of a members-only
/// room (321) removes its occupant; otherwise its role follows and its presence is sent
/// again.
pub(super) fn apply_affiliation(
    room: &mut Room,
    jid: &BareJid,
    actor: &str,
    reason: Option<&str>,
    out: &mut Out,
) {
    let Some(i) = room.by_real(jid) else {
        return;
    };
    let aff = room.affiliation(jid);
    let actor = (!actor.is_empty()).then_some(actor);
    if aff == Affiliation::Outcast {
        remove(room, i, &[301], actor, reason, out);
    } else if room.config.members_only && aff < Affiliation::Member {
        remove(room, i, &[321], actor, reason, out);
    } else {
        let role = room.default_role(aff);
        let o = &mut room.occupants[i];
        // A moderator by role alone keeps it; a visitor given voice keeps it.
        if !(aff == Affiliation::None && o.role > role) {
            o.role = role;
        }
        broadcast(room, i, &[], &[], out);
    }
}

/// The `muc#roomconfig` form with the room's values.
pub(super) fn config_form(muc: &Muc, room: &Room) -> Element {
    let c = &room.config;
    let b = |v: bool| if v { "1" } else { "0" };
    let mut f = DataForm::with_form_type("form", NS_ROOMCONFIG);
    let mut push = |var: &str, ty: &str, v: &str| {
        f.fields.push(Field::new(var, ty).with_value(v));
    };
    push("muc#roomconfig_roomname", "text-single", &c.name);
    push("muc#roomconfig_roomdesc", "text-single", &c.description);
    push("muc#roomconfig_persistentroom", "boolean", b(c.persistent));
    push("muc#roomconfig_publicroom", "boolean", b(c.public));
    push("muc#roomconfig_membersonly", "boolean", b(c.members_only));
    push("muc#roomconfig_moderatedroom", "boolean", b(c.moderated));
    push(
        "muc#roomconfig_passwordprotectedroom",
        "boolean",
        b(c.password.is_some()),
    );
    push(
        "muc#roomconfig_roomsecret",
        "text-private",
        c.password.as_deref().unwrap_or(""),
    );
    push("muc#roomconfig_allowinvites", "boolean", b(c.allow_invites));
    push(
        "muc#roomconfig_changesubject",
        "boolean",
        b(c.change_subject),
    );
    push("muc#roomconfig_enablearchiving", "boolean", b(c.archiving));
    f.fields.push(
        Field::new("muc#roomconfig_whois", "list-single")
            .with_value(if c.whois_anyone {
                "anyone"
            } else {
                "moderators"
            })
            .with_options(&["moderators", "anyone"]),
    );
    f.fields.push(
        Field::new("muc#roomconfig_allowpm", "list-single")
            .with_value(c.allow_pm.as_str())
            .with_options(&["anyone", "participants", "moderators", "none"]),
    );
    let max = muc.config.max_occupants.to_string();
    let mut sizes: Vec<String> = ["5", "10", "20", "50", "100"]
        .iter()
        .filter(|s| s.parse::<usize>().unwrap_or(0) < muc.config.max_occupants)
        .map(|s| s.to_string())
        .collect();
    sizes.push(max);
    let options: Vec<&str> = sizes.iter().map(String::as_str).collect();
    f.fields.push(
        Field::new("muc#roomconfig_maxusers", "list-single")
            .with_value(c.max_users.to_string())
            .with_options(&options),
    );
    let mut bc = Field::new("muc#roomconfig_presencebroadcast", "list-multi").with_options(&[
        "moderator",
        "participant",
        "visitor",
    ]);
    for r in c.broadcast_roles() {
        bc.values.push(r.to_owned());
    }
    f.fields.push(bc);
    Element::new("query", NS_OWNER).with_child(Element::from(&f))
}

fn bool_field(form: &DataForm, var: &str, into: &mut bool) -> Result<(), StanzaError> {
    if let Some(field) = form.field(var) {
        let v = field.values.first().map(String::as_str).unwrap_or("0");
        *into = forms::parse_bool(v)
            .ok_or_else(|| error(StanzaCondition::BadRequest, &format!("{var} is a boolean")))?;
    }
    Ok(())
}

/// Applies a submitted configuration form to a copy of the configuration.
fn configured(
    muc: &Muc,
    room: &Room,
    form: &DataForm,
) -> Result<super::room::RoomConfig, StanzaError> {
    let mut c = room.config.clone();
    if let Some(v) = form.field("muc#roomconfig_roomname") {
        c.name = v.values.first().cloned().unwrap_or_default();
    }
    if let Some(v) = form.field("muc#roomconfig_roomdesc") {
        c.description = v.values.first().cloned().unwrap_or_default();
    }
    bool_field(form, "muc#roomconfig_persistentroom", &mut c.persistent)?;
    bool_field(form, "muc#roomconfig_publicroom", &mut c.public)?;
    bool_field(form, "muc#roomconfig_membersonly", &mut c.members_only)?;
    bool_field(form, "muc#roomconfig_moderatedroom", &mut c.moderated)?;
    bool_field(form, "muc#roomconfig_allowinvites", &mut c.allow_invites)?;
    bool_field(form, "muc#roomconfig_changesubject", &mut c.change_subject)?;
    bool_field(form, "muc#roomconfig_enablearchiving", &mut c.archiving)?;
    // XEP-0045 §10.2: the older name of the archiving field (Prosody's `mam`).
    bool_field(form, "mam", &mut c.archiving)?;
    let mut protected = c.password.is_some();
    bool_field(form, "muc#roomconfig_passwordprotectedroom", &mut protected)?;
    let secret = form
        .field("muc#roomconfig_roomsecret")
        .map(|f| f.values.first().cloned().unwrap_or_default());
    if form.field("muc#roomconfig_passwordprotectedroom").is_none() {
        if let Some(s) = &secret {
            protected = !s.is_empty();
        }
    }
    c.password = match (protected, secret) {
        (false, _) => None,
        (true, Some(s)) if !s.is_empty() => Some(s),
        (true, Some(_)) => {
            return Err(error(
                StanzaCondition::NotAcceptable,
                "a password-protected room needs a password",
            ))
        }
        (true, None) => Some(c.password.clone().ok_or_else(|| {
            error(
                StanzaCondition::NotAcceptable,
                "a password-protected room needs a password",
            )
        })?),
    };
    if let Some(v) = form.value("muc#roomconfig_whois") {
        c.whois_anyone = match v {
            "anyone" => true,
            "moderators" => false,
            _ => {
                return Err(error(
                    StanzaCondition::BadRequest,
                    "whois is moderators or anyone",
                ))
            }
        };
    }
    if let Some(v) = form.value("muc#roomconfig_allowpm") {
        c.allow_pm = AllowPm::parse(v)
            .ok_or_else(|| error(StanzaCondition::BadRequest, "unknown allowpm value"))?;
    }
    if let Some(v) = form.value("muc#roomconfig_maxusers") {
        c.max_users = match v {
            "none" | "0" => muc.config.max_occupants,
            n => n
                .parse::<usize>()
                .map_err(|_| error(StanzaCondition::BadRequest, "maxusers is a number"))?
                .min(muc.config.max_occupants),
        };
    }
    if let Some(f) = form.field("muc#roomconfig_presencebroadcast") {
        if !c.set_broadcast_roles(f.values.iter().map(String::as_str)) {
            return Err(error(
                StanzaCondition::BadRequest,
                "presencebroadcast takes moderator, participant, visitor",
            ));
        }
    }
    Ok(c)
}

/// `muc#owner` set: a submitted form (configuration), a cancel (a new room goes), or a
/// destruction.
pub(super) fn owner_set(
    muc: &Muc,
    core: &Core,
    rooms: &mut HashMap<String, Room>,
    name: &str,
    asker: &Asker,
    query: &Element,
    out: &mut Out,
) -> Answer {
    let room = rooms.get_mut(name).ok_or(StanzaCondition::ItemNotFound)?;
    if asker.aff != Affiliation::Owner {
        return Err(forbidden("only the room's owners do that"));
    }
    if let Some(d) = query.child("destroy", NS_OWNER) {
        let mut destroy = Element::new("destroy", NS_USER);
        if let Some(j) = d.attr("jid") {
            let alt =
                Jid::parse(j).map_err(|_| StanzaError::from(StanzaCondition::JidMalformed))?;
            destroy.set_attr("jid", alt.as_str());
        }
        if let Some(r) = d.child("reason", NS_OWNER) {
            destroy.push(Element::new("reason", NS_USER).with_text(r.text()));
        }
        if let Some(p) = d.child("password", NS_OWNER) {
            destroy.push(Element::new("password", NS_USER).with_text(p.text()));
        }
        remove_all(room, &[], Some(&destroy), out);
        log::info!("group chats: {} destroyed {}", asker.bare, room.jid);
        muc.forget(core, rooms, name);
        return Ok(None);
    }
    let x = query
        .child("x", forms::NS)
        .ok_or(StanzaCondition::BadRequest)?;
    let form =
        DataForm::try_from(x).map_err(|e| error(StanzaCondition::BadRequest, &e.to_string()))?;
    if form.ty == "cancel" {
        if room.locked {
            remove_all(room, &[], None, out);
            muc.forget(core, rooms, name);
        }
        return Ok(None);
    }
    if form.ty != "submit" {
        return Err(error(StanzaCondition::BadRequest, "submit the form"));
    }
    if let Some(t) = form.form_type() {
        if t != NS_ROOMCONFIG {
            return Err(error(
                StanzaCondition::BadRequest,
                "not a room configuration form",
            ));
        }
    }
    let new = configured(muc, room, &form)?;
    let old = std::mem::replace(&mut room.config, new);
    let was_locked = std::mem::replace(&mut room.locked, false);
    let c = room.config.clone();
    // Status codes to the occupants (XEP-0045 §10.2.1).
    let mut codes = Vec::new();
    if !was_locked && old != c {
        codes.push(104);
    }
    if old.whois_anyone != c.whois_anyone {
        codes.push(if c.whois_anyone { 172 } else { 173 });
    }
    if old.archiving != c.archiving {
        codes.push(if c.archiving { 170 } else { 171 });
    }
    if !codes.is_empty() {
        let mut x = Element::new("x", NS_USER);
        for code in &codes {
            x.push(status(*code));
        }
        let m = Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_attr("from", room.jid.as_str())
            .with_attr("id", crate::util::random_hex(6))
            .with_child(x);
        fan_out(room, m, out);
    }
    if c.members_only && !old.members_only {
        // §9.7 (322): those who are not members leave.
        let outsiders: Vec<String> = room
            .occupants
            .iter()
            .filter(|o| room.affiliation(&o.real) < Affiliation::Member)
            .map(|o| o.nick.clone())
            .collect();
        for n in outsiders {
            if let Some(i) = room.occupants.iter().position(|o| o.nick == n) {
                remove(room, i, &[322], None, None, out);
            }
        }
    }
    if c.moderated != old.moderated {
        for i in 0..room.occupants.len() {
            let aff = room.affiliation(&room.occupants[i].real);
            if aff == Affiliation::None {
                let role = room.default_role(aff);
                if room.occupants[i].role != role && room.occupants[i].role != Role::Moderator {
                    room.occupants[i].role = role;
                    broadcast(room, i, &[], &[], out);
                }
            }
        }
    }
    match (old.persistent, c.persistent) {
        (false, true) => muc.save_all(core, room),
        (true, false) => {
            let host = muc.domain.clone();
            let n = name.to_owned();
            core.storage.submit("making a room temporary", move |conn| {
                crate::storage::muc::forget_room_rows(conn, &host, &n)
            });
        }
        _ => muc.save(core, room),
    }
    if !c.persistent && room.is_empty() {
        muc.forget(core, rooms, name);
    }
    Ok(None)
}

/// `jabber:iq:register` on a room (XEP-0045 §7.10): get the form (or `<registered/>`),
/// set a nick (making the user a member), or remove the registration.
pub(super) fn register(
    muc: &Muc,
    core: &Core,
    room: &mut Room,
    asker: &Asker,
    iq: &Element,
    query: &Element,
    out: &mut Out,
) -> Answer {
    let entry = room.affiliations.get(&asker.bare).cloned();
    if asker.aff == Affiliation::Outcast {
        return Err(forbidden("you are banned from this room"));
    }
    if iq.attr("type") == Some("get") {
        let mut q = Element::new("query", NS_REGISTER);
        if let Some(n) = entry.as_ref().and_then(|e| e.nick.clone()) {
            q.push(Element::new("registered", NS_REGISTER));
            q.push(Element::new("username", NS_REGISTER).with_text(n));
            return Ok(Some(q));
        }
        let mut f = DataForm::with_form_type("form", NS_REGISTER_FORM);
        let mut nick = Field::new("muc#register_roomnick", "text-single");
        nick.extra.push(Element::new("required", forms::NS));
        f.fields.push(nick);
        q.push(
            Element::new("instructions", NS_REGISTER)
                .with_text("Choose the nickname you will have in this room."),
        );
        q.push(Element::from(&f));
        return Ok(Some(q));
    }
    if query.child("remove", NS_REGISTER).is_some() {
        if entry.is_none() {
            return Err(StanzaCondition::ItemNotFound.into());
        }
        if asker.aff == Affiliation::Owner {
            return Err(error(
                StanzaCondition::NotAllowed,
                "an owner keeps the room; give ownership away first",
            ));
        }
        room.affiliations.remove(&asker.bare);
        muc.save_affiliation(core, room, &asker.bare);
        apply_affiliation(room, &asker.bare, "", None, out);
        return Ok(None);
    }
    if room.config.members_only && asker.aff < Affiliation::Member {
        return Err(error(
            StanzaCondition::RegistrationRequired,
            "this room's members are chosen by its admins",
        ));
    }
    let nick = query
        .child("x", forms::NS)
        .and_then(|x| DataForm::try_from(x).ok())
        .and_then(|f| f.value("muc#register_roomnick").map(str::to_owned))
        .or_else(|| query.child("username", NS_REGISTER).map(Element::text))
        .ok_or_else(|| error(StanzaCondition::BadRequest, "give muc#register_roomnick"))?;
    let nick = crate::jid::resourceprep(&nick)
        .map_err(|_| error(StanzaCondition::JidMalformed, "that nickname is not valid"))?;
    if room.nick_owner(&nick).is_some_and(|o| *o != asker.bare)
        || room.occupant(&nick).is_some_and(|o| o.real != asker.bare)
    {
        return Err(error(StanzaCondition::Conflict, "that nickname is taken"));
    }
    let aff = asker.aff.max(Affiliation::Member);
    room.affiliations.insert(
        asker.bare.clone(),
        AffEntry {
            affiliation: aff,
            nick: Some(nick),
            reason: entry.map(|e| e.reason).unwrap_or_default(),
        },
    );
    muc.save_affiliation(core, room, &asker.bare);
    apply_affiliation(room, &asker.bare, "", None, out);
    Ok(None)
}
