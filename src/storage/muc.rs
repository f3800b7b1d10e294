//! Group chats (XEP-0045): persistent rooms and their affiliations (with registered nicks).
//! A room's archive and vCard are kept in `archive` and `vcard` under the key
//! (service domain, room name), like an account's; deleting a room deletes them too.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension};

/// A persistent room as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRoom {
    /// The room's localpart.
    pub name: String,
    /// Its configuration, `key=value` lines (see `muc::room::RoomConfig`).
    pub config: String,
    pub subject: String,
    pub subject_nick: String,
    /// The per-room secret of XEP-0421 occupant ids.
    pub secret: Vec<u8>,
    /// Unix seconds.
    pub created: i64,
}

/// One affiliation row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAffiliation {
    /// A bare JID.
    pub jid: String,
    /// `owner`, `admin`, `member`, `outcast` or `none` (a registered nick only).
    pub affiliation: String,
    /// The registered nick (`muc#register`).
    pub nick: Option<String>,
    pub reason: String,
}

/// Every persistent room of the service at `host`.
pub fn rooms(conn: &Connection, host: &str) -> Result<Vec<StoredRoom>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT name, config, subject, subject_nick, secret, created FROM muc_rooms
         WHERE host = ?1 ORDER BY name",
    )?;
    let rows = st.query_map(params![host], |r| {
        Ok(StoredRoom {
            name: r.get(0)?,
            config: r.get(1)?,
            subject: r.get(2)?,
            subject_nick: r.get(3)?,
            secret: r.get(4)?,
            created: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Does the persistent room exist?
pub fn exists(conn: &Connection, host: &str, name: &str) -> Result<bool, StorageError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM muc_rooms WHERE host = ?1 AND name = ?2")?
        .query_row(params![host, name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Stores (or replaces) a room's row; its affiliations are kept.
pub fn save_room(conn: &Connection, host: &str, room: &StoredRoom) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO muc_rooms (host, name, config, subject, subject_nick, secret, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (host, name) DO UPDATE SET config = excluded.config,
             subject = excluded.subject, subject_nick = excluded.subject_nick",
    )?
    .execute(params![
        host,
        room.name,
        room.config,
        room.subject,
        room.subject_nick,
        room.secret,
        room.created
    ])?;
    Ok(())
}

/// Deletes a room with its affiliations, archive and vCard.
pub fn delete_room(conn: &Connection, host: &str, name: &str) -> Result<(), StorageError> {
    for sql in [
        "DELETE FROM muc_rooms WHERE host = ?1 AND name = ?2",
        "DELETE FROM muc_affiliations WHERE host = ?1 AND room = ?2",
        "DELETE FROM archive WHERE host = ?1 AND username = ?2",
        "DELETE FROM vcard WHERE host = ?1 AND username = ?2",
    ] {
        conn.prepare_cached(sql)?.execute(params![host, name])?;
    }
    Ok(())
}

/// Forgets a room's configuration and affiliations but keeps its archive (a persistent
/// room made temporary: it lives on in memory until it empties).
pub fn forget_room_rows(conn: &Connection, host: &str, name: &str) -> Result<(), StorageError> {
    for sql in [
        "DELETE FROM muc_rooms WHERE host = ?1 AND name = ?2",
        "DELETE FROM muc_affiliations WHERE host = ?1 AND room = ?2",
    ] {
        conn.prepare_cached(sql)?.execute(params![host, name])?;
    }
    Ok(())
}

/// A room's affiliations, by JID.
pub fn affiliations(
    conn: &Connection,
    host: &str,
    room: &str,
) -> Result<Vec<StoredAffiliation>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT jid, affiliation, nick, reason FROM muc_affiliations
         WHERE host = ?1 AND room = ?2 ORDER BY jid",
    )?;
    let rows = st.query_map(params![host, room], |r| {
        Ok(StoredAffiliation {
            jid: r.get(0)?,
            affiliation: r.get(1)?,
            nick: r.get(2)?,
            reason: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets one affiliation; `none` without a registered nick removes the row.
pub fn set_affiliation(
    conn: &Connection,
    host: &str,
    room: &str,
    a: &StoredAffiliation,
) -> Result<(), StorageError> {
    if a.affiliation == "none" && a.nick.is_none() {
        conn.prepare_cached(
            "DELETE FROM muc_affiliations WHERE host = ?1 AND room = ?2 AND jid = ?3",
        )?
        .execute(params![host, room, a.jid])?;
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO muc_affiliations (host, room, jid, affiliation, nick, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![host, room, a.jid, a.affiliation, a.nick, a.reason])?;
    Ok(())
}

/// Removes every affiliation and registered nick of `jid` (an account being deleted);
/// returns the rooms it was in, as (service domain, room).
pub fn forget_jid(conn: &Connection, jid: &str) -> Result<Vec<(String, String)>, StorageError> {
    let mut st = conn.prepare_cached("SELECT host, room FROM muc_affiliations WHERE jid = ?1")?;
    let rooms = st
        .query_map(params![jid], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    conn.prepare_cached("DELETE FROM muc_affiliations WHERE jid = ?1")?
        .execute(params![jid])?;
    Ok(rooms)
}

/// A server-wide setting from the `meta` table.
pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?)
}

/// Sets (or with `None` removes) a server-wide setting.
pub fn set_meta(conn: &Connection, key: &str, value: Option<&str>) -> Result<(), StorageError> {
    match value {
        Some(v) => conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, v],
        )?,
        None => conn.execute("DELETE FROM meta WHERE key = ?1", params![key])?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> StoredRoom {
        StoredRoom {
            name: name.into(),
            config: "persistent=1".into(),
            subject: String::new(),
            subject_nick: String::new(),
            secret: vec![1, 2, 3],
            created: 7,
        }
    }

    fn aff(jid: &str, a: &str, nick: Option<&str>) -> StoredAffiliation {
        StoredAffiliation {
            jid: jid.into(),
            affiliation: a.into(),
            nick: nick.map(str::to_owned),
            reason: String::new(),
        }
    }

    #[test]
    fn rooms_and_affiliations_round_trip_and_go_with_the_room_or_the_jid() {
        let c = super::super::test_db();
        save_room(&c, "g.h", &room("family")).unwrap();
        save_room(&c, "g.h", &room("kids")).unwrap();
        let mut changed = room("family");
        changed.subject = "dinner".into();
        changed.secret = vec![9];
        save_room(&c, "g.h", &changed).unwrap();
        let all = rooms(&c, "g.h").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].subject, "dinner");
        // The secret never changes once stored: occupant ids stay stable.
        assert_eq!(all[0].secret, vec![1, 2, 3]);
        set_affiliation(&c, "g.h", "family", &aff("mom@h", "owner", None)).unwrap();
        set_affiliation(&c, "g.h", "family", &aff("kid@h", "member", Some("kiddo"))).unwrap();
        set_affiliation(&c, "g.h", "kids", &aff("kid@h", "member", None)).unwrap();
        assert_eq!(affiliations(&c, "g.h", "family").unwrap().len(), 2);
        set_affiliation(&c, "g.h", "family", &aff("mom@h", "none", None)).unwrap();
        assert_eq!(affiliations(&c, "g.h", "family").unwrap().len(), 1);
        let mut gone = forget_jid(&c, "kid@h").unwrap();
        gone.sort();
        assert_eq!(
            gone,
            vec![
                ("g.h".to_owned(), "family".to_owned()),
                ("g.h".to_owned(), "kids".to_owned())
            ]
        );
        assert!(affiliations(&c, "g.h", "kids").unwrap().is_empty());
        set_affiliation(&c, "g.h", "kids", &aff("mom@h", "owner", None)).unwrap();
        delete_room(&c, "g.h", "kids").unwrap();
        assert!(!exists(&c, "g.h", "kids").unwrap());
        assert!(affiliations(&c, "g.h", "kids").unwrap().is_empty());
        assert!(exists(&c, "g.h", "family").unwrap());
    }
}
