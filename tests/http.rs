//! The HTTP service's rules over real sockets: XEP-0156 host-meta, CORS, HTTPS with the
//! client certificate (SNI for the domain and upload.<domain>, a browser's ALPN offer),
//! plain HTTP on loopback only, keep-alive, and the limits (head size and field count,
//! framing we do not read, head timeout closing slowloris clients, connections per address).

mod common;

use common::http::HttpClient;
use common::*;
use std::time::{Duration, Instant};

fn start_http(tweak: impl FnOnce(&mut roost::config::HttpConfig)) -> TestServer {
    TestServer::start_with(|c| tweak(&mut c.http))
}

#[test]
fn host_meta_names_the_websocket_endpoint_in_xrd_and_json_for_any_origin() {
    let server = start_http(|_| {});
    let port = server.running.as_ref().unwrap().https_addrs[0].port();
    let ws = format!("wss://localhost:{port}/xmpp-websocket");
    let mut c = HttpClient::https(&server);
    let xrd = c.request(
        "GET",
        "/.well-known/host-meta",
        &[("Origin", "https://web.example")],
        b"",
    );
    assert_eq!(xrd.status, 200);
    assert_eq!(xrd.header("access-control-allow-origin"), Some("*"));
    assert!(xrd
        .header("content-type")
        .unwrap()
        .starts_with("application/xrd+xml"));
    let doc = xrd.text();
    assert!(
        doc.contains("<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>"),
        "{doc}"
    );
    assert!(
        doc.contains(&format!(
            "<Link rel='urn:xmpp:alt-connections:websocket' href='{ws}'/>"
        )),
        "{doc}"
    );
    // Same connection (keep-alive): the JSON form.
    let jrd = c.request("GET", "/.well-known/host-meta.json", &[], b"");
    assert_eq!(jrd.status, 200);
    assert_eq!(jrd.header("content-type"), Some("application/json"));
    assert_eq!(jrd.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        jrd.text().trim(),
        format!(
            "{{\"links\":[{{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":\"{ws}\"}}]}}"
        )
    );
    // HEAD: the same head, no body.
    let head = c.request("HEAD", "/.well-known/host-meta.json", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        jrd.body.len().to_string()
    );
    // A preflight and a method host-meta does not serve.
    let pre = c.request(
        "OPTIONS",
        "/.well-known/host-meta",
        &[
            ("Origin", "https://web.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert!(pre
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    let post = c.request("POST", "/.well-known/host-meta", &[], b"x");
    assert_eq!(post.status, 405);
    assert!(post.header("allow").unwrap().contains("GET"));
    // Its body was not read: the connection is closed after the answer.
    assert_eq!(post.header("connection"), Some("close"));
    assert!(c.is_closed());
    let mut c = HttpClient::https(&server);
    let missing = c.request("GET", "/nothing-here", &[], b"");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn the_external_url_is_the_one_handed_out() {
    let server = start_http(|h| h.external_url = Some("https://chat.example.org/".into()));
    let mut c = HttpClient::https(&server);
    let jrd = c.request("GET", "/.well-known/host-meta.json", &[], b"");
    assert!(
        jrd.text()
            .contains("\"href\":\"wss://chat.example.org/xmpp-websocket\""),
        "{}",
        jrd.text()
    );
}

#[test]
fn https_serves_the_upload_name_and_a_browsers_alpn_offer() {
    let server = start_http(|_| {});
    // The self-signed certificate names upload.localhost; the client offers h2 and
    // http/1.1 as browsers do (a server offering only xmpp-client would refuse it).
    let mut c = HttpClient::https_as(&server, "upload.localhost");
    assert_eq!(
        c.request("GET", "/.well-known/host-meta", &[], b"").status,
        200
    );
}

#[test]
fn plain_http_listens_on_loopback_only_and_is_off_by_default() {
    let server = start_http(|_| {});
    assert!(server.running.as_ref().unwrap().http_addrs.is_empty());
    let server = start_http(|h| h.http_port = Some(0));
    let addrs = &server.running.as_ref().unwrap().http_addrs;
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    let mut c = HttpClient::plain(addrs[0]);
    let r = c.request("GET", "/.well-known/host-meta.json", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn no_http_means_no_listener() {
    let server = start_http(|h| h.enabled = false);
    let running = server.running.as_ref().unwrap();
    assert!(running.https_addrs.is_empty() && running.http_addrs.is_empty());
    assert!(running.http.is_none());
}

#[test]
fn an_oversized_head_or_too_many_fields_get_431_and_the_connection_closes() {
    let server = start_http(|h| {
        h.max_head_bytes = 2048;
        h.max_headers = 8;
    });
    let mut c = HttpClient::https(&server);
    let big = "x".repeat(3000);
    c.send(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.response(false);
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());

    let mut c = HttpClient::https(&server);
    let mut head = String::from("GET / HTTP/1.1\r\n");
    for i in 0..9 {
        head.push_str(&format!("X-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    c.send(head.as_bytes());
    assert_eq!(c.response(false).status, 431);
    assert!(c.is_closed());
}

#[test]
fn chunked_bodies_and_conflicting_lengths_are_refused() {
    let server = start_http(|_| {});
    let mut c = HttpClient::https(&server);
    c.send(b"PUT /upload/x/y HTTP/1.1\r\nHost: l\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 501);
    assert!(r.text().contains("Content-Length"), "{}", r.text());
    assert!(c.is_closed());
    let mut c = HttpClient::https(&server);
    c.send(b"PUT /upload/x/y HTTP/1.1\r\nHost: l\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
    assert_eq!(c.response(false).status, 400);
    assert!(c.is_closed());
    let mut c = HttpClient::https(&server);
    c.send(b"\x00\x01garbage\r\n\r\n");
    assert_eq!(c.response(false).status, 400);
}

#[test]
fn a_slowloris_head_is_cut_off_at_the_head_timeout() {
    let server = start_http(|h| h.head_timeout = Duration::from_millis(800));
    let mut c = HttpClient::https(&server);
    let start = Instant::now();
    // A byte every 200 ms never completes the head within 800 ms.
    for b in b"GET /.well-known/host-meta HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaa" {
        if !c.try_send(&[*b]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let r = c.try_response(false);
    if let Some(r) = r {
        assert_eq!(r.status, 408);
    }
    assert!(c.is_closed());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // An idle keep-alive connection is closed after the same time, without a response.
    let mut c = HttpClient::https(&server);
    assert_eq!(
        c.request("GET", "/.well-known/host-meta", &[], b"").status,
        200
    );
    let start = Instant::now();
    assert!(c.try_response(false).is_none());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn connections_per_address_are_limited() {
    let server = start_http(|h| h.max_per_ip = 3);
    let mut open: Vec<HttpClient> = (0..3)
        .map(|_| {
            let mut c = HttpClient::https(&server);
            assert_eq!(
                c.request("GET", "/.well-known/host-meta", &[], b"").status,
                200
            );
            c
        })
        .collect();
    // The fourth is closed at once (no TLS handshake).
    let addr = server.running.as_ref().unwrap().https_addrs[0];
    let mut fourth = std::net::TcpStream::connect(addr).unwrap();
    fourth.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    use std::io::Read;
    assert_eq!(fourth.read(&mut buf).unwrap_or(0), 0);
    // When one goes, a new one is served.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = HttpClient::https(&server);
        // Until the server has seen the close, the new connection is still refused (the
        // TLS handshake in the first write fails).
        if c.try_send(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: l\r\n\r\n") {
            if let Some(r) = c.try_response(false) {
                assert_eq!(r.status, 200);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_silent_tls_client_is_closed_at_the_handshake_timeout_and_connections_are_capped() {
    // Long enough for a TLS handshake of a debug build under qemu (the Pi step).
    let server = start_http(|h| {
        h.head_timeout = Duration::from_secs(3);
        h.max_connections = 2;
    });
    let addr = server.running.as_ref().unwrap().https_addrs[0];
    let start = Instant::now();
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut buf = [0u8; 16];
    use std::io::Read;
    // No ClientHello: closed without a byte once the handshake time is over.
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(15),
        "{took:?}"
    );
    // Two connections in all: a third is closed at once, from any address. The silent
    // connection's place is given back just after its close: on a slow machine (qemu) the
    // client can see the close first.
    std::thread::sleep(Duration::from_millis(500));
    let mut a = HttpClient::https(&server);
    let mut b = HttpClient::https(&server);
    for c in [&mut a, &mut b] {
        c.send(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: l\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
    }
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    third.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let start = Instant::now();
    assert_eq!(third.read(&mut buf).unwrap_or(0), 0);
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "not refused at once"
    );
}

#[test]
fn the_per_address_limit_does_not_apply_to_the_reverse_proxy_on_loopback() {
    let server = start_http(|h| {
        h.max_per_ip = 1;
        h.http_port = Some(0);
    });
    let plain = server.running.as_ref().unwrap().http_addrs[0];
    // Every client of a proxy arrives from 127.0.0.1: three at once are served.
    let mut clients: Vec<HttpClient> = (0..3).map(|_| HttpClient::plain(plain)).collect();
    for c in &mut clients {
        assert_eq!(
            c.request("GET", "/.well-known/host-meta", &[], b"").status,
            200
        );
    }
    // On HTTPS the second connection from the address is refused.
    let mut first = HttpClient::https(&server);
    assert_eq!(
        first
            .request("GET", "/.well-known/host-meta", &[], b"")
            .status,
        200
    );
    let mut second = HttpClient::https(&server);
    let refused = !second.try_send(b"GET /.well-known/host-meta HTTP/1.1\r\nHost: l\r\n\r\n")
        || second.try_response(false).is_none();
    assert!(
        refused,
        "a second HTTPS connection from one address was served"
    );
}
