//! The `roost` binary: account commands against a running server's data directory, bad input
//! with clear messages and non-zero exits, and `serve` under signals (SIGHUP reload, SIGTERM).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roost");

/// A command running the roost binary, through the cross runner (qemu) when the tests run
/// for another architecture (cross/test-qemu.sh exports the runners).
fn roost_cmd() -> Command {
    let runner = match std::env::consts::ARCH {
        "aarch64" => std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok(),
        "arm" => std::env::var("CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER").ok(),
        _ => None,
    };
    let mut parts = runner.as_deref().unwrap_or("").split_whitespace();
    match parts.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(parts).arg(BIN);
            c
        }
        None => Command::new(BIN),
    }
}

/// Runs `roost ARGS` with `stdin` piped in.
fn roost(args: &[&str], stdin: &str) -> Output {
    let mut child = roost_cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run roost");
    // roost may exit on bad input before it reads stdin: a broken pipe is fine here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Tries SCRAM-SHA-256 over direct TLS; Ok on success, Err(condition) on failure.
fn try_login(s: &TestServer, user: &str, password: &str) -> Result<(), String> {
    let mut c = Client::connect_tls(s);
    c.open();
    c.scram(roost::sasl::Mechanism::ScramSha256, user, password, None)
}

#[test]
fn adduser_passwd_deluser_with_a_login_between_each() {
    let s = TestServer::start();
    let dir = s.dir.path().to_str().unwrap().to_owned();
    let out = roost(
        &["adduser", "Kid@LocalHost", "--data-dir", &dir],
        "first pw\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(try_login(&s, "kid", "first pw"), Ok(()));

    let out = roost(
        &["passwd", "kid@localhost", "--data-dir", &dir],
        "second pw\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        try_login(&s, "kid", "first pw"),
        Err("not-authorized".into())
    );
    assert_eq!(try_login(&s, "kid", "second pw"), Ok(()));

    let out = roost(&["users", "--data-dir", &dir], "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kid@localhost\n");

    let out = roost(&["deluser", "kid@localhost", "--data-dir", &dir], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        try_login(&s, "kid", "second pw"),
        Err("not-authorized".into())
    );
    let out = roost(&["users", "--data-dir", &dir], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn bad_input_gets_a_clear_message_and_a_failure_exit() {
    let s = TestServer::start();
    s.add_user("mom", "pw");
    let dir = s.dir.path().to_str().unwrap().to_owned();
    let cases: [(&[&str], &str, &str); 8] = [
        (&["adduser", "not@a@jid"], "pw\n", "not@a@jid"),
        (&["adduser", "localhost"], "pw\n", "needs a name"),
        (&["adduser", "x@elsewhere.example"], "pw\n", "not served"),
        (&["adduser", "mom@localhost"], "pw\n", "already exists"),
        (&["adduser", "new@localhost"], "\n", "empty"),
        (&["passwd", "nobody@localhost"], "pw\n", "no such account"),
        (&["deluser", "nobody@localhost"], "", "no such account"),
        (
            &["adduser", "bad user@localhost"],
            "pw\n",
            "bad user@localhost",
        ),
    ];
    for (args, input, want) in cases {
        let mut full = args.to_vec();
        full.extend(["--data-dir", &dir]);
        let out = roost(&full, input);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(
            err.contains(want),
            "{args:?}: {err:?} should mention {want:?}"
        );
    }
    // Nothing stored was lost on the way.
    assert_eq!(try_login(&s, "mom", "pw"), Ok(()));
    let out = roost(&["serve", "--log-level", "loud"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--log-level"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["adduser", "--help"],
        vec!["passwd", "--help"],
        vec!["deluser", "--help"],
        vec!["users", "--help"],
    ] {
        let out = roost(&sub, "");
        assert!(out.status.success(), "{sub:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{sub:?}: {text}");
    }
}

/// A `roost serve` process on ephemeral loopback ports.
struct Served {
    child: Child,
    c2s: SocketAddr,
    tls: SocketAddr,
    dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut child = roost_cmd()
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--c2s-port",
                "0",
                "--c2s-tls-port",
                "0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the listening addresses from the log.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut c2s, mut tls) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while c2s.is_none() || tls.is_none() {
            assert!(Instant::now() < deadline, "server did not start: {seen:?}");
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("server exited before listening ({status:?}): {seen:?}");
            };
            seen.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr: SocketAddr = rest.split(' ').next().unwrap().parse().unwrap();
                if rest.contains("direct TLS") {
                    tls = Some(addr);
                } else {
                    c2s = Some(addr);
                }
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Served {
            child,
            c2s: c2s.unwrap(),
            tls: tls.unwrap(),
            dir,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn cert(&self) -> rustls::pki_types::CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(self.dir.path().join("localhost.crt"))
            .unwrap()
    }

    fn client(&self, cert: rustls::pki_types::CertificateDer<'static>) -> Client {
        let tls = trusting(cert, &[&rustls::version::TLS13]);
        Client::connect_to(self.c2s, "localhost", tls)
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_reloads_the_certificate_and_sigterm_closes_streams() {
    let mut s = Served::start();
    let dir = s.dir.path().to_str().unwrap().to_owned();
    let out = roost(&["adduser", "mom@localhost", "--data-dir", &dir], "pw\n");
    assert!(out.status.success(), "{}", stderr(&out));

    let mut old = s.client(s.cert());
    old.login_as("mom", "pw", "before-reload");

    // Replace the certificate files, then SIGHUP.
    let fresh = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(s.dir.path().join("localhost.crt"), fresh.cert.pem()).unwrap();
    std::fs::write(
        s.dir.path().join("localhost.key"),
        fresh.key_pair.serialize_pem(),
    )
    .unwrap();
    let fresh_der = fresh.cert.der().clone();
    s.signal("-HUP");

    // New connections get the new certificate (bounded retry while the signal lands).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = std::net::TcpStream::connect(s.tls).unwrap();
        let cfg = trusting(fresh_der.clone(), &[&rustls::version::TLS13]);
        let conn = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        if stream.conn.complete_io(&mut stream.sock).is_ok() && !stream.conn.is_handshaking() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut new = s.client(fresh_der);
    new.login_as("mom", "pw", "after-reload");

    // The session from before the reload is still up.
    old.send("<message to='mom@localhost/after-reload' id='still'><body>up</body></message>");
    let m = new.element();
    assert_eq!(m.attr("id"), Some("still"));

    // SIGTERM: every stream is closed with an error and </stream:stream>, exit 0.
    s.signal("-TERM");
    assert_eq!(old.expect_stream_error(), "system-shutdown");
    assert_eq!(new.expect_stream_error(), "system-shutdown");
    let st = s.wait_exit();
    assert!(st.success(), "exit status {st}");
}
