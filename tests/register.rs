//! XEP-0077 In-Band Registration with XEP-0445 pre-authentication, on real streams: the
//! stream features, a token's expiry and uses, two devices racing for one token, revoked
//! tokens, the XEP's errors, open registration with its per-address limit, contact
//! invitations (XEP-0379: mutual subscription `both`), and after login the password change
//! and the removal of the account.

mod common;

use common::*;
use roost::storage::invites::{self, Kind};
use roost::xml::Element;
use std::time::Duration;

/// Stores an invitation as `roost invite` does; returns its token.
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

/// A direct-TLS stream before login; returns the client and its features.
fn unauthed(s: &TestServer) -> (Client, Element) {
    let mut c = Client::connect_tls(s);
    let f = c.open();
    (c, f)
}

fn preauth(c: &mut Client, token: &str) -> Element {
    c.iq(&format!(
        "<iq type='set' id='pa1' to='localhost'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>"
    ))
}

fn register(c: &mut Client, user: &str, password: &str) -> Element {
    c.iq(&format!(
        "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>{user}</username>\
         <password>{password}</password></query></iq>"
    ))
}

fn ok(e: &Element) -> bool {
    e.attr("type") == Some("result")
}

fn can_login(s: &TestServer, user: &str, password: &str) -> bool {
    let mut c = Client::connect_tls(s);
    c.open();
    c.scram(roost::sasl::Mechanism::ScramSha256, user, password, None)
        .is_ok()
}

#[test]
fn a_token_registers_an_account_that_then_logs_in_on_the_same_stream() {
    let s = TestServer::start();
    let (mut c, f) = unauthed(&s);
    assert!(
        f.child("register", "http://jabber.org/features/iq-register")
            .is_some(),
        "{f}"
    );
    assert!(f.child("register", "urn:xmpp:invite").is_some(), "{f}");
    assert!(f.child("register", "urn:xmpp:ibr-token:0").is_some(), "{f}");
    let token = invite(&s, Kind::Account, "", 1, 3600);
    assert!(ok(&preauth(&mut c, &token)));
    let form = c.iq("<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>");
    let q = form.child("query", "jabber:iq:register").expect("form");
    assert!(q.child("username", "jabber:iq:register").is_some());
    assert!(q.child("password", "jabber:iq:register").is_some());
    assert!(ok(&register(&mut c, "Grandma", "knitting")));
    // Logs in on the same stream, as XEP-0077 §3.1 allows.
    c.scram(
        roost::sasl::Mechanism::ScramSha256,
        "grandma",
        "knitting",
        None,
    )
    .expect("login after registering");
    c.bind(Some("phone"));
    // The single use is gone.
    let (mut d, _) = unauthed(&s);
    assert_eq!(
        error_condition(&preauth(&mut d, &token)).as_deref(),
        Some("item-not-found")
    );
}

#[test]
fn without_a_token_registration_is_closed_and_errors_follow_the_xep() {
    let s = TestServer::start();
    s.add_user("mom", "secret");
    let (mut c, _) = unauthed(&s);
    assert_eq!(
        error_condition(&register(&mut c, "kid", "pw")).as_deref(),
        Some("not-allowed")
    );
    assert_eq!(
        error_condition(&preauth(&mut c, "no-such-token")).as_deref(),
        Some("item-not-found")
    );
    assert_eq!(
        error_condition(&preauth(&mut c, "bad token!")).as_deref(),
        Some("item-not-found")
    );
    let (mut c, _) = unauthed(&s);
    let token = invite(&s, Kind::Account, "", 1, 3600);
    assert!(ok(&preauth(&mut c, &token)));
    assert_eq!(
        error_condition(&register(&mut c, "mom", "pw")).as_deref(),
        Some("conflict")
    );
    assert_eq!(
        error_condition(&register(&mut c, "a b", "pw")).as_deref(),
        Some("jid-malformed")
    );
    assert_eq!(
        error_condition(&register(&mut c, "kid", "")).as_deref(),
        Some("not-acceptable")
    );
    // A conflict kept the token for another name (the bad fields did not use it either).
    assert!(ok(&preauth(&mut c, &token)));
    assert!(ok(&register(&mut c, "kid", "pw")));
    assert!(can_login(&s, "kid", "pw"));
    // Five refused steps end the stream.
    let (mut c, _) = unauthed(&s);
    for _ in 0..4 {
        assert!(!ok(&preauth(&mut c, "wrong")));
    }
    c.send("<iq type='set' id='x'><preauth xmlns='urn:xmpp:pars:0' token='wrong'/></iq>");
    assert_eq!(c.wait_stream_error(), "policy-violation");
    // Before TLS nothing is offered and an IQ is a stream error.
    let mut c = Client::connect(&s);
    let f = c.open();
    assert!(f
        .child("register", "http://jabber.org/features/iq-register")
        .is_none());
    c.send("<iq type='get' id='f'><query xmlns='jabber:iq:register'/></iq>");
    assert_eq!(c.expect_stream_error(), "not-authorized");
}

