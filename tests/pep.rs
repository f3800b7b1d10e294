//! Personal eventing over real sockets (XEP-0163 on XEP-0060): publish with `+notify`
//! interests resolved from XEP-0115 caps (the test clients answer the server's disco#info),
//! the last item for resources coming online, access models, publish-options, retract and
//! delete notifications, OMEMO and avatar nodes, XEP-0402/XEP-0048 bookmarks kept in sync
//! (XEP-0411), XEP-0223 private nodes, XEP-0398 avatars in vCards and presence, limits.

mod common;

use common::*;
use roost::storage::roster::Item;
use roost::subscription::State;
use roost::xml::Element;
use std::time::Duration;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const CAPS: &str = "http://jabber.org/protocol/caps";
const NICK: &str = "http://jabber.org/protocol/nick";
const TUNE: &str = "http://jabber.org/protocol/tune";
const DEVICELIST: &str = "eu.siacs.conversations.axolotl.devicelist";
const OMEMO2_DEVICES: &str = "urn:xmpp:omemo:2:devices";
const OMEMO2_BUNDLES: &str = "urn:xmpp:omemo:2:bundles";
const AVATAR_DATA: &str = "urn:xmpp:avatar:data";
const AVATAR_METADATA: &str = "urn:xmpp:avatar:metadata";
const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
const PRIVATE: &str = "jabber:iq:private";
const VCARD: &str = "vcard-temp";
const VCARD_UPDATE: &str = "vcard-temp:x:update";
const CLIENT_NODE: &str = "https://roost.test/client";
/// How long silence must last for a burst of stanzas to be over.
const QUIET: Duration = Duration::from_millis(400);

/// mom, dad and gran are mutual contacts of mom; kid is in mom's roster but not
/// subscribed to her presence (mom sees kid's); eve is no one's contact.
fn family() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid", "eve", "gran"] {
        s.add_user(u, "pw");
    }
    for (a, b) in [
        ("mom", "dad"),
        ("dad", "mom"),
        ("mom", "gran"),
        ("gran", "mom"),
    ] {
        roster(&s, a, b, State::Both);
    }
    roster(&s, "mom", "kid", State::To);
    roster(&s, "kid", "mom", State::From);
    s
}

/// Puts `contact` in `user`'s roster with `state`, straight into the database.
fn roster(s: &TestServer, user: &str, contact: &str, state: State) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let mut item = Item::new(&format!("{contact}@localhost"));
    item.state = state;
    roost::storage::roster::put(&conn, "localhost", user, &item).unwrap();
}

/// A client's XEP-0115 identity and features, with its `ver` computed here (§5.1),
/// independently of the server's code.
struct ClientCaps {
    features: Vec<String>,
    ver: String,
}

impl ClientCaps {
    fn new(notify: &[&str]) -> ClientCaps {
        let mut features: Vec<String> = vec![DISCO_INFO.into(), CAPS.into()];
        features.extend(notify.iter().map(|n| format!("{n}+notify")));
        features.sort();
        let mut s = String::from("client/pc//roost-test<");
        for f in &features {
            s += f;
            s.push('<');
        }
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
        ClientCaps {
            features,
            ver: b64(digest.as_ref()),
        }
    }

    fn presence(&self, extra: &str) -> String {
        format!(
            "<presence><c xmlns='{CAPS}' hash='sha-1' node='{CLIENT_NODE}' ver='{}'/>{extra}\
             </presence>",
            self.ver
        )
    }

    /// The answer to the server's disco#info query, with `features` (normally ours).
    fn answer(&self, query: &Element, features: &[String]) -> String {
        let node = query
            .child("query", DISCO_INFO)
            .unwrap()
            .attr("node")
            .unwrap();
        let mut f = String::new();
        for x in features {
            f += &format!("<feature var='{x}'/>");
        }
        format!(
            "<iq type='result' id='{}' to='{}'><query xmlns='{DISCO_INFO}' node='{node}'>\
             <identity category='client' type='pc' name='roost-test'/>{f}</query></iq>",
            query.attr("id").unwrap(),
            query.attr("from").unwrap(),
        )
    }
}

fn is_disco_query(e: &Element) -> bool {
    e.name == "iq" && e.attr("type") == Some("get") && e.child("query", DISCO_INFO).is_some()
}

/// A logged-in client with the stanzas that came after its initial presence.
struct Online {
    c: Client,
    /// Everything but the server's caps queries, which were answered.
    got: Vec<Element>,
    /// The caps queries the server sent.
    queries: Vec<Element>,
}

/// Logs in and sends initial presence with caps asking for `notify`, answering the
/// server's disco#info query honestly; collects what comes until the burst is over.
fn online(s: &TestServer, user: &str, res: &str, caps: &ClientCaps) -> Online {
    let c = Client::login(s, user, "pw", res);
    present(c, caps, "", true)
}

/// Sends a presence with `caps` (and `extra` inside) and collects what follows, answering
/// caps queries (truthfully if `honest`, else with one feature more than the `ver` says).
fn present(mut c: Client, caps: &ClientCaps, extra: &str, honest: bool) -> Online {
    c.send(&caps.presence(extra));
    let (mut got, mut queries) = (Vec::new(), Vec::new());
    while let Some(g) = c.next_within(QUIET) {
        let Got::Element(e) = g else {
            panic!("while waiting after presence: {g:?}");
        };
        if is_disco_query(&e) {
            let mut features = caps.features.clone();
            if !honest {
                features.push(format!("{NICK}+notify"));
            }
            c.send(&caps.answer(&e, &features));
            queries.push(e);
        } else {
            got.push(e);
        }
    }
    Online { c, got, queries }
}

/// The `<event/>` of a PEP notification from `from`.
fn event_from<'a>(e: &'a Element, from: &str) -> Option<&'a Element> {
    (e.name == "message" && e.attr("type") == Some("headline") && e.attr("from") == Some(from))
        .then(|| e.child("event", EVENT))
        .flatten()
}

