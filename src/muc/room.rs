//! A room's state (XEP-0045): configuration, affiliations, occupants with their roles,
//! subject, history, and the rules that follow from them (who may join, speak, see real
//! JIDs, change what). No I/O here: the service (`muc::mod`) sends and stores.

use crate::jid::{BareJid, FullJid};
use crate::xml::Element;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::time::Instant;

/// XEP-0045 §5.2 affiliations, in rank order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "outcast" => Affiliation::Outcast,
            "none" => Affiliation::None,
            "member" => Affiliation::Member,
            "admin" => Affiliation::Admin,
            "owner" => Affiliation::Owner,
            _ => return None,
        })
    }
}

/// XEP-0045 §5.1 roles, in rank order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "none" => Role::None,
            "visitor" => Role::Visitor,
            "participant" => Role::Participant,
            "moderator" => Role::Moderator,
            _ => return None,
        })
    }

    /// The bit of this role in [`RoomConfig::broadcast`].
    fn bit(self) -> u8 {
        match self {
            Role::None => 0,
            Role::Visitor => 1,
            Role::Participant => 2,
            Role::Moderator => 4,
        }
    }
}

/// Who may send private messages through the room (`muc#roomconfig_allowpm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    Nobody,
}

impl AllowPm {
    pub fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::Nobody => "none",
        }
    }

    pub fn parse(s: &str) -> Option<AllowPm> {
        Some(match s {
            "anyone" => AllowPm::Anyone,
            "participants" => AllowPm::Participants,
            "moderators" => AllowPm::Moderators,
            "none" => AllowPm::Nobody,
            _ => return None,
        })
    }

    /// May an occupant with `role` send a private message?
    pub fn allows(self, role: Role) -> bool {
        match self {
            AllowPm::Anyone => role >= Role::Visitor,
            AllowPm::Participants => role >= Role::Participant,
            AllowPm::Moderators => role >= Role::Moderator,
            AllowPm::Nobody => false,
        }
    }
}

/// A room's configuration (`muc#roomconfig`, XEP-0045 §10.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    /// `None`: not password-protected.
    pub password: Option<String>,
    /// Real JIDs visible to anyone (non-anonymous) or only to moderators (semi-anonymous).
    pub whois_anyone: bool,
    /// Most occupants (the service's limit caps it).
    pub max_users: usize,
    pub allow_invites: bool,
    pub change_subject: bool,
    pub allow_pm: AllowPm,
    pub archiving: bool,
    /// Roles whose presence is broadcast, [`Role::bit`]s.
    pub broadcast: u8,
}

impl RoomConfig {
    /// A new room's configuration (Prosody's defaults: public, open, semi-anonymous,
    /// temporary, archived).
    pub fn new(max_users: usize) -> RoomConfig {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            whois_anyone: false,
            max_users,
            allow_invites: false,
            change_subject: false,
            allow_pm: AllowPm::Anyone,
            archiving: true,
            broadcast: 7,
        }
    }

    /// Is the presence of an occupant with `role` broadcast?
    pub fn broadcasts(&self, role: Role) -> bool {
        self.broadcast & role.bit() != 0
    }

    /// The roles whose presence is broadcast, as `muc#roomconfig_presencebroadcast` values.
    pub fn broadcast_roles(&self) -> Vec<&'static str> {
        [Role::Moderator, Role::Participant, Role::Visitor]
            .into_iter()
            .filter(|r| self.broadcasts(*r))
            .map(Role::as_str)
            .collect()
    }

    pub fn set_broadcast_roles<'a>(&mut self, roles: impl Iterator<Item = &'a str>) -> bool {
        let mut bits = 0;
        for r in roles {
            match Role::parse(r) {
                Some(r @ (Role::Moderator | Role::Participant | Role::Visitor)) => bits |= r.bit(),
                _ => return false,
            }
        }
        self.broadcast = bits;
        true
    }

    /// The stored form: `key=value` lines, values escaped (`\n`, `\\`).
    pub fn to_stored(&self) -> String {
        let b = |v: bool| if v { "1" } else { "0" };
        let mut s = String::new();
        let mut line = |k: &str, v: &str| {
            let v = v.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(s, "{k}={v}");
        };
        line("name", &self.name);
        line("description", &self.description);
        line("persistent", b(self.persistent));
        line("public", b(self.public));
        line("members_only", b(self.members_only));
        line("moderated", b(self.moderated));
        if let Some(p) = &self.password {
            line("password", p);
        }
        line(
            "whois",
            if self.whois_anyone {
                "anyone"
            } else {
                "moderators"
            },
        );
        line("max_users", &self.max_users.to_string());
        line("allow_invites", b(self.allow_invites));
        line("change_subject", b(self.change_subject));
        line("allow_pm", self.allow_pm.as_str());
        line("archiving", b(self.archiving));
        line("broadcast", &self.broadcast.to_string());
        s
    }

    /// Reads the stored form over the defaults; unknown keys (a newer build's) are ignored.
    pub fn from_stored(text: &str, max_users: usize) -> RoomConfig {
        let mut c = RoomConfig::new(max_users);
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = unescape(v);
            let yes = v == "1";
            match k {
                "name" => c.name = v,
                "description" => c.description = v,
                "persistent" => c.persistent = yes,
                "public" => c.public = yes,
                "members_only" => c.members_only = yes,
                "moderated" => c.moderated = yes,
                "password" => c.password = Some(v),
                "whois" => c.whois_anyone = v == "anyone",
                "max_users" => c.max_users = v.parse().unwrap_or(max_users).min(max_users),
                "allow_invites" => c.allow_invites = yes,
                "change_subject" => c.change_subject = yes,
                "allow_pm" => c.allow_pm = AllowPm::parse(&v).unwrap_or(AllowPm::Anyone),
                "archiving" => c.archiving = yes,
                "broadcast" => c.broadcast = v.parse().unwrap_or(7),
                _ => {}
            }
        }
        c
    }
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One affiliation entry: the rank and a registered nick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffEntry {
    pub affiliation: Affiliation,
    pub nick: Option<String>,
    pub reason: String,
}

