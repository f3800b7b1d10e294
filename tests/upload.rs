//! XEP-0363 HTTP File Upload end to end: slots asked for over XMPP by logged-in accounts,
//! files PUT and fetched over HTTPS by another account, and every rule: limits and their
//! errors (XMPP and HTTP), ranges, HEAD, CORS, headers for active types, path escape
//! attempts, interrupted uploads, expiry and deletion with the account.

mod common;

use common::http::{HttpClient, HttpResponse};
use common::*;
use roost::xml::Element;
use std::time::Duration;

const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";
const UPLOAD: &str = "upload.localhost";

fn start(tweak: impl FnOnce(&mut roost::config::UploadConfig)) -> TestServer {
    let server = TestServer::start_with(|c| tweak(&mut c.upload));
    server.add_user("mom", "mom password");
    server.add_user("dad", "dad password");
    server
}

/// A slot request: the reply (result or error).
fn ask(c: &mut Client, name: &str, size: u64, content_type: Option<&str>) -> Element {
    let ct = content_type
        .map(|t| format!(" content-type='{t}'"))
        .unwrap_or_default();
    c.iq(&format!(
        "<iq type='get' id='slot-{size}' to='{UPLOAD}'><request xmlns='{NS_UPLOAD}' \
         filename='{name}' size='{size}'{ct}/></iq>"
    ))
}

/// The PUT and GET URLs of a slot reply.
fn urls(reply: &Element) -> (String, String) {
    assert_eq!(
        reply.attr("type"),
        Some("result"),
        "{}",
        reply.to_client_string()
    );
    let slot = reply.child("slot", NS_UPLOAD).expect("a slot");
    let put = slot.child("put", NS_UPLOAD).unwrap().attr("url").unwrap();
    let get = slot.child("get", NS_UPLOAD).unwrap().attr("url").unwrap();
    (put.to_owned(), get.to_owned())
}

/// The path of a URL on the test server (`https://localhost:PORT/...`; the port of the
/// server that gave the slot, which may have been restarted since).
fn path(_server: &TestServer, url: &str) -> String {
    let rest = url
        .strip_prefix("https://localhost:")
        .unwrap_or_else(|| panic!("{url} is not on https://localhost"));
    rest[rest.find('/').unwrap()..].to_owned()
}

fn put(server: &TestServer, url: &str, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
    let mut h = HttpClient::https(server);
    let headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    h.request("PUT", &path(server, url), &headers, body)
}

fn get(server: &TestServer, url: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut h = HttpClient::https(server);
    h.request("GET", &path(server, url), headers, b"")
}

