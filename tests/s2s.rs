//! Federation between two roost servers on loopback (RFC 6120 s2s, XEP-0178, XEP-0220):
//! with certificates from a test CA (SASL EXTERNAL) and with untrusted self-signed ones
//! (dialback), the domains found through the test-only address map.

mod common;
use common::*;
use roost::config::S2sConfig;
use roost::xml::Element;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

const A: &str = "alpha.example";
const B: &str = "beta.example";

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "roost test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for `domain` and its group chat service (serverAuth only, as
    /// public CAs issue them now), written where the server looks for its own.
    fn issue(&self, dir: &Path, domain: &str) {
        let mut p =
            rcgen::CertificateParams::new(vec![domain.to_owned(), format!("groups.{domain}")])
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, domain);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        std::fs::write(dir.join(format!("{domain}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{domain}.key")), key.serialize_pem()).unwrap();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    External,
    Dialback,
}

struct Pair {
    a: TestServer,
    b: TestServer,
    /// What clients trust: the CA, or each server's own certificate.
    ca_pem: Option<String>,
    /// Holds the CA file the servers read at their first handshake.
    _ca_dir: tempfile::TempDir,
}

fn start(
    domain: &str,
    ports: (u16, u16),
    hosts: &[(String, SocketAddr, bool)],
    ca: Option<(&Ca, &Path)>,
    tweak: impl FnOnce(&mut roost::Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut trust = Vec::new();
    if let Some((ca, ca_file)) = ca {
        ca.issue(dir.path(), domain);
        trust.push(ca_file.to_path_buf());
    }
    let s = TestServer::start_in(dir, |c| {
        c.domain = domain.into();
        c.auth_timeout = Duration::from_secs(5);
        c.s2s = Some(S2sConfig {
            port: ports.0,
            tls_port: ports.1,
            trust,
            static_hosts: hosts.to_vec(),
            ..S2sConfig::default()
        });
        tweak(c);
    });
    s.add_user("mom", "pw");
    s.add_user("grandma", "pw");
    s
}

fn pair(mode: Mode, b_direct_tls: bool) -> Pair {
    pair_with(mode, b_direct_tls, &[], |_| {}, |_| {})
}

fn pair_with(
    mode: Mode,
    b_direct_tls: bool,
    extra_hosts: &[(String, SocketAddr, bool)],
    tweak_a: impl FnOnce(&mut roost::Config),
    tweak_b: impl FnOnce(&mut roost::Config),
) -> Pair {
    if std::env::var_os("ROOST_TEST_LOG").is_some() {
        let _ = simplelog::WriteLogger::init(
            log::LevelFilter::Debug,
            simplelog::Config::default(),
            std::fs::File::create("/tmp/s2s-test.log").unwrap(),
        );
    }
    let (pa, pb) = (
        (common::free_port(), common::free_port()),
        (common::free_port(), common::free_port()),
    );
    let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let hosts = vec![
        (A.to_owned(), lo(pa.0), false),
        (
            B.to_owned(),
            if b_direct_tls { lo(pb.1) } else { lo(pb.0) },
            b_direct_tls,
        ),
        // A domain whose server is down: nothing listens there.
        ("down.example".to_owned(), lo(common::free_port()), false),
        // The group chat services, as their SRV records would say.
        (format!("groups.{A}"), lo(pa.0), false),
        (format!("groups.{B}"), lo(pb.0), false),
        // An app vendor's push service (XEP-0357), hosted by B in the push test.
        (format!("push.{B}"), lo(pb.0), false),
    ]
    .into_iter()
    .chain(extra_hosts.iter().cloned())
    .collect::<Vec<_>>();
    let ca = Ca::new();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let with_ca = (mode == Mode::External).then_some((&ca, ca_file.as_path()));
    let a = start(A, pa, &hosts, with_ca, tweak_a);
    let b = start(B, pb, &hosts, with_ca, tweak_b);
    Pair {
        a,
        b,
        ca_pem: (mode == Mode::External).then(|| ca.cert.pem()),
        _ca_dir: ca_dir,
    }
}

impl Pair {
    fn login(&self, s: &TestServer, user: &str, res: &str) -> Client {
        let tls = match &self.ca_pem {
            Some(pem) => {
                use rustls::pki_types::{pem::PemObject, CertificateDer};
                trusting(
                    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
                    &[&rustls::version::TLS13],
                )
            }
            None => s.default_tls(),
        };
        let mut c = Client::connect_to(s.c2s_addr(), &s.domain, tls);
        c.login_as(user, "pw", res);
        c.roster_get();
        c
    }
}

fn is_presence(from: &str, ty: Option<&'static str>) -> impl Fn(&Element) -> bool {
    let from = from.to_owned();
    move |e: &Element| {
        e.name == "presence"
            && e.attr("from").is_some_and(|f| f.starts_with(from.as_str()))
            && e.attr("type") == ty
    }
}

fn roster_push(jid: &str, sub: &str) -> impl Fn(&Element) -> bool {
    let (jid, sub) = (jid.to_owned(), sub.to_owned());
    move |e: &Element| {
        e.name == "iq"
            && e.attr("type") == Some("set")
            && e.first_element()
                .and_then(|q| q.elements().next())
                .is_some_and(|i| {
                    i.attr("jid") == Some(jid.as_str())
                        && i.attr("subscription") == Some(sub.as_str())
                })
    }
}

/// Subscriptions both ways, to `both` (RFC 6121 §3), with each side's presence seen.
fn befriend(mom: &mut Client, gma: &mut Client) {
    let (mom_jid, gma_jid) = ("mom@alpha.example", "grandma@beta.example");
    mom.send("<presence to='grandma@beta.example' type='subscribe'/>");
    gma.wait_for("mom's request", is_presence(mom_jid, Some("subscribe")));
    gma.send("<presence to='mom@alpha.example' type='subscribed'/>");
    mom.wait_for("from", roster_push(gma_jid, "to"));
    mom.wait_for(
        "grandma's presence",
        is_presence("grandma@beta.example/", None),
    );
    gma.send("<presence to='mom@alpha.example' type='subscribe'/>");
    mom.wait_for("grandma's request", is_presence(gma_jid, Some("subscribe")));
    mom.send("<presence to='grandma@beta.example' type='subscribed'/>");
    gma.wait_for("both", roster_push(mom_jid, "both"));
    gma.wait_for("mom's presence", is_presence("mom@alpha.example/", None));
    mom.wait_for("both on mom's side", roster_push(gma_jid, "both"));
}

/// Everything across the link, both ways.
fn converse(p: &Pair) {
    let mut mom = p.login(&p.a, "mom", "pc");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    mom.announce("pc", "<presence/>");
    gma.announce("tablet", "<presence/>");
    befriend(&mut mom, &mut gma);

    // Presence updates cross.
    mom.send("<presence><show>away</show></presence>");
    let away = gma.wait_for("mom away", is_presence("mom@alpha.example/pc", None));
    assert_eq!(
        away.child("show", NS_CLIENT).map(|s| s.text()).as_deref(),
        Some("away"),
        "{away}"
    );

    // Chat both ways.
    mom.send(
        "<message to='grandma@beta.example' type='chat' id='m1'><body>hi grandma</body></message>",
    );
    let m = gma.wait_for("mom's message", |e| {
        e.name == "message" && e.attr("id") == Some("m1")
    });
    assert_eq!(m.attr("from"), Some("mom@alpha.example/pc"));
    assert_eq!(
        m.child("body", NS_CLIENT).map(|b| b.text()).as_deref(),
        Some("hi grandma")
    );
    gma.send(
        "<message to='mom@alpha.example/pc' type='chat' id='m2'><body>hello dear</body></message>",
    );
    let m = mom.wait_for("grandma's reply", |e| {
        e.name == "message" && e.attr("id") == Some("m2")
    });
    assert_eq!(m.attr("from"), Some("grandma@beta.example/tablet"));

    // IQs across: ping to a client, version of the other server.
    mom.send("<iq type='get' id='p1' to='grandma@beta.example/tablet'><ping xmlns='urn:xmpp:ping'/></iq>");
    // grandma's client answers the ping herself.
    let ping = gma.wait_for("the ping", |e| {
        e.name == "iq" && e.attr("type") == Some("get")
    });
    assert_eq!(ping.attr("from"), Some("mom@alpha.example/pc"), "{ping}");
    gma.send(&format!(
        "<iq type='result' id='{}' to='{}'/>",
        ping.attr("id").unwrap(),
        ping.attr("from").unwrap()
    ));
    let r = mom.wait_for("the pong", |e| e.name == "iq" && e.attr("id") == Some("p1"));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let v =
        mom.iq("<iq type='get' id='v1' to='beta.example'><query xmlns='jabber:iq:version'/></iq>");
    assert_eq!(v.attr("type"), Some("result"), "{v}");
    assert!(v.to_string().contains("roost"), "{v}");
    let v = gma.iq("<iq type='get' id='v2' to='alpha.example'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(v.attr("type"), Some("result"), "{v}");

    // A bounce from a user the other server does not have.
    mom.send(
        "<iq type='get' id='n1' to='nobody@beta.example'><query xmlns='jabber:iq:version'/></iq>",
    );
    let e = mom.wait_for("the bounce", |e| e.attr("id") == Some("n1"));
    assert_eq!(e.attr("type"), Some("error"), "{e}");
    assert_eq!(e.attr("from"), Some("nobody@beta.example"), "{e}");
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );

    // A domain whose server is down: the message bounces, local traffic goes on.
    mom.send("<message to='x@down.example' type='chat' id='d1'><body>?</body></message>");
    let e = mom.wait_for("the down bounce", |e| e.attr("id") == Some("d1"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found"),
        "{e}"
    );
    let r = mom.iq("<iq type='get' id='l1' to='alpha.example'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"));

    // Going offline is seen across.
    gma.send("<presence type='unavailable'/>");
    mom.wait_for(
        "grandma offline",
        is_presence("grandma@beta.example/tablet", Some("unavailable")),
    );
}

const NS_CLIENT: &str = "jabber:client";

#[test]
fn two_servers_with_certificates_authenticate_with_external_on_one_bidirectional_stream() {
    let p = pair(Mode::External, false);
    converse(&p);
    // XEP-0288: A connected first (mom's subscription) and asked for a bidirectional
    // stream; B sent everything back on it. One TCP connection in all.
    assert_eq!(
        p.b.s2s_incoming(),
        [(B.to_owned(), A.to_owned(), "EXTERNAL")]
    );
    assert_eq!(p.a.s2s_incoming(), []);
    assert_eq!(p.a.s2s_connections(), (0, 1));
    assert_eq!(p.b.s2s_connections(), (1, 0));
}

#[test]
fn without_bidirectional_streams_each_direction_has_its_own_connection() {
    let no_bidi = |c: &mut roost::Config| {
        if let Some(s) = c.s2s.as_mut() {
            s.bidi = false;
        }
    };
    // B does not offer it; A does, but B does not ask for it.
    let p = pair_with(Mode::External, false, &[], |_| {}, no_bidi);
    let mut mom = p.login(&p.a, "mom", "pc");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    mom.send("<message to='grandma@beta.example/tablet' id='m1'><body>hi</body></message>");
    gma.wait_for("mom's message", |e| e.attr("id") == Some("m1"));
    gma.send("<message to='mom@alpha.example/pc' id='m2'><body>hello</body></message>");
    mom.wait_for("grandma's reply", |e| e.attr("id") == Some("m2"));
    assert_eq!(
        p.b.s2s_incoming(),
        [(B.to_owned(), A.to_owned(), "EXTERNAL")]
    );
    assert_eq!(
        p.a.s2s_incoming(),
        [(A.to_owned(), B.to_owned(), "EXTERNAL")]
    );
    assert_eq!(p.a.s2s_connections(), (1, 1));
    assert_eq!(p.b.s2s_connections(), (1, 1));
}

#[test]
fn two_servers_with_untrusted_certificates_use_dialback_also_over_direct_tls() {
    let p = pair(Mode::Dialback, true);
    converse(&p);
    assert_eq!(
        p.b.s2s_incoming(),
        [(B.to_owned(), A.to_owned(), "dialback")]
    );
    assert_eq!(
        p.a.s2s_incoming(),
        [(A.to_owned(), B.to_owned(), "dialback")]
    );
}

fn s2s_header(to: &str, from: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         to='{to}' from='{from}' version='1.0'>"
    )
}

