//! The routing core through its public API, with test doubles: a hosted service (an echo
//! service on `echo.localhost`, registered the way group chats and upload will be) and a
//! remote domain whose outgoing stanzas are captured and which injects stanzas as its own
//! origin (the way federation will).

mod common;

use common::*;
use roost::router::{self, Core, Origin, Remote, Service};
use roost::xml::Element;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(300);
const ECHO: &str = "echo.localhost";
const FAR: &str = "faraway.example";

fn parse(xml: &str) -> Element {
    roost::xml::parse::parse_element(&roost::xml::parse::Scope::client(), xml.as_bytes())
        .expect("test stanza parses")
}

/// Answers every stanza from its own address: messages and presence come back to the
/// sender (a message whose body is "to my account" goes to the sender's bare JID, through
/// the account's routing), IQ gets are answered with their payload.
struct Echo;

impl Service for Echo {
    fn receive(&self, core: &Arc<Core>, stanza: Element) {
        let (Some(from), Some(to)) = (stanza.attr("from"), stanza.attr("to")) else {
            return;
        };
        let mut reply = Element::new(&stanza.name, roost::ns::CLIENT)
            .with_attr("from", to)
            .with_attr("to", from);
        match stanza.name.as_str() {
            "message" => {
                let body = stanza
                    .child("body", roost::ns::CLIENT)
                    .map(|b| b.text())
                    .unwrap_or_default();
                if body == "to my account" {
                    let bare = from.split('/').next().unwrap_or(from).to_owned();
                    reply.set_attr("to", bare);
                }
                reply.set_attr("type", "chat");
                reply.push(
                    Element::new("body", roost::ns::CLIENT).with_text(format!("echo: {body}")),
                );
            }
            "presence" => {
                if let Some(t) = stanza.attr("type") {
                    reply.set_attr("type", t);
                }
            }
            "iq" => {
                if stanza.attr("type") != Some("get") {
                    return;
                }
                reply.set_attr("type", "result");
                reply.set_attr("id", stanza.attr("id").unwrap_or(""));
                if let Some(p) = stanza.first_element() {
                    reply.push(p.clone());
                }
            }
            _ => return,
        }
        router::send_to(core, reply);
    }
}

/// A remote domain: what the server sends it is kept, in order.
#[derive(Default)]
struct Captured(Mutex<Vec<(String, Element)>>);

impl Remote for Captured {
    fn send(&self, _core: &Arc<Core>, domain: &str, stanza: Element) {
        self.0.lock().unwrap().push((domain.to_owned(), stanza));
    }
}

impl Captured {
    /// Waits (at most 5 s) for a captured stanza that satisfies `want`, and removes it.
    fn wait_for(&self, what: &str, want: impl Fn(&Element) -> bool) -> (String, Element) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            {
                let mut got = self.0.lock().unwrap();
                if let Some(i) = got.iter().position(|(_, e)| want(e)) {
                    return got.remove(i);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "the remote domain never got {what}: {:?}",
            self.0.lock().unwrap()
        );
    }
}

/// Injects `xml` as a stanza from the remote domain `FAR`.
fn inject(core: &Arc<Core>, xml: &str) -> Result<(), String> {
    let mut replies = Vec::new();
    smol::block_on(router::process(
        core,
        &Origin::Remote(FAR.into()),
        parse(xml),
        &mut replies,
    ))
    .map(drop)
    .map_err(|e| e.to_string())
}

fn online(s: &TestServer, user: &str, res: &str) -> Client {
    let mut c = Client::login(s, user, "pw", res);
    c.roster_get();
    c.announce(res, "<presence/>");
    c
}

fn from_is(from: &'static str) -> impl Fn(&Element) -> bool {
    move |e: &Element| e.attr("from") == Some(from)
}

