//! Invitation landing pages (XEP-0401 §4's "landing page"): `GET /invite/TOKEN` tells a
//! relative, on a phone, which app to install and how to open the invitation in it (a
//! button with the `xmpp:` URI and its QR code as inline SVG), and offers a fallback form,
//! `POST /invite/TOKEN` (username and password twice), that creates the account in the
//! browser and then says how to log in from an app.
//!
//! Plain HTML and CSS, no JavaScript; everything echoed is HTML-escaped. An unknown token
//! is 404, a used-up or expired one 410, bad form input 400 and a taken username 409, each
//! with a page saying what to do. The form's body is limited to [`MAX_FORM`] bytes. The
//! token is in the path, so pages carry `Referrer-Policy: no-referrer` (the app store
//! links must not learn it) and `Cache-Control: no-store`.

use super::io::Conn;
use super::request::{Body, Request, Response};
use crate::invite::{Presented, RegisterError};
use crate::router::Core;
use crate::storage::invites::{Invite, Kind, Status};
use crate::xml::escape;
use std::sync::Arc;

/// The path prefix of landing pages.
pub const PREFIX: &str = "/invite/";

/// Largest form body accepted.
pub const MAX_FORM: u64 = 4096;

/// Shortest password the form accepts (as `roost adduser`).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Apps to suggest, per platform: (platform, app, link, note).
const APPS: &[(&str, &str, &str, &str)] = &[
    (
        "Android",
        "Conversations",
        "https://play.google.com/store/apps/details?id=eu.siacs.conversations",
        "Google Play; also on F-Droid",
    ),
    (
        "iPhone and iPad",
        "Monal",
        "https://apps.apple.com/app/monal-free-xmpp-chat/id1637078500",
        "App Store",
    ),
    (
        "iPhone and iPad",
        "Siskin IM",
        "https://apps.apple.com/app/siskin-im/id1153516838",
        "App Store",
    ),
    (
        "Windows, Linux and Mac",
        "Gajim",
        "https://gajim.org/download/",
        "gajim.org",
    ),
    ("Linux", "Dino", "https://dino.im/#download", "dino.im"),
];

/// Answers a request under `/invite/`.
pub async fn serve(core: &Arc<Core>, req: &Request, conn: &mut Conn) -> Response {
    let token = req.path().strip_prefix(PREFIX).unwrap_or("");
    let post = match req.method.as_str() {
        "GET" | "HEAD" => false,
        "POST" => true,
        _ => return super::method_not_allowed("GET, HEAD, POST"),
    };
    if !crate::invite::token_shaped(token) {
        return unknown(&core.domain);
    }
    let key = crate::invite::key(token);
    let now = crate::util::datetime::unix_now();
    let (host, k) = (core.domain.clone(), key.clone());
    let status = match core
        .storage
        .call(move |c| crate::storage::invites::status(c, &host, &k, now))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("http: invite: storage: {e}");
            return page(
                500,
                "Something went wrong",
                "<p>The server could not read its database. Try again in a moment.</p>",
            );
        }
    };
    let invite = match status {
        Status::Valid(i) => i,
        Status::Unknown => return unknown(&core.domain),
        Status::Expired(_) => return gone("has expired"),
        Status::UsedUp(_) => return gone("has already been used"),
    };
    if !post {
        return landing(&core.domain, &invite, token, None, "");
    }
    let form = match read_form(req, conn).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let (user, password, again) = (field("username"), field("password"), field("password2"));
    let refuse =
        |status: u16, why: &str| landing(&core.domain, &invite, token, Some((status, why)), user);
    if user.trim().is_empty() {
        return refuse(400, "Choose a username.");
    }
    let username = match crate::jid::nodeprep(user.trim()) {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                400,
                &format!("That username cannot be used ({e}). Try letters and digits only."),
            )
        }
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return refuse(
            400,
            &format!("Choose a password of at least {MIN_PASSWORD_CHARS} characters."),
        );
    }
    if password != again {
        return refuse(
            400,
            "The two passwords differ. Type the same password twice.",
        );
    }
    let creds =
        crate::modules::register::derive(password.to_owned(), core.config.scram_iterations).await;
    let (host, u) = (core.domain.clone(), username.clone());
    let presented = Presented { key, at: now };
    let result = core
        .storage
        .call(move |c| {
            Ok(crate::invite::register(
                c,
                &host,
                &u,
                &creds,
                Some(&presented),
            ))
        })
        .await;
    match result {
        Ok(Ok(done)) => {
            log::info!(
                "http: registered {username}@{} with the invitation {} (landing page)",
                core.domain,
                invite.id()
            );
            crate::modules::register::registered(core, done).await;
            created(&format!("{username}@{}", core.domain))
        }
        Ok(Err(RegisterError::Conflict)) => refuse(
            409,
            &format!("The username {username} is taken. Choose another one."),
        ),
        Ok(Err(RegisterError::Invite)) => gone("has just been used"),
        Ok(Err(RegisterError::Storage(e))) | Err(e) => {
            log::error!("http: invite: storage: {e}");
            page(
                500,
                "Something went wrong",
                "<p>The account could not be created. Try again in a moment.</p>",
            )
        }
    }
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes.
async fn read_form(req: &Request, conn: &mut Conn) -> Result<Vec<(String, String)>, Response> {
    let essence = req
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/x-www-form-urlencoded" {
        return Err(page(
            415,
            "Unsupported form",
            "<p>Send the form from the invitation page.</p>",
        ));
    }
    let length = conn.body_left();
    if length > MAX_FORM {
        return Err(page(
            413,
            "Too much input",
            "<p>The username and password are too long.</p>",
        ));
    }
    let mut body = vec![0u8; length as usize];
    let mut got = 0;
    while got < body.len() {
        match conn.read_body(&mut body[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => {
                return Err(page(
                    400,
                    "Incomplete form",
                    "<p>The form did not arrive whole. Try again.</p>",
                ))
            }
        }
    }
    body.truncate(got);
    let text = String::from_utf8(body).map_err(|_| {
        page(
            400,
            "Bad form",
            "<p>The form was not sent as text. Try again.</p>",
        )
    })?;
    parse_form(&text).ok_or_else(|| {
        page(
            400,
            "Bad form",
            "<p>The form could not be read. Try again.</p>",
        )
    })
}

