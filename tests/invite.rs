//! Invitation landing pages over real HTTPS: the page (QR code as SVG of the XEP-0401 URI,
//! app links, no script), the fallback form creating an account that then logs in over
//! XMPP, and the refusals (unknown 404, used or expired 410, bad input 400, a taken name
//! 409, an oversized form 413), with everything echoed escaped.

mod common;

use common::http::HttpClient;
use common::*;
use roost::storage::invites::{self, Kind};

fn invite(s: &TestServer, kind: Kind, creator: &str, uses: i64, valid_for: i64) -> String {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let token = roost::invite::new_token();
    let now = roost::util::datetime::unix_now();
    invites::create(
        &conn,
        &s.domain,
        &roost::invite::key(&token),
        &invites::New {
            kind,
            creator,
            role: "normal",
            circle: "",
            expires: now + valid_for,
            uses,
        },
        now,
    )
    .unwrap();
    token
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn post(s: &TestServer, token: &str, body: &str) -> common::http::HttpResponse {
    HttpClient::https(s).request(
        "POST",
        &format!("/invite/{token}"),
        &[FORM],
        body.as_bytes(),
    )
}

#[test]
fn the_landing_page_shows_the_uri_its_qr_code_and_the_apps_without_script() {
    let s = TestServer::start();
    let token = invite(&s, Kind::Account, "", 1, 3600);
    let r = HttpClient::https(&s).request("GET", &format!("/invite/{token}"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let html = r.text();
    let uri = format!("xmpp:localhost?register;preauth={token}");
    assert!(html.contains(&format!("href=\"{uri}\"")), "the app button");
    assert!(html.contains("<svg class=\"qr\""), "the QR code, inline");
    for app in ["Conversations", "Monal", "Siskin", "Gajim", "Dino"] {
        assert!(html.contains(app), "{app}");
    }
    assert!(html.contains("<form method=\"post\""));
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "no JavaScript"
    );
    // HEAD: the head alone; other methods: 405.
    let h = HttpClient::https(&s).request("HEAD", &format!("/invite/{token}"), &[], b"");
    assert_eq!(h.status, 200);
    let p = HttpClient::https(&s).request("PUT", &format!("/invite/{token}"), &[], b"");
    assert_eq!(p.status, 405);
    // The QR code holds the URI: the SVG is the module matrix of that text.
    let svg = roost::invite::qr_svg(&uri).unwrap();
    assert!(html.contains(&svg.replacen("<svg ", "<svg class=\"qr\" ", 1)));
}

#[test]
fn unknown_used_and_expired_tokens_get_404_and_410() {
    let s = TestServer::start();
    let get = |t: &str| HttpClient::https(&s).request("GET", &format!("/invite/{t}"), &[], b"");
    assert_eq!(get("nosuchtoken").status, 404);
    assert_eq!(get("bad%20token").status, 404);
    let expired = invite(&s, Kind::Account, "", 1, -1);
    let r = get(&expired);
    assert_eq!(r.status, 410);
    assert!(r.text().contains("has expired"));
    let used = invite(&s, Kind::Account, "", 1, 3600);
    assert_eq!(
        post(
            &s,
            &used,
            "username=first&password=12345678&password2=12345678"
        )
        .status,
        200
    );
    let r = get(&used);
    assert_eq!(r.status, 410);
    assert!(r.text().contains("already been used"));
    assert_eq!(
        post(
            &s,
            &used,
            "username=second&password=12345678&password2=12345678"
        )
        .status,
        410
    );
}

#[test]
fn the_form_creates_an_account_that_logs_in_and_refuses_bad_input() {
    let s = TestServer::start();
    s.add_user("mom", "secret12");
    let token = invite(&s, Kind::Account, "", 1, 3600);
    let cases = [
        (
            "username=&password=12345678&password2=12345678",
            400,
            "Choose a username",
        ),
        (
            "username=a+b&password=12345678&password2=12345678",
            400,
            "cannot be used",
        ),
        (
            "username=kid&password=short&password2=short",
            400,
            "at least 8",
        ),
        (
            "username=kid&password=12345678&password2=12345679",
            400,
            "differ",
        ),
        (
            "username=mom&password=12345678&password2=12345678",
            409,
            "is taken",
        ),
        (
            "username=%3Cb%3E&password=12345678&password2=x",
            400,
            "&lt;b&gt;",
        ),
        ("username=%zz", 400, "could not be read"),
    ];
    for (body, status, says) in cases {
        let r = post(&s, &token, body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
        assert!(!r.text().contains("value=\"<b>"), "escaped");
    }
    // Not a form, and a form too large.
    let r = HttpClient::https(&s).request(
        "POST",
        &format!("/invite/{token}"),
        &[("Content-Type", "text/plain")],
        b"username=kid",
    );
    assert_eq!(r.status, 415);
    let big = format!("username={}", "a".repeat(5000));
    assert_eq!(post(&s, &token, &big).status, 413);
    // None of it used the token: now the account is made.
    let r = post(
        &s,
        &token,
        "username=Kid&password=kid+pass&password2=kid+pass",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("kid@localhost"), "how to log in");
    let mut c = Client::login(&s, "kid", "kid pass", "phone");
    c.roster_get();
}

#[test]
fn a_contact_invitation_from_the_form_makes_mutual_contacts() {
    let s = TestServer::start();
    s.add_user("mom", "secret12");
    let mut mom = Client::login(&s, "mom", "secret12", "laptop");
    mom.roster_get();
    let token = invite(&s, Kind::Roster, "mom@localhost", 1, 3600);
    let page = HttpClient::https(&s).request("GET", &format!("/invite/{token}"), &[], b"");
    assert!(page.text().contains("mom@localhost invites you"));
    assert!(page
        .text()
        .contains(&format!("xmpp:mom@localhost?roster;preauth={token};ibr=y")));
    let r = post(
        &s,
        &token,
        "username=kid&password=12345678&password2=12345678",
    );
    assert_eq!(r.status, 200);
    let push = mom.wait_for("roster push", |e| {
        e.name == "iq" && e.attr("type") == Some("set")
    });
    let item = push
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .expect("item");
    assert_eq!(item.attr("jid"), Some("kid@localhost"));
    assert_eq!(item.attr("subscription"), Some("both"));
}