/// `(node, item id, payload)` of each published item in a notification.
fn items_of(event: &Element) -> Vec<(String, String, Option<Element>)> {
    event
        .elements()
        .filter(|x| x.is("items", EVENT))
        .flat_map(|items| {
            let node = items.attr("node").unwrap_or("").to_owned();
            items
                .elements()
                .filter(|i| i.is("item", EVENT))
                .map(move |i| {
                    (
                        node.clone(),
                        i.attr("id").unwrap_or("").to_owned(),
                        i.first_element().cloned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Waits for a notification from `from` about `node`.
fn wait_event(c: &mut Client, from: &str, node: &str) -> Element {
    c.wait_for(&format!("an event of {node}"), |e| {
        event_from(e, from).is_some_and(|ev| ev.elements().any(|x| x.attr("node") == Some(node)))
    })
}

/// Sends an IQ and returns its reply; what came before it is kept in `skipped`.
fn iq_keep(
    c: &mut Client,
    ty: &str,
    to: Option<&str>,
    payload: &str,
    skipped: &mut Vec<Element>,
) -> Element {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "p{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
    c.send(&format!("<iq type='{ty}' id='{id}'{to}>{payload}</iq>"));
    loop {
        let e = c.element();
        if e.name == "iq"
            && e.attr("id") == Some(id.as_str())
            && matches!(e.attr("type"), Some("result" | "error"))
        {
            return e;
        }
        skipped.push(e);
    }
}

fn iq(c: &mut Client, ty: &str, to: Option<&str>, payload: &str) -> Element {
    iq_keep(c, ty, to, payload, &mut Vec::new())
}

/// The payload of a result (panics on an error).
fn ok(reply: Element) -> Option<Element> {
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "expected a result: {reply}"
    );
    reply.first_element().cloned()
}

/// `(condition, pubsub#errors condition)` of an error reply.
fn err(reply: &Element) -> (String, Option<String>) {
    assert_eq!(
        reply.attr("type"),
        Some("error"),
        "expected an error: {reply}"
    );
    let e = reply.child("error", "jabber:client").expect("an <error/>");
    let app = e
        .elements()
        .find(|x| x.ns == ERRORS)
        .map(|x| x.name.to_string());
    (error_condition(reply).unwrap_or_default(), app)
}

fn form(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut f = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{form_type}</value></field>"
    );
    for (var, value) in fields {
        f += &format!("<field var='{var}'><value>{value}</value></field>");
    }
    f + "</x>"
}

/// A publish request's payload: `<pubsub>` with the item and optional publish-options.
fn publish(node: &str, id: Option<&str>, payload: &str, options: &[(&str, &str)]) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    let opts = if options.is_empty() {
        String::new()
    } else {
        format!(
            "<publish-options>{}</publish-options>",
            form(&format!("{PUBSUB}#publish-options"), options)
        )
    };
    format!(
        "<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item{id}>{payload}</item></publish>\
         {opts}</pubsub>"
    )
}

/// An items request: `attrs` on `<items/>` (such as max_items), `children` (item ids).
fn items_request(node: &str, attrs: &str, children: &str) -> String {
    format!("<pubsub xmlns='{PUBSUB}'><items node='{node}'{attrs}>{children}</items></pubsub>")
}

/// `(id, payload)` of each item of an items result.
fn result_items(reply: Element) -> Vec<(String, Element)> {
    let p = ok(reply).expect("a pubsub element");
    let items = p.child("items", PUBSUB).expect("items");
    items
        .elements()
        .map(|i| {
            (
                i.attr("id").unwrap().to_owned(),
                i.first_element().expect("payload").clone(),
            )
        })
        .collect()
}

fn nick(name: &str) -> String {
    format!("<nick xmlns='{NICK}'>{name}</nick>")
}

// ------------------------------------------------------------------ notifications

#[test]
fn a_publish_reaches_contacts_whose_caps_ask_for_it() {
    let s = family();
    let interested = ClientCaps::new(&[NICK]);
    // dad's client announces caps the server has never seen: it asks dad's resource.
    let mut dad = online(&s, "dad", "phone", &interested);
    assert_eq!(
        dad.queries.len(),
        1,
        "one disco#info query: {:?}",
        dad.queries
    );
    let q = &dad.queries[0];
    assert_eq!(q.attr("from"), Some("localhost"));
    assert_eq!(q.attr("to"), Some("dad@localhost/phone"));
    assert_eq!(
        q.child("query", DISCO_INFO).unwrap().attr("node"),
        Some(format!("{CLIENT_NODE}#{}", interested.ver).as_str())
    );
    // mom's client has the same caps: known now, so she is not asked.
    let mut mom = online(&s, "mom", "laptop", &interested);
    assert!(mom.queries.is_empty(), "{:?}", mom.queries);
    // gran is a contact who does not want nicks; kid wants them but is not subscribed to
    // mom's presence; eve wants them but is no contact.
    let mut gran = online(&s, "gran", "pc", &ClientCaps::new(&[TUNE]));
    let mut kid = online(&s, "kid", "tablet", &interested);
    let mut eve = online(&s, "eve", "pc", &interested);
    dad.c.drain(QUIET);
    mom.c.drain(QUIET);

    let mut skipped = Vec::new();
    let r = iq_keep(
        &mut mom.c,
        "set",
        None,
        &publish(NICK, None, &nick("Mom"), &[]),
        &mut skipped,
    );
    let p = ok(r).expect("a publish result");
    let item = p
        .child("publish", PUBSUB)
        .and_then(|x| x.child("item", PUBSUB))
        .expect("the item");
    let id = item.attr("id").expect("the server picked an id").to_owned();
    assert!(!id.is_empty());

    let e = wait_event(&mut dad.c, "mom@localhost", NICK);
    assert_eq!(e.attr("to"), Some("dad@localhost/phone"));
    let items = items_of(e.child("event", EVENT).unwrap());
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].1, id);
    let payload = items[0].2.clone().expect("the payload");
    assert!(payload.is("nick", NICK));
    assert_eq!(payload.text(), "Mom");
    // The publisher's own interested resource hears of it too (XEP-0163 §4.3.1).
    skipped.extend(mom.c.drain(QUIET));
    assert!(
        skipped
            .iter()
            .any(|e| event_from(e, "mom@localhost").is_some()),
        "mom's own notification: {skipped:?}"
    );
    gran.c.assert_silent(QUIET);
    kid.c.assert_silent(QUIET);
    eve.c.assert_silent(QUIET);
}

#[test]
fn a_caps_answer_that_does_not_match_its_ver_is_not_trusted() {
    let s = family();
    // dad's caps do not ask for nicks, but his answer claims they do.
    let caps = ClientCaps::new(&[TUNE]);
    let c = Client::login(&s, "dad", "pw", "phone");
    let mut dad = present(c, &caps, "", false);
    assert_eq!(dad.queries.len(), 1);
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(NICK, None, &nick("Mom"), &[]),
    ));
    dad.c.assert_silent(QUIET);
    // The lie was not cached: the next resource with that ver is asked again, answers
    // honestly, and then tunes reach it.
    let mut dad2 = online(&s, "dad", "tablet", &caps);
    assert_eq!(dad2.queries.len(), 1, "asked again");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(TUNE, None, &format!("<tune xmlns='{TUNE}'/>"), &[]),
    ));
    wait_event(&mut dad2.c, "mom@localhost", TUNE);
}

