//! `roost check`: the binary against a running `roost serve` on loopback with a nameserver
//! of the test's own (ROOST_CHECK_NAMESERVER) and a fake coturn answering STUN; then
//! against a stopped server's data directory with every kind of problem: a certificate
//! missing a name and expiring in days, open modes, a foreign owner, a port held by another
//! program, SRV records pointing at the wrong port or missing, a dead STUN server.

mod common;

use simple_dns::{rdata::RData, Name, Packet, ResourceRecord, CLASS, QTYPE, TYPE};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DOMAIN: &str = "example.test";

/// A record the test nameserver answers with.
#[derive(Clone)]
enum Rec {
    A(Ipv4Addr),
    Srv(u16, &'static str),
}

/// A nameserver on 127.0.0.1 answering from a table; stops when dropped.
struct Dns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Dns {
    fn start(table: Vec<(String, Rec)>) -> Dns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut by_name: HashMap<String, Vec<Rec>> = HashMap::new();
        for (n, r) in table {
            by_name.entry(n).or_default().push(r);
        }
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let Some(question) = q.questions.first() else {
                    continue;
                };
                let qname = question.qname.to_string();
                let qname = qname.trim_end_matches('.').to_owned();
                let mut reply = Packet::new_reply(q.id());
                reply.questions.push(question.clone());
                for rec in by_name.get(&qname).into_iter().flatten() {
                    let rdata = match (rec, question.qtype) {
                        (Rec::A(ip), QTYPE::TYPE(TYPE::A)) => RData::A(simple_dns::rdata::A {
                            address: u32::from(*ip),
                        }),
                        (Rec::Srv(port, target), QTYPE::TYPE(TYPE::SRV)) => {
                            RData::SRV(simple_dns::rdata::SRV {
                                priority: 0,
                                weight: 5,
                                port: *port,
                                target: Name::new_unchecked(target),
                            })
                        }
                        _ => continue,
                    };
                    reply.answers.push(ResourceRecord::new(
                        Name::new_unchecked(&qname),
                        CLASS::IN,
                        60,
                        rdata,
                    ));
                }
                let _ = sock.send_to(&reply.build_bytes_vec().unwrap(), from);
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A STUN server answering binding requests with the sender's address (RFC 5389), or,
/// `dead`, a socket that never answers.
struct Stun {
    port: u16,
    answered: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Stun {
    fn start(dead: bool) -> Stun {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stopped, count) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let m = &buf[..n];
                if dead || n < 20 || m[0..2] != [0, 1] || m[4..8] != [0x21, 0x12, 0xa4, 0x42] {
                    continue;
                }
                let SocketAddr::V4(v4) = from else { continue };
                let mut r = vec![0x01, 0x01, 0x00, 0x0c];
                r.extend_from_slice(&m[4..20]);
                r.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
                r.extend_from_slice(&(v4.port() ^ 0x2112).to_be_bytes());
                let ip = u32::from(*v4.ip()) ^ 0x2112_a442;
                r.extend_from_slice(&ip.to_be_bytes());
                let _ = sock.send_to(&r, from);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Stun {
            port,
            answered,
            stop,
        }
    }
}

impl Drop for Stun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A certificate for `names` valid until `days` from now, written as cert.pem/key.pem.
fn certificate(dir: &Path, names: &[&str], days: u64) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + (now - Duration::from_secs(86_400));
    params.not_after =
        rcgen::date_time_ymd(1970, 1, 1) + (now + Duration::from_secs(days * 86_400));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.to_str().unwrap().into(), k.to_str().unwrap().into())
}

/// The flags of one test server.
struct Setup {
    ports: [u16; 5],
    args: Vec<String>,
}

