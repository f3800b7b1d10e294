//! XEP-0198 stream management (acks, resumption, expiry into offline storage) and XEP-0352
//! client state indication, over real sockets.

mod common;

use common::*;
use roost::xml::Element;
use std::time::Duration;

const SM: &str = "urn:xmpp:sm:3";
const QUIET: Duration = Duration::from_millis(300);

fn server() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad"] {
        s.add_user(u, "pw");
    }
    s
}

/// Logs in, enables stream management (with resumption), sends initial presence and
/// acknowledges what came back. Returns the resumption id and the stanzas handled.
fn sm_client(s: &TestServer, user: &str, res: &str) -> (Client, String, u32) {
    let mut c = Client::login(s, user, "pw", res);
    c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let e = c.wait_for("enabled", |e| e.is("enabled", SM));
    assert_eq!(e.attr("resume"), Some("true"));
    assert_eq!(e.attr("max"), Some("3600"));
    let id = e.attr("id").expect("resumption id").to_owned();
    c.send("<presence/>");
    let handled = stanzas(&c.drain(QUIET));
    c.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{handled}'/>"));
    (c, id, handled)
}

/// How many stanzas (not stream management nonzas) are in `els`.
fn stanzas(els: &[Element]) -> u32 {
    els.iter().filter(|e| e.ns == "jabber:client").count() as u32
}

fn chat(to: &str, id: &str) -> String {
    format!("<message type='chat' to='{to}' id='{id}'><body>{id}</body></message>")
}

fn message_ids(els: &[Element]) -> Vec<String> {
    els.iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect()
}

#[test]
fn features_acks_and_requests() {
    let s = server();
    let (_c, f) = Client::authenticated(&s, "mom", "pw");
    assert!(f.child("sm", SM).is_some(), "{f}");
    assert!(f.child("csi", "urn:xmpp:csi:0").is_some(), "{f}");

    // <enable/> before binding is refused.
    let (mut c, _) = Client::authenticated(&s, "mom", "pw");
    c.send("<enable xmlns='urn:xmpp:sm:3'/>");
    let e = c.element();
    assert!(e.is("failed", SM), "{e}");
    assert!(e.child("unexpected-request", NS_STANZAS).is_some());

    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<enable xmlns='urn:xmpp:sm:3'/>");
    let e = mom.element();
    assert!(e.is("enabled", SM));
    assert_eq!(e.attr("resume"), None);
    // Two stanzas handled, then <r/>: h counts them.
    mom.iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    mom.iq("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    mom.send("<r xmlns='urn:xmpp:sm:3'/>");
    let a = mom.wait_for("ack", |e| e.is("a", SM));
    assert_eq!(a.attr("h"), Some("2"));
    // The server asks for acks once stanzas pile up unacknowledged.
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    for i in 0..6 {
        dad.send(&chat("mom@localhost/phone", &format!("m{i}")));
    }
    let got = mom.drain(QUIET);
    assert!(got.iter().any(|e| e.is("r", SM)), "an ack request: {got:?}");
    assert_eq!(stanzas(&got), 6);
    mom.send("<a xmlns='urn:xmpp:sm:3' h='8'/>");
    mom.assert_silent(QUIET);
    // Acknowledging more than was sent is a stream error.
    mom.send("<a xmlns='urn:xmpp:sm:3' h='99'/>");
    assert_eq!(mom.expect_stream_error(), "undefined-condition");
}

/// Kills the TCP connection, resumes on a new one, and receives the message sent in the
/// gap exactly once, with the unacknowledged one resent.
fn resume_after_a_broken_connection(direct_tls_resume: bool) {
    let s = server();
    let (mut mom, id, handled) = sm_client(&s, "mom", "phone");
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send(&chat("mom@localhost/phone", "before1"));
    dad.send(&chat("mom@localhost/phone", "before2"));
    let got = mom.drain(QUIET);
    assert_eq!(message_ids(&got), vec!["before1", "before2"]);
    // Mom acknowledges only the first, then her network goes away.
    mom.send(&format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", handled + 1));
    std::thread::sleep(Duration::from_millis(100));
    drop(mom);
    std::thread::sleep(Duration::from_millis(200));
    dad.send(&chat("mom@localhost/phone", "gap"));
    dad.assert_silent(QUIET);

    let (mut mom, f) = if direct_tls_resume {
        Client::authenticated_tls(&s, "mom", "pw")
    } else {
        Client::authenticated(&s, "mom", "pw")
    };
    assert!(f.child("sm", SM).is_some());
    mom.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ));
    let r = mom.element();
    assert!(r.is("resumed", SM), "{r}");
    assert_eq!(r.attr("previd"), Some(id.as_str()));
    // We had sent her one message (she sent nothing but presence): h=1.
    assert_eq!(r.attr("h"), Some("1"));
    let got = mom.drain(QUIET);
    assert_eq!(
        message_ids(&got),
        vec!["before2", "gap"],
        "exactly once each"
    );
    // The session goes on under the same full JID.
    dad.send(&chat("mom@localhost/phone", "after"));
    assert_eq!(message_ids(&mom.drain(QUIET)), vec!["after"]);
    mom.send(&chat("dad@localhost/pc", "hello-again"));
    let m = dad.wait_for("from the resumed session", |e| {
        e.attr("id") == Some("hello-again")
    });
    assert_eq!(m.attr("from"), Some("mom@localhost/phone"));
}

