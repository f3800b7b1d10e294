//! Accounts: SCRAM credentials per (host, username), and the served domain in `meta`.

use super::StorageError;
use crate::sasl::{ScramKeys, StoredCredentials};
use rusqlite::{params, Connection, OptionalExtension};

/// Why an account operation did not happen.
#[derive(Debug)]
pub enum AccountError {
    Exists,
    NotFound,
    Storage(StorageError),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::Exists => f.write_str("the account already exists"),
            AccountError::NotFound => f.write_str("no such account"),
            AccountError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> AccountError {
        AccountError::Storage(e.into())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates an account; fails with `Exists` if it is already there.
pub fn create(
    conn: &Connection,
    host: &str,
    username: &str,
    creds: &StoredCredentials,
) -> Result<(), AccountError> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO accounts (host, username, salt, iterations, sha1_stored_key,
             sha1_server_key, sha256_stored_key, sha256_server_key, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            host,
            username,
            creds.salt,
            creds.iterations,
            creds.sha1.stored_key,
            creds.sha1.server_key,
            creds.sha256.stored_key,
            creds.sha256.server_key,
            now()
        ],
    )?;
    if n == 0 {
        return Err(AccountError::Exists);
    }
    Ok(())
}

/// Replaces an account's credentials; fails with `NotFound` if there is no such account.
/// Its FAST tokens (XEP-0484) go with the old password.
pub fn set_credentials(
    conn: &Connection,
    host: &str,
    username: &str,
    creds: &StoredCredentials,
) -> Result<(), AccountError> {
    let n = conn.execute(
        "UPDATE accounts SET salt = ?3, iterations = ?4, sha1_stored_key = ?5,
             sha1_server_key = ?6, sha256_stored_key = ?7, sha256_server_key = ?8
         WHERE host = ?1 AND username = ?2",
        params![
            host,
            username,
            creds.salt,
            creds.iterations,
            creds.sha1.stored_key,
            creds.sha1.server_key,
            creds.sha256.stored_key,
            creds.sha256.server_key,
        ],
    )?;
    if n == 0 {
        return Err(AccountError::NotFound);
    }
    super::fast::revoke_all(conn, host, username).map_err(AccountError::Storage)?;
    Ok(())
}

/// Adds the keys a XEP-0480 upgrade made (`new`: `old` with the missing hash's keys
/// filled) if the account's credentials are still `old`: a password changed meanwhile
/// wins. An account may hold keys for one hash only (the other's are empty, as after an
/// import from a server that stored only SCRAM-SHA-1); the password is the same, so FAST
/// tokens stay. Returns whether the keys were stored.
pub fn upgrade_keys(
    conn: &Connection,
    host: &str,
    username: &str,
    old: &StoredCredentials,
    new: &StoredCredentials,
) -> Result<bool, StorageError> {
    let n = conn.execute(
        "UPDATE accounts SET sha1_stored_key = ?7, sha1_server_key = ?8,
             sha256_stored_key = ?9, sha256_server_key = ?10
         WHERE host = ?1 AND username = ?2 AND salt = ?3 AND iterations = ?4
             AND sha1_stored_key = ?5 AND sha256_stored_key = ?6",
        params![
            host,
            username,
            old.salt,
            old.iterations,
            old.sha1.stored_key,
            old.sha256.stored_key,
            new.sha1.stored_key,
            new.sha1.server_key,
            new.sha256.stored_key,
            new.sha256.server_key,
        ],
    )?;
    Ok(n == 1)
}

/// The stored credentials of an account, if it exists.
pub fn credentials(
    conn: &Connection,
    host: &str,
    username: &str,
) -> Result<Option<StoredCredentials>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT salt, iterations, sha1_stored_key, sha1_server_key, sha256_stored_key,
                 sha256_server_key FROM accounts WHERE host = ?1 AND username = ?2",
            params![host, username],
            |r| {
                Ok(StoredCredentials {
                    salt: r.get(0)?,
                    iterations: r.get(1)?,
                    sha1: ScramKeys {
                        stored_key: r.get(2)?,
                        server_key: r.get(3)?,
                    },
                    sha256: ScramKeys {
                        stored_key: r.get(4)?,
                        server_key: r.get(5)?,
                    },
                })
            },
        )
        .optional()?)
}