#[test]
fn the_last_item_reaches_a_contact_coming_online_and_a_new_interest() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(NICK, Some("current"), &nick("Mom"), &[]),
    ));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            TUNE,
            Some("t1"),
            &format!("<tune xmlns='{TUNE}'><title>Song</title></tune>"),
            &[],
        ),
    ));

    // dad comes online asking for nicks: he gets mom's last nick, stamped, once.
    let nicks = ClientCaps::new(&[NICK]);
    let dad = online(&s, "dad", "phone", &nicks);
    let events: Vec<&Element> = dad
        .got
        .iter()
        .filter(|e| event_from(e, "mom@localhost").is_some())
        .collect();
    assert_eq!(events.len(), 1, "only the nick: {:?}", dad.got);
    let items = items_of(events[0].child("event", EVENT).unwrap());
    assert_eq!(items[0].0, NICK);
    assert_eq!(items[0].1, "current");
    assert_eq!(items[0].2.as_ref().unwrap().text(), "Mom");
    let delay = events[0]
        .child("delay", "urn:xmpp:delay")
        .expect("a delay stamp");
    assert!(delay.attr("stamp").unwrap().ends_with('Z'));

    // The same presence again (a status change): nothing new.
    let dad = present(dad.c, &nicks, "<show>away</show>", true);
    assert!(
        !dad.got
            .iter()
            .any(|e| event_from(e, "mom@localhost").is_some()),
        "{:?}",
        dad.got
    );
    // New caps that also ask for tunes: only the tune is new.
    let more = ClientCaps::new(&[NICK, TUNE]);
    let dad = present(dad.c, &more, "", true);
    assert_eq!(dad.queries.len(), 1, "new caps are asked about");
    let nodes: Vec<String> = dad
        .got
        .iter()
        .filter_map(|e| event_from(e, "mom@localhost"))
        .flat_map(items_of)
        .map(|(node, _, _)| node)
        .collect();
    assert_eq!(nodes, [TUNE]);

    // Negative priority: no last items (XEP-0163 §4.3.3 rule 2).
    let c = Client::login(&s, "dad", "pw", "pager");
    let dad3 = present(c, &nicks, "<priority>-1</priority>", true);
    assert!(
        !dad3
            .got
            .iter()
            .any(|e| event_from(e, "mom@localhost").is_some()),
        "{:?}",
        dad3.got
    );
    // A contact without a presence subscription (kid) gets nothing, interested or not;
    // mom's own new resource gets her own last items.
    let kid = online(&s, "kid", "tablet", &more);
    assert!(!kid
        .got
        .iter()
        .any(|e| event_from(e, "mom@localhost").is_some()));
    let mom2 = online(&s, "mom", "phone", &nicks);
    assert!(
        mom2.got
            .iter()
            .any(|e| event_from(e, "mom@localhost").is_some()),
        "{:?}",
        mom2.got
    );
}

#[test]
fn a_new_subscriber_gets_the_last_items() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(NICK, Some("current"), &nick("Mom"), &[]),
    ));
    mom.send("<presence/>");
    // eve is online, interested, but not subscribed: nothing yet.
    let mut eve = online(&s, "eve", "pc", &ClientCaps::new(&[NICK]));
    assert!(!eve
        .got
        .iter()
        .any(|e| event_from(e, "mom@localhost").is_some()));
    eve.c
        .send("<presence type='subscribe' to='mom@localhost'/>");
    mom.wait_for("the request", |e| e.attr("type") == Some("subscribe"));
    mom.send("<presence type='subscribed' to='eve@localhost'/>");
    let e = wait_event(&mut eve.c, "mom@localhost", NICK);
    let items = items_of(e.child("event", EVENT).unwrap());
    assert_eq!(items[0].2.as_ref().unwrap().text(), "Mom");
}

// ------------------------------------------------------------------ access models

#[test]
fn omemo_device_lists_and_bundles_with_open_access_are_read_by_a_non_contact() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    let open = [("pubsub#access_model", "open")];
    let list = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>";
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(DEVICELIST, Some("current"), list, &open),
    ));
    let bundle = "<bundle xmlns='eu.siacs.conversations.axolotl'>\
                  <signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic></bundle>";
    let bundle_node = "eu.siacs.conversations.axolotl.bundles:1234";
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(bundle_node, Some("current"), bundle, &open),
    ));
    // OMEMO 2: one node of devices, one node of bundles with an item per device.
    let devices = "<devices xmlns='urn:xmpp:omemo:2'><device id='11'/><device id='22'/></devices>";
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(OMEMO2_DEVICES, Some("current"), devices, &open),
    ));
    let many = [("pubsub#access_model", "open"), ("pubsub#max_items", "max")];
    for id in ["11", "22"] {
        let b = format!("<bundle xmlns='urn:xmpp:omemo:2'><spk id='{id}'>AA==</spk></bundle>");
        ok(iq(
            &mut mom,
            "set",
            None,
            &publish(OMEMO2_BUNDLES, Some(id), &b, &many),
        ));
    }

    // eve is not in mom's roster.
    let mut eve = Client::login(&s, "eve", "pw", "pc");
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(DEVICELIST, "", ""),
    ));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "current");
    assert!(got[0].1.is("list", "eu.siacs.conversations.axolotl"));
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(bundle_node, " max_items='1'", ""),
    ));
    assert!(got[0].1.is("bundle", "eu.siacs.conversations.axolotl"));
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(OMEMO2_DEVICES, "", ""),
    ));
    assert_eq!(got[0].1.elements().count(), 2);
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(OMEMO2_BUNDLES, "", ""),
    ));
    let ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["11", "22"], "both bundles kept (max_items=max)");
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(OMEMO2_BUNDLES, "", "<item id='22'/>"),
    ));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "22");
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(OMEMO2_BUNDLES, " max_items='1'", ""),
    ));
    assert_eq!(got[0].0, "22", "the newest");
    let r = iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request(OMEMO2_BUNDLES, "", "<item id='33'/>"),
    );
    assert_eq!(err(&r).0, "item-not-found");
    // Open nodes are listed for eve too.
    let q = ok(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &format!("<query xmlns='{DISCO_ITEMS}'/>"),
    ))
    .unwrap();
    let nodes: Vec<&str> = q.elements().filter_map(|i| i.attr("node")).collect();
    assert!(nodes.contains(&DEVICELIST), "{nodes:?}");
    assert!(nodes.contains(&OMEMO2_BUNDLES), "{nodes:?}");
}

