//! Push notifications (XEP-0357) to an app server, here a hosted service on
//! `push.localhost` standing in for the app vendor's (reached over federation in real
//! life): enable and disable, a notification for a message stored offline and for
//! messages arriving while a stream-management session hibernates, the summary form, the
//! body only when asked, calls marked important, the longer hibernation, and registrations
//! dropped after repeated errors.

mod common;

use common::*;
use roost::router::{self, Core, Service};
use roost::xml::Element;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP: &str = "push.localhost";
const SM: &str = "urn:xmpp:sm:3";
const QUIET: Duration = Duration::from_millis(300);

/// The app server: keeps what it gets and answers with a result (or an error).
#[derive(Default)]
struct AppServer {
    got: Mutex<Vec<Element>>,
    fail: Mutex<bool>,
}

impl Service for AppServer {
    fn receive(&self, core: &Arc<Core>, stanza: Element) {
        if stanza.name != "iq" || stanza.attr("type") != Some("set") {
            return;
        }
        let ty = if *self.fail.lock().unwrap() {
            "error"
        } else {
            "result"
        };
        let mut reply = Element::new("iq", roost::ns::CLIENT)
            .with_attr("type", ty)
            .with_attr("id", stanza.attr("id").unwrap_or(""))
            .with_attr("from", APP)
            .with_attr("to", stanza.attr("from").unwrap_or(""));
        if ty == "error" {
            reply.push(
                roost::stanza::StanzaError::new(roost::stanza::StanzaCondition::ItemNotFound)
                    .to_element(),
            );
        }
        self.got.lock().unwrap().push(stanza);
        router::send_to(core, reply);
    }
}

