//! Circles: a named group of this server's accounts who see each other. Each member has
//! every other member in the roster (subscription `both`, in a roster group named after
//! the circle) and is a member of the circle's members-only group chat room
//! (`name@groups.<domain>`, persistent, hidden), with an autojoin XEP-0402 bookmark. The
//! server's admins own every circle's room. The family room (`--family-room`) is the
//! default circle, marked `everyone`: every account is in it.
//!
//! Everything here works on a database connection inside the caller's transaction, so the
//! command line (`roost circle …`, `adduser`, `role`) and the server (in-band registration,
//! ad-hoc commands) share it. What a running server must hear of is collected in
//! [`Notices`]: another process writes them to the `kicks` table
//! ([`Notices::write_kicks`]), the server process applies them itself ([`Notices::apply`]:
//! roster pushes, room reloads, role cache).
//!
//! Leaving a circle takes the circle's roster group off the two members' items, and the
//! items themselves when the two share no other circle; the room membership (unless the
//! account is an admin, who owns every circle room) and the bookmark go too.

use crate::muc::family;
use crate::muc::room::RoomConfig;
use crate::router::Core;
use crate::storage::accounts::{self, Role};
use crate::storage::kicks::{self, Reason};
use crate::storage::muc::{self as store, StoredAffiliation, StoredRoom};
use crate::storage::roster::{self, Item};
use crate::storage::StorageError;
use crate::subscription::State;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Most circles on one server.
pub const MAX_CIRCLES: usize = 100;

/// A circle as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circle {
    /// The room's localpart; how commands name the circle.
    pub name: String,
    /// The roster group and the room's title.
    pub title: String,
    /// The group chat service's domain.
    pub room_host: String,
    /// The default circle: every account is a member.
    pub everyone: bool,
    /// Usernames, sorted.
    pub members: Vec<String>,
}

impl Circle {
    pub fn room_jid(&self) -> String {
        format!("{}@{}", self.name, self.room_host)
    }
}

/// Why a circle operation did not happen.
#[derive(Debug)]
pub enum CircleError {
    /// A circle by that name exists.
    Exists(String),
    /// No circle by that name; the known ones.
    NotFound(String, Vec<String>),
    NoSuchAccount(String),
    /// A bad name, or too many circles.
    Invalid(String),
    Storage(StorageError),
}

