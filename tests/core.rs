//! The core server over real sockets: streams, STARTTLS, direct TLS, SASL, binding, and the
//! stream errors of RFC 6120 §4.9 each triggered by its bad input.

mod common;

use common::*;
use roost::sasl::Mechanism;
use std::time::Duration;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
                      xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn server_with_mom() -> TestServer {
    let s = TestServer::start();
    s.add_user("mom", "correct horse");
    s
}

fn mechanisms(features: &roost::xml::Element) -> Vec<String> {
    features
        .child("mechanisms", NS_SASL)
        .map(|m| m.elements().map(|e| e.text()).collect())
        .unwrap_or_default()
}

#[test]
fn starttls_scram_sha256_bind() {
    let s = server_with_mom();
    let mut c = Client::connect(&s);
    let f = c.open();
    let starttls = f.child("starttls", NS_TLS).expect("starttls offered");
    assert!(starttls.child("required", NS_TLS).is_some());
    assert!(mechanisms(&f).is_empty(), "no SASL before TLS: {f}");
    let f = c.starttls();
    let mechs = mechanisms(&f);
    for m in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(mechs.iter().any(|x| x == m), "{m} offered: {mechs:?}");
    }
    assert!(f.child("starttls", NS_TLS).is_none());
    c.scram(Mechanism::ScramSha256, "mom", "correct horse", None)
        .unwrap();
    let jid = c.bind(Some("kitchen"));
    assert_eq!(jid, "mom@localhost/kitchen");
    // RFC 3921 session establishment: an empty result.
    c.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    let r = c.element();
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("id"), Some("s1"));
    assert!(r.first_element().is_none());
    c.close();
}

#[test]
fn direct_tls_scram_sha1_and_generated_resource() {
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    let f = c.open();
    assert!(f.child("starttls", NS_TLS).is_none());
    c.scram(Mechanism::ScramSha1, "mom", "correct horse", None)
        .unwrap();
    let jid = c.bind(None);
    assert!(jid.starts_with("mom@localhost/"), "{jid}");
    assert!(jid.len() > "mom@localhost/".len());
    c.close();
}

#[test]
fn scram_plus_with_both_channel_bindings() {
    let s = server_with_mom();
    for (mech, cb) in [
        (Mechanism::ScramSha1Plus, "tls-exporter"),
        (Mechanism::ScramSha1Plus, "tls-server-end-point"),
        (Mechanism::ScramSha256Plus, "tls-exporter"),
        (Mechanism::ScramSha256Plus, "tls-server-end-point"),
    ] {
        let mut c = Client::connect(&s);
        c.open();
        let f = c.starttls();
        let types: Vec<_> = f
            .child("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
            .expect("XEP-0440 advertisement")
            .elements()
            .filter_map(|e| e.attr("type").map(str::to_owned))
            .collect();
        assert!(types.iter().any(|t| t == cb), "{cb} advertised: {types:?}");
        c.scram(mech, "mom", "correct horse", Some(cb))
            .unwrap_or_else(|e| panic!("{} with {cb}: {e}", mech.name()));
        c.bind(Some("cb"));
        c.close();
    }
}

#[test]
fn scram_plus_rejects_wrong_binding_data() {
    // A SCRAM-PLUS client whose binding data differs from the server's (as behind a
    // man-in-the-middle) must fail even with the right password.
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    c.open();
    let mut client = roost::sasl::client::ScramClient::new(
        Mechanism::ScramSha256Plus,
        "mom",
        "correct horse",
        Some(("tls-exporter", vec![0u8; 32])),
    )
    .unwrap();
    let first = client.client_first();
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256-PLUS'>{}</auth>",
        b64(&first)
    ));
    let ch = c.element();
    assert!(ch.is("challenge", NS_SASL), "{ch}");
    let fin = client.handle_server_first(&unb64(&ch.text())).unwrap();
    c.send(&format!(
        "<response xmlns='{NS_SASL}'>{}</response>",
        b64(&fin)
    ));
    let e = c.element();
    assert!(e.is("failure", NS_SASL), "{e}");
}

#[test]
fn tls12_offers_only_server_end_point() {
    let s = server_with_mom();
    let mut c = Client::connect(&s);
    c.open();
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(c.element().is("proceed", NS_TLS));
    c.handshake_with(s.tls_config(&[&rustls::version::TLS12]));
    let f = c.open();
    let types: Vec<_> = f
        .child("sasl-channel-binding", "urn:xmpp:sasl-cb:0")
        .unwrap()
        .elements()
        .filter_map(|e| e.attr("type").map(str::to_owned))
        .collect();
    assert_eq!(types, vec!["tls-server-end-point".to_string()]);
    c.scram(
        Mechanism::ScramSha256Plus,
        "mom",
        "correct horse",
        Some("tls-server-end-point"),
    )
    .unwrap();
}

