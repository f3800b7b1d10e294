//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`, over real HTTPS sockets: the
//! handshake and its refusals, the framing rules, the same session as over TCP (SASL,
//! bind, chat with a TCP client, carbons, CSI), stream errors, the closing handshake, ping
//! frames, and XEP-0198 resumption of a WebSocket session (on a WebSocket and on TCP).

mod common;

use common::http::HttpClient;
use common::*;
use roost::sasl::Mechanism;
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

/// A WebSocket client logged in as `user` with `resource`.
fn ws_login(s: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = Client::websocket(s);
    let f = c.open();
    // RFC 7395 §3.3: TLS is the HTTP connection's; no STARTTLS inside.
    assert!(f.child("starttls", NS_TLS).is_none(), "{f}");
    c.scram(Mechanism::ScramSha256, user, "pw", None)
        .expect("login");
    c.bind(Some(resource));
    c
}

fn chat(to: &str, id: &str) -> String {
    format!("<message xmlns='jabber:client' type='chat' to='{to}' id='{id}'><body>{id}</body></message>")
}

fn message_ids(els: &[Element]) -> Vec<String> {
    els.iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.attr("id").map(str::to_owned))
        .collect()
}

#[test]
fn a_websocket_session_chats_with_a_tcp_one_and_closes_cleanly() {
    let s = server();
    let mut mom = Client::websocket(&s);
    let f = mom.open();
    let header = mom.header.clone().expect("the server's <open/>");
    assert_eq!(header.from.as_deref(), Some("localhost"));
    assert_eq!(header.version.as_deref(), Some("1.0"));
    assert!(header.id.is_some_and(|id| id.len() >= 16));
    // Secure: PLAIN is offered; there is no TLS channel binding to offer over HTTP.
    let mechs: Vec<String> = f
        .child("mechanisms", NS_SASL)
        .expect("mechanisms")
        .elements()
        .map(|m| m.text())
        .collect();
    assert!(mechs.contains(&"PLAIN".to_owned()), "{mechs:?}");
    assert!(!mechs.iter().any(|m| m.ends_with("-PLUS")), "{mechs:?}");
    mom.scram(Mechanism::ScramSha256, "mom", "pw", None)
        .expect("login");
    let jid = mom.bind(Some("browser"));
    assert_eq!(jid, "mom@localhost/browser");

    let mut dad = Client::login(&s, "dad", "pw", "pc");
    mom.send(&chat("dad@localhost/pc", "from-the-web"));
    let m = dad.wait_for("mom's message", |e| e.name == "message");
    assert_eq!(m.attr("from"), Some("mom@localhost/browser"));
    assert_eq!(m.attr("id"), Some("from-the-web"));
    dad.send(
        "<message type='chat' to='mom@localhost/browser' id='answer'><body>hi</body></message>",
    );
    let m = mom.wait_for("dad's answer", |e| e.name == "message");
    assert_eq!(m.attr("id"), Some("answer"));
    assert_eq!(m.ns, "jabber:client");

    // An IQ to the server, a stanza without xmlns (taken as jabber:client).
    let r = mom.iq("<iq type='get' id='v1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");

    // RFC 7395 §3.6: <close/> is answered with <close/>, then the WebSocket closes.
    mom.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    let mut closed = false;
    for _ in 0..20 {
        match mom.next() {
            Got::Close => {
                closed = true;
                break;
            }
            Got::Element(e) if e.name == "presence" => continue,
            other => panic!("expected <close/>, got {other:?}"),
        }
    }
    assert!(closed);
    assert_eq!(mom.next(), Got::Eof);
    assert_eq!(mom.ws_close_code(), Some(1000));
    // Dad sees her go.
    dad.send("<presence/>");
    dad.drain(QUIET);
}

