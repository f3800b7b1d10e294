//! `roost backup` and `roost restore`: the whole state of a data directory in one archive
//! file, taken while the server runs.
//!
//! The archive is a ustar file (`tar tf` lists it) holding:
//! - `roost.db`: a copy of the database made with SQLite's online backup API in one step,
//!   so it is one consistent snapshot (one read transaction; in WAL mode the server keeps
//!   writing meanwhile);
//! - `upload/<id>`: every uploaded file whose slot is complete in that snapshot. Uploads are
//!   written as `.<id>.part` and renamed when whole, so a file under its final name never
//!   changes and an upload still running is not in the snapshot (its slot is pending and
//!   expires). A file deleted between the snapshot and its copy (expiry, `roost deluser`)
//!   loses its slot in the copied database, so the two always agree;
//! - `<domain>.crt`, `<domain>.key`: the self-signed certificates roost made, which
//!   clients have been asked to trust (a new one would make them all ask again);
//! - `roost-backup.txt`, last: a manifest with every member's size and SHA-256.
//!
//! Not in it: the WAL and shared-memory files (folded into the copy), files outside the
//! data directory such as `--cert`/`--key`, `--turn-secret-file` and `/etc/default/roost`.
//!
//! A restore checks the whole archive before it changes anything: only the member names
//! above (no paths with `..`, absolute paths, links or directories), every size and hash
//! as in the manifest, SQLite's `integrity_check` on the database, a schema this roost
//! knows, and every complete upload slot with its file. Then it moves the data directory's
//! old contents aside into `.before-restore-<time>/` inside it (never deleted) and moves
//! the restored files in.

use crate::storage::{self, accounts, migrations, StorageError};
use crate::upload;
use rusqlite::{Connection, OpenFlags};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::util::tar;

/// The manifest's name: the archive's last member.
pub const MANIFEST: &str = "roost-backup.txt";
/// The manifest's first line.
const FORMAT: &str = "roost-backup 1";
/// Where a restore puts the data directory's previous contents (inside it).
pub const ASIDE_PREFIX: &str = ".before-restore-";
const STAGING_PREFIX: &str = ".restore-staging-";
/// Largest manifest read.
const MAX_MANIFEST: u64 = 16 << 20;

/// Why a backup or restore failed. Nothing in the data directory has changed when it does.
#[derive(Debug)]
pub enum BackupError {
    Io(PathBuf, io::Error),
    Storage(StorageError),
    /// The archive is not a complete, unaltered roost backup: says what is wrong.
    Archive(String),
    /// Refused, with what to do.
    Refused(String),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            BackupError::Storage(e) => write!(f, "{e}"),
            BackupError::Archive(why) => write!(f, "not a usable roost backup: {why}"),
            BackupError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BackupError {}

impl From<StorageError> for BackupError {
    fn from(e: StorageError) -> BackupError {
        BackupError::Storage(e)
    }
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> BackupError {
        BackupError::Storage(StorageError::Sqlite(e))
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(path.to_path_buf(), e)
}

fn archive_error(e: tar::TarError) -> BackupError {
    match e {
        tar::TarError::Io(e) => BackupError::Archive(e.to_string()),
        tar::TarError::Invalid(why) => BackupError::Archive(why),
    }
}

/// What a backup holds.
#[derive(Debug, Default)]
pub struct Summary {
    /// The domain the database serves.
    pub domain: Option<String>,
    pub accounts: usize,
    pub uploads: usize,
    /// Upload files deleted while the backup ran (their slots are left out too).
    pub uploads_gone: usize,
    pub certificates: Vec<String>,
    /// The archive's size in bytes.
    pub bytes: u64,
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A self-signed certificate or key file of the data directory (`<domain>.crt|.key`).
fn certificate_name(name: &str) -> bool {
    (name.ends_with(".crt") || name.ends_with(".key"))
        && name.len() > 4
        && name.len() <= tar::MAX_NAME
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}

/// The archive members a restore accepts.
fn allowed_member(name: &str) -> bool {
    name == storage::DB_FILE
        || name == MANIFEST
        || certificate_name(name)
        || name.strip_prefix("upload/").is_some_and(upload::valid_id)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: ring::digest::Context,
    bytes: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        }
    }

