//! The message archive (XEP-0313) and archiving preferences (XEP-0441), per account.
//!
//! An archive's order is `(ts, seq)`: `ts` in Unix seconds never decreases within an account
//! (a clock that steps back does not reorder the archive, which would make clients paging
//! forward miss messages), and `seq`, the rowid, orders messages of the same second. The
//! public `id` is random and used only to name a message, never to order.

use super::StorageError;
use crate::stanza::mam::{DefaultMode, Prefs};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// A message to archive for one account.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    pub host: &'a str,
    pub username: &'a str,
    /// The public archive id (unique, unguessable).
    pub id: &'a str,
    /// The other party's bare JID.
    pub with_bare: &'a str,
    /// The other party as the message named it (`to` or `from`; bare or full).
    pub with_full: &'a str,
    /// The serialized message.
    pub stanza: &'a str,
    /// Unix seconds now.
    pub now: i64,
}

/// Stores a message and returns its timestamp: `now`, or the account's latest one if
/// the clock has gone back since.
pub fn insert(conn: &Connection, e: &NewEntry<'_>) -> Result<i64, StorageError> {
    // Two plain statements rather than one INSERT … RETURNING: RETURNING runs as a trigger,
    // which makes SQLite keep a statement journal (a copy of every page the insert
    // touches) for each archived message.
    let ts: i64 = conn
        .prepare_cached(
            "SELECT max(?3, coalesce((SELECT max(ts) FROM archive
                                      WHERE host = ?1 AND username = ?2), ?3))",
        )?
        .query_row(params![e.host, e.username, e.now], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO archive (host, username, id, ts, with_bare, with_full, stanza)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.host,
        e.username,
        e.id,
        ts,
        e.with_bare,
        e.with_full,
        e.stanza
    ])?;
    Ok(ts)
}

/// One archived message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Unix seconds.
    pub ts: i64,
    /// The serialized message.
    pub stanza: String,
}

/// Which messages a query matches (XEP-0313 §4.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The other party's bare JID (a bare `with`).
    pub with_bare: Option<String>,
    /// The other party exactly (a full `with`).
    pub with_full: Option<String>,
    /// Inclusive, Unix seconds.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Exclusive bounds by archive id.
    pub after_id: Option<String>,
    pub before_id: Option<String>,
    /// Only these ids (none: all).
    pub ids: Vec<String>,
}

/// Which page of the matching messages (XEP-0059).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The page starts after this id…
    pub after: Option<String>,
    /// …or ends before this one.
    pub before: Option<String>,
    /// Take the page from the end (RSM `<before/>`).
    pub backwards: bool,
    /// Page size.
    pub max: usize,
}

/// One page, in archive order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// No more matching messages in the paging direction.
    pub complete: bool,
    /// How many messages match the filter in all.
    pub count: usize,
}

