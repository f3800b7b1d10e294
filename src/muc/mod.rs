//! Group chats: a XEP-0045 multi-user chat service on `groups.<domain>`, hosted on the
//! routing core (`router::Service`). Rooms live in memory (a family has few); persistent
//! ones, with their affiliations and registered nicks, are stored (`storage::muc`) and
//! loaded at start. A room's messages are archived once, in the room's own archive
//! (XEP-0313 on the room JID), and kept in memory for the history sent on join.
//!
//! The pieces, after Prosody's `plugins/muc/`: `room` (state and rules), `presence`
//! (join, nick change, leave), `message` (group messages, private messages, subject,
//! invitations, voice requests), `admin` (affiliations and roles, configuration,
//! registration, destruction), `info` (disco, vCard avatars, archive queries, moderation,
//! self-ping and IQs to occupants), `family` (the family room every account is in).
//!
//! Every stanza is handled under one lock, and what it sends is collected and sent after
//! the lock is released (a room may send to a JID at its own service).

mod admin;
pub mod family;
mod info;
mod message;
mod presence;
pub mod room;

use crate::config::MucConfig;
use crate::jid::{BareJid, FullJid, Jid};
use crate::router::{send_to, Core, Service};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::muc::{self as store, StoredAffiliation, StoredRoom};
use crate::xml::{Element, Node};
use room::{AffEntry, Affiliation, Room, RoomConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub const NS: &str = "http://jabber.org/protocol/muc";
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_UNIQUE: &str = "http://jabber.org/protocol/muc#unique";
pub const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";
pub const NS_ROOMCONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const NS_ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";
pub const NS_REGISTER_FORM: &str = "http://jabber.org/protocol/muc#register";
pub const NS_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const NS_REGISTER: &str = "jabber:iq:register";
pub const NS_MODERATE: &str = "urn:xmpp:message-moderate:1";
pub const NS_RETRACT: &str = "urn:xmpp:message-retract:1";

/// The most forwarded IQs to occupants waiting for their answer.
const MAX_PENDING_IQS: usize = 1000;

/// The group chat service.
pub struct Muc {
    /// `groups.<domain>`.
    pub domain: String,
    pub config: MucConfig,
    rooms: Mutex<HashMap<String, Room>>,
    /// IQs forwarded to an occupant, by the id we gave them: (asker, its id, asker's nick).
    pending: Mutex<HashMap<String, (FullJid, String, String)>>,
}

/// The service of a running server, for the command line's notices (`kick::watch`) and
/// shutdown: set at start when group chats are on.
#[derive(Default)]
pub struct Handle(pub OnceLock<Arc<Muc>>);

/// Stanzas to send once the lock is released.
pub type Out = Vec<Element>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error reply to `stanza`, into `out`.
fn refuse(out: &mut Out, stanza: &Element, err: impl Into<StanzaError>) {
    if let Some(r) = err.into().reply_to(stanza) {
        out.push(r);
    }
}

fn error(condition: StanzaCondition, text: &str) -> StanzaError {
    StanzaError::with_text(condition, text)
}

/// XEP-0045's answer to a stanza that needs its sender in the room.
fn not_joined() -> StanzaError {
    error(StanzaCondition::NotAcceptable, "you are not in this room")
}

/// Removes the children `name` in `ns`.
fn strip(e: &mut Element, name: &str, ns: &str) {
    e.children
        .retain(|n| !matches!(n, Node::Element(c) if c.is(name, ns)));
}

/// The real full JID of a stanza's sender (stamped by the router).
fn sender(stanza: &Element) -> Option<Jid> {
    stanza.attr("from").and_then(|f| Jid::parse(f).ok())
}

impl Muc {
    /// The service for `server_domain` with its persistent rooms loaded.
    pub async fn start(core: &Arc<Core>, config: MucConfig) -> Result<Arc<Muc>, String> {
        let domain = config
            .domain
            .clone()
            .unwrap_or_else(|| format!("groups.{}", core.domain));
        let muc = Arc::new(Muc {
            domain: domain.clone(),
            config,
            rooms: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        });
        let family = muc.config.family_room.clone();
        let server = core.domain.clone();
        let host = domain.clone();
        let history = muc.config.history;
        let loaded = core
            .storage
            .call(move |c| {
                store::set_meta(c, family::META_MUC_DOMAIN, Some(&host))?;
                if let Some(name) = &family {
                    family::ensure(c, &server, &host, name)?;
                }
                let mut rooms = Vec::new();
                for r in store::rooms(c, &host)? {
                    let affs = store::affiliations(c, &host, &r.name)?;
                    let recent = info::recent_history(c, &host, &r.name, history)?;
                    let vcard = crate::storage::vcard::get(c, &host, &r.name)?;
                    rooms.push((r, affs, recent, vcard));
                }
                Ok(rooms)
            })
            .await
            .map_err(|e| format!("group chats: {e}"))?;
        {
            let mut rooms = lock(&muc.rooms);
            for (stored, affs, recent, vcard) in loaded {
                let mut room = muc.room_from_store(stored, affs);
                room.history = recent;
                room.avatar_hash = vcard.as_deref().and_then(info::avatar_hash_of_stored);
                rooms.insert(room.name.clone(), room);
            }
            log::info!(
                "group chats on {domain}: {} persistent room(s)",
                rooms.len()
            );
        }
        core.add_service(&domain, muc.clone());
        Ok(muc)
    }

    fn room_from_store(&self, stored: StoredRoom, affs: Vec<StoredAffiliation>) -> Room {
        let jid = BareJid::new(Some(&stored.name), &self.domain)
            .unwrap_or_else(|_| BareJid::parse(&self.domain).expect("service domain"));
        let config = RoomConfig::from_stored(&stored.config, self.config.max_occupants);
        let mut room = Room::new(&stored.name, jid, config, stored.secret);
        room.subject = (stored.subject_nick, stored.subject);
        room.created = stored.created;
        room.affiliations = affiliations_from_store(affs);
        room
    }

    /// Stores a persistent room's row (configuration, subject).
    fn save(&self, core: &Core, room: &Room) {
        if !room.config.persistent {
            return;
        }
        let host = self.domain.clone();
        let row = StoredRoom {
            name: room.name.clone(),
            config: room.config.to_stored(),
            subject: room.subject.1.clone(),
            subject_nick: room.subject.0.clone(),
            secret: room.secret.clone(),
            created: room.created,
        };
        core.storage
            .submit("saving a room", move |c| store::save_room(c, &host, &row));
    }

    /// Stores a persistent room's row with all its affiliations (a room that just became
    /// persistent).
    fn save_all(&self, core: &Core, room: &Room) {
        self.save(core, room);
        for jid in room.affiliations.keys() {
            self.save_affiliation(core, room, jid);
        }
    }

    /// Stores one affiliation of a persistent room as it is now.
    fn save_affiliation(&self, core: &Core, room: &Room, jid: &BareJid) {
        if !room.config.persistent {
            return;
        }
        let host = self.domain.clone();
        let name = room.name.clone();
        let row = match room.affiliations.get(jid) {
            Some(a) => StoredAffiliation {
                jid: jid.to_string(),
                affiliation: a.affiliation.as_str().to_owned(),
                nick: a.nick.clone(),
                reason: a.reason.clone(),
            },
            None => StoredAffiliation {
                jid: jid.to_string(),
                affiliation: "none".into(),
                nick: None,
                reason: String::new(),
            },
        };
        core.storage.submit("saving an affiliation", move |c| {
            store::set_affiliation(c, &host, &name, &row)
        });
    }

    /// Forgets a room (destroyed, or temporary and empty) and deletes what is stored of it.
    fn forget(&self, core: &Core, rooms: &mut HashMap<String, Room>, name: &str) {
        // Persistent or temporary, its rows, archive and vCard go with it.
        if rooms.remove(name).is_some() {
            let host = self.domain.clone();
            let name = name.to_owned();
            core.storage.submit("deleting a room", move |c| {
                store::delete_room(c, &host, &name)
            });
        }
    }

    /// Sends what a handler collected: to local sessions directly, the rest through the
    /// router.
    fn flush(&self, core: &Core, out: Out) {
        for s in out {
            let local = s
                .attr("to")
                .and_then(|t| FullJid::parse(t).ok())
                .filter(|f| f.domain() == core.domain)
                .and_then(|f| core.sessions.get(&f));
            match local {
                Some(h) => {
                    h.send(s);
                }
                None => send_to(core, s),
            }
        }
    }

    fn handle(&self, core: &Arc<Core>, stanza: Element) {
        let mut out = Out::new();
        self.dispatch(core, stanza, &mut out);
        self.flush(core, out);
    }

    fn dispatch(&self, core: &Arc<Core>, stanza: Element, out: &mut Out) {
        let Some(from) = sender(&stanza) else {
            return;
        };
        let to = match stanza.attr("to").map(Jid::parse) {
            Some(Ok(t)) => t,
            _ => return,
        };
        let Some(room) = to.node().map(str::to_owned) else {
            return info::service_stanza(self, core, stanza, out);
        };
        let nick = to.resource().map(str::to_owned);
        match (stanza.name.as_str(), nick) {
            ("presence", Some(nick)) => {
                let Jid::Full(real) = from else {
                    return;
                };
                let mut rooms = lock(&self.rooms);
                presence::handle(self, core, &mut rooms, &room, &nick, real, stanza, out);
            }
            // XEP-0045 §7.2.1: joining needs a nick.
            ("presence", None) if stanza.attr("type").is_none() => presence::refuse_presence(
                out,
                &stanza,
                error(
                    StanzaCondition::JidMalformed,
                    "join the room with a nickname",
                ),
            ),
            ("presence", None) => {}
            ("message", nick) => {
                let mut rooms = lock(&self.rooms);
                message::handle(self, core, &mut rooms, &room, nick, from, stanza, out);
            }
            ("iq", nick) => info::iq(self, core, &room, nick, from, stanza, out),
            _ => {}
        }
    }

    /// Runs `f` on the rooms under the lock, then sends what it collected.
    fn with_rooms<R>(
        &self,
        core: &Core,
        f: impl FnOnce(&Muc, &mut HashMap<String, Room>, &mut Out) -> R,
    ) -> R {
        let mut out = Out::new();
        let r = {
            let mut rooms = lock(&self.rooms);
            f(self, &mut rooms, &mut out)
        };
        self.flush(core, out);
        r
    }

    /// The command line changed a room's affiliations (`roost room-add`, `adduser`,
    /// `deluser`): reload them and apply them to the occupants.
    pub async fn reload_affiliations(&self, core: &Arc<Core>, name: &str) {
        let host = self.domain.clone();
        let room = name.to_owned();
        let stored = core
            .storage
            .call(move |c| {
                if !store::exists(c, &host, &room)? {
                    return Ok(None);
                }
                let affs = store::affiliations(c, &host, &room)?;
                let rows = store::rooms(c, &host)?;
                Ok(rows.into_iter().find(|r| r.name == room).map(|r| (r, affs)))
            })
            .await;
        let (row, affs) = match stored {
            Ok(Some(x)) => x,
            Ok(None) => {
                // Removed by the command line (`roost circle remove`): destroyed
                // (XEP-0045 §10.9), its occupants told.
                self.with_rooms(core, |_, rooms, out| {
                    if let Some(mut room) = rooms.remove(name) {
                        let destroy = Element::new("destroy", NS_USER).with_child(
                            Element::new("reason", NS_USER).with_text("this circle was removed"),
                        );
                        presence::remove_all(&mut room, &[], Some(&destroy), out);
                        log::info!("group chats: {} removed", room.jid);
                    }
                });
                return;
            }
            Err(e) => {
                log::error!("group chats: reloading {name}: {e}");
                return;
            }
        };
        self.with_rooms(core, |muc, rooms, out| {
            if !rooms.contains_key(name) {
                let room = muc.room_from_store(row, affs);
                rooms.insert(name.to_owned(), room);
                return;
            }
            let room = rooms.get_mut(name).expect("checked");
            let new = affiliations_from_store(affs);
            let changed: Vec<BareJid> = room
                .affiliations
                .keys()
                .chain(new.keys())
                .filter(|j| room.affiliations.get(*j) != new.get(*j))
                .cloned()
                .collect();
            room.affiliations = new;
            for jid in changed {
                admin::apply_affiliation(room, &jid, "", None, out);
            }
        });
    }

    /// Tells every occupant the server is going away (status 332).
    pub fn shutdown(&self, core: &Core) {
        self.with_rooms(core, |_, rooms, out| {
            for room in rooms.values_mut() {
                presence::remove_all(room, &[332], None, out);
            }
        });
    }

    /// For tests and the benchmark's accounting: (rooms, occupants).
    pub fn counts(&self) -> (usize, usize) {
        let rooms = lock(&self.rooms);
        (rooms.len(), rooms.values().map(|r| r.occupants.len()).sum())
    }
}

fn affiliations_from_store(affs: Vec<StoredAffiliation>) -> HashMap<BareJid, AffEntry> {
    affs.into_iter()
        .filter_map(|a| {
            Some((
                BareJid::parse(&a.jid).ok()?,
                AffEntry {
                    affiliation: Affiliation::parse(&a.affiliation)?,
                    nick: a.nick,
                    reason: a.reason,
                },
            ))
        })
        .collect()
}

impl Service for Muc {
    fn receive(&self, core: &Arc<Core>, stanza: Element) {
        self.handle(core, stanza);
    }
}