impl std::fmt::Display for CircleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CircleError::Exists(n) => write!(f, "there is a circle {n} already"),
            CircleError::NotFound(n, known) => write!(
                f,
                "no circle {n}; the circles are: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
            CircleError::NoSuchAccount(j) => write!(f, "{j}: no such account"),
            CircleError::Invalid(why) => f.write_str(why),
            CircleError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl From<StorageError> for CircleError {
    fn from(e: StorageError) -> CircleError {
        CircleError::Storage(e)
    }
}

impl From<rusqlite::Error> for CircleError {
    fn from(e: rusqlite::Error) -> CircleError {
        CircleError::Storage(e.into())
    }
}

/// What a running server must be told of a change.
#[derive(Debug, Default)]
pub struct Notices {
    /// The server's domain.
    pub host: String,
    /// Accounts whose role changed.
    pub roles: BTreeSet<String>,
    /// (account, contact JID): roster items changed.
    pub rosters: BTreeSet<(String, String)>,
    /// (service domain, room): rooms whose members changed, or that were removed.
    pub rooms: BTreeSet<(String, String)>,
}

impl Notices {
    pub fn new(host: &str) -> Notices {
        Notices {
            host: host.to_owned(),
            ..Notices::default()
        }
    }

    /// For another process (the command line): rows in `kicks` for the server's watcher.
    pub fn write_kicks(&self, conn: &Connection) -> Result<(), StorageError> {
        for user in &self.roles {
            kicks::request(conn, &self.host, user, Reason::Role)?;
        }
        for (user, contact) in &self.rosters {
            kicks::request_with(conn, &self.host, user, Reason::Roster, contact)?;
        }
        for (muc_host, room) in &self.rooms {
            kicks::request(conn, muc_host, room, Reason::Room)?;
        }
        Ok(())
    }

    /// In the server process, after the transaction committed: reloads the roles, pushes
    /// the roster items to the accounts' clients, reloads the rooms.
    pub async fn apply(self, core: &Arc<Core>) {
        for user in &self.roles {
            crate::roles::reload(core, user).await;
        }
        for (user, contact) in &self.rosters {
            push_roster(core, user, contact).await;
        }
        if let Some(muc) = core.state::<crate::muc::Handle>().0.get() {
            for (muc_host, room) in &self.rooms {
                if *muc_host == muc.domain {
                    muc.reload_affiliations(core, room).await;
                }
            }
        }
    }
}

/// Pushes `user`'s roster item for `contact` as stored now (its removal if it is gone) to
/// the account's interested resources (RFC 6121 §2.1.6).
pub async fn push_roster(core: &Arc<Core>, user: &str, contact: &str) {
    let Ok(account) = crate::jid::BareJid::new(Some(user), &core.domain) else {
        return;
    };
    if core.sessions.resources(&account).is_empty() {
        return;
    }
    let host = core.domain.clone();
    let (u, c) = (user.to_owned(), contact.to_owned());
    let stored = core
        .storage
        .call(move |conn| {
            Ok((
                roster::item(conn, &host, &u, &c)?,
                roster::version(conn, &host, &u)?,
            ))
        })
        .await;
    match stored {
        Ok((Some(item), version)) => {
            crate::modules::roster::push_item(core, &account, &item, version);
            if item.state.is_to() {
                send_presence_of(core, &account, contact);
            }
        }
        Ok((None, version)) => {
            let mut gone = Item::new(contact);
            gone.in_roster = false;
            crate::modules::roster::push_item(core, &account, &gone, version)
        }
        Err(e) => log::error!("roster push to {account}: {e}"),
    }
}

/// The current presence of `contact`'s available resources (a local account) to
/// `account`'s available ones: a new circle member shows online at once, as after a
/// subscription approval (RFC 6121 §3.1.5).
fn send_presence_of(core: &Arc<Core>, account: &crate::jid::BareJid, contact: &str) {
    let Ok(contact) = crate::jid::BareJid::parse(contact) else {
        return;
    };
    if contact.domain() != core.domain {
        return;
    }
    for r in core.sessions.available(&contact) {
        if let Some(p) = &r.presence {
            let mut p = (**p).clone();
            p.set_attr("from", r.handle.jid.as_str());
            p.set_attr("to", account.as_str());
            crate::router::send_to(core, p);
        }
    }
}

/// A circle's name as commands give it ("Cousins", "the cousins") made into the room's
/// localpart ("cousins", "the-cousins").
pub fn slug(name: &str) -> Result<String, CircleError> {
    let lowered: String = name
        .trim()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-");
    let bad = || {
        CircleError::Invalid(format!(
            "{name}: a circle's name is a word or a few, without @ / \" & ' : < >"
        ))
    };
    if lowered.is_empty() || lowered.len() > 64 {
        return Err(bad());
    }
    crate::jid::nodeprep(&lowered).map_err(|_| bad())
}

/// The group chat service's domain: the one the server last ran with, or `groups.<host>`.
pub fn room_host(conn: &Connection, host: &str) -> Result<String, StorageError> {
    Ok(store::meta(conn, family::META_MUC_DOMAIN)?.unwrap_or_else(|| format!("groups.{host}")))
}

fn members(conn: &Connection, host: &str, name: &str) -> Result<Vec<String>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT username FROM circle_members WHERE host = ?1 AND circle = ?2 ORDER BY username",
    )?;
    let rows = st.query_map(params![host, name], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The circle `name` (a name as given, or its slug), with its members.
pub fn get(conn: &Connection, host: &str, name: &str) -> Result<Option<Circle>, CircleError> {
    let name = slug(name)?;
    let row: Option<(String, String, bool)> = conn
        .query_row(
            "SELECT title, room_host, everyone FROM circles WHERE host = ?1 AND name = ?2",
            params![host, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((title, room_host, everyone)) = row else {
        return Ok(None);
    };
    Ok(Some(Circle {
        members: members(conn, host, &name)?,
        name,
        title,
        room_host,
        everyone,
    }))
}

/// [`get`], or `NotFound` naming the circles there are.
fn existing(conn: &Connection, host: &str, name: &str) -> Result<Circle, CircleError> {
    match get(conn, host, name)? {
        Some(c) => Ok(c),
        None => Err(CircleError::NotFound(
            name.to_owned(),
            list(conn, host)?.into_iter().map(|c| c.name).collect(),
        )),
    }
}

/// Every circle of `host` with its members, sorted by name.
pub fn list(conn: &Connection, host: &str) -> Result<Vec<Circle>, StorageError> {
    let mut st = conn.prepare(
        "SELECT name, title, room_host, everyone FROM circles WHERE host = ?1 ORDER BY name",
    )?;
    let rows: Vec<(String, String, String, bool)> = st
        .query_map(params![host], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, title, room_host, everyone) in rows {
        out.push(Circle {
            members: members(conn, host, &name)?,
            name,
            title,
            room_host,
            everyone,
        });
    }
    Ok(out)
}

/// The names of the circles `user` is in.
pub fn circles_of(conn: &Connection, host: &str, user: &str) -> Result<Vec<String>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT circle FROM circle_members WHERE host = ?1 AND username = ?2 ORDER BY circle",
    )?;
    let rows = st.query_map(params![host, user], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A circle room's configuration.
pub fn room_config(title: &str) -> RoomConfig {
    RoomConfig {
        name: title.to_owned(),
        description: String::new(),
        ..family::family_config(usize::MAX)
    }
}

/// Sets `jid`'s affiliation with a stored room.
fn set_affiliation(
    conn: &Connection,
    room_host: &str,
    room: &str,
    jid: &str,
    affiliation: &str,
) -> Result<(), StorageError> {
    let nick = store::affiliations(conn, room_host, room)?
        .into_iter()
        .find(|a| a.jid == jid)
        .and_then(|a| a.nick);
    store::set_affiliation(
        conn,
        room_host,
        room,
        &StoredAffiliation {
            jid: jid.to_owned(),
            affiliation: affiliation.to_owned(),
            nick,
            reason: String::new(),
        },
    )
}

/// Makes a circle named `name` (its title as given, its room's localpart [`slug`]ged),
/// with its room; `everyone`: the default circle, which every account joins now and
/// later. An existing room of that name is kept (the family room of an older roost).
pub fn create(
    conn: &Connection,
    host: &str,
    name: &str,
    everyone: bool,
    notices: &mut Notices,
) -> Result<Circle, CircleError> {
    let slugged = slug(name)?;
    if get(conn, host, &slugged)?.is_some() {
        return Err(CircleError::Exists(slugged));
    }
    if list(conn, host)?.len() >= MAX_CIRCLES {
        return Err(CircleError::Invalid(format!(
            "there are {MAX_CIRCLES} circles already, the most allowed"
        )));
    }
    let title = name.trim().to_owned();
    let room_host = room_host(conn, host)?;
    if !store::exists(conn, &room_host, &slugged)? {
        let mut secret = vec![0u8; 16];
        crate::util::random(&mut secret);
        store::save_room(
            conn,
            &room_host,
            &StoredRoom {
                name: slugged.clone(),
                config: room_config(&title).to_stored(),
                subject: String::new(),
                subject_nick: String::new(),
                secret,
                created: crate::util::datetime::unix_now(),
            },
        )?;
    }
    conn.execute(
        "INSERT INTO circles (host, name, title, room_host, everyone, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            host,
            slugged,
            title,
            room_host,
            everyone,
            crate::util::datetime::unix_now()
        ],
    )?;
    for (admin, role) in accounts::special_roles(conn, host)? {
        if role == Role::Admin {
            set_affiliation(
                conn,
                &room_host,
                &slugged,
                &format!("{admin}@{host}"),
                "owner",
            )?;
        }
    }
    notices.rooms.insert((room_host.clone(), slugged.clone()));
    if everyone {
        for (user, _) in accounts::with_roles(conn, host)? {
            join(conn, host, &slugged, &user, notices)?;
        }
    }
    existing(conn, host, &slugged)
}

/// Removes a circle: every member leaves it (roster items, bookmark), and its room goes
/// (occupants of a running server's room are told it was destroyed).
pub fn remove(
    conn: &Connection,
    host: &str,
    name: &str,
    notices: &mut Notices,
) -> Result<Circle, CircleError> {
    let circle = existing(conn, host, name)?;
    for user in &circle.members {
        leave(conn, host, &circle.name, user, notices)?;
    }
    conn.execute(
        "DELETE FROM circles WHERE host = ?1 AND name = ?2",
        params![host, circle.name],
    )?;
    store::delete_room(conn, &circle.room_host, &circle.name)?;
    notices
        .rooms
        .insert((circle.room_host.clone(), circle.name.clone()));
    Ok(circle)
}

/// Puts `contact` in `user`'s roster with subscription `both`, in `group`.
fn link(
    conn: &Connection,
    host: &str,
    user: &str,
    contact: &str,
    group: &str,
    notices: &mut Notices,
) -> Result<(), StorageError> {
    let jid = format!("{contact}@{host}");
    let mut item = roster::item(conn, host, user, &jid)?.unwrap_or_else(|| Item::new(&jid));
    let before = item.clone();
    item.state = State::Both;
    item.in_roster = true;
    item.request = None;
    item.approved = false;
    if !item.groups.iter().any(|g| g == group) {
        item.groups.push(group.to_owned());
    }
    if item != before {
        roster::put(conn, host, user, &item)?;
        notices.rosters.insert((user.to_owned(), jid));
    }
    Ok(())
}

/// Takes `group` off `user`'s item for `contact`; the item goes when the two share no
/// other circle.
fn unlink(
    conn: &Connection,
    host: &str,
    user: &str,
    contact: &str,
    group: &str,
    notices: &mut Notices,
) -> Result<(), StorageError> {
    let jid = format!("{contact}@{host}");
    let Some(mut item) = roster::item(conn, host, user, &jid)? else {
        return Ok(());
    };
    let shared: i64 = conn.query_row(
        "SELECT count(*) FROM circle_members a JOIN circle_members b
             ON a.host = b.host AND a.circle = b.circle
         WHERE a.host = ?1 AND a.username = ?2 AND b.username = ?3",
        params![host, user, contact],
        |r| r.get(0),
    )?;
    if shared == 0 {
        roster::remove(conn, host, user, &jid)?;
    } else {
        item.groups.retain(|g| g != group);
        roster::put(conn, host, user, &item)?;
    }
    notices.rosters.insert((user.to_owned(), jid));
    Ok(())
}

/// Makes `user` (an account of `host`) a member of circle `name`: the other members in
/// its roster and it in theirs, a member of the room, with the bookmark. Joining a circle
/// one is in changes nothing.
pub fn join(
    conn: &Connection,
    host: &str,
    name: &str,
    user: &str,
    notices: &mut Notices,
) -> Result<(), CircleError> {
    let circle = existing(conn, host, name)?;
    let Some(role) = accounts::role(conn, host, user)? else {
        return Err(CircleError::NoSuchAccount(format!("{user}@{host}")));
    };
    if circle.members.iter().any(|m| m == user) {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO circle_members (host, circle, username) VALUES (?1, ?2, ?3)",
        params![host, circle.name, user],
    )?;
    for other in &circle.members {
        link(conn, host, user, other, &circle.title, notices)?;
        link(conn, host, other, user, &circle.title, notices)?;
    }
    let jid = format!("{user}@{host}");
    if store::exists(conn, &circle.room_host, &circle.name)? {
        if role == Role::Admin {
            set_affiliation(conn, &circle.room_host, &circle.name, &jid, "owner")?;
        } else {
            family::add_member(conn, &circle.room_host, &circle.name, &jid)?;
        }
        family::bookmark(conn, host, user, &circle.room_jid(), &circle.title, true)?;
        notices
            .rooms
            .insert((circle.room_host.clone(), circle.name.clone()));
    }
    Ok(())
}

/// Takes `user` out of circle `name`: roster items (see the module's notes), room
/// membership (admins stay owners) and bookmark. Leaving a circle one is not in changes
/// nothing.
pub fn leave(
    conn: &Connection,
    host: &str,
    name: &str,
    user: &str,
    notices: &mut Notices,
) -> Result<(), CircleError> {
    let circle = existing(conn, host, name)?;
    if !circle.members.iter().any(|m| m == user) {
        return Ok(());
    }
    conn.execute(
        "DELETE FROM circle_members WHERE host = ?1 AND circle = ?2 AND username = ?3",
        params![host, circle.name, user],
    )?;
    for other in circle.members.iter().filter(|m| *m != user) {
        unlink(conn, host, user, other, &circle.title, notices)?;
        unlink(conn, host, other, user, &circle.title, notices)?;
    }
    let jid = format!("{user}@{host}");
    if store::exists(conn, &circle.room_host, &circle.name)? {
        let admin = accounts::role(conn, host, user)? == Some(Role::Admin);
        if !admin {
            set_affiliation(conn, &circle.room_host, &circle.name, &jid, "none")?;
        }
        family::unbookmark(conn, host, user, &circle.room_jid())?;
        notices
            .rooms
            .insert((circle.room_host.clone(), circle.name.clone()));
    }
    Ok(())
}

/// Changes an account's role: admins own every circle's room; an account that stops
/// being one is a member of its circles' rooms only.
pub fn set_role(
    conn: &Connection,
    host: &str,
    user: &str,
    role: Role,
    notices: &mut Notices,
) -> Result<(), CircleError> {
    match accounts::set_role(conn, host, user, role) {
        Ok(()) => {}
        Err(accounts::AccountError::NotFound) => {
            return Err(CircleError::NoSuchAccount(format!("{user}@{host}")))
        }
        Err(accounts::AccountError::Storage(e)) => return Err(e.into()),
        Err(e) => return Err(CircleError::Invalid(e.to_string())),
    }
    notices.roles.insert(user.to_owned());
    let jid = format!("{user}@{host}");
    for circle in list(conn, host)? {
        if !store::exists(conn, &circle.room_host, &circle.name)? {
            continue;
        }
        let affiliation = if role == Role::Admin {
            "owner"
        } else if circle.members.iter().any(|m| m == user) {
            "member"
        } else {
            "none"
        };
        set_affiliation(conn, &circle.room_host, &circle.name, &jid, affiliation)?;
        notices.rooms.insert((circle.room_host, circle.name));
    }
    Ok(())
}

/// A new account (`roost adduser`, in-band registration, an admin's ad-hoc command):
/// its role, the default circle(s) and, if given, one more circle. Call it in the
/// transaction that creates the account; then apply or write the notices.
pub fn account_added(
    conn: &Connection,
    host: &str,
    user: &str,
    role: Role,
    circle: Option<&str>,
    notices: &mut Notices,
) -> Result<(), CircleError> {
    if role != Role::Normal {
        set_role(conn, host, user, role, notices)?;
    }
    let everyone: Vec<String> = list(conn, host)?
        .into_iter()
        .filter(|c| c.everyone)
        .map(|c| c.name)
        .collect();
    for name in everyone {
        join(conn, host, &name, user, notices)?;
    }
    if let Some(name) = circle {
        join(conn, host, name, user, notices)?;
    }
    Ok(())
}

/// For in-band registration (helper `invite`), in the storage thread right after
/// `accounts::create`, in the same transaction: role, default circles and the invite's
/// circle. Apply the returned notices with [`Notices::apply`] once committed.
pub fn on_register(
    conn: &Connection,
    host: &str,
    user: &str,
    role: Role,
    circle: Option<&str>,
) -> Result<Notices, CircleError> {
    let mut notices = Notices::new(host);
    account_added(conn, host, user, role, circle, &mut notices)?;
    Ok(notices)
}

/// The family room as the default circle: made once, when the server first runs with
/// group chats (`family::ensure`), or on the first start of this version with a family
/// room made by an older one.
pub fn ensure_family(
    conn: &Connection,
    host: &str,
    name: &str,
    notices: &mut Notices,
) -> Result<(), CircleError> {
    if get(conn, host, name)?.is_some() {
        return Ok(());
    }
    create(conn, host, name, true, notices)?;
    // "family" → "Family": the roster group and room title the family room always had.
    let mut title: Vec<char> = name.chars().collect();
    if let Some(c) = title.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    let title: String = title.into_iter().collect();
    if title != name {
        retitle(conn, host, name, &title)?;
    }
    Ok(())
}

/// Renames a circle's title (before it has members: the roster groups are not rewritten).
fn retitle(conn: &Connection, host: &str, name: &str, title: &str) -> Result<(), CircleError> {
    conn.execute(
        "UPDATE circles SET title = ?3 WHERE host = ?1 AND name = ?2",
        params![host, slug(name)?, title],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::StoredCredentials;

    fn add(c: &Connection, user: &str) {
        let creds = StoredCredentials::derive("pw", 4096);
        accounts::create(c, "h", user, &creds).unwrap();
    }

    fn contacts(c: &Connection, user: &str) -> Vec<(String, String, Vec<String>)> {
        roster::items(c, "h", user)
            .unwrap()
            .into_iter()
            .map(|i| (i.contact, i.state.subscription().to_owned(), i.groups))
            .collect()
    }

    #[test]
    fn members_see_each_other_and_leave_cleanly() {
        let c = crate::storage::test_db();
        for u in ["mom", "dad", "kid"] {
            add(&c, u);
        }
        let mut n = Notices::new("h");
        let circle = create(&c, "h", "The Cousins", false, &mut n).unwrap();
        assert_eq!(circle.name, "the-cousins");
        assert!(matches!(
            create(&c, "h", "the cousins", false, &mut n),
            Err(CircleError::Exists(_))
        ));
        join(&c, "h", "the-cousins", "mom", &mut n).unwrap();
        join(&c, "h", "The Cousins", "dad", &mut n).unwrap();
        join(&c, "h", "the-cousins", "kid", &mut n).unwrap();
        assert!(matches!(
            join(&c, "h", "the-cousins", "nobody", &mut n),
            Err(CircleError::NoSuchAccount(_))
        ));
        let g = vec!["The Cousins".to_string()];
        assert_eq!(
            contacts(&c, "mom"),
            vec![
                ("dad@h".into(), "both".into(), g.clone()),
                ("kid@h".into(), "both".into(), g.clone())
            ]
        );
        let affs = store::affiliations(&c, "groups.h", "the-cousins").unwrap();
        assert_eq!(affs.iter().filter(|a| a.affiliation == "member").count(), 3);
        assert!(n.rosters.contains(&("mom".into(), "kid@h".into())));
        // Two circles shared: leaving one keeps the item, without that group.
        create(&c, "h", "parents", false, &mut n).unwrap();
        join(&c, "h", "parents", "mom", &mut n).unwrap();
        join(&c, "h", "parents", "dad", &mut n).unwrap();
        leave(&c, "h", "the-cousins", "dad", &mut n).unwrap();
        assert_eq!(
            contacts(&c, "mom"),
            vec![
                ("dad@h".into(), "both".into(), vec!["parents".to_string()]),
                ("kid@h".into(), "both".into(), g.clone())
            ]
        );
        assert_eq!(
            contacts(&c, "kid"),
            vec![("mom@h".into(), "both".into(), g)]
        );
        let dad = store::affiliations(&c, "groups.h", "the-cousins").unwrap();
        assert!(dad
            .iter()
            .all(|a| a.jid != "dad@h" || a.affiliation == "none"));
        // Removing the circle empties it.
        remove(&c, "h", "the-cousins", &mut n).unwrap();
        assert!(contacts(&c, "kid").is_empty());
        assert!(!store::exists(&c, "groups.h", "the-cousins").unwrap());
        assert_eq!(
            list(&c, "h")
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            vec!["parents".to_string()]
        );
    }

    #[test]
    fn admins_own_the_rooms_and_everyone_circles_take_new_accounts() {
        let c = crate::storage::test_db();
        add(&c, "mom");
        let mut n = Notices::new("h");
        set_role(&c, "h", "mom", Role::Admin, &mut n).unwrap();
        ensure_family(&c, "h", "family", &mut n).unwrap();
        let fam = get(&c, "h", "family").unwrap().unwrap();
        assert_eq!((fam.title.as_str(), fam.everyone), ("Family", true));
        assert_eq!(fam.members, vec!["mom".to_string()]);
        add(&c, "kid");
        let n2 = on_register(&c, "h", "kid", Role::Limited, None).unwrap();
        assert!(n2.roles.contains("kid"));
        assert_eq!(accounts::role(&c, "h", "kid").unwrap(), Some(Role::Limited));
        assert_eq!(
            contacts(&c, "kid"),
            vec![("mom@h".into(), "both".into(), vec!["Family".to_string()])]
        );
        let affs = store::affiliations(&c, "groups.h", "family").unwrap();
        let aff = |j: &str| {
            affs.iter()
                .find(|a| a.jid == j)
                .map(|a| a.affiliation.clone())
        };
        assert_eq!(aff("mom@h").as_deref(), Some("owner"));
        assert_eq!(aff("kid@h").as_deref(), Some("member"));
        set_role(&c, "h", "mom", Role::Normal, &mut n).unwrap();
        let affs = store::affiliations(&c, "groups.h", "family").unwrap();
        assert!(affs
            .iter()
            .any(|a| a.jid == "mom@h" && a.affiliation == "member"));
        assert!(slug("a@b").is_err() && slug("  ").is_err());
    }
}