impl Setup {
    fn new(cert: &(String, String), turn_port: u16, secret: &Path) -> Setup {
        let ports = [
            common::free_port(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
        ];
        let mut args: Vec<String> = [
            "--domain",
            DOMAIN,
            "--bind",
            "127.0.0.1",
            "--cert",
            &cert.0,
            "--key",
            &cert.1,
            "--turn-host",
            "127.0.0.1",
            "--turn-secret-file",
            secret.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (flag, port) in [
            "--c2s-port",
            "--c2s-tls-port",
            "--s2s-port",
            "--s2s-tls-port",
            "--https-port",
        ]
        .iter()
        .zip(ports)
        {
            args.push(flag.to_string());
            args.push(port.to_string());
        }
        args.push("--turn-port".into());
        args.push(turn_port.to_string());
        Setup { ports, args }
    }

    /// The records of a correct setup, all at `xmpp.example.test` (127.0.0.1).
    fn good_records(&self) -> Vec<(String, Rec)> {
        let [c2s, c2s_tls, s2s, s2s_tls, _] = self.ports;
        let host = "xmpp.example.test";
        vec![
            (format!("_xmpp-client._tcp.{DOMAIN}"), Rec::Srv(c2s, host)),
            (
                format!("_xmpps-client._tcp.{DOMAIN}"),
                Rec::Srv(c2s_tls, host),
            ),
            (format!("_xmpp-server._tcp.{DOMAIN}"), Rec::Srv(s2s, host)),
            (
                format!("_xmpps-server._tcp.{DOMAIN}"),
                Rec::Srv(s2s_tls, host),
            ),
            (host.into(), Rec::A(Ipv4Addr::LOCALHOST)),
            (DOMAIN.into(), Rec::A(Ipv4Addr::new(127, 0, 0, 2))),
            (format!("groups.{DOMAIN}"), Rec::A(Ipv4Addr::LOCALHOST)),
            (format!("upload.{DOMAIN}"), Rec::A(Ipv4Addr::LOCALHOST)),
        ]
    }
}

/// `roost check` with ROOST_ARGS in a defaults file, on `data_dir`, asking `dns`.
fn check(setup_args: &[String], data_dir: &Path, dns: &Dns, user: Option<&str>) -> Output {
    let defaults = data_dir.parent().unwrap().join("default-roost");
    std::fs::write(
        &defaults,
        format!(
            "# as /etc/default/roost\nROOST_ARGS=\"{}\"\n",
            setup_args.join(" ")
        ),
    )
    .unwrap();
    let mut cmd = common::roost_cmd();
    cmd.arg("check")
        .arg("--defaults-file")
        .arg(&defaults)
        .arg("--data-dir")
        .arg(data_dir)
        .env("ROOST_CHECK_NAMESERVER", dns.addr.to_string());
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    // Bounded: every wait inside is (DNS 3 s a query, STUN 3 s), so the whole is too.
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The line starting with `level` and containing `what`, and the fix line after it.
fn finding(out: &str, level: &str, what: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(level) && l.contains(what))
        .unwrap_or_else(|| panic!("no {level} line with {what:?} in:\n{out}"));
    if level != "OK" {
        assert!(
            lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("fix: ")),
            "{level} without a fix: {out}"
        );
        return format!("{}\n{}", lines[i], lines[i + 1]);
    }
    lines[i].to_owned()
}

/// `roost serve` with `args` on `data_dir`, until it serves.
fn serve(args: &[String], data_dir: &Path) -> Child {
    let mut child = common::roost_cmd()
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "server did not start: {seen:?}");
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("server exited: {seen:?}");
        };
        if line.contains("roost serving") {
            break;
        }
        seen.push(line);
    }
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    child
}

#[test]
fn a_running_server_with_good_records_and_coturn_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let names = [DOMAIN, "groups.example.test", "upload.example.test"];
    let cert = certificate(tmp.path(), &names, 80);
    let secret = tmp.path().join("turn-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let stun = Stun::start(false);
    let setup = Setup::new(&cert, stun.port, &secret);
    let data = tmp.path().join("data");
    let mut server = serve(&setup.args, &data);
    let dns = Dns::start(setup.good_records());
    let out = check(&setup.args, &data, &dns, None);
    let _ = server.kill();
    let _ = server.wait();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    finding(
        &text,
        "OK",
        &format!("roost is running (process {})", server.id()),
    );
    finding(&text, "OK", "mode 0700; the database is private");
    finding(
        &text,
        "OK",
        "covers example.test, groups.example.test, upload.example.test",
    );
    finding(&text, "OK", "certificate: valid until");
    for port in setup.ports {
        let line = finding(&text, "OK", &format!("port {port} "));
        assert!(line.ends_with("roost listens on it"), "{line}");
    }
    for service in [
        "_xmpp-client",
        "_xmpps-client",
        "_xmpp-server",
        "_xmpps-server",
    ] {
        finding(
            &text,
            "OK",
            &format!("{service}._tcp.example.test → xmpp.example.test:"),
        );
    }
    finding(&text, "OK", "DNS: groups.example.test → 127.0.0.1");
    finding(
        &text,
        "OK",
        "every name points at the same machine (127.0.0.1)",
    );
    // Loopback is private: said, but not a failure.
    finding(&text, "WARN", "private addresses (127.0.0.1)");
    finding(
        &text,
        "OK",
        &format!(
            "coturn answers at 127.0.0.1:{} (UDP), and sees this machine as 127.0.0.1:",
            stun.port
        ),
    );
    assert!(stun.answered.load(Ordering::Relaxed) >= 1);
}

