//! RFC 6121 / RFC 6120 conformance of presence and subscriptions over real sockets (issue
//! 16): who gets an unavailable presence, the `to` of subscription stanzas, the order of
//! approvals and roster pushes, `xml:lang` stamping, subscription pre-approval, and the order
//! of what follows initial presence.

mod common;

use common::*;
use roost::xml::Element;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

const ROSTER: &str = "jabber:iq:roster";

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

/// Logs in, fetches the roster (an interested resource) and sends initial presence (an
/// available one); returns once its own presence came back.
fn online(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = login(s, user, res);
    c.roster_get();
    c.announce(res, "<presence/>");
    c
}

fn is_push(e: &Element) -> bool {
    e.name == "iq" && e.attr("type") == Some("set") && e.child("query", ROSTER).is_some()
}

/// The single `<item/>` of a roster push or the items of a roster result.
fn items(e: &Element) -> Vec<Element> {
    e.child("query", ROSTER)
        .map(|q| q.elements().cloned().collect())
        .unwrap_or_default()
}

fn presence_from<'a>(from: &'a str, ty: Option<&'a str>) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name == "presence" && e.attr("from") == Some(from) && e.attr("type") == ty
}

/// Index of the first element satisfying `want`, with a message naming `what` otherwise.
fn position(got: &[Element], what: &str, want: impl Fn(&Element) -> bool) -> usize {
    got.iter().position(want).unwrap_or_else(|| {
        let all: Vec<String> = got.iter().map(|e| e.to_string()).collect();
        panic!("no {what} among {all:#?}")
    })
}