#[test]
fn resumption_over_starttls() {
    resume_after_a_broken_connection(false);
}

#[test]
fn resumption_from_the_direct_tls_port() {
    resume_after_a_broken_connection(true);
}

#[test]
fn resumption_failures() {
    let s = server();
    let (_mom, id, _) = sm_client(&s, "mom", "phone");
    let (mut c, _) = Client::authenticated(&s, "mom", "pw");
    c.send("<resume xmlns='urn:xmpp:sm:3' previd='no-such-id' h='0'/>");
    let e = c.element();
    assert!(
        e.is("failed", SM) && e.child("item-not-found", NS_STANZAS).is_some(),
        "{e}"
    );
    // Someone else's session cannot be taken over.
    let (mut dad, _) = Client::authenticated(&s, "dad", "pw");
    dad.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ));
    let e = dad.element();
    assert!(e.is("failed", SM), "{e}");
    // After a failed resumption the client can still bind.
    let jid = dad.bind_here(Some("pc"));
    assert_eq!(jid, "dad@localhost/pc");
}

#[test]
fn a_still_open_old_connection_is_replaced_on_resume() {
    let s = server();
    let (mut old, id, handled) = sm_client(&s, "mom", "phone");
    let (mut new, _) = Client::authenticated(&s, "mom", "pw");
    new.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='{handled}'/>"
    ));
    assert!(new.element().is("resumed", SM));
    assert!(old.is_closed(), "the old connection is closed");
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send(&chat("mom@localhost/phone", "to-new"));
    // Everything was acknowledged: nothing is resent, the new message arrives.
    let got = new.drain(QUIET);
    assert_eq!(stanzas(&got), 1, "{got:?}");
    assert_eq!(message_ids(&got), vec!["to-new"]);
}

#[test]
fn an_expired_session_moves_its_unacknowledged_messages_offline() {
    let s = TestServer::start_with(|c| c.resume_timeout = Duration::from_millis(500));
    s.add_user("mom", "pw");
    s.add_user("dad", "pw");
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let e = mom.wait_for("enabled", |e| e.is("enabled", SM));
    assert_eq!(e.attr("max"), Some("0"));
    mom.send("<presence/>");
    mom.drain(QUIET);
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send(&chat("mom@localhost", "unacked"));
    assert_eq!(message_ids(&mom.drain(QUIET)), vec!["unacked"]);
    drop(mom); // never acknowledged
    std::thread::sleep(Duration::from_millis(400));
    dad.send(&chat("mom@localhost/phone", "in-the-gap"));
    // After the timeout the session ends and both messages wait offline.
    std::thread::sleep(Duration::from_millis(800));
    let mut mom = Client::login(&s, "mom", "pw", "tablet");
    mom.send("<presence/>");
    let got = mom.drain(Duration::from_millis(500));
    let msgs: Vec<&Element> = got.iter().filter(|e| e.name == "message").collect();
    assert_eq!(message_ids(&got), vec!["unacked", "in-the-gap"]);
    for m in msgs {
        assert!(m.child("delay", "urn:xmpp:delay").is_some(), "{m}");
    }
    dad.assert_silent(QUIET);
}

