//! The family room: one persistent, members-only, non-anonymous room made at first start
//! (`family@groups.<domain>` unless `--family-room` names it otherwise), with every account
//! a member and an autojoin XEP-0402 bookmark in every account's bookmarks, so a new
//! family member's app shows it at first login. `roost adduser` adds to it, `roost deluser`
//! takes out; `roost room-add`/`room-remove` change the members of any stored room. All of
//! it works on a database connection, so the command line does it while the server runs
//! (which hears of it through `storage::kicks` and reloads the room).

use super::room::RoomConfig;
use crate::stanza::bookmarks::{self, Bookmark};
use crate::stanza::pubsub::{AccessModel, ItemLimit, NodeConfig, SendLast};
use crate::storage::kicks::{self, Reason};
use crate::storage::muc::{self as store, StoredAffiliation, StoredRoom};
use crate::storage::pep::{self, StoredItem};
use crate::storage::StorageError;
use rusqlite::Connection;

/// `meta` keys: the group chat service's domain, the family room's JID.
pub const META_MUC_DOMAIN: &str = "muc_domain";
pub const META_FAMILY: &str = "family_room";

/// The family room's configuration.
pub fn family_config(max_users: usize) -> RoomConfig {
    RoomConfig {
        name: "Family".into(),
        description: "Everyone in the family".into(),
        persistent: true,
        public: false,
        members_only: true,
        whois_anyone: true,
        archiving: true,
        allow_invites: false,
        ..RoomConfig::new(max_users)
    }
}

/// Creates the family room once (the first start with group chats on), with every
/// account of `server` a member and bookmarked.
pub fn ensure(
    conn: &Connection,
    server: &str,
    muc_host: &str,
    name: &str,
) -> Result<(), StorageError> {
    if store::meta(conn, META_FAMILY)?.is_some() {
        return Ok(());
    }
    let jid = format!("{name}@{muc_host}");
    if !store::exists(conn, muc_host, name)? {
        let mut secret = vec![0u8; 16];
        crate::util::random(&mut secret);
        store::save_room(
            conn,
            muc_host,
            &StoredRoom {
                name: name.to_owned(),
                config: family_config(usize::MAX).to_stored(),
                subject: String::new(),
                subject_nick: String::new(),
                secret,
                created: crate::util::datetime::unix_now(),
            },
        )?;
    }
    let accounts = crate::storage::accounts::list(conn)?;
    for (host, user) in accounts.iter().filter(|(h, _)| h == server) {
        add_member(conn, muc_host, name, &format!("{user}@{host}"))?;
        bookmark(conn, host, user, &jid, "Family", true)?;
    }
    store::set_meta(conn, META_FAMILY, Some(&jid))?;
    log::info!(
        "group chats: created the family room {jid} with {} member(s)",
        accounts.len()
    );
    Ok(())
}

/// Makes `jid` a member (keeping a higher affiliation and a registered nick).
pub fn add_member(
    conn: &Connection,
    host: &str,
    room: &str,
    jid: &str,
) -> Result<(), StorageError> {
    let current = store::affiliations(conn, host, room)?
        .into_iter()
        .find(|a| a.jid == jid);
    let (affiliation, nick, reason) = match current {
        Some(a) if matches!(a.affiliation.as_str(), "owner" | "admin" | "member") => return Ok(()),
        Some(a) => ("member".to_owned(), a.nick, a.reason),
        None => ("member".to_owned(), None, String::new()),
    };
    store::set_affiliation(
        conn,
        host,
        room,
        &StoredAffiliation {
            jid: jid.to_owned(),
            affiliation,
            nick,
            reason,
        },
    )
}

/// The room bookmark (XEP-0402) in an account's PEP bookmarks node, creating the node
/// with the configuration XEP-0402 §3.2 asks for. Clients subscribed to the node see it
/// at their next login.
pub fn bookmark(
    conn: &Connection,
    host: &str,
    user: &str,
    room_jid: &str,
    name: &str,
    autojoin: bool,
) -> Result<(), StorageError> {
    if pep::node(conn, host, user, bookmarks::NS)?.is_none() {
        pep::set_config(
            conn,
            host,
            user,
            bookmarks::NS,
            &NodeConfig {
                access_model: AccessModel::Whitelist,
                persist_items: true,
                max_items: ItemLimit::Max,
                send_last: SendLast::Never,
                ..NodeConfig::default()
            },
        )?;
    }
    let b = Bookmark {
        jid: room_jid.to_owned(),
        name: Some(name.to_owned()),
        autojoin,
        nick: Some(user.to_owned()),
        password: None,
        extensions: None,
    };
    pep::put_item(
        conn,
        host,
        user,
        bookmarks::NS,
        &StoredItem {
            id: room_jid.to_owned(),
            published: crate::util::datetime::unix_now(),
            xml: b.to_pep().to_string(),
        },
    )
}

/// Removes the bookmark of `room_jid` from an account's bookmarks.
pub fn unbookmark(
    conn: &Connection,
    host: &str,
    user: &str,
    room_jid: &str,
) -> Result<(), StorageError> {
    pep::retract(conn, host, user, bookmarks::NS, room_jid)?;
    Ok(())
}

/// The family room (service domain, room name), if one was made.
pub fn family_room(conn: &Connection) -> Result<Option<(String, String)>, StorageError> {
    Ok(store::meta(conn, META_FAMILY)?.and_then(|jid| {
        let (room, host) = jid.split_once('@')?;
        Some((host.to_owned(), room.to_owned()))
    }))
}

/// A new account (`roost adduser`): a member of the family room, bookmarked; the running
/// server is told. Call it in the transaction that creates the account.
pub fn account_added(conn: &Connection, host: &str, user: &str) -> Result<(), StorageError> {
    let Some((muc_host, room)) = family_room(conn)? else {
        return Ok(());
    };
    if !store::exists(conn, &muc_host, &room)? {
        return Ok(());
    }
    add_member(conn, &muc_host, &room, &format!("{user}@{host}"))?;
    bookmark(
        conn,
        host,
        user,
        &format!("{room}@{muc_host}"),
        "Family",
        true,
    )?;
    kicks::request(conn, &muc_host, &room, Reason::Room)
}

/// An account deleted (`roost deluser`): out of every room; the running server is told.
pub fn account_deleted(conn: &Connection, host: &str, user: &str) -> Result<(), StorageError> {
    for (muc_host, room) in store::forget_jid(conn, &format!("{user}@{host}"))? {
        kicks::request(conn, &muc_host, &room, Reason::Room)?;
    }
    Ok(())
}
