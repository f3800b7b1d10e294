//! One-round-trip logins over real sockets: XEP-0388 SASL2 with SCRAM and XEP-0474
//! downgrade protection, XEP-0386 Bind 2 with carbons, CSI and stream management inline,
//! XEP-0198 resumption inside SASL2, and XEP-0484 FAST tokens (issue, use, rotation,
//! expiry, invalidation, revocation with the password and the account, channel binding),
//! with every failure; the RFC 6120 path stays as it was.

mod common;

use common::*;
use roost::sasl::client::ScramClient;
use roost::sasl::ht::client_message;
use roost::sasl::Mechanism;
use roost::xml::Element;
use std::time::Duration;

const SASL2: &str = "urn:xmpp:sasl:2";
const BIND2: &str = "urn:xmpp:bind:0";
const FAST: &str = "urn:xmpp:fast:0";
const SM: &str = "urn:xmpp:sm:3";
const QUIET: Duration = Duration::from_millis(300);
const PHONE: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";

fn family_with(tweak: impl FnOnce(&mut roost::Config)) -> TestServer {
    let s = TestServer::start_with(tweak);
    s.add_user("mom", "pw-mom");
    s.add_user("kid", "pw-kid");
    s
}

/// STARTTLS on a new connection; returns the client and the features after it.
fn secure(s: &TestServer) -> (Client, Element) {
    let mut c = Client::connect(s);
    c.open();
    let f = c.starttls();
    (c, f)
}

/// XEP-0474 computed here from the features: SHA-256 of the SASL2 mechanisms sorted and
/// joined by 0x1E, then 0x1F and the channel-binding types the same way.
fn expected_ssdp(features: &Element) -> String {
    let mut mechs: Vec<String> = features
        .child("authentication", SASL2)
        .expect("SASL2 offered")
        .elements()
        .filter(|m| m.name == "mechanism")
        .map(Element::text)
        .collect();
    mechs.sort();
    let mut s = mechs.join("\u{1e}");
    if let Some(cb) = features.child("sasl-channel-binding", "urn:xmpp:sasl-cb:0") {
        let mut types: Vec<String> = cb
            .elements()
            .filter_map(|t| t.attr("type").map(str::to_owned))
            .collect();
        types.sort();
        s.push('\u{1f}');
        s.push_str(&types.join("\u{1e}"));
    }
    b64(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

fn user_agent(id: &str) -> String {
    format!(
        "<user-agent id='{id}'><software>roost tests</software><device>phone</device></user-agent>"
    )
}

/// SASL2 with SCRAM-SHA-256 (`extra` inside `<authenticate/>`); checks the XEP-0474 hash
/// against `features` and the server's proof. Ok(success) or Err(condition).
fn sasl2_scram(
    c: &mut Client,
    features: &Element,
    user: &str,
    password: &str,
    extra: &str,
) -> Result<Element, String> {
    let mut scram = ScramClient::new(Mechanism::ScramSha256, user, password, None).unwrap();
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'>\
         <initial-response>{}</initial-response>{extra}</authenticate>",
        b64(&scram.client_first())
    ));
    let e = c.element();
    if e.is("failure", SASL2) {
        return Err(failure_condition(&e));
    }
    assert!(e.is("challenge", SASL2), "{e}");
    let server_first = String::from_utf8(unb64(&e.text())).unwrap();
    let h = server_first
        .split(',')
        .find_map(|a| a.strip_prefix("h="))
        .expect("XEP-0474 h attribute");
    assert_eq!(h, expected_ssdp(features), "downgrade protection hash");
    let last = scram.handle_server_first(server_first.as_bytes()).unwrap();
    c.send(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        b64(&last)
    ));
    let e = c.element();
    if e.is("failure", SASL2) {
        return Err(failure_condition(&e));
    }
    assert!(e.is("success", SASL2), "{e}");
    let data = e.child("additional-data", SASL2).expect("server-final");
    scram
        .verify_server_final(&unb64(&data.text()))
        .expect("the server proves it knows the password");
    Ok(e)
}