#[test]
fn a_client_talks_to_a_hosted_service() {
    let s = TestServer::start();
    s.add_user("mom", "pw");
    s.core().add_service(ECHO, Arc::new(Echo));
    let mut mom = online(&s, "mom", "phone");

    // The server lists its hosted services (XEP-0030 disco#items).
    let items = mom.iq("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    let q = items
        .child("query", "http://jabber.org/protocol/disco#items")
        .expect("query");
    assert!(q.elements().any(|i| i.attr("jid") == Some(ECHO)), "{items}");

    // A message to the service comes back from it, `from` stamped on the way in.
    mom.send("<message to='echo.localhost' id='m1' type='chat'><body>hi</body></message>");
    let m = mom.wait_for("the echo", from_is(ECHO));
    assert_eq!(m.name, "message");
    assert_eq!(m.attr("to"), Some("mom@localhost/phone"));
    assert_eq!(
        m.child("body", roost::ns::CLIENT).unwrap().text(),
        "echo: hi"
    );

    // Presence to a JID at the service (a room-like address) comes back from it.
    mom.send("<presence to='room@echo.localhost/mom'/>");
    let p = mom.wait_for("the presence echo", from_is("room@echo.localhost/mom"));
    assert_eq!(p.name, "presence");
    assert_eq!(p.attr("type"), None);

    // An IQ get is answered by the service.
    let r = mom.iq("<iq type='get' id='i1' to='echo.localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    assert_eq!(r.attr("from"), Some(ECHO));
    assert!(r.child("ping", "urn:xmpp:ping").is_some());

    // A service's message to an account's bare JID goes through the account's routing
    // (RFC 6121 §8.5.2): here, to the one available resource.
    mom.send("<message to='echo.localhost' type='chat'><body>to my account</body></message>");
    let m = mom.wait_for("the echo to the account", from_is(ECHO));
    assert_eq!(m.attr("to"), Some("mom@localhost"));

    // A subdomain with no service is another domain: without federation, an error.
    let r =
        mom.iq("<iq type='get' id='i2' to='nothing.localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("error"), "{r}");
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("remote-server-not-found"),
        "{r}"
    );
}

#[test]
fn a_remote_contact_is_reached_through_the_same_exit() {
    let s = TestServer::start();
    s.add_user("mom", "pw");
    let far = Arc::new(Captured::default());
    s.core().set_remote(far.clone());
    let core = s.core().clone();
    let mut mom = online(&s, "mom", "phone");

    // Mom asks grandma (on another server) for a subscription: the request leaves with
    // the bare JIDs (RFC 6121 §3.1.2).
    mom.send("<presence to='grandma@faraway.example' type='subscribe'/>");
    let (domain, p) = far.wait_for("the subscription request", |e| {
        e.attr("type") == Some("subscribe")
    });
    assert_eq!(domain, FAR);
    assert_eq!(p.attr("from"), Some("mom@localhost"));
    assert_eq!(p.attr("to"), Some("grandma@faraway.example"));

    // Grandma approves: her server's stanza is routed to mom with its `from` kept.
    inject(
        &core,
        "<presence from='grandma@faraway.example' to='mom@localhost' type='subscribed'/>",
    )
    .unwrap();
    let got = mom.wait_for("the approval", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribed")
    });
    assert_eq!(got.attr("from"), Some("grandma@faraway.example"));

    // Grandma asks back; mom approves: now grandma is a subscriber.
    inject(
        &core,
        "<presence from='grandma@faraway.example' to='mom@localhost' type='subscribe'/>",
    )
    .unwrap();
    mom.wait_for("grandma's request", |e| {
        e.name == "presence" && e.attr("type") == Some("subscribe")
    });
    mom.send("<presence to='grandma@faraway.example' type='subscribed'/>");
    far.wait_for("the approval", |e| e.attr("type") == Some("subscribed"));

    // Mom's presence broadcast reaches the remote subscriber.
    mom.send("<presence><show>away</show></presence>");
    let (_, p) = far.wait_for("mom's presence", |e| {
        e.name == "presence" && e.child("show", roost::ns::CLIENT).is_some()
    });
    assert_eq!(p.attr("from"), Some("mom@localhost/phone"));
    assert_eq!(p.attr("to"), Some("grandma@faraway.example"));

    // A message to grandma leaves through the same exit.
    mom.send("<message to='grandma@faraway.example' id='m1' type='chat'><body>hello gran</body></message>");
    let (_, m) = far.wait_for("mom's message", |e| e.name == "message");
    assert_eq!(m.attr("from"), Some("mom@localhost/phone"));
    assert_eq!(
        m.child("body", roost::ns::CLIENT).unwrap().text(),
        "hello gran"
    );

    // A message from grandma reaches mom with its `from` kept.
    inject(&core, "<message from='grandma@faraway.example/tablet' to='mom@localhost' type='chat' id='g1'><body>hi dear</body></message>").unwrap();
    let m = mom.wait_for("grandma's message", |e| {
        e.name == "message" && e.attr("id") == Some("g1")
    });
    assert_eq!(m.attr("from"), Some("grandma@faraway.example/tablet"));

    // Going offline tells the remote subscriber too.
    mom.send("<presence type='unavailable'/>");
    far.wait_for("mom's unavailable", |e| {
        e.attr("type") == Some("unavailable")
    });
}

#[test]
fn a_remote_domain_cannot_speak_for_others() {
    let s = TestServer::start();
    s.add_user("mom", "pw");
    s.core().set_remote(Arc::new(Captured::default()));
    let core = s.core().clone();
    let mut mom = online(&s, "mom", "phone");
    // A `from` at another domain, or none, ends the remote stream (RFC 6120 §8.1.2.2, §4.9.3).
    let e = inject(
        &core,
        "<message from='someone@elsewhere.example' to='mom@localhost'><body>x</body></message>",
    )
    .unwrap_err();
    assert!(e.contains("invalid-from"), "{e}");
    let e = inject(
        &core,
        "<message to='mom@localhost'><body>x</body></message>",
    )
    .unwrap_err();
    assert!(e.contains("improper-addressing"), "{e}");
    // Nor may it relay to a third domain.
    let e = inject(
        &core,
        "<message from='gran@faraway.example' to='x@third.example'><body>x</body></message>",
    )
    .unwrap_err();
    assert!(e.contains("host-unknown"), "{e}");
    mom.assert_silent(QUIET);
}

#[test]
fn without_federation_a_remote_address_gets_an_error() {
    let s = TestServer::start();
    s.add_user("mom", "pw");
    let mut mom = online(&s, "mom", "phone");
    mom.send("<message to='grandma@faraway.example' id='m1' type='chat'><body>x</body></message>");
    let e = mom.wait_for("the bounce", |e| {
        e.name == "message" && e.attr("type") == Some("error")
    });
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found"),
        "{e}"
    );
    assert_eq!(e.attr("from"), Some("grandma@faraway.example"));
}