#[test]
fn expired_revoked_and_used_up_tokens_are_refused_and_expiry_counts_at_preauth() {
    let s = TestServer::start();
    let expired = invite(&s, Kind::Account, "", 1, -1);
    let (mut c, _) = unauthed(&s);
    assert_eq!(
        error_condition(&preauth(&mut c, &expired)).as_deref(),
        Some("item-not-found")
    );
    let revoked = invite(&s, Kind::Account, "", 1, 3600);
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    assert!(invites::revoke(&conn, &s.domain, &roost::invite::key(&revoked)).unwrap());
    assert_eq!(
        error_condition(&preauth(&mut c, &revoked)).as_deref(),
        Some("item-not-found")
    );
    // Presented in time, then revoked before the registration: forbidden.
    let token = invite(&s, Kind::Account, "", 1, 3600);
    assert!(ok(&preauth(&mut c, &token)));
    invites::revoke(&conn, &s.domain, &roost::invite::key(&token)).unwrap();
    assert_eq!(
        error_condition(&register(&mut c, "late", "pw")).as_deref(),
        Some("forbidden")
    );
    assert_eq!(
        error_condition(&register(&mut c, "late", "pw")).as_deref(),
        Some("not-allowed"),
        "the refused token is forgotten: the next try has none"
    );
    // Three uses: three accounts, then no more.
    let three = invite(&s, Kind::Account, "", 3, 3600);
    for name in ["a1", "a2", "a3"] {
        let (mut c, _) = unauthed(&s);
        assert!(ok(&preauth(&mut c, &three)));
        assert!(ok(&register(&mut c, name, "pw")), "{name}");
    }
    let (mut c, _) = unauthed(&s);
    assert_eq!(
        error_condition(&preauth(&mut c, &three)).as_deref(),
        Some("item-not-found")
    );
    // Expiry is checked when the token is presented (XEP-0445 §5): a token valid for two
    // seconds, presented at once, still registers after it expired.
    let short = invite(&s, Kind::Account, "", 1, 2);
    let (mut c, _) = unauthed(&s);
    assert!(ok(&preauth(&mut c, &short)));
    std::thread::sleep(Duration::from_millis(2100));
    assert!(ok(&register(&mut c, "slow", "pw")));
    assert!(can_login(&s, "slow", "pw"));
}

#[test]
fn two_devices_racing_for_one_token_one_wins() {
    let s = TestServer::start();
    for round in 0..5 {
        let token = invite(&s, Kind::Account, "", 1, 3600);
        let mut clients: Vec<Client> = (0..2)
            .map(|_| {
                let (mut c, _) = unauthed(&s);
                assert!(ok(&preauth(&mut c, &token)), "both may present it");
                c
            })
            .collect();
        // Both registrations are on the wire before either answer is read.
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(&format!(
                "<iq type='set' id='race'><query xmlns='jabber:iq:register'>\
                 <username>r{round}d{i}</username><password>pw</password></query></iq>"
            ));
        }
        let answers: Vec<Element> = clients
            .iter_mut()
            .map(|c| c.wait_for("answer", |e| e.attr("id") == Some("race")))
            .collect();
        let won = answers.iter().filter(|a| ok(a)).count();
        assert_eq!(won, 1, "round {round}: {answers:?}");
        let lost = answers.iter().find(|a| !ok(a)).unwrap();
        assert_eq!(error_condition(lost).as_deref(), Some("forbidden"));
        let accounts =
            roost::storage::accounts::list(&roost::storage::open_connection(s.dir.path()).unwrap())
                .unwrap();
        let made = accounts
            .iter()
            .filter(|(_, u)| u.starts_with(&format!("r{round}d")))
            .count();
        assert_eq!(made, 1, "round {round}: one account");
    }
}

