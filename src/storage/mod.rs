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
pub mod fast;
pub mod invites;
pub mod kicks;
pub mod lastact;
pub mod migrations;
pub mod muc;
pub mod offline;
pub mod pep;
pub mod private;
pub mod push;
pub mod rename;
pub mod roster;
pub mod uploads;
pub mod vcard;

use rusqlite::Connection;
use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Refused with a message that names the path and says what to do (a data directory
    /// that is a file, a database serving another domain, …).
    Refused(String),
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
            StorageError::Refused(e) => f.write_str(e),
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

/// The `(host, username)` key of a local account's bare JID, as every table stores it.
pub fn account_key(jid: &crate::jid::BareJid) -> (String, String) {
    (
        jid.domain().to_owned(),
        jid.node().unwrap_or_default().to_owned(),
    )
}

/// The database path for a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Opens (creating if needed) the database in `data_dir`, sets WAL mode and brings the schema
/// up to date.
pub fn open_connection(data_dir: &Path) -> Result<Connection, StorageError> {
    create_data_dir(data_dir)?;
    let path = db_path(data_dir);
    create_private_file(&path)?;
    let mut conn = Connection::open(&path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a write acknowledged to a client survives a power cut (a Pi's usual failure).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    // Savepoint (statement) journals in memory, not in temporary files: every job of a
    // group commit has its savepoint.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoint the WAL every 16 MiB instead of every 4: a page written by many commits is
    // copied into the database once per checkpoint.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
    // A page cache of 512 KiB instead of 2 MiB: a family's working set fits, and one large
    // archive query cannot leave megabytes of heap behind.
    conn.pragma_update(None, "cache_size", -512)?;
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the data directory (only its last component, owner-only: 0700) unless it exists.
/// A path that is a file, a missing parent or a refused creation is an error that names
/// the path and says what to do.
pub fn create_data_dir(data_dir: &Path) -> Result<(), StorageError> {
    use std::io::ErrorKind;
    use std::os::unix::fs::DirBuilderExt;
    let shown = data_dir.display();
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(StorageError::Refused(format!(
                "the data directory {shown} is a file, not a directory: give --data-dir a \
                 directory (roost creates it if it does not exist)"
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StorageError::Refused(format!(
                "the data directory {shown}: {e}"
            )))
        }
    }
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => ".".to_owned(),
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| {
            StorageError::Refused(match e.kind() {
                ErrorKind::NotFound => format!(
                    "cannot create the data directory {shown}: its parent directory {parent} \
                     does not exist; create it first (mkdir -p {parent}) or give another \
                     --data-dir"
                ),
                ErrorKind::PermissionDenied => format!(
                    "cannot create the data directory {shown}: permission denied in {parent}; \
                     give a --data-dir you can write to, or create it for the user that runs \
                     roost"
                ),
                _ => format!("cannot create the data directory {shown}: {e}"),
            })
        })
}

/// Creates an empty file readable by its owner only (0600) unless it exists: SQLite gives
/// the database's `-wal` and `-shm` files the database file's mode.
fn create_private_file(path: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StorageError::Refused(format!(
            "cannot create the database {}: {e}",
            path.display()
        ))),
    }
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
const MAX_BATCH: usize = 1000;

/// How long writes nobody waits for ([`Storage::submit`]) may stay uncommitted while more
/// are collected into the same transaction.
pub const COMMIT_DELAY: Duration = Duration::from_millis(200);

/// One queued job; `urgent` when a caller waits for its reply.
struct Entry {
    job: Job,
    urgent: bool,
}

/// What the owner thread is doing, so that senders wake it only when it matters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Running jobs: it looks at the queue again before it waits.
    Working,
    /// Waiting for any job.
    Idle,
    /// Holding an open transaction of background writes until [`COMMIT_DELAY`] ends: only
    /// an urgent job wakes it early.
    Collecting,
}

struct Queue {
    jobs: VecDeque<Entry>,
    /// False once [`Storage::close`] began: nothing new is taken.
    open: bool,
    owner: Owner,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The async handle to the storage owner thread.
///
/// Group commit: the owner thread runs each job in its own savepoint of one
/// `BEGIN IMMEDIATE` transaction, so that many writes cost one commit (one fsync). A job a
/// caller waits for ([`Storage::call`]) is committed as soon as the queue ahead of it has
/// run, and its reply is sent after that commit, so a write a caller was told about is on
/// disk; writes nobody waits for ([`Storage::submit`], the message archive) are collected
/// for up to [`COMMIT_DELAY`] without waking the thread for each. Jobs run in the order
/// they were queued, so a call sees every write submitted before it. Jobs must not open
/// transactions of their own: they use `Connection::savepoint`, which nests.
pub struct Storage {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Storage {
    /// Opens the database and starts the owner thread.
    pub fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        let conn = open_connection(data_dir)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                open: true,
                owner: Owner::Working,
            }),
            wake: Condvar::new(),
        });
        let owner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || run_owner(conn, &owner))?;
        Ok(Storage {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn enqueue(&self, job: Job, urgent: bool) -> Result<(), StorageError> {
        let mut q = lock(&self.shared.queue);
        if !q.open {
            return Err(StorageError::Closed);
        }
        q.jobs.push_back(Entry { job, urgent });
        let wake = match q.owner {
            Owner::Working => false,
            Owner::Idle => true,
            Owner::Collecting => urgent,
        };
        drop(q);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Runs `f` on the owner thread and returns its result once it is committed.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = smol::channel::bounded(1);
        let job: Job = Box::new(move |conn| {
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
        });
        self.enqueue(job, true)?;
        reply_rx.recv().await.map_err(|_| StorageError::Closed)?
    }

    /// Queues a write whose outcome nobody waits for (errors are logged as `what`). It is
    /// committed within [`COMMIT_DELAY`], or with the next [`Storage::call`], which sees it.
    pub fn submit<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut Connection) -> Result<(), StorageError> + Send + 'static,
    {
        let job: Job = Box::new(move |conn| match f(conn) {
            Ok(()) => (true, None),
            Err(e) => {
                log::error!("storage: {what} failed: {e}");
                (false, None)
            }
        });
        if let Err(e) = self.enqueue(job, false) {
            log::error!("storage: {what} not queued: {e}");
        }
    }

    /// Finishes queued jobs, commits, checkpoints and closes the database. Idempotent.
    pub fn close(&self) {
        lock(&self.shared.queue).open = false;
        self.shared.wake.notify_one();
        if let Some(t) = lock(&self.thread).take() {
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

/// Runs one statement kept prepared (per message, parsing it again would cost more than
/// running it).
fn exec_cached(conn: &Connection, sql: &str) -> bool {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .is_ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The owner thread: takes jobs in order, runs them in transactions ([`Storage`]) and
/// commits when a caller waits, when [`COMMIT_DELAY`] has passed since the transaction
/// began, or when it holds [`MAX_BATCH`] jobs.
fn run_owner(mut conn: Connection, shared: &Shared) {
    let mut taken: Vec<Entry> = Vec::new();
    let mut pending = Batch::default();
    let mut q = lock(&shared.queue);
    loop {
        if !q.jobs.is_empty() {
            let n = q.jobs.len().min(MAX_BATCH - pending.jobs);
            taken.extend(q.jobs.drain(..n));
            q.owner = Owner::Working;
            drop(q);
            let urgent = taken.iter().any(|e| e.urgent);
            pending.begin(&conn);
            pending.run(&mut conn, taken.drain(..).map(|e| (e.job, e.urgent)));
            if urgent || pending.jobs >= MAX_BATCH || pending.due() {
                pending.commit(&conn);
            }
            q = lock(&shared.queue);
            continue;
        }
        if !q.open {
            break;
        }
        match pending.deadline {
            None => {
                q.owner = Owner::Idle;
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    drop(q);
                    pending.commit(&conn);
                    q = lock(&shared.queue);
                    continue;
                }
                q.owner = Owner::Collecting;
                q = shared
                    .wake
                    .wait_timeout(q, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }
    drop(q);
    pending.commit(&conn);
    // Fold the WAL back into the main file before exit.
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        log::warn!("storage: checkpoint at shutdown failed: {e}");
    }
    if let Err((_, e)) = conn.close() {
        log::warn!("storage: close failed: {e}");
    }
}

/// The open transaction of the owner thread and the replies waiting for its commit.
#[derive(Default)]
struct Batch {
    /// When it must be committed; `None` while no transaction is open.
    deadline: Option<Instant>,
    /// Jobs run in it.
    jobs: usize,
    replies: Vec<Reply>,
}

impl Batch {
    fn due(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Opens the transaction unless it is open. If it cannot be opened, jobs run on their
    /// own (each statement or savepoint commits by itself).
    fn begin(&mut self, conn: &Connection) {
        if self.deadline.is_some() {
            return;
        }
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => self.deadline = Some(Instant::now() + COMMIT_DELAY),
            Err(e) => log::warn!("storage: could not begin a batch ({e}); running jobs one by one"),
        }
    }

    /// Runs jobs; those given `true` (callers wait for them) each in a savepoint when a
    /// transaction is open, so that one that fails or panics has its own writes rolled
    /// back. Background jobs run without one (a savepoint copies every page a job touches
    /// into its journal, which per archived message costs more than the inserts): a
    /// failing statement still undoes itself, but a failing job keeps its earlier writes.
    fn run(&mut self, conn: &mut Connection, jobs: impl Iterator<Item = (Job, bool)>) {
        for (job, atomic) in jobs {
            self.jobs += 1;
            let savepoint = atomic && self.deadline.is_some() && exec_cached(conn, "SAVEPOINT job");
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
            let ok = match run {
                Ok((ok, reply)) => {
                    self.replies.extend(reply);
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
                    exec_cached(conn, "ROLLBACK TO job");
                }
                exec_cached(conn, "RELEASE job");
            }
        }
    }

    /// Commits the open transaction (if any) and sends the replies with its outcome.
    fn commit(&mut self, conn: &Connection) {
        let commit = match self.deadline.take() {
            Some(_) => conn.execute_batch("COMMIT").map_err(StorageError::from),
            None => Ok(()),
        };
        if let Err(e) = &commit {
            log::error!("storage: commit failed, {} job(s) lost: {e}", self.jobs);
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.jobs = 0;
        for reply in self.replies.drain(..) {
            reply(commit.as_ref().map(|_| ()));
        }
    }
}

/// Runs `jobs` (emptied) in one transaction and commits it, as the owner thread does.
#[cfg(test)]
fn run_batch(conn: &mut Connection, jobs: &mut Vec<Job>) {
    let mut batch = Batch::default();
    batch.begin(conn);
    batch.run(conn, jobs.drain(..).map(|j| (j, true)));
    batch.commit(conn);
}

#[cfg(test)]
mod tests {
    use super::*;

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
            // Fails (NULL): logged; the failing statement undoes itself, the earlier one of
            // the same background job stays, and so does the rest.
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
            assert_eq!((n, max), (101, 1000));
            let failed = storage.call(|_| Err::<(), _>(StorageError::Closed)).await;
            assert!(matches!(failed, Err(StorageError::Closed)));
        });
        storage.close();
        let conn = open_connection(dir.path()).expect("reopen");
        assert_eq!(count(&conn), 101, "committed to disk");
    }

    #[test]
    fn submitted_writes_are_committed_without_a_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path()).expect("open");
        smol::block_on(storage.call(|c| Ok(c.execute_batch("CREATE TABLE t (v INTEGER)")?)))
            .expect("table");
        storage.submit("test insert", |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        });
        // Another connection sees the row once the collecting transaction is committed
        // (after COMMIT_DELAY); polled, at most 10 s.
        let reader = open_connection(dir.path()).expect("reader");
        let mut seen = 0;
        for _ in 0..200 {
            seen = count(&reader);
            if seen == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(seen, 1, "the background write was never committed");
    }
}