#[test]
fn wrong_password_and_unknown_user_are_not_authorized() {
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    c.open();
    assert_eq!(
        c.scram(Mechanism::ScramSha256, "mom", "wrong", None),
        Err("not-authorized".into())
    );
    assert_eq!(
        c.scram(Mechanism::ScramSha1, "nobody", "wrong", None),
        Err("not-authorized".into())
    );
    assert_eq!(c.plain("mom", "wrong"), Err("not-authorized".into()));
    // The stream is still usable: the right password works afterwards.
    c.scram(Mechanism::ScramSha256, "mom", "correct horse", None)
        .unwrap();
    c.bind(Some("after-failures"));
}

#[test]
fn plain_inside_tls_only() {
    let s = server_with_mom();
    let mut c = Client::connect(&s);
    c.open();
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
        b64(b"\0mom\0correct horse")
    ));
    let e = c.element();
    assert!(e.is("failure", NS_SASL), "{e}");
    assert_eq!(failure_condition(&e), "encryption-required");
    c.starttls();
    c.plain("mom", "correct horse").unwrap();
    c.bind(Some("plain"));
}

#[test]
fn insecure_allow_plaintext_permits_login_without_tls() {
    let s = TestServer::start_with(|c| c.insecure_allow_plaintext = true);
    s.add_user("dad", "pw");
    let mut c = Client::connect(&s);
    let f = c.open();
    let st = f.child("starttls", NS_TLS).expect("still offered");
    assert!(st.child("required", NS_TLS).is_none());
    assert!(mechanisms(&f).iter().any(|m| m == "PLAIN"));
    assert!(!mechanisms(&f).iter().any(|m| m.ends_with("-PLUS")));
    c.plain("dad", "pw").unwrap();
    c.bind(Some("bench"));
}

