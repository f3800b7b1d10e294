//! RFC 7395 at `/xmpp-websocket`: the WebSocket opening handshake (RFC 6455 §4.2) for the
//! `xmpp` subprotocol, then the connection is handed to a client session (`c2s`) that speaks
//! XMPP over it with message framing. Every refusal is an HTTP status with a plain-text reason.

use super::io::Conn;
use super::request::{Request, Response};
use crate::net::websocket::accept_key;
use crate::router::Core;
use std::sync::Arc;

/// The subprotocol a client must ask for (RFC 7395 §3.1).
pub const SUBPROTOCOL: &str = "xmpp";

/// True if the comma-separated header value lists `token` (case-insensitively).
fn lists(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks an upgrade request: `Ok` with the `101 Switching Protocols` to send, or the
/// refusal.
// Both sides are a response to write, made once per connection: boxing buys nothing.
#[allow(clippy::result_large_err)]
pub fn handshake(req: &Request) -> Result<Response, Response> {
    if req.method != "GET" {
        return Err(super::method_not_allowed("GET"));
    }
    if req.minor < 1 || !lists(req.header("upgrade"), "websocket") {
        return Err(Response::text(
            426,
            "this is the XMPP WebSocket endpoint (RFC 7395): connect with a WebSocket",
        )
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade"));
    }
    if !lists(req.header("connection"), "upgrade") {
        return Err(Response::text(
            400,
            "a WebSocket handshake needs Connection: Upgrade",
        ));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(
            Response::text(426, "only WebSocket version 13 (RFC 6455) is supported")
                .with_header("Sec-WebSocket-Version", "13"),
        );
    }
    let key = req.header("sec-websocket-key").map(str::trim).unwrap_or("");
    let key_ok = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
    };
    if !key_ok {
        return Err(Response::text(
            400,
            "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 §4.1)",
        ));
    }
    if !lists(req.header("sec-websocket-protocol"), SUBPROTOCOL) {
        return Err(Response::text(
            400,
            "the xmpp WebSocket subprotocol (Sec-WebSocket-Protocol: xmpp, RFC 7395) is required",
        ));
    }
    Ok(Response::new(101)
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade")
        .with_header("Sec-WebSocket-Accept", accept_key(key))
        .with_header("Sec-WebSocket-Protocol", SUBPROTOCOL))
}

/// After the `101`: the connection becomes a client session in a task of its own (the HTTP
/// connection's task ends, and with it its per-address HTTP count; the session is counted
/// by c2s like any other).
pub fn hand_over(core: &Arc<Core>, mut conn: Conn) {
    let read = conn.take_buffered();
    let Conn {
        io, peer, secure, ..
    } = conn;
    // The plain port listens on loopback only, for a proxy that terminates TLS: what the
    // client sees is secure.
    let secure = secure || peer.ip().is_loopback();
    core.spawn(crate::c2s::serve_websocket(
        core.clone(),
        Box::new(io),
        read,
        peer,
        secure,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: "/xmpp-websocket".into(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("host", "example.org"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat, xmpp"),
    ];

    #[test]
    fn a_good_handshake_switches_to_xmpp() {
        let Ok(r) = handshake(&request(GOOD)) else {
            panic!("refused")
        };
        assert_eq!(r.status, 101);
        let head = String::from_utf8(r.head()).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(head.contains("Sec-WebSocket-Protocol: xmpp\r\n"));
        assert!(!head.contains("Content-Length"), "{head}");
    }

    #[test]
    fn bad_handshakes_are_refused_with_the_reason() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            GOOD.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
            let mut h = without(name);
            h.push((name, value));
            h
        };
        for (headers, status) in [
            (without("upgrade"), 426),
            (without("connection"), 400),
            (with("sec-websocket-version", "8"), 426),
            (without("sec-websocket-key"), 400),
            (with("sec-websocket-key", "c2hvcnQ="), 400),
            (without("sec-websocket-protocol"), 400),
            (with("sec-websocket-protocol", "chat"), 400),
        ] {
            let Err(r) = handshake(&request(&headers)) else {
                panic!("accepted {headers:?}")
            };
            assert_eq!(r.status, status, "{headers:?}");
        }
        let mut post = request(GOOD);
        post.method = "POST".into();
        assert!(matches!(handshake(&post), Err(r) if r.status == 405));
    }
}
