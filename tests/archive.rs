//! Message Archive Management over real sockets (XEP-0313 with XEP-0059 paging, XEP-0359
//! stanza-ids, XEP-0441 preferences, XEP-0334 hints): paging both ways over 100+ messages,
//! filters, the id a recipient sees, offline messages, preferences, expiry.

mod common;

use common::*;
use roost::xml::Element;
use std::time::Duration;

const MAM: &str = "urn:xmpp:mam:2";
const RSM: &str = "http://jabber.org/protocol/rsm";
const SID: &str = "urn:xmpp:sid:0";
const FORWARD: &str = "urn:xmpp:forward:0";
const QUIET: Duration = Duration::from_millis(300);

fn family() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid"] {
        s.add_user(u, "pw");
    }
    s
}

/// Logs in and sends initial presence (so that bare-JID messages are delivered).
fn online(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = Client::login(s, user, "pw", res);
    c.announce(res, "<presence/>");
    c
}

fn chat(to: &str, body: &str) -> String {
    format!(
        "<message to='{to}' type='chat' id='{body}'><body>{}</body></message>",
        roost::xml::escape(body)
    )
}

fn body(m: &Element) -> String {
    m.child("body", "jabber:client")
        .map(Element::text)
        .unwrap_or_default()
}

/// Waits for a message with this body.
fn receive(c: &mut Client, text: &str) -> Element {
    c.wait_for(text, |e| e.name == "message" && body(e) == text)
}