/// SASL2 with a FAST token; checks the server's answer. Ok(success) or Err(condition).
fn sasl2_fast(
    c: &mut Client,
    mech: &str,
    user: &str,
    token: &str,
    cb: &[u8],
    extra: &str,
) -> Result<Element, String> {
    let (msg, answer) = client_message(user, token, cb);
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='{mech}'>\
         <initial-response>{}</initial-response>{extra}</authenticate>",
        b64(&msg)
    ));
    let e = c.element();
    if e.is("failure", SASL2) {
        return Err(failure_condition(&e));
    }
    assert!(e.is("success", SASL2), "{e}");
    let data = e.child("additional-data", SASL2).expect("responder data");
    assert_eq!(unb64(&data.text()), answer, "the server knows the token");
    Ok(e)
}

fn token_of(success: &Element) -> Option<(String, String)> {
    success.child("token", FAST).map(|t| {
        (
            t.attr("token").unwrap().to_owned(),
            t.attr("expiry").unwrap().to_owned(),
        )
    })
}

fn aid(success: &Element) -> String {
    success
        .child("authorization-identifier", SASL2)
        .expect("authorization-identifier")
        .text()
}

const BIND_ALL: &str = "<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag>\
    <enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/>\
    <enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>";

#[test]
fn features_offer_sasl2_bind2_sm_and_fast_only_inside_tls() {
    let s = family_with(|_| {});
    let mut plain = Client::connect(&s);
    let f = plain.open();
    assert!(
        f.child("authentication", SASL2).is_none(),
        "not before TLS: {f}"
    );
    // Asked anyway: refused, as the RFC 6120 profile does.
    plain.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>AG1vbQBwdy1tb20=</initial-response></authenticate>"
    ));
    let e = plain.element();
    assert!(e.is("failure", SASL2), "{e}");
    assert_eq!(failure_condition(&e), "encryption-required");

    let (_c, f) = secure(&s);
    let auth = f.child("authentication", SASL2).expect("SASL2");
    let mechs: Vec<String> = auth
        .elements()
        .filter(|m| m.name == "mechanism")
        .map(Element::text)
        .collect();
    assert!(
        mechs.contains(&"SCRAM-SHA-256-PLUS".to_string()),
        "{mechs:?}"
    );
    assert!(mechs.contains(&"SCRAM-SHA-1".to_string()), "{mechs:?}");
    let inline = auth.child("inline", SASL2).expect("inline");
    let bind = inline.child("bind", BIND2).expect("Bind 2");
    let vars: Vec<&str> = bind
        .child("inline", BIND2)
        .unwrap()
        .elements()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert_eq!(vars, ["urn:xmpp:carbons:2", "urn:xmpp:csi:0", SM]);
    assert!(inline.child("sm", SM).is_some());
    let fast: Vec<String> = inline
        .child("fast", FAST)
        .expect("FAST")
        .elements()
        .map(Element::text)
        .collect();
    assert_eq!(
        fast,
        ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]
    );
    // The RFC 6120 mechanisms are still there.
    assert!(f.child("mechanisms", NS_SASL).is_some());

    // TLS 1.2: no tls-exporter, so no -EXPR.
    let mut c = Client::connect_to(
        s.c2s_addr(),
        &s.domain,
        s.tls_config(&[&rustls::version::TLS12]),
    );
    c.open();
    let f = c.starttls();
    let fast: Vec<String> = f
        .child("authentication", SASL2)
        .and_then(|a| a.child("inline", SASL2))
        .and_then(|i| i.child("fast", FAST))
        .unwrap()
        .elements()
        .map(Element::text)
        .collect();
    assert_eq!(fast, ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"]);

    // FAST off: not offered.
    let off = family_with(|c| c.fast_token_ttl = Duration::ZERO);
    let (_c, f) = secure(&off);
    let inline = f
        .child("authentication", SASL2)
        .and_then(|a| a.child("inline", SASL2))
        .unwrap();
    assert!(inline.child("fast", FAST).is_none(), "{inline}");
}