#[test]
fn sasl_failure_conditions() {
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    c.open();
    let cases = [
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'>=</auth>", "invalid-mechanism"),
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!notbase64</auth>", "incorrect-encoding"),
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>bm9wZQ==</auth>", "malformed-request"),
        ("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "aborted"),
    ];
    for (input, want) in cases {
        c.send(input);
        let e = c.element();
        assert!(e.is("failure", NS_SASL), "{input}: {e}");
        assert_eq!(failure_condition(&e), want, "{input}");
    }
    // An exchange aborted in the middle.
    c.send(&format!(
        "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{}</auth>",
        b64(b"n,,n=mom,r=abcdefghijklmnop")
    ));
    assert!(c.element().is("challenge", NS_SASL));
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_eq!(failure_condition(&c.element()), "aborted");
}

#[test]
fn stanza_before_authentication_is_not_authorized() {
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    c.open();
    c.send("<message to='mom@localhost'><body>hi</body></message>");
    assert_eq!(c.expect_stream_error(), "not-authorized");
}

/// Sends `header` (and then `after`) on a fresh plaintext connection; returns the error.
fn stream_error_for(s: &TestServer, header: &str, after: &str) -> String {
    let mut c = Client::connect(s);
    c.send(header);
    if !after.is_empty() {
        match c.next() {
            Got::Header(_) => {}
            other => panic!("expected header, got {other:?}"),
        }
        let f = c.element();
        assert!(f.is("features", NS_STREAM));
        c.send_bytes_lossy(after.as_bytes());
    }
    let cond = c.expect_stream_error();
    assert!(c.is_closed(), "connection closed after {cond}");
    cond
}

#[test]
fn stream_header_errors() {
    let s = server_with_mom();
    let cases = [
        (
            "<stream:stream to='elsewhere.example' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "host-unknown",
        ),
        (
            "<stream:stream version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "host-unknown",
        ),
        (
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://wrong.example/streams'>",
            "invalid-namespace",
        ),
        (
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
            "invalid-namespace",
        ),
        (
            "<stream:stream to='localhost' version='2.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "unsupported-version",
        ),
        (
            "<stream:stream to='localhost' version='one' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "bad-format",
        ),
        ("<?xml version='1.0'?><!DOCTYPE x><stream:stream>", "restricted-xml"),
        ("<<<not xml>", "not-well-formed"),
    ];
    for (header, want) in cases {
        assert_eq!(stream_error_for(&s, header, ""), want, "{header}");
    }
}

#[test]
fn stanza_level_stream_errors() {
    let s = server_with_mom();
    let cases = [
        ("<a><b></a></b>", "not-well-formed"),
        ("<a></b>", "not-well-formed"),
        ("<!-- a comment -->", "restricted-xml"),
        ("<?pi data?>", "restricted-xml"),
        ("<message><body>&custom;</body></message>", "restricted-xml"),
        ("<message><body>&#x0;</body></message>", "not-well-formed"),
        ("<x:message xmlns:y='urn:y'/>", "bad-namespace-prefix"),
    ];
    for (input, want) in cases {
        assert_eq!(stream_error_for(&s, HEADER, input), want, "{input}");
    }
}

#[test]
fn oversized_and_too_deep_stanzas_are_policy_violations() {
    let s = TestServer::start_with(|c| c.limits.max_stanza = 10_000);
    let big = format!("<message><body>{}</body></message>", "x".repeat(20_000));
    assert_eq!(stream_error_for(&s, HEADER, &big), "policy-violation");
    let deep = format!("{}{}", "<a>".repeat(200), "</a>".repeat(200));
    assert_eq!(stream_error_for(&s, HEADER, &deep), "policy-violation");
}

#[test]
fn pipelined_bytes_after_starttls_are_refused() {
    let s = server_with_mom();
    let mut c = Client::connect(&s);
    c.open();
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='evil'/>");
    assert_eq!(c.expect_stream_error(), "policy-violation");
}

#[test]
fn unauthenticated_connections_time_out() {
    let s = TestServer::start_with(|c| c.auth_timeout = Duration::from_millis(500));
    let mut c = Client::connect(&s);
    c.open();
    assert_eq!(c.expect_stream_error(), "connection-timeout");
}

#[test]
fn whitespace_keepalives_are_ignored() {
    let s = server_with_mom();
    let mut c = Client::connect_tls(&s);
    c.open();
    c.send(" \n\t ");
    c.send("  ");
    c.scram(Mechanism::ScramSha256, "mom", "correct horse", None)
        .unwrap();
    c.bind(Some("ka"));
    c.send("\n");
    c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    let r = c.element();
    assert_eq!(r.attr("id"), Some("p1"));
}

#[test]
fn resource_conflict_newer_session_wins() {
    let s = server_with_mom();
    let mut old = Client::login(&s, "mom", "correct horse", "phone");
    let mut new = Client::login(&s, "mom", "correct horse", "phone");
    assert_eq!(old.expect_stream_error(), "conflict");
    // The new session is the one routed to.
    new.send("<message to='mom@localhost/phone' id='m1'><body>to myself</body></message>");
    let m = new.element();
    assert_eq!(m.attr("id"), Some("m1"));
    assert_eq!(m.attr("from"), Some("mom@localhost/phone"));
}

#[test]
fn bound_session_validation() {
    let s = server_with_mom();
    let mut c = Client::login(&s, "mom", "correct horse", "desk");
    // An unknown IQ to the server: service-unavailable.
    c.send("<iq type='get' id='u1'><query xmlns='urn:example:unknown'/></iq>");
    let r = c.element();
    assert_eq!(r.attr("type"), Some("error"));
    assert!(r
        .child("error", "jabber:client")
        .unwrap()
        .child("service-unavailable", NS_STANZAS)
        .is_some());
    // A malformed `to`: jid-malformed.
    c.send("<message to='a@b@c' id='j1'><body>x</body></message>");
    let r = c.element();
    assert!(
        r.child("error", "jabber:client")
            .unwrap()
            .child("jid-malformed", NS_STANZAS)
            .is_some(),
        "{r}"
    );
    // An IQ without a payload: bad-request.
    c.send("<iq type='get' id='b1'/>");
    let r = c.element();
    assert!(
        r.child("error", "jabber:client")
            .unwrap()
            .child("bad-request", NS_STANZAS)
            .is_some(),
        "{r}"
    );
    // A session IQ with a second payload is not a session IQ: bad-request.
    c.send(
        "<iq type='set' id='b2'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>\
         <x xmlns='urn:example:x'/></iq>",
    );
    let r = c.element();
    assert!(
        r.child("error", "jabber:client")
            .unwrap()
            .child("bad-request", NS_STANZAS)
            .is_some(),
        "{r}"
    );
    // A forged `from`: invalid-from.
    c.send("<message from='dad@localhost/x' to='mom@localhost'><body>x</body></message>");
    assert_eq!(c.expect_stream_error(), "invalid-from");

    let mut c = Client::login(&s, "mom", "correct horse", "desk2");
    c.send("<foo xmlns='urn:example:foo'/>");
    assert_eq!(c.expect_stream_error(), "unsupported-stanza-type");

    // A client does not send server-to-server stanzas.
    let mut c = Client::login(&s, "mom", "correct horse", "desk3");
    c.send("<message xmlns='jabber:server' to='mom@localhost'><body>x</body></message>");
    assert_eq!(c.expect_stream_error(), "unsupported-stanza-type");
}

#[test]
fn unauthenticated_connections_per_address_are_limited() {
    let s = TestServer::start_with(|c| c.max_unauth_per_ip = 2);
    let mut a = Client::connect(&s);
    a.open();
    let mut b = Client::connect(&s);
    b.open();
    let mut c = Client::connect(&s);
    c.send(HEADER);
    assert_eq!(c.expect_stream_error(), "policy-violation");
}

#[test]
fn shutdown_closes_every_stream() {
    let mut s = server_with_mom();
    let mut c = Client::login(&s, "mom", "correct horse", "desk");
    let mut pre = Client::connect(&s);
    pre.open();
    let t = std::thread::spawn(move || {
        let a = c.expect_stream_error();
        let b = pre.expect_stream_error();
        (a, b)
    });
    s.stop();
    let (a, b) = t.join().unwrap();
    assert_eq!(a, "system-shutdown");
    assert_eq!(b, "system-shutdown");
}
