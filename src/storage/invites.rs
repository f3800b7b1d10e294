//! The `invites` table: invitations to register an account (XEP-0401, XEP-0445) or to
//! become a contact (XEP-0379), kept as the hex SHA-256 of their token. A use is taken in
//! one `UPDATE … WHERE uses_left > 0 … RETURNING` inside the registering transaction, so two
//! devices racing for a single-use token cannot both win, and a registration that fails
//! (a taken username) gives the use back by rolling back.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// What an invitation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Register an account (`xmpp:DOMAIN?register;preauth=TOKEN`).
    Account,
    /// Register an account that becomes a mutual contact of the creator
    /// (`xmpp:CREATOR?roster;preauth=TOKEN;ibr=y`).
    Roster,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Roster => "roster",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "roster" => Kind::Roster,
            _ => Kind::Account,
        }
    }
}

/// One stored invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// Hex SHA-256 of the token.
    pub key: String,
    pub kind: Kind,
    /// The inviting account's bare JID; empty for an invitation from the command line.
    pub creator: String,
    /// `admin`, `normal` or `limited`.
    pub role: String,
    /// The circle the new account joins; empty for none.
    pub circle: String,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
    pub uses_left: i64,
}

impl Invite {
    /// The short id `roost invites` shows and `roost uninvite` takes (the start of the key).
    pub fn id(&self) -> &str {
        &self.key[..self.key.len().min(ID_LEN)]
    }
}

/// Hex digits of the key shown as an invitation's id.
pub const ID_LEN: usize = 10;

/// A new invitation's settings.
pub struct New<'a> {
    pub kind: Kind,
    pub creator: &'a str,
    pub role: &'a str,
    pub circle: &'a str,
    pub expires: i64,
    pub uses: i64,
}

/// What a token is worth now.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    Unknown,
    Expired(Invite),
    UsedUp(Invite),
    Valid(Invite),
}

const COLUMNS: &str = "key, kind, creator, role, circle, created, expires, uses_left";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Invite> {
    Ok(Invite {
        key: r.get(0)?,
        kind: Kind::parse(&r.get::<_, String>(1)?),
        creator: r.get(2)?,
        role: r.get(3)?,
        circle: r.get(4)?,
        created: r.get(5)?,
        expires: r.get(6)?,
        uses_left: r.get(7)?,
    })
}

/// How long a spent or expired invitation stays listed (and its landing page says "used"
/// or "expired" rather than "unknown").
pub const KEEP_SPENT_SECS: i64 = 30 * 86_400;

/// Stores an invitation under `key`; forgets invitations spent or expired for long.
pub fn create(
    conn: &Connection,
    host: &str,
    key: &str,
    new: &New<'_>,
    now: i64,
) -> Result<(), StorageError> {
    conn.execute(
        "DELETE FROM invites WHERE expires < ?1",
        params![now - KEEP_SPENT_SECS],
    )?;
    conn.execute(
        "INSERT INTO invites (key, host, kind, creator, role, circle, created, expires,
             uses_left)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key,
            host,
            new.kind.as_str(),
            new.creator,
            new.role,
            new.circle,
            now,
            new.expires,
            new.uses
        ],
    )?;
    Ok(())
}

/// The invitation stored under `key` for `host`, if any.
pub fn find(conn: &Connection, host: &str, key: &str) -> Result<Option<Invite>, StorageError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM invites WHERE key = ?1 AND host = ?2"
    ))?;
    Ok(st.query_row(params![key, host], from_row).optional()?)
}

/// What the token with `key` is worth at `now` (nothing is used up).
pub fn status(conn: &Connection, host: &str, key: &str, now: i64) -> Result<Status, StorageError> {
    Ok(match find(conn, host, key)? {
        None => Status::Unknown,
        Some(i) if i.uses_left <= 0 => Status::UsedUp(i),
        Some(i) if i.expires <= now => Status::Expired(i),
        Some(i) => Status::Valid(i),
    })
}