#[test]
fn one_round_trip_with_bind2_carbons_csi_sm_then_fast() {
    let s = family_with(|_| {});
    let (mut c, f) = secure(&s);
    let success = sasl2_scram(
        &mut c,
        &f,
        "mom",
        "pw-mom",
        &format!(
            "{}{BIND_ALL}<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>",
            user_agent(PHONE)
        ),
    )
    .expect("login");
    let jid = aid(&success);
    assert!(jid.starts_with("mom@localhost/Phone."), "{jid}");
    let bound = success.child("bound", BIND2).expect("bound");
    let enabled = bound.child("enabled", SM).expect("SM enabled inline");
    assert_eq!(enabled.attr("resume"), Some("true"));
    assert!(enabled.attr("id").is_some());
    let (token, expiry) = token_of(&success).expect("a token");
    assert!(token.len() > 64);
    let days = (roost::util::datetime::parse(&expiry).unwrap() - roost::util::datetime::unix_now())
        / 86_400;
    assert!((20..=21).contains(&days), "three weeks: {expiry}");

    // Bound at once: no restart, no bind IQ.
    let r = c.iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    // SM counts from here: one IQ handled.
    c.send("<r xmlns='urn:xmpp:sm:3'/>");
    let a = c.wait_for("an ack", |e| e.is("a", SM));
    assert_eq!(a.attr("h"), Some("1"));
    // CSI inactive inline: a typing notification waits…
    let mut kid = Client::login(&s, "kid", "pw-kid", "tablet");
    kid.send(&format!(
        "<message to='{jid}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    ));
    c.assert_silent(QUIET);
    // …carbons on inline: a message mom's other device sends is copied here.
    let mut laptop = Client::login(&s, "mom", "pw-mom", "laptop");
    laptop.send("<message to='kid@localhost' type='chat'><body>hi</body></message>");
    let copy = c.wait_for("a carbon", |e| e.name == "message");
    assert!(copy.child("sent", "urn:xmpp:carbons:2").is_some(), "{copy}");
    c.send("<active xmlns='urn:xmpp:csi:0'/>");
    let held = c.wait_for("the held chat state", |e| {
        e.name == "message" && e.child("sent", "urn:xmpp:carbons:2").is_none()
    });
    assert!(held.to_string().contains("composing"), "{held}");

    // The same phone again, with the token: one round trip, the same resource (the old
    // session is replaced), no new token (not due yet).
    let (mut again, _) = secure(&s);
    let success = sasl2_fast(
        &mut again,
        "HT-SHA-256-NONE",
        "mom",
        &token,
        b"",
        &format!(
            "{}<fast xmlns='{FAST}'/><bind xmlns='{BIND2}'><tag>Phone</tag></bind>",
            user_agent(PHONE)
        ),
    )
    .expect("FAST login");
    assert_eq!(aid(&success), jid, "a stable resource per device");
    assert!(token_of(&success).is_none());
    assert_eq!(c.wait_stream_error(), "conflict");
    let r = again.iq("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

/// Logs in with SCRAM through SASL2 as `user` with user-agent `ua` and asks for a token of
/// `mech`; returns the token.
fn get_token(s: &TestServer, user: &str, ua: &str, mech: &str) -> String {
    let (mut c, f) = secure(s);
    let success = sasl2_scram(
        &mut c,
        &f,
        user,
        &format!("pw-{user}"),
        &format!(
            "{}<request-token xmlns='{FAST}' mechanism='{mech}'/>",
            user_agent(ua)
        ),
    )
    .expect("login");
    token_of(&success).expect("token").0
}

/// A FAST login on a new connection; Ok(success) or Err(condition).
fn fast(s: &TestServer, mech: &str, user: &str, token: &str, ua: &str) -> Result<Element, String> {
    let (mut c, _) = secure(s);
    let cb = match mech {
        "HT-SHA-256-EXPR" => c.channel_binding("tls-exporter"),
        "HT-SHA-256-ENDP" => c.channel_binding("tls-server-end-point"),
        _ => Vec::new(),
    };
    sasl2_fast(
        &mut c,
        mech,
        user,
        token,
        &cb,
        &format!("{}<fast xmlns='{FAST}'/>", user_agent(ua)),
    )
}

#[test]
fn fast_failures_tokens_are_per_client_mechanism_and_binding() {
    let s = family_with(|_| {});
    let none = get_token(&s, "mom", PHONE, "HT-SHA-256-NONE");
    let expr = get_token(&s, "mom", "laptop-1", "HT-SHA-256-EXPR");
    let endp = get_token(&s, "kid", "tablet-1", "HT-SHA-256-ENDP");
    assert!(fast(&s, "HT-SHA-256-NONE", "mom", &none, PHONE).is_ok());
    assert!(fast(&s, "HT-SHA-256-EXPR", "mom", &expr, "laptop-1").is_ok());
    assert!(fast(&s, "HT-SHA-256-ENDP", "kid", &endp, "tablet-1").is_ok());
    let na = Err("not-authorized".to_string());
    // A wrong token, another client's, another account's, another mechanism's.
    assert_eq!(
        fast(
            &s,
            "HT-SHA-256-NONE",
            "mom",
            "secret-token:fast-nope",
            PHONE
        )
        .map(|_| ()),
        na
    );
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &none, "laptop-1").map(|_| ()),
        na
    );
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "kid", &none, PHONE).map(|_| ()),
        na
    );
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &expr, "laptop-1").map(|_| ()),
        na
    );
    // A channel-bound token with the binding of another connection.
    let (other, _) = secure(&s);
    let stale_cb = other.channel_binding("tls-exporter");
    let (mut c, _) = secure(&s);
    let r = sasl2_fast(
        &mut c,
        "HT-SHA-256-EXPR",
        "mom",
        &expr,
        &stale_cb,
        &format!("{}<fast xmlns='{FAST}'/>", user_agent("laptop-1")),
    );
    assert_eq!(r.map(|_| ()), na, "wrong channel binding");
    // Without <fast/> or without a user-agent: malformed; -EXPR over TLS 1.2: not offered.
    let (mut c, _) = secure(&s);
    let r = sasl2_fast(
        &mut c,
        "HT-SHA-256-NONE",
        "mom",
        &none,
        b"",
        &user_agent(PHONE),
    );
    assert_eq!(r.map(|_| ()), Err("malformed-request".into()));
    let (mut c, _) = secure(&s);
    let r = sasl2_fast(
        &mut c,
        "HT-SHA-256-NONE",
        "mom",
        &none,
        b"",
        &format!("<fast xmlns='{FAST}'/>"),
    );
    assert_eq!(r.map(|_| ()), Err("malformed-request".into()));
    let mut c = Client::connect_to(
        s.c2s_addr(),
        &s.domain,
        s.tls_config(&[&rustls::version::TLS12]),
    );
    c.open();
    c.starttls();
    let r = sasl2_fast(
        &mut c,
        "HT-SHA-256-EXPR",
        "mom",
        &expr,
        &[0; 32],
        &format!("{}<fast xmlns='{FAST}'/>", user_agent("laptop-1")),
    );
    assert_eq!(r.map(|_| ()), Err("invalid-mechanism".into()));
    // Invalidation: the token works once more, then never.
    let (mut c, _) = secure(&s);
    let r = sasl2_fast(
        &mut c,
        "HT-SHA-256-NONE",
        "mom",
        &none,
        b"",
        &format!(
            "{}<fast xmlns='{FAST}' invalidate='true'/>",
            user_agent(PHONE)
        ),
    )
    .expect("login that invalidates");
    assert!(token_of(&r).is_none());
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &none, PHONE).map(|_| ()),
        na
    );
    // The failures were counted as failed logins: the good ones still work.
    assert!(fast(&s, "HT-SHA-256-EXPR", "mom", &expr, "laptop-1").is_ok());
}

