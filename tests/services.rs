//! The service modules over real sockets: XEP-0030 disco and XEP-0115 caps, XEP-0092
//! version, XEP-0202 time, XEP-0012 last activity, XEP-0054 vcard-temp and XEP-0049 private
//! storage, each with its error cases.

mod common;

use common::*;
use roost::sasl::Mechanism;
use roost::xml::parse::{parse_element, Scope};
use roost::xml::Element;
use std::collections::BTreeSet;

const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const CAPS: &str = "http://jabber.org/protocol/caps";
const VERSION: &str = "jabber:iq:version";
const TIME: &str = "urn:xmpp:time";
const LAST: &str = "jabber:iq:last";
const VCARD: &str = "vcard-temp";
const PRIVATE: &str = "jabber:iq:private";

/// A server with mom, dad and kid (password `pw-<name>`).
fn family() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid"] {
        s.add_user(u, &format!("pw-{u}"));
    }
    s
}

fn login(s: &TestServer, user: &str) -> Client {
    Client::login(s, user, &format!("pw-{user}"), "phone")
}

/// Sends `<iq type='{ty}' id='{id}'{to}>{payload}</iq>` and returns the reply with that id.
fn iq(c: &mut Client, ty: &str, to: Option<&str>, payload: &str) -> Element {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "q{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    c.send(&format!("<iq type='{ty}' id='{id}'{to}>{payload}</iq>"));
    loop {
        let e = c.element();
        if e.name == "iq" && e.attr("id") == Some(id.as_str()) {
            return e;
        }
    }
}

/// The payload of a result (panics on an error).
fn result(reply: Element) -> Option<Element> {
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "expected a result: {reply}"
    );
    reply.first_element().cloned()
}

/// The condition of an error reply (panics on a result).
fn error(reply: &Element) -> String {
    assert_eq!(
        reply.attr("type"),
        Some("error"),
        "expected an error: {reply}"
    );
    let e = reply.child("error", "jabber:client").expect("an <error/>");
    failure_condition(e)
}

fn get(c: &mut Client, to: Option<&str>, payload: &str) -> Element {
    iq(c, "get", to, payload)
}

fn set(c: &mut Client, to: Option<&str>, payload: &str) -> Element {
    iq(c, "set", to, payload)
}

/// The `var`s of a disco#info result, checked for duplicates.
fn features(q: &Element) -> BTreeSet<String> {
    let vars: Vec<String> = q
        .elements()
        .filter(|e| e.is("feature", DISCO_INFO))
        .map(|e| e.attr("var").expect("var").to_owned())
        .collect();
    let set: BTreeSet<String> = vars.iter().cloned().collect();
    assert_eq!(set.len(), vars.len(), "a feature listed twice: {q}");
    set
}

/// `(category, type, name)` of each identity.
fn identities(q: &Element) -> Vec<(String, String, Option<String>)> {
    q.elements()
        .filter(|e| e.is("identity", DISCO_INFO))
        .map(|e| {
            (
                e.attr("category").unwrap().to_owned(),
                e.attr("type").unwrap().to_owned(),
                e.attr("name").map(str::to_owned),
            )
        })
        .collect()
}

/// XEP-0115 §5.1 computed here, independently of the server's code: identities sorted by
/// category/type/xml:lang, then sorted features, each followed by `<`; SHA-1; Base64.
fn caps_ver(q: &Element) -> String {
    let mut ids: Vec<[String; 4]> = q
        .elements()
        .filter(|e| e.is("identity", DISCO_INFO))
        .map(|e| {
            let a = |n: &str| e.attr(n).unwrap_or("").to_owned();
            [a("category"), a("type"), a("xml:lang"), a("name")]
        })
        .collect();
    ids.sort();
    let mut s = String::new();
    for i in ids {
        s += &format!("{}/{}/{}/{}<", i[0], i[1], i[2], i[3]);
    }
    for f in features(q) {
        s += &f;
        s.push('<');
    }
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
    b64(digest.as_ref())
}

fn parse(xml: &str) -> Element {
    parse_element(&Scope::client(), xml.as_bytes()).unwrap()
}

