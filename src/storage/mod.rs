//! SQLite storage: one database file in the data directory, owned by one thread.
//!
//! The server talks to the owner thread through [`Storage::call`] (a job + a reply channel);
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

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The async handle to the storage owner thread.
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
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
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

    /// Runs `f` on the owner thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = smol::channel::bounded(1);
        let job: Job = Box::new(move |conn| {
            let _ = reply_tx.try_send(f(conn));
        });
        {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            tx.as_ref()
                .ok_or(StorageError::Closed)?
                .send(job)
                .map_err(|_| StorageError::Closed)?;
        }
        reply_rx.recv().await.map_err(|_| StorageError::Closed)?
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
