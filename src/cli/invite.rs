//! `roost invite`, `roost invites` and `roost uninvite`: invitations for family members
//! (XEP-0401 account invitations, XEP-0379 contact invitations), written to the data
//! directory's database while the server may be running.

use argh::FromArgs;
use roost::invite;
use roost::jid::BareJid;
use roost::storage::{accounts, invites};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Make an invitation: prints a link to its web page (with the apps to install and a QR
/// code), the XMPP URI apps open (XEP-0401), and a QR code to scan. The server may be
/// running. Links use the address the server last ran with (its --https-port or
/// --http-external-url); give them here when it has not run yet.
#[derive(FromArgs)]
#[argh(subcommand, name = "invite", help_triggers("-h", "--help", "help"))]
pub struct Invite {
    /// the new account is an admin (same as --role admin)
    #[argh(switch)]
    admin: bool,
    /// the new account's role: admin, normal or limited (default: normal)
    #[argh(option)]
    role: Option<String>,
    /// the circle the new account joins (default: none)
    #[argh(option)]
    circle: Option<String>,
    /// how long the invitation stays valid, e.g. 7d, 12h, 2w (default: 7d)
    #[argh(option, default = "String::from(\"7d\")")]
    expires: String,
    /// how many accounts it can register (default: 1)
    #[argh(option, default = "1")]
    uses: u32,
    /// a contact invitation (XEP-0379) from this account, e.g. mom@example.org: the new
    /// account and it become each other's contacts
    #[argh(option)]
    contact: Option<String>,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// the server's HTTPS port, when it has not run yet (default: as it last ran, or
    /// 5281)
    #[argh(option)]
    https_port: Option<u16>,
    /// the server's --http-external-url, when it has not run yet
    #[argh(option)]
    http_external_url: Option<String>,
}

/// List the invitations: id, kind, role, circle, uses left and expiry.
#[derive(FromArgs)]
#[argh(subcommand, name = "invites", help_triggers("-h", "--help", "help"))]
pub struct Invites {
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Revoke an invitation: give its token, its link, its XMPP URI or the id `roost invites`
/// shows. The server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "uninvite", help_triggers("-h", "--help", "help"))]
pub struct Uninvite {
    /// the invitation's token, link, URI or id
    #[argh(positional)]
    token: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// The domain the data directory serves.
fn served(conn: &rusqlite::Connection, data_dir: &Path) -> Result<String, String> {
    accounts::served_domain(conn)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} serves no domain yet: start the server once (roost serve --domain \
                 example.org --data-dir {})",
                data_dir.display(),
                data_dir.display()
            )
        })
}

/// A date for people: `2026-12-14 16:00 UTC`.
fn when(secs: i64) -> String {
    let s = roost::util::datetime::format(secs);
    format!("{} {} UTC", &s[..10], &s[11..16])
}

pub fn run_invite(a: &Invite) -> Result<(), String> {
    let role = match (a.admin, a.role.as_deref()) {
        (true, Some(r)) if r.parse::<accounts::Role>()? != accounts::Role::Admin => {
            return Err(format!("--admin and --role {r} contradict each other"))
        }
        (true, _) => accounts::Role::Admin,
        (false, Some(r)) => r
            .parse::<accounts::Role>()
            .map_err(|e| format!("--role {e}"))?,
        (false, None) => accounts::Role::Normal,
    };
    let role = role.as_str();
    let lifetime = invite::parse_duration(&a.expires).map_err(|e| format!("--expires {e}"))?;
    if a.uses == 0 || a.uses > 1000 {
        return Err("--uses: give a number from 1 to 1000".into());
    }
    if let Some(url) = &a.http_external_url {
        crate::check_external_url(url)?;
    }
    let conn = crate::open_existing(&a.data_dir)?;
    let domain = served(&conn, &a.data_dir)?;
    // The circle as the circles feature names it; it must exist.
    let circle = match a.circle.as_deref() {
        None => String::new(),
        Some(c) => match roost::circles::get(&conn, &domain, c) {
            Ok(Some(found)) => found.name,
            Ok(None) => {
                return Err(format!(
                    "--circle {c}: no such circle (see `roost circles`; make one with \
                     `roost circle add`)"
                ))
            }
            Err(e) => return Err(format!("--circle {c}: {e}")),
        },
    };
    let creator = match &a.contact {
        None => String::new(),
        Some(j) => {
            let b = BareJid::parse(j).map_err(|e| format!("--contact {j}: {e}"))?;
            let user = b
                .node()
                .ok_or_else(|| format!("--contact {j}: give an account, e.g. mom@{domain}"))?;
            if b.domain() != domain
                || !accounts::exists(&conn, &domain, user).map_err(|e| e.to_string())?
            {
                return Err(format!("--contact {j}: no such account on {domain}"));
            }
            b.to_string()
        }
    };
    let kind = if creator.is_empty() {
        invites::Kind::Account
    } else {
        invites::Kind::Roster
    };
    let now = roost::util::datetime::unix_now();
    let token = invite::new_token();
    let key = invite::key(&token);
    let new = invites::New {
        kind,
        creator: &creator,
        role,
        circle: &circle,
        expires: now + lifetime,
        uses: i64::from(a.uses),
    };
    invites::create(&conn, &domain, &key, &new, now).map_err(|e| e.to_string())?;
    let stored = invites::find(&conn, &domain, &key)
        .map_err(|e| e.to_string())?
        .ok_or("the invitation was not stored")?;
    let uri = invite::uri(&domain, &stored, &token);
    // The address the server last ran with, unless given here.
    let recorded =
        roost::storage::muc::meta(&conn, invite::META_BASE_URL).map_err(|e| e.to_string())?;
    let base = match (&a.http_external_url, a.https_port, recorded) {
        (Some(u), _, _) => Some(u.trim_end_matches('/').to_owned()),
        (None, Some(443), _) => Some(format!("https://{domain}")),
        (None, Some(p), _) => Some(format!("https://{domain}:{p}")),
        // The server runs with --no-http.
        (None, None, Some(r)) if r.is_empty() => None,
        (None, None, Some(r)) => Some(r),
        (None, None, None) => Some(format!("https://{domain}:5281")),
    };
    let link = base.as_deref().map(|b| invite::landing_url(b, &token));
    // Written at once: a closed stdout (`| head`) costs the rest of the text, not a panic
    // after the invitation was stored.
    let mut out = String::new();
    let what = match kind {
        invites::Kind::Account => "an account".to_owned(),
        invites::Kind::Roster => format!("an account that becomes {creator}'s contact"),
    };
    let _ = writeln!(
        out,
        "Invitation to {what} on {domain} (role {role}{}, {} use{}, valid until {}; id {})",
        if circle.is_empty() {
            String::new()
        } else {
            format!(", circle {circle}")
        },
        a.uses,
        if a.uses == 1 { "" } else { "s" },
        when(now + lifetime),
        stored.id(),
    );
    let _ = writeln!(out);
    // The code holds the link (a phone's camera opens the page, which leads to an app), or
    // the URI when there is no web page.
    let scanned = link.as_deref().unwrap_or(&uri);
    let _ = match &link {
        Some(l) => writeln!(
            out,
            "Send this link, or let them scan the code below with the phone's camera:\n  {l}\n"
        ),
        None => writeln!(
            out,
            "The server's HTTP service is off (--no-http): no web page. Let them scan the \
             code below with Conversations, Monal or another XMPP app.\n"
        ),
    };
    if let Some(code) = invite::qr_terminal(scanned, std::io::stdout().is_terminal()) {
        out.push_str(&code);
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "For an XMPP app that is already installed (XEP-0401):\n  {uri}"
    );
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(())
}

