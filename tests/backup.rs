//! `roost backup` / `roost restore` and `roost export` / `roost import` (XEP-0227), run as
//! the real binary against a server that clients are using over real sockets: a backup
//! taken under load restores into a fresh data directory equal to the live data at the
//! snapshot, restore refuses a running server and damaged archives without changing
//! anything, and an account survives export → deluser → import with its password and data.

mod common;

use common::http::HttpClient;
use common::*;
use roost::xml::Element;
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

fn roost(args: &[&str]) -> Output {
    common::roost_cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run roost")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "roost failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "roost should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every row of every table, rendered, sorted: two equal dumps are equal databases.
fn dump(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(dir.join("roost.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // One read transaction for all tables.
    conn.execute_batch("BEGIN").unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut st = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
            .map(|r| format!("{:?}", r.unwrap()))
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    conn.execute_batch("COMMIT").unwrap();
    out
}

/// The rows of `sql` (one string each, in the query's order).
fn rows(dir: &Path, sql: &str) -> Vec<Vec<Value>> {
    let conn = rusqlite::Connection::open(dir.join("roost.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let n = st.column_count();
    let v = st
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    v
}

/// Every file under `dir` (relative path → content), without the WAL and shared memory.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Asks for an upload slot and PUTs `data`; the slot id, or None if refused.
fn upload(server: &TestServer, c: &mut Client, n: usize, data: &[u8]) -> Option<String> {
    let reply = c.iq(&format!(
        "<iq type='get' id='slot-{n}' to='upload.localhost'><request xmlns='{NS_UPLOAD}' \
         filename='photo{n}.jpg' size='{}'/></iq>",
        data.len()
    ));
    let put = reply
        .child("slot", NS_UPLOAD)?
        .child("put", NS_UPLOAD)?
        .attr("url")?
        .to_owned();
    let rest = put.strip_prefix("https://localhost:").unwrap();
    let path = &rest[rest.find('/').unwrap()..];
    let r = HttpClient::https(server).request("PUT", path, &[], data);
    assert_eq!(r.status, 201, "{}", r.text());
    path.split('/').nth(2).map(str::to_owned)
}

fn photo(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 31 + seed * 7 + i / 253) as u8)
        .collect()
}

#[test]
fn a_backup_under_load_restores_equal_to_the_data_at_its_snapshot() {
    let server = Arc::new(TestServer::start_with(|c| {
        c.offline_limit = 100_000;
    }));
    server.add_user("mom", "mom password");
    server.add_user("kid", "kid password");
    // Some data before the load: a file and messages.
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    upload(&server, &mut mom, 0, &photo(0, 70_000)).expect("a slot");
    let stop = Arc::new(AtomicBool::new(false));

    // Load: kid sends mom (offline after this) messages, mom uploads files of 150 kB.
    drop(mom);
    let talker = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut kid = Client::login(&server, "kid", "kid password", "tablet");
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                kid.send(&format!(
                    "<message to='mom@localhost' type='chat' id='m{sent}'><body>message \
                     {sent}</body></message>"
                ));
                sent += 1;
                if sent % 50 == 0 {
                    // A round trip now and then keeps the queue short.
                    kid.iq("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
                }
            }
            kid.iq("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
            sent
        })
    };
    let uploader = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut mom = Client::login(&server, "mom", "mom password", "laptop");
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) && n < 200 {
                upload(&server, &mut mom, n, &photo(n, 150_000));
                n += 1;
            }
            n - 1
        })
    };
    // Let the load start, then back up while it runs.
    let dir = server.dir.path().to_path_buf();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(&dir, "SELECT 1 FROM offline").len() < 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("under-load.tar");
    let out = ok(&roost(&["backup", s(&archive), "--data-dir", s(&dir)]));
    assert!(out.contains("2 account(s) of localhost"), "{out}");
    let sent = {
        // A little more load after the snapshot.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        (talker.join().unwrap(), uploader.join().unwrap())
    };
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let restored = work.path().join("restored");
    let out = ok(&roost(&[
        "restore",
        s(&archive),
        "--data-dir",
        s(&restored),
    ]));
    assert!(out.contains("restored 2 account(s) of localhost"), "{out}");

    // The snapshot is a prefix of each append-only table: every row it has is the live
    // row, and every live row older than its newest is in it.
    for (table, key) in [("offline", "id"), ("archive", "seq")] {
        let snap = rows(&restored, &format!("SELECT * FROM {table} ORDER BY {key}"));
        let live = rows(&dir, &format!("SELECT * FROM {table} ORDER BY {key}"));
        assert!(!snap.is_empty(), "{table}: nothing in the snapshot");
        assert!(
            live.len() > snap.len(),
            "{table}: the load went on after the snapshot ({} rows, {} live)",
            snap.len(),
            live.len()
        );
        assert_eq!(snap[..], live[..snap.len()], "{table}");
    }
    let live_dump = dump(&dir);
    let snap_dump = dump(&restored);
    assert_eq!(snap_dump["accounts"], live_dump["accounts"]);
    // Uploads: every complete slot of the snapshot has its file, byte for byte the live
    // one; no partial file was taken.
    let snap_files = files(&restored);
    let live_files = files(&dir);
    let done = rows(&restored, "SELECT id, size FROM uploads WHERE done = 1");
    assert!(done.len() >= 2, "uploads in the snapshot: {}", done.len());
    for r in &done {
        let Value::Text(id) = &r[0] else { panic!() };
        let name = format!("upload/{id}");
        let data = snap_files.get(&name).expect("the file of a complete slot");
        assert_eq!(Value::Integer(data.len() as i64), r[1]);
        assert!(
            data == &live_files[&name],
            "{name} differs from the live file"
        );
    }
    let uploaded: Vec<&String> = snap_files
        .keys()
        .filter(|k| k.starts_with("upload/"))
        .collect();
    assert_eq!(uploaded.len(), done.len(), "{uploaded:?}");
    assert!(snap_files.contains_key("localhost.crt"));
    assert!(snap_files.contains_key("localhost.key"));
    assert!(sent.0 > 50 && sent.1 >= 2, "load: {sent:?}");

    // Quiet now: a second backup restores equal to the live data, every table and file.
    let quiet = work.path().join("quiet.tar");
    ok(&roost(&["backup", s(&quiet), "--data-dir", s(&dir)]));
    let again = work.path().join("again");
    ok(&roost(&["restore", s(&quiet), "--data-dir", s(&again)]));
    assert_eq!(dump(&again), dump(&dir));
    let mut live_files = files(&dir);
    live_files.retain(|k, _| !k.starts_with("roost.db"));
    let mut again_files = files(&again);
    again_files.retain(|k, _| !k.starts_with("roost.db"));
    assert!(
        again_files == live_files,
        "files differ: {:?} vs {:?}",
        again_files.keys().collect::<Vec<_>>(),
        live_files.keys().collect::<Vec<_>>()
    );

    // The restored data directory serves: mom logs in and gets her offline messages.
    drop(server);
    let copy = tempfile::tempdir().unwrap();
    for (name, data) in files(&restored) {
        let p = copy.path().join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let offline = rows(
        &restored,
        "SELECT COUNT(*) FROM offline WHERE username = 'mom'",
    );
    let Value::Integer(n) = offline[0][0] else {
        panic!()
    };
    let server = TestServer::start_in(copy, |c| c.offline_limit = 100_000);
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    mom.send("<presence/>");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < n && Instant::now() < deadline {
        match mom.next_within(Duration::from_secs(5)) {
            Some(Got::Element(e)) if e.name.as_str() == "message" => got += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(got, n, "offline messages delivered from the restored data");
}

/// A `roost serve` process on `dir`, killed on drop.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        // SIGTERM: a clean stop, as systemd does.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Serving {
    let child = common::roost_cmd()
        .args(["serve", "--data-dir", s(dir), "--bind", "127.0.0.1"])
        .args(["--c2s-port", "0", "--c2s-tls-port", "0", "--no-s2s"])
        .args(["--https-port", "0", "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let serving = Serving(child);
    // Up once it has recorded its process id.
    let pid = serving.0.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = dir.join("roost.db").exists()
            && rusqlite::Connection::open(dir.join("roost.db"))
                .and_then(|c| {
                    c.query_row("SELECT value FROM meta WHERE key = 'server_pid'", [], |r| {
                        r.get::<_, String>(0)
                    })
                })
                .is_ok_and(|p| p == pid);
        if recorded {
            break;
        }
        assert!(Instant::now() < deadline, "roost serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    serving
}

/// A data directory with an account and a backup of it, and a second data directory
/// with other data, to restore into.
fn two_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for (dir, user) in [(&a, "mom@localhost"), (&b, "dad@localhost")] {
        drop(serve(dir));
        let out = common::roost_cmd()
            .args(["adduser", user, "--data-dir", s(dir)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"a password\n")?;
                c.wait_with_output()
            })
            .unwrap();
        ok(&out);
    }
    let archive = work.path().join("a.tar");
    ok(&roost(&["backup", s(&archive), "--data-dir", s(&a)]));
    (work, a, archive)
}

#[test]
fn restore_refuses_a_running_servers_data_directory() {
    let (work, _a, archive) = two_dirs();
    let b = work.path().join("b");
    let before = files(&b);
    let running = serve(&b);
    let err = failed(&roost(&[
        "restore",
        s(&archive),
        "--data-dir",
        s(&b),
        "--yes",
    ]));
    assert!(
        err.contains("is running") && err.contains("stop it first"),
        "{err}"
    );
    assert!(rows(&b, "SELECT username FROM accounts") == vec![vec![Value::Text("dad".into())]]);
    drop(running);
    // Stopped: the same restore goes through, and keeps the old data aside.
    let out = ok(&roost(&[
        "restore",
        s(&archive),
        "--data-dir",
        s(&b),
        "--yes",
    ]));
    assert!(out.contains("previous data is in"), "{out}");
    assert!(rows(&b, "SELECT username FROM accounts") == vec![vec![Value::Text("mom".into())]]);
    let aside: Vec<PathBuf> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    let kept = files(&aside[0]);
    assert_eq!(kept["localhost.key"], before["localhost.key"]);
    assert_eq!(
        rows(&aside[0], "SELECT username FROM accounts"),
        vec![vec![Value::Text("dad".into())]]
    );
}

/// Writes a ustar archive of `members` (name, data) with a correct checksum each.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = roost::util::tar::Writer::new(Vec::new());
    for (name, data) in members {
        w.append(name, 0o600, 0, data.len() as u64, &mut &data[..])
            .unwrap();
    }
    w.finish().unwrap()
}

/// The members of an archive, read with the strict reader.
fn members_of(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut r = roost::util::tar::Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(m) = r.next_member().unwrap() {
        let mut data = Vec::new();
        r.data().read_to_end(&mut data).unwrap();
        out.push((m.name, data));
    }
    out
}

#[test]
fn restore_refuses_damaged_archives_and_leaves_the_data_directory_as_it_was() {
    let (work, _a, archive) = two_dirs();
    let b = work.path().join("b");
    let before = files(&b);
    let good = std::fs::read(&archive).unwrap();
    let members = members_of(&good);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "roost.db",
            "localhost.crt",
            "localhost.key",
            "roost-backup.txt"
        ]
    );
    let db = &members[0].1;
    let manifest = &members[3].1;
    let cert = &members[1].1;
    let key = &members[2].1;

    let mut flipped = good.clone();
    flipped[512 + 3000] ^= 0x20; // a byte of the database
    let mut bad_manifest = manifest.clone();
    bad_manifest[10] = if bad_manifest[10] == b'0' { b'1' } else { b'0' };
    // The database altered, and the manifest made to match: the integrity check catches
    // a damaged page.
    let mut damaged_db = db.clone();
    for b in &mut damaged_db[4096..8192] {
        *b = 0x55;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated in a member", good[..good.len() / 2].to_vec()),
        ("truncated at its end", good[..good.len() - 1024].to_vec()),
        ("a flipped byte", flipped),
        ("an altered manifest", {
            tar_of(&[
                ("roost.db", db),
                ("localhost.crt", cert),
                ("localhost.key", key),
                ("roost-backup.txt", &bad_manifest),
            ])
        }),
        ("no manifest", tar_of(&[("roost.db", db)])),
        (
            "a path out of the directory",
            tar_of(&[
                ("../evil", b"x"),
                ("roost.db", db),
                ("roost-backup.txt", manifest),
            ]),
        ),
        ("an absolute path", tar_of(&[("/etc/evil", b"x")])),
        ("a damaged database", {
            let mut m = String::from_utf8(manifest.clone()).unwrap();
            let line = m
                .lines()
                .find(|l| l.ends_with(" roost.db"))
                .unwrap()
                .to_owned();
            let digest = ring::digest::digest(&ring::digest::SHA256, &damaged_db);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            m = m.replace(&line, &format!("{hex} {} roost.db", damaged_db.len()));
            tar_of(&[
                ("roost.db", &damaged_db),
                ("localhost.crt", cert),
                ("localhost.key", key),
                ("roost-backup.txt", m.as_bytes()),
            ])
        }),
        ("not an archive", b"hello, this is not a backup\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let path = work.path().join("bad.tar");
        std::fs::write(&path, &bytes).unwrap();
        let err = failed(&roost(&["restore", s(&path), "--data-dir", s(&b), "--yes"]));
        assert!(err.contains("nothing was changed"), "{what}: {err}");
        assert!(files(&b) == before, "{what}: the data directory changed");
        assert_eq!(
            std::fs::read_dir(&b).unwrap().count(),
            std::fs::read_dir(&b).unwrap().count()
        );
    }
    // A symbolic link member, written by tar(1) when it is installed.
    let link_dir = work.path().join("link");
    std::fs::create_dir(&link_dir).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", link_dir.join("roost.db")).unwrap();
    let made = Command::new("tar")
        .args(["--format=ustar", "-cf", "link.tar", "-C"])
        .arg(&link_dir)
        .arg("roost.db")
        .current_dir(work.path())
        .status();
    if made.is_ok_and(|s| s.success()) {
        let err = failed(&roost(&[
            "restore",
            s(&work.path().join("link.tar")),
            "--data-dir",
            s(&b),
        ]));
        assert!(err.contains("not a regular file"), "{err}");
        assert!(files(&b) == before);
        // And tar(1) lists a roost backup.
        let out = Command::new("tar")
            .arg("tf")
            .arg(&archive)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "roost.db\nlocalhost.crt\nlocalhost.key\nroost-backup.txt\n"
        );
    }
    // A missing data directory that a refused restore would have created is not left.
    let fresh = work.path().join("fresh");
    std::fs::write(work.path().join("bad.tar"), &good[..4096]).unwrap();
    failed(&roost(&[
        "restore",
        s(&work.path().join("bad.tar")),
        "--data-dir",
        s(&fresh),
    ]));
    assert!(!fresh.exists());
}