#[test]
fn access_models_refuse_with_the_conditions_of_xep_0060() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    // Default (presence), roster and whitelist nodes.
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(NICK, Some("current"), &nick("Mom"), &[]),
    ));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            "urn:example:roster",
            Some("1"),
            "<x xmlns='urn:example:roster'/>",
            &[("pubsub#access_model", "roster")],
        ),
    ));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            "urn:example:private",
            Some("1"),
            "<x xmlns='urn:example:private'/>",
            &[
                ("pubsub#access_model", "whitelist"),
                ("pubsub#persist_items", "true"),
            ],
        ),
    ));

    let mut eve = Client::login(&s, "eve", "pw", "pc");
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    let mut kid = Client::login(&s, "kid", "pw", "pc");
    let get = |c: &mut Client, node: &str| {
        iq(
            c,
            "get",
            Some("mom@localhost"),
            &items_request(node, "", ""),
        )
    };
    let presence_required = (
        "not-authorized".to_owned(),
        Some("presence-subscription-required".to_owned()),
    );
    let not_in_roster = (
        "not-authorized".to_owned(),
        Some("not-in-roster-group".to_owned()),
    );
    let closed = ("not-allowed".to_owned(), Some("closed-node".to_owned()));

    // Presence: dad (both) reads; kid (in mom's roster, not subscribed) and eve do not.
    assert_eq!(result_items(get(&mut dad, NICK)).len(), 1);
    assert_eq!(err(&get(&mut eve, NICK)), presence_required);
    assert_eq!(err(&get(&mut kid, NICK)), presence_required);
    // Roster: dad and kid read; eve does not.
    assert_eq!(result_items(get(&mut dad, "urn:example:roster")).len(), 1);
    assert_eq!(result_items(get(&mut kid, "urn:example:roster")).len(), 1);
    assert_eq!(err(&get(&mut eve, "urn:example:roster")), not_in_roster);
    // Whitelist (XEP-0223 private node): mom only.
    assert_eq!(result_items(get(&mut mom, "urn:example:private")).len(), 1);
    assert_eq!(err(&get(&mut dad, "urn:example:private")), closed);
    assert_eq!(err(&get(&mut eve, "urn:example:private")), closed);
    // A node that does not exist.
    assert_eq!(
        err(&get(&mut dad, "urn:example:nothing")).0,
        "item-not-found"
    );

    // disco#items shows each only the nodes it may read; disco#info on a node too.
    let nodes = |c: &mut Client| -> Vec<String> {
        let q = ok(iq(
            c,
            "get",
            Some("mom@localhost"),
            &format!("<query xmlns='{DISCO_ITEMS}'/>"),
        ))
        .unwrap();
        q.elements()
            .map(|i| {
                assert_eq!(i.attr("jid"), Some("mom@localhost"));
                i.attr("node").unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(
        nodes(&mut mom),
        [NICK, "urn:example:private", "urn:example:roster"]
    );
    assert_eq!(nodes(&mut dad), [NICK, "urn:example:roster"]);
    assert_eq!(nodes(&mut kid), ["urn:example:roster"]);
    assert!(nodes(&mut eve).is_empty());
    let info = ok(iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &format!("<query xmlns='{DISCO_INFO}' node='{NICK}'/>"),
    ))
    .unwrap();
    let id = info.child("identity", DISCO_INFO).unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("pubsub"), Some("leaf"))
    );
    let r = iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &format!("<query xmlns='{DISCO_INFO}' node='urn:example:private'/>"),
    );
    assert_eq!(err(&r).0, "item-not-found");

    // Only the owner publishes, configures, deletes.
    let r = iq(
        &mut dad,
        "set",
        Some("mom@localhost"),
        &publish(NICK, None, &nick("Not mom"), &[]),
    );
    assert_eq!(err(&r).0, "forbidden");
    for owner_op in [
        format!("<pubsub xmlns='{OWNER}'><delete node='{NICK}'/></pubsub>"),
        format!("<pubsub xmlns='{OWNER}'><purge node='{NICK}'/></pubsub>"),
    ] {
        assert_eq!(
            err(&iq(&mut dad, "set", Some("mom@localhost"), &owner_op)).0,
            "forbidden"
        );
    }
    let r = iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &format!("<pubsub xmlns='{OWNER}'><configure node='{NICK}'/></pubsub>"),
    );
    assert_eq!(err(&r).0, "forbidden");
    // Explicit subscriptions are not offered.
    let r = iq(
        &mut eve,
        "set",
        Some("mom@localhost"),
        &format!(
            "<pubsub xmlns='{PUBSUB}'><subscribe node='{NICK}' jid='eve@localhost'/></pubsub>"
        ),
    );
    assert_eq!(
        err(&r),
        ("feature-not-implemented".into(), Some("unsupported".into()))
    );
}

// ------------------------------------------------------------------ configuration