/// The `by → id` stanza-ids of a message.
fn stanza_ids(m: &Element) -> Vec<(String, String)> {
    m.elements()
        .filter(|e| e.is("stanza-id", SID))
        .map(|e| {
            (
                e.attr("by").unwrap_or("").to_owned(),
                e.attr("id").unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// One page of an archive query.
#[derive(Debug)]
struct Page {
    /// The archived messages, in the order they came.
    messages: Vec<Element>,
    /// Their archive ids.
    ids: Vec<String>,
    /// Their delay stamps.
    stamps: Vec<String>,
    complete: bool,
    first: Option<String>,
    last: Option<String>,
    count: Option<usize>,
}

impl Page {
    fn bodies(&self) -> Vec<String> {
        self.messages.iter().map(body).collect()
    }
}

/// A query form with FORM_TYPE and `fields` (`(var, value)`, a var may repeat).
fn form(fields: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>urn:xmpp:mam:2</value></field>",
    );
    let mut vars: Vec<&str> = fields.iter().map(|(v, _)| *v).collect();
    vars.dedup();
    for var in vars {
        s.push_str(&format!("<field var='{var}'>"));
        for (_, value) in fields.iter().filter(|(v, _)| *v == var) {
            s.push_str(&format!("<value>{}</value>", roost::xml::escape(value)));
        }
        s.push_str("</field>");
    }
    s.push_str("</x>");
    s
}

/// An RSM `<set/>`: `before: Some("")` asks for the last page.
fn rsm(max: Option<usize>, after: Option<&str>, before: Option<&str>) -> String {
    let mut s = format!("<set xmlns='{RSM}'>");
    if let Some(m) = max {
        s.push_str(&format!("<max>{m}</max>"));
    }
    if let Some(a) = after {
        s.push_str(&format!("<after>{a}</after>"));
    }
    match before {
        Some("") => s.push_str("<before/>"),
        Some(b) => s.push_str(&format!("<before>{b}</before>")),
        None => {}
    }
    s.push_str("</set>");
    s
}

/// Runs a query (`inner` goes inside `<query/>`) and collects the results that come before
/// the IQ result; `Err(condition)` if the IQ is an error.
fn query(c: &mut Client, qid: &str, inner: &str) -> Result<Page, String> {
    c.send(&format!(
        "<iq type='set' id='{qid}'><query xmlns='{MAM}' queryid='{qid}'>{inner}</query></iq>"
    ));
    let mut page = Page {
        messages: Vec::new(),
        ids: Vec::new(),
        stamps: Vec::new(),
        complete: false,
        first: None,
        last: None,
        count: None,
    };
    for _ in 0..1000 {
        let e = c.element();
        if e.name == "iq" && e.attr("id") == Some(qid) {
            if e.attr("type") == Some("error") {
                return Err(error_condition(&e).unwrap_or_default());
            }
            let fin = e.child("fin", MAM).unwrap_or_else(|| panic!("no fin: {e}"));
            page.complete = fin.attr("complete") == Some("true");
            let set = fin.child("set", RSM).expect("an RSM set in fin");
            page.first = set.child("first", RSM).map(Element::text);
            page.last = set.child("last", RSM).map(Element::text);
            page.count = set.child("count", RSM).map(|c| c.text().parse().unwrap());
            // RSM's first and last are in archive order, also when the page was sent
            // flipped (the result set is the same, XEP-0313 §4.3.3).
            let (first, last) = if inner.contains("<flip-page/>") {
                (page.ids.last(), page.ids.first())
            } else {
                (page.ids.first(), page.ids.last())
            };
            assert_eq!(page.first.as_ref(), first, "first is the first result");
            assert_eq!(page.last.as_ref(), last, "last is the last result");
            return Ok(page);
        }
        let Some(result) = e.child("result", MAM) else {
            continue;
        };
        assert_eq!(result.attr("queryid"), Some(qid), "{e}");
        assert!(
            e.attr("from").is_some_and(|f| !f.contains('/')),
            "results come from the account's bare JID: {e}"
        );
        let fwd = result.child("forwarded", FORWARD).expect("forwarded");
        let stamp = fwd
            .child("delay", "urn:xmpp:delay")
            .and_then(|d| d.attr("stamp"))
            .expect("a delay stamp")
            .to_owned();
        let m = fwd
            .child("message", "jabber:client")
            .expect("the archived message")
            .clone();
        page.ids
            .push(result.attr("id").expect("result id").to_owned());
        page.stamps.push(stamp);
        page.messages.push(m);
    }
    panic!("no end to the query");
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i:03}")).collect()
}

#[test]
fn pages_through_120_messages_forwards_and_backwards() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut mom = online(&s, "mom", "pc");
    let all: String = numbered(0..120)
        .iter()
        .map(|b| chat("mom@localhost", b))
        .collect();
    kid.send(&all);
    for b in numbered(0..120) {
        receive(&mut mom, &b);
    }

    // Forwards: 50, 50, 20; the last page is complete.
    let p1 = query(&mut kid, "f1", &rsm(Some(50), None, None)).unwrap();
    assert_eq!(p1.bodies(), numbered(0..50));
    assert!(!p1.complete);
    assert_eq!(p1.count, Some(120));
    let p2 = query(&mut kid, "f2", &rsm(Some(50), p1.last.as_deref(), None)).unwrap();
    assert_eq!(p2.bodies(), numbered(50..100));
    assert!(!p2.complete);
    let p3 = query(&mut kid, "f3", &rsm(Some(50), p2.last.as_deref(), None)).unwrap();
    assert_eq!(p3.bodies(), numbered(100..120));
    assert!(p3.complete);
    let p4 = query(&mut kid, "f4", &rsm(Some(50), p3.last.as_deref(), None)).unwrap();
    assert!(p4.messages.is_empty() && p4.complete && p4.first.is_none());
    assert_eq!(p4.count, Some(120));

    // Backwards from the end: an empty <before/> is the last page, in archive order.
    let b1 = query(&mut kid, "b1", &rsm(Some(50), None, Some(""))).unwrap();
    assert_eq!(b1.bodies(), numbered(70..120));
    assert!(!b1.complete);
    let b2 = query(&mut kid, "b2", &rsm(Some(50), None, b1.first.as_deref())).unwrap();
    assert_eq!(b2.bodies(), numbered(20..70));
    assert!(!b2.complete);
    let b3 = query(&mut kid, "b3", &rsm(Some(50), None, b2.first.as_deref())).unwrap();
    assert_eq!(b3.bodies(), numbered(0..20));
    assert!(b3.complete);
    // The same ids both ways.
    let forwards: Vec<String> = [p1.ids, p2.ids, p3.ids].concat();
    let backwards: Vec<String> = [b3.ids, b2.ids, b1.ids].concat();
    assert_eq!(forwards, backwards);
    let mut unique = forwards.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120, "ids are unique");

    // A page that ends exactly at the end of the archive is complete.
    let h1 = query(&mut kid, "h1", &rsm(Some(60), None, None)).unwrap();
    assert!(!h1.complete);
    let h2 = query(&mut kid, "h2", &rsm(Some(60), h1.last.as_deref(), None)).unwrap();
    assert_eq!(h2.bodies(), numbered(60..120));
    assert!(h2.complete);
    let h3 = query(&mut kid, "h3", &rsm(Some(60), None, h2.first.as_deref())).unwrap();
    assert_eq!(h3.bodies(), numbered(0..60));
    assert!(h3.complete);

    // A flipped page holds the same messages, newest first.
    let flipped = query(
        &mut kid,
        "fl",
        &format!("{}<flip-page/>", rsm(Some(10), None, Some(""))),
    )
    .unwrap();
    let mut want = numbered(110..120);
    want.reverse();
    assert_eq!(flipped.bodies(), want);

    // No <set/>: a default page; the server caps the page size.
    let default = query(&mut kid, "d", "").unwrap();
    assert_eq!(default.bodies(), numbered(0..50));
    assert!(!default.complete);
    let capped = query(&mut kid, "c", &rsm(Some(100_000), None, None)).unwrap();
    assert_eq!(capped.messages.len(), 120);
    assert!(capped.complete);
    // max 0: the count only.
    let count = query(&mut kid, "n", &rsm(Some(0), None, None)).unwrap();
    assert!(count.messages.is_empty());
    assert_eq!(count.count, Some(120));

    // Mom's archive has the same messages under ids of its own.
    let moms = query(&mut mom, "m", &rsm(Some(250), None, None)).unwrap();
    assert_eq!(moms.bodies(), numbered(0..120));
    assert!(moms.ids.iter().all(|id| !forwards.contains(id)));

    // Unknown ids in RSM are item-not-found.
    for inner in [
        rsm(Some(5), Some("nope"), None),
        rsm(Some(5), None, Some("nope")),
        rsm(Some(5), Some(&moms.ids[0]), None),
    ] {
        assert_eq!(
            query(&mut kid, "e", &inner).unwrap_err(),
            "item-not-found",
            "{inner}"
        );
    }
}