/// RFC 6121 §4.5.2: the unavailable presence goes to the user's other available resources
/// and back to the resource that sent it, whose stream stays open.
#[test]
fn unavailable_presence_comes_back_to_its_sender() {
    let s = family();
    let mut phone = online(&s, "mom", "phone");
    let mut tablet = online(&s, "mom", "tablet");
    phone.drain(QUIET);
    phone.send("<presence type='unavailable'><status>bye</status></presence>");
    let own = phone.wait_for(
        "own unavailable",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );
    assert_eq!(own.attr("to"), Some("mom@localhost/phone"), "{own}");
    assert_eq!(own.child("status", "jabber:client").unwrap().text(), "bye");
    tablet.wait_for(
        "phone's unavailable",
        presence_from("mom@localhost/phone", Some("unavailable")),
    );
    // The stream is still open.
    let pong = phone.iq("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(pong.attr("type"), Some("result"), "{pong}");
}

/// RFC 6121 §3.1 / §8.5.2.1.2: subscription stanzas reach the user's resources with the
/// bare JID in `to`, on every path: live requests, approvals, cancellations, and requests
/// kept for a later login. The presence that follows
/// an approval is ordinary presence, to full JIDs.
#[test]
fn subscription_stanzas_keep_the_bare_to() {
    let s = family();
    let mut mom = online(&s, "mom", "phone");
    let mut dad = online(&s, "dad", "pc");

    mom.send("<presence to='dad@localhost' type='subscribe'/>");
    let req = dad.wait_for(
        "subscribe",
        presence_from("mom@localhost", Some("subscribe")),
    );
    assert_eq!(req.attr("to"), Some("dad@localhost"), "{req}");

    dad.send("<presence to='mom@localhost' type='subscribed'/>");
    let ok = mom.wait_for(
        "subscribed",
        presence_from("dad@localhost", Some("subscribed")),
    );
    assert_eq!(ok.attr("to"), Some("mom@localhost"), "{ok}");
    let current = mom.wait_for("dad's presence", presence_from("dad@localhost/pc", None));
    assert_eq!(current.attr("to"), Some("mom@localhost/phone"), "{current}");

    mom.send("<presence to='dad@localhost' type='unsubscribe'/>");
    let unsub = dad.wait_for(
        "unsubscribe",
        presence_from("mom@localhost", Some("unsubscribe")),
    );
    assert_eq!(unsub.attr("to"), Some("dad@localhost"), "{unsub}");

    // kid asks again, and dad refuses.
    let mut kid = online(&s, "kid", "tablet");
    kid.send("<presence to='dad@localhost' type='subscribe'/>");
    dad.wait_for(
        "kid's request",
        presence_from("kid@localhost", Some("subscribe")),
    );
    dad.send("<presence to='kid@localhost' type='unsubscribed'/>");
    let no = kid.wait_for(
        "unsubscribed",
        presence_from("dad@localhost", Some("unsubscribed")),
    );
    assert_eq!(no.attr("to"), Some("kid@localhost"), "{no}");

    // A request made while gran is offline is delivered at login, still to her bare JID.
    kid.send("<presence to='gran@localhost' type='subscribe'/>");
    kid.wait_for("push", is_push);
    let mut gran = login(&s, "gran", "pc");
    gran.send("<presence/>");
    let pending = gran.wait_for(
        "pending subscribe",
        presence_from("kid@localhost", Some("subscribe")),
    );
    assert_eq!(pending.attr("to"), Some("gran@localhost"), "{pending}");
}

/// RFC 6121 §3.1.6: the approval reaches the user's resources before the roster push that
/// records it.
#[test]
fn approval_comes_before_its_roster_push() {
    let s = family();
    let mut mom = online(&s, "mom", "phone");
    let mut dad = online(&s, "dad", "pc");
    mom.send("<presence to='dad@localhost' type='subscribe'/>");
    dad.wait_for(
        "subscribe",
        presence_from("mom@localhost", Some("subscribe")),
    );
    mom.drain(QUIET);
    dad.send("<presence to='mom@localhost' type='subscribed'/>");
    let got = mom.drain(QUIET);
    let approval = position(
        &got,
        "subscribed",
        presence_from("dad@localhost", Some("subscribed")),
    );
    let push = position(&got, "roster push", is_push);
    assert!(approval < push, "subscribed at {approval}, push at {push}");
    let item = &items(&got[push])[0];
    assert_eq!(item.attr("subscription"), Some("to"), "{item}");
}

/// Logs in with `lang` as the stream's xml:lang after SASL (the stream the session lives
/// on), then fetches the roster and sends initial presence.
fn online_in(s: &TestServer, user: &str, res: &str, lang: &str) -> Client {
    let mut c = Client::connect(s);
    c.open();
    c.starttls();
    c.scram(roost::sasl::Mechanism::ScramSha256, user, "pw", None)
        .expect("login");
    let to = s.domain.clone();
    c.open_raw(&format!(
        "<?xml version='1.0'?><stream:stream to='{to}' version='1.0' xml:lang='{lang}' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    ));
    c.bind_here(Some(res));
    c.roster_get();
    c.send("<presence/>");
    c.wait_for(
        "own presence",
        presence_from(&format!("{user}@localhost/{res}"), None),
    );
    c
}

fn body_is<'a>(text: &'a str) -> impl Fn(&Element) -> bool + 'a {
    move |e| {
        e.name == "message"
            && e.child("body", "jabber:client")
                .is_some_and(|b| b.text() == text)
    }
}

/// RFC 6120 §8.1.5: a stanza without xml:lang gets the stream's; one with its own keeps it;
/// the archive keeps what was delivered.
#[test]
fn stanzas_get_the_stream_language_and_the_archive_keeps_it() {
    let s = family();
    let mut dad = online(&s, "dad", "pc");
    let mut mom = online_in(&s, "mom", "phone", "de");
    mom.send("<message to='dad@localhost' type='chat' id='m1'><body>hallo</body></message>");
    let m = dad.wait_for("hallo", body_is("hallo"));
    assert_eq!(m.attr("xml:lang"), Some("de"), "{m}");
    mom.send(
        "<message to='dad@localhost' type='chat' id='m2' xml:lang='fr'><body>salut</body></message>",
    );
    let m = dad.wait_for("salut", body_is("salut"));
    assert_eq!(m.attr("xml:lang"), Some("fr"), "{m}");

    // The archive (XEP-0313) returns the message as delivered.
    dad.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='x'/></iq>");
    let mut langs = Vec::new();
    for _ in 0..10 {
        let e = dad.element();
        if e.name == "iq" {
            assert_eq!(e.attr("type"), Some("result"), "{e}");
            break;
        }
        if let Some(fwd) = e
            .child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.child("message", "jabber:client"))
        {
            let text = fwd.child("body", "jabber:client").unwrap().text();
            langs.push((text, fwd.attr("xml:lang").map(str::to_owned)));
        }
    }
    assert_eq!(
        langs,
        vec![
            ("hallo".to_owned(), Some("de".to_owned())),
            ("salut".to_owned(), Some("fr".to_owned()))
        ]
    );
}

const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";