#[test]
fn publish_options_that_differ_from_an_existing_node_are_a_precondition_not_met() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    let meta = |id: &str| {
        format!("<metadata xmlns='{AVATAR_METADATA}'><info id='{id}' bytes='3' type='image/png'/></metadata>")
    };
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(AVATAR_METADATA, Some("a1"), &meta("a1"), &[]),
    ));
    // The node has the default (presence) access model: asking for open is refused, and
    // the item is not stored.
    let open = [("pubsub#access_model", "open")];
    let r = iq(
        &mut mom,
        "set",
        None,
        &publish(AVATAR_METADATA, Some("a2"), &meta("a2"), &open),
    );
    assert_eq!(
        err(&r),
        ("conflict".into(), Some("precondition-not-met".into()))
    );
    let got = result_items(iq(
        &mut mom,
        "get",
        None,
        &items_request(AVATAR_METADATA, "", ""),
    ));
    assert_eq!(got[0].0, "a1");
    // Options the node already has are met, compared as values (true is 1).
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            AVATAR_METADATA,
            Some("a2"),
            &meta("a2"),
            &[
                ("pubsub#access_model", "presence"),
                ("pubsub#persist_items", "true"),
            ],
        ),
    ));
    // Options we do not know can never be met.
    let r = iq(
        &mut mom,
        "set",
        None,
        &publish(
            AVATAR_METADATA,
            Some("a3"),
            &meta("a3"),
            &[("pubsub#frobnicate", "1")],
        ),
    );
    assert_eq!(
        err(&r),
        ("conflict".into(), Some("precondition-not-met".into()))
    );

    // The configuration form, then the client reconfigures and publishes again (the
    // recovery clients such as Conversations do).
    let conf = ok(iq(
        &mut mom,
        "get",
        None,
        &format!("<pubsub xmlns='{OWNER}'><configure node='{AVATAR_METADATA}'/></pubsub>"),
    ))
    .unwrap();
    let x = conf
        .child("configure", OWNER)
        .unwrap()
        .child("x", "jabber:x:data")
        .unwrap();
    let value = |var: &str| {
        x.elements()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.child("value", "jabber:x:data"))
            .map(|v| v.text())
    };
    assert_eq!(
        value("FORM_TYPE").as_deref(),
        Some("http://jabber.org/protocol/pubsub#node_config")
    );
    assert_eq!(value("pubsub#access_model").as_deref(), Some("presence"));
    assert_eq!(value("pubsub#max_items").as_deref(), Some("1"));
    assert_eq!(
        value("pubsub#send_last_published_item").as_deref(),
        Some("on_sub_and_presence")
    );
    let set = format!(
        "<pubsub xmlns='{OWNER}'><configure node='{AVATAR_METADATA}'>{}</configure></pubsub>",
        form(
            "http://jabber.org/protocol/pubsub#node_config",
            &[("pubsub#access_model", "open"), ("pubsub#max_items", "max")]
        )
    );
    ok(iq(&mut mom, "set", None, &set));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(AVATAR_METADATA, Some("a3"), &meta("a3"), &open),
    ));
    let got = result_items(iq(
        &mut mom,
        "get",
        None,
        &items_request(AVATAR_METADATA, "", ""),
    ));
    let ids: Vec<&str> = got.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(ids, ["a2", "a3"], "max_items=max keeps both");
    // An invalid value is not-acceptable; a cancelled form changes nothing.
    let bad = format!(
        "<pubsub xmlns='{OWNER}'><configure node='{AVATAR_METADATA}'>{}</configure></pubsub>",
        form(
            "http://jabber.org/protocol/pubsub#node_config",
            &[("pubsub#access_model", "authorize")]
        )
    );
    assert_eq!(err(&iq(&mut mom, "set", None, &bad)).0, "not-acceptable");
    // Lowering max_items drops the oldest.
    let one = format!(
        "<pubsub xmlns='{OWNER}'><configure node='{AVATAR_METADATA}'>{}</configure></pubsub>",
        form(
            "http://jabber.org/protocol/pubsub#node_config",
            &[("pubsub#max_items", "1")]
        )
    );
    ok(iq(&mut mom, "set", None, &one));
    let got = result_items(iq(
        &mut mom,
        "get",
        None,
        &items_request(AVATAR_METADATA, "", ""),
    ));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "a3");
    // A new node is created with the options asked for; an explicit create of an existing
    // node is a conflict.
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            "urn:example:new",
            None,
            "<x xmlns='urn:example:new'/>",
            &[
                ("pubsub#access_model", "whitelist"),
                ("pubsub#send_last_published_item", "never"),
            ],
        ),
    ));
    let create = format!("<pubsub xmlns='{PUBSUB}'><create node='urn:example:new'/></pubsub>");
    assert_eq!(err(&iq(&mut mom, "set", None, &create)).0, "conflict");
    let create = format!(
        "<pubsub xmlns='{PUBSUB}'><create node='urn:example:made'/><configure>{}</configure></pubsub>",
        form("http://jabber.org/protocol/pubsub#node_config", &[("pubsub#access_model", "open")])
    );
    ok(iq(&mut mom, "set", None, &create));
    let mut eve = Client::login(&s, "eve", "pw", "pc");
    let got = result_items(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &items_request("urn:example:made", "", ""),
    ));
    assert!(got.is_empty());
}

#[test]
fn retract_purge_and_delete_notify_the_interested() {
    let s = family();
    let caps = ClientCaps::new(&[TUNE]);
    let mut dad = online(&s, "dad", "phone", &caps);
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    let tune = format!("<tune xmlns='{TUNE}'><title>A</title></tune>");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(TUNE, Some("t1"), &tune, &[("pubsub#max_items", "10")]),
    ));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(TUNE, Some("t2"), &tune, &[]),
    ));
    wait_event(&mut dad.c, "mom@localhost", TUNE);
    wait_event(&mut dad.c, "mom@localhost", TUNE);

    let retract = |id: &str| {
        format!("<pubsub xmlns='{PUBSUB}'><retract node='{TUNE}' notify='true'><item id='{id}'/></retract></pubsub>")
    };
    ok(iq(&mut mom, "set", None, &retract("t1")));
    let e = wait_event(&mut dad.c, "mom@localhost", TUNE);
    let retracted = e
        .child("event", EVENT)
        .unwrap()
        .child("items", EVENT)
        .unwrap()
        .child("retract", EVENT)
        .expect("a retract");
    assert_eq!(retracted.attr("id"), Some("t1"));
    assert_eq!(
        err(&iq(&mut mom, "set", None, &retract("t1"))).0,
        "item-not-found"
    );
    let got = result_items(iq(
        &mut dad.c,
        "get",
        Some("mom@localhost"),
        &items_request(TUNE, "", ""),
    ));
    assert_eq!(got.len(), 1);

    let purge = format!("<pubsub xmlns='{OWNER}'><purge node='{TUNE}'/></pubsub>");
    ok(iq(&mut mom, "set", None, &purge));
    let e = dad.c.wait_for("purge", |e| {
        event_from(e, "mom@localhost").is_some_and(|ev| ev.child("purge", EVENT).is_some())
    });
    assert_eq!(
        e.child("event", EVENT)
            .unwrap()
            .child("purge", EVENT)
            .unwrap()
            .attr("node"),
        Some(TUNE)
    );
    assert!(result_items(iq(
        &mut dad.c,
        "get",
        Some("mom@localhost"),
        &items_request(TUNE, "", "")
    ))
    .is_empty());

    let delete = format!("<pubsub xmlns='{OWNER}'><delete node='{TUNE}'/></pubsub>");
    ok(iq(&mut mom, "set", None, &delete));
    let e = dad.c.wait_for("delete", |e| {
        event_from(e, "mom@localhost").is_some_and(|ev| ev.child("delete", EVENT).is_some())
    });
    assert_eq!(
        e.child("event", EVENT)
            .unwrap()
            .child("delete", EVENT)
            .unwrap()
            .attr("node"),
        Some(TUNE)
    );
    let r = iq(
        &mut dad.c,
        "get",
        Some("mom@localhost"),
        &items_request(TUNE, "", ""),
    );
    assert_eq!(err(&r).0, "item-not-found");
    assert_eq!(err(&iq(&mut mom, "set", None, &delete)).0, "item-not-found");
}