/// True if the account exists.
pub fn exists(conn: &Connection, host: &str, username: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM accounts WHERE host = ?1 AND username = ?2",
            params![host, username],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Tables holding per-account data, keyed by (host, username). Every feature that stores
/// something for an account adds its table here, so that `roost deluser` removes it all.
const ACCOUNT_TABLES: &[&str] = &[
    "roster",
    "roster_version",
    "offline",
    "blocklist",
    "last_activity",
    "vcard",
    "private_storage",
    "archive",
    "archive_prefs",
    "pep_nodes",
    "pep_items",
    "fast_tokens",
    "push_registrations",
    // The rows only: `roost deluser` removes the files (`upload::remove_files`), and the
    // server's upload sweep removes any file left without a row.
    "uploads",
    "circle_members",
];

/// Deletes an account and everything stored for it, in one transaction. Contacts on this
/// server who had the account in their roster see it unsubscribed both ways (as after an
/// `unsubscribe` and an `unsubscribed`, RFC 6121 §2.5.3).
pub fn delete(conn: &mut Connection, host: &str, username: &str) -> Result<(), AccountError> {
    let tx = conn.savepoint()?;
    let n = tx.execute(
        "DELETE FROM accounts WHERE host = ?1 AND username = ?2",
        params![host, username],
    )?;
    if n == 0 {
        return Err(AccountError::NotFound);
    }
    let me = format!("{username}@{host}");
    for item in super::roster::items(&tx, host, username).map_err(AccountError::Storage)? {
        let Some((local, domain)) = item.contact.split_once('@') else {
            continue;
        };
        if domain != host {
            continue;
        }
        if let Some(mut theirs) =
            super::roster::item(&tx, host, local, &me).map_err(AccountError::Storage)?
        {
            use crate::subscription::Kind;
            theirs.state = theirs
                .state
                .inbound(Kind::Unsubscribe)
                .state
                .inbound(Kind::Unsubscribed)
                .state;
            super::roster::put(&tx, host, local, &theirs).map_err(AccountError::Storage)?;
        }
    }
    for table in ACCOUNT_TABLES {
        tx.execute(
            &format!("DELETE FROM {table} WHERE host = ?1 AND username = ?2"),
            params![host, username],
        )?;
    }
    // Its contact invitations go with it.
    super::invites::revoke_created_by(&tx, &me).map_err(AccountError::Storage)?;
    // Out of every group chat room (affiliations, registered nicks).
    crate::muc::family::account_deleted(&tx, host, username).map_err(AccountError::Storage)?;
    // A running server ends the account's sessions (`kick::watch` in the server).
    super::kicks::request(&tx, host, username, super::kicks::Reason::Deleted)
        .map_err(AccountError::Storage)?;
    tx.commit()?;
    Ok(())
}

/// What an account may do. `Normal` is every account's until changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Role {
    /// Administers the server from the apps (XEP-0133 commands), owns the circles' rooms.
    Admin,
    #[default]
    Normal,
    /// A child's or a guest's account: no federation, no rooms of its own, no invites.
    Limited,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Normal => "normal",
            Role::Limited => "limited",
        }
    }

    /// May this role invite people (`roost invite`'s XEP-0401 command, contact invites)?
    pub fn may_invite(self) -> bool {
        self != Role::Limited
    }

    /// May this role talk to other servers?
    pub fn may_federate(self) -> bool {
        self != Role::Limited
    }

    /// May this role create group chat rooms?
    pub fn may_create_rooms(self) -> bool {
        self != Role::Limited
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "normal" => Ok(Role::Normal),
            "limited" => Ok(Role::Limited),
            _ => Err(format!("{s}: a role is admin, normal or limited")),
        }
    }
}