// ---------------------------------------------------------------- disco and caps

#[test]
fn disco_info_of_the_domain_lists_every_module_feature() {
    let s = family();
    let mut c = login(&s, "mom");
    let reply = get(
        &mut c,
        Some("localhost"),
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    );
    assert_eq!(reply.attr("from"), Some("localhost"));
    let q = result(reply).expect("a query");
    assert!(q.is("query", DISCO_INFO));
    assert_eq!(q.attr("node"), None);
    assert_eq!(
        identities(&q),
        vec![("server".into(), "im".into(), Some("roost".into()))]
    );
    let got = features(&q);
    for f in roost::modules::features() {
        assert!(got.contains(f), "{f} missing from {got:?}");
    }
    for f in [
        DISCO_INFO,
        DISCO_ITEMS,
        "urn:xmpp:ping",
        VERSION,
        TIME,
        LAST,
        VCARD,
        PRIVATE,
    ] {
        assert!(got.contains(f), "{f} missing from {got:?}");
    }
    c.close();
}

#[test]
fn caps_in_stream_features_match_disco_info() {
    let s = family();
    let mut c = Client::connect(&s);
    let f = c.open();
    assert!(f.child("c", CAPS).is_none(), "no caps before auth: {f}");
    c.starttls();
    c.scram(Mechanism::ScramSha256, "mom", "pw-mom", None)
        .unwrap();
    let f = c.open();
    let caps = f.child("c", CAPS).expect("caps after auth").clone();
    assert_eq!(caps.attr("hash"), Some("sha-1"));
    let node = caps.attr("node").expect("node").to_owned();
    assert!(node.starts_with("https://"), "{node}");
    let ver = caps.attr("ver").expect("ver").to_owned();
    c.send(&format!(
        "<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>r</resource></bind></iq>"
    ));
    result(c.element());

    let q = result(get(
        &mut c,
        Some("localhost"),
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    ))
    .unwrap();
    assert_eq!(caps_ver(&q), ver, "ver recomputed from {q}");

    // The node#ver names the same information, and the result says which node it answers.
    let nv = format!("{node}#{ver}");
    let q2 = result(get(
        &mut c,
        Some("localhost"),
        &format!("<query xmlns='{DISCO_INFO}' node='{nv}'/>"),
    ))
    .unwrap();
    assert_eq!(q2.attr("node"), Some(nv.as_str()));
    assert_eq!(features(&q2), features(&q));
    assert_eq!(identities(&q2), identities(&q));
    assert_eq!(caps_ver(&q2), ver);

    for bad in [
        format!("{node}#AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        node.clone(),
        // XEP-0050's command list is a node of the server (tests/roles.rs); this is not.
        "http://jabber.org/protocol/commands#nothing".into(),
    ] {
        let r = get(
            &mut c,
            Some("localhost"),
            &format!("<query xmlns='{DISCO_INFO}' node='{bad}'/>"),
        );
        assert_eq!(error(&r), "item-not-found", "{bad}");
    }
    c.close();
}

#[test]
fn disco_items_list_the_services_and_nodes_are_unknown() {
    let s = family();
    let mut c = login(&s, "mom");
    for to in [Some("localhost"), Some("dad@localhost"), None] {
        let q = result(get(&mut c, to, &format!("<query xmlns='{DISCO_ITEMS}'/>"))).unwrap();
        assert!(q.is("query", DISCO_ITEMS));
        // The server lists its hosted services (group chats, file upload); accounts have
        // no items.
        let items: Vec<&str> = q.elements().filter_map(|i| i.attr("jid")).collect();
        if to == Some("localhost") {
            assert_eq!(items, ["groups.localhost", "upload.localhost"], "{q}");
        } else {
            assert!(items.is_empty(), "{to:?}: {q}");
        }
        let r = get(
            &mut c,
            to,
            &format!("<query xmlns='{DISCO_ITEMS}' node='x'/>"),
        );
        assert_eq!(error(&r), "item-not-found", "{to:?}");
    }
    c.close();
}

#[test]
fn disco_info_of_an_account() {
    let s = family();
    let mut c = login(&s, "mom");
    let expected: BTreeSet<String> = roost::modules::account_features()
        .map(str::to_owned)
        .collect();
    assert!(expected.contains(DISCO_INFO));
    // Another account's bare JID, and the own account (no `to`, RFC 6120 §10.3.3).
    for to in [Some("dad@localhost"), None, Some("mom@localhost")] {
        let reply = get(&mut c, to, &format!("<query xmlns='{DISCO_INFO}'/>"));
        let q = result(reply).unwrap();
        assert_eq!(
            identities(&q),
            vec![
                ("account".into(), "registered".into(), None),
                // XEP-0163 §6.1: every account is a PEP service.
                ("pubsub".into(), "pep".into(), None)
            ],
            "{to:?}"
        );
        assert_eq!(features(&q), expected, "{to:?}");
        assert!(!features(&q).contains(PRIVATE), "not for others");
        let r = get(
            &mut c,
            to,
            &format!("<query xmlns='{DISCO_INFO}' node='urn:xmpp:avatar:data'/>"),
        );
        assert_eq!(error(&r), "item-not-found", "{to:?}");
    }
    let r = get(
        &mut c,
        Some("nobody@localhost"),
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    );
    assert_eq!(error(&r), "service-unavailable");
    // disco#info is get-only.
    let r = set(
        &mut c,
        Some("localhost"),
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    );
    assert_eq!(error(&r), "service-unavailable");
    c.close();
}

// ---------------------------------------------------------------- version and time

#[test]
fn software_version_of_the_domain() {
    let s = family();
    let mut c = login(&s, "mom");
    let q = result(get(
        &mut c,
        Some("localhost"),
        &format!("<query xmlns='{VERSION}'/>"),
    ))
    .unwrap();
    assert!(q.is("query", VERSION));
    assert_eq!(q.child("name", VERSION).unwrap().text(), "roost");
    assert_eq!(
        q.child("version", VERSION).unwrap().text(),
        env!("CARGO_PKG_VERSION")
    );
    assert!(q.child("os", VERSION).is_none(), "no os: {q}");
    // Accounts do not answer for their clients.
    let r = get(
        &mut c,
        Some("dad@localhost"),
        &format!("<query xmlns='{VERSION}'/>"),
    );
    assert_eq!(error(&r), "service-unavailable");
    c.close();
}

#[test]
fn entity_time_of_the_domain() {
    let s = family();
    let mut c = login(&s, "mom");
    let before = roost::util::datetime::unix_now();
    let t = result(get(
        &mut c,
        Some("localhost"),
        &format!("<time xmlns='{TIME}'/>"),
    ))
    .unwrap();
    let after = roost::util::datetime::unix_now();
    assert!(t.is("time", TIME));
    assert_eq!(t.child("tzo", TIME).unwrap().text(), "+00:00");
    let utc = t.child("utc", TIME).unwrap().text();
    assert!(utc.ends_with('Z'), "{utc}");
    let at = roost::util::datetime::parse(&utc).expect("a XEP-0082 DateTime");
    assert!(
        before <= at && at <= after,
        "{utc} not between {before} and {after}"
    );
    let r = get(
        &mut c,
        Some("dad@localhost"),
        &format!("<time xmlns='{TIME}'/>"),
    );
    assert_eq!(error(&r), "service-unavailable");
    c.close();
}

// ---------------------------------------------------------------- last activity

fn last(c: &mut Client, to: Option<&str>) -> Element {
    get(c, to, &format!("<query xmlns='{LAST}'/>"))
}

fn seconds(q: &Element) -> u64 {
    assert!(q.is("query", LAST), "{q}");
    q.attr("seconds")
        .expect("seconds")
        .parse()
        .expect("a number")
}

#[test]
fn last_activity_of_the_server_is_its_uptime() {
    let s = family();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut c = login(&s, "mom");
    let q = result(last(&mut c, Some("localhost"))).unwrap();
    let up = seconds(&q);
    assert!((1..120).contains(&up), "uptime {up}");
    assert_eq!(q.text(), "", "no text for a server");
    c.close();
}

/// Writes `user`'s roster item for `contact` with subscription `state` directly.
fn roster_item(s: &TestServer, user: &str, contact: &str, state: roost::subscription::State) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let mut item = roost::storage::roster::Item::new(contact);
    item.state = state;
    roost::storage::roster::put(&conn, &s.domain, user, &item).unwrap();
}