// ------------------------------------------------------------------ bookmarks

fn private_get(c: &mut Client) -> Element {
    let q = ok(iq(
        c,
        "get",
        None,
        &format!("<query xmlns='{PRIVATE}'><storage xmlns='storage:bookmarks'/></query>"),
    ))
    .unwrap();
    q.child("storage", "storage:bookmarks").unwrap().clone()
}

/// `(jid, name, autojoin, nick)` of each XEP-0048 conference.
fn legacy_rooms(storage: &Element) -> Vec<(String, String, String, String)> {
    storage
        .elements()
        .filter(|e| e.is("conference", "storage:bookmarks"))
        .map(|e| {
            (
                e.attr("jid").unwrap_or("").to_owned(),
                e.attr("name").unwrap_or("").to_owned(),
                e.attr("autojoin").unwrap_or("").to_owned(),
                e.child("nick", "storage:bookmarks")
                    .map(|n| n.text())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn bookmarks_are_the_same_through_xep_0402_and_xep_0048() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    let features = ok(iq(
        &mut mom,
        "get",
        None,
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    ))
    .unwrap();
    assert!(features
        .elements()
        .any(|f| f.attr("var") == Some("urn:xmpp:bookmarks:1#compat")));
    // A second resource of mom's asks for bookmark notifications.
    let mut phone = online(&s, "mom", "phone", &ClientCaps::new(&[BOOKMARKS]));

    // XEP-0402 write, with the publish-options the XEP asks for.
    let options = [
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
        ("pubsub#send_last_published_item", "never"),
        ("pubsub#access_model", "whitelist"),
    ];
    let conf = format!("<conference xmlns='{BOOKMARKS}' name='Family' autojoin='true'><nick>Mom</nick></conference>");
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(BOOKMARKS, Some("family@muc.localhost"), &conf, &options),
    ));
    wait_event(&mut phone.c, "mom@localhost", BOOKMARKS);
    // … read through XEP-0048.
    let storage = private_get(&mut mom);
    assert_eq!(
        legacy_rooms(&storage),
        [(
            "family@muc.localhost".into(),
            "Family".into(),
            "true".into(),
            "Mom".into()
        )]
    );

    // XEP-0048 write: one room changed, one added, and a URL bookmark.
    let legacy = format!(
        "<query xmlns='{PRIVATE}'><storage xmlns='storage:bookmarks'>\
         <conference jid='family@muc.localhost' name='Family' autojoin='false'><nick>Mother</nick></conference>\
         <conference jid='chess@muc.localhost' name='Chess' autojoin='true'/>\
         <url name='Recipes' url='https://recipes.example/'/></storage></query>"
    );
    ok(iq(&mut mom, "set", None, &legacy));
    // … read through XEP-0402, with notifications for both changes.
    let got = result_items(iq(&mut mom, "get", None, &items_request(BOOKMARKS, "", "")));
    let mut rooms: Vec<(String, String, Option<String>)> = got
        .iter()
        .map(|(id, c)| {
            assert!(c.is("conference", BOOKMARKS));
            (
                id.clone(),
                c.attr("autojoin").unwrap_or("").to_owned(),
                c.child("nick", BOOKMARKS).map(|n| n.text()),
            )
        })
        .collect();
    rooms.sort();
    assert_eq!(
        rooms,
        [
            ("chess@muc.localhost".into(), "true".into(), None),
            (
                "family@muc.localhost".into(),
                "false".into(),
                Some("Mother".into())
            ),
        ]
    );
    let mut notified = Vec::new();
    for _ in 0..2 {
        let e = wait_event(&mut phone.c, "mom@localhost", BOOKMARKS);
        notified.extend(
            items_of(e.child("event", EVENT).unwrap())
                .into_iter()
                .map(|(_, id, _)| id),
        );
    }
    notified.sort();
    assert_eq!(notified, ["chess@muc.localhost", "family@muc.localhost"]);

    // A XEP-0402 retract shows in XEP-0048, which keeps the URL.
    let retract = format!("<pubsub xmlns='{PUBSUB}'><retract node='{BOOKMARKS}' notify='1'><item id='chess@muc.localhost'/></retract></pubsub>");
    ok(iq(&mut mom, "set", None, &retract));
    let storage = private_get(&mut mom);
    assert_eq!(
        legacy_rooms(&storage),
        [(
            "family@muc.localhost".into(),
            "Family".into(),
            "false".into(),
            "Mother".into()
        )]
    );
    assert!(
        storage.child("url", "storage:bookmarks").is_some(),
        "{storage}"
    );
    // A XEP-0048 removal is a XEP-0402 retraction, notified.
    ok(iq(
        &mut mom,
        "set",
        None,
        &format!("<query xmlns='{PRIVATE}'><storage xmlns='storage:bookmarks'/></query>"),
    ));
    let e = phone.c.wait_for("the retraction", |e| {
        event_from(e, "mom@localhost").is_some_and(|ev| {
            ev.child("items", EVENT)
                .and_then(|i| i.child("retract", EVENT))
                .and_then(|r| r.attr("id"))
                == Some("family@muc.localhost")
        })
    });
    drop(e);
    assert!(result_items(iq(&mut mom, "get", None, &items_request(BOOKMARKS, "", ""))).is_empty());
    // Bookmarks are private.
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    let r = iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &items_request(BOOKMARKS, "", ""),
    );
    assert_eq!(err(&r), ("not-allowed".into(), Some("closed-node".into())));
}