    fn line(self, name: &str) -> String {
        let digest = self.hash.finish();
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex} {} {name}\n", self.bytes)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn mtime(meta: &fs::Metadata) -> u64 {
    meta.mtime().max(0) as u64
}

/// Writes a backup of the data directory `data_dir`, whose database `src` is open, to
/// `file` (through `file.tmp`, renamed when complete; mode 0600: it holds password keys).
pub fn backup(src: &Connection, data_dir: &Path, file: &Path) -> Result<Summary, BackupError> {
    let tmp = with_suffix(file, ".tmp");
    let tmp_db = with_suffix(file, ".db-tmp");
    let result = write_backup(src, data_dir, file, &tmp, &tmp_db);
    let _ = fs::remove_file(&tmp_db);
    let _ = fs::remove_file(with_suffix(&tmp_db, "-journal"));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn create_private(path: &Path) -> Result<File, BackupError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(BackupError::Io(path.to_path_buf(), e)),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(at(path))
}

fn write_backup(
    src: &Connection,
    data_dir: &Path,
    file: &Path,
    tmp: &Path,
    tmp_db: &Path,
) -> Result<Summary, BackupError> {
    drop(create_private(tmp_db)?);
    let mut db = Connection::open(tmp_db)?;
    {
        // One step of every page (-1) is one read transaction on the source: a consistent
        // snapshot. A busy or locked source is retried for up to a minute.
        use rusqlite::backup::StepResult;
        let b = rusqlite::backup::Backup::new(src, &mut db)?;
        let mut tries = 0;
        loop {
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if tries < 3000 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => {
                    return Err(BackupError::Refused(
                        "the database stayed locked for a minute; try again".into(),
                    ))
                }
            }
        }
    }
    // A self-contained file: no WAL beside it.
    let _: String = db.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;

    let out = create_private(tmp)?;
    let mut w = tar::Writer::new(BufWriter::with_capacity(64 * 1024, out));
    let mut manifest = format!("{FORMAT}\n");
    let mut summary = Summary {
        domain: accounts::served_domain(&db)?,
        accounts: db.query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))?,
        ..Summary::default()
    };

    // The complete uploads of the snapshot, each opened before it is copied: a file
    // deleted after its open is still read whole.
    let slots: Vec<(String, i64)> = db
        .prepare("SELECT id, size FROM uploads WHERE done = 1 ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let dir = upload::dir(data_dir);
    let mut gone = Vec::new();
    for (id, size) in slots {
        if !upload::valid_id(&id) {
            gone.push(id);
            continue;
        }
        let path = dir.join(&id);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                gone.push(id);
                continue;
            }
            Err(e) => return Err(BackupError::Io(path, e)),
        };
        let meta = f.metadata().map_err(at(&path))?;
        if meta.len() != size.max(0) as u64 {
            return Err(BackupError::Refused(format!(
                "{}: {} bytes, but its upload slot says {size}; the file was changed by \
                 something other than roost",
                path.display(),
                meta.len()
            )));
        }
        let name = format!("upload/{id}");
        let mut h = Hashing::new(f);
        w.append(&name, 0o600, mtime(&meta), meta.len(), &mut h)
            .map_err(archive_error)?;
        manifest.push_str(&h.line(&name));
        summary.uploads += 1;
    }
    if !gone.is_empty() {
        let tx = db.transaction()?;
        for id in &gone {
            tx.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        summary.uploads_gone = gone.len();
    }
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(BackupError::Refused(format!(
            "the copy of the database fails SQLite's integrity check ({check}); the \
             database itself may be damaged: check it with sqlite3 {} 'PRAGMA \
             integrity_check'",
            storage::db_path(data_dir).display()
        )));
    }
    db.close().map_err(|(_, e)| BackupError::from(e))?;

    let f = File::open(tmp_db).map_err(at(tmp_db))?;
    let len = f.metadata().map_err(at(tmp_db))?.len();
    let mut h = Hashing::new(f);
    let now = crate::util::datetime::unix_now().max(0) as u64;
    w.append(storage::DB_FILE, 0o600, now, len, &mut h)
        .map_err(archive_error)?;
    manifest.push_str(&h.line(storage::DB_FILE));

    // The self-signed certificates and keys roost made.
    let mut certs: Vec<String> = fs::read_dir(data_dir)
        .map_err(at(data_dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| certificate_name(n))
        .collect();
    certs.sort();
    for name in certs {
        let path = data_dir.join(&name);
        let f = File::open(&path).map_err(at(&path))?;
        let meta = f.metadata().map_err(at(&path))?;
        let mut h = Hashing::new(f);
        w.append(&name, 0o600, mtime(&meta), meta.len(), &mut h)
            .map_err(archive_error)?;
        manifest.push_str(&h.line(&name));
        summary.certificates.push(name);
    }

    w.append(
        MANIFEST,
        0o600,
        now,
        manifest.len() as u64,
        &mut manifest.as_bytes(),
    )
    .map_err(archive_error)?;
    let out = w.finish().map_err(archive_error)?;
    let out = out
        .into_inner()
        .map_err(|e| BackupError::Io(tmp.to_path_buf(), e.into_error()))?;
    out.sync_all().map_err(at(tmp))?;
    summary.bytes = out.metadata().map_err(at(tmp))?.len();
    drop(out);
    fs::rename(tmp, file).map_err(at(file))?;
    sync_dir(file.parent());
    Ok(summary)
}