/// An account's role; `None` if there is no such account.
pub fn role(conn: &Connection, host: &str, username: &str) -> Result<Option<Role>, StorageError> {
    let r: Option<String> = conn
        .query_row(
            "SELECT role FROM accounts WHERE host = ?1 AND username = ?2",
            params![host, username],
            |r| r.get(0),
        )
        .optional()?;
    Ok(r.map(|r| r.parse().unwrap_or_default()))
}

/// Sets an account's role (the column only: `crate::circles::set_role` also gives admins
/// their circles' rooms and tells a running server). Fails with `NotFound`.
pub fn set_role(
    conn: &Connection,
    host: &str,
    username: &str,
    role: Role,
) -> Result<(), AccountError> {
    let n = conn.execute(
        "UPDATE accounts SET role = ?3 WHERE host = ?1 AND username = ?2",
        params![host, username, role.as_str()],
    )?;
    if n == 0 {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

/// The accounts of `host` whose role is not `Normal`, sorted: what a server keeps in memory.
pub fn special_roles(conn: &Connection, host: &str) -> Result<Vec<(String, Role)>, StorageError> {
    roles(conn, host, "AND role != 'normal'")
}

/// Every account of `host` with its role, sorted by username.
pub fn with_roles(conn: &Connection, host: &str) -> Result<Vec<(String, Role)>, StorageError> {
    roles(conn, host, "")
}

/// `(username, role)` of `host`'s accounts matching `filter` (a constant SQL condition).
fn roles(conn: &Connection, host: &str, filter: &str) -> Result<Vec<(String, Role)>, StorageError> {
    let mut st = conn.prepare(&format!(
        "SELECT username, role FROM accounts WHERE host = ?1 {filter} ORDER BY username"
    ))?;
    let rows = st.query_map(params![host], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (u, r) = row?;
        out.push((u, r.parse().unwrap_or_default()));
    }
    Ok(out)
}

/// All accounts as `(host, username)`, sorted.
pub fn list(conn: &Connection) -> Result<Vec<(String, String)>, StorageError> {
    let mut st = conn.prepare("SELECT host, username FROM accounts ORDER BY host, username")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The domain recorded by the last `roost serve` on this data directory.
pub fn served_domain(conn: &Connection) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = 'domain'", [], |r| {
            r.get(0)
        })
        .optional()?)
}

/// True if the database holds an account or anything stored for one.
fn holds_data(conn: &Connection) -> Result<bool, StorageError> {
    for table in std::iter::once(&"accounts").chain(ACCOUNT_TABLES) {
        let any = conn
            .query_row(&format!("SELECT 1 FROM {table} LIMIT 1"), [], |_| Ok(()))
            .optional()?;
        if any.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes the database serve `domain` (at `roost serve`): records it on a new or empty
/// database, and refuses, saying how to proceed, when the database holds accounts of
/// another domain (relabelling it would leave accounts that can neither log in nor be
/// deleted). One database never holds two domains.
pub fn claim_domain(
    conn: &Connection,
    domain: &str,
    data_dir: &std::path::Path,
) -> Result<(), StorageError> {
    check_domain(conn, domain, data_dir)?;
    // For `running_server`: the commands that must not run beside a server.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('server_pid', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![std::process::id().to_string()],
    )?;
    Ok(())
}

/// The process id of a roost server running on this database, if one does: the last
/// server's id, if a `roost serve` process still has it (also under an emulator such as
/// qemu-user, which is why the command line is read rather than the process name).
pub fn running_server(conn: &Connection) -> Result<Option<u32>, StorageError> {
    let pid: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'server_pid'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
        return Ok(None);
    };
    if pid == std::process::id() {
        return Ok(None);
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_roost = args
        .iter()
        .any(|a| a.rsplit(|b| *b == b'/').next() == Some(b"roost"));
    let serves = args.iter().any(|a| *a == b"serve");
    Ok((is_roost && serves).then_some(pid))
}

fn check_domain(
    conn: &Connection,
    domain: &str,
    data_dir: &std::path::Path,
) -> Result<(), StorageError> {
    match served_domain(conn)? {
        Some(served) if served == domain => {
            // Accounts an older roost left under another domain when it relabelled the
            // database: they cannot log in, but the others can, so the server starts.
            for (host, n) in other_hosts(conn, domain)? {
                log::warn!(
                    "{n} account(s) of {host} in {} cannot log in here (this server is \
                     {domain}): move them with `roost rename-domain {host} {domain} \
                     --data-dir {}` while roost is stopped",
                    data_dir.display(),
                    data_dir.display()
                );
            }
            Ok(())
        }
        Some(served) if holds_data(conn)? => {
            let dir = data_dir.display();
            Err(StorageError::Refused(format!(
                "the data directory {dir} holds the accounts of {served}, not {domain}. \
                 To move every account and its data to {domain}, stop roost and run \
                 `roost rename-domain {served} {domain} --data-dir {dir}`; to start afresh \
                 for {domain}, give another --data-dir; to go on serving {served}, use \
                 --domain {served}"
            )))
        }
        Some(served) => {
            log::info!(
                "the data directory {} served {served} but holds no accounts: it now serves \
                 {domain}",
                data_dir.display()
            );
            set_served_domain(conn, domain)
        }
        None => set_served_domain(conn, domain),
    }
}

/// Domains other than `domain` that have accounts, with their number of accounts.
pub fn other_hosts(conn: &Connection, domain: &str) -> Result<Vec<(String, usize)>, StorageError> {
    // The usual answer is none: found by two searches of the primary key, which read a
    // few pages. A full scan here would fill the page cache with every account at each
    // start, and the freed heap stayed resident (≈500 KiB idle with 5000 accounts).
    let any = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE host < ?1 OR host > ?1 LIMIT 1",
            params![domain],
            |_| Ok(()),
        )
        .optional()?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare(
        "SELECT host, count(*) FROM accounts WHERE host != ?1 GROUP BY host ORDER BY host",
    )?;
    let rows = st.query_map(params![domain], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as usize))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records the served domain (so the command-line tools can check JIDs against it).