#[test]
fn bookmarks_stored_by_xep_0048_alone_are_found_through_xep_0402() {
    let s = family();
    // Written before the server knew XEP-0402: straight into private storage.
    {
        let conn = roost::storage::open_connection(s.dir.path()).unwrap();
        let mut conn = conn;
        let entry = roost::storage::private::Entry {
            name: "storage".into(),
            ns: "storage:bookmarks".into(),
            xml: "<storage xmlns='storage:bookmarks'><conference jid='old@muc.localhost' autojoin='true'/></storage>".into(),
        };
        assert!(
            roost::storage::private::set(&mut conn, "localhost", "dad", &[entry], 1 << 20).unwrap()
        );
    }
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    let got = result_items(iq(&mut dad, "get", None, &items_request(BOOKMARKS, "", "")));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "old@muc.localhost");
    assert_eq!(got[0].1.attr("autojoin"), Some("true"));
}

// ------------------------------------------------------------------ avatars

/// A tiny "image" and its XEP-0084 id (SHA-1, hex).
fn image() -> (Vec<u8>, String) {
    let bytes = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    let id = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (bytes, id)
}

fn publish_avatar(c: &mut Client, bytes: &[u8], id: &str) {
    let data = format!("<data xmlns='{AVATAR_DATA}'>{}</data>", b64(bytes));
    ok(iq(
        c,
        "set",
        None,
        &publish(AVATAR_DATA, Some(id), &data, &[]),
    ));
    let meta = format!(
        "<metadata xmlns='{AVATAR_METADATA}'><info id='{id}' bytes='{}' type='image/png'/>\
         <info id='{id}' bytes='1' type='image/png' url='https://elsewhere.example/a.png'/></metadata>",
        bytes.len()
    );
    ok(iq(
        c,
        "set",
        None,
        &publish(AVATAR_METADATA, Some(id), &meta, &[]),
    ));
}

#[test]
fn a_pep_avatar_is_the_vcard_photo_for_those_who_may_see_it() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    let features = ok(iq(
        &mut mom,
        "get",
        None,
        &format!("<query xmlns='{DISCO_INFO}'/>"),
    ))
    .unwrap();
    assert!(features
        .elements()
        .any(|f| f.attr("var") == Some("urn:xmpp:pep-vcard-conversion:0")));
    ok(iq(&mut mom, "set", None, &format!("<vCard xmlns='{VCARD}'><FN>Mom</FN><PHOTO><TYPE>image/gif</TYPE><BINVAL>R0lG</BINVAL></PHOTO></vCard>")));
    let (bytes, id) = image();
    publish_avatar(&mut mom, &bytes, &id);

    let mut dad = Client::login(&s, "dad", "pw", "pc");
    let v = ok(iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &format!("<vCard xmlns='{VCARD}'/>"),
    ))
    .unwrap();
    assert_eq!(v.child("FN", VCARD).unwrap().text(), "Mom");
    let photos: Vec<&Element> = v.elements().filter(|e| e.is("PHOTO", VCARD)).collect();
    assert_eq!(
        photos.len(),
        1,
        "the PEP avatar replaces the vCard's photo: {v}"
    );
    assert_eq!(photos[0].child("TYPE", VCARD).unwrap().text(), "image/png");
    assert_eq!(
        unb64(&photos[0].child("BINVAL", VCARD).unwrap().text()),
        bytes
    );
    // eve may not see mom's avatar (presence access): she gets the stored vCard.
    let mut eve = Client::login(&s, "eve", "pw", "pc");
    let v = ok(iq(
        &mut eve,
        "get",
        Some("mom@localhost"),
        &format!("<vCard xmlns='{VCARD}'/>"),
    ))
    .unwrap();
    assert_eq!(
        v.child("PHOTO", VCARD)
            .unwrap()
            .child("TYPE", VCARD)
            .unwrap()
            .text(),
        "image/gif"
    );
    // Data that does not hash to the id is not shown.
    let data = format!("<data xmlns='{AVATAR_DATA}'>{}</data>", b64(b"other bytes"));
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(AVATAR_DATA, Some(id.as_str()), &data, &[]),
    ));
    let v = ok(iq(
        &mut dad,
        "get",
        Some("mom@localhost"),
        &format!("<vCard xmlns='{VCARD}'/>"),
    ))
    .unwrap();
    assert_eq!(
        v.child("PHOTO", VCARD)
            .unwrap()
            .child("TYPE", VCARD)
            .unwrap()
            .text(),
        "image/gif"
    );
    // An account with no vCard at all gets one with the photo.
    let mut kid = Client::login(&s, "kid", "pw", "pc");
    publish_avatar(&mut kid, &bytes, &id);
    let v = ok(iq(
        &mut kid,
        "get",
        None,
        &format!("<vCard xmlns='{VCARD}'/>"),
    ))
    .unwrap();
    assert!(v.child("PHOTO", VCARD).is_some(), "{v}");
}