#[test]
fn tokens_rotate_expire_and_go_with_the_password_and_the_account() {
    // Rotated at every use.
    let s = family_with(|c| c.fast_token_rotate = Duration::ZERO);
    let first = get_token(&s, "mom", PHONE, "HT-SHA-256-NONE");
    let r = fast(&s, "HT-SHA-256-NONE", "mom", &first, PHONE).unwrap();
    let (second, _) = token_of(&r).expect("rotated");
    assert_ne!(second, first);
    // The old one stays valid until the new one is used (the new one may have been lost).
    let r = fast(&s, "HT-SHA-256-NONE", "mom", &first, PHONE).unwrap();
    let (third, _) = token_of(&r).expect("rotated again");
    // A newer token replaced the unused `second`.
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &second, PHONE).map(|_| ()),
        Err("not-authorized".into())
    );
    fast(&s, "HT-SHA-256-NONE", "mom", &third, PHONE).unwrap();
    // Using `third` retired `first`.
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &first, PHONE).map(|_| ()),
        Err("not-authorized".into())
    );

    // A new password revokes every token; so does deleting the account.
    let s = family_with(|_| {});
    let mom = get_token(&s, "mom", PHONE, "HT-SHA-256-NONE");
    let kid = get_token(&s, "kid", PHONE, "HT-SHA-256-NONE");
    {
        let conn = roost::storage::open_connection(s.dir.path()).unwrap();
        let creds = roost::sasl::StoredCredentials::derive("new-pw-mom", 4096);
        roost::storage::accounts::set_credentials(&conn, "localhost", "mom", &creds).unwrap();
        let mut conn = conn;
        roost::storage::accounts::delete(&mut conn, "localhost", "kid").unwrap();
    }
    for (user, token) in [("mom", &mom), ("kid", &kid)] {
        assert_eq!(
            fast(&s, "HT-SHA-256-NONE", user, token, PHONE).map(|_| ()),
            Err("not-authorized".into()),
            "{user}"
        );
    }

    // Expired: credentials-expired once, then it is gone.
    let s = family_with(|c| c.fast_token_ttl = Duration::from_secs(1));
    let t = get_token(&s, "mom", PHONE, "HT-SHA-256-NONE");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &t, PHONE).map(|_| ()),
        Err("credentials-expired".into())
    );
    assert_eq!(
        fast(&s, "HT-SHA-256-NONE", "mom", &t, PHONE).map(|_| ()),
        Err("not-authorized".into())
    );
}

