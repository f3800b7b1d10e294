//! `roost backup` and `roost restore` (see `roost::backup`), and `roost export` / `roost
//! import` of one account in XEP-0227 format (see `roost::pie`).

use argh::FromArgs;
use std::path::PathBuf;

/// Write a backup of the data directory (the database, uploaded files and the self-signed
/// certificate) to FILE, one archive file readable only by its owner. The server may be
/// running: the database is copied as one consistent snapshot.
#[derive(FromArgs)]
#[argh(subcommand, name = "backup", help_triggers("-h", "--help", "help"))]
pub struct Backup {
    /// the archive to write, e.g. roost-2026-12-07.tar (replaced if it exists); or a
    /// directory, which gets a dated roost-backup-YYYYMMDDTHHMMSSZ.tar
    #[argh(positional)]
    pub file: PathBuf,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
    /// with a directory: keep only the newest N dated backups in it, removing older ones
    /// once the new one is written
    #[argh(option)]
    pub keep: Option<usize>,
}

/// The dated backups' names: `roost-backup-<UTC time>.tar`, which sort by age.
const DATED_PREFIX: &str = "roost-backup-";
const DATED_SUFFIX: &str = ".tar";

fn dated_name(now: i64) -> String {
    let stamp: String = roost::util::datetime::format(now)
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{DATED_PREFIX}{stamp}{DATED_SUFFIX}")
}

/// Removes all but the newest `keep` dated backups in `dir`; returns the removed names.
fn prune(dir: &std::path::Path, keep: usize) -> Result<Vec<String>, String> {
    let mut dated: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(DATED_PREFIX) && n.ends_with(DATED_SUFFIX))
        .collect();
    dated.sort();
    let remove = dated.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in dated.into_iter().take(remove) {
        let p = dir.join(&name);
        std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        removed.push(name);
    }
    Ok(removed)
}

/// Restore a backup made by `roost backup` into the data directory. Stop the server first.
/// The whole archive is checked before anything changes; the data directory's previous
/// contents are kept in .before-restore-TIME/ inside it. Asks for confirmation on a
/// terminal.
#[derive(FromArgs)]
#[argh(subcommand, name = "restore", help_triggers("-h", "--help", "help"))]
pub struct Restore {
    /// the archive written by `roost backup`
    #[argh(positional)]
    pub file: PathBuf,
    /// data directory to restore into, created if missing (default: ./roost-data; a
    /// packaged install: /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
    /// do not ask for confirmation
    #[argh(switch)]
    pub yes: bool,
}

pub fn backup(b: &Backup) -> Result<(), String> {
    let into_dir = b.file.is_dir();
    match b.keep {
        Some(0) => return Err("--keep must be at least 1".into()),
        Some(_) if !into_dir => {
            return Err(format!(
                "--keep needs a directory for dated backups; {} is not one",
                b.file.display()
            ))
        }
        _ => {}
    }
    let conn = crate::open_existing(&b.data_dir)?;
    let file = if into_dir {
        let mut now = roost::util::datetime::unix_now();
        // Two backups within a second: the next second's name.
        while b.file.join(dated_name(now)).exists() {
            now += 1;
        }
        b.file.join(dated_name(now))
    } else {
        b.file.clone()
    };
    let s = roost::backup::backup(&conn, &b.data_dir, &file).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} bytes): {} account(s) of {}, {} uploaded file(s){}{}",
        file.display(),
        s.bytes,
        s.accounts,
        s.domain.as_deref().unwrap_or("no domain yet"),
        s.uploads,
        if s.uploads_gone > 0 {
            format!(
                " ({} deleted while the backup ran, left out)",
                s.uploads_gone
            )
        } else {
            String::new()
        },
        if s.certificates.is_empty() {
            String::new()
        } else {
            format!(", {}", s.certificates.join(", "))
        }
    );
    if let Some(keep) = b.keep {
        for name in prune(&b.file, keep)? {
            println!("removed the older backup {name}");
        }
    }
    Ok(())
}