/// An occupant: one nick, one real bare JID, one or more of its sessions.
#[derive(Debug)]
pub struct Occupant {
    pub nick: String,
    pub real: BareJid,
    /// The real full JIDs joined under this nick (XEP-0045 §7.2.1 allows one user's
    /// several resources to share a nick).
    pub sessions: Vec<FullJid>,
    pub role: Role,
    /// The occupant's last presence as sent to the room (the `<x/>` of the join removed).
    pub presence: Element,
    /// XEP-0421.
    pub occupant_id: String,
    /// Flood control: tokens left and when they were counted.
    pub tokens: f32,
    pub counted: Instant,
}

/// A message kept for the history sent on join (XEP-0045 §7.2.15).
#[derive(Clone, Debug)]
pub struct HistoryItem {
    /// The message as broadcast (from the occupant's room JID, no `to`).
    pub message: Element,
    /// Unix seconds.
    pub at: i64,
    /// Its size serialized, for `maxchars`.
    pub chars: usize,
    /// Its stanza-id in the room's archive, if archived.
    pub archive_id: Option<String>,
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// The localpart.
    pub name: String,
    pub jid: BareJid,
    pub config: RoomConfig,
    /// (nick, text); an empty text is no subject.
    pub subject: (String, String),
    pub affiliations: HashMap<BareJid, AffEntry>,
    pub occupants: Vec<Occupant>,
    /// A new room waits for its owner's configuration (XEP-0045 §10.1).
    pub locked: bool,
    pub history: VecDeque<HistoryItem>,
    pub secret: Vec<u8>,
    /// SHA-1 of the room's vCard PHOTO (XEP-0486), hex.
    pub avatar_hash: Option<String>,
    pub created: i64,
}

impl Room {
    pub fn new(name: &str, jid: BareJid, config: RoomConfig, secret: Vec<u8>) -> Room {
        Room {
            name: name.to_owned(),
            jid,
            config,
            subject: (String::new(), String::new()),
            affiliations: HashMap::new(),
            occupants: Vec::new(),
            locked: false,
            history: VecDeque::new(),
            secret,
            avatar_hash: None,
            created: crate::util::datetime::unix_now(),
        }
    }

    pub fn affiliation(&self, jid: &BareJid) -> Affiliation {
        self.affiliations
            .get(jid)
            .map_or(Affiliation::None, |a| a.affiliation)
    }