/// RFC 6121 §3.4: the feature is advertised; a `subscribed` with no request pending is a
/// pre-approval, stored (`approved='true'`) and not routed; the contact's later request is
/// approved by the server as if the user had approved it.
#[test]
fn subscription_pre_approval() {
    let s = family();
    let (mut mom, features) = Client::authenticated(&s, "mom", "pw");
    assert!(
        features.child("sub", PRE_APPROVAL).is_some(),
        "pre-approval advertised: {features}"
    );
    mom.bind_here(Some("phone"));
    mom.roster_get();
    mom.send("<presence/>");
    mom.wait_for("own presence", presence_from("mom@localhost/phone", None));
    let mut dad = online(&s, "dad", "pc");

    mom.send("<presence to='dad@localhost' type='subscribed'/>");
    let push = mom.wait_for("push", is_push);
    let item = &items(&push)[0];
    assert_eq!(item.attr("jid"), Some("dad@localhost"), "{item}");
    assert_eq!(item.attr("subscription"), Some("none"), "{item}");
    assert_eq!(item.attr("approved"), Some("true"), "{item}");
    // Not routed: dad hears nothing of it.
    assert!(
        !dad.drain(QUIET).iter().any(|e| e.name == "presence"),
        "a pre-approval is not routed"
    );
    let r = mom.roster_get();
    let item = &items(&r)[0];
    assert_eq!(item.attr("approved"), Some("true"), "{r}");

    // dad asks: the server approves on mom's behalf, mom sees only the push.
    dad.send("<presence to='mom@localhost' type='subscribe'/>");
    let got = dad.drain(QUIET);
    let ok = position(
        &got,
        "subscribed",
        presence_from("mom@localhost", Some("subscribed")),
    );
    assert_eq!(got[ok].attr("to"), Some("dad@localhost"), "{}", got[ok]);
    // dad's own push for his request (ask='subscribe'), the approval, then the push of
    // the subscription it made.
    let dad_push = position(&got, "roster push of 'to'", |e| {
        is_push(e) && items(e)[0].attr("subscription") == Some("to")
    });
    assert!(ok < dad_push, "subscribed before dad's push");
    position(
        &got,
        "mom's presence",
        presence_from("mom@localhost/phone", None),
    );

    let got = mom.drain(QUIET);
    assert!(
        !got.iter().any(|e| e.attr("type") == Some("subscribe")),
        "the request is not delivered: {got:?}"
    );
    let push = position(&got, "roster push", is_push);
    let item = &items(&got[push])[0];
    assert_eq!(item.attr("subscription"), Some("from"), "{item}");
    assert_eq!(item.attr("approved"), None, "{item}");
    let r = mom.roster_get();
    let item = &items(&r)[0];
    assert_eq!(item.attr("subscription"), Some("from"), "{r}");
    assert_eq!(item.attr("approved"), None, "{r}");

    // An `unsubscribed` cancels a pre-approval: kid's later request waits for mom.
    let mut kid = online(&s, "kid", "tablet");
    mom.send("<presence to='kid@localhost' type='subscribed'/>");
    let push = mom.wait_for("push", is_push);
    assert_eq!(items(&push)[0].attr("approved"), Some("true"), "{push}");
    mom.send("<presence to='kid@localhost' type='unsubscribed'/>");
    let push = mom.wait_for("push", is_push);
    assert_eq!(items(&push)[0].attr("approved"), None, "{push}");
    kid.send("<presence to='mom@localhost' type='subscribe'/>");
    mom.wait_for(
        "kid's request",
        presence_from("kid@localhost", Some("subscribe")),
    );
    assert!(
        !kid.drain(QUIET)
            .iter()
            .any(|e| e.attr("type") == Some("subscribed")),
        "no approval for kid"
    );
}

/// After initial presence the client gets its own presence first, then the subscription
/// requests that waited for it, then its offline messages (as Prosody orders them).
#[test]
fn initial_presence_order_own_presence_requests_offline_messages() {
    let s = family();
    let mut kid = online(&s, "kid", "tablet");
    kid.send("<presence to='gran@localhost' type='subscribe'/>");
    kid.wait_for("push", is_push);
    kid.send("<message to='gran@localhost' type='chat' id='m1'><body>hi gran</body></message>");
    kid.drain(QUIET);

    let mut gran = login(&s, "gran", "pc");
    gran.roster_get();
    gran.send("<presence/>");
    let got = gran.drain(QUIET);
    let own = position(
        &got,
        "own presence",
        presence_from("gran@localhost/pc", None),
    );
    let request = position(
        &got,
        "pending subscribe",
        presence_from("kid@localhost", Some("subscribe")),
    );
    let offline = position(&got, "offline message", body_is("hi gran"));
    assert!(
        own < request && request < offline,
        "own presence {own}, request {request}, offline message {offline}"
    );
}
