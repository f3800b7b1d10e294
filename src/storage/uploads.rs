//! XEP-0363 upload slots and files: who asked, for what name, size and type, and whether
//! the file is complete. Quotas are checked and the slot reserved in one transaction, so
//! requests racing each other cannot overshoot a limit.

use super::StorageError;
use rusqlite::{params, Connection, OptionalExtension};

/// A slot, as given to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub host: String,
    pub username: String,
    pub filename: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub created: i64,
    pub done: bool,
}

/// The limits a new slot must fit in (bytes).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub quota: u64,
    pub daily_quota: u64,
    pub disk_cap: u64,
}

/// Why a slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account's files (kept and pending) would exceed its quota.
    Quota { used: u64 },
    /// The account's uploads of the last 24 hours would exceed the daily limit; the
    /// oldest of them ends its day at `retry_at` (Unix seconds).
    Daily { retry_at: i64 },
    /// All files together would exceed the server's cap.
    Disk,
}

fn sum(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<u64, StorageError> {
    let n: i64 = conn.query_row(sql, p, |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Checks the limits and records `slot`, or says which limit it would break.
pub fn reserve(
    conn: &mut Connection,
    slot: &Slot,
    limits: &Limits,
) -> Result<Result<(), Refusal>, StorageError> {
    let tx = conn.savepoint()?;
    let used = sum(
        &tx,
        "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE host = ?1 AND username = ?2",
        params![slot.host, slot.username],
    )?;
    if used.saturating_add(slot.size) > limits.quota {
        return Ok(Err(Refusal::Quota { used }));
    }
    let day_start = slot.created - 24 * 3600;
    let today = sum(
        &tx,
        "SELECT COALESCE(SUM(size), 0) FROM uploads
         WHERE host = ?1 AND username = ?2 AND created > ?3",
        params![slot.host, slot.username, day_start],
    )?;
    if today.saturating_add(slot.size) > limits.daily_quota {
        let oldest: Option<i64> = tx.query_row(
            "SELECT MIN(created) FROM uploads WHERE host = ?1 AND username = ?2 AND created > ?3",
            params![slot.host, slot.username, day_start],
            |r| r.get(0),
        )?;
        let retry_at = oldest.unwrap_or(slot.created) + 24 * 3600;
        return Ok(Err(Refusal::Daily { retry_at }));
    }
    let all = sum(&tx, "SELECT COALESCE(SUM(size), 0) FROM uploads", [])?;
    if all.saturating_add(slot.size) > limits.disk_cap {
        return Ok(Err(Refusal::Disk));
    }
    tx.execute(
        "INSERT INTO uploads (id, host, username, filename, size, content_type, created, done)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        params![
            slot.id,
            slot.host,
            slot.username,
            slot.filename,
            slot.size as i64,
            slot.content_type,
            slot.created
        ],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

/// The slot `id`, if it exists.
pub fn find(conn: &Connection, id: &str) -> Result<Option<Slot>, StorageError> {
    Ok(conn
        .query_row(
            "SELECT id, host, username, filename, size, content_type, created, done
             FROM uploads WHERE id = ?1",
            [id],
            |r| {
                Ok(Slot {
                    id: r.get(0)?,
                    host: r.get(1)?,
                    username: r.get(2)?,
                    filename: r.get(3)?,
                    size: r.get::<_, i64>(4)?.max(0) as u64,
                    content_type: r.get(5)?,
                    created: r.get(6)?,
                    done: r.get::<_, i64>(7)? != 0,
                })
            },
        )
        .optional()?)
}

/// Marks the slot's file complete; false if the slot is gone (expired, or its account
/// deleted, while the upload ran) or was already complete.
pub fn complete(conn: &Connection, id: &str) -> Result<bool, StorageError> {
    Ok(conn.execute(
        "UPDATE uploads SET done = 1 WHERE id = ?1 AND done = 0",
        [id],
    )? == 1)
}

/// Removes the files uploaded before `done_before` (`None`: keep them) and the slots
/// given before `pending_before` that never received their file; returns their ids.
pub fn expire(
    conn: &mut Connection,
    done_before: Option<i64>,
    pending_before: i64,
) -> Result<Vec<String>, StorageError> {
    let tx = conn.savepoint()?;
    let mut ids = Vec::new();
    {
        let mut q = tx.prepare(
            "SELECT id FROM uploads WHERE (done = 0 AND created < ?1)
             OR (done = 1 AND ?2 IS NOT NULL AND created < ?2)",
        )?;
        let rows = q.query_map(params![pending_before, done_before], |r| r.get(0))?;
        for id in rows {
            ids.push(id?);
        }
    }
    for id in &ids {
        tx.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(ids)
}

/// The ids of an account's slots and files.
pub fn ids_of(conn: &Connection, host: &str, username: &str) -> Result<Vec<String>, StorageError> {
    let mut q = conn.prepare("SELECT id FROM uploads WHERE host = ?1 AND username = ?2")?;
    let rows = q.query_map(params![host, username], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// True if `id` is a slot (for the sweep of files without one).
pub fn exists(conn: &Connection, id: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_row("SELECT 1 FROM uploads WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(id: &str, user: &str, size: u64, created: i64) -> Slot {
        Slot {
            id: id.into(),
            host: "h".into(),
            username: user.into(),
            filename: "f.jpg".into(),
            size,
            content_type: Some("image/jpeg".into()),
            created,
            done: false,
        }
    }

    const LIMITS: Limits = Limits {
        quota: 100,
        daily_quota: 60,
        disk_cap: 150,
    };

    #[test]
    fn quota_daily_limit_and_disk_cap_are_checked_before_a_slot_is_kept() {
        let mut c = super::super::test_db();
        let day = 24 * 3600;
        assert_eq!(
            reserve(&mut c, &slot("a", "mom", 50, 1000), &LIMITS).unwrap(),
            Ok(())
        );
        // 50 + 20 > 60 in the same day.
        assert_eq!(
            reserve(&mut c, &slot("b", "mom", 20, 2000), &LIMITS).unwrap(),
            Err(Refusal::Daily {
                retry_at: 1000 + day
            })
        );
        // A day later the daily limit is free again, the quota is not: 50 + 45 fits,
        // then 50 + 45 + 10 > 100.
        assert_eq!(
            reserve(&mut c, &slot("b", "mom", 45, 1000 + day + 1), &LIMITS).unwrap(),
            Ok(())
        );
        assert_eq!(
            reserve(&mut c, &slot("c", "mom", 10, 1000 + day + 2), &LIMITS).unwrap(),
            Err(Refusal::Quota { used: 95 })
        );
        // Another account: within its own limits, but 95 + 60 > 150 on disk.
        assert_eq!(
            reserve(&mut c, &slot("d", "dad", 60, 1000 + day + 3), &LIMITS).unwrap(),
            Err(Refusal::Disk)
        );
        assert_eq!(find(&c, "a").unwrap().unwrap(), slot("a", "mom", 50, 1000));
        assert!(find(&c, "d").unwrap().is_none());
    }

    #[test]
    fn expiry_takes_old_files_and_abandoned_slots() {
        let mut c = super::super::test_db();
        for (id, created) in [
            ("old", 10),
            ("new", 500),
            ("pending-old", 20),
            ("pending-new", 600),
        ] {
            reserve(&mut c, &slot(id, "mom", 1, created), &LIMITS)
                .unwrap()
                .unwrap();
        }
        assert!(complete(&c, "old").unwrap());
        assert!(complete(&c, "new").unwrap());
        assert!(!complete(&c, "new").unwrap(), "completed twice");
        let mut gone = expire(&mut c, None, 100).unwrap();
        assert_eq!(gone, vec!["pending-old".to_string()]);
        gone = expire(&mut c, Some(100), 100).unwrap();
        assert_eq!(gone, vec!["old".to_string()]);
        let mut left = ids_of(&c, "h", "mom").unwrap();
        left.sort();
        assert_eq!(left, vec!["new", "pending-new"]);
        assert!(exists(&c, "new").unwrap() && !exists(&c, "old").unwrap());
    }
}