    /// The role an occupant with `aff` gets on joining (XEP-0045 §5.1.2).
    pub fn default_role(&self, aff: Affiliation) -> Role {
        match aff {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if self.config.moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    pub fn occupant(&self, nick: &str) -> Option<&Occupant> {
        self.occupants.iter().find(|o| o.nick == nick)
    }

    pub fn occupant_mut(&mut self, nick: &str) -> Option<&mut Occupant> {
        self.occupants.iter_mut().find(|o| o.nick == nick)
    }

    /// The occupant a real full JID is joined as.
    pub fn by_session(&self, real: &FullJid) -> Option<usize> {
        self.occupants
            .iter()
            .position(|o| o.sessions.iter().any(|s| s == real))
    }

    /// The occupant a stanza's sender is joined as (a full JID's session).
    pub fn joined(&self, from: &crate::jid::Jid) -> Option<usize> {
        match from {
            crate::jid::Jid::Full(f) => self.by_session(f),
            crate::jid::Jid::Bare(_) => None,
        }
    }

    pub fn by_real(&self, real: &BareJid) -> Option<usize> {
        self.occupants.iter().position(|o| &o.real == real)
    }

    /// The bare JID a nick is registered to, if any (`muc#register`).
    pub fn nick_owner(&self, nick: &str) -> Option<&BareJid> {
        self.affiliations
            .iter()
            .find(|(_, a)| a.nick.as_deref() == Some(nick))
            .map(|(j, _)| j)
    }

    /// Does an occupant with `role` see real JIDs?
    pub fn sees_real_jids(&self, role: Role) -> bool {
        self.config.whois_anyone || role == Role::Moderator
    }

    /// The XEP-0421 id of a real bare JID in this room: HMAC-SHA-256 under the room's
    /// secret, base64. Stable across rejoins and restarts; unlinkable between rooms.
    pub fn occupant_id(&self, real: &BareJid) -> String {
        use base64::Engine;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        let tag = ring::hmac::sign(&key, real.as_str().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(&tag.as_ref()[..18])
    }

    /// Is the room empty of occupants?
    pub fn is_empty(&self) -> bool {
        self.occupants.is_empty()
    }

    /// The XEP-0045 §15.4 features of this room's configuration.
    pub fn features(&self) -> [&'static str; 6] {
        let c = &self.config;
        [
            if c.persistent {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
            if c.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if c.whois_anyone {
                "muc_nonanonymous"
            } else {
                "muc_semianonymous"
            },
            if c.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
            if c.moderated {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
            if c.public { "muc_public" } else { "muc_hidden" },
        ]
    }

    /// Takes one flood token for occupant `i`: `rate` per second, at most `burst` saved.
    pub fn take_token(&mut self, i: usize, rate: f32, burst: f32) -> bool {
        let o = &mut self.occupants[i];
        let now = Instant::now();
        let gained = now.duration_since(o.counted).as_secs_f32() * rate;
        o.tokens = (o.tokens + gained).min(burst);
        o.counted = now;
        if o.tokens >= 1.0 {
            o.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_storage_and_ignores_unknown_keys() {
        let mut c = RoomConfig::new(50);
        c.name = "Family\nchat \\o/".into();
        c.persistent = true;
        c.members_only = true;
        c.password = Some("pw=1".into());
        c.whois_anyone = true;
        c.allow_pm = AllowPm::Moderators;
        c.broadcast = 6;
        c.max_users = 20;
        let stored = c.to_stored() + "future_key=1\n";
        assert_eq!(RoomConfig::from_stored(&stored, 50), c);
        // The service's limit caps a stored maximum.
        assert_eq!(RoomConfig::from_stored(&stored, 10).max_users, 10);
    }

    #[test]
    fn features_follow_the_configuration() {
        let jid = BareJid::parse("r@g.h").unwrap();
        let mut r = Room::new("r", jid, RoomConfig::new(10), vec![1]);
        assert_eq!(
            r.features(),
            [
                "muc_temporary",
                "muc_open",
                "muc_semianonymous",
                "muc_unsecured",
                "muc_unmoderated",
                "muc_public"
            ]
        );
        r.config.persistent = true;
        r.config.members_only = true;
        r.config.whois_anyone = true;
        r.config.password = Some("x".into());
        r.config.moderated = true;
        r.config.public = false;
        assert_eq!(
            r.features(),
            [
                "muc_persistent",
                "muc_membersonly",
                "muc_nonanonymous",
                "muc_passwordprotected",
                "muc_moderated",
                "muc_hidden"
            ]
        );
    }

    #[test]
    fn occupant_ids_are_stable_per_room_and_differ_between_rooms() {
        let a = Room::new(
            "a",
            BareJid::parse("a@g.h").unwrap(),
            RoomConfig::new(10),
            vec![1; 16],
        );
        let b = Room::new(
            "b",
            BareJid::parse("b@g.h").unwrap(),
            RoomConfig::new(10),
            vec![2; 16],
        );
        let mom = BareJid::parse("mom@h").unwrap();
        assert_eq!(a.occupant_id(&mom), a.occupant_id(&mom));
        assert_ne!(a.occupant_id(&mom), b.occupant_id(&mom));
        assert_ne!(
            a.occupant_id(&mom),
            a.occupant_id(&BareJid::parse("dad@h").unwrap())
        );
    }

    #[test]
    fn roles_and_pm_rules() {
        let mut r = Room::new(
            "r",
            BareJid::parse("r@g.h").unwrap(),
            RoomConfig::new(10),
            vec![1],
        );
        assert_eq!(r.default_role(Affiliation::Owner), Role::Moderator);
        assert_eq!(r.default_role(Affiliation::None), Role::Participant);
        r.config.moderated = true;
        assert_eq!(r.default_role(Affiliation::None), Role::Visitor);
        assert_eq!(r.default_role(Affiliation::Member), Role::Participant);
        assert!(AllowPm::Anyone.allows(Role::Visitor));
        assert!(!AllowPm::Participants.allows(Role::Visitor));
        assert!(!AllowPm::Moderators.allows(Role::Participant));
        assert!(!AllowPm::Nobody.allows(Role::Moderator));
    }
}
