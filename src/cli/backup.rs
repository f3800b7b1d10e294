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
    /// the archive to write, e.g. roost-2026-12-07.tar (replaced if it exists)
    #[argh(positional)]
    pub file: PathBuf,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
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
    let conn = crate::open_existing(&b.data_dir)?;
    if b.file.is_dir() {
        return Err(format!(
            "{} is a directory: give the archive's file name, e.g. {}/roost-backup.tar",
            b.file.display(),
            b.file.display()
        ));
    }
    let s = roost::backup::backup(&conn, &b.data_dir, &b.file).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} bytes): {} account(s) of {}, {} uploaded file(s){}{}",
        b.file.display(),
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