#[test]
fn filters_by_with_time_and_ids() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut dad_phone = online(&s, "dad", "phone");
    let mut dad_pc = online(&s, "dad", "pc");
    let mut mom = online(&s, "mom", "pc");
    // An old message, written straight into the (still empty) archive.
    let old = roost::util::datetime::parse("2020-01-01T00:00:00Z").unwrap();
    {
        let conn = roost::storage::open_connection(s.dir.path()).unwrap();
        roost::storage::archive::insert(
            &conn,
            &roost::storage::archive::NewEntry {
                host: "localhost",
                username: "kid",
                id: "old1",
                with_bare: "mom@localhost",
                with_full: "mom@localhost/pc",
                stanza: "<message from='mom@localhost/pc' to='kid@localhost' type='chat'>\
                         <body>k0</body></message>",
                now: old,
            },
        )
        .unwrap();
    }

    kid.send(&chat("dad@localhost/phone", "k1"));
    receive(&mut dad_phone, "k1");
    dad_pc.send(&chat("kid@localhost", "d1"));
    receive(&mut kid, "d1");
    dad_phone.send(&chat("kid@localhost/phone", "d2"));
    receive(&mut kid, "d2");
    kid.send(&chat("mom@localhost", "k2"));
    receive(&mut mom, "k2");
    kid.send(&chat("dad@localhost", "k3"));
    receive(&mut dad_phone, "k3");
    let q = |c: &mut Client, fields: &[(&str, &str)]| {
        query(c, "q", &form(fields))
            .map(|p| p.bodies().join(" "))
            .unwrap_or_else(|e| format!("error {e}"))
    };
    assert_eq!(q(&mut kid, &[]), "k0 k1 d1 d2 k2 k3");
    // A bare JID matches every resource; a full one only itself (to or from).
    assert_eq!(q(&mut kid, &[("with", "dad@localhost")]), "k1 d1 d2 k3");
    assert_eq!(q(&mut kid, &[("with", "dad@localhost/phone")]), "k1 d2");
    assert_eq!(q(&mut kid, &[("with", "dad@localhost/pc")]), "d1");
    assert_eq!(q(&mut kid, &[("with", "Mom@LOCALHOST")]), "k0 k2");
    assert_eq!(q(&mut kid, &[("with", "gran@localhost")]), "");
    // start and end are inclusive.
    assert_eq!(q(&mut kid, &[("end", "2020-01-01T00:00:00Z")]), "k0");
    assert_eq!(
        q(&mut kid, &[("start", "2020-01-01T00:00:01Z")]),
        "k1 d1 d2 k2 k3"
    );
    assert_eq!(
        q(
            &mut kid,
            &[
                ("start", "2019-12-31T23:00:00-01:00"),
                ("end", "2020-01-01T00:00:00.5Z")
            ]
        ),
        "k0"
    );
    assert_eq!(
        q(
            &mut kid,
            &[("with", "mom@localhost"), ("start", "2021-01-01T00:00:00Z")]
        ),
        "k2"
    );
    let all = query(&mut kid, "all", &form(&[])).unwrap();
    assert_eq!(all.stamps[0], "2020-01-01T00:00:00Z");
    let id = |i: usize| all.ids[i].as_str();
    // ids, after-id, before-id (#extended).
    assert_eq!(q(&mut kid, &[("ids", id(4)), ("ids", id(1))]), "k1 k2");
    assert_eq!(q(&mut kid, &[("after-id", id(2))]), "d2 k2 k3");
    assert_eq!(q(&mut kid, &[("before-id", id(2))]), "k0 k1");
    assert_eq!(
        q(&mut kid, &[("after-id", id(0)), ("before-id", id(4))]),
        "k1 d1 d2"
    );
    assert_eq!(
        q(
            &mut kid,
            &[("after-id", id(0)), ("with", "dad@localhost/phone")]
        ),
        "k1 d2"
    );
    for bad in [("ids", "nope"), ("after-id", "nope"), ("before-id", "nope")] {
        assert_eq!(q(&mut kid, &[bad]), "error item-not-found", "{bad:?}");
    }
    // Mom's ids are not in kid's archive.
    let moms = query(&mut mom, "m", "").unwrap();
    assert_eq!(
        q(&mut kid, &[("ids", &moms.ids[0])]),
        "error item-not-found"
    );
    // Errors.
    assert_eq!(
        q(&mut kid, &[("include-groupchat", "true")]),
        "error feature-not-implemented"
    );
    assert_eq!(q(&mut kid, &[("start", "last week")]), "error bad-request");
    assert_eq!(q(&mut kid, &[("with", "a@@b")]), "error jid-malformed");
    let wrong_type = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
                      <value>urn:xmpp:mam:1</value></field></x>";
    assert_eq!(query(&mut kid, "w", wrong_type).unwrap_err(), "bad-request");
    assert_eq!(
        query(
            &mut kid,
            "i",
            &format!("<set xmlns='{RSM}'><index>2</index></set>")
        )
        .unwrap_err(),
        "feature-not-implemented"
    );
    // Someone else's archive.
    let r = kid.iq("<iq type='set' id='x' to='mom@localhost'><query xmlns='urn:xmpp:mam:2'/></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{r}");
}

