//! `roost circle add|remove|member-add|member-remove` and `roost circles`: groups of
//! accounts who have each other in their rosters and share a members-only room
//! (`roost::circles`). The server may be running: it hears of the changes through
//! `storage::kicks` within a second.

use argh::FromArgs;
use roost::circles::{self, Notices};
use roost::jid::BareJid;
use std::path::{Path, PathBuf};

/// Manage circles: groups of accounts who have each other as contacts (a roster group
/// named after the circle) and share a members-only group chat, bookmarked in their apps.
/// The family room is the circle every account is in. The server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "circle", help_triggers("-h", "--help", "help"))]
pub struct CircleCmd {
    #[argh(subcommand)]
    pub action: Action,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Action {
    Add(Add),
    Remove(Remove),
    MemberAdd(MemberAdd),
    MemberRemove(MemberRemove),
}

/// Make a circle and its group chat room (admins own it), e.g. `roost circle add Cousins`.
#[derive(FromArgs)]
#[argh(subcommand, name = "add", help_triggers("-h", "--help", "help"))]
pub struct Add {
    /// the circle's name, shown as the roster group and the room's title; its room is
    /// the name in lower case with dashes (Cousins: cousins@groups.DOMAIN)
    #[argh(positional)]
    pub name: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// Remove a circle: its members leave it (roster entries, bookmark) and its room goes.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove", help_triggers("-h", "--help", "help"))]
pub struct Remove {
    /// the circle's name
    #[argh(positional)]
    pub name: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// Put accounts in a circle: each gets the other members as contacts, the room and its
/// bookmark.
#[derive(FromArgs)]
#[argh(subcommand, name = "member-add", help_triggers("-h", "--help", "help"))]
pub struct MemberAdd {
    /// the circle's name
    #[argh(positional)]
    pub name: String,
    /// this server's accounts to add, e.g. grandma@example.org
    #[argh(positional)]
    pub jids: Vec<String>,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// Take accounts out of a circle: the circle's contacts, room membership and bookmark go.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "member-remove",
    help_triggers("-h", "--help", "help")
)]
pub struct MemberRemove {
    /// the circle's name
    #[argh(positional)]
    pub name: String,
    /// the accounts to take out
    #[argh(positional)]
    pub jids: Vec<String>,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// List the circles with their rooms and members.
#[derive(FromArgs)]
#[argh(subcommand, name = "circles", help_triggers("-h", "--help", "help"))]
pub struct Circles {
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    pub data_dir: PathBuf,
}

/// The served domain of a data directory.
fn domain(conn: &rusqlite::Connection) -> Result<String, String> {
    roost::storage::accounts::served_domain(conn)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "this data directory serves no domain yet: add an account first".into())
}

pub fn run(c: &CircleCmd) -> Result<(), String> {
    match &c.action {
        Action::Add(a) => change(&a.data_dir, |conn, host, n| {
            let circle = circles::create(conn, host, &a.name, false, n)?;
            Ok(format!(
                "made the circle {} with the room {}; add people with `roost circle \
                 member-add {} JID…`",
                circle.title,
                circle.room_jid(),
                circle.name
            ))
        }),
        Action::Remove(r) => change(&r.data_dir, |conn, host, n| {
            let circle = circles::remove(conn, host, &r.name, n)?;
            Ok(format!(
                "removed the circle {} and its room {}; a running server applies it within \
                 a second",
                circle.title,
                circle.room_jid()
            ))
        }),
        Action::MemberAdd(m) => members(&m.name, &m.jids, &m.data_dir, true),
        Action::MemberRemove(m) => members(&m.name, &m.jids, &m.data_dir, false),
    }
}

/// Runs `f` in a transaction with the notices written for a running server; prints what
/// it says.
fn change(
    data_dir: &Path,
    f: impl FnOnce(&rusqlite::Connection, &str, &mut Notices) -> Result<String, circles::CircleError>,
) -> Result<(), String> {
    let conn = crate::open_existing(data_dir)?;
    let host = domain(&conn)?;
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let mut notices = Notices::new(&host);
    let said = f(&tx, &host, &mut notices).map_err(|e| e.to_string())?;
    notices.write_kicks(&tx).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    println!("{said}");
    Ok(())
}

fn members(name: &str, jids: &[String], data_dir: &Path, add: bool) -> Result<(), String> {
    let verb = if add { "member-add" } else { "member-remove" };
    if jids.is_empty() {
        return Err(format!(
            "give the accounts, e.g. `roost circle {verb} {name} grandma@example.org`"
        ));
    }
    change(data_dir, |conn, host, n| {
        let mut users = Vec::new();
        for j in jids {
            let b = BareJid::parse(j)
                .map_err(|e| circles::CircleError::Invalid(format!("{j}: {e}")))?;
            match b.node() {
                Some(u) if b.domain() == host => users.push(u.to_owned()),
                _ => {
                    return Err(circles::CircleError::Invalid(format!(
                        "{j}: a circle holds accounts of this server ({host}), e.g. \
                         grandma@{host}"
                    )))
                }
            }
        }
        let circle = circles::get(conn, host, name)?;
        if let Some(c) = circle.as_ref().filter(|c| c.everyone && !add) {
            return Err(circles::CircleError::Invalid(format!(
                "every account is in {}, the default circle: remove the account with \
                 `roost deluser`, or take it out of the room with `roost room-remove {}`",
                c.title, c.name
            )));
        }
        for u in &users {
            if add {
                circles::join(conn, host, name, u, n)?;
            } else {
                circles::leave(conn, host, name, u, n)?;
            }
        }
        let c = circles::get(conn, host, name)?.expect("checked by join/leave");
        Ok(format!(
            "{} {}: {}; a running server applies it within a second",
            if add { "added to" } else { "removed from" },
            c.title,
            users
                .iter()
                .map(|u| format!("{u}@{host}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

pub fn list(c: &Circles) -> Result<(), String> {
    let conn = crate::open_existing(&c.data_dir)?;
    let host = domain(&conn)?;
    let all = circles::list(&conn, &host).map_err(|e| e.to_string())?;
    if all.is_empty() {
        crate::line(format_args!(
            "no circles; make one with `roost circle add NAME`"
        ));
    }
    for circle in all {
        if !crate::line(format_args!(
            "{}  \"{}\"  {}{}",
            circle.name,
            circle.title,
            circle.room_jid(),
            if circle.everyone {
                "  (every account)"
            } else {
                ""
            }
        )) {
            break;
        }
        for m in &circle.members {
            crate::line(format_args!("    {m}@{host}"));
        }
    }
    Ok(())
}
