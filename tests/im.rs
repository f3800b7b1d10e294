//! Instant messaging over real sockets (RFC 6121): rosters, subscriptions, presence,
//! message routing by priority, offline storage, blocking (XEP-0191).

mod common;

use common::*;
use roost::xml::Element;
use std::time::Duration;

const ROSTER: &str = "jabber:iq:roster";
const QUIET: Duration = Duration::from_millis(300);

fn family() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid", "gran"] {
        s.add_user(u, "pw");
    }
    s
}

fn login(s: &TestServer, user: &str, res: &str) -> Client {
    Client::login(s, user, "pw", res)
}

/// Logs in, fetches the roster and sends initial presence with `priority`.
fn online(s: &TestServer, user: &str, res: &str, priority: i8) -> Client {
    let mut c = login(s, user, res);
    c.roster_get();
    // Our own presence comes back to us (RFC 6121 §4.2.2).
    c.announce(
        res,
        &format!("<presence><priority>{priority}</priority></presence>"),
    );
    c
}

fn roster_items(r: &Element) -> Vec<(String, String, Option<String>)> {
    r.child("query", ROSTER)
        .map(|q| {
            q.elements()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or("").to_owned(),
                        i.attr("subscription").unwrap_or("").to_owned(),
                        i.attr("ask").map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_push(e: &Element) -> bool {
    e.name == "iq" && e.attr("type") == Some("set") && e.child("query", ROSTER).is_some()
}

fn push_item(e: &Element) -> (String, String, Option<String>) {
    roster_items(e).remove(0)
}

fn presence_from<'a>(from: &'a str, ty: Option<&'a str>) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name == "presence" && e.attr("from") == Some(from) && e.attr("type") == ty
}

#[test]
fn roster_add_update_remove_with_pushes_to_two_resources() {
    let s = family();
    let mut a = login(&s, "mom", "phone");
    let mut b = login(&s, "mom", "laptop");
    let r = a.roster_get();
    assert!(roster_items(&r).is_empty());
    let ver0 = r
        .child("query", ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();
    b.roster_get();

    let r = a.iq("<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='dad@localhost' name='Dad'><group>Family</group></item></query></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    for c in [&mut a, &mut b] {
        let p = c.wait_for("push", is_push);
        let item = p
            .child("query", ROSTER)
            .unwrap()
            .first_element()
            .unwrap()
            .clone();
        assert_eq!(item.attr("jid"), Some("dad@localhost"));
        assert_eq!(item.attr("name"), Some("Dad"));
        assert_eq!(item.attr("subscription"), Some("none"));
        assert_eq!(item.child("group", ROSTER).unwrap().text(), "Family");
        // RFC 6121 §2.1.6: the client acknowledges the push.
        c.send(&format!(
            "<iq type='result' id='{}'/>",
            p.attr("id").unwrap()
        ));
    }

    // Versioning: an unchanged roster is an empty result; an old version gets the roster.
    let r = a.iq("<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='0'/></iq>");
    let ver1 = r
        .child("query", ROSTER)
        .unwrap()
        .attr("ver")
        .unwrap()
        .to_owned();
    assert_ne!(ver0, ver1);
    assert_eq!(roster_items(&r).len(), 1);
    let r = a.iq(&format!(
        "<iq type='get' id='v2'><query xmlns='jabber:iq:roster' ver='{ver1}'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"));
    assert!(
        r.first_element().is_none(),
        "unchanged roster: empty result, got {r}"
    );

    // Update the name and groups.
    a.iq("<iq type='set' id='upd'><query xmlns='jabber:iq:roster'><item jid='dad@localhost' name='Papa'><group>Home</group></item></query></iq>");
    let p = b.wait_for("push", is_push);
    let item = p
        .child("query", ROSTER)
        .unwrap()
        .first_element()
        .unwrap()
        .clone();
    assert_eq!(item.attr("name"), Some("Papa"));
    assert_eq!(item.child("group", ROSTER).unwrap().text(), "Home");

    // Remove.
    a.iq("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='dad@localhost' subscription='remove'/></query></iq>");
    for c in [&mut a, &mut b] {
        let p = c.wait_for("push", |e| is_push(e) && push_item(e).1 == "remove");
        assert_eq!(push_item(&p).0, "dad@localhost");
    }
    assert!(roster_items(&a.roster_get()).is_empty());
    let r = a.iq("<iq type='set' id='rm2'><query xmlns='jabber:iq:roster'><item jid='dad@localhost' subscription='remove'/></query></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn roster_set_errors_and_limit() {
    let s = TestServer::start_with(|c| c.roster_limit = 2);
    s.add_user("mom", "pw");
    let mut a = login(&s, "mom", "phone");
    let cases = [
        (
            "<item jid='a@localhost'/><item jid='b@localhost'/>",
            "bad-request",
        ),
        ("<item name='x'/>", "bad-request"),
        ("<item jid='a@localhost/res'/>", "bad-request"),
        ("<item jid='a@b@c'/>", "jid-malformed"),
        (
            "<item jid='a@localhost'><group>g</group><group>g</group></item>",
            "bad-request",
        ),
        (
            "<item jid='a@localhost'><group></group></item>",
            "not-acceptable",
        ),
    ];
    for (i, (item, want)) in cases.iter().enumerate() {
        let r = a.iq(&format!(
            "<iq type='set' id='e{i}'><query xmlns='jabber:iq:roster'>{item}</query></iq>"
        ));
        assert_eq!(error_condition(&r).as_deref(), Some(*want), "{item}");
    }
    for (i, j) in ["a@localhost", "b@localhost"].iter().enumerate() {
        let r = a.iq(&format!("<iq type='set' id='ok{i}'><query xmlns='jabber:iq:roster'><item jid='{j}'/></query></iq>"));
        assert_eq!(r.attr("type"), Some("result"));
    }
    let r = a.iq("<iq type='set' id='full'><query xmlns='jabber:iq:roster'><item jid='c@localhost'/></query></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    // Updating an existing item is still fine at the limit.
    let r = a.iq("<iq type='set' id='upd'><query xmlns='jabber:iq:roster'><item jid='a@localhost' name='A'/></query></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    // Someone else's roster is not ours to read.
    let r =
        a.iq("<iq type='get' id='other' to='dad@localhost'><query xmlns='jabber:iq:roster'/></iq>");
    assert!(error_condition(&r).is_some(), "{r}");
}

/// mom and dad go through the whole handshake and end in `both`, each seeing the other's
/// presence.
#[test]
fn full_subscription_handshake_ends_in_both() {
    let s = family();
    let mut mom = online(&s, "mom", "phone", 0);
    let mut dad = online(&s, "dad", "pc", 0);

    mom.send("<presence to='dad@localhost' type='subscribe'/>");
    let p = mom.wait_for("push", is_push);
    assert_eq!(
        push_item(&p),
        (
            "dad@localhost".into(),
            "none".into(),
            Some("subscribe".into())
        )
    );
    let req = dad.wait_for(
        "subscribe",
        presence_from("mom@localhost", Some("subscribe")),
    );
    assert_eq!(
        req.attr("to"),
        Some("dad@localhost"),
        "RFC 6121 §3.1: the bare JID"
    );

    dad.send("<presence to='mom@localhost' type='subscribed'/>");
    let p = dad.wait_for("push", is_push);
    assert_eq!(push_item(&p), ("mom@localhost".into(), "from".into(), None));
    // RFC 6121 §3.1.6: the subscribed presence, then the roster push.
    mom.wait_for(
        "subscribed",
        presence_from("dad@localhost", Some("subscribed")),
    );
    let p = mom.wait_for("push", is_push);
    assert_eq!(push_item(&p), ("dad@localhost".into(), "to".into(), None));
    // Mom now sees dad's presence.
    mom.wait_for("dad's presence", presence_from("dad@localhost/pc", None));

    dad.send("<presence to='mom@localhost' type='subscribe'/>");
    mom.wait_for(
        "subscribe",
        presence_from("dad@localhost", Some("subscribe")),
    );
    mom.send("<presence to='dad@localhost' type='subscribed'/>");
    dad.wait_for("mom's presence", presence_from("mom@localhost/phone", None));

    let m = roster_items(&mom.roster_get());
    let d = roster_items(&dad.roster_get());
    assert_eq!(m, vec![("dad@localhost".into(), "both".into(), None)]);
    assert_eq!(d, vec![("mom@localhost".into(), "both".into(), None)]);

    // Presence updates now flow both ways, and unavailable too.
    mom.send("<presence><show>away</show></presence>");
    let p = dad.wait_for("update", presence_from("mom@localhost/phone", None));
    assert_eq!(p.child("show", "jabber:client").unwrap().text(), "away");
    mom.send("<presence type='unavailable'/>");
    dad.wait_for(
        "unavailable",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );

    // A repeated subscribe from a subscribed contact does not bother mom again
    // (Appendix A.3.1: answered by the server, no state change).
    dad.send("<presence to='mom@localhost' type='subscribe'/>");
    dad.drain(QUIET);
    let mut mom2 = online(&s, "mom", "tablet", 0);
    assert!(!mom2
        .drain(QUIET)
        .iter()
        .any(|e| e.attr("type") == Some("subscribe")));
    assert_eq!(
        roster_items(&mom2.roster_get()),
        vec![("dad@localhost".into(), "both".into(), None)]
    );
}

#[test]
fn a_request_made_while_offline_is_delivered_at_login_and_probes_answer() {
    let s = family();
    let mut kid = online(&s, "kid", "tablet", 0);
    kid.send("<presence to='gran@localhost' type='subscribe'><status>it's me!</status></presence>");
    kid.wait_for("push", is_push);
    // Gran logs in later: the request is waiting for her.
    let mut gran = login(&s, "gran", "pc");
    gran.send("<presence/>");
    let req = gran.wait_for(
        "pending subscribe",
        presence_from("kid@localhost", Some("subscribe")),
    );
    assert_eq!(
        req.child("status", "jabber:client").unwrap().text(),
        "it's me!"
    );
    gran.send("<presence to='kid@localhost' type='subscribed'/>");
    kid.wait_for(
        "subscribed",
        presence_from("gran@localhost", Some("subscribed")),
    );
    kid.wait_for("gran's presence", presence_from("gran@localhost/pc", None));
    // Gran goes away; kid's next login gets unavailable with a last-seen stamp from the
    // probe, then gran's presence once she is back.
    gran.close();
    kid.wait_for(
        "gran leaves",
        presence_from("gran@localhost/pc", Some("unavailable")),
    );
    kid.close();
    let mut kid = login(&s, "kid", "tablet");
    kid.send("<presence/>");
    let p = kid.wait_for(
        "probe answer",
        presence_from("gran@localhost", Some("unavailable")),
    );
    assert!(
        p.child("delay", "urn:xmpp:delay")
            .and_then(|d| d.attr("stamp"))
            .is_some(),
        "{p}"
    );
    let _gran = online(&s, "gran", "pc", 0);
    kid.wait_for("gran is back", presence_from("gran@localhost/pc", None));
}

/// Makes `a` and `b` subscribed to each other's presence.
fn befriend(a: &mut Client, a_jid: &str, b: &mut Client, b_jid: &str) {
    a.send(&format!("<presence to='{b_jid}' type='subscribe'/>"));
    b.wait_for("subscribe", presence_from(a_jid, Some("subscribe")));
    b.send(&format!("<presence to='{a_jid}' type='subscribed'/>"));
    a.wait_for("subscribed", presence_from(b_jid, Some("subscribed")));
    b.send(&format!("<presence to='{a_jid}' type='subscribe'/>"));
    a.wait_for("subscribe", presence_from(b_jid, Some("subscribe")));
    a.send(&format!("<presence to='{b_jid}' type='subscribed'/>"));
    b.wait_for("subscribed", presence_from(a_jid, Some("subscribed")));
    a.drain(QUIET);
    b.drain(QUIET);
}

#[test]
fn probes_on_login_see_available_contacts() {
    let s = family();
    let mut mom = online(&s, "mom", "phone", 0);
    let mut dad = online(&s, "dad", "pc", 0);
    befriend(&mut mom, "mom@localhost", &mut dad, "dad@localhost");
    mom.close();
    dad.wait_for(
        "mom leaves",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );
    let mut mom = login(&s, "mom", "tablet");
    mom.send("<presence/>");
    let p = mom.wait_for("dad by probe", presence_from("dad@localhost/pc", None));
    assert_eq!(p.attr("to"), Some("mom@localhost/tablet"));
    dad.wait_for("mom is back", presence_from("mom@localhost/tablet", None));
}

fn chat(to: &str, id: &str) -> String {
    format!("<message type='chat' to='{to}' id='{id}'><body>{id}</body></message>")
}

fn got_message(c: &mut Client, id: &str) -> bool {
    c.drain(QUIET)
        .iter()
        .any(|e| e.name == "message" && e.attr("id") == Some(id))
}

#[test]
fn bare_jid_messages_follow_priority() {
    let s = family();
    let mut dad = online(&s, "dad", "pc", 0);
    let mut high = online(&s, "mom", "phone", 5);
    let mut low = online(&s, "mom", "laptop", 1);
    high.drain(QUIET);
    dad.send(&chat("mom@localhost", "m1"));
    assert!(got_message(&mut high, "m1"));
    assert!(!got_message(&mut low, "m1"));

    // Equal priorities: both get chat messages. The change takes effect at once.
    low.send("<presence><priority>5</priority></presence>");
    high.drain(QUIET);
    low.drain(QUIET);
    dad.send(&chat("mom@localhost", "m2"));
    assert!(got_message(&mut high, "m2"));
    assert!(got_message(&mut low, "m2"));

    // Headlines go to every non-negative resource.
    high.send("<presence><priority>9</priority></presence>");
    high.drain(QUIET);
    low.drain(QUIET);
    dad.send("<message type='headline' to='mom@localhost' id='h1'><body>news</body></message>");
    assert!(got_message(&mut high, "h1"));
    assert!(got_message(&mut low, "h1"));

    // A full JID reaches exactly that resource, whatever its priority.
    dad.send(&chat("mom@localhost/laptop", "m3"));
    assert!(got_message(&mut low, "m3"));
    assert!(!got_message(&mut high, "m3"));
}

#[test]
fn negative_priority_gets_no_bare_messages_which_go_offline() {
    let s = family();
    let mut dad = online(&s, "dad", "pc", 0);
    let mut shy = online(&s, "mom", "watch", -1);
    dad.send(&chat("mom@localhost", "off1"));
    assert!(!got_message(&mut shy, "off1"));
    // But a full JID still reaches it.
    dad.send(&chat("mom@localhost/watch", "direct"));
    assert!(got_message(&mut shy, "direct"));
    // The bare message waits offline for a non-negative resource.
    let mut phone = login(&s, "mom", "phone");
    phone.send("<presence/>");
    let m = phone.wait_for("offline message", |e| {
        e.name == "message" && e.attr("id") == Some("off1")
    });
    assert!(m.child("delay", "urn:xmpp:delay").is_some());
}

#[test]
fn offline_messages_arrive_in_order_with_delay_stamps_once() {
    let s = family();
    let mut dad = online(&s, "dad", "pc", 0);
    for i in 0..5 {
        dad.send(&chat("kid@localhost", &format!("o{i}")));
    }
    // An unconnected full JID falls back to the bare JID for chat (§8.5.3.2.1).
    dad.send(&chat("kid@localhost/gone", "o5"));
    dad.assert_silent(QUIET);
    let mut kid = login(&s, "kid", "tablet");
    kid.send("<presence/>");
    let msgs: Vec<Element> = kid
        .drain(Duration::from_millis(500))
        .into_iter()
        .filter(|e| e.name == "message")
        .collect();
    let ids: Vec<_> = msgs
        .iter()
        .map(|m| m.attr("id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["o0", "o1", "o2", "o3", "o4", "o5"]);
    for m in &msgs {
        let d = m.child("delay", "urn:xmpp:delay").expect("delay");
        assert!(roost::util::datetime::parse(d.attr("stamp").unwrap()).is_some());
        assert_eq!(m.attr("from"), Some("dad@localhost/pc"));
    }
    kid.close();
    let mut kid = login(&s, "kid", "tablet");
    kid.send("<presence/>");
    let again: Vec<_> = kid
        .drain(Duration::from_millis(500))
        .into_iter()
        .filter(|e| e.name == "message")
        .collect();
    assert!(again.is_empty(), "delivered messages are gone: {again:?}");
}

#[test]
fn offline_limit_bounces_with_service_unavailable() {
    let s = TestServer::start_with(|c| c.offline_limit = 2);
    s.add_user("dad", "pw");
    s.add_user("kid", "pw");
    let mut dad = online(&s, "dad", "pc", 0);
    dad.send(&chat("kid@localhost", "a"));
    dad.send(&chat("kid@localhost", "b"));
    dad.assert_silent(QUIET);
    dad.send(&chat("kid@localhost", "c"));
    let e = dad.wait_for("bounce", |e| e.attr("id") == Some("c"));
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
}

#[test]
fn routing_errors() {
    let s = family();
    let mut mom = online(&s, "mom", "phone", 0);
    let cases = [
        (
            "<message to='nobody@localhost' id='x1'><body>hi</body></message>",
            "service-unavailable",
        ),
        (
            "<message to='someone@elsewhere.example' id='x2'><body>hi</body></message>",
            "remote-server-not-found",
        ),
        (
            "<message type='groupchat' to='dad@localhost' id='x3'><body>hi</body></message>",
            "service-unavailable",
        ),
        (
            "<iq type='get' to='dad@localhost/nowhere' id='x4'><ping xmlns='urn:xmpp:ping'/></iq>",
            "service-unavailable",
        ),
        (
            "<iq type='get' to='nobody@localhost' id='x5'><ping xmlns='urn:xmpp:ping'/></iq>",
            "service-unavailable",
        ),
        (
            "<iq type='get' to='localhost' id='x6'><query xmlns='urn:example:nothing'/></iq>",
            "service-unavailable",
        ),
    ];
    for (stanza, want) in cases {
        mom.send(stanza);
        let id = stanza
            .split("id='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        let e = mom.wait_for("error", |e| e.attr("id") == Some(id));
        assert_eq!(e.attr("type"), Some("error"));
        assert_eq!(error_condition(&e).as_deref(), Some(want), "{stanza}");
    }
    // Presence to an unknown account vanishes; errors are never answered.
    mom.send("<presence to='nobody@localhost'/>");
    mom.send("<message type='error' to='nobody@localhost' id='e1'/>");
    mom.send("<iq type='error' to='localhost' id='e2'/>");
    mom.assert_silent(QUIET);
    // An IQ to another account's bare JID is answered by the server for it.
    let r = mom.iq("<iq type='get' to='dad@localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("from"), Some("dad@localhost"));
    // A message to oneself without `to` reaches one's own resources.
    mom.send("<message type='chat' id='self'><body>note to self</body></message>");
    assert!(got_message(&mut mom, "self"));
}

#[test]
fn directed_presence_is_cleaned_up_and_broken_connections_go_unavailable() {
    let s = family();
    let mut kid = online(&s, "kid", "tablet", 0);
    let mut mom = online(&s, "mom", "phone", 0);
    let mut dad = online(&s, "dad", "pc", 0);
    befriend(&mut mom, "mom@localhost", &mut dad, "dad@localhost");
    // Mom sends directed presence to kid (no subscription), then her connection breaks.
    mom.send("<presence to='kid@localhost'/>");
    kid.wait_for("directed", presence_from("mom@localhost/phone", None));
    drop(mom); // TCP closed without </stream:stream>
    kid.wait_for(
        "directed unavailable",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );
    dad.wait_for(
        "subscriber unavailable",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );
}

#[test]
fn blocking_command() {
    let s = family();
    let mut mom = online(&s, "mom", "phone", 0);
    let mut mom2 = online(&s, "mom", "laptop", 0);
    let mut kid = online(&s, "kid", "tablet", 0);
    let r = mom.iq("<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    assert!(r
        .child("blocklist", "urn:xmpp:blocking")
        .unwrap()
        .elements()
        .next()
        .is_none());
    mom2.iq("<iq type='get' id='bl2'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    let r = mom.iq("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='kid@localhost'/></block></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    let push = mom2.wait_for("block push", |e| {
        e.child("block", "urn:xmpp:blocking").is_some()
    });
    assert_eq!(push.attr("type"), Some("set"));
    // The kid's message bounces; mom's message to the kid is refused with <blocked/>.
    kid.send(&chat("mom@localhost", "k1"));
    let e = kid.wait_for("bounce", |e| e.attr("id") == Some("k1"));
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
    mom.send(&chat("kid@localhost", "m1"));
    let e = mom.wait_for("refused", |e| e.attr("id") == Some("m1"));
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    assert!(e
        .child("error", "jabber:client")
        .unwrap()
        .child("blocked", "urn:xmpp:blocking:errors")
        .is_some());
    assert!(!got_message(&mut mom2, "k1"));
    let r = mom.iq("<iq type='get' id='bl3'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    let items: Vec<_> = r
        .child("blocklist", "urn:xmpp:blocking")
        .unwrap()
        .elements()
        .map(|i| i.attr("jid").unwrap().to_owned())
        .collect();
    assert_eq!(items, vec!["kid@localhost"]);
    // Unblock everything: messages flow again.
    mom.iq("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>");
    mom2.wait_for("unblock push", |e| {
        e.child("unblock", "urn:xmpp:blocking").is_some()
    });
    kid.send(&chat("mom@localhost", "k2"));
    assert!(got_message(&mut mom, "k2"));
    // Bad requests.
    let r = mom.iq("<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'/></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    let r = mom.iq(
        "<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='a@b@c'/></block></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("jid-malformed"));
}

#[test]
fn deleting_an_account_unsubscribes_its_contacts() {
    let s = family();
    let mut mom = online(&s, "mom", "phone", 0);
    let mut dad = online(&s, "dad", "pc", 0);
    befriend(&mut mom, "mom@localhost", &mut dad, "dad@localhost");
    mom.close();
    let mut conn = roost::storage::open_connection(s.dir.path()).unwrap();
    roost::storage::accounts::delete(&mut conn, "localhost", "mom").unwrap();
    let items = roster_items(&dad.roster_get());
    assert_eq!(items, vec![("mom@localhost".into(), "none".into(), None)]);
}

#[test]
fn silent_clients_are_pinged_and_dead_ones_dropped() {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(400);
        c.ping_timeout = Duration::from_millis(400);
    });
    s.add_user("mom", "pw");
    let mut c = login(&s, "mom", "phone");
    let ping = c.wait_for("server ping", |e| {
        e.child("ping", "urn:xmpp:ping").is_some()
    });
    assert_eq!(ping.attr("type"), Some("get"));
    assert_eq!(ping.attr("from"), Some("localhost"));
    c.send(&format!(
        "<iq type='result' id='{}' to='localhost'/>",
        ping.attr("id").unwrap()
    ));
    // Answered: the next ping comes after another silence; this time we stay silent.
    c.wait_for("second ping", |e| {
        e.child("ping", "urn:xmpp:ping").is_some()
    });
    assert_eq!(c.expect_stream_error(), "connection-timeout");
}