/// Takes one use of the invitation with `key` if it has one left and had not expired at
/// `valid_at` (XEP-0445 §5: expiry is checked when the token is presented, so a client
/// that presented it in time may register after that moment). One statement: a use is
/// taken by one caller only. Call it in the registering transaction.
pub fn take(
    conn: &Connection,
    host: &str,
    key: &str,
    valid_at: i64,
) -> Result<Option<Invite>, StorageError> {
    let mut st = conn.prepare_cached(&format!(
        "UPDATE invites SET uses_left = uses_left - 1
         WHERE key = ?1 AND host = ?2 AND uses_left > 0 AND expires > ?3
         RETURNING {COLUMNS}"
    ))?;
    Ok(st
        .query_row(params![key, host, valid_at], from_row)
        .optional()?)
}

/// Every invitation of `host`, newest first.
pub fn list(conn: &Connection, host: &str) -> Result<Vec<Invite>, StorageError> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM invites WHERE host = ?1 ORDER BY created DESC, key"
    ))?;
    let rows = st.query_map(params![host], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The keys of `host`'s invitations that start with `prefix` (an id from `list`).
pub fn keys_with_prefix(
    conn: &Connection,
    host: &str,
    prefix: &str,
) -> Result<Vec<String>, StorageError> {
    let mut st = conn.prepare(
        "SELECT key FROM invites WHERE host = ?1 AND substr(key, 1, length(?2)) = ?2
         ORDER BY key",
    )?;
    let rows = st.query_map(params![host, prefix], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the invitation with `key`; false if there was none.
pub fn revoke(conn: &Connection, host: &str, key: &str) -> Result<bool, StorageError> {
    Ok(conn.execute(
        "DELETE FROM invites WHERE key = ?1 AND host = ?2",
        params![key, host],
    )? > 0)
}

/// Deletes the invitations an account made (with the account).
pub fn revoke_created_by(conn: &Connection, creator: &str) -> Result<usize, StorageError> {
    Ok(conn.execute("DELETE FROM invites WHERE creator = ?1", params![creator])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(uses: i64, expires: i64) -> New<'static> {
        New {
            kind: Kind::Account,
            creator: "",
            role: "normal",
            circle: "",
            expires,
            uses,
        }
    }

    #[test]
    fn uses_run_out_and_expiry_counts_at_presentation() {
        let c = super::super::test_db();
        create(&c, "h", "k1", &new(2, 100), 10).unwrap();
        assert!(matches!(
            status(&c, "h", "k1", 50).unwrap(),
            Status::Valid(_)
        ));
        assert!(matches!(
            status(&c, "h", "k1", 100).unwrap(),
            Status::Expired(_)
        ));
        assert_eq!(status(&c, "other", "k1", 50).unwrap(), Status::Unknown);
        assert_eq!(take(&c, "h", "k1", 99).unwrap().unwrap().uses_left, 1);
        assert!(take(&c, "h", "k1", 100).unwrap().is_none(), "expired then");
        assert_eq!(take(&c, "h", "k1", 50).unwrap().unwrap().uses_left, 0);
        assert!(take(&c, "h", "k1", 50).unwrap().is_none(), "used up");
        assert!(matches!(
            status(&c, "h", "k1", 50).unwrap(),
            Status::UsedUp(_)
        ));
    }

    #[test]
    fn revoke_by_key_and_prefix_and_old_ones_are_forgotten() {
        let c = super::super::test_db();
        create(&c, "h", "abc1", &new(1, 100), 10).unwrap();
        create(&c, "h", "abc2", &new(1, 100), 10).unwrap();
        assert_eq!(keys_with_prefix(&c, "h", "abc").unwrap().len(), 2);
        assert_eq!(keys_with_prefix(&c, "h", "abc2").unwrap(), vec!["abc2"]);
        assert!(revoke(&c, "h", "abc2").unwrap());
        assert!(!revoke(&c, "h", "abc2").unwrap());
        assert_eq!(list(&c, "h").unwrap().len(), 1);
        // Creating one long after abc1 expired forgets it.
        create(
            &c,
            "h",
            "new",
            &new(1, 10_000_000),
            100 + KEEP_SPENT_SECS + 1,
        )
        .unwrap();
        let keys: Vec<String> = list(&c, "h").unwrap().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, vec!["new"]);
    }
}