#[test]
fn resumption_inside_sasl2_and_its_fallback_to_a_new_bind() {
    let s = family_with(|_| {});
    let (mut c, f) = secure(&s);
    let success = sasl2_scram(
        &mut c,
        &f,
        "mom",
        "pw-mom",
        &format!(
            "{}{BIND_ALL}<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>",
            user_agent(PHONE)
        ),
    )
    .unwrap();
    let jid = aid(&success);
    let previd = success
        .child("bound", BIND2)
        .and_then(|b| b.child("enabled", SM))
        .and_then(|e| e.attr("id"))
        .unwrap()
        .to_owned();
    let (token, _) = token_of(&success).unwrap();
    // The phone loses its connection; a message comes meanwhile.
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let mut kid = Client::login(&s, "kid", "pw-kid", "tablet");
    kid.send(&format!(
        "<message to='{jid}' type='chat' id='m1'><body>while away</body></message>"
    ));
    kid.assert_silent(QUIET);
    // One round trip: token, resumption, the missed message.
    let (mut c, _) = secure(&s);
    let success = sasl2_fast(
        &mut c,
        "HT-SHA-256-NONE",
        "mom",
        &token,
        b"",
        &format!(
            "{}<fast xmlns='{FAST}'/><resume xmlns='{SM}' previd='{previd}' h='0'/>{BIND_ALL}",
            user_agent(PHONE)
        ),
    )
    .expect("FAST login with resumption");
    assert_eq!(aid(&success), jid, "the resumed session's JID");
    let resumed = success.child("resumed", SM).expect("resumed inline");
    assert_eq!(resumed.attr("previd"), Some(previd.as_str()));
    assert!(success.child("bound", BIND2).is_none(), "no new bind");
    let m = c.wait_for("the missed message", |e| e.name == "message");
    assert_eq!(
        m.child("body", "jabber:client")
            .map(Element::text)
            .as_deref(),
        Some("while away")
    );
    let r = c.iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"));

    // An unknown (expired) session: <failed/>, and the Bind 2 request binds anew.
    let (mut c2, f2) = secure(&s);
    let success = sasl2_scram(
        &mut c2,
        &f2,
        "mom",
        "pw-mom",
        &format!(
            "{}<resume xmlns='{SM}' previd='gone' h='3'/><bind xmlns='{BIND2}'><tag>Other</tag></bind>",
            user_agent("other")
        ),
    )
    .unwrap();
    let failed = success.child("failed", SM).expect("resumption failed");
    assert!(
        failed.child("item-not-found", NS_STANZAS).is_some(),
        "{failed}"
    );
    assert!(aid(&success).starts_with("mom@localhost/Other."));
    assert!(success.child("bound", BIND2).is_some());
    // Another account cannot take mom's session over.
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let (mut c3, f3) = secure(&s);
    let success = sasl2_scram(
        &mut c3,
        &f3,
        "kid",
        "pw-kid",
        &format!("<resume xmlns='{SM}' previd='{previd}' h='0'/>"),
    )
    .unwrap();
    assert!(success.child("failed", SM).is_some(), "{success}");
    assert_eq!(aid(&success), "kid@localhost");
}