#[test]
fn form_metadata_and_disco() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut mom = online(&s, "mom", "pc");
    let r = kid.iq("<iq type='get' id='m0'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
    let meta = r.child("metadata", MAM).expect("metadata");
    assert!(meta.elements().next().is_none(), "an empty archive: {r}");
    for b in ["first", "second", "third"] {
        kid.send(&chat("mom@localhost", b));
        receive(&mut mom, b);
    }
    let all = query(&mut kid, "q", "").unwrap();
    let r = kid.iq("<iq type='get' id='m1'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
    let meta = r.child("metadata", MAM).expect("metadata");
    let start = meta.child("start", MAM).expect("start");
    let end = meta.child("end", MAM).expect("end");
    assert_eq!(start.attr("id"), Some(all.ids[0].as_str()));
    assert_eq!(end.attr("id"), Some(all.ids[2].as_str()));
    assert_eq!(start.attr("timestamp"), Some(all.stamps[0].as_str()));

    let r = kid.iq("<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>");
    let x = r
        .child("query", MAM)
        .and_then(|q| q.child("x", "jabber:x:data"))
        .unwrap_or_else(|| panic!("a form: {r}"));
    let vars: Vec<&str> = x.elements().filter_map(|f| f.attr("var")).collect();
    for v in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "before-id",
        "after-id",
        "ids",
    ] {
        assert!(vars.contains(&v), "{v} in {vars:?}");
    }

    let r = kid.iq("<iq type='get' id='d' to='kid@localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let features: Vec<&str> = r
        .child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .elements()
        .filter_map(|f| f.attr("var"))
        .collect();
    for f in [
        "urn:xmpp:mam:2",
        "urn:xmpp:mam:2#extended",
        "urn:xmpp:sid:0",
    ] {
        assert!(features.contains(&f), "{f} in {features:?}");
    }
}

#[test]
fn a_delivered_message_carries_its_archive_id_and_forged_ids_are_removed() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut mom = online(&s, "mom", "pc");
    kid.send(
        "<message to='mom@localhost' type='chat'><body>hello</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='mom@localhost' id='forged'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='forged2'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example' id='theirs'/></message>",
    );
    let got = receive(&mut mom, "hello");
    let ids = stanza_ids(&got);
    assert_eq!(ids.len(), 2, "{got}");
    assert_eq!(ids[0], ("room@muc.example".into(), "theirs".into()));
    let (by, id) = &ids[1];
    assert_eq!(by, "mom@localhost");
    assert_ne!(id, "forged");
    let moms = query(&mut mom, "q", "").unwrap();
    assert_eq!(moms.ids, [id.as_str()]);
    let archived = &moms.messages[0];
    assert_eq!(archived.attr("from"), Some("kid@localhost/phone"));
    assert_eq!(archived.attr("to"), Some("mom@localhost"));
    assert!(
        stanza_ids(archived).iter().all(|(_, i)| i != "forged"),
        "{archived}"
    );
    // The sender's archive has it under another id.
    let kids = query(&mut kid, "q", "").unwrap();
    assert_eq!(kids.bodies(), ["hello"]);
    assert_ne!(&kids.ids[0], id);
    // A message to oneself is archived once.
    kid.send("<message type='chat'><body>note to self</body></message>");
    let self_copy = receive(&mut kid, "note to self");
    let self_ids = stanza_ids(&self_copy);
    assert_eq!(self_ids.len(), 1);
    let kids = query(&mut kid, "q2", &form(&[("with", "kid@localhost")])).unwrap();
    assert_eq!(kids.bodies(), ["note to self"]);
    assert_eq!(kids.ids[0], self_ids[0].1);
}

