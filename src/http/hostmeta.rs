//! XEP-0156 connection discovery over HTTP: `/.well-known/host-meta` (XRD, RFC 6415) and
//! `/.well-known/host-meta.json` (JRD) name the WebSocket endpoint (RFC 7395 §4), so a web
//! client such as Converse.js finds the server from the domain alone. Served to any origin
//! (`Access-Control-Allow-Origin: *`, XEP-0156 §3.2).

use super::request::{Body, Request, Response};
use super::Http;

/// The link relation of an XMPP-over-WebSocket endpoint (XEP-0156 §3).
pub const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";

/// Answers a request for host-meta (`json`: the JRD form).
pub fn serve(http: &Http, req: &Request, json: bool) -> Response {
    match req.method.as_str() {
        "GET" | "HEAD" => {}
        "OPTIONS" => return super::preflight("GET, HEAD, OPTIONS"),
        _ => return super::method_not_allowed("GET, HEAD, OPTIONS"),
    }
    let ws = http.websocket_url();
    // With --no-websocket there is nothing to discover: an empty document.
    let (content_type, body) = match (json, http.websocket) {
        (true, true) => (
            "application/json",
            format!(
                "{{\"links\":[{{\"rel\":\"{REL_WEBSOCKET}\",\"href\":\"{}\"}}]}}\n",
                json_escape(&ws)
            ),
        ),
        (true, false) => ("application/json", "{\"links\":[]}\n".to_owned()),
        (false, on) => (
            "application/xrd+xml; charset=utf-8",
            format!(
                "<?xml version='1.0' encoding='utf-8'?>\n\
                 <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n{}</XRD>\n",
                if on {
                    format!(
                        "  <Link rel='{REL_WEBSOCKET}' href='{}'/>\n",
                        crate::xml::escape(&ws)
                    )
                } else {
                    String::new()
                }
            ),
        ),
    };
    Response::new(200)
        .with_header("Content-Type", content_type)
        .with_header("Cache-Control", "max-age=3600")
        .with_body(Body::Bytes(body.into_bytes()))
}

/// `s` inside a JSON string.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(super::json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