pub fn set_served_domain(conn: &Connection, domain: &str) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('domain', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![domain],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(tag: u8) -> StoredCredentials {
        StoredCredentials {
            salt: vec![tag; 16],
            iterations: 4096,
            sha1: ScramKeys {
                stored_key: vec![tag; 20],
                server_key: vec![tag + 1; 20],
            },
            sha256: ScramKeys {
                stored_key: vec![tag; 32],
                server_key: vec![tag + 1; 32],
            },
        }
    }

    use crate::storage::test_db as db;

    #[test]
    fn create_get_update_delete() {
        let mut c = db();
        create(&c, "example.org", "mom", &creds(1)).unwrap();
        assert!(matches!(
            create(&c, "example.org", "mom", &creds(2)),
            Err(AccountError::Exists)
        ));
        assert_eq!(
            credentials(&c, "example.org", "mom").unwrap(),
            Some(creds(1))
        );
        assert_eq!(credentials(&c, "other.org", "mom").unwrap(), None);
        set_credentials(&c, "example.org", "mom", &creds(3)).unwrap();
        assert_eq!(
            credentials(&c, "example.org", "mom").unwrap(),
            Some(creds(3))
        );
        assert!(matches!(
            set_credentials(&c, "example.org", "dad", &creds(3)),
            Err(AccountError::NotFound)
        ));
        assert_eq!(
            list(&c).unwrap(),
            vec![("example.org".to_string(), "mom".to_string())]
        );
        delete(&mut c, "example.org", "mom").unwrap();
        assert!(!exists(&c, "example.org", "mom").unwrap());
        assert!(matches!(
            delete(&mut c, "example.org", "mom"),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn delete_removes_everything_and_unsubscribes_contacts() {
        use crate::storage::roster;
        use crate::subscription::State;
        let mut c = db();
        create(&c, "h", "mom", &creds(1)).unwrap();
        create(&c, "h", "dad", &creds(2)).unwrap();
        let mut mine = roster::Item::new("dad@h");
        mine.state = State::Both;
        roster::put(&c, "h", "mom", &mine).unwrap();
        let mut his = roster::Item::new("mom@h");
        his.state = State::Both;
        roster::put(&c, "h", "dad", &his).unwrap();
        crate::storage::offline::store(&c, "h", "mom", "s", "<m/>", 10).unwrap();
        crate::storage::archive::insert(
            &c,
            &crate::storage::archive::NewEntry {
                host: "h",
                username: "mom",
                id: "a1",
                with_bare: "dad@h",
                with_full: "dad@h",
                stanza: "<m/>",
                now: 1,
            },
        )
        .unwrap();
        crate::storage::archive::set_prefs(&c, "h", "mom", &Default::default()).unwrap();
        delete(&mut c, "h", "mom").unwrap();
        assert_eq!(crate::storage::archive::count(&c, "h", "mom").unwrap(), 0);
        assert_eq!(
            crate::storage::archive::prefs(&c, "h", "mom").unwrap(),
            None
        );
        assert!(roster::items(&c, "h", "mom").unwrap().is_empty());
        assert_eq!(crate::storage::offline::count(&c, "h", "mom").unwrap(), 0);
        assert_eq!(roster::version(&c, "h", "mom").unwrap(), 0);
        let his = roster::item(&c, "h", "dad", "mom@h").unwrap().unwrap();
        assert_eq!(his.state, State::None);
        assert!(his.in_roster, "the item stays, unsubscribed");
        assert!(matches!(
            delete(&mut c, "example.org", "mom"),
            Err(AccountError::NotFound)
        ));
    }

    #[test]
    fn claim_domain_relabels_an_empty_database_only() {
        let dir = std::path::Path::new("/srv/roost");
        let c = db();
        claim_domain(&c, "localhost", dir).unwrap();
        // No accounts yet: a new domain may take it over.
        claim_domain(&c, "example.org", dir).unwrap();
        assert_eq!(served_domain(&c).unwrap().as_deref(), Some("example.org"));
        create(&c, "example.org", "mom", &creds(1)).unwrap();
        claim_domain(&c, "example.org", dir).unwrap();
        let err = claim_domain(&c, "localhost", dir).unwrap_err().to_string();
        assert!(
            err.contains("roost rename-domain example.org localhost --data-dir /srv/roost"),
            "{err}"
        );
        assert_eq!(served_domain(&c).unwrap().as_deref(), Some("example.org"));
        // Data of a deleted account's contacts counts too (it would be orphaned).
        let mut c2 = db();
        claim_domain(&c2, "localhost", dir).unwrap();
        create(&c2, "localhost", "kid", &creds(1)).unwrap();
        crate::storage::offline::store(&c2, "localhost", "dad", "s", "<m/>", 10).unwrap();
        delete(&mut c2, "localhost", "kid").unwrap();
        assert!(claim_domain(&c2, "example.org", dir).is_err());
    }

    #[test]
    fn roles_default_to_normal_and_change() {
        let c = db();
        create(&c, "h", "mom", &creds(1)).unwrap();
        create(&c, "h", "kid", &creds(2)).unwrap();
        assert_eq!(role(&c, "h", "mom").unwrap(), Some(Role::Normal));
        assert_eq!(role(&c, "h", "nobody").unwrap(), None);
        set_role(&c, "h", "mom", Role::Admin).unwrap();
        set_role(&c, "h", "kid", "Limited".parse().unwrap()).unwrap();
        assert!(matches!(
            set_role(&c, "h", "nobody", Role::Admin),
            Err(AccountError::NotFound)
        ));
        assert_eq!(
            special_roles(&c, "h").unwrap(),
            vec![("kid".into(), Role::Limited), ("mom".into(), Role::Admin)]
        );
        assert!("boss".parse::<Role>().is_err());
        assert_eq!(Role::Limited.to_string(), "limited");
        assert!(!Role::Limited.may_invite() && Role::Normal.may_invite());
    }

    #[test]
    fn served_domain_round_trip() {
        let c = db();
        assert_eq!(served_domain(&c).unwrap(), None);
        set_served_domain(&c, "a.example").unwrap();
        set_served_domain(&c, "b.example").unwrap();
        assert_eq!(served_domain(&c).unwrap().as_deref(), Some("b.example"));
    }
}