#[test]
fn the_handshake_requires_the_xmpp_subprotocol() {
    let s = server();
    let mut h = HttpClient::https(&s);
    let base = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let r = h.request("GET", "/xmpp-websocket", &base, b"");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("xmpp"), "{}", r.text());
    let mut chat = base.to_vec();
    chat.push(("Sec-WebSocket-Protocol", "chat"));
    let r = h.request("GET", "/xmpp-websocket", &chat, b"");
    assert_eq!(r.status, 400);
    // A plain GET (a browser opening the URL) is told what the endpoint is.
    let r = h.request("GET", "/xmpp-websocket", &[], b"");
    assert_eq!(r.status, 426);
    let mut old = base.to_vec();
    old[3] = ("Sec-WebSocket-Version", "8");
    old.push(("Sec-WebSocket-Protocol", "xmpp"));
    let r = h.request("GET", "/xmpp-websocket", &old, b"");
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));

    // Turned off: not found, and host-meta no longer names it.
    let off = TestServer::start_with(|c| c.http.websocket = false);
    let mut h = HttpClient::https(&off);
    let mut good = base.to_vec();
    good.push(("Sec-WebSocket-Protocol", "xmpp"));
    assert_eq!(h.request("GET", "/xmpp-websocket", &good, b"").status, 404);
    let meta = h.request("GET", "/.well-known/host-meta", &[], b"");
    assert_eq!(meta.status, 200);
    assert!(!meta.text().contains("websocket"), "{}", meta.text());
    let meta = HttpClient::https(&s).request("GET", "/.well-known/host-meta.json", &[], b"");
    assert!(meta.text().contains("/xmpp-websocket"), "{}", meta.text());
}

#[test]
fn framing_rules_and_stream_errors() {
    let s = server();
    // Two elements in one message: not-well-formed, then <close/>, then the socket.
    let mut c = Client::websocket(&s);
    c.open();
    c.send("<presence/><presence/>");
    assert_eq!(c.expect_stream_error(), "not-well-formed");
    assert!(c.is_closed());

    // Half an element.
    let mut c = Client::websocket(&s);
    c.open();
    c.send("<iq type='get' id='1'>");
    assert_eq!(c.expect_stream_error(), "not-well-formed");

    // A stanza before <open/>: the server opens first, then the error (RFC 7395 §3.3.3).
    let mut c = Client::websocket(&s);
    c.send("<message xmlns='jabber:client'/>");
    assert!(matches!(c.next(), Got::Header(_)));
    assert_eq!(c.expect_stream_error(), "not-well-formed");

    // <open/> to another domain.
    let mut c = Client::websocket(&s);
    c.send(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='elsewhere.example' version='1.0'/>",
    );
    assert_eq!(c.expect_stream_error(), "host-unknown");

    // A binary message: XMPP is text (RFC 7395 §3.2); close code 1003.
    let mut c = Client::websocket(&s);
    c.open();
    c.send_ws_frame(0x82, b"<presence/>");
    assert_eq!(c.expect_stream_error(), "bad-format");
    assert!(c.is_closed());
    assert_eq!(c.ws_close_code(), Some(1003));

    // The stanza size limit holds, checked before the whole message is buffered.
    let small = TestServer::start_with(|c| c.limits.max_stanza = 4096);
    small.add_user("mom", "pw");
    let mut c = Client::websocket(&small);
    c.open();
    let big = format!("<message><body>{}</body></message>", "x".repeat(10_000));
    c.send(&big);
    assert_eq!(c.expect_stream_error(), "policy-violation");
    // The depth limit too.
    let mut c = Client::websocket(&small);
    c.open();
    c.send(&format!("{}{}", "<a>".repeat(40), "</a>".repeat(40)));
    assert_eq!(c.expect_stream_error(), "policy-violation");

    // An unmasked client frame breaks RFC 6455 §5.1.
    let mut c = Client::websocket(&s);
    c.open();
    c.send_bytes_lossy(&[0x81, 0x03, b'<', b'a', b'>']);
    assert_eq!(c.expect_stream_error(), "not-well-formed");
    assert!(c.is_closed());
    assert_eq!(c.ws_close_code(), Some(1002));

    // A message split over frames, with a ping between them: answered with a pong, and the
    // message is whole.
    let mut c = ws_login(&s, "mom", "frag");
    c.send_ws_frame(0x01, b"<iq type='get' id='f1' ");
    c.send_ws_frame(0x89, b"are you there");
    c.send_ws_frame(0x80, b"to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    let r = c.wait_for("the IQ's reply", |e| e.attr("id") == Some("f1"));
    assert_eq!(r.attr("type"), Some("result"));
}

#[test]
fn a_silent_websocket_client_gets_ping_frames_and_stays_by_answering_them() {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(300);
        c.ping_timeout = Duration::from_millis(600);
    });
    s.add_user("mom", "pw");
    let mut c = ws_login(&s, "mom", "idle");
    // Our client answers ping frames with pongs (in next_within): the session stays.
    c.drain(Duration::from_millis(1500));
    assert!(c.ws_pings() >= 2, "{} ping frames", c.ws_pings());
    c.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    c.wait_for("still served", |e| e.attr("id") == Some("alive"));
}