fn photo(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn upload_files(server: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(server.dir.path().join("upload"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn the_service_is_listed_and_announces_its_largest_file() {
    let server = start(|u| u.max_size = 12345);
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let items = mom.iq(
        "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert!(
        items.to_client_string().contains("jid='upload.localhost'"),
        "{}",
        items.to_client_string()
    );
    let info = mom.iq(&format!(
        "<iq type='get' id='d' to='{UPLOAD}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ));
    let text = info.to_client_string();
    assert!(
        text.contains("category='store'") && text.contains("type='file'"),
        "{text}"
    );
    assert!(text.contains(&format!("var='{NS_UPLOAD}'")), "{text}");
    let form = info
        .child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .child("x", "jabber:x:data")
        .expect("the XEP-0128 form");
    let field = |var: &str| {
        form.elements()
            .find(|f| f.attr("var") == Some(var))
            .map(|f| f.elements().next().unwrap().text())
    };
    assert_eq!(field("FORM_TYPE").as_deref(), Some(NS_UPLOAD));
    assert_eq!(field("max-file-size").as_deref(), Some("12345"));
}

#[test]
fn a_photo_uploaded_by_one_account_downloads_byte_identical_on_another() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let data = photo(300_000);
    let (put_url, get_url) = urls(&ask(
        &mut mom,
        "très cool.jpg",
        data.len() as u64,
        Some("image/jpeg"),
    ));
    assert_eq!(put_url, get_url);
    assert!(
        put_url.contains("/upload/") && put_url.ends_with("/tr%C3%A8s%20cool.jpg"),
        "{put_url}"
    );
    // Before the upload nothing is served.
    assert_eq!(get(&server, &get_url, &[]).status, 404);
    let r = put(&server, &put_url, Some("image/jpeg"), &data);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    // Dad's client fetches the link it got in a message.
    let _dad = Client::login(&server, "dad", "dad password", "laptop");
    let r = get(&server, &get_url, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == data, "the download differs from the upload");
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("content-disposition"),
        Some("inline; filename*=UTF-8''tr%C3%A8s%20cool.jpg")
    );

    // HEAD: the same head, no body; then another request on the same connection.
    let mut h = HttpClient::https(&server);
    let head = h.request("HEAD", &path(&server, &get_url), &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());
    // Ranges (RFC 9110 §14): a slice, an open end, a suffix, and past the end.
    let p = path(&server, &get_url);
    let r = h.request("GET", &p, &[("Range", "bytes=1000-1999")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    assert!(r.body == data[1000..2000]);
    let r = h.request("GET", &p, &[("Range", "bytes=299990-")], b"");
    assert_eq!(r.status, 206);
    assert!(r.body == data[299_990..]);
    let r = h.request("GET", &p, &[("Range", "bytes=-10")], b"");
    assert_eq!(
        r.header("content-range"),
        Some("bytes 299990-299999/300000")
    );
    assert!(r.body == data[299_990..]);
    let r = h.request("GET", &p, &[("Range", "bytes=300000-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));
    // Several ranges are not served as multipart: the whole file.
    let r = h.request("GET", &p, &[("Range", "bytes=0-1,5-6")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 300_000);

    // A web client's preflight for a PUT.
    let pre = h.request(
        "OPTIONS",
        &p,
        &[
            ("Origin", "https://web.example"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase()
        .contains("content-type"));
    // The slot cannot be used twice.
    assert_eq!(
        put(&server, &put_url, Some("image/jpeg"), &data).status,
        409
    );
    // Only the finished file is on disk, under the slot's id.
    let files = upload_files(&server);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(put_url.contains(&format!("/upload/{}/", files[0])));
}

#[test]
fn slot_requests_over_a_limit_get_the_xep_0363_errors() {
    let server = start(|u| {
        u.max_size = 1000;
        u.quota = 2500;
        u.daily_quota = 2000;
        u.disk_cap = 3500;
    });
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    // Too large: not-acceptable with <file-too-large><max-file-size/>.
    let e = ask(&mut mom, "big.jpg", 1001, None);
    assert_eq!(e.attr("type"), Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    let err = e.child("error", roost::ns::CLIENT).unwrap();
    assert_eq!(err.attr("type"), Some("modify"));
    let max = err
        .child("file-too-large", NS_UPLOAD)
        .and_then(|f| f.child("max-file-size", NS_UPLOAD))
        .expect("file-too-large with max-file-size");
    assert_eq!(max.text(), "1000");
    // Bad requests.
    for bad in [
        format!("<request xmlns='{NS_UPLOAD}' size='10'/>"),
        format!("<request xmlns='{NS_UPLOAD}' filename='a' size='0'/>"),
        format!("<request xmlns='{NS_UPLOAD}' filename='a' size='-5'/>"),
        format!("<request xmlns='{NS_UPLOAD}' filename='a' size='5' content-type='no type'/>"),
    ] {
        let e = mom.iq(&format!("<iq type='get' id='b' to='{UPLOAD}'>{bad}</iq>"));
        assert_eq!(error_condition(&e).as_deref(), Some("bad-request"), "{bad}");
    }
    // The daily limit: 1000 + 1000 fit, a third is refused with a retry time.
    for _ in 0..2 {
        urls(&ask(&mut mom, "a.jpg", 1000, None));
    }
    let e = ask(&mut mom, "c.jpg", 1, None);
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
    let err = e.child("error", roost::ns::CLIENT).unwrap();
    assert_eq!(err.attr("type"), Some("wait"));
    assert!(err
        .child("retry", NS_UPLOAD)
        .and_then(|r| r.attr("stamp"))
        .is_some());
    // Dad: 1000 fits his quota but not the server's cap (3500) on top of mom's 2000…
    let mut dad = Client::login(&server, "dad", "dad password", "laptop");
    urls(&ask(&mut dad, "d.jpg", 1000, None));
    let e = ask(&mut dad, "e.jpg", 600, None);
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
    let text = e.to_client_string();
    assert!(text.contains("full"), "{text}");
}

#[test]
fn the_per_account_quota_counts_kept_files() {
    let server = start(|u| {
        u.quota = 1500;
    });
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    urls(&ask(&mut mom, "a.jpg", 1000, None));
    let e = ask(&mut mom, "b.jpg", 600, None);
    assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
    assert!(
        e.to_client_string().contains("Quota reached"),
        "{}",
        e.to_client_string()
    );
    // Within what is left.
    urls(&ask(&mut mom, "b.jpg", 500, None));
}

#[test]
fn puts_that_break_the_slot_are_refused_with_their_status() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let (url, _) = urls(&ask(&mut mom, "a.png", 100, Some("image/png")));
    let body = photo(100);
    // Larger than the slot: 413; smaller: 400; another type or none: 400.
    assert_eq!(
        put(&server, &url, Some("image/png"), &photo(101)).status,
        413
    );
    assert_eq!(
        put(&server, &url, Some("image/png"), &photo(99)).status,
        400
    );
    assert_eq!(put(&server, &url, Some("text/html"), &body).status, 400);
    assert_eq!(put(&server, &url, None, &body).status, 400);
    // Without Content-Length: 411.
    let mut h = HttpClient::https(&server);
    h.send(
        format!(
            "PUT {} HTTP/1.1\r\nHost: l\r\nContent-Type: image/png\r\n\r\n",
            path(&server, &url)
        )
        .as_bytes(),
    );
    assert_eq!(h.response(false).status, 411);
    // A slot that was never given: 404; a method not served: 405.
    let id = &url.split("/upload/").nth(1).unwrap()[..32];
    let forged = url.replace(id, "0123456789abcdef0123456789abcdef");
    assert_eq!(put(&server, &forged, Some("image/png"), &body).status, 404);
    let mut h = HttpClient::https(&server);
    assert_eq!(
        h.request("DELETE", &path(&server, &url), &[], b"").status,
        405
    );
    // Nothing was stored by the refusals; the right PUT still works.
    assert!(upload_files(&server).is_empty());
    assert_eq!(put(&server, &url, Some("image/png"), &body).status, 201);
}

#[test]
fn an_expired_slot_is_refused_with_403() {
    let server = start(|u| u.slot_timeout = Duration::ZERO);
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let (url, _) = urls(&ask(&mut mom, "a.png", 10, None));
    std::thread::sleep(Duration::from_millis(1100));
    let r = put(&server, &url, None, &photo(10));
    assert_eq!(r.status, 403);
    assert!(r.text().contains("expired"), "{}", r.text());
}

#[test]
fn paths_never_leave_the_upload_directory() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    // A name with a path in it is cut to its last part; the file is stored by slot id.
    let (url, _) = urls(&ask(&mut mom, "../../roost.db", 5, None));
    assert!(url.ends_with("/roost.db") && !url.contains(".."), "{url}");
    assert_eq!(put(&server, &url, None, b"hello").status, 201);
    let id = upload_files(&server)[0].clone();
    // The database is still the database.
    let db = std::fs::read(server.dir.path().join("roost.db")).unwrap();
    assert!(db.starts_with(b"SQLite format 3"));
    let mut h = HttpClient::https(&server);
    for p in [
        "/upload/../roost.db".to_string(),
        "/upload/%2e%2e/roost.db".to_string(),
        format!("/upload/{id}/../../roost.db"),
        format!("/upload/../upload/{id}/x"),
        format!("/upload/{}/x", id.to_ascii_uppercase()),
        format!("/upload/.{id}.part/x"),
        format!("/upload/{id}%2f..%2f..%2froost.db/x"),
        format!("/upload/{id}"),
        "/upload//etc/passwd".to_string(),
        "/roost.db".to_string(),
    ] {
        let r = h.request("GET", &p, &[], b"");
        assert_eq!(r.status, 404, "{p}");
        assert!(!r.body.starts_with(b"SQLite"), "{p}");
    }
    // The real path with any name serves the file.
    assert_eq!(
        h.request("GET", &format!("/upload/{id}/whatever"), &[], b"")
            .body,
        b"hello"
    );
}

#[test]
fn active_content_is_served_as_an_attachment() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let page = b"<script>alert(1)</script>";
    for ty in ["text/html", "image/svg+xml"] {
        let (url, _) = urls(&ask(&mut mom, "x.html", page.len() as u64, Some(ty)));
        assert_eq!(put(&server, &url, Some(ty), page).status, 201);
        let r = get(&server, &url, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(ty));
        assert!(
            r.header("content-disposition")
                .unwrap()
                .starts_with("attachment;"),
            "{ty}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .contains("sandbox"));
    }
    // Without a type: application/octet-stream, as an attachment.
    let (url, _) = urls(&ask(&mut mom, "blob", 3, None));
    assert_eq!(put(&server, &url, None, b"abc").status, 201);
    let r = get(&server, &url, &[]);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
}

#[test]
fn a_large_upload_streams_with_expect_continue_and_an_interrupted_one_leaves_nothing() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let data = photo(4 * 1024 * 1024 + 17);
    let (url, _) = urls(&ask(
        &mut mom,
        "video.mp4",
        data.len() as u64,
        Some("video/mp4"),
    ));
    let p = path(&server, &url);
    // Interrupted: half the body, then the client goes.
    {
        let mut h = HttpClient::https(&server);
        h.send(
            format!(
                "PUT {p} HTTP/1.1\r\nHost: l\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        );
        h.send(&data[..data.len() / 2]);
        // The server is writing the part file (bounded wait) when the client goes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while upload_files(&server).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no part file");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(upload_files(&server)[0].ends_with(".part"));
    }
    // The partial file is removed once the server sees the connection end.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !upload_files(&server).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            upload_files(&server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Expect: 100-continue (curl's way for large bodies): the body goes after the 100.
    let mut h = HttpClient::https(&server);
    h.send(
        format!(
            "PUT {p} HTTP/1.1\r\nHost: l\r\nContent-Type: video/mp4\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .as_bytes(),
    );
    assert_eq!(h.response(false).status, 100);
    h.send(&data);
    assert_eq!(h.response(false).status, 201);
    let r = get(&server, &url, &[]);
    assert!(r.body == data);
}

#[test]
fn accounts_of_other_servers_and_messages_get_errors() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    mom.send(&format!(
        "<message to='{UPLOAD}' id='m1' type='chat'><body>hi</body></message>"
    ));
    let bounce = mom.wait_for("the bounce", |e| e.name == "message");
    assert_eq!(
        error_condition(&bounce).as_deref(),
        Some("service-unavailable")
    );
    let e = mom.iq(&format!(
        "<iq type='set' id='s' to='{UPLOAD}'><foo xmlns='urn:x'/></iq>"
    ));
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
}

/// A remote domain for the test: what the server sends it is kept.
#[derive(Default)]
struct Far(std::sync::Mutex<Vec<Element>>);

impl roost::router::Remote for Far {
    fn send(&self, _core: &std::sync::Arc<roost::Core>, _domain: &str, stanza: Element) {
        self.0.lock().unwrap().push(stanza);
    }
}

#[test]
fn an_account_of_another_server_may_not_upload() {
    use roost::router::{self, Origin};
    let server = start(|_| {});
    let far = std::sync::Arc::new(Far::default());
    server.core().set_remote(far.clone());
    let request = roost::xml::parse::parse_element(
        &roost::xml::parse::Scope::client(),
        format!(
            "<iq type='get' id='far1' from='eve@faraway.example/x' to='{UPLOAD}'>\
             <request xmlns='{NS_UPLOAD}' filename='a.jpg' size='10'/></iq>"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut replies = Vec::new();
    smol::block_on(router::process(
        server.core(),
        &Origin::Remote("faraway.example".into()),
        request,
        &mut replies,
    ))
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let reply = loop {
        if let Some(r) = far
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.attr("id") == Some("far1"))
        {
            break r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer to the remote request"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(error_condition(&reply).as_deref(), Some("not-allowed"));
    assert!(upload_files(&server).is_empty());
}

#[test]
fn files_expire_after_the_retention() {
    let server = start(|u| u.expires_days = Some(2));
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let (old, _) = urls(&ask(&mut mom, "old.jpg", 3, None));
    let (new, _) = urls(&ask(&mut mom, "new.jpg", 3, None));
    let (abandoned, _) = urls(&ask(&mut mom, "never.jpg", 3, None));
    assert_eq!(put(&server, &old, None, b"old").status, 201);
    assert_eq!(put(&server, &new, None, b"new").status, 201);
    mom.close();
    let id_of = |url: &str| url.split("/upload/").nth(1).unwrap()[..32].to_owned();
    let (old_id, new_id, abandoned_id) = (id_of(&old), id_of(&new), id_of(&abandoned));
    // Three days pass for the old file and the abandoned slot (the server is stopped and
    // the clock moved in the database: the server's own expiry pass at start does the rest).
    let mut server = server;
    server.stop();
    let conn = roost::storage::open_connection(server.dir.path()).unwrap();
    conn.execute(
        "UPDATE uploads SET created = created - 3 * 86400 WHERE id IN (?1, ?2)",
        [&old_id, &abandoned_id],
    )
    .unwrap();
    // A file without a slot (a crash between writing it and recording it) goes too.
    let orphan = "0123456789abcdef0123456789abcdef";
    std::fs::write(server.dir.path().join("upload").join(orphan), b"x").unwrap();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let server = TestServer::start_in(dir, |c| c.upload.expires_days = Some(2));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let files = upload_files(&server);
        if files == vec![new_id.clone()] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{files:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(&server, &old, &[]).status, 404);
    assert_eq!(get(&server, &new, &[]).body, b"new");
    let conn = roost::storage::open_connection(server.dir.path()).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 1);
}

#[test]
fn deluser_removes_the_accounts_files() {
    let server = start(|_| {});
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let mut dad = Client::login(&server, "dad", "dad password", "laptop");
    let (mine, _) = urls(&ask(&mut mom, "mine.jpg", 4, None));
    let (dads, _) = urls(&ask(&mut dad, "dads.jpg", 4, None));
    assert_eq!(put(&server, &mine, None, b"mine").status, 201);
    assert_eq!(put(&server, &dads, None, b"dads").status, 201);
    assert_eq!(upload_files(&server).len(), 2);
    let out = common::roost_cmd()
        .args(["deluser", "--yes", "mom@localhost", "--data-dir"])
        .arg(server.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&server, &mine, &[]).status, 404);
    assert_eq!(get(&server, &dads, &[]).body, b"dads");
    let files = upload_files(&server);
    assert_eq!(files.len(), 1);
    assert!(dads.contains(&files[0]));
}

#[test]
fn a_stalled_upload_is_closed_at_the_transfer_timeout_and_leaves_nothing() {
    let server = TestServer::start_with(|c| c.http.transfer_timeout = Duration::from_millis(700));
    server.add_user("mom", "mom password");
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let (url, _) = urls(&ask(&mut mom, "a.bin", 1000, None));
    let mut h = HttpClient::https(&server);
    h.send(
        format!(
            "PUT {} HTTP/1.1\r\nHost: l\r\nContent-Length: 1000\r\n\r\n",
            path(&server, &url)
        )
        .as_bytes(),
    );
    h.send(&photo(10));
    // Nothing more: the server answers (or just closes) once the body stalls.
    let start = std::time::Instant::now();
    if let Some(r) = h.try_response(false) {
        assert_eq!(r.status, 400, "{}", r.text());
    }
    assert!(h.is_closed());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !upload_files(&server).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            upload_files(&server)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The slot is still good for a complete upload.
    assert_eq!(put(&server, &url, None, &photo(1000)).status, 201);
}

#[test]
fn no_upload_means_no_service_and_no_files() {
    let server = start(|u| u.enabled = false);
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let items = mom.iq(
        "<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    assert!(
        !items.to_client_string().contains(UPLOAD),
        "{}",
        items.to_client_string()
    );
    let e = ask(&mut mom, "a.jpg", 10, None);
    assert_eq!(e.attr("type"), Some("error"), "{}", e.to_client_string());
    // The HTTP service still runs (host-meta), without upload paths.
    let mut h = HttpClient::https(&server);
    let r = h.request(
        "PUT",
        "/upload/0123456789abcdef0123456789abcdef/a.jpg",
        &[],
        b"0123456789",
    );
    assert_eq!(r.status, 404);
    assert!(!server.dir.path().join("upload").exists());
}

#[test]
fn behind_a_reverse_proxy_links_name_the_proxy_and_plain_http_on_loopback_serves_them() {
    let server = TestServer::start_with(|c| {
        c.http.http_port = Some(0);
        c.http.external_url = Some("https://chat.example.org".into());
    });
    server.add_user("mom", "mom password");
    let mut mom = Client::login(&server, "mom", "mom password", "phone");
    let (url, get_url) = urls(&ask(&mut mom, "a.jpg", 5, Some("image/jpeg")));
    let p = url
        .strip_prefix("https://chat.example.org")
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    assert!(p.starts_with("/upload/"), "{p}");
    assert_eq!(url, get_url);
    // The proxy forwards the paths unchanged to the plain loopback port.
    let plain = server.running.as_ref().unwrap().http_addrs[0];
    let mut h = HttpClient::plain(plain);
    let r = h.request("PUT", &p, &[("Content-Type", "image/jpeg")], b"hello");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h.request("GET", &p, &[], b"");
    assert_eq!(r.body, b"hello");
}