#[test]
fn offline_messages_are_archived_with_the_id_they_arrive_with() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    kid.send(&chat("mom@localhost", "while you were out"));
    kid.send(
        "<message to='mom@localhost' type='chat'><body>not kept</body>\
         <no-store xmlns='urn:xmpp:hints'/></message>",
    );
    // Sync the archive before going online: the offline message is there.
    let mut mom = Client::login(&s, "mom", "pw", "pc");
    let moms = query(&mut mom, "q", "").unwrap();
    assert_eq!(moms.bodies(), ["while you were out"]);
    mom.send("<presence/>");
    let got = receive(&mut mom, "while you were out");
    assert!(got.child("delay", "urn:xmpp:delay").is_some(), "{got}");
    assert_eq!(
        stanza_ids(&got),
        vec![("mom@localhost".to_owned(), moms.ids[0].clone())]
    );
    let kept = receive(&mut mom, "not kept");
    assert!(stanza_ids(&kept).is_empty(), "{kept}");
}

#[test]
fn what_is_archived_follows_types_and_hints() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut mom = online(&s, "mom", "pc");
    let sent = [
        "<message to='mom@localhost' type='chat'><body>chat</body></message>",
        "<message to='mom@localhost'><body>normal</body></message>",
        "<message to='mom@localhost' type='headline'><body>headline</body></message>",
        "<message to='mom@localhost' type='chat'><body>no-store</body>\
         <no-store xmlns='urn:xmpp:hints'/></message>",
        "<message to='mom@localhost' type='chat'><body>no-permanent-store</body>\
         <no-permanent-store xmlns='urn:xmpp:hints'/></message>",
        "<message to='mom@localhost' type='chat' id='cs'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='mom@localhost' type='chat' id='st'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/>\
         <store xmlns='urn:xmpp:hints'/></message>",
        "<message to='mom@localhost/pc' type='groupchat'><body>groupchat</body></message>",
        "<message to='mom@localhost/pc' type='error'><body>error</body></message>",
        "<message to='mom@localhost' type='chat'><body>last</body></message>",
    ];
    for m in sent {
        kid.send(m);
    }
    let got = mom.wait_for("the last message", |e| body(e) == "last");
    assert!(!stanza_ids(&got).is_empty());
    for who in [&mut kid, &mut mom] {
        let p = query(who, "q", "").unwrap();
        let ids: Vec<String> = p
            .messages
            .iter()
            .map(|m| {
                let b = body(m);
                if b.is_empty() {
                    m.attr("id").unwrap_or("").to_owned()
                } else {
                    b
                }
            })
            .collect();
        assert_eq!(ids, ["chat", "normal", "st", "last"]);
    }
}