#[test]
fn client_state_indication_holds_back_presence_not_messages() {
    let s = server();
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<presence/>");
    mom.drain(QUIET);
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    mom.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    // Directed presence updates from dad: held back, only the latest kept.
    for show in ["away", "xa", "dnd"] {
        dad.send(&format!(
            "<presence to='mom@localhost/phone'><show>{show}</show></presence>"
        ));
    }
    dad.send("<message type='chat' to='mom@localhost/phone' id='typing'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    mom.assert_silent(QUIET);
    // A message with a body goes out at once.
    dad.send(&chat("mom@localhost/phone", "urgent"));
    assert_eq!(message_ids(&mom.drain(QUIET)), vec!["urgent"]);
    // Active again: the held presence (latest only) and chat state arrive.
    mom.send("<active xmlns='urn:xmpp:csi:0'/>");
    let got = mom.drain(QUIET);
    let shows: Vec<String> = got
        .iter()
        .filter(|e| e.name == "presence")
        .map(|e| e.child("show", "jabber:client").unwrap().text())
        .collect();
    assert_eq!(shows, vec!["dnd"]);
    assert_eq!(message_ids(&got), vec!["typing"]);
}

#[test]
fn a_client_that_never_acknowledges_is_closed_and_nothing_is_lost() {
    let s = TestServer::start_with(|c| c.sm_max_unacked = 3);
    s.add_user("mom", "pw");
    s.add_user("dad", "pw");
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    mom.wait_for("enabled", |e| e.is("enabled", SM));
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    for i in 0..5 {
        dad.send(&chat("mom@localhost/phone", &format!("n{i}")));
    }
    // Mom reads but never acknowledges: closed with policy-violation, not detached.
    assert_eq!(mom.wait_stream_error(), "policy-violation");
    // Every message waits offline for her next login.
    std::thread::sleep(Duration::from_millis(300));
    let mut mom = Client::login(&s, "mom", "pw", "tablet");
    mom.send("<presence/>");
    let mut ids = message_ids(&mom.drain(Duration::from_millis(500)));
    // All five, once each. (The order between the unacknowledged ones handed on at the
    // end and one that arrived meanwhile is not kept.)
    ids.sort();
    assert_eq!(ids, vec!["n0", "n1", "n2", "n3", "n4"]);
}

/// A burst goes out in batches (several stanzas per write): every stanza arrives, in order,
/// and each is counted for acknowledgement; pipelined requests get every reply.
#[test]
fn a_burst_arrives_in_order_and_every_stanza_is_counted() {
    let s = server();
    let mut mom = Client::login(&s, "mom", "pw", "phone");
    mom.send("<enable xmlns='urn:xmpp:sm:3'/>");
    mom.wait_for("enabled", |e| e.is("enabled", SM));
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    let burst: String = (0..300)
        .map(|i| chat("mom@localhost/phone", &format!("b{i}")))
        .collect();
    dad.send(&burst);
    let mut ids = Vec::new();
    while ids.len() < 300 {
        let got = mom.drain(QUIET);
        assert!(!got.is_empty(), "only {} of 300 arrived", ids.len());
        ids.extend(message_ids(&got));
    }
    let want: Vec<String> = (0..300).map(|i| format!("b{i}")).collect();
    assert_eq!(ids, want);
    // Exactly 300 stanzas were counted: acknowledging them is fine, one more is not.
    mom.send("<a xmlns='urn:xmpp:sm:3' h='300'/>");
    mom.assert_silent(QUIET);
    // Three pipelined pings in one write: three replies, in order.
    let pings: String = (0..3)
        .map(|i| {
            format!("<iq type='get' id='q{i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        })
        .collect();
    mom.send(&pings);
    let got = mom.drain(QUIET);
    let replies: Vec<&str> = got
        .iter()
        .filter(|e| e.name == "iq")
        .filter_map(|e| e.attr("id"))
        .collect();
    assert_eq!(replies, vec!["q0", "q1", "q2"]);
    mom.send("<a xmlns='urn:xmpp:sm:3' h='304'/>");
    assert_eq!(mom.expect_stream_error(), "undefined-condition");
}
