//! `roost role JID admin|normal|limited`: an account's role, changed while the server may
//! run (it reloads the role within a second, through `storage::kicks`).

use argh::FromArgs;
use roost::circles::{self, Notices};
use roost::storage::accounts::Role;
use std::path::{Path, PathBuf};

/// Give an account a role: admin (runs the server's admin commands from the apps, owns
/// the circles' rooms), normal, or limited (a child's or guest's account: no contact with
/// other servers, no rooms of its own, no invites). The server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "role", help_triggers("-h", "--help", "help"))]
pub struct RoleCmd {
    /// the account's address, e.g. mom@example.org
    #[argh(positional)]
    pub jid: String,
    /// admin, normal or limited
    #[argh(positional)]
    pub role: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

pub fn run(r: &RoleCmd) -> Result<(), String> {
    let role: Role = r.role.parse()?;
    set(&r.jid, role, &r.data_dir)
}

/// Sets the role of an existing account and tells a running server.
pub fn set(jid: &str, role: Role, data_dir: &Path) -> Result<(), String> {
    let (conn, domain, username) = crate::account(jid, data_dir)?;
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let mut notices = Notices::new(&domain);
    circles::set_role(&tx, &domain, &username, role, &mut notices).map_err(|e| e.to_string())?;
    notices.write_kicks(&tx).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    println!(
        "{username}@{domain} is now {}; a running server applies it within a second",
        describe(role)
    );
    Ok(())
}

/// The role in a few words.
pub fn describe(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin (runs the admin commands from the apps, owns the circles' rooms)",
        Role::Normal => "a normal account",
        Role::Limited => "limited (no contact with other servers, no rooms of its own, no invites)",
    }
}
