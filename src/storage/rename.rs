//! `roost rename-domain OLD NEW`: moves every account and everything stored for it from
//! one domain to another, in one transaction.
//!
//! Three kinds of columns name the domain: `host` columns (every table that has one), JIDs
//! (roster contacts, blocked JIDs, archive correspondents, archive preference lists) and
//! serialized XML (stored stanzas, vCards, private XML, PEP items), whose `to`, `from`,
//! `jid`… attributes are rewritten. Our service subdomains (`groups.`, `upload.`) move
//! with the domain; other domains, message bodies and other text are left as they are.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// Service subdomains that belong to the served domain and move with it.
pub const SERVICES: &[&str] = &["groups", "upload"];

/// Columns holding one JID each: (table, column).
const JID_COLUMNS: &[(&str, &str)] = &[
    ("roster", "contact"),
    ("blocklist", "jid"),
    ("archive", "with_bare"),
    ("archive", "with_full"),
    ("muc_affiliations", "jid"),
    ("push_registrations", "jid"),
    // a domain (`groups.<domain>`), which `rename_jid` renames like a JID
    ("circles", "room_host"),
    ("invites", "creator"),
];

/// Columns holding JIDs one a line.
const JID_LIST_COLUMNS: &[(&str, &str)] =
    &[("archive_prefs", "always"), ("archive_prefs", "never")];

/// Columns holding serialized XML.
const XML_COLUMNS: &[(&str, &str)] = &[
    ("roster", "request"),
    ("offline", "stanza"),
    ("archive", "stanza"),
    ("vcard", "xml"),
    ("private_storage", "xml"),
    ("pep_items", "xml"),
];

/// What was moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Renamed {
    pub accounts: usize,
    /// Rows whose JIDs or XML were rewritten.
    pub rewritten: usize,
}

/// `jid` with its domain renamed from `old` to `new` (also `groups.old` and the other
/// services), or `None` if it is not on `old`.
pub fn rename_jid(jid: &str, old: &str, new: &str) -> Option<String> {
    let (bare, resource) = match jid.find('/') {
        Some(i) => jid.split_at(i),
        None => (jid, ""),
    };
    let (local, domain) = match bare.rfind('@') {
        Some(i) => bare.split_at(i + 1),
        None => ("", bare),
    };
    let renamed = if domain == old {
        new.to_owned()
    } else {
        let service = domain.strip_suffix(old)?.strip_suffix('.')?;
        if !SERVICES.contains(&service) {
            return None;
        }
        format!("{service}.{new}")
    };
    Some(format!("{local}{renamed}{resource}"))
}

