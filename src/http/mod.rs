//! The HTTP service: one small HTTP/1.1 server (RFC 9110, RFC 9112) on smol for XEP-0363
//! file upload, XEP-0156 connection discovery (host-meta), RFC 7395 WebSocket clients and
//! invitation landing pages (XEP-0401).
//!
//! HTTPS on `--https-port` with the client certificate (reloaded on SIGHUP with it), and
//! optionally plain HTTP on loopback (`--http-port`) for a reverse proxy that terminates
//! TLS. Heads are parsed by `httparse`; the connection loop here enforces the limits: head
//! size and field count, a TLS-handshake and head timeout (which also closes slowloris
//! clients and idle keep-alive connections), a stall timeout on bodies, and connections per
//! address. Every route is listed in [`route`].

pub mod hostmeta;
pub mod invite;
pub mod io;
pub mod request;
pub mod websocket;

use crate::config::HttpConfig;
use crate::router::Core;
use io::{Conn, ConnLimits, Io};
use request::{Body, Response};
use smol::io::AsyncReadExt;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What the HTTP service shares between its connections.
pub struct Http {
    /// The base URL of links handed out (`https://host:port`, no trailing `/`).
    pub base_url: String,
    /// XEP-0363 file upload (`None` with `--no-upload`).
    pub upload: Option<crate::upload::Upload>,
    /// RFC 7395 at `/xmpp-websocket` (off with `--no-websocket`).
    pub websocket: bool,
    limits: ConnLimits,
    max_per_ip: usize,
    max_connections: usize,
    /// Open connections: in all, and per address.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Http {
    /// The service for `config`; `https_port` is the port actually bound (for the default
    /// base URL when the configured one is 0).
    pub fn new(config: &HttpConfig, domain: &str, https_port: u16) -> Http {
        let base_url = match &config.external_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if https_port == 443 => format!("https://{domain}"),
            None => format!("https://{domain}:{https_port}"),
        };
        Http {
            base_url,
            upload: None,
            websocket: config.websocket,
            limits: ConnLimits {
                max_head_bytes: config.max_head_bytes,
                max_headers: config.max_headers,
                head_timeout: config.head_timeout,
                transfer_timeout: config.transfer_timeout,
            },
            max_per_ip: config.max_per_ip,
            max_connections: config.max_connections,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// The WebSocket URL (RFC 7395) under the base URL.
    pub fn websocket_url(&self) -> String {
        let rest = self
            .base_url
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base_url
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base_url.clone());
        format!("{rest}{WEBSOCKET_PATH}")
    }

    /// Counts a connection from `ip`, or says which limit refuses it.
    /// `per_address`: false on the plain loopback listener, where every connection comes
    /// from the reverse proxy (which limits its clients itself): only the cap in all.
    fn admit(self: &Arc<Self>, ip: IpAddr, per_address: bool) -> Result<PerIp, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, map) = &mut *open;
        if *total >= self.max_connections {
            return Err("too many HTTP connections");
        }
        if per_address {
            let n = map.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err("too many connections from this address");
            }
            *n += 1;
        }
        *total += 1;
        Ok(PerIp {
            http: self.clone(),
            ip: per_address.then_some(ip),
        })
    }
}

/// A connection counted in all and (on HTTPS) against its address; uncounted on drop.
struct PerIp {
    http: Arc<Http>,
    ip: Option<IpAddr>,
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut open = self.http.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, map) = &mut *open;
        *total -= 1;
        let Some(ip) = self.ip else { return };
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Most bytes of a refused request's body read and dropped before closing, and for how
/// long (see [`Conn::discard_body`]).
const LINGER_BYTES: u64 = 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The path of the RFC 7395 WebSocket endpoint.
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";

/// The path prefix of uploaded files (XEP-0363 slots).
pub const UPLOAD_PREFIX: &str = "/upload/";

/// What a path serves. Every route is here.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// XEP-0156 `/.well-known/host-meta` (XRD).
    HostMeta,
    /// XEP-0156 `/.well-known/host-meta.json` (JRD).
    HostMetaJson,
    /// RFC 7395: an HTTP upgrade to a WebSocket carrying an XMPP stream.
    WebSocket,
    /// XEP-0363: PUT and GET of uploaded files.
    Upload,
    /// XEP-0401 invitation landing pages and their form.
    Invite,
}

/// The route for a request path.
pub fn route(path: &str) -> Option<Route> {
    match path {
        "/.well-known/host-meta" => Some(Route::HostMeta),
        "/.well-known/host-meta.json" => Some(Route::HostMetaJson),
        WEBSOCKET_PATH => Some(Route::WebSocket),
        p if p.starts_with(UPLOAD_PREFIX) => Some(Route::Upload),
        p if p.starts_with(invite::PREFIX) => Some(Route::Invite),
        _ => None,
    }
}

/// Accepts HTTP connections on `listener` until the server shuts down; `secure`: TLS.
pub async fn accept_loop(
    core: Arc<Core>,
    http: Arc<Http>,
    listener: async_net::TcpListener,
    secure: bool,
) {
    let shutdown = core.shutdown_signal();
    while let Some((tcp, peer)) = crate::net::next_connection(&listener, &shutdown, "http").await {
        let guard = match http.admit(peer.ip(), secure) {
            Ok(g) => g,
            Err(why) => {
                log::info!("http: {peer}: {why}");
                continue;
            }
        };
        let (core, http) = (core.clone(), http.clone());
        // The TLS handshake happens inside the connection's own task.
        core.clone().spawn(async move {
            serve(core, http, tcp, peer, secure).await;
            drop(guard);
        });
    }
}

