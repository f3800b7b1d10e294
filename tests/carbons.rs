//! Message Carbons over real sockets (XEP-0280): sent and received copies between two
//! resources, what does not get copied (`<private/>`, XEP-0334 `<no-copy/>`, types), and
//! enabling and disabling per resource.

mod common;

use common::*;
use roost::xml::Element;
use std::time::Duration;

const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";
const SID: &str = "urn:xmpp:sid:0";
const QUIET: Duration = Duration::from_millis(300);

fn family() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "kid"] {
        s.add_user(u, "pw");
    }
    s
}

/// Logs in, optionally enables carbons, and sends initial presence with `priority`.
fn online(s: &TestServer, user: &str, res: &str, priority: i8, carbons: bool) -> Client {
    let mut c = Client::login(s, user, "pw", res);
    if carbons {
        enable(&mut c);
    }
    c.send(&format!(
        "<presence><priority>{priority}</priority></presence>"
    ));
    c.wait_for("own presence", |e| {
        e.name == "presence"
            && e.attr("from")
                .is_some_and(|f| f.ends_with(&format!("/{res}")))
    });
    c
}

fn enable(c: &mut Client) {
    let r = c.iq("<iq type='set' id='on'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

fn disable(c: &mut Client) {
    let r = c.iq("<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

/// Reads everything pending (presence of one's other resources and the like).
fn settle(clients: &mut [&mut Client]) {
    for c in clients.iter_mut() {
        c.drain(QUIET);
    }
}

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat'><body>{body}</body></message>")
}

fn body(m: &Element) -> String {
    m.child("body", "jabber:client")
        .map(Element::text)
        .unwrap_or_default()
}

/// The next message, which must be the plain message with this body.
fn direct(c: &mut Client, text: &str) -> Element {
    let m = c.wait_for("a message", |e| e.name == "message");
    assert_eq!(body(&m), text, "{m}");
    assert!(m.child("sent", CARBONS).is_none() && m.child("received", CARBONS).is_none());
    m
}

/// The next message, which must be a carbon copy of `kind` for `to` (a full JID); returns
/// the forwarded message.
fn copy(c: &mut Client, kind: &str, account: &str, to: &str) -> Element {
    let m = c.wait_for("a carbon", |e| e.name == "message");
    assert_eq!(m.attr("from"), Some(account), "from the bare JID: {m}");
    assert_eq!(m.attr("to"), Some(to), "{m}");
    assert_eq!(m.attr("type"), Some("chat"), "{m}");
    m.child(kind, CARBONS)
        .and_then(|k| k.child("forwarded", FORWARD))
        .and_then(|f| f.child("message", "jabber:client"))
        .unwrap_or_else(|| panic!("expected a {kind} carbon: {m}"))
        .clone()
}

fn stanza_id(m: &Element, by: &str) -> Option<String> {
    m.elements()
        .find(|e| e.is("stanza-id", SID) && e.attr("by") == Some(by))
        .and_then(|e| e.attr("id"))
        .map(str::to_owned)
}

#[test]
fn sent_and_received_copies_between_two_resources() {
    let s = family();
    let mut phone = online(&s, "kid", "phone", 1, true);
    let mut laptop = online(&s, "kid", "laptop", 0, true);
    let mut mom = online(&s, "mom", "pc", 0, false);
    settle(&mut [&mut phone, &mut laptop, &mut mom]);

    // To the bare JID: the top-priority phone gets it, the laptop a received copy with
    // the same archive id.
    mom.send(&chat("kid@localhost", "to bare"));
    let got = direct(&mut phone, "to bare");
    let fwd = copy(
        &mut laptop,
        "received",
        "kid@localhost",
        "kid@localhost/laptop",
    );
    assert_eq!(body(&fwd), "to bare");
    assert_eq!(fwd.attr("from"), Some("mom@localhost/pc"));
    let id = stanza_id(&got, "kid@localhost").expect("archived");
    assert_eq!(stanza_id(&fwd, "kid@localhost"), Some(id));

    // To a full JID: the other resource gets a received copy.
    mom.send(&chat("kid@localhost/laptop", "to laptop"));
    direct(&mut laptop, "to laptop");
    let fwd = copy(
        &mut phone,
        "received",
        "kid@localhost",
        "kid@localhost/phone",
    );
    assert_eq!(body(&fwd), "to laptop");
    assert_eq!(fwd.attr("to"), Some("kid@localhost/laptop"));

    // Sent from the phone: the laptop gets a sent copy with kid's archive id; the phone
    // itself gets nothing back.
    phone.send(&chat("mom@localhost", "from phone"));
    let got = direct(&mut mom, "from phone");
    let fwd = copy(&mut laptop, "sent", "kid@localhost", "kid@localhost/laptop");
    assert_eq!(body(&fwd), "from phone");
    assert_eq!(fwd.attr("from"), Some("kid@localhost/phone"));
    assert_eq!(fwd.attr("to"), Some("mom@localhost"));
    let kid_id = stanza_id(&fwd, "kid@localhost").expect("the sender's archive id");
    assert_ne!(stanza_id(&got, "mom@localhost"), Some(kid_id.clone()));
    assert_eq!(
        stanza_id(&got, "kid@localhost"),
        None,
        "mom never sees kid's id"
    );
    let r = phone.iq(&format!(
        "<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
         <field var='ids'><value>{kid_id}</value></field></x></query></iq>"
    ));
    assert_eq!(
        r.attr("type"),
        Some("result"),
        "the id is in kid's archive: {r}"
    );

    // And from the laptop to the phone's side.
    laptop.send(&chat("mom@localhost", "from laptop"));
    direct(&mut mom, "from laptop");
    let fwd = copy(&mut phone, "sent", "kid@localhost", "kid@localhost/phone");
    assert_eq!(body(&fwd), "from laptop");

    for c in [&mut phone, &mut laptop, &mut mom] {
        c.assert_silent(QUIET);
    }
}

#[test]
fn resources_that_got_the_message_get_no_copy() {
    let s = family();
    let mut phone = online(&s, "kid", "phone", 0, true);
    let mut laptop = online(&s, "kid", "laptop", 0, true);
    let mut tablet = online(&s, "kid", "tablet", -1, true);
    let mut mom = online(&s, "mom", "pc", 0, false);
    settle(&mut [&mut phone, &mut laptop, &mut tablet, &mut mom]);
    // Equal priorities: both get the message itself, neither a copy; the tablet (negative
    // priority) gets a copy.
    mom.send(&chat("kid@localhost", "to both"));
    direct(&mut phone, "to both");
    direct(&mut laptop, "to both");
    copy(
        &mut tablet,
        "received",
        "kid@localhost",
        "kid@localhost/tablet",
    );
    // A note to oneself: the resources that got it get no copy either, the tablet one
    // copy only.
    phone.send("<message type='chat'><body>note</body></message>");
    direct(&mut phone, "note");
    direct(&mut laptop, "note");
    let fwd = copy(&mut tablet, "sent", "kid@localhost", "kid@localhost/tablet");
    assert_eq!(body(&fwd), "note");
    for c in [&mut phone, &mut laptop, &mut tablet, &mut mom] {
        c.assert_silent(QUIET);
    }
}

#[test]
fn private_no_copy_and_other_types_are_not_copied() {
    let s = family();
    let mut phone = online(&s, "kid", "phone", 1, true);
    let mut laptop = online(&s, "kid", "laptop", 0, true);
    let mut mom = online(&s, "mom", "pc", 0, false);
    settle(&mut [&mut phone, &mut laptop, &mut mom]);

    phone.send(
        "<message to='mom@localhost' type='chat'><body>secret</body>\
         <private xmlns='urn:xmpp:carbons:2'/></message>",
    );
    let got = direct(&mut mom, "secret");
    assert!(got.child("private", CARBONS).is_none(), "removed: {got}");
    mom.send(
        "<message to='kid@localhost' type='chat'><body>secret back</body>\
         <private xmlns='urn:xmpp:carbons:2'/></message>",
    );
    direct(&mut phone, "secret back");
    phone.send(
        "<message to='mom@localhost' type='chat'><body>hinted</body>\
         <no-copy xmlns='urn:xmpp:hints'/></message>",
    );
    direct(&mut mom, "hinted");
    for (ty, text) in [("headline", "news"), ("normal", "")] {
        // A headline, and a normal message without a body.
        let payload = if text.is_empty() {
            "<received xmlns='urn:xmpp:receipts' id='r1'/>".to_owned()
        } else {
            format!("<body>{text}</body>")
        };
        phone.send(&format!(
            "<message to='mom@localhost' type='{ty}'>{payload}</message>"
        ));
        mom.wait_for(ty, |e| e.name == "message" && e.attr("type") == Some(ty));
    }
    phone.send("<message to='mom@localhost/pc' type='error'><body>oops</body></message>");
    mom.wait_for("error", |e| e.attr("type") == Some("error"));
    laptop.assert_silent(QUIET);
    phone.assert_silent(QUIET);

    // A normal message with a body is copied.
    phone.send("<message to='mom@localhost'><body>normal</body></message>");
    direct(&mut mom, "normal");
    let m = laptop.wait_for("a carbon", |e| e.name == "message");
    assert!(m.child("sent", CARBONS).is_some(), "{m}");
}

#[test]
fn carbons_are_per_resource_and_can_be_disabled() {
    let s = family();
    let mut phone = online(&s, "kid", "phone", 1, true);
    let mut laptop = online(&s, "kid", "laptop", 0, false);
    let mut mom = online(&s, "mom", "pc", 0, false);
    settle(&mut [&mut phone, &mut laptop, &mut mom]);

    // The laptop has not enabled carbons: nothing for it.
    mom.send(&chat("kid@localhost", "one"));
    direct(&mut phone, "one");
    laptop.assert_silent(QUIET);
    // Enabled (twice is fine), it gets copies…
    enable(&mut laptop);
    enable(&mut laptop);
    mom.send(&chat("kid@localhost", "two"));
    direct(&mut phone, "two");
    copy(
        &mut laptop,
        "received",
        "kid@localhost",
        "kid@localhost/laptop",
    );
    // …and a sent copy goes to it whether or not the sender has carbons on.
    disable(&mut phone);
    phone.send(&chat("mom@localhost", "three"));
    direct(&mut mom, "three");
    copy(&mut laptop, "sent", "kid@localhost", "kid@localhost/laptop");
    // Disabled: nothing again.
    disable(&mut laptop);
    mom.send(&chat("kid@localhost", "four"));
    direct(&mut phone, "four");
    phone.send(&chat("mom@localhost", "five"));
    direct(&mut mom, "five");
    laptop.assert_silent(QUIET);
    phone.assert_silent(QUIET);

    // Only for oneself.
    let r = phone
        .iq("<iq type='set' id='x' to='mom@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"), "{r}");
    // The server announces the feature.
    let r = phone.iq("<iq type='get' id='d' to='localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert!(
        r.child("query", "http://jabber.org/protocol/disco#info")
            .unwrap()
            .elements()
            .any(|f| f.attr("var") == Some(CARBONS)),
        "{r}"
    );
}

#[test]
fn a_message_to_an_offline_contact_is_still_copied_to_the_other_resources() {
    let s = family();
    let mut phone = online(&s, "kid", "phone", 0, true);
    let mut laptop = online(&s, "kid", "laptop", -1, true);
    settle(&mut [&mut phone, &mut laptop]);
    phone.send(&chat("mom@localhost", "later"));
    let fwd = copy(&mut laptop, "sent", "kid@localhost", "kid@localhost/laptop");
    assert_eq!(body(&fwd), "later");
    // A negative-priority resource gets no bare-JID messages, but a received copy.
    let mut mom = Client::login(&s, "mom", "pw", "pc");
    mom.send("<presence/>");
    mom.wait_for("the offline message", |e| body(e) == "later");
    mom.drain(QUIET);
    mom.send(&chat("kid@localhost", "hi"));
    direct(&mut phone, "hi");
    let fwd = copy(
        &mut laptop,
        "received",
        "kid@localhost",
        "kid@localhost/laptop",
    );
    assert_eq!(body(&fwd), "hi");
    phone.assert_silent(QUIET);
}

#[test]
fn copies_a_session_never_acknowledged_are_dropped_when_it_expires() {
    // XEP-0198: what an expired session never delivered is handed on, but carbons and
    // archive results are copies of what went elsewhere, so they are not.
    let s = TestServer::start_with(|c| c.resume_timeout = Duration::from_millis(500));
    for u in ["mom", "kid"] {
        s.add_user(u, "pw");
    }
    let mut phone = online(&s, "kid", "phone", 0, false);
    let mut laptop = Client::login(&s, "kid", "pw", "laptop");
    laptop.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    laptop.wait_for("enabled", |e| e.is("enabled", "urn:xmpp:sm:3"));
    enable(&mut laptop);
    laptop.send("<presence><priority>-1</priority></presence>");
    let mut mom = online(&s, "mom", "pc", 0, false);
    settle(&mut [&mut phone, &mut laptop, &mut mom]);

    mom.send(&chat("kid@localhost/phone", "to phone"));
    direct(&mut phone, "to phone");
    copy(
        &mut laptop,
        "received",
        "kid@localhost",
        "kid@localhost/laptop",
    );
    mom.send(&chat("kid@localhost/laptop", "to laptop"));
    let got = direct(&mut laptop, "to laptop");
    let id = stanza_id(&got, "kid@localhost").expect("archived");
    let r = laptop.iq("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    drop(laptop); // nothing acknowledged
    std::thread::sleep(Duration::from_millis(1300));

    // Only the message itself comes back, to the other resource, with its archive id.
    let again = direct(&mut phone, "to laptop");
    assert_eq!(stanza_id(&again, "kid@localhost"), Some(id));
    phone.assert_silent(QUIET);
    // And it is in the archive once.
    let r = phone.iq("<iq type='set' id='n'><query xmlns='urn:xmpp:mam:2'>\
         <set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query></iq>");
    let count = r
        .child("fin", "urn:xmpp:mam:2")
        .and_then(|f| f.child("set", "http://jabber.org/protocol/rsm"))
        .and_then(|s| s.child("count", "http://jabber.org/protocol/rsm"))
        .map(Element::text);
    assert_eq!(count.as_deref(), Some("2"), "{r}");
}