fn set_last_seen(s: &TestServer, user: &str, ago: i64, status: &str) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let at = roost::util::datetime::unix_now() - ago;
    roost::storage::lastact::set(&conn, &s.domain, user, at, status).unwrap();
}

#[test]
fn last_activity_of_accounts_needs_a_presence_subscription() {
    use roost::subscription::State;
    let s = family();
    let mut dad = login(&s, "dad");
    let mut kid = login(&s, "kid");
    let mut mom = login(&s, "mom");

    // No subscription: forbidden.
    assert_eq!(error(&last(&mut dad, Some("mom@localhost"))), "forbidden");
    // Mom approved dad (her item for him: from; his for her: to).
    roster_item(&s, "mom", "dad@localhost", State::From);
    roster_item(&s, "dad", "mom@localhost", State::To);
    // Allowed now, but never seen going offline.
    assert_eq!(
        error(&last(&mut dad, Some("mom@localhost"))),
        "item-not-found"
    );
    set_last_seen(&s, "mom", 100, "Heading Home");
    let q = result(last(&mut dad, Some("mom@localhost"))).unwrap();
    assert!((100..110).contains(&seconds(&q)), "{q}");
    assert_eq!(q.text(), "Heading Home");
    // Her own, with no `to`, needs no subscription.
    let q = result(last(&mut mom, None)).unwrap();
    assert!((100..110).contains(&seconds(&q)), "{q}");
    let q = result(last(&mut mom, Some("mom@localhost"))).unwrap();
    assert_eq!(q.text(), "Heading Home");

    // Mom's roster decides, not the requester's: the kid's claim of a `to` subscription
    // that mom never approved is not enough, nor is mom seeing the kid's presence.
    roster_item(&s, "kid", "mom@localhost", State::To);
    roster_item(&s, "mom", "kid@localhost", State::To);
    assert_eq!(error(&last(&mut kid, Some("mom@localhost"))), "forbidden");
    // Nor does mom's `to` let her see the kid's, until the kid's roster has `from`.
    set_last_seen(&s, "kid", 5, "");
    assert_eq!(error(&last(&mut mom, Some("kid@localhost"))), "forbidden");
    roster_item(&s, "kid", "mom@localhost", State::From);
    let q = result(last(&mut mom, Some("kid@localhost"))).unwrap();
    assert!((5..15).contains(&seconds(&q)), "{q}");
    assert_eq!(q.text(), "");

    assert_eq!(
        error(&last(&mut mom, Some("nobody@localhost"))),
        "service-unavailable"
    );
    for c in [dad, kid, mom] {
        c.close();
    }
}

