//! Calls: XEP-0215 external service discovery (STUN/TURN with coturn's REST credentials)
//! over real sockets, and the credentials checked by a real coturn (`turnserver` from
//! Debian's coturn package) with its own test client `turnutils_uclient`.

mod common;

use base64::Engine;
use common::*;
use roost::config::TurnConfig;
use roost::xml::Element;
use std::time::Duration;

const EXTDISCO: &str = "urn:xmpp:extdisco:2";
const EXTDISCO_1: &str = "urn:xmpp:extdisco:1";
const SECRET: &[u8] = b"a-shared-coturn-secret";
const TTL: u64 = 3600;

fn turn(port: u16, tls_port: Option<u16>) -> TurnConfig {
    TurnConfig {
        host: "127.0.0.1".into(),
        port,
        tls_port,
        secret: SECRET.to_vec(),
        secret_file: None,
        ttl: Duration::from_secs(TTL),
    }
}

fn server_with(turn: Option<TurnConfig>) -> TestServer {
    let s = TestServer::start_with(|c| c.turn = turn);
    s.add_user("mom", "pw-mom");
    s.add_user("kid", "pw-kid");
    s
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn result(reply: Element) -> Element {
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    reply.first_element().expect("a payload").clone()
}

/// Checks a TURN service's credentials against the TURN REST formula and the expiry;
/// returns (username, password).
fn check_credentials(s: &Element, jid: &str) -> (String, String) {
    let user = s.attr("username").expect("username").to_owned();
    let pass = s.attr("password").expect("password").to_owned();
    let (expiry, who) = user.split_once(':').expect("expiry:jid");
    assert_eq!(who, jid);
    let expiry: i64 = expiry.parse().unwrap();
    assert!((expiry - now() - TTL as i64).abs() <= 5, "expiry {expiry}");
    let expires = s.attr("expires").expect("expires");
    assert_eq!(expires, roost::util::datetime::format(expiry));
    assert_eq!(s.attr("restricted"), Some("1"));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET);
    let want = base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, user.as_bytes()).as_ref());
    assert_eq!(pass, want);
    (user, pass)
}