pub fn run_invites(a: &Invites) -> Result<(), String> {
    let conn = crate::open_existing(&a.data_dir)?;
    let domain = served(&conn, &a.data_dir)?;
    let list = invites::list(&conn, &domain).map_err(|e| e.to_string())?;
    if list.is_empty() {
        crate::line(format_args!(
            "no invitations (make one with `roost invite`)"
        ));
    }
    let now = roost::util::datetime::unix_now();
    for i in list {
        let state = if i.uses_left <= 0 {
            "used up".to_owned()
        } else if i.expires <= now {
            "expired".to_owned()
        } else {
            format!("{} use(s) left", i.uses_left)
        };
        let kind = match i.kind {
            invites::Kind::Account => "account".to_owned(),
            invites::Kind::Roster => format!("contact of {}", i.creator),
        };
        if !crate::line(format_args!(
            "{}  {kind}, role {}{}, {state}, valid until {}",
            i.id(),
            i.role,
            if i.circle.is_empty() {
                String::new()
            } else {
                format!(", circle {}", i.circle)
            },
            when(i.expires)
        )) {
            break;
        }
    }
    Ok(())
}

/// The token in a link (`…/invite/TOKEN`) or an XMPP URI (`…;preauth=TOKEN;…`), or the
/// text itself.
fn token_in(text: &str) -> &str {
    let t = text.trim();
    if let Some((_, rest)) = t.split_once("preauth=") {
        return rest.split([';', '&']).next().unwrap_or("");
    }
    if let Some((_, rest)) = t.rsplit_once("/invite/") {
        return rest.split(['?', '#', '/']).next().unwrap_or("");
    }
    t
}

pub fn run_uninvite(a: &Uninvite) -> Result<(), String> {
    let conn = crate::open_existing(&a.data_dir)?;
    let domain = served(&conn, &a.data_dir)?;
    let token = token_in(&a.token);
    if !invite::token_shaped(token) {
        return Err(format!(
            "{}: give the invitation's token, link, URI or the id `roost invites` shows",
            a.token
        ));
    }
    let mut key = invite::key(token);
    if invites::find(&conn, &domain, &key)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        // An id: the start of the key.
        let id = token.to_ascii_lowercase();
        let keys = if id.len() >= 6 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            invites::keys_with_prefix(&conn, &domain, &id).map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        match keys.as_slice() {
            [one] => key = one.clone(),
            [] => {
                return Err(format!(
                    "{}: no such invitation (see `roost invites`)",
                    a.token
                ))
            }
            _ => {
                return Err(format!(
                    "{}: more than one invitation has an id starting so: give more of it",
                    a.token
                ))
            }
        }
    }
    invites::revoke(&conn, &domain, &key).map_err(|e| e.to_string())?;
    println!(
        "revoked the invitation {}; its link and code no longer work",
        &key[..invites::ID_LEN]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_found_in_links_and_uris() {
        use super::token_in;
        assert_eq!(token_in("https://a.org:5281/invite/AbC-_1"), "AbC-_1");
        assert_eq!(token_in("xmpp:a.org?register;preauth=XyZ"), "XyZ");
        assert_eq!(token_in("xmpp:m@a.org?roster;preauth=XyZ;ibr=y"), "XyZ");
        assert_eq!(token_in(" plain "), "plain");
    }
}