/// Why a query has no page.
#[derive(Debug)]
pub enum QueryError {
    /// An id the query names is not in this archive (`item-not-found`, XEP-0313 §4.1.3
    /// and §4.3.2).
    UnknownId(String),
    Storage(StorageError),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::UnknownId(id) => write!(f, "no message {id} in the archive"),
            QueryError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl From<rusqlite::Error> for QueryError {
    fn from(e: rusqlite::Error) -> QueryError {
        QueryError::Storage(e.into())
    }
}

/// The `(ts, seq)` of a message of this account.
fn key(conn: &Connection, host: &str, user: &str, id: &str) -> Result<(i64, i64), QueryError> {
    conn.prepare_cached(
        "SELECT ts, seq FROM archive WHERE id = ?1 AND host = ?2 AND username = ?3",
    )?
    .query_row(params![id, host, user], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()?
    .ok_or_else(|| QueryError::UnknownId(id.to_owned()))
}

/// Appends `AND (ts, seq) <op> (?, ?)` for the message `id`.
fn bound(
    conn: &Connection,
    host: &str,
    user: &str,
    id: &str,
    op: &str,
    cond: &mut String,
    args: &mut Vec<Value>,
) -> Result<(), QueryError> {
    let (ts, seq) = key(conn, host, user, id)?;
    cond.push_str(&format!(" AND (ts, seq) {op} (?, ?)"));
    args.push(ts.into());
    args.push(seq.into());
    Ok(())
}

/// The page of an account's archive that `filter` and `range` select.
pub fn query(
    conn: &Connection,
    host: &str,
    user: &str,
    filter: &Filter,
    range: &Range,
) -> Result<Page, QueryError> {
    let mut cond = String::from("host = ? AND username = ?");
    let mut args: Vec<Value> = vec![host.to_owned().into(), user.to_owned().into()];
    if let Some(w) = &filter.with_bare {
        cond.push_str(" AND with_bare = ?");
        args.push(w.clone().into());
    }
    if let Some(w) = &filter.with_full {
        cond.push_str(" AND with_full = ?");
        args.push(w.clone().into());
    }
    if let Some(t) = filter.start {
        cond.push_str(" AND ts >= ?");
        args.push(t.into());
    }
    if let Some(t) = filter.end {
        cond.push_str(" AND ts <= ?");
        args.push(t.into());
    }
    if let Some(id) = &filter.after_id {
        bound(conn, host, user, id, ">", &mut cond, &mut args)?;
    }
    if let Some(id) = &filter.before_id {
        bound(conn, host, user, id, "<", &mut cond, &mut args)?;
    }
    if !filter.ids.is_empty() {
        for id in &filter.ids {
            key(conn, host, user, id)?;
        }
        cond.push_str(" AND id IN (");
        for (i, id) in filter.ids.iter().enumerate() {
            cond.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(id.clone().into());
        }
        cond.push(')');
    }
    let count: i64 = conn.query_row(
        &format!("SELECT count(*) FROM archive WHERE {cond}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    if let Some(id) = &range.after {
        bound(conn, host, user, id, ">", &mut cond, &mut args)?;
    }
    if let Some(id) = &range.before {
        bound(conn, host, user, id, "<", &mut cond, &mut args)?;
    }
    let order = if range.backwards { "DESC" } else { "ASC" };
    // One more than the page holds tells whether the page is the last one.
    args.push(
        i64::try_from(range.max.saturating_add(1))
            .unwrap_or(i64::MAX)
            .into(),
    );
    let mut st = conn.prepare(&format!(
        "SELECT id, ts, stanza FROM archive WHERE {cond} ORDER BY ts {order}, seq {order} LIMIT ?"
    ))?;
    let mut entries = st
        .query_map(params_from_iter(args.iter()), |r| {
            Ok(Entry {
                id: r.get(0)?,
                ts: r.get(1)?,
                stanza: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let complete = entries.len() <= range.max;
    entries.truncate(range.max);
    if range.backwards {
        entries.reverse();
    }
    Ok(Page {
        entries,
        complete,
        count: count as usize,
    })
}

/// One message by its archive id.
pub fn entry(
    conn: &Connection,
    host: &str,
    user: &str,
    id: &str,
) -> Result<Option<Entry>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, ts, stanza FROM archive WHERE id = ?1 AND host = ?2 AND username = ?3",
        )?
        .query_row(params![id, host, user], |r| {
            Ok(Entry {
                id: r.get(0)?,
                ts: r.get(1)?,
                stanza: r.get(2)?,
            })
        })
        .optional()?)
}

/// Replaces a message's stored stanza (a XEP-0424 tombstone); false if there is none.
pub fn replace(
    conn: &Connection,
    host: &str,
    user: &str,
    id: &str,
    stanza: &str,
) -> Result<bool, StorageError> {
    let n = conn
        .prepare_cached(
            "UPDATE archive SET stanza = ?4 WHERE id = ?1 AND host = ?2 AND username = ?3",
        )?
        .execute(params![id, host, user, stanza])?;
    Ok(n > 0)
}

/// A message's archive id and timestamp.
pub type Stamped = (String, i64);

/// The first and the last message of an account's archive, if any.
pub fn bounds(
    conn: &Connection,
    host: &str,
    user: &str,
) -> Result<Option<(Stamped, Stamped)>, StorageError> {
    let one = |order: &str| -> Result<Option<Stamped>, StorageError> {
        Ok(conn
            .prepare_cached(&format!(
                "SELECT id, ts FROM archive WHERE host = ?1 AND username = ?2
                 ORDER BY ts {order}, seq {order} LIMIT 1"
            ))?
            .query_row(params![host, user], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    };
    Ok(one("ASC")?.zip(one("DESC")?))
}

/// Number of messages in an account's archive.
pub fn count(conn: &Connection, host: &str, user: &str) -> Result<usize, StorageError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM archive WHERE host = ?1 AND username = ?2",
        params![host, user],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Deletes messages older than `cutoff` (Unix seconds), oldest first in each account, at
/// most `limit` in all; returns how many went. Only the oldest go, so an archive never has
/// holes (XEP-0313 §3.2).
pub fn expire(conn: &Connection, cutoff: i64, limit: usize) -> Result<usize, StorageError> {
    let mut left = limit;
    // Accounts' archives and rooms' (their host is the group chat service's).
    let owners: Vec<(String, String)> = conn
        .prepare_cached("SELECT DISTINCT host, username FROM archive")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (host, user) in owners {
        if left == 0 {
            break;
        }
        let n = conn
            .prepare_cached(
                "DELETE FROM archive WHERE seq IN (
                     SELECT seq FROM archive WHERE host = ?1 AND username = ?2 AND ts < ?3
                     ORDER BY ts, seq LIMIT ?4)",
            )?
            .execute(params![host, user, cutoff, left as i64])?;
        left -= n.min(left);
    }
    Ok(limit - left)
}

fn lines(jids: &[String]) -> String {
    jids.join("\n")
}

fn unlines(s: String) -> Vec<String> {
    s.split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An account's archiving preferences, if it ever set them.
pub fn prefs(conn: &Connection, host: &str, user: &str) -> Result<Option<Prefs>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT default_mode, always, never FROM archive_prefs
             WHERE host = ?1 AND username = ?2",
        )?
        .query_row(params![host, user], |r| {
            let mode: String = r.get(0)?;
            Ok(Prefs {
                default: DefaultMode::parse(&mode).unwrap_or_default(),
                always: unlines(r.get(1)?),
                never: unlines(r.get(2)?),
            })
        })
        .optional()?)
}

/// Replaces an account's archiving preferences.
pub fn set_prefs(
    conn: &Connection,
    host: &str,
    user: &str,
    prefs: &Prefs,
) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO archive_prefs (host, username, default_mode, always, never)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (host, username) DO UPDATE SET default_mode = excluded.default_mode,
             always = excluded.always, never = excluded.never",
        params![
            host,
            user,
            prefs.default.name(),
            lines(&prefs.always),
            lines(&prefs.never)
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_db as db;

    fn add(c: &Connection, user: &str, id: &str, with: &str, now: i64) -> i64 {
        let bare = with.split('/').next().unwrap();
        insert(
            c,
            &NewEntry {
                host: "h",
                username: user,
                id,
                with_bare: bare,
                with_full: with,
                stanza: &format!("<message id='{id}'/>"),
                now,
            },
        )
        .unwrap()
    }

    /// 10 messages m0..m9 for kid, at t = 100, 100, 101, 101, … with dad (even) and
    /// mom/phone (odd); one for mom.
    fn sample() -> Connection {
        let c = db();
        for i in 0..10 {
            let with = if i % 2 == 0 { "dad@h" } else { "mom@h/phone" };
            add(&c, "kid", &format!("m{i}"), with, 100 + i / 2);
        }
        add(&c, "mom", "other", "kid@h", 100);
        c
    }

    fn ids(p: &Page) -> Vec<&str> {
        p.entries.iter().map(|e| e.id.as_str()).collect()
    }

    fn page(after: Option<&str>, before: Option<&str>, backwards: bool, max: usize) -> Range {
        Range {
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
            backwards,
            max,
        }
    }

    fn run(c: &Connection, f: &Filter, r: &Range) -> Page {
        query(c, "h", "kid", f, r).unwrap()
    }

    #[test]
    fn pages_forwards_and_backwards() {
        let c = sample();
        let all = Filter::default();
        let p = run(&c, &all, &page(None, None, false, 4));
        assert_eq!(ids(&p), ["m0", "m1", "m2", "m3"]);
        assert!(!p.complete);
        assert_eq!(p.count, 10);
        let p = run(&c, &all, &page(Some("m3"), None, false, 4));
        assert_eq!(ids(&p), ["m4", "m5", "m6", "m7"]);
        let p = run(&c, &all, &page(Some("m7"), None, false, 4));
        assert_eq!(ids(&p), ["m8", "m9"]);
        assert!(p.complete);
        // Exactly a full last page is complete too.
        let p = run(&c, &all, &page(Some("m5"), None, false, 4));
        assert_eq!(ids(&p), ["m6", "m7", "m8", "m9"]);
        assert!(p.complete);
        // Backwards: the last page, then the ones before, each in archive order.
        let p = run(&c, &all, &page(None, None, true, 4));
        assert_eq!(ids(&p), ["m6", "m7", "m8", "m9"]);
        assert!(!p.complete);
        let p = run(&c, &all, &page(None, Some("m6"), true, 4));
        assert_eq!(ids(&p), ["m2", "m3", "m4", "m5"]);
        let p = run(&c, &all, &page(None, Some("m2"), true, 4));
        assert_eq!(ids(&p), ["m0", "m1"]);
        assert!(p.complete);
        // max 0: only the count.
        let p = run(&c, &all, &page(None, None, false, 0));
        assert!(p.entries.is_empty());
        assert_eq!(p.count, 10);
        assert!(!p.complete);
        // Another account's ids are unknown here.
        assert!(matches!(
            query(&c, "h", "kid", &all, &page(Some("other"), None, false, 4)),
            Err(QueryError::UnknownId(id)) if id == "other"
        ));
    }

    #[test]
    fn filters() {
        let c = sample();
        let f = |f: Filter| ids(&run(&c, &f, &page(None, None, false, 100))).join(" ");
        let dad = Filter {
            with_bare: Some("dad@h".into()),
            ..Filter::default()
        };
        assert_eq!(f(dad), "m0 m2 m4 m6 m8");
        let phone = Filter {
            with_bare: Some("mom@h".into()),
            with_full: Some("mom@h/phone".into()),
            ..Filter::default()
        };
        assert_eq!(f(phone), "m1 m3 m5 m7 m9");
        let tablet = Filter {
            with_bare: Some("mom@h".into()),
            with_full: Some("mom@h/tablet".into()),
            ..Filter::default()
        };
        assert_eq!(f(tablet), "");
        let time = Filter {
            start: Some(101),
            end: Some(102),
            ..Filter::default()
        };
        assert_eq!(f(time), "m2 m3 m4 m5");
        let between = Filter {
            after_id: Some("m2".into()),
            before_id: Some("m6".into()),
            ..Filter::default()
        };
        assert_eq!(f(between), "m3 m4 m5");
        let some = Filter {
            ids: vec!["m7".into(), "m1".into()],
            ..Filter::default()
        };
        assert_eq!(f(some), "m1 m7");
        let unknown = Filter {
            ids: vec!["m1".into(), "nope".into()],
            ..Filter::default()
        };
        assert!(matches!(
            query(&c, "h", "kid", &unknown, &page(None, None, false, 9)),
            Err(QueryError::UnknownId(id)) if id == "nope"
        ));
        // Filters and paging combine; the count is of the whole filtered set.
        let dad = Filter {
            with_bare: Some("dad@h".into()),
            ..Filter::default()
        };
        let p = run(&c, &dad, &page(Some("m2"), None, false, 2));
        assert_eq!(ids(&p), ["m4", "m6"]);
        assert_eq!(p.count, 5);
        assert!(!p.complete);
    }

    #[test]
    fn time_never_goes_back_within_an_account() {
        let c = db();
        assert_eq!(add(&c, "kid", "a", "dad@h", 500), 500);
        // The clock stepped back: the message is still after the previous one.
        assert_eq!(add(&c, "kid", "b", "dad@h", 400), 500);
        assert_eq!(add(&c, "kid", "c", "dad@h", 600), 600);
        // Other accounts are not affected.
        assert_eq!(add(&c, "mom", "d", "dad@h", 400), 400);
        let p = query(
            &c,
            "h",
            "kid",
            &Filter::default(),
            &page(None, None, false, 10),
        )
        .unwrap();
        assert_eq!(ids(&p), ["a", "b", "c"]);
        assert_eq!(
            bounds(&c, "h", "kid").unwrap(),
            Some((("a".into(), 500), ("c".into(), 600)))
        );
        assert_eq!(bounds(&c, "h", "gran").unwrap(), None);
    }

    #[test]
    fn ids_are_unique() {
        let c = db();
        add(&c, "kid", "same", "dad@h", 1);
        let again = insert(
            &c,
            &NewEntry {
                host: "h",
                username: "mom",
                id: "same",
                with_bare: "dad@h",
                with_full: "dad@h",
                stanza: "<message/>",
                now: 1,
            },
        );
        assert!(again.is_err());
    }

    #[test]
    fn expiry_removes_the_oldest_within_a_limit() {
        let c = db();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        for u in ["kid", "mom"] {
            super::super::accounts::create(&c, "h", u, &creds).unwrap();
        }
        for i in 0..5 {
            add(&c, "kid", &format!("k{i}"), "dad@h", 10 * i);
            add(&c, "mom", &format!("m{i}"), "dad@h", 10 * i);
        }
        // Older than 30: three each; at most 4 this pass.
        assert_eq!(expire(&c, 30, 4).unwrap(), 4);
        assert_eq!(expire(&c, 30, 4).unwrap(), 2);
        assert_eq!(expire(&c, 30, 4).unwrap(), 0);
        for u in ["kid", "mom"] {
            assert_eq!(count(&c, "h", u).unwrap(), 2);
            assert_eq!(bounds(&c, "h", u).unwrap().unwrap().0 .1, 30);
        }
    }

    #[test]
    fn prefs_round_trip() {
        let c = db();
        assert_eq!(prefs(&c, "h", "kid").unwrap(), None);
        let p = Prefs {
            default: DefaultMode::Roster,
            always: vec!["dad@h".into(), "mom@h/phone".into()],
            never: vec![],
        };
        set_prefs(&c, "h", "kid", &p).unwrap();
        assert_eq!(prefs(&c, "h", "kid").unwrap(), Some(p));
        let q = Prefs {
            default: DefaultMode::Never,
            always: vec![],
            never: vec!["gran@h".into()],
        };
        set_prefs(&c, "h", "kid", &q).unwrap();
        assert_eq!(prefs(&c, "h", "kid").unwrap(), Some(q));
        assert_eq!(prefs(&c, "h", "mom").unwrap(), None);
    }
}