#[test]
fn carbons_and_csi_work_over_a_websocket() {
    let s = server();
    let mut web = ws_login(&s, "mom", "web");
    let mut phone = Client::login(&s, "mom", "pw", "phone");
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    web.announce("web", "<presence/>");
    phone.announce("phone", "<presence/>");
    web.drain(QUIET);
    for c in [&mut web, &mut phone] {
        let r = c.iq("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
        assert_eq!(r.attr("type"), Some("result"), "{r}");
    }
    phone.send(
        "<message type='chat' to='dad@localhost/pc' id='sent-from-phone'><body>x</body></message>",
    );
    dad.wait_for("the message", |e| e.name == "message");
    let copy = web.wait_for("the carbon copy", |e| e.name == "message");
    let sent = copy
        .child("sent", "urn:xmpp:carbons:2")
        .expect("a sent carbon");
    assert!(sent.to_string().contains("sent-from-phone"));

    // CSI: while inactive, presence waits; active again, it comes.
    web.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    std::thread::sleep(Duration::from_millis(100));
    phone.send("<presence><show>away</show></presence>");
    let held = web.drain(QUIET);
    assert!(
        !held.iter().any(|e| e.name == "presence"),
        "held back: {held:?}"
    );
    web.send("<active xmlns='urn:xmpp:csi:0'/>");
    web.wait_for("the held presence", |e| e.name == "presence");
}

/// Resumes a WebSocket session whose connection broke, on a new WebSocket and then on TCP:
/// the unacknowledged message and the one sent in the gap arrive exactly once.
#[test]
fn a_broken_websocket_session_is_resumed() {
    let s = server();
    let mut mom = ws_login(&s, "mom", "web");
    mom.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    let e = mom.wait_for("enabled", |e| e.is("enabled", SM));
    let id = e.attr("id").expect("resumption id").to_owned();
    let mut dad = Client::login(&s, "dad", "pw", "pc");
    dad.send(&chat("mom@localhost/web", "before1"));
    dad.send(&chat("mom@localhost/web", "before2"));
    assert_eq!(message_ids(&mom.drain(QUIET)), vec!["before1", "before2"]);
    mom.send("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    std::thread::sleep(Duration::from_millis(100));
    // The browser tab's network goes away: no <close/>, no close frame.
    drop(mom);
    std::thread::sleep(Duration::from_millis(200));
    dad.send(&chat("mom@localhost/web", "gap"));
    dad.assert_silent(QUIET);

    let mut mom = Client::websocket(&s);
    mom.open();
    mom.scram(Mechanism::ScramSha256, "mom", "pw", None)
        .expect("login");
    let f = mom.open();
    assert!(f.child("sm", SM).is_some(), "{f}");
    mom.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ));
    let r = mom.element();
    assert!(r.is("resumed", SM), "{r}");
    assert_eq!(r.attr("previd"), Some(id.as_str()));
    let got = mom.drain(QUIET);
    assert_eq!(
        message_ids(&got),
        vec!["before2", "gap"],
        "exactly once each"
    );
    // Every resent stanza came as a message of its own, in jabber:client.
    assert!(got.iter().all(|e| e.ns == "jabber:client" || e.ns == SM));
    mom.send(&chat("dad@localhost/pc", "hello-again"));
    let m = dad.wait_for("from the resumed session", |e| {
        e.attr("id") == Some("hello-again")
    });
    assert_eq!(m.attr("from"), Some("mom@localhost/web"));

    // Broken again; this time the phone app resumes it over TCP.
    mom.send("<a xmlns='urn:xmpp:sm:3' h='3'/>");
    std::thread::sleep(Duration::from_millis(100));
    drop(mom);
    std::thread::sleep(Duration::from_millis(200));
    dad.send(&chat("mom@localhost/web", "gap2"));
    let (mut tcp, _) = Client::authenticated(&s, "mom", "pw");
    tcp.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='3'/>"
    ));
    let r = tcp.element();
    assert!(r.is("resumed", SM), "{r}");
    assert_eq!(message_ids(&tcp.drain(QUIET)), vec!["gap2"]);
}