#[test]
fn sasl2_failures_and_the_bind_iq_after_sasl2_without_bind2() {
    let s = family_with(|_| {});
    let (mut c, f) = secure(&s);
    for (bad, cond) in [
        (
            sasl2_scram(&mut c, &f, "mom", "wrong", &user_agent(PHONE)),
            "not-authorized",
        ),
        (
            sasl2_scram(&mut c, &f, "nobody", "pw", ""),
            "not-authorized",
        ),
    ] {
        assert_eq!(bad.map(|_| ()), Err(cond.into()));
    }
    // (at most five failures on one connection)
    let (mut c, _) = secure(&s);
    for (xml, cond) in [
        (
            format!("<authenticate xmlns='{SASL2}' mechanism='DIGEST-MD5'><initial-response>=</initial-response></authenticate>"),
            "invalid-mechanism",
        ),
        (
            format!("<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>!!</initial-response></authenticate>"),
            "incorrect-encoding",
        ),
        (
            format!("<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>biws</initial-response><user-agent id=''/></authenticate>"),
            "malformed-request",
        ),
        (format!("<response xmlns='{SASL2}'>biws</response>"), "malformed-request"),
    ] {
        c.send(&xml);
        let e = c.element();
        assert!(e.is("failure", SASL2), "{e}");
        assert_eq!(failure_condition(&e), cond, "{xml}");
    }
    // A fifth failure ends the stream.
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response></authenticate>",
        b64(b"\0mom\0wrong")
    ));
    let e = c.element();
    assert_eq!(failure_condition(&e), "not-authorized", "{e}");
    assert_eq!(c.expect_stream_error(), "policy-violation");
    // Abort in the middle: aborted; that does not count, and five real failures end it.
    let (mut c, f) = secure(&s);
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>{}</initial-response></authenticate>",
        b64(b"n,,n=mom,r=abcdefghijkl")
    ));
    assert!(c.element().is("challenge", SASL2));
    c.send(&format!("<abort xmlns='{SASL2}'/>"));
    let e = c.element();
    assert_eq!(failure_condition(&e), "aborted", "{e}");
    // Then a good login without Bind 2: a bare JID, and RFC 6120 binding without a
    // restart.
    let success = sasl2_scram(&mut c, &f, "mom", "pw-mom", "").unwrap();
    assert_eq!(aid(&success), "mom@localhost");
    assert!(token_of(&success).is_none(), "no token unasked");
    let jid = c.bind_here(Some("desk"));
    assert_eq!(jid, "mom@localhost/desk");

    // A token asked for without a user-agent: none given (FAST needs the client's id).
    let (mut c, f) = secure(&s);
    let success = sasl2_scram(
        &mut c,
        &f,
        "mom",
        "pw-mom",
        &format!("<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>"),
    )
    .unwrap();
    assert!(token_of(&success).is_none(), "{success}");

    // The RFC 6120 SCRAM challenge is as before: no XEP-0474 attribute.
    let (mut c, _) = secure(&s);
    let mut scram = ScramClient::new(Mechanism::ScramSha256, "mom", "pw-mom", None).unwrap();
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>{}</auth>",
        b64(&scram.client_first())
    ));
    let e = c.element();
    let first = String::from_utf8(unb64(&e.text())).unwrap();
    assert!(!first.contains(",h="), "{first}");
    let last = scram.handle_server_first(first.as_bytes()).unwrap();
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        b64(&last)
    ));
    assert!(c.element().is("success", NS_SASL));
}