/// Serialized XML with every attribute value that is a JID on `old` renamed; `None` if
/// nothing changed. Relies on roost's serializer, which escapes quotes in text, so that a
/// quote after `=` only occurs in a tag.
pub fn rename_in_xml(xml: &str, old: &str, new: &str) -> Option<String> {
    let mut out = String::with_capacity(xml.len() + 16);
    let mut rest = xml;
    let mut changed = false;
    while let Some(i) = rest.find(['\'', '"']) {
        let quote = rest.as_bytes()[i] as char;
        let after_equals = i > 0 && rest.as_bytes()[i - 1] == b'=';
        let close = rest[i + 1..].find(quote);
        match close {
            Some(len) if after_equals => {
                let value = &rest[i + 1..i + 1 + len];
                out.push_str(&rest[..=i]);
                match rename_jid(value, old, new) {
                    Some(v) => {
                        out.push_str(&v);
                        changed = true;
                    }
                    None => out.push_str(value),
                }
                out.push(quote);
                rest = &rest[i + 2 + len..];
            }
            _ => {
                out.push_str(&rest[..=i]);
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn rename_lines(text: &str, old: &str, new: &str) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| match rename_jid(l, old, new) {
            Some(r) if !l.is_empty() => {
                changed = true;
                r
            }
            _ => l.to_owned(),
        })
        .collect();
    changed.then(|| lines.join("\n"))
}

/// True if `table` is a rowid table (a `WITHOUT ROWID` table has no `rowid`).
fn has_rowid(conn: &Connection, table: &str) -> bool {
    conn.prepare(&format!("SELECT rowid FROM {table} LIMIT 0"))
        .is_ok()
}

/// Rewrites the values of `table.column` that mention `old` with `f`; returns how many rows
/// changed.
fn rewrite(
    conn: &Connection,
    table: &str,
    column: &str,
    old: &str,
    f: impl Fn(&str) -> Option<String>,
) -> Result<usize, StorageError> {
    let mut changed = 0;
    if has_rowid(conn, table) {
        let rows: Vec<(i64, String)> = conn
            .prepare(&format!(
                "SELECT rowid, {column} FROM {table} WHERE instr({column}, ?1) > 0"
            ))?
            .query_map(params![old], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut update = conn.prepare(&format!(
            "UPDATE {table} SET {column} = ?1 WHERE rowid = ?2"
        ))?;
        for (rowid, value) in rows {
            if let Some(v) = f(&value) {
                update.execute(params![v, rowid])?;
                changed += 1;
            }
        }
    } else {
        let values: Vec<String> = conn
            .prepare(&format!(
                "SELECT DISTINCT {column} FROM {table} WHERE instr({column}, ?1) > 0"
            ))?
            .query_map(params![old], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut update = conn.prepare(&format!(
            "UPDATE {table} SET {column} = ?1 WHERE {column} = ?2"
        ))?;
        for value in values {
            if let Some(v) = f(&value) {
                changed += update.execute(params![v, value])?;
            }
        }
    }
    Ok(changed)
}

/// Every table with a `host` column.
fn host_tables(conn: &Connection) -> Result<Vec<String>, StorageError> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut with_host = Vec::new();
    for t in tables {
        let has = conn
            .query_row(
                "SELECT 1 FROM pragma_table_info(?1) WHERE name = 'host'",
                params![t],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if has {
            with_host.push(t);
        }
    }
    Ok(with_host)
}

/// Moves every account and its data from `old` to `new` (both normalized domains) in one
/// transaction; on any error nothing is changed.
pub fn rename_domain(conn: &mut Connection, old: &str, new: &str) -> Result<Renamed, StorageError> {
    if old == new {
        return Err(StorageError::Refused(format!(
            "the old and the new domain are the same ({old})"
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let served = super::accounts::served_domain(&tx)?;
    let count = |host: &str| -> Result<usize, StorageError> {
        Ok(tx.query_row(
            "SELECT count(*) FROM accounts WHERE host = ?1",
            params![host],
            |r| r.get::<_, i64>(0),
        )? as usize)
    };
    let accounts = count(old)?;
    match served.as_deref() {
        // The usual case, and a database with no recorded domain.
        Some(s) if s == old => {}
        None if accounts > 0 => {}
        // An older roost relabelled the database to NEW and left OLD's accounts behind:
        // they join NEW's.
        Some(s) if s == new && accounts > 0 => {}
        Some(s) if s != new => {
            return Err(StorageError::Refused(format!(
                "this data directory serves {s}, not {old}: nothing was changed"
            )))
        }
        _ => {
            return Err(StorageError::Refused(format!(
                "this data directory holds no accounts of {old}: nothing was changed"
            )))
        }
    }
    let both: Vec<String> = tx
        .prepare(
            "SELECT username FROM accounts WHERE host = ?1
             AND username IN (SELECT username FROM accounts WHERE host = ?2)
             ORDER BY username",
        )?
        .query_map(params![old, new], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if !both.is_empty() {
        return Err(StorageError::Refused(format!(
            "{} exist(s) both at {old} and at {new}: remove the ones at {new} first \
             (`roost deluser NAME@{new}`) if those at {old} are to be kept; nothing was \
             changed",
            both.join(", ")
        )));
    }
    for table in host_tables(&tx)? {
        tx.execute(
            &format!("UPDATE {table} SET host = ?1 WHERE host = ?2"),
            params![new, old],
        )?;
        // Rooms' archives and vCards are kept under the service's domain.
        for service in SERVICES {
            tx.execute(
                &format!("UPDATE {table} SET host = ?1 WHERE host = ?2"),
                params![format!("{service}.{new}"), format!("{service}.{old}")],
            )?;
        }
    }
    // The group chat service's domain and the family room's JID.
    for key in ["muc_domain", "family_room"] {
        let value: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(v) = value.and_then(|v| rename_jid(&v, old, new)) {
            tx.execute("UPDATE meta SET value = ?1 WHERE key = ?2", params![v, key])?;
        }
    }
    let mut rewritten = 0;
    for (table, column) in JID_COLUMNS {
        rewritten += rewrite(&tx, table, column, old, |v| rename_jid(v, old, new))?;
    }
    for (table, column) in JID_LIST_COLUMNS {
        rewritten += rewrite(&tx, table, column, old, |v| rename_lines(v, old, new))?;
    }
    for (table, column) in XML_COLUMNS {
        rewritten += rewrite(&tx, table, column, old, |v| rename_in_xml(v, old, new))?;
    }
    super::accounts::set_served_domain(&tx, new)?;
    tx.commit()?;
    Ok(Renamed {
        accounts,
        rewritten,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_db;

    #[test]
    fn jids_on_the_domain_and_its_services_are_renamed_others_are_not() {
        let r = |j| rename_jid(j, "localhost", "example.org");
        assert_eq!(r("mom@localhost").as_deref(), Some("mom@example.org"));
        assert_eq!(
            r("mom@localhost/phone").as_deref(),
            Some("mom@example.org/phone")
        );
        assert_eq!(r("localhost").as_deref(), Some("example.org"));
        assert_eq!(
            r("room@groups.localhost").as_deref(),
            Some("room@groups.example.org")
        );
        assert_eq!(r("bob@other.example"), None);
        assert_eq!(r("bob@mail.localhost"), None, "not one of our services");
        assert_eq!(r("bob@notlocalhost"), None);
        assert_eq!(
            r("bob@elsewhere/localhost"),
            None,
            "a resource is not a domain"
        );
    }

    #[test]
    fn xml_attributes_are_renamed_but_not_text() {
        let xml = "<message from='dad@localhost/pc' to=\"mom@localhost\" id='x'>\
                   <body>write to mom@localhost or =&apos;localhost&apos;</body>\
                   <x jid='room@groups.localhost'/></message>";
        let out = rename_in_xml(xml, "localhost", "example.org").unwrap();
        assert_eq!(
            out,
            "<message from='dad@example.org/pc' to=\"mom@example.org\" id='x'>\
             <body>write to mom@localhost or =&apos;localhost&apos;</body>\
             <x jid='room@groups.example.org'/></message>"
        );
        assert_eq!(rename_in_xml("<m to='a@b'/>", "localhost", "x.org"), None);
    }

    /// Every TEXT column of the schema is either rewritten by the rename or listed here as
    /// one that never holds a JID: a new table must be looked at before this passes.
    #[test]
    fn every_text_column_is_known() {
        const NO_JIDS: &[&str] = &[
            "meta.key",
            "meta.value",
            "accounts.host",
            "accounts.username",
            "roster.username",
            "roster.name",
            "roster.groups",
            "roster.subscription",
            "offline.stamp",
            "archive.id",
            "archive_prefs.default_mode",
            "private_storage.ns",
            "private_storage.name",
            "pep_nodes.node",
            "pep_nodes.access_model",
            "pep_nodes.send_last",
            "pep_nodes.title",
            "pep_items.node",
            "pep_items.item_id",
            "last_activity.status",
            "kicks.reason",
            "fast_tokens.client",
            "fast_tokens.mechanism",
            "muc_rooms.name",
            "muc_rooms.config",
            "muc_rooms.subject",
            "muc_rooms.subject_nick",
            "muc_affiliations.room",
            "muc_affiliations.affiliation",
            "muc_affiliations.nick",
            "muc_affiliations.reason",
            "push_registrations.node",
            "push_registrations.resource",
            "push_registrations.options",
            "uploads.id",
            "uploads.filename",
            "uploads.content_type",
            "accounts.role",
            "circles.name",
            "circles.title",
            "circle_members.circle",
            // transient: rows older than a day are removed
            "kicks.detail",
            "invites.key",
            "invites.kind",
            "invites.role",
            "invites.circle",
        ];
        let c = test_db();
        let hosts = host_tables(&c).unwrap();
        let tables: Vec<String> = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for t in tables {
            let cols: Vec<(String, String)> = c
                .prepare("SELECT name, type FROM pragma_table_info(?1)")
                .unwrap()
                .query_map([&t], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (col, ty) in cols {
                if ty != "TEXT" || col == "host" || col == "username" {
                    if col == "host" {
                        assert!(hosts.contains(&t), "{t}");
                    }
                    continue;
                }
                let known = NO_JIDS.contains(&format!("{t}.{col}").as_str())
                    || [JID_COLUMNS, JID_LIST_COLUMNS, XML_COLUMNS]
                        .iter()
                        .any(|l| l.contains(&(t.as_str(), col.as_str())));
                assert!(known, "{t}.{col}: does the rename have to rewrite it?");
            }
        }
    }

    #[test]
    fn rename_moves_everything_in_one_transaction() {
        use crate::storage::{accounts, archive, offline, roster};
        let mut c = test_db();
        accounts::set_served_domain(&c, "localhost").unwrap();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        accounts::create(&c, "localhost", "mom", &creds).unwrap();
        accounts::create(&c, "localhost", "dad", &creds).unwrap();
        let mut item = roster::Item::new("dad@localhost");
        item.state = crate::subscription::State::Both;
        roster::put(&c, "localhost", "mom", &item).unwrap();
        roster::put(
            &c,
            "localhost",
            "mom",
            &roster::Item::new("bob@far.example"),
        )
        .unwrap();
        offline::store(
            &c,
            "localhost",
            "mom",
            "s",
            "<message from='dad@localhost/pc' to='mom@localhost'><body>hi</body></message>",
            10,
        )
        .unwrap();
        archive::insert(
            &c,
            &archive::NewEntry {
                host: "localhost",
                username: "mom",
                id: "a1",
                with_bare: "dad@localhost",
                with_full: "dad@localhost/pc",
                stanza: "<message from='dad@localhost/pc'/>",
                now: 1,
            },
        )
        .unwrap();
        let r = rename_domain(&mut c, "localhost", "example.org").unwrap();
        assert_eq!(r.accounts, 2);
        assert_eq!(
            accounts::served_domain(&c).unwrap().as_deref(),
            Some("example.org")
        );
        assert_eq!(
            accounts::list(&c).unwrap(),
            vec![
                ("example.org".into(), "dad".into()),
                ("example.org".into(), "mom".into())
            ]
        );
        assert_eq!(
            accounts::credentials(&c, "example.org", "mom").unwrap(),
            Some(creds)
        );
        let contacts: Vec<String> = roster::items(&c, "example.org", "mom")
            .unwrap()
            .into_iter()
            .map(|i| i.contact)
            .collect();
        assert!(
            contacts.contains(&"dad@example.org".to_string()),
            "{contacts:?}"
        );
        assert!(
            contacts.contains(&"bob@far.example".to_string()),
            "{contacts:?}"
        );
        assert_eq!(offline::count(&c, "example.org", "mom").unwrap(), 1);
        assert_eq!(archive::count(&c, "example.org", "mom").unwrap(), 1);
        let (with, stanza): (String, String) = c
            .query_row("SELECT with_full, stanza FROM archive", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(with, "dad@example.org/pc");
        assert_eq!(stanza, "<message from='dad@example.org/pc'/>");
        // No row anywhere still names the old domain.
        for t in host_tables(&c).unwrap() {
            let n: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE host = 'localhost'"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 0, "{t}");
        }
        // Renaming again from the old name is refused and changes nothing.
        assert!(matches!(
            rename_domain(&mut c, "localhost", "other.example"),
            Err(StorageError::Refused(_))
        ));
        assert_eq!(accounts::list(&c).unwrap().len(), 2);
    }

    #[test]
    fn accounts_left_behind_by_a_relabelled_database_join_the_served_domain() {
        use crate::storage::accounts;
        let mut c = test_db();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        accounts::create(&c, "localhost", "mom", &creds).unwrap();
        accounts::create(&c, "localhost", "dad", &creds).unwrap();
        // What an older roost did on `serve --domain example.org`.
        accounts::set_served_domain(&c, "example.org").unwrap();
        accounts::create(&c, "example.org", "dad", &creds).unwrap();
        assert_eq!(
            accounts::other_hosts(&c, "example.org").unwrap(),
            vec![("localhost".to_string(), 2)]
        );
        // dad is at both: refused, nothing changed.
        let err = rename_domain(&mut c, "localhost", "example.org").unwrap_err();
        assert!(err.to_string().contains("dad exist(s) both"), "{err}");
        assert_eq!(accounts::list(&c).unwrap().len(), 3);
        accounts::delete(&mut c, "example.org", "dad").unwrap();
        let r = rename_domain(&mut c, "localhost", "example.org").unwrap();
        assert_eq!(r.accounts, 2);
        assert_eq!(
            accounts::list(&c).unwrap(),
            vec![
                ("example.org".into(), "dad".into()),
                ("example.org".into(), "mom".into())
            ]
        );
        assert!(accounts::other_hosts(&c, "example.org").unwrap().is_empty());
    }

    #[test]
    fn a_failing_rename_changes_nothing() {
        use crate::storage::{accounts, roster};
        let mut c = test_db();
        accounts::set_served_domain(&c, "localhost").unwrap();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        accounts::create(&c, "localhost", "mom", &creds).unwrap();
        // Two contacts that would become the same one: the roster's key refuses it.
        roster::put(&c, "localhost", "mom", &roster::Item::new("bob@localhost")).unwrap();
        roster::put(
            &c,
            "localhost",
            "mom",
            &roster::Item::new("bob@example.org"),
        )
        .unwrap();
        assert!(rename_domain(&mut c, "localhost", "example.org").is_err());
        assert_eq!(
            accounts::served_domain(&c).unwrap().as_deref(),
            Some("localhost")
        );
        assert!(accounts::exists(&c, "localhost", "mom").unwrap());
        assert_eq!(roster::items(&c, "localhost", "mom").unwrap().len(), 2);
    }
}
