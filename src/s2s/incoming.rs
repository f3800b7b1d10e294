//! A stream a peer opens to us (RFC 6120 §4–§6): STARTTLS required, then SASL EXTERNAL
//! (XEP-0178) if its certificate is valid for its domain, or dialback (XEP-0220 §2.2, the
//! key checked with the peer's authoritative server over our outgoing stream), then its
//! stanzas enter the routing core as `Origin::Remote(domain)`. It also answers the peer's
//! verification of our own dialback keys (`<db:verify/>`, §2.4).
//!
//! A peer that asks for a bidirectional stream (XEP-0288: `<bidi/>` before it
//! authenticates) also gets our stanzas for the domains it authenticated on this stream,
//! when we have no outgoing stream of our own to them.

use super::stream::{to_client_ns, Read, Stream, BIDI, BIDI_FEATURE, DIALBACK, DIALBACK_FEATURE};
use super::{is_local, Inner};
use crate::net::Transport;
use crate::ns;
use crate::router::{Core, Origin};
use crate::stanza::{StreamCondition, StreamError};
use crate::xml::reader::{Event, StreamHeader};
use crate::xml::Element;
use async_net::TcpStream;
use smol::future::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Most dialback verifications one stream may have under way.
const MAX_VERIFYING: usize = 4;

struct In {
    inner: Arc<Inner>,
    core: Arc<Core>,
    id: u64,
    tag: String,
    /// The domain of ours the peer addressed.
    local: Option<String>,
    /// The header's `from`.
    peer: Option<String>,
    /// Our stream id (the dialback key names it).
    stream_id: String,
    tls: bool,
    sasl_done: bool,
    /// Authenticated (our domain, their domain) pairs.
    authed: Vec<(String, String)>,
    verifying: usize,
    replaced: Option<smol::channel::Receiver<()>>,
    flood: super::Flood,
    /// The peer asked for a bidirectional stream (XEP-0288).
    bidi: bool,
    /// Our stanzas for the peer when the stream is bidirectional and authenticated, and
    /// the sender registered for each authenticated pair.
    bidi_out: Option<(
        smol::channel::Sender<Element>,
        smol::channel::Receiver<Element>,
    )>,
}

type Verified = (String, String, bool);

pub(super) async fn serve(
    inner: Arc<Inner>,
    core: Arc<Core>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
) {
    let mut guard = match core.admit(peer.ip()) {
        Ok(g) => g,
        Err(why) => {
            log::info!("s2s connection from {peer} refused: {why}");
            return;
        }
    };
    let id = core.next_session_id();
    let tag = format!("s2sin:{id}");
    log::info!(
        "{tag} connect from {peer}{}",
        if direct_tls { " (direct TLS)" } else { "" }
    );
    let mut st = Stream::new(Transport::plain(tcp), core.config.limits);
    let inner_rate = inner.config.stanza_rate;
    let mut me = In {
        inner,
        core,
        id,
        tag,
        local: None,
        peer: None,
        stream_id: String::new(),
        tls: false,
        sasl_done: false,
        authed: Vec::new(),
        verifying: 0,
        replaced: None,
        flood: super::Flood::new(inner_rate),
        bidi: false,
        bidi_out: None,
    };
    if direct_tls {
        let handshake = async {
            let acceptor = super::verify::acceptor(&me.core.tls).map_err(std::io::Error::other)?;
            st.transport.start_tls(&acceptor).await
        };
        let timeout = async {
            smol::Timer::at(guard.since + me.core.config.auth_timeout).await;
            Err(std::io::ErrorKind::TimedOut.into())
        };
        if let Err(e) = handshake.or(timeout).await {
            log::info!("{} TLS handshake failed: {e}", me.tag);
            return;
        }
        me.tls = true;
    }
    let why = me.run(&mut st, &mut guard).await;
    me.inner.forget_incoming(me.id);
    if let Some((tx, rx)) = me.bidi_out.take() {
        me.inner.forget_bidi(&tx);
        rx.close();
        // Stanzas that were waiting for this stream take another way (our own
        // outgoing stream, started now).
        while let Ok(s) = rx.try_recv() {
            crate::router::send_to(&me.core, s);
        }
    }
    log::info!("{} disconnect: {why}", me.tag);
}