#[test]
fn the_storage_race_between_two_processes_has_one_winner() {
    // Two connections to one database file (the server's and `roost`'s, or two servers'
    // jobs), each taking the single use inside a transaction at the same moment.
    let dir = tempfile::tempdir().unwrap();
    let conn = roost::storage::open_connection(dir.path()).unwrap();
    let now = roost::util::datetime::unix_now();
    let new = invites::New {
        kind: Kind::Account,
        creator: "",
        role: "normal",
        circle: "",
        expires: now + 60,
        uses: 1,
    };
    for round in 0..20 {
        let key = format!("k{round}");
        invites::create(&conn, "h", &key, &new, now).unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let wins: Vec<bool> = (0..2)
            .map(|i| {
                let (path, key, barrier) = (dir.path().to_owned(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut c = roost::storage::open_connection(&path).unwrap();
                    let creds = roost::sasl::StoredCredentials::derive("pw", 4096);
                    barrier.wait();
                    let presented = roost::invite::Presented { key, at: now };
                    roost::invite::register(
                        &mut c,
                        "h",
                        &format!("u{round}x{i}"),
                        &creds,
                        Some(&presented),
                    )
                    .is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}");
    }
}

#[test]
fn open_registration_is_limited_per_address() {
    let s = TestServer::start_with(|c| c.open_registration = true);
    let (mut c, _) = unauthed(&s);
    let form = c.iq("<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>");
    assert!(ok(&form));
    // A refused registration does not use the address's turn.
    assert_eq!(
        error_condition(&register(&mut c, "a b", "pw")).as_deref(),
        Some("jid-malformed")
    );
    assert!(ok(&register(&mut c, "first", "pw")));
    let (mut c, _) = unauthed(&s);
    let again = register(&mut c, "second", "pw");
    assert_eq!(error_condition(&again).as_deref(), Some("policy-violation"));
    // With a token the limit does not apply.
    let token = invite(&s, Kind::Account, "", 1, 3600);
    assert!(ok(&preauth(&mut c, &token)));
    assert!(ok(&register(&mut c, "second", "pw")));
    assert!(can_login(&s, "first", "pw") && can_login(&s, "second", "pw"));

    // A short interval lets the address register again once it is over.
    let s = TestServer::start_with(|c| {
        c.open_registration = true;
        c.registration_interval = Duration::from_secs(1);
    });
    let (mut c, _) = unauthed(&s);
    assert!(ok(&register(&mut c, "one", "pw")));
    assert!(!ok(&register(&mut c, "two", "pw")));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(ok(&register(&mut c, "two", "pw")));
}

#[test]
fn a_contact_invitation_makes_both_accounts_contacts_with_subscription_both() {
    let s = TestServer::start();
    s.add_user("mom", "secret");
    let mut mom = Client::login(&s, "mom", "secret", "laptop");
    mom.roster_get();
    let token = invite(&s, Kind::Roster, "mom@localhost", 1, 3600);
    let (mut c, _) = unauthed(&s);
    assert!(ok(&preauth(&mut c, &token)));
    assert!(ok(&register(&mut c, "kid", "pw")));
    // Mom's client hears of the new contact at once (a roster push).
    let push = mom.wait_for("roster push", |e| {
        e.name == "iq" && e.attr("type") == Some("set")
    });
    let item = push
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .expect("item");
    assert_eq!(item.attr("jid"), Some("kid@localhost"));
    assert_eq!(item.attr("subscription"), Some("both"));
    // The kid's roster has mom, both ways; presence flows at login.
    let mut kid = Client::login(&s, "kid", "pw", "phone");
    let r = kid.roster_get();
    let item = r
        .child("query", "jabber:iq:roster")
        .and_then(|q| q.child("item", "jabber:iq:roster"))
        .expect("mom in the kid's roster");
    assert_eq!(item.attr("jid"), Some("mom@localhost"));
    assert_eq!(item.attr("subscription"), Some("both"));
    mom.announce("laptop", "<presence/>");
    kid.send("<presence/>");
    let p = kid.wait_for("mom's presence", |e| {
        e.name == "presence" && e.attr("from") == Some("mom@localhost/laptop")
    });
    assert_eq!(p.attr("type"), None);
}

#[test]
fn after_login_the_password_changes_and_the_account_can_be_removed() {
    let s = TestServer::start();
    s.add_user("kid", "old");
    let mut other = Client::login(&s, "kid", "old", "tablet");
    let mut c = Client::login(&s, "kid", "old", "phone");
    let got = c.iq("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>");
    let q = got.child("query", "jabber:iq:register").expect("query");
    assert!(
        q.child("registered", "jabber:iq:register").is_some(),
        "{got}"
    );
    // Someone else's password: not allowed; an empty one: not acceptable.
    assert_eq!(
        error_condition(&register(&mut c, "mom", "x")).as_deref(),
        Some("not-allowed")
    );
    assert_eq!(
        error_condition(&register(&mut c, "kid", "")).as_deref(),
        Some("not-acceptable")
    );
    // A FAST token (XEP-0484) stored for the account goes with the old password.
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    conn.execute(
        "INSERT INTO fast_tokens (host, username, client, mechanism, key, issued, expires)
         VALUES ('localhost', 'kid', 'c', 'HT-SHA-256-NONE', x'00', 0, 9999999999)",
        [],
    )
    .unwrap();
    assert!(ok(&register(&mut c, "kid", "new")));
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM fast_tokens WHERE username = 'kid'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "FAST tokens revoked");
    // The other client must log in again; this one stays.
    assert_eq!(other.wait_stream_error(), "not-authorized");
    assert!(!can_login(&s, "kid", "old"));
    assert!(can_login(&s, "kid", "new"));
    c.iq("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");

    // <remove/>: the result, then the stream ends; everything is gone.
    s.add_user("mom", "secret");
    let mut mom = Client::login(&s, "mom", "secret", "laptop");
    mom.iq("<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='kid@localhost'/></query></iq>");
    c.iq("<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Kid</FN></vCard></iq>");
    let removed =
        c.iq("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    assert!(ok(&removed), "{removed}");
    assert_eq!(c.wait_stream_error(), "not-authorized");
    assert!(!can_login(&s, "kid", "new"));
    let vcards: i64 = conn
        .query_row(
            "SELECT count(*) FROM vcard WHERE username = 'kid'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(vcards, 0, "stored data removed");
    // The name is free again.
    let token = invite(&s, Kind::Account, "", 1, 3600);
    let (mut d, _) = unauthed(&s);
    assert!(ok(&preauth(&mut d, &token)));
    assert!(ok(&register(&mut d, "kid", "again")));
}

#[test]
fn an_invitations_role_and_circle_are_given_to_the_new_account() {
    let s = TestServer::start();
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let mut notices = roost::circles::Notices::new(&s.domain);
    roost::circles::create(&conn, &s.domain, "Kids", false, &mut notices).unwrap();
    let token = roost::invite::new_token();
    let now = roost::util::datetime::unix_now();
    invites::create(
        &conn,
        &s.domain,
        &roost::invite::key(&token),
        &invites::New {
            kind: Kind::Account,
            creator: "",
            role: "limited",
            circle: "kids",
            expires: now + 3600,
            uses: 1,
        },
        now,
    )
    .unwrap();
    let (mut c, _) = unauthed(&s);
    assert!(ok(&preauth(&mut c, &token)));
    assert!(ok(&register(&mut c, "kid", "pw")));
    use roost::storage::accounts::{role, Role};
    assert_eq!(role(&conn, &s.domain, "kid").unwrap(), Some(Role::Limited));
    assert!(roost::circles::circles_of(&conn, &s.domain, "kid")
        .unwrap()
        .contains(&"kids".to_string()));
    // The running server knows the role at once (no restart, no polling).
    let jid = roost::jid::BareJid::parse("kid@localhost").unwrap();
    assert_eq!(roost::roles::of(s.core(), &jid), Role::Limited);
}