/// The server's disco#info query, as mom sees it.
fn server_info(s: &TestServer) -> Element {
    let mut mom = Client::login(s, "mom", "pw", "pc");
    let r = mom.iq("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    r.child("query", "http://jabber.org/protocol/disco#info")
        .expect("query")
        .clone()
}

/// XEP-0157 through the feature table: the addresses from the configuration are an
/// extended form in the server's disco#info, and part of its XEP-0115 hash.
#[test]
fn contact_addresses_are_in_the_servers_disco_info() {
    let s = TestServer::start_with(|c| {
        c.contact_admin = vec!["mailto:mom@example.org".into(), "xmpp:mom@localhost".into()];
        c.contact_abuse = vec!["mailto:abuse@example.org".into()];
    });
    s.add_user("mom", "pw");
    let q = server_info(&s);
    let form = q
        .elements()
        .find(|x| x.is("x", "jabber:x:data"))
        .expect("an extended form");
    assert_eq!(form.attr("type"), Some("result"));
    let values = |var: &str| -> Vec<String> {
        form.elements()
            .find(|f| f.attr("var") == Some(var))
            .map(|f| f.elements().map(|v| v.text()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        values("FORM_TYPE"),
        vec!["http://jabber.org/network/serverinfo"]
    );
    assert_eq!(
        values("admin-addresses"),
        vec!["mailto:mom@example.org", "xmpp:mom@localhost"]
    );
    assert_eq!(values("abuse-addresses"), vec!["mailto:abuse@example.org"]);

    // Without addresses there is no form.
    let plain = TestServer::start();
    plain.add_user("mom", "pw");
    let q = server_info(&plain);
    assert!(!q.elements().any(|x| x.is("x", "jabber:x:data")), "{q}");
}