impl In {
    async fn run(&mut self, st: &mut Stream, guard: &mut crate::router::ConnGuard) -> String {
        let (vtx, vrx) = smol::channel::bounded::<Verified>(MAX_VERIFYING);
        let shutdown = self.core.shutdown_signal();
        let auth_deadline = guard.since + self.core.config.auth_timeout;
        let idle = self.inner.config.idle_timeout;
        let mut last_activity = Instant::now();
        enum Ev {
            Read(Read),
            Verified(Verified),
            /// A stanza of ours to send on this bidirectional stream.
            Send(Element),
            Replaced,
            Timeout,
            Shutdown,
        }
        loop {
            let deadline = if self.authed.is_empty() {
                auth_deadline
            } else {
                last_activity + idle
            };
            let ev = {
                let read = async { Ev::Read(st.next().await) };
                let verified = async {
                    match vrx.recv().await {
                        Ok(v) => Ev::Verified(v),
                        Err(_) => std::future::pending().await,
                    }
                };
                let send = async {
                    match &self.bidi_out {
                        Some((_, rx)) => match rx.recv().await {
                            Ok(s) => Ev::Send(s),
                            Err(_) => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                };
                let replaced = async {
                    match &self.replaced {
                        Some(r) => {
                            let _ = r.recv().await;
                            Ev::Replaced
                        }
                        None => std::future::pending().await,
                    }
                };
                let timer = async {
                    smol::Timer::at(deadline).await;
                    Ev::Timeout
                };
                let stop = async {
                    let _ = shutdown.recv().await;
                    Ev::Shutdown
                };
                read.or(verified)
                    .or(send)
                    .or(replaced)
                    .or(timer)
                    .or(stop)
                    .await
            };
            let r = match ev {
                Ev::Shutdown => Err(StreamError::new(StreamCondition::SystemShutdown)),
                Ev::Replaced => Err(StreamError::with_text(
                    StreamCondition::Conflict,
                    "a newer stream from your server replaced this one",
                )),
                Ev::Timeout if self.authed.is_empty() => Err(StreamError::with_text(
                    StreamCondition::ConnectionTimeout,
                    "authentication took too long",
                )),
                Ev::Timeout => {
                    st.close().await;
                    return "idle".into();
                }
                Ev::Send(s) => {
                    log::debug!("{} sending {}", self.tag, brief(&s));
                    last_activity = Instant::now();
                    st.send(&s).await.map_err(io)
                }
                Ev::Verified((local, peer, ok)) => {
                    self.verifying -= 1;
                    self.verified(st, local, peer, ok).await
                }
                Ev::Read(Read::Eof) => return "connection closed by peer".into(),
                Ev::Read(Read::Error(e)) => Err(e),
                Ev::Read(Read::Event(Event::Close)) => {
                    st.close().await;
                    return "stream closed by peer".into();
                }
                Ev::Read(Read::Event(Event::Header(h))) => self.on_header(st, h).await,
                Ev::Read(Read::Event(Event::Element(e))) => {
                    if matches!(e.name.as_str(), "message" | "presence" | "iq") {
                        last_activity = Instant::now();
                        self.flood.throttle(&self.tag).await;
                    }
                    self.on_element(st, e, &vtx).await
                }
            };
            if !self.authed.is_empty() {
                guard.authenticated();
            }
            if let Err(e) = r {
                let why = format!(
                    "{}{}",
                    e.condition.name(),
                    e.text
                        .as_ref()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                );
                st.fail(e).await;
                return why;
            }
        }
    }

    async fn on_header(&mut self, st: &mut Stream, h: StreamHeader) -> Result<(), StreamError> {
        self.stream_id = crate::util::random_hex(16);
        let to = h.to.as_deref().and_then(|t| crate::jid::nameprep(t).ok());
        let from = h.from.as_deref().and_then(|f| crate::jid::nameprep(f).ok());
        st.send_header(to.as_deref(), from.as_deref(), Some(&self.stream_id))
            .await
            .map_err(io)?;
        if h.default_ns.as_deref() != Some(ns::SERVER) {
            return Err(StreamError::with_text(
                StreamCondition::InvalidNamespace,
                "a server-to-server stream is in jabber:server",
            ));
        }
        let Some(to) = to.filter(|t| is_local(&self.core, t)) else {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve that domain",
            ));
        };
        if !h.version.as_deref().is_some_and(|v| v.starts_with("1.")) {
            return Err(StreamError::with_text(
                StreamCondition::UnsupportedVersion,
                "version 1.0 is required (for TLS)",
            ));
        }
        if self.local.as_deref().is_some_and(|l| l != to) {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "the restarted stream names another domain",
            ));
        }
        self.local = Some(to);
        if from.is_some() {
            self.peer = from;
        }
        let mut features = Element::new("features", ns::STREAM);
        if !self.tls {
            features.push(
                Element::new("starttls", ns::TLS).with_child(Element::new("required", ns::TLS)),
            );
        } else if !self.sasl_done {
            let certs = st.transport.peer_certificates();
            let valid = self
                .peer
                .as_deref()
                .is_some_and(|p| self.inner.trust().valid_for(certs.as_deref(), p));
            if valid {
                features.push(
                    Element::new("mechanisms", ns::SASL)
                        .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
                );
            }
            if !self.inner.config.secure_auth {
                features.push(
                    Element::new("dialback", DIALBACK_FEATURE)
                        .with_child(Element::new("errors", DIALBACK_FEATURE)),
                );
            }
            if self.inner.config.bidi {
                features.push(Element::new("bidi", BIDI_FEATURE));
            }
        }
        st.send(&features).await.map_err(io)
    }

    async fn on_element(
        &mut self,
        st: &mut Stream,
        e: Element,
        vtx: &smol::channel::Sender<Verified>,
    ) -> Result<(), StreamError> {
        let Some(local) = self.local.clone() else {
            return Err(StreamError::new(StreamCondition::NotAuthorized));
        };
        if !self.tls {
            if !e.is("starttls", ns::TLS) {
                return Err(StreamError::with_text(
                    StreamCondition::PolicyViolation,
                    "STARTTLS is required",
                ));
            }
            st.send(&Element::new("proceed", ns::TLS))
                .await
                .map_err(io)?;
            if st.has_buffered() {
                return Err(StreamError::with_text(
                    StreamCondition::PolicyViolation,
                    "data after <starttls/>",
                ));
            }
            let acceptor = super::verify::acceptor(&self.core.tls).map_err(|e| {
                StreamError::with_text(StreamCondition::InternalServerError, e.to_string())
            })?;
            let handshake = st.transport.start_tls(&acceptor);
            let timeout = async {
                smol::Timer::after(std::time::Duration::from_secs(30)).await;
                Err(std::io::ErrorKind::TimedOut.into())
            };
            if let Err(e) = handshake.or(timeout).await {
                log::info!("{} TLS handshake failed: {e}", self.tag);
                st.transport.shutdown().await;
                return Err(StreamError::with_text(
                    StreamCondition::UndefinedCondition,
                    "TLS failed",
                ));
            }
            st.reset();
            self.tls = true;
            return Ok(());
        }
        if e.is("auth", ns::SASL) {
            return self.on_auth(st, &e, &local).await;
        }
        if e.is("bidi", BIDI) && self.inner.config.bidi && self.authed.is_empty() {
            // XEP-0288 §2.2: asked for before authentication; no answer is sent.
            self.bidi = true;
            return Ok(());
        }
        if e.is("result", DIALBACK) {
            return self.on_db_result(&e, vtx).await;
        }
        if e.is("verify", DIALBACK) {
            // XEP-0220 §2.4: we are the authoritative server for one of our own keys.
            let (Some(from), Some(to), Some(id)) = (e.attr("from"), e.attr("to"), e.attr("id"))
            else {
                return Err(StreamError::with_text(
                    StreamCondition::BadFormat,
                    "db:verify needs from, to and id",
                ));
            };
            self.inner
                .answer_verify(&self.core, st, (from, to, id), &e.text())
                .await
                .map_err(io)?;
            return Ok(());
        }
        if e.is("error", ns::STREAM) {
            log::info!(
                "{} stream error from the peer: {:?}",
                self.tag,
                e.first_element().map(|c| c.name.to_string())
            );
            return Err(StreamError::new(StreamCondition::UndefinedCondition));
        }
        if !matches!(e.name.as_str(), "message" | "presence" | "iq") {
            return Err(StreamError::with_text(
                StreamCondition::UnsupportedStanzaType,
                format!("unexpected <{}/>", e.name),
            ));
        }
        if self.authed.is_empty() {
            return Err(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "authenticate first",
            ));
        }
        let domain_of = |a: Option<&str>| {
            a.and_then(|s| crate::jid::Jid::parse(s).ok())
                .map(|j| j.domain().to_owned())
        };
        let Some(from) =
            domain_of(e.attr("from")).filter(|f| self.authed.iter().any(|(_, p)| p == f))
        else {
            return Err(StreamError::with_text(
                StreamCondition::InvalidFrom,
                "the from address is not at a domain this stream authenticated",
            ));
        };
        if domain_of(e.attr("to")).is_some_and(|t| !is_local(&self.core, &t)) {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve the to address's domain",
            ));
        }
        log::debug!("{} {}", self.tag, brief(&e));
        let mut replies = Vec::new();
        crate::router::process(
            &self.core,
            &Origin::Remote(from.into()),
            to_client_ns(&e),
            &mut replies,
        )
        .await
        .map(|_| ())
    }

    /// SASL EXTERNAL (RFC 6120 §6.4, XEP-0178): the certificate must be valid for the
    /// domain the peer claims.
    async fn on_auth(
        &mut self,
        st: &mut Stream,
        e: &Element,
        local: &str,
    ) -> Result<(), StreamError> {
        use base64::Engine;
        let failure =
            |cond: &str| Element::new("failure", ns::SASL).with_child(Element::new(cond, ns::SASL));
        if self.sasl_done || e.attr("mechanism") != Some("EXTERNAL") {
            return st.send(&failure("invalid-mechanism")).await.map_err(io);
        }
        let text = e.text();
        let authzid = match text.trim() {
            "" | "=" => None,
            t => base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
        };
        let domain = authzid.or_else(|| self.peer.clone());
        let certs = st.transport.peer_certificates();
        let Some(domain) = domain.filter(|d| {
            self.peer.as_deref().is_none_or(|p| p == d)
                && self.inner.trust().valid_for(certs.as_deref(), d)
        }) else {
            return st.send(&failure("not-authorized")).await.map_err(io);
        };
        st.send(&Element::new("success", ns::SASL))
            .await
            .map_err(io)?;
        st.reset();
        self.sasl_done = true;
        self.authenticate(local.to_owned(), domain, "EXTERNAL");
        Ok(())
    }

    /// XEP-0220 §2.2: the peer's key, checked with its authoritative server in the
    /// background (the stream goes on meanwhile: the peer may be verifying ours on it).
    async fn on_db_result(
        &mut self,
        e: &Element,
        vtx: &smol::channel::Sender<Verified>,
    ) -> Result<(), StreamError> {
        if self.inner.config.secure_auth {
            return Err(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "this server requires a valid certificate (no dialback)",
            ));
        }
        let from = e.attr("from").and_then(|f| crate::jid::nameprep(f).ok());
        let Some(from) = from.filter(|f| !f.is_empty() && !f.contains('@') && !f.contains('/'))
        else {
            return Err(StreamError::with_text(
                StreamCondition::InvalidFrom,
                "db:result needs a domain in from",
            ));
        };
        let to = e.attr("to").and_then(|t| crate::jid::nameprep(t).ok());
        let Some(to) = to.filter(|t| is_local(&self.core, t)) else {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve that domain",
            ));
        };
        if self.peer.as_deref().is_some_and(|p| p != from) && self.authed.is_empty() {
            return Err(StreamError::with_text(
                StreamCondition::InvalidFrom,
                "db:result from another domain than the stream's",
            ));
        }
        if self.verifying >= MAX_VERIFYING {
            return Err(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many dialback requests at once",
            ));
        }
        self.verifying += 1;
        let (inner, core, vtx) = (self.inner.clone(), self.core.clone(), vtx.clone());
        let (id, key) = (self.stream_id.clone(), e.text().trim().to_owned());
        self.core.spawn(async move {
            let ok = inner.verify(&core, &to, &from, &id, &key).await;
            let _ = vtx.send((to, from, ok)).await;
        });
        Ok(())
    }

    async fn verified(
        &mut self,
        st: &mut Stream,
        local: String,
        peer: String,
        ok: bool,
    ) -> Result<(), StreamError> {
        st.send_db(
            "result",
            &[
                ("from", &local),
                ("to", &peer),
                ("type", if ok { "valid" } else { "invalid" }),
            ],
            None,
        )
        .await
        .map_err(io)?;
        if !ok {
            return Err(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "the dialback key was not valid",
            ));
        }
        self.authenticate(local, peer, "dialback");
        Ok(())
    }

    fn authenticate(&mut self, local: String, peer: String, method: &'static str) {
        log::info!(
            "{} incoming s2s {peer} → {local} authenticated ({method})",
            self.tag
        );
        self.replaced = Some(self.inner.register_incoming(&local, &peer, self.id, method));
        if self.bidi {
            let limit = self.inner.config.queue_limit.max(1);
            let (tx, _) = self
                .bidi_out
                .get_or_insert_with(|| smol::channel::bounded(limit));
            log::info!(
                "{} bidirectional: stanzas {local} → {peer} go on this stream",
                self.tag
            );
            self.inner.register_bidi(&local, &peer, tx.clone());
        }
        self.authed.push((local, peer));
    }
}

/// A stanza's top tag for the debug log (no payload).
pub(super) fn brief(e: &Element) -> String {
    let mut s = format!("<{}", e.name);
    for k in ["type", "from", "to", "id"] {
        if let Some(v) = e.attr(k) {
            s.push_str(&format!(" {k}='{v}'"));
        }
    }
    s.push('>');
    s
}

fn io(e: std::io::Error) -> StreamError {
    StreamError::with_text(StreamCondition::UndefinedCondition, e.to_string())
}
