//! The `roost` binary: account commands against a running server's data directory, bad input
//! with clear messages and non-zero exits, and `serve` under signals (SIGHUP reload, SIGTERM).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `roost ARGS` with `stdin` piped in.
fn roost(args: &[&str], stdin: &str) -> Output {
    let mut child = common::roost_cmd()
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
    let cases: [(&[&str], &str, &str); 10] = [
        (&["adduser", "not@a@jid"], "pw\n", "not@a@jid"),
        (&["adduser", "localhost"], "pw\n", "needs a name"),
        (&["adduser", "x@elsewhere.example"], "pw\n", "not served"),
        (&["adduser", "mom@localhost"], "pw\n", "already exists"),
        (&["adduser", "new@localhost"], "\n", "empty"),
        (&["adduser", "new@localhost"], "short\n", "shorter than 8"),
        (
            &["passwd", "mom@localhost"],
            "1234567\n",
            "--allow-weak-password",
        ),
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
    let out = roost(&["users", "--data-dir", &dir], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@localhost\n");
    // A weak password is accepted when asked for.
    let out = roost(
        &[
            "adduser",
            "kid@localhost",
            "--allow-weak-password",
            "--data-dir",
            &dir,
        ],
        "1234\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(try_login(&s, "kid", "1234"), Ok(()));
    let out = roost(&["serve", "--log-level", "loud"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--log-level"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "serve",
        "adduser",
        "passwd",
        "deluser",
        "users",
        "rename-domain",
        "cert-fingerprint",
        "turn-setup",
        "rooms",
        "room-add",
        "room-remove",
        "role",
        "circle",
        "circles",
        "check",
        "invite",
        "invites",
        "uninvite",
        "backup",
        "restore",
        "export",
        "import",
    ] {
        for help in ["--help", "-h"] {
            let out = roost(&[sub, help], "");
            assert!(out.status.success(), "{sub} {help}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("Usage: roost {sub}")),
                "{sub} {help}: {text}"
            );
        }
        // The top-level help lists it.
        let out = roost(&["-h"], "");
        assert!(String::from_utf8_lossy(&out.stdout).contains(sub), "{sub}");
    }
    for version in ["--version", "-V"] {
        let out = roost(&[version], "");
        assert!(out.status.success(), "{version}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("roost {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn a_missing_argument_points_to_the_subcommands_help() {
    for (args, want) in [
        (&["adduser"][..], "roost adduser --help"),
        (&["passwd"][..], "roost passwd --help"),
        (
            &["rename-domain", "localhost"][..],
            "roost rename-domain --help",
        ),
        (&["adduser", "--bogus", "a@b"][..], "roost adduser --help"),
        (&[][..], "roost --help"),
        (&["frobnicate"][..], "roost --help"),
    ] {
        let out = roost(args, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

/// `roost ARGS --data-dir DIR`: the data directory comes last.
fn roost_in(args: &[&str], dir: &std::path::Path, stdin: &str) -> Output {
    let mut full = args.to_vec();
    let dir = dir.to_str().unwrap();
    full.extend(["--data-dir", dir]);
    roost(&full, stdin)
}

#[test]
fn account_commands_refuse_a_data_directory_that_is_not_the_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("roost-data");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let commands: [(&[&str], &str); 5] = [
        (&["adduser", "mom@localhost"], "long enough\n"),
        (&["passwd", "mom@localhost"], "long enough\n"),
        (&["deluser", "--yes", "mom@localhost"], ""),
        (&["users"], ""),
        (&["rename-domain", "--yes", "localhost", "example.org"], ""),
    ];
    for (args, input) in commands {
        for (dir, want) in [
            (&missing, "does not exist"),
            (&file, "is a file"),
            (&empty, "holds no roost database"),
        ] {
            let out = roost_in(args, dir, input);
            assert!(!out.status.success(), "{args:?} {dir:?}");
            let err = stderr(&out);
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(
                err.contains(&*dir.to_string_lossy()),
                "names the path: {err}"
            );
            assert!(err.contains("--data-dir /var/lib/roost"), "the hint: {err}");
        }
    }
    // Nothing was created on the way.
    assert!(!missing.exists());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// A data directory holding `mom@DOMAIN` (password "mom password"), as the server and
/// `roost adduser` would leave it.
fn data_dir_with_mom(domain: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = roost::storage::open_connection(dir.path()).unwrap();
    roost::storage::accounts::set_served_domain(&conn, domain).unwrap();
    let creds = roost::sasl::StoredCredentials::derive("mom password", 4096);
    roost::storage::accounts::create(&conn, domain, "mom", &creds).unwrap();
    dir
}

/// `roost serve` on ephemeral loopback ports that is expected to refuse to start.
fn serve_refused(args: &[&str]) -> String {
    let mut full = vec![
        "serve",
        "--bind",
        "127.0.0.1",
        "--c2s-port",
        "0",
        "--c2s-tls-port",
        "0",
        "--https-port",
        "0",
        "--s2s-port",
        "0",
        "--s2s-tls-port",
        "0",
    ];
    full.extend(args);
    // Bounded: a server that did start would be killed by the test's end, but `roost`
    // here waits for exit, so run it with a deadline.
    let mut child = common::roost_cmd()
        .args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roost {full:?} did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{full:?}: {err}");
    err
}

#[test]
fn serve_refuses_another_domains_data_until_rename_domain_moves_it() {
    let dir = data_dir_with_mom("localhost");
    let path = dir.path().to_str().unwrap().to_owned();
    let err = serve_refused(&["--domain", "example.org", "--data-dir", &path]);
    assert!(
        err.contains(&format!(
            "roost rename-domain localhost example.org --data-dir {path}"
        )),
        "{err}"
    );
    assert!(err.contains("another --data-dir"), "{err}");
    // Nothing was relabelled: the account commands still see localhost.
    let out = roost_in(&["users"], dir.path(), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@localhost\n");
    let out = roost_in(&["adduser", "dad@example.org"], dir.path(), "long enough\n");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not served"), "{}", stderr(&out));

    // Bad renames change nothing.
    for (args, want) in [
        (
            &["rename-domain", "--yes", "other.example", "example.org"][..],
            "serves localhost",
        ),
        (
            &["rename-domain", "--yes", "localhost", "localhost"][..],
            "the same",
        ),
        (
            &["rename-domain", "--yes", "localhost", "bad domain"][..],
            "bad domain",
        ),
    ] {
        let out = roost_in(args, dir.path(), "");
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = roost_in(&["users"], dir.path(), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@localhost\n");

    let out = roost_in(
        &["rename-domain", "--yes", "localhost", "example.org"],
        dir.path(),
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roost_in(&["users"], dir.path(), "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@example.org\n");
    // Now the old domain is refused, and the new one serves mom with her password.
    let err = serve_refused(&["--domain", "localhost", "--data-dir", &path]);
    assert!(err.contains("rename-domain example.org localhost"), "{err}");
    let s = TestServer::start_in(dir, |c| c.domain = "example.org".into());
    assert_eq!(try_login(&s, "mom", "mom password"), Ok(()));
}

#[test]
fn serve_errors_name_the_path_and_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = serve_refused(&["--data-dir", file.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{} is a file", file.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");

    let orphan = tmp.path().join("no-such-parent").join("roost-data");
    let err = serve_refused(&["--data-dir", orphan.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "its parent directory {} does not exist",
            tmp.path().join("no-such-parent").display()
        )),
        "{err}"
    );
    assert!(!orphan.exists());

    // A key that is not the certificate's.
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
    let data = tmp.path().join("data");
    let err = serve_refused(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(
        err.contains(&format!("{} does not match", key.display())),
        "{err}"
    );
    assert!(err.contains(&*cert.to_string_lossy()), "{err}");
}

#[test]
fn a_new_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("roost-data");
    // Refused after creating the data directory (the certificate is missing).
    serve_refused(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--cert",
        tmp.path().join("none.pem").to_str().unwrap(),
        "--key",
        tmp.path().join("none.key").to_str().unwrap(),
    ]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("roost.db")), 0o600);
}

/// Skips stanzas until a stream error comes (bounded): its condition and text.
fn stream_error(c: &mut Client) -> (String, String) {
    for _ in 0..100 {
        match c.next() {
            Got::Element(e) if e.is("error", NS_STREAM) => {
                let condition = e
                    .elements()
                    .find(|c| c.ns == NS_STREAMS && c.name != "text")
                    .expect("a condition")
                    .name
                    .to_string();
                let text = e.child("text", NS_STREAMS).map(|t| t.text());
                return (condition, text.unwrap_or_default());
            }
            Got::Element(_) => continue,
            other => panic!("expected a stream error, got {other:?}"),
        }
    }
    panic!("no stream error among 100 stanzas");
}

#[test]
fn deleting_an_account_or_changing_its_password_ends_its_live_sessions() {
    let s = TestServer::start();
    s.add_user("kid", "kid password");
    s.add_user("mom", "mom password");
    let mut kid = Client::login(&s, "kid", "kid password", "phone");
    let mut mom = Client::login(&s, "mom", "mom password", "laptop");
    let mut mom2 = Client::login(&s, "mom", "mom password", "phone");

    let out = roost_in(&["deluser", "--yes", "kid@localhost"], s.dir.path(), "");
    assert!(out.status.success(), "{}", stderr(&out));
    // Counted from the deletion's commit (the command's exit): the server's part.
    let started = Instant::now();
    let (condition, text) = stream_error(&mut kid);
    assert_eq!(condition, "not-authorized");
    assert!(text.contains("deleted"), "{text}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    // Mom's sessions are not touched by it.
    mom.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(mom.element().attr("id"), Some("p1"));

    let out = roost_in(
        &["passwd", "mom@localhost"],
        s.dir.path(),
        "new mom password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let started = Instant::now();
    let (condition, text) = stream_error(&mut mom);
    assert_eq!(condition, "not-authorized");
    assert!(text.contains("password"), "{text}");
    assert_eq!(mom2.wait_stream_error(), "not-authorized");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert_eq!(try_login(&s, "mom", "new mom password"), Ok(()));
}

#[test]
fn cert_fingerprint_prints_the_served_certificates_fingerprints() {
    let s = TestServer::start();
    let out = roost_in(&["cert-fingerprint"], s.dir.path(), "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let f = roost::net::tls::fingerprints_of(&s.cert());
    assert!(text.contains(&format!("SHA-256: {}", f.sha256)), "{text}");
    assert!(text.contains(&format!("SHA-1:   {}", f.sha1)), "{text}");
    // Another domain's certificate is not there: a clear error.
    let out = roost_in(
        &["cert-fingerprint", "--domain", "example.org"],
        s.dir.path(),
        "",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("example.org.crt"), "{}", stderr(&out));
}

/// A `roost serve` process on ephemeral loopback ports.
struct Served {
    child: Child,
    c2s: SocketAddr,
    tls: SocketAddr,
    https: SocketAddr,
    dir: tempfile::TempDir,
    /// The server's log lines after the listening ones.
    log: std::sync::mpsc::Receiver<String>,
}

impl Served {
    fn start() -> Served {
        Served::start_with(&[])
    }

    /// With `extra` flags.
    fn start_with(extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut child = common::roost_cmd()
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--c2s-port",
                "0",
                "--c2s-tls-port",
                "0",
                "--https-port",
                "0",
                "--s2s-port",
                "0",
                "--s2s-tls-port",
                "0",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the listening addresses from the log.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut c2s, mut tls, mut https) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while c2s.is_none() || tls.is_none() || https.is_none() {
            assert!(Instant::now() < deadline, "server did not start: {seen:?}");
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("server exited before listening ({status:?}): {seen:?}");
            };
            seen.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr: SocketAddr = rest.split(' ').next().unwrap().parse().unwrap();
                if rest.contains("(HTTPS") {
                    https = Some(addr);
                } else if rest.contains("(direct TLS)") {
                    tls = Some(addr);
                } else if rest.contains("(STARTTLS)") {
                    c2s = Some(addr);
                }
            }
        }
        // The start-up lines up to "roost serving" (the HTTP service's base URL among
        // them) are not part of what tests read.
        while !seen.last().is_some_and(|l| l.contains("roost serving")) {
            assert!(Instant::now() < deadline, "server did not start: {seen:?}");
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("server exited while starting ({status:?}): {seen:?}");
            };
            seen.push(line);
        }
        // Keep draining the log so the server never blocks on a full pipe.
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Served {
            child,
            c2s: c2s.unwrap(),
            tls: tls.unwrap(),
            https: https.unwrap(),
            dir,
            log,
        }
    }

    /// Log lines until one contains `want` (bounded); all of them.
    fn log_until(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(want);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no log line with {want:?}: {seen:?}"),
            }
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
    let out = roost(
        &["adduser", "mom@localhost", "--data-dir", &dir],
        "mom password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let mut old = s.client(s.cert());
    old.login_as("mom", "mom password", "before-reload");

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
    // The HTTPS service (file upload, web clients) serves it too.
    {
        let tcp = std::net::TcpStream::connect(s.https).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cfg = trusting(fresh_der.clone(), &[&rustls::version::TLS13]);
        let conn = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stream.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "HTTPS handshake");
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("HTTPS with the new certificate");
        }
    }
    let mut new = s.client(fresh_der);
    new.login_as("mom", "mom password", "after-reload");

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

#[test]
fn sighup_rereads_the_turn_secret() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("turn-secret");
    std::fs::write(&secret, "first-secret\n").unwrap();
    let s = Served::start_with(&[
        "--turn-host",
        "turn.localhost",
        "--turn-secret-file",
        secret.to_str().unwrap(),
    ]);
    let dir = s.dir.path().to_str().unwrap().to_owned();
    let out = roost(
        &["adduser", "mom@localhost", "--data-dir", &dir],
        "mom password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut c = s.client(s.cert());
    c.login_as("mom", "mom password", "phone");
    // The TURN password of the first `turn` service, and whether it is the HMAC of `key`.
    let mut ask = |id: &str| -> (String, String) {
        let reply = c.iq(&format!(
            "<iq type='get' id='{id}' to='localhost'>\
             <services xmlns='urn:xmpp:extdisco:2' type='turn'/></iq>"
        ));
        let service = reply.elements().next().unwrap().elements().next().unwrap();
        (
            service.attr("username").unwrap().to_owned(),
            service.attr("password").unwrap().to_owned(),
        )
    };
    let (user, pass) = ask("t1");
    assert_eq!(pass, turn_password(b"first-secret", &user));

    // A new secret (roost turn-setup --new-secret), then SIGHUP.
    std::fs::write(&secret, "second-secret\n").unwrap();
    s.signal("-HUP");
    s.log_until("re-read the TURN secret");
    let (user, pass) = ask("t2");
    assert_eq!(pass, turn_password(b"second-secret", &user));

    // An emptied file is refused; the secret in use stays.
    std::fs::write(&secret, "").unwrap();
    s.signal("-HUP");
    s.log_until("TURN secret not re-read");
    let (user, pass) = ask("t3");
    assert_eq!(pass, turn_password(b"second-secret", &user));
}

/// coturn's REST password for `username`: base64(HMAC-SHA1(secret, username)).
fn turn_password(secret: &[u8], username: &str) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, username.as_bytes()))
}

#[test]
fn a_client_closing_tls_without_close_notify_is_an_ordinary_disconnect() {
    let s = Served::start();
    // Direct TLS: a completed handshake, then the socket closes without close_notify.
    {
        let tcp = std::net::TcpStream::connect(s.tls).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cfg = trusting(s.cert(), &[&rustls::version::TLS13]);
        let conn = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stream.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "handshake");
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        stream.write_all(b"<?xml version='1.0'?>").unwrap();
        stream.flush().unwrap();
        stream.sock.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // And one that goes away during the handshake.
    {
        let mut tcp = std::net::TcpStream::connect(s.tls).unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x01])
            .unwrap();
        tcp.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // And one that starts with the wrong handshake message (a HelloRequest): rustls warns
    // about it through `log` ("Received a HelloRequest handshake message while expecting
    // [ClientHello]"), which only --log-level debug shows.
    {
        let mut tcp = std::net::TcpStream::connect(s.tls).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00])
            .unwrap();
        // The server answers with an alert and closes.
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut tcp, &mut sink);
    }
    // And one that does not trust the self-signed certificate (trusts another one).
    {
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let tcp = std::net::TcpStream::connect(s.tls).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cfg = trusting(other.cert.der().clone(), &[&rustls::version::TLS13]);
        let conn = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + Duration::from_secs(5);
        while stream.conn.is_handshaking() {
            assert!(Instant::now() < deadline, "handshake");
            if stream.conn.complete_io(&mut stream.sock).is_err() {
                break;
            }
        }
        // The alert goes out before the client closes.
        let _ = stream.conn.complete_io(&mut stream.sock);
    }
    let mut lines = Vec::new();
    for _ in 0..4 {
        lines.extend(s.log_until("disconnect"));
    }
    let text = lines.join("\n");
    assert!(
        text.contains("the client sent data that is not valid TLS"),
        "{text}"
    );
    assert!(
        text.contains("the client does not accept the server's certificate"),
        "{text}"
    );
    assert!(!text.contains("HelloRequest"), "no rustls types: {text}");
    assert!(
        !text.contains("[WARN]"),
        "rustls' warnings stay below debug: {text}"
    );
    assert!(text.contains("connection closed by client"), "{text}");
    assert!(
        text.contains("the client closed the connection during the handshake"),
        "{text}"
    );
    assert!(!text.contains("http"), "no URL: {text}");
    assert!(!text.contains("close_notify"), "no TLS jargon: {text}");
    assert!(!text.to_lowercase().contains("rustls"), "{text}");
}

#[test]
fn rename_domain_waits_for_the_server_to_stop() {
    let mut s = Served::start();
    let dir = s.dir.path().to_owned();
    let out = roost_in(&["adduser", "mom@localhost"], &dir, "mom password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roost_in(
        &["rename-domain", "--yes", "localhost", "example.org"],
        &dir,
        "",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("process {}", s.child.id())) && err.contains("stop it first"),
        "{err}"
    );
    let out = roost_in(&["users"], &dir, "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@localhost\n");
    s.signal("-TERM");
    assert!(s.wait_exit().success());
    let out = roost_in(
        &["rename-domain", "--yes", "localhost", "example.org"],
        &dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roost_in(&["users"], &dir, "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mom@example.org\n");
}

/// XEP-0157: a contact address must be a URI with its scheme.
#[test]
fn a_contact_address_without_a_scheme_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = roost(
        &[
            "serve",
            "--contact-abuse",
            "abuse@example.org",
            "--data-dir",
            data,
        ],
        "",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--contact-abuse abuse@example.org"), "{err}");
    assert!(err.contains("mailto:"), "{err}");
}

#[test]
fn turn_setup_writes_the_secret_and_coturns_essentials() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("turnserver.conf");
    let secret = tmp.path().join("roost/turn-secret");
    let (conf_s, secret_s) = (conf.to_str().unwrap(), secret.to_str().unwrap());
    let args = [
        "turn-setup",
        "--domain",
        "Example.org",
        "--turnserver-conf",
        conf_s,
        "--secret-file",
        secret_s,
    ];
    // No coturn configuration: say to install coturn, write nothing.
    let out = roost(&args, "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apt install coturn"),
        "{}",
        stderr(&out)
    );
    assert!(!secret.exists());
    // Debian's file when installed here, else a small one like it.
    let debian = std::fs::read_to_string("/etc/turnserver.conf")
        .unwrap_or_else(|_| "#listening-port=3478\nlt-cred-mech\nverbose\n".into());
    std::fs::write(&conf, &debian).unwrap();
    let out = roost(&args, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("--turn-host example.org"), "{said}");
    assert!(said.contains("49160-49200"), "{said}");
    let key = std::fs::read_to_string(&secret).unwrap();
    let key = key.trim();
    assert_eq!(key.len(), 64, "{key}");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let written = std::fs::read_to_string(&conf).unwrap();
    let active: Vec<&str> = written
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    for want in [
        "use-auth-secret",
        &format!("static-auth-secret={key}"),
        "realm=example.org",
        "no-cli",
        "min-port=49160",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
    ] {
        assert!(active.contains(&want), "{want} in {active:?}");
    }
    assert!(!active.contains(&"lt-cred-mech"), "{active:?}");
    // Again: the same secret, one block, nothing else changed.
    let out = roost(&args, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kept"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim(), key);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), written);
    // --new-secret replaces it in both files.
    let mut again = args.to_vec();
    again.push("--new-secret");
    assert!(roost(&again, "").status.success());
    let new_key = std::fs::read_to_string(&secret).unwrap().trim().to_owned();
    assert_ne!(new_key, key);
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains(&format!("\nstatic-auth-secret={new_key}\n")));

    // roost serve takes the secret file; the TURN flags without what they need are refused.
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (flags, want) in [
        (
            vec!["--turn-host", "turn.example.org"],
            "--turn-secret-file",
        ),
        (vec!["--turn-secret-file", secret_s], "need --turn-host"),
        (
            vec![
                "--turn-host",
                "t.example.org",
                "--turn-secret-file",
                "/nonexistent/s",
            ],
            "/nonexistent/s",
        ),
        (
            vec![
                "--turn-host",
                "t.example.org",
                "--turn-secret-file",
                empty.to_str().unwrap(),
            ],
            "empty",
        ),
    ] {
        let err = serve_refused(&flags);
        assert!(err.contains(want), "{flags:?}: {err}");
    }
}

/// The HTTP and upload flags are in `roost serve --help`; bad values are refused at start
/// with the flag named.
#[test]
fn http_and_upload_flags_are_documented_and_checked() {
    let out = roost(&["serve", "--help"], "");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    for flag in [
        "--no-http",
        "--https-port",
        "--http-port",
        "--http-external-url",
        "--no-upload",
        "--upload-max-size",
        "--upload-quota",
        "--upload-daily-quota",
        "--upload-disk-cap",
        "--upload-expires-days",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for (args, says) in [
        (
            &["--http-external-url", "chat.example.org"][..],
            "--http-external-url chat.example.org: give a base URL",
        ),
        (
            &["--http-external-url", "https://chat.example.org/xmpp"][..],
            "without a path",
        ),
        (&["--upload-max-size", "lots"][..], "--upload-max-size lots"),
        (&["--upload-quota", "5T"][..], "--upload-quota 5T"),
        (&["--upload-disk-cap", "0"][..], "--upload-disk-cap 0"),
    ] {
        let mut full = args.to_vec();
        full.extend(["--data-dir", data]);
        let err = serve_refused(&full);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
/// Joins `room@groups.localhost` as `nick`; the error condition if refused.
fn muc_join(c: &mut Client, room: &str, nick: &str) -> Result<(), String> {
    c.send(&format!(
        "<presence to='{room}@groups.localhost/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let e = c.wait_for("join", |e| {
        e.attr("type") == Some("error") || e.child("subject", "jabber:client").is_some()
    });
    match e.attr("type") {
        Some("error") => Err(error_condition(&e).unwrap_or_default()),
        _ => Ok(()),
    }
}

#[test]
fn room_commands_change_members_of_a_running_server() {
    let s = TestServer::start();
    let dir = s.dir.path().to_owned();
    // adduser makes the new account a member of the family room, bookmarked.
    for u in ["mom", "grandpa"] {
        let out = roost_in(
            &["adduser", &format!("{u}@localhost")],
            &dir,
            "long-password\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = roost_in(&["rooms"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("family@groups.localhost") && text.contains("member mom@localhost"),
        "{text}"
    );
    let mut mom = Client::login(&s, "mom", "long-password", "phone");
    let bm = mom.iq(
        "<iq type='get' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>",
    );
    assert!(bm.to_string().contains("family@groups.localhost"), "{bm}");
    // Within a second the server knows: mom joins.
    let mut joined = Err(String::new());
    for _ in 0..30 {
        joined = muc_join(&mut mom, "family", "Mom");
        if joined.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(joined, Ok(()));
    // room-remove takes grandpa out; room-add brings him back.
    let out = roost_in(&["room-remove", "family", "grandpa@localhost"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut gp = Client::login(&s, "grandpa", "long-password", "pc");
    let mut refused = Ok(());
    for _ in 0..30 {
        refused = muc_join(&mut gp, "family", "Grandpa");
        if refused.is_err() {
            break;
        }
        gp.send("<presence type='unavailable' to='family@groups.localhost/Grandpa'/>");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(refused, Err("registration-required".to_owned()));
    let out = roost_in(
        &["room-add", "family@groups.localhost", "grandpa@localhost"],
        &dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut ok = Err(String::new());
    for _ in 0..30 {
        ok = muc_join(&mut gp, "family", "Grandpa");
        if ok.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok, Ok(()));
    // Bad input: a clear message and a failure exit.
    for (args, want) in [
        (
            &["room-add", "nosuchroom", "mom@localhost"][..],
            "no room nosuchroom",
        ),
        (&["room-add", "family", "not a jid"][..], "not a jid"),
        (&["room-add", "family"][..], "give the addresses"),
        (
            &["room-remove", "family@elsewhere.example", "mom@localhost"][..],
            "not this server's",
        ),
    ] {
        let out = roost_in(args, &dir, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    // deluser takes the account out of every room.
    let out = roost_in(&["deluser", "grandpa@localhost", "--yes"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roost_in(&["rooms"], &dir, "");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("grandpa"));
}

/// The roster of a logged-in client: (contact, subscription, groups).
fn roster_of(c: &mut Client) -> Vec<(String, String, Vec<String>)> {
    let r = c.iq("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>");
    let q = r.child("query", "jabber:iq:roster").expect("roster");
    q.elements()
        .map(|i| {
            (
                i.attr("jid").unwrap_or_default().to_owned(),
                i.attr("subscription").unwrap_or_default().to_owned(),
                i.elements().map(|g| g.text()).collect(),
            )
        })
        .collect()
}

/// Waits for a roster push of `jid` in `groups` (a push shows the item as stored when
/// the server sends it, so an earlier change's push may come first).
fn roster_push(c: &mut Client, jid: &str, groups: &[&str]) {
    let iq = c.wait_for("roster push", |e| {
        e.name == "iq"
            && e.child("query", "jabber:iq:roster")
                .and_then(|q| q.first_element())
                .is_some_and(|i| {
                    i.attr("jid") == Some(jid)
                        && i.elements().map(|g| g.text()).collect::<Vec<_>>() == groups
                })
    });
    let id = iq.attr("id").unwrap_or_default().to_owned();
    c.send(&format!("<iq type='result' id='{id}'/>"));
}

#[test]
fn role_and_circle_commands_on_a_running_server() {
    let s = TestServer::start();
    let dir = s.dir.path().to_owned();
    for (user, extra) in [
        ("mom", &["--admin"][..]),
        ("dad", &[][..]),
        ("kid", &["--role", "limited"][..]),
    ] {
        let jid = format!("{user}@localhost");
        let mut args = vec!["adduser", jid.as_str()];
        args.extend(extra);
        let out = roost_in(&args, &dir, "long-password\n");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = roost_in(&["users"], &dir, "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dad@localhost\nkid@localhost  limited\nmom@localhost  admin\n"
    );
    // The family room is the default circle: everyone has everyone, in group Family.
    let mut mom = Client::login(&s, "mom", "long-password", "phone");
    let fam = vec!["Family".to_string()];
    assert_eq!(
        roster_of(&mut mom),
        vec![
            ("dad@localhost".into(), "both".into(), fam.clone()),
            ("kid@localhost".into(), "both".into(), fam.clone()),
        ]
    );
    let out = roost_in(&["rooms"], &dir, "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("owner mom@localhost"),
        "admins own circle rooms: {text}"
    );
    // A circle: members get each other (a roster push while online), the room, a bookmark.
    let out = roost_in(&["circle", "add", "Cousins"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cousins@groups.localhost"));
    let out = roost_in(
        &[
            "circle",
            "member-add",
            "cousins",
            "mom@localhost",
            "dad@localhost",
        ],
        &dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    roster_push(&mut mom, "dad@localhost", &["Family", "Cousins"]);
    // adduser --circle: a new account straight into a circle.
    let out = roost_in(
        &["adduser", "ann@localhost", "--circle", "Cousins"],
        &dir,
        "long-password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    roster_push(&mut mom, "ann@localhost", &["Family", "Cousins"]);
    let out = roost_in(&["circles"], &dir, "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("    ann@localhost"), "{text}");
    assert!(
        text.contains("cousins  \"Cousins\"  cousins@groups.localhost")
            && text.contains("    dad@localhost")
            && text.contains("family  \"Family\"  family@groups.localhost  (every account)"),
        "{text}"
    );
    let mut dad = Client::login(&s, "dad", "long-password", "pc");
    let mut joined = Err(String::new());
    for _ in 0..30 {
        joined = muc_join(&mut dad, "cousins", "Dad");
        if joined.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(joined, Ok(()), "a member joins the circle's room");
    // Leaving takes the circle's group off; removing the circle destroys its room.
    let out = roost_in(
        &["circle", "member-remove", "cousins", "dad@localhost"],
        &dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    roster_push(&mut mom, "dad@localhost", &["Family"]);
    dad.wait_for("leaving the room with the circle", |e| {
        e.name == "presence"
            && e.attr("type") == Some("unavailable")
            && e.attr("from") == Some("cousins@groups.localhost/Dad")
    });
    assert_eq!(
        muc_join(&mut mom, "cousins", "Mom"),
        Ok(()),
        "admins own circle rooms"
    );
    let out = roost_in(&["circle", "remove", "cousins"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    mom.wait_for("the room's destruction", |e| {
        e.name == "presence"
            && e.attr("type") == Some("unavailable")
            && e.to_string().contains("destroy")
    });
    // A role change.
    let out = roost_in(&["role", "kid@localhost", "normal"], &dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roost_in(&["users"], &dir, "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("kid@localhost\n"));
    // Bad input: a clear message and a failure exit.
    for (args, want) in [
        (
            &["role", "mom@localhost", "boss"][..],
            "admin, normal or limited",
        ),
        (
            &["role", "nobody@localhost", "admin"][..],
            "no such account",
        ),
        (
            &["circle", "member-add", "nosuch", "mom@localhost"][..],
            "no circle nosuch",
        ),
        (
            &["circle", "member-remove", "family", "mom@localhost"][..],
            "every account is in Family",
        ),
        (&["circle", "member-add", "family"][..], "give the accounts"),
        (&["circle", "add", "Family"][..], "there is a circle family"),
        (&["circle", "add", "a@b"][..], "a circle's name"),
        (
            &["adduser", "x@localhost", "--admin", "--role", "limited"][..],
            "say different things",
        ),
        (
            &["adduser", "x@localhost", "--circle", "nosuch"][..],
            "no circle nosuch",
        ),
    ] {
        let out = roost_in(args, &dir, "long-password\n");
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

/// The token in `roost invite`'s output (from its landing-page link).
fn invite_token(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("/invite/").expect("a landing-page link") + "/invite/".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Presents `token` and registers `user` on a new stream: the registration's answer type.
fn register_with(s: &TestServer, token: &str, user: &str) -> String {
    let mut c = Client::connect_tls(s);
    c.open();
    let pre = c.iq(&format!(
        "<iq type='set' id='p'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>"
    ));
    if pre.attr("type") != Some("result") {
        return format!("preauth {}", error_condition(&pre).unwrap_or_default());
    }
    let r = c.iq(&format!(
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>{user}</username>\
         <password>pw</password></query></iq>"
    ));
    r.attr("type").unwrap_or("").to_owned()
}

#[test]
fn invite_invites_and_uninvite_against_a_running_server() {
    let s = TestServer::start();
    s.add_user("mom", "secret");
    let dir = s.dir.path();
    let port = s.running.as_ref().unwrap().https_addrs[0].port();
    let out = roost_in(&["invite", "--expires", "2d"], dir, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = invite_token(&out);
    // The link the running server serves, the XEP-0401 URI and a QR code.
    assert!(
        text.contains(&format!("https://localhost:{port}/invite/{token}")),
        "{text}"
    );
    assert!(text.contains(&format!("xmpp:localhost?register;preauth={token}")));
    assert!(
        text.contains("█") && text.contains("▀"),
        "a QR code: {text}"
    );
    assert!(!text.contains("\x1b["), "no colours when not a terminal");
    let page =
        common::http::HttpClient::https(&s).request("GET", &format!("/invite/{token}"), &[], b"");
    assert_eq!(page.status, 200);
    // Listed with its id, role and uses; an --http-external-url overrides the link.
    let out = roost_in(&["invites"], dir, "");
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = &roost::invite::key(&token)[..10];
    assert!(
        list.contains(id) && list.contains("role normal") && list.contains("1 use(s) left"),
        "{list}"
    );
    let out = roost_in(
        &[
            "invite",
            "--http-external-url",
            "https://chat.example.org",
            "--contact",
            "mom@localhost",
            "--uses",
            "2",
            "--role",
            "limited",
        ],
        dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let contact = invite_token(&out);
    assert!(
        text.contains(&format!("https://chat.example.org/invite/{contact}")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "xmpp:mom@localhost?roster;preauth={contact};ibr=y"
    )));
    // The first token registers once.
    assert_eq!(register_with(&s, &token, "grandma"), "result");
    assert_eq!(
        register_with(&s, &token, "grandpa"),
        "preauth item-not-found"
    );
    let list = String::from_utf8_lossy(&roost_in(&["invites"], dir, "").stdout).into_owned();
    assert!(
        list.contains("used up") && list.contains("contact of mom@localhost, role limited"),
        "{list}"
    );
    // Revoked by its link: the token stops working at once.
    let out = roost_in(
        &[
            "uninvite",
            &format!("https://chat.example.org/invite/{contact}"),
        ],
        dir,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        register_with(&s, &contact, "cousin"),
        "preauth item-not-found"
    );
    // By id too.
    let out = roost_in(&["invite"], dir, "");
    let third = invite_token(&out);
    let id = roost::invite::key(&third)[..10].to_owned();
    assert!(roost_in(&["uninvite", &id], dir, "").status.success());
    assert_eq!(
        register_with(&s, &third, "cousin"),
        "preauth item-not-found"
    );
    // Bad input: a clear message and a failure exit, nothing stored.
    for (args, says) in [
        (
            &["invite", "--role", "boss"][..],
            "a role is admin, normal or limited",
        ),
        (
            &["invite", "--admin", "--role", "limited"][..],
            "contradict",
        ),
        (&["invite", "--expires", "7x"][..], "give a duration"),
        (&["invite", "--uses", "0"][..], "--uses"),
        (&["invite", "--circle", "nosuch"][..], "no such circle"),
        (
            &["invite", "--contact", "nobody@localhost"][..],
            "no such account",
        ),
        (
            &["invite", "--http-external-url", "chat.example.org"][..],
            "--http-external-url",
        ),
        (&["uninvite", "nosuchtoken"][..], "no such invitation"),
        (&["uninvite", "a b"][..], "give the invitation's token"),
    ] {
        let out = roost_in(args, dir, "");
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = roost_in(&["invites"], dir, "");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(
        lines, 1,
        "the used one; the two revoked are gone, and the refused commands stored nothing"
    );
}