#[test]
fn last_activity_of_an_available_account_is_zero() {
    let s = family();
    let mut mom = login(&s, "mom");
    set_last_seen(&s, "mom", 100, "Heading Home");
    mom.send("<presence/>");
    // Mom's own presence comes back to her (RFC 6121 §4.2.2).
    let p = mom.element();
    assert_eq!(p.name, "presence", "{p}");
    let q = result(last(&mut mom, None)).unwrap();
    assert_eq!(seconds(&q), 0);
    assert_eq!(q.text(), "");
    // Going unavailable records the time and status (the presence module's part).
    mom.send("<presence type='unavailable'><status>Heading Home</status></presence>");
    let q = result(last(&mut mom, None)).unwrap();
    assert!(seconds(&q) < 5, "{q}");
    assert_eq!(q.text(), "Heading Home");
    mom.close();
}

#[test]
fn logging_out_records_last_activity() {
    use roost::subscription::State;
    let s = family();
    roster_item(&s, "mom", "dad@localhost", State::Both);
    roster_item(&s, "dad", "mom@localhost", State::Both);
    let mut dad = login(&s, "dad");
    let mut mom = login(&s, "mom");
    mom.send("<presence/>");
    // Her own presence comes back once she is available.
    mom.wait_for("own presence", |e| e.name == "presence");
    assert_eq!(
        seconds(&result(last(&mut dad, Some("mom@localhost"))).unwrap()),
        0
    );
    // A disconnect without an unavailable presence counts as logging out. The session
    // records it as it ends, which may be just after the TCP close: ask again (bounded)
    // until it is recorded.
    mom.close();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while last(&mut dad, Some("mom@localhost")).attr("type") != Some("result") {
        assert!(
            std::time::Instant::now() < deadline,
            "mom's logout was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let q = result(last(&mut dad, Some("mom@localhost"))).unwrap();
    assert!(seconds(&q) < 5, "{q}");
    dad.close();
}

// ---------------------------------------------------------------- vcard-temp

const MOM_VCARD: &str = "<vCard xmlns='vcard-temp'><FN>Mom</FN><NICKNAME>mama</NICKNAME>\
                         <PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>\
                         <NOTE>1 &lt; 2 &amp; caf\u{e9}</NOTE></vCard>";

fn vcard_get(c: &mut Client, to: Option<&str>) -> Element {
    get(c, to, "<vCard xmlns='vcard-temp'/>")
}

#[test]
fn vcard_set_then_get_from_another_account() {
    let s = family();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");

    // Nobody has one yet: an empty vCard.
    let v = result(vcard_get(&mut dad, Some("mom@localhost"))).unwrap();
    assert!(v.is("vCard", VCARD));
    assert!(v.children.is_empty(), "{v}");

    assert_eq!(result(set(&mut mom, None, MOM_VCARD)), None);
    let expected = parse(MOM_VCARD);
    let v = result(vcard_get(&mut dad, Some("mom@localhost"))).unwrap();
    assert_eq!(v, expected);
    let v = result(vcard_get(&mut mom, None)).unwrap();
    assert_eq!(v, expected);

    // Setting to the own bare JID works too, and replaces it.
    let second = "<vCard xmlns='vcard-temp'><FN>Mother</FN></vCard>";
    result(set(&mut mom, Some("mom@localhost"), second));
    assert_eq!(
        result(vcard_get(&mut dad, Some("mom@localhost"))).unwrap(),
        parse(second)
    );

    // Dad has none; he may not set mom's.
    let v = result(vcard_get(&mut dad, None)).unwrap();
    assert!(v.is("vCard", VCARD) && v.children.is_empty(), "{v}");
    let r = set(
        &mut dad,
        Some("mom@localhost"),
        "<vCard xmlns='vcard-temp'><FN>Hacked</FN></vCard>",
    );
    assert_eq!(error(&r), "forbidden");
    assert_eq!(
        result(vcard_get(&mut mom, None)).unwrap(),
        parse(second),
        "unchanged"
    );

    assert_eq!(
        error(&vcard_get(&mut dad, Some("nobody@localhost"))),
        "service-unavailable"
    );
    assert_eq!(
        error(&set(&mut mom, Some("localhost"), second)),
        "service-unavailable"
    );
    mom.close();
    dad.close();
}

#[test]
fn oversized_vcard_is_refused() {
    let s = family();
    let mut mom = login(&s, "mom");
    result(set(&mut mom, None, MOM_VCARD));
    let big = format!(
        "<vCard xmlns='vcard-temp'><NOTE>{}</NOTE></vCard>",
        "x".repeat(130 * 1024)
    );
    let r = set(&mut mom, None, &big);
    assert_eq!(error(&r), "policy-violation");
    assert_eq!(result(vcard_get(&mut mom, None)).unwrap(), parse(MOM_VCARD));
    mom.close();
}

// ---------------------------------------------------------------- private storage

fn private(inner: &str) -> String {
    format!("<query xmlns='{PRIVATE}'>{inner}</query>")
}

/// The children of a private storage result.
fn stored(reply: Element) -> Vec<Element> {
    let q = result(reply).expect("a query");
    assert!(q.is("query", PRIVATE), "{q}");
    q.elements().cloned().collect()
}

#[test]
fn private_storage_is_per_account() {
    let s = family();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let blue = "<prefs xmlns='roost:test:prefs'><color>blue</color></prefs>";
    let red = "<prefs xmlns='roost:test:prefs'><color>red</color></prefs>";
    let ask = private("<prefs xmlns='roost:test:prefs'/>");

    // Never stored: the empty element comes back.
    assert_eq!(
        stored(get(&mut mom, None, &ask)),
        vec![parse("<prefs xmlns='roost:test:prefs'/>")]
    );
    assert_eq!(result(set(&mut mom, None, &private(blue))), None);
    assert_eq!(stored(get(&mut mom, None, &ask)), vec![parse(blue)]);
    assert_eq!(
        stored(get(&mut dad, None, &ask)),
        vec![parse("<prefs xmlns='roost:test:prefs'/>")],
        "dad does not see mom's"
    );
    result(set(&mut dad, Some("dad@localhost"), &private(red)));
    assert_eq!(stored(get(&mut dad, None, &ask)), vec![parse(red)]);
    assert_eq!(stored(get(&mut mom, None, &ask)), vec![parse(blue)]);

    // Another account's: forbidden both ways, and nothing changes.
    assert_eq!(
        error(&get(&mut dad, Some("mom@localhost"), &ask)),
        "forbidden"
    );
    assert_eq!(
        error(&set(&mut dad, Some("mom@localhost"), &private(red))),
        "forbidden"
    );
    assert_eq!(stored(get(&mut mom, None, &ask)), vec![parse(blue)]);
    assert_eq!(
        error(&get(&mut mom, Some("localhost"), &ask)),
        "service-unavailable"
    );

    // Several elements of one namespace at once, each stored under its own name.
    let a = "<a xmlns='roost:test:multi'>1</a>";
    let b = "<b xmlns='roost:test:multi'><x/></b>";
    result(set(&mut mom, None, &private(&format!("{a}{b}"))));
    assert_eq!(
        stored(get(
            &mut mom,
            None,
            &private("<b xmlns='roost:test:multi'/><a xmlns='roost:test:multi'/>")
        )),
        vec![parse(b), parse(a)]
    );
    assert_eq!(stored(get(&mut mom, None, &ask)), vec![parse(blue)]);
    mom.close();
    dad.close();
}

#[test]
fn private_storage_refuses_bad_queries() {
    let s = family();
    let mut mom = login(&s, "mom");
    for (inner, cond) in [
        ("", "not-acceptable"),
        // No namespace of its own: it is in jabber:iq:private.
        ("<prefs/>", "not-acceptable"),
        ("<message xmlns='jabber:client'/>", "not-acceptable"),
        (
            "<a xmlns='roost:test:a'/><b xmlns='roost:test:b'/>",
            "bad-request",
        ),
    ] {
        for ty in ["get", "set"] {
            let r = iq(&mut mom, ty, None, &private(inner));
            assert_eq!(error(&r), cond, "{ty} {inner:?}");
        }
    }
    // Nothing of the refused sets was stored.
    assert_eq!(
        stored(get(&mut mom, None, &private("<a xmlns='roost:test:a'/>"))),
        vec![parse("<a xmlns='roost:test:a'/>")]
    );
    mom.close();
}

// ---------------------------------------------------------------- persistence

#[test]
fn vcards_and_private_xml_survive_a_restart() {
    let mut s = family();
    let mut mom = login(&s, "mom");
    result(set(&mut mom, None, MOM_VCARD));
    let blue = "<prefs xmlns='roost:test:prefs'><color>blue</color></prefs>";
    result(set(&mut mom, None, &private(blue)));
    mom.close();
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s = TestServer::start_in(dir, |_| {});
    let mut dad = login(&s, "dad");
    assert_eq!(
        result(vcard_get(&mut dad, Some("mom@localhost"))).unwrap(),
        parse(MOM_VCARD)
    );
    dad.close();
    let mut mom = login(&s, "mom");
    assert_eq!(
        stored(get(
            &mut mom,
            None,
            &private("<prefs xmlns='roost:test:prefs'/>")
        )),
        vec![parse(blue)]
    );
    mom.close();
}
