//! Schema migrations by `PRAGMA user_version`: migration N brings the schema from version
//! N-1 to N, each in its own transaction. Never edit a released migration; add a new one.

use super::StorageError;
use rusqlite::Connection;

/// The migrations in order; the schema version is their count.
const MIGRATIONS: &[&str] = &[
    // 1: accounts with SCRAM keys only, and server-wide settings.
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE accounts (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        salt BLOB NOT NULL,
        iterations INTEGER NOT NULL,
        sha1_stored_key BLOB NOT NULL,
        sha1_server_key BLOB NOT NULL,
        sha256_stored_key BLOB NOT NULL,
        sha256_server_key BLOB NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;",
    // 2: instant messaging (RFC 6121): rosters with subscription states, pending inbound
    // subscription requests, offline messages, blocking lists, last activity.
    "CREATE TABLE roster (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        contact TEXT NOT NULL,
        name TEXT,
        groups TEXT NOT NULL DEFAULT '',
        subscription TEXT NOT NULL DEFAULT 'none',
        pending_out INTEGER NOT NULL DEFAULT 0,
        pending_in INTEGER NOT NULL DEFAULT 0,
        -- 0: only a pending inbound request, not shown in the roster (RFC 6121 §3.1.3)
        in_roster INTEGER NOT NULL DEFAULT 1,
        -- the subscribe stanza to redeliver while pending_in
        request TEXT,
        PRIMARY KEY (host, username, contact)
    ) WITHOUT ROWID;
    CREATE TABLE roster_version (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;
    CREATE TABLE offline (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        stamp TEXT NOT NULL,
        stanza TEXT NOT NULL
    );
    CREATE INDEX offline_by_user ON offline (host, username, id);
    CREATE TABLE blocklist (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        jid TEXT NOT NULL,
        PRIMARY KEY (host, username, jid)
    ) WITHOUT ROWID;
    CREATE TABLE last_activity (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        seconds INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;",
    // 3: service data per account: vCards (XEP-0054) and private XML storage (XEP-0049),
    // serialized. Rowid tables: their rows can be large (an avatar), and SQLite advises
    // WITHOUT ROWID only for small rows.
    "CREATE TABLE vcard (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        xml TEXT NOT NULL,
        PRIMARY KEY (host, username)
    );
    CREATE TABLE private_storage (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        ns TEXT NOT NULL,
        name TEXT NOT NULL,
        xml TEXT NOT NULL,
        PRIMARY KEY (host, username, ns, name)
    );",
    // 4: the message archive (XEP-0313) and its preferences (XEP-0441). `seq` orders
    // messages with equal timestamps and is never reused (AUTOINCREMENT); `id` is the
    // public, random archive id (XEP-0359 stanza-id). `ts` never decreases within an
    // account (see storage::archive::insert), so (ts, seq) is the archive's order, and
    // the by-time index serves ranges, paging and expiry at once.
    "CREATE TABLE archive (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        -- the other party: bare JID, and as it appeared in to/from (bare or full)
        with_bare TEXT NOT NULL,
        with_full TEXT NOT NULL,
        stanza TEXT NOT NULL
    );
    CREATE INDEX archive_by_time ON archive (host, username, ts);
    CREATE INDEX archive_by_with ON archive (host, username, with_bare, ts);
    CREATE TABLE archive_prefs (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        default_mode TEXT NOT NULL,
        -- JIDs, one a line
        always TEXT NOT NULL DEFAULT '',
        never TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (host, username)
    ) WITHOUT ROWID;",
    // 5: personal eventing (XEP-0163 over XEP-0060): each account's nodes with their
    // configuration, and their items, serialized. Items are a rowid table (an avatar is a
    // large row) whose rowid orders them by publication: publishing an id again deletes
    // and re-inserts it, so it becomes the newest.
    "CREATE TABLE pep_nodes (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        node TEXT NOT NULL,
        access_model TEXT NOT NULL,
        persist_items INTEGER NOT NULL,
        -- NULL: 'max'
        max_items INTEGER,
        send_last TEXT NOT NULL,
        deliver_notifications INTEGER NOT NULL,
        deliver_payloads INTEGER NOT NULL,
        notify_retract INTEGER NOT NULL,
        notify_delete INTEGER NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (host, username, node)
    ) WITHOUT ROWID;
    CREATE TABLE pep_items (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        node TEXT NOT NULL,
        item_id TEXT NOT NULL,
        -- Unix seconds
        published INTEGER NOT NULL,
        xml TEXT NOT NULL,
        UNIQUE (host, username, node, item_id)
    );",
    // 6: RFC 6121 §3.4 subscription pre-approval: the user approved the contact's
    // subscription before any request came.
    "ALTER TABLE roster ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;",
    // 7: sessions to end, written by `roost deluser` and `roost passwd` while the server
    // runs (another process); the server polls it (`kick::watch`).
    "CREATE TABLE kicks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        -- 'deleted' or 'password'
        reason TEXT NOT NULL,
        -- Unix seconds
        at INTEGER NOT NULL
    );",
    // 8: group chats (XEP-0045): persistent rooms with their configuration (`key=value`
    // lines, so a newer build's keys are kept by an older one), subject and occupant-id
    // secret; affiliations with registered nicks, for persistent rooms only. A room's
    // archive and vCard live in `archive` and `vcard` under (service domain, room name).
    "CREATE TABLE muc_rooms (
        host TEXT NOT NULL,
        name TEXT NOT NULL,
        config TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        subject_nick TEXT NOT NULL DEFAULT '',
        secret BLOB NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (host, name)
    ) WITHOUT ROWID;
    CREATE TABLE muc_affiliations (
        host TEXT NOT NULL,
        room TEXT NOT NULL,
        jid TEXT NOT NULL,
        affiliation TEXT NOT NULL,
        nick TEXT,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (host, room, jid)
    ) WITHOUT ROWID;
    CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (jid);",
    // 9: push notifications (XEP-0357): an account's app server registrations, with the
    // resource that enabled each, its publish-options form (serialized) and the number of
    // errors the app server returned in a row.
    "CREATE TABLE push_registrations (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        jid TEXT NOT NULL,
        node TEXT NOT NULL,
        resource TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        errors INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (host, username, jid, node)
    ) WITHOUT ROWID;",
    // 10: XEP-0363 upload slots and the files uploaded to them (the file itself is
    // `upload/<id>` in the data directory).
    "CREATE TABLE uploads (
        -- the slot's secret (32 hex digits): its URL path and the file's name on disk
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        -- the name the client gave (shown in links and Content-Disposition only)
        filename TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT,
        -- Unix seconds: when the slot was given
        created INTEGER NOT NULL,
        -- 1 once the whole file is on disk
        done INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX uploads_owner ON uploads (host, username);
    CREATE INDEX uploads_created ON uploads (created);",
    // 11: XEP-0484 FAST tokens, per account and client (the SHA-256 of its user-agent id),
    // stored as SHA-256(token) (see sasl/ht.rs).
    "CREATE TABLE fast_tokens (
        host TEXT NOT NULL,
        username TEXT NOT NULL,
        client TEXT NOT NULL,
        mechanism TEXT NOT NULL,
        key BLOB NOT NULL,
        -- Unix seconds
        issued INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY (host, username, client, key)
    ) WITHOUT ROWID;",
    // 12: roles and circles. Each account's role ('admin', 'normal', 'limited'); circles
    // (a group of accounts sharing roster entries and a members-only room `name@room_host`,
    // `everyone`: the family circle every account is in) and their members; the kicks
    // table's `detail` (the contact of a roster change the server pushes).
    "ALTER TABLE accounts ADD COLUMN role TEXT NOT NULL DEFAULT 'normal';
    CREATE TABLE circles (
        host TEXT NOT NULL,
        -- the room's localpart, and how commands name the circle
        name TEXT NOT NULL,
        -- the roster group and the room's title
        title TEXT NOT NULL,
        room_host TEXT NOT NULL,
        everyone INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        PRIMARY KEY (host, name)
    ) WITHOUT ROWID;
    CREATE TABLE circle_members (
        host TEXT NOT NULL,
        circle TEXT NOT NULL,
        username TEXT NOT NULL,
        PRIMARY KEY (host, circle, username)
    ) WITHOUT ROWID;
    CREATE INDEX circle_members_by_user ON circle_members (host, username);
    ALTER TABLE kicks ADD COLUMN detail TEXT NOT NULL DEFAULT '';",
    // 13: invitations (XEP-0401,
    // XEP-0445, XEP-0379), stored as hex SHA-256(token) — the token itself is only ever
    // printed. `kind`: 'account' or 'roster' (a contact invitation from `creator`); `role`
    // and `circle` are given to the account registered with it.
    "CREATE TABLE invites (
        key TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        kind TEXT NOT NULL,
        -- the bare JID of the account that invited, '' for the command line
        creator TEXT NOT NULL DEFAULT '',
        role TEXT NOT NULL DEFAULT 'normal',
        circle TEXT NOT NULL DEFAULT '',
        -- Unix seconds
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        uses_left INTEGER NOT NULL
    ) WITHOUT ROWID;",
];

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date. Refuses a database from a newer roost.
pub fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let mut version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > latest() {
        return Err(StorageError::TooNew {
            found: version,
            known: latest(),
        });
    }
    while version < latest() {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[version as usize])?;
        version += 1;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        log::info!("storage: schema migrated to version {version}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_new_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, latest());
        conn.execute("SELECT count(*) FROM accounts", []).ok();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", latest() + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(StorageError::TooNew { .. })
        ));
    }
}