impl AppServer {
    /// Waits (at most `within`) for a notification; takes it.
    fn next(&self, within: Duration) -> Option<Element> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            {
                let mut got = self.got.lock().unwrap();
                if !got.is_empty() {
                    return Some(got.remove(0));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The `urn:xmpp:push:summary` fields of a notification.
fn field(n: &Element, var: &str) -> Option<String> {
    let s = n.to_string();
    let at = s.find(&format!("var='{var}'"))?;
    let rest = &s[at..];
    let v = rest.find("<value>")? + 7;
    let end = rest[v..].find("</value>")?;
    Some(rest[v..v + end].to_owned())
}

fn setup(tweak: impl FnOnce(&mut roost::Config)) -> (TestServer, Arc<AppServer>) {
    let s = TestServer::start_with(tweak);
    for u in ["mom", "dad"] {
        s.add_user(u, "pw");
    }
    let app = Arc::new(AppServer::default());
    s.core().add_service(APP, app.clone());
    (s, app)
}

fn enable(c: &mut Client, node: &str) {
    let r = c.iq(&format!(
        "<iq type='set' id='en-{node}'><enable xmlns='urn:xmpp:push:0' jid='{APP}' node='{node}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>s3cret</value></field></x></enable></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

#[test]
fn an_offline_message_is_notified_until_push_is_disabled() {
    let (s, app) = setup(|_| {});
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    let info =
        mom.iq("<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert!(info.to_string().contains("urn:xmpp:push:0"), "{info}");
    enable(&mut mom, "n1");
    // Bad requests.
    let r = mom
        .iq("<iq type='set' id='bad'><enable xmlns='urn:xmpp:push:0' jid='push.localhost'/></iq>");
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    mom.close();
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send(
        "<message type='chat' to='mom@localhost' id='m1'><body>dinner is ready</body></message>",
    );
    let n = app.next(Duration::from_secs(5)).expect("a notification");
    assert_eq!(n.attr("from"), Some("mom@localhost"));
    assert_eq!(n.attr("to"), Some(APP));
    let text = n.to_string();
    assert!(
        text.contains("node='n1'") && text.contains("urn:xmpp:push:summary"),
        "{n}"
    );
    assert_eq!(field(&n, "message-count").as_deref(), Some("1"));
    // Without --push-include-body: neither the text nor the sender.
    assert!(
        !text.contains("dinner") && !text.contains("dad@localhost"),
        "{n}"
    );
    // Important (a body), and the publish-options echoed.
    assert!(
        text.contains("tigase:push:priority:0") && text.contains("s3cret"),
        "{n}"
    );
    dad.send("<message type='chat' to='mom@localhost' id='m2'><body>hurry</body></message>");
    let n = app
        .next(Duration::from_secs(5))
        .expect("a second notification");
    assert_eq!(field(&n, "message-count").as_deref(), Some("2"));
    // Disabled: nothing more.
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    let r = mom.iq(&format!(
        "<iq type='set' id='dis'><disable xmlns='urn:xmpp:push:0' jid='{APP}'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    mom.close();
    dad.send("<message type='chat' to='mom@localhost' id='m3'><body>gone?</body></message>");
    assert!(app.next(Duration::from_millis(700)).is_none());
}

#[test]
fn the_body_is_sent_only_when_asked() {
    let (s, app) = setup(|c| c.push.as_mut().unwrap().include_body = true);
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    enable(&mut mom, "n1");
    mom.close();
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send("<message type='chat' to='mom@localhost'><body>dinner is ready</body></message>");
    let n = app.next(Duration::from_secs(5)).expect("a notification");
    assert_eq!(
        field(&n, "last-message-body").as_deref(),
        Some("dinner is ready")
    );
    assert_eq!(
        field(&n, "last-message-sender").as_deref(),
        Some("dad@localhost/pc")
    );
}

#[test]
fn a_hibernating_session_is_notified_and_hibernates_longer() {
    // Resumable for one second only without push; 30 s with it.
    let (s, app) = setup(|c| {
        c.resume_timeout = Duration::from_secs(1);
        c.push.as_mut().unwrap().hibernation = Duration::from_secs(30);
    });
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let e = mom.wait_for("enabled", |e| e.is("enabled", SM));
    let id = e.attr("id").unwrap().to_owned();
    enable(&mut mom, "n1");
    mom.send("<presence/>");
    mom.drain(QUIET);
    drop(mom);
    std::thread::sleep(Duration::from_millis(200));
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send("<message type='chat' to='mom@localhost/phone' id='h1'><body>one</body></message>");
    dad.send("<message type='chat' to='mom@localhost/phone' id='h2'><body>two</body></message>");
    // Gathered into one notification (within about a second).
    let n = app
        .next(Duration::from_secs(5))
        .expect("a notification for the hibernating session");
    let count: usize = field(&n, "message-count").unwrap().parse().unwrap();
    assert!(count >= 2, "{n}");
    // A call invitation is marked important.
    dad.send("<message to='mom@localhost/phone' id='call'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>");
    let n = app
        .next(Duration::from_secs(5))
        .expect("a notification for the call");
    assert!(n.to_string().contains("tigase:push:priority:0"), "{n}");
    // Three seconds later (three times the plain resumption time) it still resumes.
    std::thread::sleep(Duration::from_secs(3));
    let (mut mom, _) = Client::authenticated(&s, "mom", "pw");
    mom.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ));
    let r = mom.element();
    assert!(r.is("resumed", SM), "{r}");
    let ids: Vec<String> = mom
        .drain(QUIET)
        .iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect();
    assert_eq!(ids, ["h1", "h2", "call"]);
}

#[test]
fn an_app_server_that_keeps_failing_is_dropped() {
    let (s, app) = setup(|_| {});
    *app.fail.lock().unwrap() = true;
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    enable(&mut mom, "n1");
    mom.close();
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    for i in 0..3 {
        dad.send(&format!(
            "<message type='chat' to='mom@localhost'><body>m{i}</body></message>"
        ));
        app.next(Duration::from_secs(5)).expect("a notification");
    }
    std::thread::sleep(QUIET);
    dad.send("<message type='chat' to='mom@localhost'><body>more</body></message>");
    assert!(
        app.next(Duration::from_millis(700)).is_none(),
        "still notified after 3 errors"
    );
}

#[test]
fn push_can_be_turned_off() {
    let (s, _app) = setup(|c| c.push = None);
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    let r = mom.iq(&format!(
        "<iq type='set' id='e'><enable xmlns='urn:xmpp:push:0' jid='{APP}' node='n'/></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}