const UPGRADE: &str = "urn:xmpp:sasl:upgrade:0";
const SCRAM_UPGRADE: &str = "urn:xmpp:scram-upgrade:0";

/// Blanks an account's SHA-256 keys in the database, as an import from a server that
/// stored only SCRAM-SHA-1 keys leaves it.
fn only_sha1_keys(s: &TestServer, user: &str) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let n = conn
        .execute(
            "UPDATE accounts SET sha256_stored_key = x'', sha256_server_key = x''
             WHERE host = 'localhost' AND username = ?1",
            [user],
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// SASL2 SCRAM-SHA-1 asking for `upgrade` (and `extra`); returns what follows the
/// client's final message (checked to carry the server's proof when it is `<continue/>`).
fn sasl2_sha1_with_upgrade(
    c: &mut Client,
    user: &str,
    pw: &str,
    upgrade: &str,
    extra: &str,
) -> Element {
    let mut scram = ScramClient::new(Mechanism::ScramSha1, user, pw, None).unwrap();
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-1'>\
         <initial-response>{}</initial-response>\
         <upgrade xmlns='{UPGRADE}'>{upgrade}</upgrade>{extra}</authenticate>",
        b64(&scram.client_first())
    ));
    let e = c.element();
    assert!(e.is("challenge", SASL2), "{e}");
    let last = scram.handle_server_first(&unb64(&e.text())).unwrap();
    c.send(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        b64(&last)
    ));
    let e = c.element();
    if let Some(data) = e.child("additional-data", SASL2) {
        scram
            .verify_server_final(&unb64(data.text().trim()))
            .expect("the server proves it knows the password");
    }
    e
}