/// The account's rows in the tables XEP-0227 carries, without row ids and times that an
/// import sets anew (PEP publication times).
fn account_rows(dir: &Path, user: &str) -> BTreeMap<&'static str, Vec<Vec<Value>>> {
    let q = |sql: &str| rows(dir, &sql.replace("USER", user));
    let mut m = BTreeMap::new();
    m.insert(
        "accounts",
        q(
            "SELECT salt, iterations, sha1_stored_key, sha1_server_key, sha256_stored_key, \
           sha256_server_key, role FROM accounts WHERE username = 'USER'",
        ),
    );
    m.insert(
        "roster",
        q(
            "SELECT contact, name, groups, subscription, pending_out, pending_in, in_roster, \
           approved FROM roster WHERE username = 'USER' ORDER BY contact",
        ),
    );
    m.insert("vcard", q("SELECT xml FROM vcard WHERE username = 'USER'"));
    m.insert(
        "private",
        q("SELECT ns, name, xml FROM private_storage WHERE username = 'USER' ORDER BY ns"),
    );
    m.insert(
        "pep_nodes",
        q("SELECT * FROM pep_nodes WHERE username = 'USER' ORDER BY node"),
    );
    m.insert(
        "pep_items",
        // Publication order within each node.
        q("SELECT node, item_id, xml FROM pep_items WHERE username = 'USER' ORDER BY node, id"),
    );
    m.insert(
        "offline",
        q("SELECT stamp, stanza FROM offline WHERE username = 'USER' ORDER BY id"),
    );
    m.insert(
        "archive",
        q(
            "SELECT id, ts, with_bare, with_full, stanza FROM archive WHERE username = 'USER' \
           ORDER BY seq",
        ),
    );
    m.insert(
        "blocklist",
        q("SELECT jid FROM blocklist WHERE username = 'USER' ORDER BY jid"),
    );
    m
}