#[test]
fn the_avatar_hash_is_added_to_available_presence() {
    let s = family();
    let (bytes, id) = image();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    publish_avatar(&mut mom, &bytes, &id);
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send("<presence/>");
    dad.drain(QUIET);

    let photo_of = |p: &Element| -> Option<String> {
        p.elements()
            .find(|x| x.is("x", VCARD_UPDATE))
            .and_then(|x| x.child("photo", VCARD_UPDATE))
            .map(|p| p.text())
    };
    let from_mom =
        |e: &Element| e.name == "presence" && e.attr("from") == Some("mom@localhost/laptop");
    // No <x/>: added. An <x/> without <photo/>: filled (XEP-0398 §4).
    for sent in [
        "<presence/>",
        "<presence><x xmlns='vcard-temp:x:update'/></presence>",
    ] {
        mom.send(sent);
        let p = dad.wait_for("mom's presence", from_mom);
        assert_eq!(photo_of(&p).as_deref(), Some(id.as_str()), "{sent}: {p}");
        let xs = p.elements().filter(|x| x.is("x", VCARD_UPDATE)).count();
        assert_eq!(xs, 1, "{p}");
    }
    // A client's own photo element, empty or not, is kept.
    for (sent, want) in [
        (
            "<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>",
            "",
        ),
        (
            "<presence><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></presence>",
            "abc",
        ),
    ] {
        mom.send(sent);
        let p = dad.wait_for("mom's presence", from_mom);
        assert_eq!(photo_of(&p).as_deref(), Some(want), "{sent}: {p}");
    }
    // Probes see the hash too: a new resource of dad's gets mom's presence with it.
    let mut dad2 = Client::login(&s, "dad", "pw", "tablet");
    mom.send("<presence/>");
    dad.wait_for("mom's presence", from_mom);
    dad2.send("<presence/>");
    let p = dad2.wait_for("mom's presence", from_mom);
    assert_eq!(photo_of(&p).as_deref(), Some(id.as_str()));
    // An empty metadata (avatar disabled, XEP-0084 §4.6) is an empty photo.
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            AVATAR_METADATA,
            Some("none"),
            &format!("<metadata xmlns='{AVATAR_METADATA}'/>"),
            &[],
        ),
    ));
    mom.send("<presence/>");
    let p = dad.wait_for("mom's presence", from_mom);
    assert_eq!(photo_of(&p).as_deref(), Some(""));
    // kid never published an avatar: nothing is added.
    let mut kid = Client::login(&s, "kid", "pw", "pc");
    kid.send("<presence/>");
    let p = kid.wait_for("own presence", |e| {
        e.name == "presence" && e.attr("from") == Some("kid@localhost/pc")
    });
    assert_eq!(photo_of(&p), None, "{p}");
}

// ------------------------------------------------------------------ limits and errors

#[test]
fn limits_and_malformed_requests() {
    let s = family();
    let mut mom = Client::login(&s, "mom", "pw", "laptop");
    // An item over the payload limit.
    let big = format!(
        "<data xmlns='{AVATAR_DATA}'>{}</data>",
        "A".repeat(roost::modules::pep::MAX_PAYLOAD)
    );
    let r = iq(
        &mut mom,
        "set",
        None,
        &publish(AVATAR_DATA, Some("big"), &big, &[]),
    );
    assert_eq!(
        err(&r),
        ("not-acceptable".into(), Some("payload-too-big".into()))
    );
    // Malformed publishes.
    let r = iq(
        &mut mom,
        "set",
        None,
        &format!("<pubsub xmlns='{PUBSUB}'><publish node='{NICK}'/></pubsub>"),
    );
    assert_eq!(
        err(&r),
        ("bad-request".into(), Some("item-required".into()))
    );
    let r = iq(
        &mut mom,
        "set",
        None,
        &format!(
            "<pubsub xmlns='{PUBSUB}'><publish><item><x xmlns='u'/></item></publish></pubsub>"
        ),
    );
    assert_eq!(
        err(&r),
        ("bad-request".into(), Some("nodeid-required".into()))
    );
    // Items per node are capped even with max_items=max.
    let many = [("pubsub#max_items", "max")];
    for i in 0..roost::modules::pep::MAX_ITEMS + 3 {
        ok(iq(
            &mut mom,
            "set",
            None,
            &publish(
                "urn:example:log",
                Some(i.to_string().as_str()),
                "<x xmlns='urn:example:log'/>",
                &many,
            ),
        ));
    }
    let got = result_items(iq(
        &mut mom,
        "get",
        None,
        &items_request("urn:example:log", "", ""),
    ));
    assert_eq!(got.len(), roost::modules::pep::MAX_ITEMS as usize);
    assert_eq!(got[0].0, "3", "the oldest went first");
    // Nodes per account are capped.
    for i in 1..roost::modules::pep::MAX_NODES {
        ok(iq(
            &mut mom,
            "set",
            None,
            &publish(
                &format!("urn:example:n{i}"),
                Some("1"),
                "<x xmlns='urn:example:n'/>",
                &[],
            ),
        ));
    }
    let r = iq(
        &mut mom,
        "set",
        None,
        &publish(
            "urn:example:one-too-many",
            Some("1"),
            "<x xmlns='urn:example:n'/>",
            &[],
        ),
    );
    assert_eq!(
        err(&r),
        ("policy-violation".into(), Some("max-nodes-exceeded".into()))
    );
    // Publishing to an existing node still works at the cap.
    ok(iq(
        &mut mom,
        "set",
        None,
        &publish(
            "urn:example:n1",
            Some("2"),
            "<x xmlns='urn:example:n'/>",
            &[],
        ),
    ));
    // PEP lives on accounts, not on the server.
    let r = iq(
        &mut mom,
        "get",
        Some("localhost"),
        &items_request(NICK, "", ""),
    );
    assert_eq!(err(&r).0, "service-unavailable");
    // Nor on accounts that do not exist.
    let r = iq(
        &mut mom,
        "get",
        Some("nobody@localhost"),
        &items_request(NICK, "", ""),
    );
    assert_eq!(err(&r).0, "service-unavailable");
}

#[test]
fn deleting_an_account_deletes_its_nodes() {
    let s = family();
    let mut eve = Client::login(&s, "eve", "pw", "pc");
    ok(iq(
        &mut eve,
        "set",
        None,
        &publish(
            DEVICELIST,
            Some("current"),
            "<list xmlns='eu.siacs.conversations.axolotl'/>",
            &[("pubsub#access_model", "open")],
        ),
    ));
    eve.close();
    {
        let mut conn = roost::storage::open_connection(s.dir.path()).unwrap();
        roost::storage::accounts::delete(&mut conn, "localhost", "eve").unwrap();
        assert_eq!(
            roost::storage::pep::nodes(&conn, "localhost", "eve").unwrap(),
            vec![]
        );
    }
    s.add_user("eve", "pw");
    let mut mom = Client::login(&s, "mom", "pw", "pc");
    let r = iq(
        &mut mom,
        "get",
        Some("eve@localhost"),
        &items_request(DEVICELIST, "", ""),
    );
    assert_eq!(err(&r).0, "item-not-found");
}
