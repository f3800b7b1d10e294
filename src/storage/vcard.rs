//! vCards (XEP-0054 vcard-temp): one serialized `<vCard/>` per account.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension};

/// The account's stored vCard, as serialized XML.
pub fn get(conn: &Connection, host: &str, user: &str) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT xml FROM vcard WHERE host = ?1 AND username = ?2",
            params![host, user],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores (replacing) the account's vCard.
pub fn set(conn: &Connection, host: &str, user: &str, xml: &str) -> Result<(), StorageError> {
    conn.execute(
        "INSERT INTO vcard (host, username, xml) VALUES (?1, ?2, ?3)
         ON CONFLICT (host, username) DO UPDATE SET xml = excluded.xml",
        params![host, user, xml],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_db as db;

    #[test]
    fn set_get_replace_per_account() {
        let c = db();
        assert_eq!(get(&c, "h", "mom").unwrap(), None);
        set(&c, "h", "mom", "<vCard xmlns='vcard-temp'/>").unwrap();
        set(
            &c,
            "h",
            "mom",
            "<vCard xmlns='vcard-temp'><FN>Mom</FN></vCard>",
        )
        .unwrap();
        assert_eq!(
            get(&c, "h", "mom").unwrap().as_deref(),
            Some("<vCard xmlns='vcard-temp'><FN>Mom</FN></vCard>")
        );
        assert_eq!(get(&c, "h", "dad").unwrap(), None);
        assert_eq!(get(&c, "other", "mom").unwrap(), None);
    }

    #[test]
    fn deleting_the_account_deletes_the_vcard() {
        let mut c = db();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        super::super::accounts::create(&c, "h", "mom", &creds).unwrap();
        set(&c, "h", "mom", "<vCard xmlns='vcard-temp'/>").unwrap();
        super::super::accounts::delete(&mut c, "h", "mom").unwrap();
        assert_eq!(get(&c, "h", "mom").unwrap(), None);
    }
}
