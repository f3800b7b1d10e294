//! SQLite storage: one database file in the data directory, owned by one thread.
//!
//! The server talks to the owner thread through [`Storage::call`] (a job + a reply channel,
//! answered after the job's batch is committed) and [`Storage::submit`] (a write nobody waits
//! for);
//! the command-line tools open their own connection with [`open_connection`], which is safe
//! while the server runs (WAL mode, busy timeout). Queries live in one file per area.

pub mod accounts;
pub mod archive;
pub mod blocking;
pub mod lastact;
pub mod migrations;
pub mod offline;
pub mod pep;
pub mod private;
pub mod roster;
pub mod vcard;

use rusqlite::Connection;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "roost.db";

/// Errors of the storage layer.
#[derive(Debug)]
pub enum StorageError {
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
    /// The database was written by a newer roost.
    TooNew {
        found: i64,
        known: i64,
    },
    /// The owner thread has stopped (shutdown).
    Closed,
    /// The transaction holding the job's writes could not be committed.
    Commit(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Sqlite(e) => write!(f, "database: {e}"),
            StorageError::Io(e) => write!(f, "data directory: {e}"),
            StorageError::TooNew { found, known } => write!(
                f,
                "database schema version {found} is newer than this roost knows ({known})"
            ),
            StorageError::Closed => f.write_str("storage is shut down"),
            StorageError::Commit(e) => write!(f, "database commit: {e}"),
        }
    }
}

impl std::error::Error for StorageError {}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> StorageError {
        StorageError::Sqlite(e)
    }
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> StorageError {
        StorageError::Io(e)
    }
}

/// The database path for a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Opens (creating if needed) the database in `data_dir`, sets WAL mode and brings the schema
/// up to date.
pub fn open_connection(data_dir: &Path) -> Result<Connection, StorageError> {
    std::fs::create_dir_all(data_dir)?;
    let mut conn = Connection::open(db_path(data_dir))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a write acknowledged to a client survives a power cut (a Pi's usual failure).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// An in-memory database with the current schema, for unit tests.
#[cfg(test)]
pub fn test_db() -> Connection {
    let mut c = Connection::open_in_memory().expect("in-memory database");
    migrations::migrate(&mut c).expect("migrations");
    c
}

/// What a job leaves for after its batch's commit: the caller's reply, given the commit's
/// outcome.
type Reply = Box<dyn FnOnce(Result<(), &StorageError>) + Send>;

/// A job on the owner thread: whether it succeeded (a failed job's writes are rolled back
/// to its savepoint) and the reply to send once the batch is committed.
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, Option<Reply>) + Send>;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;

/// The async handle to the storage owner thread.
///
/// Group commit: the owner thread takes every job already waiting (up to [`MAX_BATCH`]),
/// runs each inside its own savepoint of one `BEGIN IMMEDIATE` transaction and commits once,
/// so that a burst of archived messages costs one fsync instead of one each. Replies of
/// [`Storage::call`] are sent after that commit, so a write a caller was told about is on
/// disk. Jobs must therefore not open transactions of their own: they use
/// `Connection::savepoint`, which nests.
pub struct Storage {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Storage {
    /// Opens the database and starts the owner thread.
    pub fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        let mut conn = open_connection(data_dir)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Ok(job) = rx.recv() {
                    batch.push(job);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    run_batch(&mut conn, &mut batch);
                }
                // All handles gone: fold the WAL back into the main file before exit.
                if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
                    log::warn!("storage: checkpoint at shutdown failed: {e}");
                }
                if let Err((_, e)) = conn.close() {
                    log::warn!("storage: close failed: {e}");
                }
            })?;
        Ok(Storage {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn enqueue(&self, job: Job) -> Result<(), StorageError> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref()
            .ok_or(StorageError::Closed)?
            .send(job)
            .map_err(|_| StorageError::Closed)
    }

    /// Runs `f` on the owner thread and returns its result once it is committed.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = smol::channel::bounded(1);
        self.enqueue(Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let result = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StorageError::Commit(e.to_string())),
                };
                let _ = reply_tx.try_send(result);
            });
            (ok, Some(reply))
        }))?;
        reply_rx.recv().await.map_err(|_| StorageError::Closed)?
    }

    /// Queues a write whose outcome nobody waits for (errors are logged as `what`). Jobs
    /// run in order, so a later [`Storage::call`] sees it.
    pub fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut Connection) -> Result<(), StorageError> + Send + 'static,
    {
        let queued = self.enqueue(Box::new(move |conn| match f(conn) {
            Ok(()) => (true, None),
            Err(e) => {
                log::error!("storage: {what} failed: {e}");
                (false, None)
            }
        }));
        if let Err(e) = queued {
            log::error!("storage: {what} not queued: {e}");
        }
    }

    /// Finishes queued jobs, checkpoints and closes the database. Idempotent.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if t.join().is_err() {
                log::error!("storage: owner thread panicked");
            }
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.close();
    }
}

