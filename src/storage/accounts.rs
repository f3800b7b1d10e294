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
    Ok(())
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
    tx.commit()?;
    Ok(())
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
    fn served_domain_round_trip() {
        let c = db();
        assert_eq!(served_domain(&c).unwrap(), None);
        set_served_domain(&c, "a.example").unwrap();
        set_served_domain(&c, "b.example").unwrap();
        assert_eq!(served_domain(&c).unwrap().as_deref(), Some("b.example"));
    }
}