/// RFC 5802 Hi() with HMAC-SHA-256, computed here with ring directly.
fn salted_sha256(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap(),
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

#[test]
fn an_account_with_only_sha1_keys_gains_sha256_keys_by_an_upgrade_task() {
    let s = family_with(|_| {});
    only_sha1_keys(&s, "mom");
    let (mut c, f) = secure(&s);
    let tasks: Vec<String> = f
        .child("authentication", SASL2)
        .unwrap()
        .elements()
        .filter(|e| e.is("upgrade", UPGRADE))
        .map(Element::text)
        .collect();
    assert_eq!(tasks, ["UPGR-SCRAM-SHA-256", "UPGR-SCRAM-SHA-1"]);
    // No SHA-256 keys: SCRAM-SHA-256 fails as a wrong password would; PLAIN is checked
    // against the SHA-1 keys.
    assert_eq!(
        sasl2_scram(&mut c, &f, "mom", "pw-mom", "").map(|_| ()),
        Err("not-authorized".into())
    );
    let (mut c, _) = secure(&s);
    c.send(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response></authenticate>",
        b64(b"\0mom\0pw-mom")
    ));
    let e = c.element();
    assert!(e.is("success", SASL2), "{e}");

    // SCRAM-SHA-1 asking for the upgrade, with Bind 2: <continue/> with the task.
    let (mut c, _) = secure(&s);
    let bind = format!("<bind xmlns='{BIND2}'><tag>phone</tag></bind>");
    let e = sasl2_sha1_with_upgrade(&mut c, "mom", "pw-mom", "UPGR-SCRAM-SHA-256", &bind);
    assert!(e.is("continue", SASL2), "{e}");
    assert!(e.child("additional-data", SASL2).is_some(), "{e}");
    let task = e
        .child("tasks", SASL2)
        .unwrap()
        .child("task", SASL2)
        .unwrap();
    assert_eq!(task.text(), "UPGR-SCRAM-SHA-256");
    c.send(&format!(
        "<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-256'/>"
    ));
    let e = c.element();
    assert!(e.is("task-data", SASL2), "{e}");
    let salt_el = e.child("salt", SCRAM_UPGRADE).expect("salt");
    let iterations: u32 = salt_el.attr("iterations").unwrap().parse().unwrap();
    let salt = unb64(salt_el.text().trim());
    let salted = salted_sha256("pw-mom", &salt, iterations);
    c.send(&format!(
        "<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{}</hash></task-data>",
        b64(&salted)
    ));
    let success = c.element();
    assert!(success.is("success", SASL2), "{success}");
    assert!(
        aid(&success).starts_with("mom@localhost/phone."),
        "{success}"
    );
    assert!(success.child("bound", BIND2).is_some(), "{success}");

    // The keys are stored: SCRAM-SHA-256 works, and they are the password's.
    let (mut c, f) = secure(&s);
    sasl2_scram(&mut c, &f, "mom", "pw-mom", "").expect("SCRAM-SHA-256 after the upgrade");
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let stored = roost::storage::accounts::credentials(&conn, "localhost", "mom")
        .unwrap()
        .unwrap();
    let fresh = roost::sasl::StoredCredentials::derive_with_salt("pw-mom", &salt, iterations);
    assert!(stored == fresh, "stored keys are those of the password");

    // An account that has both: the task asked for is not needed, success at once.
    let (mut c, _) = secure(&s);
    let e = sasl2_sha1_with_upgrade(&mut c, "mom", "pw-mom", "UPGR-SCRAM-SHA-256", "");
    assert!(e.is("success", SASL2), "{e}");
    // An unknown task is ignored.
    only_sha1_keys(&s, "kid");
    let (mut c, _) = secure(&s);
    let e = sasl2_sha1_with_upgrade(&mut c, "kid", "pw-kid", "UPGR-BLOOP", "");
    assert!(e.is("success", SASL2), "{e}");

    // Failures: another task started; a hash of the wrong length; both leave no keys.
    let (mut c, _) = secure(&s);
    let e = sasl2_sha1_with_upgrade(&mut c, "kid", "pw-kid", "UPGR-SCRAM-SHA-256", "");
    assert!(e.is("continue", SASL2), "{e}");
    c.send(&format!("<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-1'/>"));
    let e = c.element();
    assert_eq!(failure_condition(&e), "malformed-request", "{e}");
    let (mut c, _) = secure(&s);
    sasl2_sha1_with_upgrade(&mut c, "kid", "pw-kid", "UPGR-SCRAM-SHA-256", "");
    c.send(&format!(
        "<next xmlns='{SASL2}' task='UPGR-SCRAM-SHA-256'/>"
    ));
    assert!(c.element().is("task-data", SASL2));
    c.send(&format!(
        "<task-data xmlns='{SASL2}'><hash xmlns='{SCRAM_UPGRADE}'>{}</hash></task-data>",
        b64(&[7u8; 20])
    ));
    let e = c.element();
    assert_eq!(failure_condition(&e), "malformed-request", "{e}");
    let (mut c, f) = secure(&s);
    assert_eq!(
        sasl2_scram(&mut c, &f, "kid", "pw-kid", "").map(|_| ()),
        Err("not-authorized".into()),
        "no keys stored by a failed upgrade"
    );
}
