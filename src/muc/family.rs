//! The family room: one persistent, members-only, non-anonymous room made at first start
//! (`family@groups.<domain>` unless `--family-room` names it otherwise), the default
//! circle (`crate::circles`): every account is a member, has the others in its roster and
//! an autojoin XEP-0402 bookmark, so a new family member's app shows it at first login.
//! `roost adduser` adds to it, `roost deluser` takes out; `roost room-add`/`room-remove`
//! change the members of any stored room. The room and bookmark helpers here serve every
//! circle. All of it works on a database connection, so the command line does it while
//! the server runs (which hears of it through `storage::kicks` and reloads the room).

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

/// Creates the family room once (the first start with group chats on) as the default
/// circle (`crate::circles`): every account of `server` a member, with each other in
/// their rosters, and bookmarked. A family room made by an older roost becomes the
/// default circle at the first start of this one.
pub fn ensure(
    conn: &Connection,
    server: &str,
    muc_host: &str,
    name: &str,
) -> Result<(), StorageError> {
    let mut notices = crate::circles::Notices::new(server);
    let name = match store::meta(conn, META_FAMILY)? {
        // Made before: keep its name (the flag may have changed since).
        Some(jid) => match jid.split_once('@') {
            Some((room, host)) if host == muc_host => room.to_owned(),
            _ => return Ok(()),
        },
        None => name.to_owned(),
    };
    let jid = format!("{name}@{muc_host}");
    if !store::exists(conn, muc_host, &name)? {
        let mut secret = vec![0u8; 16];
        crate::util::random(&mut secret);
        store::save_room(
            conn,
            muc_host,
            &StoredRoom {
                name: name.clone(),
                config: family_config(usize::MAX).to_stored(),
                subject: String::new(),
                subject_nick: String::new(),
                secret,
                created: crate::util::datetime::unix_now(),
            },
        )?;
    }
    let made = crate::circles::get(conn, server, &name)
        .map_err(circle_error)?
        .is_none();
    crate::circles::ensure_family(conn, server, &name, &mut notices).map_err(circle_error)?;
    if store::meta(conn, META_FAMILY)?.is_none() || made {
        store::set_meta(conn, META_FAMILY, Some(&jid))?;
        log::info!(
            "group chats: the family room {jid} is the default circle, with {} member(s)",
            crate::circles::get(conn, server, &name)
                .map_err(circle_error)?
                .map_or(0, |c| c.members.len())
        );
    }
    Ok(())
}

fn circle_error(e: crate::circles::CircleError) -> StorageError {
    match e {
        crate::circles::CircleError::Storage(e) => e,
        e => StorageError::Refused(e.to_string()),
    }
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

/// A new account made by another process (`roost adduser`): in the default circle (the
/// family room, rosters, bookmark); the running server is told through `kicks`. Call it
/// in the transaction that creates the account.
pub fn account_added(conn: &Connection, host: &str, user: &str) -> Result<(), StorageError> {
    let mut notices = crate::circles::Notices::new(host);
    crate::circles::account_added(
        conn,
        host,
        user,
        crate::storage::accounts::Role::Normal,
        None,
        &mut notices,
    )
    .map_err(circle_error)?;
    notices.write_kicks(conn)
}

/// An account deleted (`roost deluser`): out of every room; the running server is told.
pub fn account_deleted(conn: &Connection, host: &str, user: &str) -> Result<(), StorageError> {
    for (muc_host, room) in store::forget_jid(conn, &format!("{user}@{host}"))? {
        kicks::request(conn, &muc_host, &room, Reason::Room)?;
    }
    Ok(())
}