/// Makes a rename durable (best effort: some file systems refuse to sync a directory).
fn sync_dir(dir: Option<&Path>) {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// What a restore put in place.
#[derive(Debug)]
pub struct Restored {
    pub domain: Option<String>,
    pub accounts: usize,
    pub uploads: usize,
    /// Where the data directory's previous contents are now (None if it had none).
    pub aside: Option<PathBuf>,
}

/// The PID of a roost server running on the data directory's database, if any. A
/// database that cannot be read (damaged: the reason for many a restore) has no server
/// recorded; one that stays locked is refused, since a server may be writing it.
pub fn running_server(data_dir: &Path) -> Result<Option<u32>, BackupError> {
    let db = storage::db_path(data_dir);
    if !db.exists() {
        return Ok(None);
    }
    let read = || -> Result<Option<u32>, StorageError> {
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let has_meta: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        if !has_meta {
            return Ok(None);
        }
        accounts::running_server(&conn)
    };
    match read() {
        Ok(pid) => Ok(pid),
        Err(StorageError::Sqlite(e))
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ) =>
        {
            Err(BackupError::Refused(format!(
                "{} stays locked: is a roost server running on it? Stop it first; nothing was \
                 changed",
                db.display()
            )))
        }
        Err(_) => Ok(None),
    }
}