pub fn restore(r: &Restore) -> Result<(), String> {
    if !r.file.is_file() {
        return Err(format!(
            "{}: no such archive file; nothing was changed",
            r.file.display()
        ));
    }
    crate::confirm(
        &format!(
            "Replace the data in {} with the backup {}? (The current data is kept in {}/{}TIME.)",
            r.data_dir.display(),
            r.file.display(),
            r.data_dir.display(),
            roost::backup::ASIDE_PREFIX
        ),
        r.yes,
    )?;
    let done = roost::backup::restore(&r.file, &r.data_dir).map_err(|e| match e {
        roost::backup::BackupError::Refused(_) => e.to_string(),
        e => format!("{e}; nothing was changed"),
    })?;
    println!(
        "restored {} account(s) of {} and {} uploaded file(s) into {}",
        done.accounts,
        done.domain.as_deref().unwrap_or("no domain"),
        done.uploads,
        r.data_dir.display()
    );
    if let Some(aside) = &done.aside {
        println!(
            "the previous data is in {}: delete it once the server runs well with the \
             restored data",
            aside.display()
        );
    }
    if let Some(d) = &done.domain {
        println!("start the server with --domain {d}");
    }
    Ok(())
}

/// Write one account's data to FILE in XEP-0227 format (roster, vCard, private XML, PEP
/// nodes, offline messages, message archive, blocklist, and its SCRAM keys: never the
/// password itself), to move it to another server. The server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "export", help_triggers("-h", "--help", "help"))]
pub struct Export {
    /// the account, e.g. mom@example.org
    #[argh(positional)]
    pub jid: String,
    /// the XML file to write (readable only by its owner: it holds password keys)
    #[argh(positional)]
    pub file: PathBuf,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// Add the accounts of a XEP-0227 file (from `roost export` or another server) with their
/// data, in one transaction: a file with an error imports nothing. The server may be
/// running.
#[derive(FromArgs)]
#[argh(subcommand, name = "import", help_triggers("-h", "--help", "help"))]
pub struct Import {
    /// the XEP-0227 XML file
    #[argh(positional)]
    pub file: PathBuf,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
    /// replace the data of accounts that exist (their clients are logged out)
    #[argh(switch)]
    pub replace: bool,
    /// ask for a new password (read like adduser's) for accounts whose file has no keys
    /// roost can use (only SCRAM-SHA-1 keys, as Prosody 0.12 exports them)
    #[argh(switch)]
    pub set_password: bool,
}

pub fn export(e: &Export) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (conn, domain, user) = crate::account(&e.jid, &e.data_dir)?;
    // One read transaction: a consistent picture of the account.
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let xml = roost::pie::export(&tx, &domain, &user).map_err(|e| e.to_string())?;
    drop(tx);
    let mut tmp = e.file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(xml.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &e.file)
    };
    if let Err(err) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {err}", e.file.display()));
    }
    println!(
        "wrote {user}@{domain} to {} ({} bytes, XEP-0227)",
        e.file.display(),
        xml.len()
    );
    Ok(())
}

pub fn import(i: &Import) -> Result<(), String> {
    let text = std::fs::read(&i.file).map_err(|e| format!("{}: {e}", i.file.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("{}: not UTF-8 text; nothing was imported", i.file.display()))?;
    let mut conn = crate::open_existing(&i.data_dir)?;
    let password = if i.set_password {
        Some(crate::read_password(
            "New password for the imported accounts without usable keys: ",
            false,
        )?)
    } else {
        None
    };
    let served = roost::storage::accounts::served_domain(&conn).map_err(|e| e.to_string())?;
    let done = roost::pie::import(
        &mut conn,
        &text,
        served.as_deref(),
        i.replace,
        roost::Config::default().scram_iterations,
        password.as_deref(),
    )
    .map_err(|e| match e {
        roost::pie::PieError::Invalid(_) => {
            format!("{}: {e}; nothing was imported", i.file.display())
        }
        e => e.to_string(),
    })?;
    for d in &done {
        for s in &d.skipped {
            eprintln!("roost: skipped (not imported): {s}");
        }
        println!(
            "{} {}: {} contact(s), {} PEP item(s), {} offline message(s), {} archived \
             message(s){}",
            if d.replaced { "replaced" } else { "imported" },
            d.jid,
            d.contacts,
            d.pep_items,
            d.offline,
            d.archived,
            if d.replaced {
                "; its connected clients are logged out within a second"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_sort_by_time() {
        assert_eq!(dated_name(0), "roost-backup-19700101T000000Z.tar");
        let (a, b) = (dated_name(1_796_000_000), dated_name(1_796_000_001));
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn prune_keeps_the_newest_dated_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for t in [3, 1, 2, 4] {
            std::fs::write(dir.path().join(dated_name(t * 86_400)), b"x").unwrap();
        }
        std::fs::write(dir.path().join("mine.tar"), b"x").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed, [dated_name(86_400), dated_name(2 * 86_400)]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "mine.tar".to_owned(),
                dated_name(3 * 86_400),
                dated_name(4 * 86_400)
            ]
        );
    }
}