/// Runs `jobs` (emptied) in one transaction, each in a savepoint, then sends their replies
/// with the commit's outcome. A job that fails or panics has its own writes rolled back.
fn run_batch(conn: &mut Connection, jobs: &mut Vec<Job>) {
    let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len());
    let outer = conn.execute_batch("BEGIN IMMEDIATE");
    if let Err(e) = &outer {
        // Without the outer transaction each job commits on its own.
        log::warn!("storage: could not begin a batch ({e}); running its jobs one by one");
    }
    for job in jobs.drain(..) {
        let savepoint = outer.is_ok() && conn.execute_batch("SAVEPOINT job").is_ok();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
        let ok = match run {
            Ok((ok, reply)) => {
                replies.extend(reply);
                ok
            }
            Err(_) => {
                // The reply is dropped: the caller sees `Closed`.
                log::error!("storage: a job panicked; its writes are rolled back");
                false
            }
        };
        if savepoint {
            if !ok {
                let _ = conn.execute_batch("ROLLBACK TO job");
            }
            let _ = conn.execute_batch("RELEASE job");
        }
    }
    let commit = match outer {
        Ok(()) => conn.execute_batch("COMMIT").map_err(StorageError::from),
        Err(_) => Ok(()),
    };
    if let Err(e) = &commit {
        log::error!("storage: commit failed, the batch is lost: {e}");
        let _ = conn.execute_batch("ROLLBACK");
    }
    for reply in replies {
        reply(commit.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    fn insert(v: i64) -> Job {
        Box::new(move |c| {
            let ok = c.execute("INSERT INTO t VALUES (?1)", [v]).is_ok();
            (ok, None)
        })
    }

    #[test]
    fn a_failed_or_panicking_job_is_rolled_back_alone() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .expect("table");
        let replies = Arc::new(Mutex::new(Vec::new()));
        let seen = replies.clone();
        let mut jobs: Vec<Job> = vec![
            insert(1),
            // Writes, then reports failure: its row must go.
            Box::new(|c| {
                c.execute("INSERT INTO t VALUES (2)", []).expect("insert");
                (false, None)
            }),
            Box::new(|c| {
                c.execute("INSERT INTO t VALUES (3)", []).expect("insert");
                panic!("job panics after writing");
            }),
            // A job with its own savepoint inside the batch.
            Box::new(move |c| {
                let sp = c.savepoint().expect("nested savepoint");
                sp.execute("INSERT INTO t VALUES (4)", []).expect("insert");
                sp.commit().expect("release");
                let reply: Reply = Box::new(move |commit| {
                    seen.lock().unwrap().push(commit.is_ok());
                });
                (true, Some(reply))
            }),
        ];
        run_batch(&mut conn, &mut jobs);
        assert!(jobs.is_empty());
        let rows: Vec<i64> = conn
            .prepare("SELECT v FROM t ORDER BY v")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [1, 4]);
        assert_eq!(*replies.lock().unwrap(), [true]);
        assert!(conn.is_autocommit(), "the batch transaction is closed");
    }

    #[test]
    fn a_failed_commit_reaches_every_reply() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE t (v INTEGER NOT NULL REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .expect("tables");
        let outcome = Arc::new(Mutex::new(None));
        let seen = outcome.clone();
        let mut jobs: Vec<Job> = vec![Box::new(move |c| {
            // A deferred foreign key makes the COMMIT itself fail.
            c.execute("INSERT INTO t VALUES (7)", []).expect("insert");
            let reply: Reply = Box::new(move |commit| {
                *seen.lock().unwrap() = Some(commit.map_err(|e| e.to_string()));
            });
            (true, Some(reply))
        })];
        run_batch(&mut conn, &mut jobs);
        let got = outcome.lock().unwrap().take().expect("reply sent");
        assert!(got.is_err(), "{got:?}");
        assert_eq!(count(&conn), 0);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn submitted_writes_are_seen_by_later_calls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open");
        smol::block_on(async {
            storage
                .call(|c| Ok(c.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")?))
                .await
                .expect("table");
            for v in 0..100 {
                storage.submit("test insert", move |c| {
                    c.execute("INSERT INTO t VALUES (?1)", [v])?;
                    Ok(())
                });
            }
            // Fails (NULL): logged, rolled back, the rest stays.
            storage.submit("bad insert", |c| {
                c.execute("INSERT INTO t VALUES (1000)", [])?;
                c.execute("INSERT INTO t VALUES (NULL)", [])?;
                Ok(())
            });
            let (n, max) = storage
                .call(|c| {
                    Ok(c.query_row("SELECT count(*), max(v) FROM t", [], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })?)
                })
                .await
                .expect("query");
            assert_eq!((n, max), (100, 99));
            let failed = storage.call(|_| Err::<(), _>(StorageError::Closed)).await;
            assert!(matches!(failed, Err(StorageError::Closed)));
        });
        storage.close();
        let conn = open_connection(dir.path()).expect("reopen");
        assert_eq!(count(&conn), 100, "committed to disk");
    }
}