/// `a=b&c=d` with `+` as space and `%XX` escapes; `None` if an escape is broken or a
/// value is not UTF-8.
pub fn parse_form(text: &str) -> Option<Vec<(String, String)>> {
    fn decode(s: &str) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = s.get(i + 1..i + 3)?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(n)?, decode(v)?))
        })
        .collect()
}

/// The style of every page: readable on a phone, no external resources.
const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
margin:0;background:#f4f1ea;color:#222;line-height:1.5}\
main{max-width:34rem;margin:0 auto;padding:1rem 1.2rem 3rem}\
h1{font-size:1.6rem;margin:.6rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}\
ol,ul{padding-left:1.3rem}li{margin:.3rem 0}\
.card{background:#fff;border-radius:12px;padding:1rem 1.1rem;margin:1rem 0;\
box-shadow:0 1px 3px rgba(0,0,0,.12)}\
.button{display:block;text-align:center;background:#2a6f4e;color:#fff;font-weight:600;\
text-decoration:none;padding:.85rem;border-radius:10px;font-size:1.1rem;border:0;width:100%;\
box-sizing:border-box}\
.qr{display:block;width:220px;max-width:70%;margin:.8rem auto}\
.app{display:block;padding:.45rem 0;border-bottom:1px solid #eee}\
.app b{display:block}.muted{color:#666;font-size:.92rem}\
label{display:block;margin:.7rem 0 .2rem;font-weight:600}\
input{box-sizing:border-box;width:100%;font-size:1.05rem;padding:.6rem;border:1px solid #bbb;\
border-radius:8px}.error{background:#fde8e6;border-left:4px solid #c0392b;padding:.6rem .8rem;\
border-radius:6px}.jid{font-size:1.2rem;font-weight:700;word-break:break-all}\
details summary{cursor:pointer;font-weight:600}";

/// A whole page with `status`.
fn page(status: u16, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title>\
         <style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    );
    Response::new(status)
        .with_header("Content-Type", "text/html; charset=utf-8")
        .with_header("Cache-Control", "no-store")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .with_header("X-Frame-Options", "DENY")
        .with_body(Body::Bytes(html.into_bytes()))
}

fn unknown(domain: &str) -> Response {
    page(
        404,
        "Invitation not found",
        &format!(
            "<h1>This invitation is not known</h1><div class=\"card\"><p>The link may be \
             mistyped or cut short, or the invitation was withdrawn. Ask the person who \
             invited you to {} for a new one.</p></div>",
            escape(domain)
        ),
    )
}

fn gone(what: &str) -> Response {
    page(
        410,
        "Invitation no longer valid",
        &format!(
            "<h1>This invitation {}</h1><div class=\"card\"><p>Ask the person who invited \
             you for a new one. If you already made your account with it, just log in from \
             your app.</p></div>",
            escape(what)
        ),
    )
}

/// The landing page, with `error` (status, message) above the form when it was refused
/// and the username typed (never the password) kept in it.
fn landing(
    domain: &str,
    invite: &Invite,
    token: &str,
    error: Option<(u16, &str)>,
    typed: &str,
) -> Response {
    use std::fmt::Write;
    let uri = crate::invite::uri(domain, invite, token);
    let d = escape(domain);
    let who = match invite.kind {
        Kind::Roster => format!("{} invites you to chat on {d}", escape(&invite.creator)),
        Kind::Account => format!("You are invited to chat on {d}"),
    };
    let mut b = String::with_capacity(8192);
    let _ = write!(b, "<h1>{who}</h1>");
    let _ = write!(
        b,
        "<p>{d} is the family's own chat server. It works with free apps that speak XMPP; \
         three steps and you are in.</p>"
    );
    b.push_str("<div class=\"card\"><h2>1. Install an app</h2>");
    for (platform, app, link, note) in APPS {
        let _ = write!(
            b,
            "<a class=\"app\" href=\"{}\"><b>{} — {}</b><span class=\"muted\">{}</span></a>",
            escape(link),
            escape(platform),
            escape(app),
            escape(note)
        );
    }
    b.push_str("</div>");
    let _ = write!(
        b,
        "<div class=\"card\"><h2>2. Open the invitation in the app</h2>\
         <p>On this phone, once the app is installed:</p>\
         <a class=\"button\" href=\"{}\">Open in the app</a>\
         <p>On another device, scan this code with the app (in Conversations: the \
         <i>scan</i> button; in Monal: <i>Add contact</i>, then the camera):</p>{}</div>",
        escape(&uri),
        crate::invite::qr_svg(&uri)
            .map(|svg| svg.replacen("<svg ", "<svg class=\"qr\" ", 1))
            .unwrap_or_default()
    );
    let _ = write!(
        b,
        "<div class=\"card\"><h2>3. Choose your name and password</h2><p>The app asks for a \
         username and a password. Your address will be <b>username@{d}</b>. That is all: \
         the family's contacts and group chat are there when you are in.</p></div>"
    );
    let form_open = error.is_some();
    let _ = write!(
        b,
        "<div class=\"card\"><details{}><summary>The button does not work? Create the account \
         here</summary>",
        if form_open { " open" } else { "" }
    );
    if let Some((_, msg)) = error {
        let _ = write!(b, "<p class=\"error\" role=\"alert\">{}</p>", escape(msg));
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"{PREFIX}{}\">\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" \
         autocapitalize=\"none\" autocorrect=\"off\" spellcheck=\"false\" required>\
         <span class=\"muted\">Your address: username@{d}</span>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"{MIN_PASSWORD_CHARS}\" required>\
         <label for=\"password2\">Password again</label>\
         <input id=\"password2\" name=\"password2\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"{MIN_PASSWORD_CHARS}\" required>\
         <p><button class=\"button\" type=\"submit\">Create my account</button></p>\
         </form></details></div>",
        escape(token),
        escape(typed)
    );
    let status = error.map(|(s, _)| s).unwrap_or(200);
    page(status, &format!("Join {domain}"), &b)
}

/// The page after the form created the account: how to log in from an app.
fn created(jid: &str) -> Response {
    let j = escape(jid);
    page(
        200,
        "Your account is ready",
        &format!(
            "<h1>Your account is ready</h1><div class=\"card\"><p>Your address is</p>\
             <p class=\"jid\" id=\"jid\">{j}</p><p>Now log in from the app with this \
             address and your password:</p><ol>\
             <li><b>Conversations</b> (Android): <i>I already have an account</i>, then \
             enter {j} and your password.</li>\
             <li><b>Monal</b> (iPhone): <i>Login</i>, then enter {j} and your \
             password.</li>\
             <li><b>Gajim</b> or <b>Dino</b> (computer): <i>Add account</i>, then \
             <i>Log in</i> with {j}.</li></ol>\
             <p class=\"muted\">If the app asks whether to trust the server's certificate, \
             ask the person who invited you.</p></div>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded() {
        assert_eq!(
            parse_form("username=Gr%C3%A4n+ma&password=a%26b%3Dc&x").unwrap(),
            vec![
                ("username".to_owned(), "Grän ma".to_owned()),
                ("password".to_owned(), "a&b=c".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert!(parse_form("a=%zz").is_none());
        assert!(parse_form("a=%C3").is_none());
        assert!(parse_form("a=%4").is_none());
    }

    #[test]
    fn what_is_echoed_is_escaped() {
        let invite = Invite {
            key: "0".repeat(64),
            kind: Kind::Roster,
            creator: "m<o>m@x".into(),
            role: "normal".into(),
            circle: String::new(),
            created: 0,
            expires: 1,
            uses_left: 1,
        };
        let r = landing("ex.org", &invite, "tok", Some((400, "<b>")), "\"><script>");
        let Body::Bytes(html) = r.body else {
            panic!("a page")
        };
        let html = String::from_utf8(html).unwrap();
        assert!(!html.contains("<script>"));
        assert!(!html.contains("m<o>m"));
        assert!(html.contains("&lt;b&gt;"));
        assert_eq!(r.status, 400);
    }
}
