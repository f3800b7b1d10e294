//! Invitations and account registration, shared by the command line (`roost invite`), the
//! landing page (`src/http/invite.rs`) and in-band registration on client streams
//! (XEP-0077 with XEP-0445's preauth step, in `c2s::negotiation`).
//!
//! A token is 18 random bytes from ring's `SystemRandom`, base64url (24 characters, safe in
//! a URI, a URL path and a QR code); only its SHA-256 is stored (`storage::invites`).
//! XEP-0401 URIs: `xmpp:DOMAIN?register;preauth=TOKEN` for an account, and XEP-0379's
//! `xmpp:CREATOR?roster;preauth=TOKEN;ibr=y` for a contact who may register too.

use crate::sasl::StoredCredentials;
use crate::storage::invites::{self, Invite, Kind};
use crate::storage::roster::{self, Item};
use crate::storage::{accounts, StorageError};
use crate::subscription::State;
use rusqlite::Connection;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 18;

/// Longest token accepted from outside (ours are 24 characters).
const MAX_TOKEN_LEN: usize = 64;

/// The `meta` key under which the server records its HTTP base URL at start, for
/// `roost invite` (another process) to print landing-page links.
pub const META_BASE_URL: &str = "http_base_url";

/// A new random token.
pub fn new_token() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut raw = [0u8; TOKEN_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .expect("the OS random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// True for something shaped like a token (base64url characters, bounded length): anything
/// else is refused before a lookup.
pub fn token_shaped(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored key of a token: its SHA-256 in hex.
pub fn key(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The XMPP URI of an invitation (XEP-0401 §5, XEP-0379 §3).
pub fn uri(domain: &str, invite: &Invite, token: &str) -> String {
    match invite.kind {
        Kind::Account => format!("xmpp:{domain}?register;preauth={token}"),
        Kind::Roster => format!("xmpp:{}?roster;preauth={token};ibr=y", invite.creator),
    }
}

/// The landing page of a token under the HTTP service's base URL.
pub fn landing_url(base_url: &str, token: &str) -> String {
    format!("{}/invite/{token}", base_url.trim_end_matches('/'))
}

/// A duration such as `7d`, `12h`, `30m`, `2w` or `3600s`, in seconds (a bare number is
/// days).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("{text}: give a duration such as 7d, 12h, 30m or 2w");
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 'd'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    digits
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s <= 3650 * 86_400)
        .ok_or_else(bad)
}

/// The QR code of `text` (byte mode, error correction level M), or `None` if it is too
/// long for one.
fn qr(text: &str) -> Option<qrcodegen::QrCode> {
    qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()
}

/// Light modules around the code (the standard asks for 4).
const QUIET: i32 = 4;

/// `text` as a QR code for a terminal: two modules a character with Unicode half blocks.
/// Light modules are drawn (as `qrencode -t UTF8` does), so the code reads right on a
/// dark terminal; `colours` adds ANSI white-on-black around each line, so it reads right
/// on a light one too.
pub fn qr_terminal(text: &str, colours: bool) -> Option<String> {
    let code = qr(text)?;
    let n = code.size();
    let light = |x: i32, y: i32| !code.get_module(x, y);
    let mut out = String::new();
    let mut y = -QUIET;
    while y < n + QUIET {
        if colours {
            out.push_str("\x1b[97;40m");
        }
        for x in -QUIET..n + QUIET {
            out.push(match (light(x, y), y + 1 >= n + QUIET || light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if colours {
            out.push_str("\x1b[0m");
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

/// `text` as a QR code in SVG (one path of unit squares, quiet zone included), scaled by
/// the page.
pub fn qr_svg(text: &str) -> Option<String> {
    use std::fmt::Write;
    let code = qr(text)?;
    let n = code.size();
    let side = n + 2 * QUIET;
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if code.get_module(x, y) {
                let _ = write!(path, "M{} {}h1v1h-1z", x + QUIET, y + QUIET);
            }
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code of the \
         invitation\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/><path \
         d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Why a registration did not happen.
#[derive(Debug)]
pub enum RegisterError {
    /// The username is taken.
    Conflict,
    /// The invitation is unknown, used up or expired (or was revoked meanwhile).
    Invite,
    Storage(StorageError),
}

impl From<StorageError> for RegisterError {
    fn from(e: StorageError) -> Self {
        RegisterError::Storage(e)
    }
}

impl From<rusqlite::Error> for RegisterError {
    fn from(e: rusqlite::Error) -> Self {
        RegisterError::Storage(e.into())
    }
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Conflict => f.write_str("that username is taken"),
            RegisterError::Invite => f.write_str("the invitation is used up or has expired"),
            RegisterError::Storage(e) => write!(f, "{e}"),
        }
    }
}

/// What a registration did.
#[derive(Debug)]
pub struct Registered {
    /// The invitation used.
    pub invite: Option<Invite>,
    /// What the running server must apply once committed: the new account's role, the
    /// roster items and rooms of its circles, and a contact invitation's roster items
    /// (`circles::Notices::apply`).
    pub notices: crate::circles::Notices,
}

/// A token presented for a registration: its key and when it was presented (expiry is
/// checked at that moment, XEP-0445 §5).
pub struct Presented {
    pub key: String,
    pub at: i64,
}

/// Creates the account `username` on `host` in one transaction: takes a use of the
/// invitation (if one is given), gives the account the invitation's role, puts it in the
/// default circle (the family room) and the invitation's circle, and for a contact
/// invitation makes the new account and the inviter mutual contacts (subscription `both`).
/// Nothing is kept if any step fails: a taken username leaves the invitation's use in
/// place.
pub fn register(
    conn: &mut Connection,
    host: &str,
    username: &str,
    creds: &StoredCredentials,
    token: Option<&Presented>,
) -> Result<Registered, RegisterError> {
    let tx = conn.savepoint()?;
    let invite = match token {
        Some(p) => Some(invites::take(&tx, host, &p.key, p.at)?.ok_or(RegisterError::Invite)?),
        None => None,
    };
    match accounts::create(&tx, host, username, creds) {
        Ok(()) => {}
        Err(accounts::AccountError::Exists) => return Err(RegisterError::Conflict),
        Err(accounts::AccountError::NotFound) => return Err(RegisterError::Conflict),
        Err(accounts::AccountError::Storage(e)) => return Err(e.into()),
    }
    if accounts::served_domain(&tx)?.is_none() {
        accounts::set_served_domain(&tx, host)?;
    }
    let role = invite
        .as_ref()
        .and_then(|i| i.role.parse::<accounts::Role>().ok())
        .unwrap_or_default();
    // A circle removed since the invitation was made is skipped, not a failure.
    let circle = match invite.as_ref().map(|i| i.circle.as_str()) {
        Some(c) if !c.is_empty() => match crate::circles::get(&tx, host, c) {
            Ok(Some(found)) => Some(found.name),
            Ok(None) | Err(crate::circles::CircleError::NotFound(..)) => {
                log::warn!("{username}@{host}: the invitation's circle {c} no longer exists");
                None
            }
            Err(e) => return Err(circle_error(e)),
        },
        _ => None,
    };
    let mut notices = crate::circles::on_register(&tx, host, username, role, circle.as_deref())
        .map_err(circle_error)?;
    if let Some(inv) = invite.as_ref().filter(|i| i.kind == Kind::Roster) {
        let inviter = inv
            .creator
            .strip_suffix(&format!("@{host}"))
            .filter(|u| !u.is_empty() && !u.contains('@'))
            .map(str::to_owned);
        if let Some(inviter) = inviter {
            if accounts::exists(&tx, host, &inviter)? {
                let me = format!("{username}@{host}");
                for (user, contact) in [(username, inv.creator.as_str()), (&inviter, &me)] {
                    let mut item = roster::item(&tx, host, user, contact)?
                        .unwrap_or_else(|| Item::new(contact));
                    item.state = State::Both;
                    item.in_roster = true;
                    item.request = None;
                    roster::put(&tx, host, user, &item)?;
                    notices
                        .rosters
                        .insert((user.to_owned(), contact.to_owned()));
                }
            }
        }
    }
    tx.commit()?;
    Ok(Registered { invite, notices })
}

fn circle_error(e: crate::circles::CircleError) -> RegisterError {
    match e {
        crate::circles::CircleError::Storage(e) => RegisterError::Storage(e),
        other => RegisterError::Storage(StorageError::Refused(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_keyed_by_sha256() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(token_shaped(&a));
        assert!(!token_shaped("a b"));
        assert!(!token_shaped(""));
        assert!(!token_shaped(&"a".repeat(65)));
        assert_eq!(
            key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert_eq!(parse_duration("3"), Ok(3 * 86_400));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("-1d").is_err());
        assert!(parse_duration("99999d").is_err());
    }

    #[test]
    fn qr_codes_have_the_quiet_zone_and_the_finder_patterns() {
        let text = "xmpp:example.org?register;preauth=AAAAAAAAAAAAAAAAAAAAAAAA";
        let code = qr(text).unwrap();
        let t = qr_terminal(text, false).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        let width = (code.size() + 2 * QUIET) as usize;
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        // Light modules are drawn: the quiet zone is solid…
        assert!(lines[0].chars().all(|c| c == '█'));
        // …and the top-left finder pattern's first two rows (dark edge; dark, five light,
        // dark) read blank, five lower halves, blank.
        let row: String = lines[2].chars().skip(QUIET as usize).take(7).collect();
        assert_eq!(row, " ▄▄▄▄▄ ");
        assert!(qr_terminal(text, true).unwrap().starts_with("\x1b[97;40m"));
        let svg = qr_svg(text).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(&format!("viewBox=\"0 0 {width} {width}\"")));
        assert!(qr(&"x".repeat(5000)).is_none());
    }
}