/// A raw connection to `s`'s s2s port, past STARTTLS, with the features after TLS.
fn raw_after_tls(s: &TestServer, from: &str) -> (Client, Element) {
    let mut c = Client::connect_to(s.s2s_addr(), &s.domain, s.default_tls());
    let f = c.open_raw(&s2s_header(&s.domain, from));
    assert!(
        f.child("starttls", NS_TLS)
            .and_then(|t| t.child("required", NS_TLS))
            .is_some(),
        "{f}"
    );
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    let p = c.element();
    assert!(p.is("proceed", NS_TLS), "{p}");
    c.handshake_with(c_tls(s));
    let f = c.open_raw(&s2s_header(&s.domain, from));
    (c, f)
}

fn c_tls(s: &TestServer) -> std::sync::Arc<rustls::ClientConfig> {
    s.default_tls()
}

#[test]
fn bad_peers_are_closed_and_local_clients_go_on() {
    let p = pair(Mode::Dialback, false);
    let s = &p.b;
    let mut gma = p.login(s, "grandma", "tablet");

    // Plaintext stanzas: STARTTLS is required.
    let mut c = Client::connect_to(s.s2s_addr(), B, s.default_tls());
    c.open_raw(&s2s_header(B, "evil.example"));
    c.send("<message from='x@evil.example' to='grandma@beta.example'><body>hi</body></message>");
    assert_eq!(c.expect_stream_error(), "policy-violation");

    // A domain not served here.
    let mut c = Client::connect_to(s.s2s_addr(), B, s.default_tls());
    c.send(&s2s_header("elsewhere.example", "evil.example"));
    assert_eq!(c.expect_stream_error(), "host-unknown");

    // A client's namespace.
    let mut c = Client::connect_to(s.s2s_addr(), B, s.default_tls());
    c.send(&s2s_header(B, "evil.example").replace("jabber:server'", "jabber:client'"));
    assert_eq!(c.expect_stream_error(), "invalid-namespace");

    // Garbage.
    let mut c = Client::connect_to(s.s2s_addr(), B, s.default_tls());
    c.open_raw(&s2s_header(B, "evil.example"));
    c.send("<<<garbage>>>");
    assert_eq!(c.expect_stream_error(), "not-well-formed");

    // After TLS: an untrusted certificate gets dialback only, and stanzas need it first.
    let (mut c, f) = raw_after_tls(s, "evil.example");
    assert!(f.child("mechanisms", NS_SASL).is_none(), "{f}");
    assert!(
        f.child("dialback", "urn:xmpp:features:dialback").is_some(),
        "{f}"
    );
    c.send("<message from='x@evil.example' to='grandma@beta.example'><body>hi</body></message>");
    assert_eq!(c.expect_stream_error(), "not-authorized");

    // EXTERNAL without a valid certificate fails (the stream stays up for dialback).
    let (mut c, _) = raw_after_tls(s, "down.example");
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    let e = c.element();
    assert!(
        e.is("failure", NS_SASL) && e.child("not-authorized", NS_SASL).is_some(),
        "{e}"
    );

    // A dialback key nobody vouches for (its domain's server is down): invalid.
    c.send("<db:result from='down.example' to='beta.example'>0123</db:result>");
    let r = c.element();
    assert!(r.is("result", "jabber:server:dialback"), "{r}");
    assert_eq!(r.attr("type"), Some("invalid"), "{r}");
    assert_eq!(c.expect_stream_error(), "not-authorized");

    // A dialback key claimed from a domain that is not the stream's.
    let (mut c, _) = raw_after_tls(s, "evil.example");
    c.send("<db:result from='other.example' to='beta.example'>0123</db:result>");
    assert_eq!(c.expect_stream_error(), "invalid-from");

    // A verification request for a key we never made is answered invalid.
    let (mut c, _) = raw_after_tls(s, "evil.example");
    c.send("<db:verify from='evil.example' to='beta.example' id='abc'>0123</db:verify>");
    let v = c.element();
    assert!(v.is("verify", "jabber:server:dialback"), "{v}");
    assert_eq!(v.attr("type"), Some("invalid"), "{v}");
    assert_eq!(v.attr("id"), Some("abc"), "{v}");

    // Local clients noticed nothing.
    let r = gma.iq("<iq type='get' id='l1' to='beta.example'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

#[test]
fn a_peer_that_never_finishes_dialback_is_timed_out() {
    let p = pair_with(
        Mode::Dialback,
        false,
        &[],
        |_| {},
        |c| {
            c.auth_timeout = Duration::from_secs(1);
        },
    );
    let (mut c, _) = raw_after_tls(&p.b, "evil.example");
    let started = std::time::Instant::now();
    assert_eq!(c.expect_stream_error(), "connection-timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Reads from `r` into `buf` until it holds `needle` (10 s at most).
fn read_until(r: &mut impl std::io::Read, buf: &mut String, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 4096];
    while !buf.contains(needle) {
        assert!(Instant::now() < deadline, "no {needle} in {buf}");
        match r.read(&mut chunk) {
            Ok(0) => panic!("closed before {needle}: {buf}"),
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e} before {needle}: {buf}"),
        }
    }
}

#[test]
fn on_a_bidirectional_stream_we_opened_the_peer_sends_only_from_its_domain_and_may_verify_our_keys()
{
    use std::io::Write;
    // A peer server played by the test: it offers XEP-0288 and dialback, says our key
    // is valid, then sends one stanza from its domain and one from another.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.issue(dir.path(), "fake.example");
    let p = pair_with(
        Mode::Dialback,
        false,
        &[("fake.example".to_owned(), addr, false)],
        |_| {},
        |_| {},
    );
    let mut mom = p.login(&p.a, "mom", "pc");
    let peer = std::thread::spawn(move || {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
        let cert = CertificateDer::from_pem_slice(&read("fake.example.crt")).unwrap();
        let key = PrivateKeyDer::from_pem_slice(&read("fake.example.key")).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let header = |id: &str| {
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
                 xmlns:stream='http://etherx.jabber.org/streams' \
                 xmlns:db='jabber:server:dialback' from='fake.example' to='alpha.example' \
                 id='{id}' version='1.0'>"
            )
        };
        let mut buf = String::new();
        read_until(&mut tcp, &mut buf, "<stream:stream");
        tcp.write_all(header("s1").as_bytes()).unwrap();
        tcp.write_all(
            b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
            <required/></starttls></stream:features>",
        )
        .unwrap();
        read_until(&mut tcp, &mut buf, "<starttls");
        tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .unwrap();
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = String::new();
        read_until(&mut tls, &mut buf, "<stream:stream");
        tls.write_all(header("s2").as_bytes()).unwrap();
        tls.write_all(
            b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>\
              <bidi xmlns='urn:xmpp:features:bidi'/></stream:features>",
        )
        .unwrap();
        read_until(&mut tls, &mut buf, "</db:result>");
        assert!(buf.contains("<bidi xmlns='urn:xmpp:bidi'/>"), "{buf}");
        tls.write_all(b"<db:result from='fake.example' to='alpha.example' type='valid'/>")
            .unwrap();
        read_until(&mut tls, &mut buf, "id='q1'");
        // The peer asks, on this stream, about the key A gave it (valid) and about a key
        // A never made (invalid), as it would ask its outgoing stream (XEP-0220 §2.4).
        let key = buf
            .split("<db:result")
            .nth(1)
            .and_then(|r| r.split('>').nth(1))
            .and_then(|k| k.split('<').next())
            .unwrap()
            .to_owned();
        tls.write_all(
            format!("<db:verify from='fake.example' to='alpha.example' id='s2'>{key}</db:verify>")
                .as_bytes(),
        )
        .unwrap();
        read_until(&mut tls, &mut buf, "id='s2' type='valid'/>");
        tls.write_all(
            b"<db:verify from='fake.example' to='alpha.example' id='abc'>0123</db:verify>",
        )
        .unwrap();
        read_until(&mut tls, &mut buf, "type='invalid'");
        assert!(
            buf.contains(
                "<db:verify from='alpha.example' to='fake.example' id='abc' type='invalid'/>"
            ),
            "{buf}"
        );
        tls.write_all(
            b"<message from='x@fake.example' to='mom@alpha.example/pc' id='ok'>\
              <body>from the peer's own domain</body></message>\
              <message from='x@evil.example' to='mom@alpha.example/pc' id='bad'>\
              <body>from another</body></message>",
        )
        .unwrap();
        read_until(&mut tls, &mut buf, "invalid-from");
    });
    mom.send("<message to='x@fake.example' id='q1'><body>hello?</body></message>");
    let ok = mom.wait_for("the peer's stanza", |e| e.attr("id") == Some("ok"));
    assert_eq!(ok.attr("from"), Some("x@fake.example"), "{ok}");
    peer.join().unwrap();
    // The stanza from the other domain never reached mom.
    if let Some(Got::Element(e)) = mom.next_within(Duration::from_millis(300)) {
        assert_ne!(e.attr("id"), Some("bad"), "{e}");
    }
}

#[test]
fn a_flooding_peer_is_read_slower_and_one_that_keeps_connecting_is_refused_while_local_chat_goes_on(
) {
    let p = pair_with(
        Mode::External,
        false,
        &[],
        |_| {},
        |c| {
            if let Some(s) = c.s2s.as_mut() {
                s.stanza_rate = 20;
                s.connects_per_minute = 4;
            }
        },
    );
    let mut mom = p.login(&p.a, "mom", "pc");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    let mut local = p.login(&p.b, "mom", "kitchen");

    // 100 messages at once from A: B takes 40 at once (twice the rate) and the rest at
    // 20 a second, so the last arrives ~3 s later; none is lost.
    let started = Instant::now();
    let flood: String = (0..100)
        .map(|i| {
            format!(
                "<message to='grandma@beta.example/tablet' id='f{i}'><body>{i}</body></message>"
            )
        })
        .collect();
    mom.send(&flood);
    gma.wait_for("the flood's first", |e| e.attr("id") == Some("f0"));
    // Meanwhile a local chat on B goes through at once.
    let sent = Instant::now();
    local.send("<message to='grandma@beta.example/tablet' id='local'><body>tea?</body></message>");
    let mut flood_seen = 1;
    loop {
        match gma.next() {
            Got::Element(e) if e.attr("id") == Some("local") => break,
            Got::Element(e) if e.attr("id").is_some_and(|i| i.starts_with('f')) => flood_seen += 1,
            Got::Element(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert!(flood_seen < 100, "the flood was not slowed down");
    while flood_seen < 100 {
        let e = gma.wait_for("the rest of the flood", |e| e.name == "message");
        if e.attr("id").is_some_and(|i| i.starts_with('f')) {
            flood_seen += 1;
        }
    }
    assert_eq!(e_last_id(&mut gma), None, "more than 100 flood messages");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "100 stanzas at 20/s after 40 took {:?}",
        started.elapsed()
    );

    // Connections from one address: 4 a minute on B. A's is one; 3 more are served, and
    // the next is closed before a word.
    for _ in 0..3 {
        let mut c = Client::connect_to(p.b.s2s_addr(), B, p.b.default_tls());
        let f = c.open_raw(&s2s_header(B, "evil.example"));
        assert!(f.child("starttls", NS_TLS).is_some(), "{f}");
    }
    let mut c = Client::connect_to(p.b.s2s_addr(), B, p.b.default_tls());
    c.send(&s2s_header(B, "evil.example"));
    assert!(
        matches!(c.next(), Got::Eof),
        "the 5th connection was served"
    );

    // Local clients noticed nothing.
    local.send("<message to='grandma@beta.example/tablet' id='local2'><body>!</body></message>");
    gma.wait_for("the second local message", |e| {
        e.attr("id") == Some("local2")
    });
}

/// The id of a message that arrives within 300 ms, if any.
fn e_last_id(c: &mut Client) -> Option<String> {
    match c.next_within(Duration::from_millis(300)) {
        Some(Got::Element(e)) => e.attr("id").map(str::to_owned),
        _ => None,
    }
}

#[test]
fn secure_auth_refuses_dialback_and_a_silent_server_times_out() {
    // A server that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let p = pair_with(
        Mode::Dialback,
        false,
        &[("silent.example".to_owned(), silent_addr, false)],
        |c| {
            c.auth_timeout = Duration::from_secs(2);
            c.s2s.as_mut().unwrap().secure_auth = true;
        },
        |_| {},
    );
    let mut mom = p.login(&p.a, "mom", "pc");
    // Our side refuses a peer whose certificate is not valid.
    mom.send("<message to='grandma@beta.example' type='chat' id='s1'><body>x</body></message>");
    let e = mom.wait_for("the bounce", |e| e.attr("id") == Some("s1"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found"),
        "{e}"
    );
    // The other side cannot use dialback with us either.
    let mut gma = p.login(&p.b, "grandma", "tablet");
    gma.send("<message to='mom@alpha.example' type='chat' id='s2'><body>x</body></message>");
    let e = gma.wait_for("the bounce", |e| e.attr("id") == Some("s2"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found"),
        "{e}"
    );
    mom.assert_silent(Duration::from_millis(300));
    // A server that never answers: remote-server-timeout.
    mom.send("<message to='x@silent.example' type='chat' id='s3'><body>x</body></message>");
    let e = mom.wait_for("the timeout", |e| e.attr("id") == Some("s3"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-timeout"),
        "{e}"
    );
    drop(silent);
}

const CARBONS: &str = "urn:xmpp:carbons:2";
const MUC: &str = "http://jabber.org/protocol/muc";

/// Reads a group chat join until the subject (the end of a join, XEP-0045 §7.2.16).
fn join_room(c: &mut Client, occupant: &str) -> Vec<Element> {
    c.send(&format!(
        "<presence to='{occupant}'><x xmlns='{MUC}'/></presence>"
    ));
    let mut got = Vec::new();
    for _ in 0..100 {
        let e = c.element();
        assert_ne!(e.attr("type"), Some("error"), "{e}");
        let done = e.name == "message" && e.child("subject", NS_CLIENT).is_some();
        got.push(e);
        if done {
            return got;
        }
    }
    panic!("no end of the join");
}

#[test]
fn rooms_carbons_archive_and_blocking_work_with_remote_contacts() {
    let p = pair(Mode::External, false);
    let mut mom = p.login(&p.a, "mom", "pc");
    mom.announce("pc", "<presence/>");
    let mut phone = p.login(&p.a, "mom", "phone");
    phone.announce("phone", "<presence/>");
    let r = phone.iq("<iq type='set' id='cb'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    gma.announce("tablet", "<presence/>");

    // Carbons of a chat with a remote contact, both directions (XEP-0280).
    mom.send("<message to='grandma@beta.example' type='chat' id='c1'><body>one</body></message>");
    gma.wait_for("c1", |e| e.attr("id") == Some("c1"));
    let sent = phone.wait_for("the sent carbon", |e| e.child("sent", CARBONS).is_some());
    assert!(sent.to_string().contains("one"), "{sent}");
    gma.send("<message to='mom@alpha.example/pc' type='chat' id='c2'><body>two</body></message>");
    mom.wait_for("c2", |e| e.attr("id") == Some("c2"));
    let got = phone.wait_for("the received carbon", |e| {
        e.child("received", CARBONS).is_some()
    });
    assert!(got.to_string().contains("two"), "{got}");

    // Both directions are in the archive (XEP-0313).
    mom.send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>");
    let mut bodies = Vec::new();
    for _ in 0..50 {
        let e = mom.element();
        if e.name == "iq" && e.attr("id") == Some("q1") {
            assert_eq!(e.attr("type"), Some("result"), "{e}");
            break;
        }
        if let Some(r) = e.child("result", "urn:xmpp:mam:2") {
            let s = r.to_string();
            bodies.extend(
                ["one", "two"]
                    .into_iter()
                    .filter(|b| s.contains(&format!(">{b}<"))),
            );
        }
    }
    assert_eq!(bodies, ["one", "two"]);

    // A group chat on one server with an occupant from the other (XEP-0045).
    let got = join_room(&mut mom, "tea@groups.alpha.example/mom");
    assert!(
        got.iter()
            .any(|e| e.to_string().contains("status code='201'")),
        "{got:?}"
    );
    let r = mom.iq("<iq type='set' id='cfg' to='tea@groups.alpha.example'>\
         <query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'/></query></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let got = join_room(&mut gma, "tea@groups.alpha.example/grandma");
    assert!(
        got.iter()
            .any(|e| e.attr("from") == Some("tea@groups.alpha.example/mom")),
        "{got:?}"
    );
    mom.wait_for("grandma joins", |e| {
        e.name == "presence" && e.attr("from") == Some("tea@groups.alpha.example/grandma")
    });
    gma.send("<message to='tea@groups.alpha.example' type='groupchat' id='g1'><body>tea?</body></message>");
    let m = mom.wait_for("grandma in the room", |e| {
        e.name == "message" && e.attr("from") == Some("tea@groups.alpha.example/grandma")
    });
    assert_eq!(
        m.child("body", NS_CLIENT).map(|b| b.text()).as_deref(),
        Some("tea?")
    );
    gma.wait_for("her own message", |e| e.attr("id") == Some("g1"));

    // Blocking a remote JID (XEP-0191): her server answers for her.
    let r = gma.iq("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>\
         <item jid='mom@alpha.example'/></block></iq>");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    mom.send(
        "<message to='grandma@beta.example' type='chat' id='b2'><body>hello?</body></message>",
    );
    let e = mom.wait_for("the refusal", |e| e.attr("id") == Some("b2"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    gma.assert_silent(Duration::from_millis(300));
}

#[test]
fn pep_notifications_reach_remote_contacts_that_ask_for_them() {
    const CAPS: &str = "http://jabber.org/protocol/caps";
    const DISCO: &str = "http://jabber.org/protocol/disco#info";
    const NICK: &str = "http://jabber.org/protocol/nick";
    let p = pair(Mode::Dialback, false);
    let mut mom = p.login(&p.a, "mom", "pc");
    mom.announce("pc", "<presence/>");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    gma.announce("tablet", "<presence/>");
    befriend(&mut mom, &mut gma);

    // grandma's client asks for nicknames (XEP-0115 caps, its ver computed here).
    let features = vec![CAPS.to_owned(), DISCO.to_owned(), format!("{NICK}+notify")];
    let tablet_caps = caps_presence(&features, "roost-test", "");
    gma.send(&tablet_caps);
    // Both servers ask grandma's client what the caps mean; mom's across the link.
    answer_caps_queries(&mut gma, &features, "roost-test");
    // Let the answer cross before publishing: grandma's ping to mom's server follows it on
    // the same stream, and that server handles a stream's stanzas in order.
    let r =
        gma.iq("<iq type='get' id='sync' to='alpha.example'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"));

    let r = mom.iq(&format!(
        "<iq type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <publish node='{NICK}'><item><nick xmlns='{NICK}'>Mom</nick></item></publish>\
         </pubsub></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let n = gma.wait_for("the notification", |e| {
        e.name == "message"
            && e.child("event", "http://jabber.org/protocol/pubsub#event")
                .is_some()
    });
    assert_eq!(n.attr("from"), Some("mom@alpha.example"), "{n}");
    assert!(n.to_string().contains(">Mom</nick>"), "{n}");

    // XEP-0163 §4.3.4 across servers: a newly seen resource of grandma's whose caps mom's
    // server knows gets mom's last nickname at once, stamped with its publication time…
    let is_event = |e: &Element| {
        e.name == "message"
            && e.child("event", "http://jabber.org/protocol/pubsub#event")
                .is_some()
    };
    let mut phone = p.login(&p.b, "grandma", "phone");
    phone.send(&caps_presence(&features, "roost-test", ""));
    let n = phone.wait_for("the last item", is_event);
    assert_eq!(n.attr("from"), Some("mom@alpha.example"), "{n}");
    assert!(n.to_string().contains(">Mom</nick>"), "{n}");
    assert!(n.child("delay", "urn:xmpp:delay").is_some(), "{n}");
    // …one whose caps are new gets it once they are learnt (queried across)…
    let mut laptop = p.login(&p.b, "grandma", "laptop");
    laptop.send(&caps_presence(&features, "roost-test-2", ""));
    answer_caps_queries(&mut laptop, &features, "roost-test-2");
    let n = laptop.wait_for("the last item after the caps query", is_event);
    assert!(n.to_string().contains(">Mom</nick>"), "{n}");
    // …and a presence update with the same caps brings nothing again.
    phone.send(&caps_presence(&features, "roost-test", "<show>away</show>"));
    let again = phone.drain(Duration::from_millis(500));
    assert!(!again.iter().any(is_event), "{again:?}");
}

/// An available presence with XEP-0115 caps for a client named `name` with `features`,
/// and `extra` children.
fn caps_presence(features: &[String], name: &str, extra: &str) -> String {
    const CAPS: &str = "http://jabber.org/protocol/caps";
    let mut sorted = features.to_vec();
    sorted.sort();
    let mut s = format!("client/pc//{name}<");
    for f in &sorted {
        s += f;
        s.push('<');
    }
    let ver =
        b64(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes()).as_ref());
    format!(
        "<presence>{extra}<c xmlns='{CAPS}' hash='sha-1' node='https://roost.test' ver='{ver}'/></presence>"
    )
}

/// Answers the caps queries of both servers (the other's comes across the link).
fn answer_caps_queries(c: &mut Client, features: &[String], name: &str) {
    const DISCO: &str = "http://jabber.org/protocol/disco#info";
    let f: String = features
        .iter()
        .map(|x| format!("<feature var='{x}'/>"))
        .collect();
    let mut asked = Vec::new();
    while !asked.iter().any(|a| a == "alpha.example") {
        assert!(asked.len() < 4, "caps queries from {asked:?}");
        let q = c.wait_for("a caps query", |e| {
            e.name == "iq" && e.attr("type") == Some("get") && e.child("query", DISCO).is_some()
        });
        let node = q
            .child("query", DISCO)
            .unwrap()
            .attr("node")
            .unwrap()
            .to_owned();
        let from = q.attr("from").unwrap().to_owned();
        c.send(&format!(
            "<iq type='result' id='{}' to='{from}'><query xmlns='{DISCO}' node='{node}'>\
             <identity category='client' type='pc' name='{name}'/>{f}</query></iq>",
            q.attr("id").unwrap()
        ));
        asked.push(from);
    }
}

#[test]
fn a_bad_trust_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let config = roost::Config {
        domain: A.into(),
        data_dir: dir.path().join("data"),
        bind: vec!["127.0.0.1".parse().unwrap()],
        c2s_port: 0,
        c2s_tls_port: 0,
        s2s: Some(S2sConfig {
            port: 0,
            tls_port: 0,
            trust: vec![bad.clone()],
            ..S2sConfig::default()
        }),
        http: roost::config::HttpConfig {
            enabled: false,
            ..Default::default()
        },
        ..roost::Config::default()
    };
    std::fs::create_dir(&config.data_dir).unwrap();
    let err = roost::start(config).err().expect("refused").to_string();
    assert!(
        err.contains("--s2s-trust") && err.contains("not-a-ca.pem"),
        "{err}"
    );
}

/// The app vendor's push server (XEP-0357) as a component of B: keeps the notifications it
/// gets and answers them.
#[derive(Default)]
struct AppServer(std::sync::Mutex<Vec<Element>>);

impl roost::router::Service for AppServer {
    fn receive(&self, core: &std::sync::Arc<roost::Core>, stanza: Element) {
        if stanza.name != "iq" || stanza.attr("type") != Some("set") {
            return;
        }
        let reply = Element::new("iq", NS_CLIENT)
            .with_attr("type", "result")
            .with_attr("id", stanza.attr("id").unwrap_or(""))
            .with_attr("from", stanza.attr("to").unwrap_or(""))
            .with_attr("to", stanza.attr("from").unwrap_or(""));
        self.0.lock().unwrap().push(stanza);
        roost::router::send_to(core, reply);
    }
}

#[test]
fn push_notifications_reach_an_app_server_on_another_server() {
    let p = pair(Mode::Dialback, false);
    let app = std::sync::Arc::new(AppServer::default());
    let push = format!("push.{B}");
    p.b.core().add_service(&push, app.clone());
    let mut mom = p.login(&p.a, "mom", "phone");
    let r = mom.iq(&format!(
        "<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='{push}' node='n1'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    mom.close();
    let mut gma = p.login(&p.a, "grandma", "pc");
    gma.send(&format!(
        "<message type='chat' to='mom@{A}' id='m1'><body>call me</body></message>"
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let n = loop {
        if let Some(n) = app.0.lock().unwrap().pop() {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notification crossed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(n.attr("from"), Some(format!("mom@{A}").as_str()));
    assert!(n.to_string().contains("urn:xmpp:push:summary"), "{n}");
}

/// Sets a role as `roost role` does (another connection, a `kicks` row) and waits until
/// the running server has it.
fn set_role(s: &TestServer, user: &str, role: roost::roles::Role) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let mut n = roost::circles::Notices::new(&s.domain);
    roost::circles::set_role(&conn, &s.domain, user, role, &mut n).unwrap();
    n.write_kicks(&conn).unwrap();
    for _ in 0..50 {
        if s.core().state::<roost::roles::Roles>().get(user) == role {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not reload {user}'s role");
}

fn not_allowed_with_reason(e: &Element) {
    assert_eq!(e.attr("type"), Some("error"), "{e}");
    assert_eq!(error_condition(e).as_deref(), Some("not-allowed"), "{e}");
    assert!(e.to_string().contains("limited to this server"), "{e}");
}

#[test]
fn a_limited_account_cannot_federate_either_way() {
    use roost::roles::Role;
    let p = pair(Mode::Dialback, false);
    set_role(&p.a, "mom", Role::Limited);
    let mut mom = p.login(&p.a, "mom", "pc");
    mom.announce("pc", "<presence/>");
    let mut gma = p.login(&p.b, "grandma", "tablet");
    gma.announce("tablet", "<presence/>");
    let mut local = p.login(&p.a, "grandma", "phone");
    local.announce("phone", "<presence/>");
    // A message, a subscription request and an IQ to the other server: refused.
    mom.send("<message to='grandma@beta.example' type='chat' id='m1'><body>hi</body></message>");
    not_allowed_with_reason(&mom.wait_for("the refusal", |e| e.attr("id") == Some("m1")));
    mom.send("<presence to='grandma@beta.example' type='subscribe' id='s1'/>");
    not_allowed_with_reason(&mom.wait_for("the refusal", |e| e.attr("id") == Some("s1")));
    let v =
        mom.iq("<iq type='get' id='v1' to='beta.example'><query xmlns='jabber:iq:version'/></iq>");
    not_allowed_with_reason(&v);
    // Joining a room on the other server is a presence to it: refused too (dropped).
    // From the other server, the account is as if it did not exist.
    gma.send("<message to='mom@alpha.example' type='chat' id='g1'><body>hi</body></message>");
    let e = gma.wait_for("the bounce", |e| e.attr("id") == Some("g1"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    // Its own server works as before.
    mom.send("<message to='grandma@alpha.example' type='chat' id='l1'><body>hi</body></message>");
    local.wait_for("the local message", |e| e.attr("id") == Some("l1"));
    mom.assert_silent(Duration::from_millis(300));
    // Made normal again, it reaches the other server: the refusal was the role's.
    set_role(&p.a, "mom", Role::Normal);
    mom.send("<message to='grandma@beta.example' type='chat' id='m2'><body>hi</body></message>");
    gma.wait_for("mom's message", |e| e.attr("id") == Some("m2"));
}