/// Checks the archive `file` completely, then replaces the contents of `data_dir` with it
/// (creating `data_dir` if needed). Refuses while a server runs on `data_dir`. On any
/// error the data directory is as it was.
pub fn restore(file: &Path, data_dir: &Path) -> Result<Restored, BackupError> {
    let refuse_running = |pid: u32| {
        BackupError::Refused(format!(
            "a roost server (process {pid}) is running on {}: stop it first (on a packaged \
             install: sudo systemctl stop roost); nothing was changed",
            data_dir.display()
        ))
    };
    match fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(BackupError::Refused(format!(
                "{} is a file, not a data directory",
                data_dir.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(BackupError::Io(data_dir.to_path_buf(), e)),
    }
    if let Some(pid) = running_server(data_dir)? {
        return Err(refuse_running(pid));
    }
    // The archive must at least open before a data directory is made for it.
    let archive = File::open(file).map_err(at(file))?;
    let created = !data_dir.exists();
    storage::create_data_dir(data_dir)?;
    let staging = data_dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let undo = |created: bool| {
        let _ = fs::remove_dir_all(&staging);
        if created {
            let _ = fs::remove_dir(data_dir);
        }
    };
    let checked = (|| {
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(at(&staging))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(at(&staging))?;
        let contents = extract(archive, &staging)?;
        give_owner(&staging, data_dir)?;
        // Again, just before the swap.
        if let Some(pid) = running_server(data_dir)? {
            return Err(refuse_running(pid));
        }
        Ok(contents)
    })();
    let contents = match checked {
        Ok(c) => c,
        Err(e) => {
            undo(created);
            return Err(e);
        }
    };
    let aside = match swap(data_dir, &staging) {
        Ok(a) => a,
        Err(e) => {
            undo(created);
            return Err(e);
        }
    };
    let _ = fs::remove_dir(&staging);
    sync_dir(Some(data_dir));
    Ok(Restored {
        domain: contents.domain,
        accounts: contents.accounts,
        uploads: contents.uploads,
        aside,
    })
}

struct Contents {
    domain: Option<String>,
    accounts: usize,
    uploads: usize,
}

/// Extracts and checks every member into `staging`.
fn extract(archive: File, staging: &Path) -> Result<Contents, BackupError> {
    let mut r = tar::Reader::new(io::BufReader::with_capacity(64 * 1024, archive));
    let mut lines: Vec<String> = Vec::new();
    let mut manifest: Option<String> = None;
    let mut uploads: Vec<(String, u64)> = Vec::new();
    while let Some(m) = r.next_member().map_err(archive_error)? {
        if manifest.is_some() {
            return Err(BackupError::Archive(format!(
                "{} after the manifest (the manifest is the last member)",
                m.name
            )));
        }
        if !allowed_member(&m.name) {
            return Err(BackupError::Archive(format!(
                "a member named {:?}: a roost backup holds only {}, upload/<id>, \
                 certificates and {MANIFEST}",
                m.name,
                storage::DB_FILE
            )));
        }
        if m.name == MANIFEST {
            if m.size > MAX_MANIFEST {
                return Err(BackupError::Archive("the manifest is too large".into()));
            }
            let mut text = String::new();
            r.data()
                .read_to_string(&mut text)
                .map_err(|e| archive_error(e.into()))?;
            manifest = Some(text);
            continue;
        }
        let path = staging.join(&m.name);
        if path.exists() {
            return Err(BackupError::Archive(format!("{} appears twice", m.name)));
        }
        if let Some(parent) = path.parent().filter(|p| *p != staging) {
            if !parent.exists() {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(parent)
                    .map_err(at(parent))?;
            }
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(at(&path))?;
        let mut h = Hashing::new(r.data());
        io::copy(&mut h, &mut out).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => archive_error(e.into()),
            _ => BackupError::Io(path.clone(), e),
        })?;
        if h.bytes != m.size {
            return Err(BackupError::Archive(format!("{} is truncated", m.name)));
        }
        out.sync_all().map_err(at(&path))?;
        if let Some(id) = m.name.strip_prefix("upload/") {
            uploads.push((id.to_owned(), m.size));
        }
        lines.push(h.line(&m.name));
    }
    let Some(manifest) = manifest else {
        return Err(BackupError::Archive(format!(
            "no {MANIFEST}: the archive is incomplete"
        )));
    };
    let mut listed = manifest.lines();
    if listed.next() != Some(FORMAT) {
        return Err(BackupError::Archive(format!(
            "{MANIFEST} does not start with \"{FORMAT}\" (made by another version?)"
        )));
    }
    let mut listed: Vec<String> = listed.map(|l| format!("{l}\n")).collect();
    listed.sort();
    lines.sort();
    if listed != lines {
        let differs = lines
            .iter()
            .find(|l| !listed.contains(l))
            .or_else(|| listed.iter().find(|l| !lines.contains(l)))
            .and_then(|l| l.trim_end().rsplit(' ').next())
            .unwrap_or("?")
            .to_owned();
        return Err(BackupError::Archive(format!(
            "{differs} does not match the manifest's size and SHA-256 (damaged or altered, \
             or missing)"
        )));
    }

    let db_path = staging.join(storage::DB_FILE);
    if !db_path.exists() {
        return Err(BackupError::Archive(format!("no {}", storage::DB_FILE)));
    }
    let db = Connection::open_with_flags(&db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let bad_db = |e: rusqlite::Error| {
        BackupError::Archive(format!("{} is not a roost database: {e}", storage::DB_FILE))
    };
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(bad_db)?;
    if check != "ok" {
        return Err(BackupError::Archive(format!(
            "{} fails SQLite's integrity check: {check}",
            storage::DB_FILE
        )));
    }
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(bad_db)?;
    if version > migrations::latest() {
        return Err(BackupError::Refused(format!(
            "the backup was made by a newer roost (database schema {version}, this roost \
             knows {}): restore it with that version",
            migrations::latest()
        )));
    }
    let domain = accounts::served_domain(&db).map_err(|e| match e {
        StorageError::Sqlite(e) => bad_db(e),
        e => BackupError::Storage(e),
    })?;
    let account_count: usize = db
        .query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))
        .map_err(bad_db)?;
    let mut slots: Vec<(String, u64)> = db
        .prepare("SELECT id, size FROM uploads WHERE done = 1")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(bad_db)?;
    slots.sort();
    uploads.sort();
    if slots != uploads {
        return Err(BackupError::Archive(
            "the uploaded files do not match the database's upload slots".into(),
        ));
    }
    db.close().map_err(|(_, e)| BackupError::from(e))?;
    Ok(Contents {
        domain,
        accounts: account_count,
        uploads: uploads.len(),
    })
}