#[test]
fn services_with_credentials_for_local_accounts() {
    let s = server_with(Some(turn(3478, Some(5349))));
    let mut mom = Client::login(&s, "mom", "pw-mom", "phone");
    let info = result(mom.iq(
        "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    ));
    for ns in [EXTDISCO, EXTDISCO_1] {
        assert!(
            info.elements()
                .any(|f| f.name == "feature" && f.attr("var") == Some(ns)),
            "{ns} in {info}"
        );
    }
    for ns in [EXTDISCO, EXTDISCO_1] {
        let services = result(mom.iq(&format!(
            "<iq type='get' id='s1' to='localhost'><services xmlns='{ns}'/></iq>"
        )));
        assert!(services.is("services", ns), "{services}");
        let got: Vec<(String, String, String)> = services
            .elements()
            .map(|e| {
                assert!(e.is("service", ns));
                assert_eq!(e.attr("host"), Some("127.0.0.1"));
                (
                    e.attr("type").unwrap().into(),
                    e.attr("transport").unwrap().into(),
                    e.attr("port").unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("stun", "udp", "3478"),
            ("turn", "udp", "3478"),
            ("turn", "tcp", "3478"),
            ("turns", "tcp", "5349"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
        let stun = services.elements().next().unwrap();
        assert!(stun.attr("username").is_none() && stun.attr("password").is_none());
        for s in services.elements().skip(1) {
            check_credentials(s, "mom@localhost");
        }
    }
    // Only the type asked for (XEP-0215 §3.1).
    let only = result(mom.iq(&format!(
        "<iq type='get' id='s2' to='localhost'><services xmlns='{EXTDISCO}' type='turn'/></iq>"
    )));
    assert_eq!(only.elements().count(), 2, "{only}");
    assert!(only.elements().all(|e| e.attr("type") == Some("turn")));

    // Each account gets its own.
    let mut kid = Client::login(&s, "kid", "pw-kid", "tablet");
    let services = result(kid.iq(&format!(
        "<iq type='get' id='s3' to='localhost'><services xmlns='{EXTDISCO}'/></iq>"
    )));
    check_credentials(services.elements().nth(1).unwrap(), "kid@localhost");
}

#[test]
fn credentials_query_and_its_errors() {
    let s = server_with(Some(turn(3478, None)));
    let mut mom = Client::login(&s, "mom", "pw-mom", "phone");
    let creds = result(mom.iq(&format!(
        "<iq type='get' id='c1' to='localhost'><credentials xmlns='{EXTDISCO}'>\
         <service type='turn' host='127.0.0.1'/></credentials></iq>"
    )));
    assert!(creds.is("credentials", EXTDISCO), "{creds}");
    assert_eq!(creds.elements().count(), 2, "udp and tcp: {creds}");
    for c in creds.elements() {
        check_credentials(c, "mom@localhost");
    }
    let creds = result(mom.iq(&format!(
        "<iq type='get' id='c2' to='localhost'><credentials xmlns='{EXTDISCO_1}'>\
         <service type='turn' host='127.0.0.1' port='3478'/></credentials></iq>"
    )));
    assert!(creds.is("credentials", EXTDISCO_1));
    assert_eq!(creds.elements().count(), 2);

    for (payload, condition) in [
        // Unknown host, wrong port, a service without credentials, turns not configured.
        (
            "<service type='turn' host='turn.example.org'/>",
            "item-not-found",
        ),
        (
            "<service type='turn' host='127.0.0.1' port='1'/>",
            "item-not-found",
        ),
        ("<service type='stun' host='127.0.0.1'/>", "item-not-found"),
        ("<service type='turns' host='127.0.0.1'/>", "item-not-found"),
        ("<service host='127.0.0.1'/>", "bad-request"),
        (
            "<service type='turn' host='127.0.0.1' port='x'/>",
            "bad-request",
        ),
        ("", "bad-request"),
    ] {
        let r = mom.iq(&format!(
            "<iq type='get' id='e1' to='localhost'><credentials xmlns='{EXTDISCO}'>{payload}</credentials></iq>"
        ));
        assert_eq!(r.attr("type"), Some("error"), "{payload}: {r}");
        assert_eq!(
            error_condition(&r).as_deref(),
            Some(condition),
            "{payload}: {r}"
        );
    }
    // A set is not a query.
    let r = mom.iq(&format!(
        "<iq type='set' id='e2' to='localhost'><services xmlns='{EXTDISCO}'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("error"), "{r}");
    // Asked of an account rather than the server: not served there.
    let r = mom.iq(&format!(
        "<iq type='get' id='e3' to='kid@localhost'><services xmlns='{EXTDISCO}'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("error"), "{r}");
}

#[test]
fn without_a_turn_server_the_list_is_empty() {
    let s = server_with(None);
    let mut mom = Client::login(&s, "mom", "pw-mom", "phone");
    let services = result(mom.iq(&format!(
        "<iq type='get' id='s1' to='localhost'><services xmlns='{EXTDISCO}'/></iq>"
    )));
    assert_eq!(services.elements().count(), 0, "{services}");
    let r = mom.iq(&format!(
        "<iq type='get' id='c1' to='localhost'><credentials xmlns='{EXTDISCO}'>\
         <service type='turn' host='127.0.0.1'/></credentials></iq>"
    ));
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("item-not-found"),
        "{r}"
    );
}

/// coturn, started on loopback with `use-auth-secret`; killed on drop.
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start() -> Coturn {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        // Relay ports from a range picked from the port, away from the ephemeral range.
        let min = 20_000 + (port % 200) * 50;
        let d = dir.path().display();
        let conf = format!(
            "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\n\
             min-port={min}\nmax-port={}\nuse-auth-secret\nstatic-auth-secret={}\n\
             realm=localhost\nno-cli\nno-tls\nno-dtls\nfingerprint\n\
             allow-loopback-peers\nno-stdout-log\nlog-file={d}/turn.log\n\
             pidfile={d}/turn.pid\nuserdb={d}/turndb\n",
            min + 49,
            std::str::from_utf8(SECRET).unwrap()
        );
        let path = dir.path().join("turnserver.conf");
        std::fs::write(&path, conf).unwrap();
        let child = std::process::Command::new("turnserver")
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "turnserver runs (Debian package coturn; .ci/run installs it; \
                 ROOST_SKIP_COTURN=1 skips this test)",
            );
        let c = Coturn {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "coturn did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// Runs `turnutils_uclient` (client-to-client through two relays over UDP, or TCP);
    /// true if it allocated and relayed.
    fn relay_works(&self, user: &str, password: &str, tcp: bool) -> bool {
        let mut cmd = std::process::Command::new("timeout");
        cmd.args(["20", "turnutils_uclient", "-y", "-n", "2", "-m", "1"]);
        if tcp {
            cmd.arg("-t");
        }
        let out = cmd
            .args([
                "-p",
                &self.port.to_string(),
                "-u",
                user,
                "-w",
                password,
                "127.0.0.1",
            ])
            .output()
            .expect("turnutils_uclient runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        // The last tally counts every message that went through the relays.
        let relayed = text
            .rsplit("tot_recv_bytes ~ ")
            .next()
            .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        eprintln!(
            "turnutils_uclient {}: {:?}, {relayed} bytes relayed; {}",
            if tcp { "TCP" } else { "UDP" },
            out.status,
            text.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
        );
        out.status.success() && relayed > 0
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn coturn_accepts_the_credentials_roost_hands_out() {
    if std::env::var_os("ROOST_SKIP_COTURN").is_some() {
        eprintln!("skipped: ROOST_SKIP_COTURN is set");
        return;
    }
    let coturn = Coturn::start();
    let s = server_with(Some(turn(coturn.port, None)));
    let mut mom = Client::login(&s, "mom", "pw-mom", "phone");
    let services = result(mom.iq(&format!(
        "<iq type='get' id='s1' to='localhost'><services xmlns='{EXTDISCO}' type='turn'/></iq>"
    )));
    let (user, pass) = check_credentials(services.elements().next().unwrap(), "mom@localhost");
    assert!(
        coturn.relay_works(&user, &pass, false),
        "UDP relay with roost's credentials"
    );
    assert!(
        coturn.relay_works(&user, &pass, true),
        "TCP relay with roost's credentials"
    );
    // Tampered: another password, or the same password for a later expiry.
    let mut bad = pass.clone().into_bytes();
    bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert!(
        !coturn.relay_works(&user, &bad, false),
        "tampered password refused"
    );
    let (expiry, jid) = user.split_once(':').unwrap();
    let later = format!("{}:{jid}", expiry.parse::<i64>().unwrap() + 1000);
    assert!(
        !coturn.relay_works(&later, &pass, false),
        "tampered expiry refused"
    );
    // `roost check` finds it answering STUN.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("turn-secret");
    std::fs::write(&secret, SECRET).unwrap();
    let out = common::roost_cmd()
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .args([
            "--",
            "--no-s2s",
            "--bind",
            "127.0.0.1",
            "--turn-host",
            "127.0.0.1",
        ])
        .args([
            "--turn-port",
            &coturn.port.to_string(),
            "--turn-secret-file",
        ])
        .arg(&secret)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "OK    calls: coturn answers at 127.0.0.1:{} (UDP), and sees this machine as 127.0.0.1:",
            coturn.port
        ))),
        "roost check ({}): {text}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

const JMI: &str = "urn:xmpp:jingle-message:0";
const CARBONS: &str = "urn:xmpp:carbons:2";
const QUIET: Duration = Duration::from_millis(300);

/// Logs in, optionally enables carbons, and sends initial presence with `priority`.
fn online(s: &TestServer, user: &str, res: &str, priority: i8, carbons: bool) -> Client {
    let mut c = Client::login(s, user, &format!("pw-{user}"), res);
    if carbons {
        let r = c.iq("<iq type='set' id='on'><enable xmlns='urn:xmpp:carbons:2'/></iq>");
        assert_eq!(r.attr("type"), Some("result"), "{r}");
    }
    c.announce(
        res,
        &format!("<presence><priority>{priority}</priority></presence>"),
    );
    c
}

/// The next message, which must carry the call element `what` with id `call` directly.
fn direct_call(c: &mut Client, what: &str, call: &str) -> Element {
    let m = c.wait_for("a call message", |e| e.name == "message");
    let el = m
        .child(what, JMI)
        .unwrap_or_else(|| panic!("expected <{what}/> directly: {m}"));
    assert_eq!(el.attr("id"), Some(call), "{m}");
    m
}

/// The next message, which must be a carbon of `kind` forwarding `<what/>`.
fn carbon_call(c: &mut Client, kind: &str, what: &str) -> Element {
    let m = c.wait_for("a carbon", |e| e.name == "message");
    m.child(kind, CARBONS)
        .and_then(|k| k.child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.child("message", "jabber:client"))
        .filter(|inner| inner.child(what, JMI).is_some())
        .unwrap_or_else(|| panic!("expected a {kind} carbon of <{what}/>: {m}"))
        .clone()
}

/// The next message, which must be a carbon of `kind` forwarding a chat state.
fn carbon_chat_state(c: &mut Client, kind: &str) {
    let m = c.wait_for("a carbon", |e| e.name == "message");
    assert!(
        m.child(kind, CARBONS).is_some() && m.to_string().contains("composing"),
        "{m}"
    );
}

/// The call elements in `user`'s archive with `with`, oldest first.
fn archived_calls(c: &mut Client, with: &str) -> Vec<String> {
    c.send(&format!(
        "<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
         <field var='with'><value>{with}</value></field></x></query></iq>"
    ));
    let mut out = Vec::new();
    for _ in 0..100 {
        let e = c.element();
        if e.name == "iq" && e.attr("id") == Some("mam") {
            assert_eq!(e.attr("type"), Some("result"), "{e}");
            return out;
        }
        if let Some(inner) = e
            .child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.child("message", "jabber:client"))
        {
            out.extend(
                inner
                    .elements()
                    .filter(|x| x.ns == JMI)
                    .map(|x| x.name.to_string()),
            );
        }
    }
    panic!("no end to the archive query");
}

#[test]
fn call_invitations_ring_everywhere_are_copied_archived_and_not_held_back() {
    let s = server_with(None);
    let mut mom_phone = online(&s, "mom", "phone", 0, true);
    let mut mom_laptop = online(&s, "mom", "laptop", 0, true);
    // kid: a tablet of highest priority, a phone that says it is inactive (CSI), a watch
    // of negative priority with carbons.
    let mut tablet = online(&s, "kid", "tablet", 5, false);
    let mut phone = online(&s, "kid", "phone", 0, false);
    let mut watch = online(&s, "kid", "watch", -1, true);
    phone.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    for c in [
        &mut mom_phone,
        &mut mom_laptop,
        &mut tablet,
        &mut phone,
        &mut watch,
    ] {
        c.drain(QUIET);
    }
    // A typing notification to the inactive phone waits (CSI is on)…
    mom_phone.send(
        "<message to='kid@localhost/phone' type='chat'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    phone.assert_silent(QUIET);
    // (its carbons)
    carbon_chat_state(&mut watch, "received");
    carbon_chat_state(&mut mom_laptop, "sent");

    // …but the call rings at once on every device of kid's; mom's laptop sees it went out.
    mom_phone.send(&format!(
        "<message to='kid@localhost' type='chat' id='m1'><propose xmlns='{JMI}' id='call1'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>"
    ));
    direct_call(&mut tablet, "propose", "call1");
    direct_call(&mut phone, "propose", "call1");
    carbon_call(&mut watch, "received", "propose");
    carbon_call(&mut mom_laptop, "sent", "propose");

    // A retract of type normal (older clients) takes the same way.
    mom_phone.send(&format!(
        "<message to='kid@localhost' id='m2'><retract xmlns='{JMI}' id='call1'/></message>"
    ));
    direct_call(&mut tablet, "retract", "call1");
    direct_call(&mut phone, "retract", "call1");
    carbon_call(&mut watch, "received", "retract");
    carbon_call(&mut mom_laptop, "sent", "retract");

    // A second call, answered from the tablet to mom's phone: kid's watch learns it was
    // taken, mom's laptop stops ringing.
    mom_phone.send(&format!(
        "<message to='kid@localhost' type='chat' id='m3'><propose xmlns='{JMI}' id='call2'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'/></propose></message>"
    ));
    direct_call(&mut tablet, "propose", "call2");
    direct_call(&mut phone, "propose", "call2");
    carbon_call(&mut watch, "received", "propose");
    carbon_call(&mut mom_laptop, "sent", "propose");
    tablet.send(&format!(
        "<message to='mom@localhost/phone' type='chat' id='m4'>\
         <proceed xmlns='{JMI}' id='call2'/></message>"
    ));
    direct_call(&mut mom_phone, "proceed", "call2");
    carbon_call(&mut mom_laptop, "received", "proceed");
    carbon_call(&mut watch, "sent", "proceed");

    // The typing notification is still waiting, and comes when the phone is active.
    phone.assert_silent(QUIET);
    phone.send("<active xmlns='urn:xmpp:csi:0'/>");
    let m = phone.wait_for("the held chat state", |e| e.name == "message");
    assert!(
        m.child("composing", "http://jabber.org/protocol/chatstates")
            .is_some(),
        "{m}"
    );

    // Both archives keep the calls, so a missed call shows later.
    let want = ["propose", "retract", "propose", "proceed"];
    assert_eq!(archived_calls(&mut watch, "mom@localhost"), want);
    assert_eq!(archived_calls(&mut mom_laptop, "kid@localhost"), want);
    for c in [&mut mom_phone, &mut mom_laptop, &mut tablet, &mut watch] {
        c.assert_silent(QUIET);
    }
}

#[test]
fn a_call_to_an_offline_account_shows_later() {
    let s = server_with(None);
    let mut mom = online(&s, "mom", "phone", 0, false);
    mom.send(&format!(
        "<message to='kid@localhost' type='chat' id='m1'><propose xmlns='{JMI}' id='call1'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>"
    ));
    mom.send(&format!(
        "<message to='kid@localhost' type='chat' id='m2'><retract xmlns='{JMI}' id='call1'/></message>"
    ));
    mom.assert_silent(QUIET);
    let mut kid = Client::login(&s, "kid", "pw-kid", "tablet");
    kid.send("<presence/>");
    // Offline delivery, with its delay stamp, after the own presence.
    let p = kid.wait_for("offline propose", |e| e.name == "message");
    assert!(p.child("propose", JMI).is_some(), "{p}");
    assert!(p.child("delay", "urn:xmpp:delay").is_some(), "{p}");
    let r = kid.wait_for("offline retract", |e| e.name == "message");
    assert!(r.child("retract", JMI).is_some(), "{r}");
    assert_eq!(
        archived_calls(&mut kid, "mom@localhost"),
        ["propose", "retract"]
    );
}
