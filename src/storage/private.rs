//! Private XML storage (XEP-0049): serialized elements per account, keyed by the element's
//! name and namespace.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension};

/// The stored element `name` in namespace `ns`, as serialized XML.
pub fn get(
    conn: &Connection,
    host: &str,
    user: &str,
    name: &str,
    ns: &str,
) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT xml FROM private_storage
             WHERE host = ?1 AND username = ?2 AND ns = ?3 AND name = ?4",
            params![host, user, ns, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// One element to store: its name, namespace and serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ns: String,
    pub xml: String,
}

/// Stores (replacing) `entries` in one transaction, unless the account's stored XML would then
/// exceed `quota` bytes in all; returns false (storing nothing) in that case.
pub fn set(
    conn: &mut Connection,
    host: &str,
    user: &str,
    entries: &[Entry],
    quota: usize,
) -> Result<bool, StorageError> {
    let tx = conn.savepoint()?;
    for e in entries {
        tx.execute(
            "INSERT INTO private_storage (host, username, ns, name, xml)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, username, ns, name) DO UPDATE SET xml = excluded.xml",
            params![host, user, e.ns, e.name, e.xml],
        )?;
    }
    let total: i64 = tx.query_row(
        "SELECT COALESCE(SUM(length(CAST(xml AS BLOB))), 0) FROM private_storage
         WHERE host = ?1 AND username = ?2",
        params![host, user],
        |r| r.get(0),
    )?;
    if total as u64 > quota as u64 {
        // Dropping the transaction rolls it back.
        return Ok(false);
    }
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_db as db;

    fn entry(name: &str, ns: &str, xml: &str) -> Entry {
        Entry {
            name: name.into(),
            ns: ns.into(),
            xml: xml.into(),
        }
    }

    #[test]
    fn keyed_by_account_name_and_namespace() {
        let mut c = db();
        let a = entry("prefs", "a:ns", "<prefs xmlns='a:ns'>1</prefs>");
        let b = entry("prefs", "b:ns", "<prefs xmlns='b:ns'>2</prefs>");
        let other = entry("other", "a:ns", "<other xmlns='a:ns'/>");
        assert!(set(
            &mut c,
            "h",
            "mom",
            &[a.clone(), b.clone(), other.clone()],
            1000
        )
        .unwrap());
        assert_eq!(get(&c, "h", "mom", "prefs", "a:ns").unwrap(), Some(a.xml));
        assert_eq!(get(&c, "h", "mom", "prefs", "b:ns").unwrap(), Some(b.xml));
        assert_eq!(
            get(&c, "h", "mom", "other", "a:ns").unwrap(),
            Some(other.xml)
        );
        assert_eq!(get(&c, "h", "dad", "prefs", "a:ns").unwrap(), None);
        assert_eq!(get(&c, "h", "mom", "prefs", "c:ns").unwrap(), None);
        let a2 = entry("prefs", "a:ns", "<prefs xmlns='a:ns'>3</prefs>");
        assert!(set(&mut c, "h", "mom", std::slice::from_ref(&a2), 1000).unwrap());
        assert_eq!(get(&c, "h", "mom", "prefs", "a:ns").unwrap(), Some(a2.xml));
    }

    #[test]
    fn quota_counts_bytes_after_replacement_and_stores_nothing_over_it() {
        let mut c = db();
        let big = |tag: &str, n: usize| {
            entry(
                tag,
                "q",
                &format!("<{tag} xmlns='q'>{}</{tag}>", "é".repeat(n)),
            )
        };
        // 13 + 2*40 + 4 = 97 bytes (characters would be 57): within 100.
        let first = big("a", 40);
        assert!(set(&mut c, "h", "mom", std::slice::from_ref(&first), 100).unwrap());
        // Replacing it with one of the same size stays within the quota.
        assert!(set(&mut c, "h", "mom", &[big("a", 40)], 100).unwrap());
        // A second one of that size does not fit: nothing of this call is stored.
        assert!(!set(&mut c, "h", "mom", &[big("a", 1), big("b", 40)], 100).unwrap());
        assert_eq!(get(&c, "h", "mom", "a", "q").unwrap(), Some(first.xml));
        assert_eq!(get(&c, "h", "mom", "b", "q").unwrap(), None);
        // Another account has its own quota.
        assert!(set(&mut c, "h", "dad", &[big("b", 40)], 100).unwrap());
    }

    #[test]
    fn deleting_the_account_deletes_its_private_xml() {
        let mut c = db();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        super::super::accounts::create(&c, "h", "mom", &creds).unwrap();
        assert!(set(
            &mut c,
            "h",
            "mom",
            &[entry("p", "x", "<p xmlns='x'/>")],
            100
        )
        .unwrap());
        super::super::accounts::delete(&mut c, "h", "mom").unwrap();
        assert_eq!(get(&c, "h", "mom", "p", "x").unwrap(), None);
    }
}