fn result(e: &Element) {
    assert_eq!(e.attr("type"), Some("result"), "{}", e.to_client_string());
}

#[test]
fn an_account_survives_export_deluser_import_with_its_password_and_data() {
    let server = TestServer::start();
    let dir = server.dir.path().to_path_buf();
    // As a parent adds them: members of the family room, with its bookmark.
    for (jid, password) in [
        ("mom@localhost", "mom password"),
        ("dad@localhost", "dad password"),
    ] {
        let out = common::roost_cmd()
            .args(["adduser", jid, "--data-dir", s(&dir)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{password}\n").as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        ok(&out);
    }
    {
        let mut mom = Client::login(&server, "mom", "mom password", "phone");
        let mut dad = Client::login(&server, "dad", "dad password", "laptop");
        dad.announce("laptop", "<presence/>");
        result(&mom.iq(
            "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='dad@localhost' \
             name='Dad'><group>Family</group><group>Home</group></item></query></iq>",
        ));
        // A request mom has not answered yet, from someone not in her roster.
        result(&mom.iq(
            "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Mom</FN>\
             <NICKNAME>mama</NICKNAME></vCard></iq>",
        ));
        result(
            &mom.iq("<iq type='set' id='p1'><query xmlns='jabber:iq:private'>\
             <prefs xmlns='example:prefs'><theme>dark</theme></prefs></query></iq>"),
        );
        result(&mom.iq(
            "<iq type='set' id='pep1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='http://jabber.org/protocol/nick'><item id='current'>\
             <nick xmlns='http://jabber.org/protocol/nick'>Mama</nick></item></publish>\
             </pubsub></iq>",
        ));
        result(
            &mom.iq("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>\
             <item jid='spam@example.com'/></block></iq>"),
        );
        mom.send(
            "<message to='dad@localhost' type='chat' id='a1'><body>coming home</body></message>",
        );
        dad.wait_for("mom's message", |e| e.name.as_str() == "message");
        mom.iq("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>");
        mom.close();
        // While mom is offline: messages kept for her.
        for i in 0..3 {
            dad.send(&format!(
                "<message to='mom@localhost' type='chat' id='o{i}'><body>offline {i} &amp; \
                 more</body></message>"
            ));
        }
        dad.iq("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>");
        dad.close();
    }
    // A pending inbound request from a contact not in the roster.
    {
        let conn = roost::storage::open_connection(&dir).unwrap();
        let mut item = roost::storage::roster::Item::new("grandpa@example.net");
        item.state = roost::subscription::State::NonePendingIn;
        item.in_roster = false;
        roost::storage::roster::put(&conn, "localhost", "mom", &item).unwrap();
    }
    // Mom runs the server: her role travels with her (a roost extension of XEP-0227).
    ok(&roost(&[
        "role",
        "mom@localhost",
        "admin",
        "--data-dir",
        s(&dir),
    ]));
    let dads_item = |mom: &mut Client| {
        mom.roster_get()
            .child("query", "jabber:iq:roster")
            .unwrap()
            .elements()
            .find(|i| i.attr("jid") == Some("dad@localhost"))
            .expect("dad in the roster")
            .to_string()
    };
    let dad_before = {
        let mut mom = Client::login(&server, "mom", "mom password", "phone");
        dads_item(&mut mom)
    };
    // (Both are in the family circle: subscribed both ways.)
    assert!(
        dad_before.contains("subscription='both'") && dad_before.contains("Home"),
        "{dad_before}"
    );
    let before = account_rows(&dir, "mom");
    for t in [
        "roster",
        "vcard",
        "private",
        "pep_items",
        "offline",
        "archive",
        "blocklist",
    ] {
        assert!(!before[t].is_empty(), "{t}: nothing to export");
    }
    assert_eq!(before["offline"].len(), 3);

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("mom.xml");
    ok(&roost(&[
        "export",
        "mom@localhost",
        s(&file),
        "--data-dir",
        s(&dir),
    ]));
    let xml = std::fs::read_to_string(&file).unwrap();
    assert!(
        xml.contains("<server-data xmlns='urn:xmpp:pie:0'>"),
        "{xml}"
    );
    assert!(xml.contains("mechanism='SCRAM-SHA-256'"));
    assert!(!xml.contains("mom password") && !xml.contains("password="));
    assert!(xml.contains("<result xmlns='urn:xmpp:mam:2'"));
    assert!(xml.contains("<role xmlns='urn:xmpp:roost:role:0'>admin</role>"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Existing: refused without --replace, and nothing changes.
    let whole = dump(&dir);
    let err = failed(&roost(&["import", s(&file), "--data-dir", s(&dir)]));
    assert!(
        err.contains("already exists") && err.contains("--replace"),
        "{err}"
    );
    assert_eq!(dump(&dir), whole);

    ok(&roost(&[
        "deluser",
        "--yes",
        "mom@localhost",
        "--data-dir",
        s(&dir),
    ]));
    assert!(account_rows(&dir, "mom")["accounts"].is_empty());
    // The server ends the deleted account's sessions at its next poll of the kicks table;
    // a session of the re-imported account opened before that poll would be ended too.
    std::thread::sleep(roost::kick::POLL_INTERVAL * 2);
    let out = ok(&roost(&["import", s(&file), "--data-dir", s(&dir)]));
    assert!(out.contains("imported mom@localhost"), "{out}");
    assert_eq!(account_rows(&dir, "mom"), before);

    // Mom logs in with the same password and finds her roster, vCard and offline messages.
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    assert_eq!(dads_item(&mut mom), dad_before);
    let vcard = mom.iq("<iq type='get' id='v'><vCard xmlns='vcard-temp'/></iq>");
    assert!(vcard.to_client_string().contains("<FN>Mom</FN>"));
    mom.send("<presence/>");
    let got = mom.drain(Duration::from_secs(2));
    let offline: Vec<String> = got
        .iter()
        .filter(|e| e.name.as_str() == "message")
        .map(|e| {
            e.child("body", "jabber:client")
                .map(|b| b.text())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        offline,
        ["offline 0 & more", "offline 1 & more", "offline 2 & more"]
    );
    drop(mom);

    // --replace: the file's data replaces what the account has now.
    ok(&roost(&[
        "import",
        s(&file),
        "--data-dir",
        s(&dir),
        "--replace",
    ]));
    assert_eq!(account_rows(&dir, "mom"), before);
}

#[test]
fn import_refuses_bad_files_and_writes_nothing() {
    let server = TestServer::start();
    server.add_user("mom", "mom password");
    let dir = server.dir.path().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("mom.xml");
    ok(&roost(&[
        "export",
        "mom@localhost",
        s(&file),
        "--data-dir",
        s(&dir),
    ]));
    let good = std::fs::read_to_string(&file).unwrap();
    ok(&roost(&[
        "deluser",
        "--yes",
        "mom@localhost",
        "--data-dir",
        s(&dir),
    ]));
    let whole = dump(&dir);
    let second_user = good.replace(
        "</user></host>",
        "</user><user name='kid' password='kid password'><query xmlns='jabber:iq:roster'><item jid='not a jid@@'/>\
         </query></user></host>",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "cut short",
            good[..good.len() / 2].to_owned(),
            "not well-formed",
        ),
        (
            "another root",
            "<x xmlns='urn:xmpp:pie:0'/>".into(),
            "root element",
        ),
        (
            "no credentials",
            good.replace("mechanism='SCRAM-SHA-256'", "mechanism='SCRAM-SHA-512'"),
            "no usable credentials",
        ),
        (
            "bad base64",
            good.replacen("<salt>", "<salt>!!", 1),
            "not base64",
        ),
        (
            "another domain",
            good.replace("jid='localhost'", "jid='example.org'"),
            "serves localhost",
        ),
        (
            "a bad roster item in a second account",
            second_user,
            "valid jid",
        ),
        (
            "a comment",
            good.replace("<user ", "<!-- hi --><user "),
            "not well-formed",
        ),
        (
            "no user",
            "<server-data xmlns='urn:xmpp:pie:0'/>".into(),
            "no <host><user/>",
        ),
    ];
    for (what, text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let err = failed(&roost(&["import", s(&file), "--data-dir", s(&dir)]));
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(dump(&dir), whole, "{what}: the database changed");
    }
    let err = failed(&roost(&[
        "import",
        s(&work.path().join("missing.xml")),
        "--data-dir",
        s(&dir),
    ]));
    assert!(err.contains("missing.xml"), "{err}");
    // Only SCRAM-SHA-1 keys (what Prosody 0.12 exports): imported with a new password.
    std::fs::write(
        &file,
        good.replace("mechanism='SCRAM-SHA-256'", "mechanism='SCRAM-SHA-512'"),
    )
    .unwrap();
    let out = common::roost_cmd()
        .args(["import", s(&file), "--data-dir", s(&dir), "--set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"a new password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    ok(&out);
    let mut c = Client::connect(&server);
    c.open();
    c.starttls();
    assert_eq!(
        c.scram(
            roost::sasl::Mechanism::ScramSha256,
            "mom",
            "a new password",
            None
        ),
        Ok(())
    );
    drop(c);
    ok(&roost(&[
        "deluser",
        "--yes",
        "mom@localhost",
        "--data-dir",
        s(&dir),
    ]));
    std::thread::sleep(roost::kick::POLL_INTERVAL * 2);
    // The good file still imports.
    std::fs::write(&file, &good).unwrap();
    ok(&roost(&["import", s(&file), "--data-dir", s(&dir)]));
    assert_eq!(
        rows(&dir, "SELECT username FROM accounts"),
        vec![vec![Value::Text("mom".into())]]
    );
}

#[test]
fn backups_into_a_directory_are_dated_and_only_the_newest_are_kept() {
    let (work, a, _) = two_dirs();
    let dir = work.path().join("backups");
    std::fs::create_dir(&dir).unwrap();
    let err = failed(&roost(&[
        "backup",
        s(&work.path().join("x.tar")),
        "--keep",
        "2",
    ]));
    assert!(err.contains("--keep needs a directory"), "{err}");
    let mut written = Vec::new();
    for _ in 0..3 {
        let out = ok(&roost(&[
            "backup",
            s(&dir),
            "--keep",
            "2",
            "--data-dir",
            s(&a),
        ]));
        let name = out
            .split_whitespace()
            .nth(1)
            .and_then(|p| Path::new(p).file_name())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            name.starts_with("roost-backup-") && name.ends_with("Z.tar"),
            "{out}"
        );
        written.push(name);
    }
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, written[1..]);
    let restored = work.path().join("restored");
    ok(&roost(&[
        "restore",
        s(&dir.join(&written[2])),
        "--data-dir",
        s(&restored),
    ]));
    assert_eq!(
        rows(&restored, "SELECT username FROM accounts"),
        vec![vec![Value::Text("mom".into())]]
    );
}

/// An account as XEP-0227 describes it, for the Prosody round trip.
const JULIET: &str = "<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='roost-pie.test'>
    <user name='juliet' password='juliet password'>
      <query xmlns='jabber:iq:roster'>
        <item jid='romeo@montague.net' name='Romeo' subscription='both'><group>Friends</group><group>Lovers</group></item>
        <item jid='nurse@roost-pie.test' subscription='from'/>
      </query>
      <presence xmlns='jabber:client' type='subscribe' from='tybalt@capulet.com'/>
      <vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><NICKNAME>Jules</NICKNAME></vCard>
      <query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Jules</defaultnick></exodus></query>
      <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>
        <configure node='http://jabber.org/protocol/nick'><x xmlns='jabber:x:data' type='form'>
          <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>
          <field var='pubsub#access_model'><value>presence</value></field></x></configure>
      </pubsub>
      <pubsub xmlns='http://jabber.org/protocol/pubsub'>
        <items node='http://jabber.org/protocol/nick'><item id='current'><nick xmlns='http://jabber.org/protocol/nick'>Jules</nick></item></items>
      </pubsub>
      <archive xmlns='urn:xmpp:pie:0#mam'>
        <result xmlns='urn:xmpp:mam:2' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' to='juliet@roost-pie.test/balcony' from='romeo@montague.net/orchard' type='chat'><body>Call me but love</body></message></forwarded></result>
        <result xmlns='urn:xmpp:mam:2' id='5d398-28273-f7382'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:09:32Z'/><message xmlns='jabber:client' to='romeo@montague.net/orchard' from='juliet@roost-pie.test/balcony' type='chat' id='8a54s'><body>What man art thou</body></message></forwarded></result>
      </archive>
    </user>
  </host>
</server-data>
";

/// Serialized XML with every element's attributes sorted: equal for equal XML.
fn normalized(xml: &str) -> String {
    fn sort(e: &mut Element) {
        e.attrs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for c in e.children.iter_mut() {
            if let roost::xml::Node::Element(c) = c {
                sort(c);
            }
        }
    }
    let mut e =
        roost::xml::parse::parse_element(&roost::xml::parse::Scope::client(), xml.as_bytes())
            .unwrap();
    sort(&mut e);
    e.to_string()
}

/// Juliet's data, compared as XML and as sets where Prosody keeps sets (roster groups).
fn juliet(dir: &Path) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::Text(t) => t.clone(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    };
    let mut out = Vec::new();
    for r in rows(
        dir,
        "SELECT contact, name, groups, subscription, pending_out, pending_in, \
                       in_roster, request FROM roster WHERE username = 'juliet' ORDER BY contact",
    ) {
        let mut groups: Vec<&str> = match &r[2] {
            Value::Text(g) if !g.is_empty() => g.split('\n').collect(),
            _ => Vec::new(),
        };
        groups.sort();
        let request = match &r[7] {
            Value::Text(x) => normalized(x),
            _ => String::new(),
        };
        out.push(format!(
            "roster {} {} {groups:?} {} {} {} {} {request}",
            text(&r[0]),
            text(&r[1]),
            text(&r[3]),
            text(&r[4]),
            text(&r[5]),
            text(&r[6])
        ));
    }
    for (what, sql) in [
        ("vcard", "SELECT xml FROM vcard WHERE username = 'juliet'"),
        (
            "private",
            "SELECT xml FROM private_storage WHERE username = 'juliet' ORDER BY ns",
        ),
        (
            "pep",
            "SELECT xml FROM pep_items WHERE username = 'juliet' ORDER BY node, id",
        ),
    ] {
        for r in rows(dir, sql) {
            out.push(format!("{what} {}", normalized(&text(&r[0]))));
        }
    }
    for r in rows(
        dir,
        "SELECT node, access_model FROM pep_nodes WHERE username = 'juliet' \
                       ORDER BY node",
    ) {
        out.push(format!("node {} {}", text(&r[0]), text(&r[1])));
    }
    for r in rows(
        dir,
        "SELECT id, ts, with_bare, with_full, stanza FROM archive \
                       WHERE username = 'juliet' ORDER BY seq",
    ) {
        out.push(format!(
            "archive {} {} {} {} {}",
            text(&r[0]),
            text(&r[1]),
            text(&r[2]),
            text(&r[3]),
            normalized(&text(&r[4]))
        ));
    }
    out
}

/// Removes Prosody's XEP-0227 file of juliet when the test ends.
struct ProsodyFile(PathBuf);

impl Drop for ProsodyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Interop with Prosody 0.12's XEP-0227 storage (mod_storage_xep0227 through
/// prosody-migrator, run as Prosody runs it): Prosody reads the file `roost export`
/// writes into its own storage, writes it back out as XEP-0227, and `roost import` of
/// Prosody's file gives the same account. Needs Debian's prosody and root (the migrator
/// works in /var/lib/prosody as user prosody); skipped without them.
#[test]
fn prosody_reads_what_roost_exports_and_roost_imports_what_prosody_writes() {
    let prosody_data = Path::new("/var/lib/prosody");
    let have = Command::new("prosody-migrator")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let probe = prosody_data.join(".roost-backup-test");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !have || !writable {
        eprintln!("skipped: needs Debian's prosody (prosody-migrator) and root");
        return;
    }
    let first = TestServer::start_with(|c| c.domain = "roost-pie.test".into());
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("juliet-in.xml");
    std::fs::write(&input, JULIET).unwrap();
    ok(&roost(&[
        "import",
        s(&input),
        "--data-dir",
        s(first.dir.path()),
    ]));
    let ours = juliet(first.dir.path());
    assert!(ours.len() >= 8, "{ours:?}");

    // roost → Prosody's file store (its own storage format) → XEP-0227 written by Prosody.
    let file = ProsodyFile(prosody_data.join("juliet@roost-pie.test.xml"));
    ok(&roost(&[
        "export",
        "juliet@roost-pie.test",
        s(&file.0),
        "--data-dir",
        s(first.dir.path()),
    ]));
    let chown = |p: &Path| {
        assert!(Command::new("chown")
            .arg("prosody:prosody")
            .arg(p)
            .status()
            .unwrap()
            .success());
    };
    chown(&file.0);
    use std::os::unix::fs::PermissionsExt;
    let mid = work.path().join("prosody-store");
    std::fs::create_dir(&mid).unwrap();
    chown(&mid);
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = work.path().join("migrator.cfg.lua");
    std::fs::write(
        &config,
        format!(
            "local stores = {{ 'accounts'; 'roster'; 'vcard'; 'private'; 'pep-pubsub'; \
             'archive-archive' }};\n\
             xep0227 {{ type = 'xep0227'; hosts = {{ ['roost-pie.test'] = stores }} }}\n\
             files {{ type = 'internal'; path = '{}'; hosts = {{ ['roost-pie.test'] = stores }} }}\n",
            mid.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let migrate = |from: &str, to: &str| {
        let out = Command::new("timeout")
            .args(["120", "prosody-migrator", "--keep-going", "--config"])
            .arg(&config)
            .args([from, to])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prosody-migrator {from} {to}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    migrate("xep0227", "files");
    // Prosody has juliet's SCRAM-SHA-1 keys, as roost stores them.
    let accounts = std::fs::read_to_string(mid.join("roost%2dpie%2etest/accounts/juliet.dat"))
        .expect("Prosody stored the account");
    let key = rows(
        first.dir.path(),
        "SELECT sha1_stored_key FROM accounts WHERE username = 'juliet'",
    );
    let Value::Blob(key) = &key[0][0] else {
        panic!()
    };
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(accounts.contains(&hex), "{accounts}");
    assert!(
        std::fs::read_to_string(mid.join("roost%2dpie%2etest/roster/juliet.dat"))
            .unwrap()
            .contains("romeo@montague.net")
    );
    std::fs::remove_file(&file.0).unwrap();
    migrate("files", "xep0227");
    let back = std::fs::read_to_string(&file.0).expect("Prosody wrote the account");
    drop(file);
    assert!(back.contains("mechanism='SCRAM-SHA-1'"), "{back}");

    // Prosody's file into another roost: the same account. Its keys are SCRAM-SHA-1 only,
    // so a new password is given.
    let second = TestServer::start_with(|c| c.domain = "roost-pie.test".into());
    let back_file = work.path().join("juliet-from-prosody.xml");
    std::fs::write(&back_file, &back).unwrap();
    let err = failed(&roost(&[
        "import",
        s(&back_file),
        "--data-dir",
        s(second.dir.path()),
    ]));
    assert!(err.contains("--set-password"), "{err}");
    let out = common::roost_cmd()
        .args(["import", s(&back_file), "--set-password", "--data-dir"])
        .arg(second.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"juliet password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    ok(&out);
    assert_eq!(juliet(second.dir.path()), ours);
    let mut c = Client::connect(&second);
    c.open();
    c.starttls();
    assert_eq!(
        c.scram(
            roost::sasl::Mechanism::ScramSha256,
            "juliet",
            "juliet password",
            None
        ),
        Ok(())
    );
}

#[test]
fn a_damaged_database_is_restored_over_and_kept_aside() {
    let (work, _a, archive) = two_dirs();
    let b = work.path().join("b");
    let damaged = vec![0x5a_u8; 64 * 1024];
    std::fs::write(b.join("roost.db"), &damaged).unwrap();
    let out = ok(&roost(&[
        "restore",
        s(&archive),
        "--data-dir",
        s(&b),
        "--yes",
    ]));
    assert!(out.contains("restored 1 account(s)"), "{out}");
    assert_eq!(
        rows(&b, "SELECT username FROM accounts"),
        vec![vec![Value::Text("mom".into())]]
    );
    let aside = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".before-restore-")
        })
        .expect("the old data kept");
    assert!(std::fs::read(aside.join("roost.db")).unwrap() == damaged);
}