fn set_prefs(c: &mut Client, prefs: &str) -> Element {
    let r = c.iq(&format!("<iq type='set' id='p'>{prefs}</iq>"));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    r.child("prefs", MAM).expect("prefs in the result").clone()
}

fn jids(prefs: &Element, list: &str) -> Vec<String> {
    prefs
        .child(list, MAM)
        .map(|l| l.elements().map(Element::text).collect())
        .unwrap_or_default()
}

#[test]
fn preferences_never_roster_and_always() {
    let s = family();
    let mut kid = online(&s, "kid", "phone");
    let mut dad = online(&s, "dad", "pc");
    let mut mom = online(&s, "mom", "pc");
    let r = mom.iq("<iq type='get' id='g'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    let p = r.child("prefs", MAM).expect("prefs");
    assert_eq!(
        p.attr("default"),
        Some("always"),
        "archiving is on by default"
    );

    fn exchange(kid: &mut Client, mom: &mut Client, text: &str) -> Element {
        kid.send(&chat("mom@localhost", text));
        receive(mom, text)
    }
    // never: nothing goes into mom's archive, and she gets no archive id.
    set_prefs(&mut mom, "<prefs xmlns='urn:xmpp:mam:2' default='never'/>");
    let got = exchange(&mut kid, &mut mom, "never");
    assert!(stanza_ids(&got).is_empty(), "{got}");
    // roster: only contacts; kid is not in mom's roster yet.
    let p = set_prefs(
        &mut mom,
        "<prefs xmlns='urn:xmpp:mam:2' default='roster'><always/><never/></prefs>",
    );
    assert_eq!(p.attr("default"), Some("roster"));
    let got = exchange(&mut kid, &mut mom, "roster, not a contact");
    assert!(stanza_ids(&got).is_empty(), "{got}");
    let r = mom.iq("<iq type='set' id='r'><query xmlns='jabber:iq:roster'>\
         <item jid='kid@localhost'/></query></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    let got = exchange(&mut kid, &mut mom, "roster, a contact");
    assert_eq!(stanza_ids(&got).len(), 1, "{got}");
    // always / never lists win over the default; never wins over always.
    let p = set_prefs(
        &mut mom,
        "<prefs xmlns='urn:xmpp:mam:2' default='never'>\
         <always><jid>Kid@localhost</jid><jid>dad@localhost</jid></always>\
         <never><jid>dad@localhost</jid></never></prefs>",
    );
    assert_eq!(jids(&p, "always"), ["kid@localhost", "dad@localhost"]);
    assert_eq!(jids(&p, "never"), ["dad@localhost"]);
    let got = exchange(&mut kid, &mut mom, "always kid");
    assert_eq!(stanza_ids(&got).len(), 1, "{got}");
    dad.send(&chat("mom@localhost", "never dad"));
    let got = receive(&mut mom, "never dad");
    assert!(stanza_ids(&got).is_empty(), "{got}");
    // What mom's archive holds; the senders' archives keep everything.
    let moms = query(&mut mom, "q", "").unwrap();
    assert_eq!(moms.bodies(), ["roster, a contact", "always kid"]);
    let kids = query(&mut kid, "q", "").unwrap();
    assert_eq!(kids.bodies().len(), 4);
    let dads = query(&mut dad, "q", "").unwrap();
    assert_eq!(dads.bodies(), ["never dad"]);
    // Get returns what was set.
    let r = mom.iq("<iq type='get' id='g2'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    assert_eq!(r.child("prefs", MAM), Some(&p));
    // Invalid preferences.
    for (prefs, cond) in [
        (
            "<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>",
            "bad-request",
        ),
        (
            "<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>a@@b</jid></never></prefs>",
            "jid-malformed",
        ),
    ] {
        let r = mom.iq(&format!("<iq type='set' id='bad'>{prefs}</iq>"));
        assert_eq!(error_condition(&r).as_deref(), Some(cond), "{r}");
    }
    let r = kid.iq("<iq type='get' id='o' to='mom@localhost'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{r}");
}

/// A data directory with kid's archive holding a message from two days ago and one from
/// now.
fn archive_with_an_old_message() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = roost::storage::open_connection(dir.path()).unwrap();
    let creds = roost::sasl::StoredCredentials::derive("pw", 4096);
    roost::storage::accounts::create(&conn, "localhost", "kid", &creds).unwrap();
    let now = roost::util::datetime::unix_now();
    for (id, when) in [("old", now - 2 * 86_400), ("new", now)] {
        roost::storage::archive::insert(
            &conn,
            &roost::storage::archive::NewEntry {
                host: "localhost",
                username: "kid",
                id,
                with_bare: "mom@localhost",
                with_full: "mom@localhost",
                stanza: &format!(
                    "<message to='kid@localhost' from='mom@localhost/pc' type='chat'>\
                     <body>{id}</body></message>"
                ),
                now: when,
            },
        )
        .unwrap();
    }
    dir
}

#[test]
fn expiry_keeps_messages_forever_by_default_and_drops_old_ones_when_asked() {
    let s = TestServer::start_in(archive_with_an_old_message(), |_| {});
    let mut kid = Client::login(&s, "kid", "pw", "phone");
    let p = query(&mut kid, "q", "").unwrap();
    assert_eq!(p.bodies(), ["old", "new"], "0 days keeps everything");
    drop(kid);
    drop(s);

    let s = TestServer::start_in(archive_with_an_old_message(), |c| {
        c.archive_expires_days = 1
    });
    let mut kid = Client::login(&s, "kid", "pw", "phone");
    let p = query(&mut kid, "q", "").unwrap();
    assert_eq!(p.bodies(), ["new"], "older than a day is gone at start");
    assert_eq!(p.ids, ["new"]);
    kid.assert_silent(QUIET);
}