/// Gives everything in `staging` the data directory's owner, when that is not who runs the
/// restore (root restoring the packaged server's data).
fn give_owner(staging: &Path, data_dir: &Path) -> Result<(), BackupError> {
    let want = fs::metadata(data_dir).map_err(at(data_dir))?;
    let have = fs::metadata(staging).map_err(at(staging))?;
    if (want.uid(), want.gid()) == (have.uid(), have.gid()) {
        return Ok(());
    }
    let mut paths = vec![staging.to_path_buf()];
    let mut i = 0;
    while i < paths.len() {
        if paths[i].is_dir() {
            for e in fs::read_dir(&paths[i]).map_err(at(&paths[i]))? {
                paths.push(e.map_err(at(&paths[i]))?.path());
            }
        }
        i += 1;
    }
    for p in paths {
        std::os::unix::fs::chown(&p, Some(want.uid()), Some(want.gid())).map_err(|e| {
            BackupError::Refused(format!(
                "cannot give {} the data directory's owner (uid {}): {e}; run the restore as \
                 that user or as root; nothing was changed",
                p.display(),
                want.uid()
            ))
        })?;
    }
    Ok(())
}

/// Moves the data directory's contents into `.before-restore-<time>/` and the staged ones
/// in; undoes what it did on failure.
fn swap(data_dir: &Path, staging: &Path) -> Result<Option<PathBuf>, BackupError> {
    let staging_name = staging.file_name().unwrap_or_default().to_owned();
    let mut old: Vec<std::ffi::OsString> = fs::read_dir(data_dir)
        .map_err(at(data_dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| {
            *n != staging_name
                && !n
                    .to_str()
                    .is_some_and(|s| s.starts_with(ASIDE_PREFIX) || s.starts_with(STAGING_PREFIX))
        })
        .collect();
    old.sort();
    let aside = if old.is_empty() {
        None
    } else {
        let mut n = crate::util::datetime::unix_now();
        let dir = loop {
            let d = data_dir.join(format!("{ASIDE_PREFIX}{n}"));
            if !d.exists() {
                break d;
            }
            n += 1;
        };
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(at(&dir))?;
        Some(dir)
    };
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let undo = |moved: &[(PathBuf, PathBuf)]| {
        for (from, to) in moved.iter().rev() {
            if let Err(e) = fs::rename(to, from) {
                log::error!(
                    "restore: could not move {} back to {}: {e}",
                    to.display(),
                    from.display()
                );
            }
        }
    };
    if let Some(aside) = &aside {
        for name in &old {
            let (from, to) = (data_dir.join(name), aside.join(name));
            if let Err(e) = fs::rename(&from, &to) {
                undo(&moved);
                let _ = fs::remove_dir(aside);
                return Err(BackupError::Io(from, e));
            }
            moved.push((from, to));
        }
    }
    let new: Vec<std::ffi::OsString> = fs::read_dir(staging)
        .map_err(at(staging))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
    for name in &new {
        let (from, to) = (staging.join(name), data_dir.join(name));
        if let Err(e) = fs::rename(&from, &to) {
            undo(&placed);
            undo(&moved);
            if let Some(a) = &aside {
                let _ = fs::remove_dir(a);
            }
            return Err(BackupError::Io(to, e));
        }
        placed.push((from, to));
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_members_roost_writes_are_allowed() {
        for ok in [
            "roost.db",
            "roost-backup.txt",
            "example.org.crt",
            "example.org.key",
            "upload/0123456789abcdef0123456789abcdef",
        ] {
            assert!(allowed_member(ok), "{ok}");
        }
        for bad in [
            "../roost.db",
            "/roost.db",
            "./roost.db",
            "upload/../../etc/passwd",
            "upload/0123456789ABCDEF0123456789ABCDEF",
            "upload/.0123456789abcdef0123456789abcdef.part",
            "x/example.org.crt",
            "..crt",
            ".crt",
            "roost.db-wal",
            "upload",
            "upload/",
            "",
        ] {
            assert!(!allowed_member(bad), "{bad}");
        }
    }
}