/// One connection: TLS handshake (bounded), then requests until the client closes, an
/// error, or the keep-alive idle time.
async fn serve(
    core: Arc<Core>,
    http: Arc<Http>,
    tcp: async_net::TcpStream,
    peer: SocketAddr,
    secure: bool,
) {
    let io = if secure {
        let acceptor = core.tls.current().http_acceptor.clone();
        match io::within(http.limits.head_timeout, acceptor.accept(tcp)).await {
            Ok(tls) => Io::Tls(Box::new(tls)),
            Err(e) => {
                log::debug!("http: {peer}: TLS handshake failed: {e}");
                return;
            }
        }
    } else {
        Io::Plain(tcp)
    };
    let mut conn = Conn::new(io, peer, secure, http.limits);
    loop {
        let req = match conn.read_head().await {
            Ok(Some(req)) => req,
            Ok(None) => break,
            Err(e) => {
                log::debug!("http: {peer}: {e}");
                if let Some(status) = e.status() {
                    let mut r = Response::text(status, e.to_string());
                    r.close = true;
                    let _ = write_response(&mut conn, r, false).await;
                }
                break;
            }
        };
        let head_only = req.method == "HEAD";
        let keep_alive = req.keep_alive();
        let response = match route(req.path()) {
            Some(Route::HostMeta) => hostmeta::serve(&http, &req, false),
            Some(Route::HostMetaJson) => hostmeta::serve(&http, &req, true),
            // RFC 7395: after the handshake the connection is a client session's.
            Some(Route::WebSocket) if !http.websocket => {
                Response::text(404, "WebSocket is turned off on this server")
            }
            Some(Route::WebSocket) => match websocket::handshake(&req) {
                Ok(switch) => {
                    if let Err(e) = write_response(&mut conn, switch, false).await {
                        log::debug!("http: {peer}: {e}");
                        return;
                    }
                    log::debug!("http: {peer}: GET {WEBSOCKET_PATH} → 101 (XMPP)");
                    websocket::hand_over(&core, conn);
                    return;
                }
                Err(refusal) => refusal,
            },
            Some(Route::Upload) => match &http.upload {
                Some(upload) => crate::upload::http::serve(&core, upload, &req, &mut conn).await,
                None => Response::text(404, "not found"),
            },
            Some(Route::Invite) => invite::serve(&core, &req, &mut conn).await,
            None => Response::text(404, "not found"),
        };
        log::debug!(
            "http: {peer}: {} {} → {}",
            req.method,
            req.path(),
            response.status
        );
        let mut response = response;
        // A body the handler did not read cannot be skipped safely: close after answering.
        if !keep_alive || conn.body_left() > 0 {
            response.close = true;
        }
        let close = response.close;
        if let Err(e) = write_response(&mut conn, response, head_only).await {
            log::debug!("http: {peer}: {e}");
            return;
        }
        if close {
            conn.discard_body(LINGER_BYTES, LINGER_TIME).await;
            break;
        }
    }
    conn.close().await;
}

/// Writes a response; the body of a file is streamed in chunks (never the whole file in
/// memory). `head_only`: the head of a HEAD request, without the body.
pub async fn write_response(
    conn: &mut Conn,
    response: Response,
    head_only: bool,
) -> std::io::Result<()> {
    let head = response.head();
    match response.body {
        Body::Empty => conn.write_all(&head).await,
        _ if head_only => conn.write_all(&head).await,
        Body::Bytes(b) => {
            let mut all = head;
            all.extend_from_slice(&b);
            conn.write_all(&all).await
        }
        Body::File {
            mut file,
            offset,
            len,
        } => {
            use smol::io::AsyncSeekExt;
            conn.write_all(&head).await?;
            if offset > 0 {
                file.seek(std::io::SeekFrom::Start(offset)).await?;
            }
            let mut left = len;
            let mut buf = vec![0u8; io::CHUNK];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = file.read(&mut buf[..want]).await?;
                if n == 0 {
                    // The file shrank under us: the response cannot be completed.
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shorter than announced",
                    ));
                }
                conn.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            Ok(())
        }
    }
}

/// Answers a CORS preflight (`OPTIONS`) for `methods`.
pub fn preflight(methods: &str) -> Response {
    Response::new(204)
        .with_header("Access-Control-Allow-Methods", methods)
        .with_header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        )
        .with_header("Access-Control-Max-Age", "86400")
}

/// A refusal of an unsupported method.
pub fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed").with_header("Allow", allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_and_nothing_else() {
        assert_eq!(route("/.well-known/host-meta"), Some(Route::HostMeta));
        assert_eq!(
            route("/.well-known/host-meta.json"),
            Some(Route::HostMetaJson)
        );
        assert_eq!(route("/xmpp-websocket"), Some(Route::WebSocket));
        assert_eq!(route("/upload/abc/x.jpg"), Some(Route::Upload));
        assert_eq!(route("/upload"), None);
        assert_eq!(route("/invite/abc"), Some(Route::Invite));
        assert_eq!(route("/invite"), None);
        assert_eq!(route("/"), None);
        assert_eq!(route("/.well-known/host-meta/x"), None);
    }

    #[test]
    fn the_websocket_url_follows_the_base_url() {
        let mut c = HttpConfig::default();
        let h = Http::new(&c, "family.example", 5281);
        assert_eq!(h.base_url, "https://family.example:5281");
        assert_eq!(
            h.websocket_url(),
            "wss://family.example:5281/xmpp-websocket"
        );
        c.external_url = Some("http://proxy.example/xmpp/".into());
        let h = Http::new(&c, "family.example", 5281);
        assert_eq!(h.base_url, "http://proxy.example/xmpp");
        assert_eq!(h.websocket_url(), "ws://proxy.example/xmpp/xmpp-websocket");
    }
}