#[test]
fn every_problem_is_named_with_its_fix() {
    let tmp = tempfile::tempdir().unwrap();
    // A name missing (upload.) and five days left.
    let cert = certificate(tmp.path(), &[DOMAIN, "groups.example.test"], 5);
    let secret = tmp.path().join("turn-secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let stun = Stun::start(true);
    let setup = Setup::new(&cert, stun.port, &secret);
    let data = tmp.path().join("data");
    // A data directory the server made, then opened up.
    std::fs::create_dir(&data).unwrap();
    drop(roost::storage::open_connection(&data).unwrap());
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = roost::storage::db_path(&data);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Another program on the client port.
    let squatter = TcpListener::bind(("127.0.0.1", setup.ports[0])).unwrap();
    // The client record names the wrong port; no server records; no groups. record.
    let [c2s, c2s_tls, ..] = setup.ports;
    let host = "xmpp.example.test";
    let records = vec![
        (
            format!("_xmpp-client._tcp.{DOMAIN}"),
            Rec::Srv(c2s + 1, host),
        ),
        (
            format!("_xmpps-client._tcp.{DOMAIN}"),
            Rec::Srv(c2s_tls, host),
        ),
        (host.into(), Rec::A(Ipv4Addr::LOCALHOST)),
        (
            format!("upload.{DOMAIN}"),
            Rec::A(Ipv4Addr::new(127, 0, 0, 3)),
        ),
    ];
    let dns = Dns::start(records);
    let out = check(&setup.args, &data, &dns, None);
    drop(squatter);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    finding(&text, "OK", "roost is not running");
    assert!(
        finding(&text, "FAIL", "has mode 0755: other users can look in").contains("chmod 0750")
    );
    assert!(finding(&text, "FAIL", "roost.db has mode 0644").contains("chmod 0600"));
    assert!(finding(&text, "FAIL", "does not cover upload.example.test")
        .contains("certbot certonly --expand -d example.test -d groups.example.test -d upload.example.test"));
    let expiring = finding(&text, "WARN", "cert.pem expires in ");
    assert!(
        expiring.contains("in 4 day(s)") || expiring.contains("in 5 day(s)"),
        "{expiring}"
    );
    assert!(expiring.contains("certbot renew"));
    let me = std::process::id();
    assert!(finding(
        &text,
        "FAIL",
        &format!("port {c2s} (client (STARTTLS)): in use by")
    )
    .contains("another port"));
    assert!(
        text.contains(&format!("(process {me}), not by roost")),
        "{text}"
    );
    finding(
        &text,
        "OK",
        &format!("port {c2s_tls} (client (direct TLS)): free for roost"),
    );
    assert!(finding(
        &text,
        "FAIL",
        &format!(
            "_xmpp-client._tcp.example.test points at port {}, but roost listens on {c2s}",
            c2s + 1
        )
    )
    .contains(&format!("SRV 0 5 {c2s} xmpp.example.test.")));
    // No server record, and the domain has no address to fall back on.
    assert!(
        finding(&text, "FAIL", "no _xmpp-server._tcp.example.test record")
            .contains("_xmpp-server._tcp.example.test. 3600 IN SRV 0 5")
    );
    finding(&text, "WARN", "no _xmpps-server._tcp.example.test record");
    assert!(finding(&text, "FAIL", "groups.example.test has no A/AAAA")
        .contains("groups.example.test. 3600 IN CNAME example.test."));
    assert!(finding(&text, "WARN", "upload.example.test (127.0.0.3) and xmpp.example.test (127.0.0.1) point at different machines")
        .contains("point upload.example.test at the machine"));
    assert!(finding(
        &text,
        "FAIL",
        &format!("nothing answers STUN at 127.0.0.1:{}", stun.port)
    )
    .contains("systemctl enable --now coturn"));

    // A data directory owned by someone else than the user roost runs as.
    if std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    {
        std::os::unix::fs::chown(&db, Some(65534), None).unwrap();
        let out = check(&setup.args, &data, &dns, Some("root"));
        let text = stdout(&out);
        assert!(finding(&text, "FAIL", "roost.db belongs to").contains("chown root: "));
    }
}

#[test]
fn settings_serve_would_refuse_are_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dns = Dns::start(Vec::new());
    let out = check(
        &["--c2s-port".into(), "many".into()],
        &tmp.path().join("data"),
        &dns,
        None,
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        finding(&text, "FAIL", "`roost serve` would refuse ROOST_ARGS in")
            .contains("roost serve --help")
    );
    // A domain nobody else can reach is said plainly.
    let out = common::roost_cmd()
        .args(["check", "--data-dir"])
        .arg(tmp.path())
        .args([
            "--",
            "--domain",
            "localhost",
            "--no-s2s",
            "--bind",
            "127.0.0.1",
        ])
        .env("ROOST_CHECK_NAMESERVER", dns.addr.to_string())
        .output()
        .unwrap();
    let text = stdout(&out);
    finding(&text, "WARN", "localhost is a name only this machine knows");
}
