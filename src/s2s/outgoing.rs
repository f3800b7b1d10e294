//! A stream we open to a peer (RFC 6120 §4–§6): connect (SRV, Happy Eyeballs), TLS
//! (STARTTLS or direct), then SASL EXTERNAL if offered, else (or when refused) dialback
//! (XEP-0220 §2.1); then the queued stanzas. It also carries our dialback verification
//! requests to the peer (XEP-0220 §2.3), which may be sent before it is authenticated.
//!
//! When the peer offers bidirectional streams (XEP-0288) we ask for one, and then take
//! the peer's stanzas on this stream too: from the domain we connected to (the one the
//! TLS and DNS steps named), to a domain of ours.

use super::stream::{to_client_ns, Read, Stream, BIDI, BIDI_FEATURE, DIALBACK, DIALBACK_FEATURE};
use super::{Cmd, Inner};
use crate::net::Transport;
use crate::ns;
use crate::router::Core;
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::reader::Event;
use crate::xml::Element;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Why an outgoing stream ended before it could deliver.
struct Failure {
    condition: StanzaCondition,
    text: String,
}

fn not_found(text: impl Into<String>) -> Failure {
    Failure {
        condition: StanzaCondition::RemoteServerNotFound,
        text: text.into(),
    }
}

/// Where the negotiation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the header and features on the plaintext stream.
    Plain,
    /// Waiting for `<proceed/>`.
    Proceed,
    /// Waiting for the header and features after TLS.
    Tls,
    /// Waiting for the answer to SASL EXTERNAL.
    Sasl,
    /// Waiting for the header and features after SASL success.
    AfterSasl,
    /// Waiting for `<db:result type='valid'/>`.
    Dialback,
    /// Authenticated: stanzas flow.
    Ready,
}

struct Out {
    inner: Arc<Inner>,
    core: Arc<Core>,
    local: String,
    remote: String,
    tag: String,
    /// The peer's stream id after TLS (the dialback key names it).
    stream_id: Option<String>,
    /// Features seen since the last header.
    stage: Stage,
    /// Stanzas received before the stream was authenticated.
    pending: VecDeque<Element>,
    /// Verification requests not yet sent (before TLS) and sent ones by id.
    unsent: Vec<(String, String, Sender<bool>)>,
    asked: HashMap<String, Vec<Sender<bool>>>,
    /// We asked for a bidirectional stream (XEP-0288): the peer's stanzas come on it too.
    bidi: bool,
    flood: super::Flood,
}

/// Runs the outgoing stream (local → remote) until it fails, idles out or the server
/// stops.
pub(super) async fn run(
    inner: Arc<Inner>,
    core: Arc<Core>,
    local: String,
    remote: String,
    rx: Receiver<Cmd>,
    me: Sender<Cmd>,
) {
    let id = core.next_session_id();
    let tag = format!("s2sout:{id}");
    log::info!("{tag} {local} → {remote}: connecting");
    let flood = super::Flood::new(inner.config.stanza_rate);
    let mut out = Out {
        inner,
        core,
        local,
        remote,
        tag,
        stream_id: None,
        stage: Stage::Plain,
        pending: VecDeque::new(),
        unsent: Vec::new(),
        asked: HashMap::new(),
        bidi: false,
        flood,
    };
    let deadline = Instant::now() + out.core.config.auth_timeout;
    let connected = async { Some(out.connect().await) };
    let timeout = async {
        smol::Timer::at(deadline).await;
        None
    };
    let result = match connected.or(timeout).await {
        Some(Ok(mut st)) => {
            let r = out.converse(&mut st, &rx, deadline).await;
            st.close().await;
            r
        }
        Some(Err(f)) => Err(f),
        None => Err(Failure {
            condition: StanzaCondition::RemoteServerTimeout,
            text: format!("connecting to the server of {} took too long", out.remote),
        }),
    };
    out.inner.forget_outgoing(&out.local, &out.remote, &me);
    rx.close();
    match result {
        Ok(()) => {
            log::info!("{} {} → {}: closed", out.tag, out.local, out.remote);
            // Stanzas that came in while it closed start a new stream.
            while let Ok(cmd) = rx.try_recv() {
                if let Err(c) = out.inner.command(&out.core, &out.local, &out.remote, cmd) {
                    out.fail_cmd(c, &not_found("the server could not be reached"));
                }
            }
        }
        Err(f) => {
            log::info!(
                "{} {} → {}: failed: {}",
                out.tag,
                out.local,
                out.remote,
                f.text
            );
            if f.condition != StanzaCondition::RemoteServerTimeout || out.stage == Stage::Plain {
                out.inner.mark_down(&out.remote);
            }
            let pending: Vec<Element> = out.pending.drain(..).collect();
            for s in pending {
                out.bounce(&s, &f);
            }
            while let Ok(cmd) = rx.try_recv() {
                out.fail_cmd(cmd, &f);
            }
            for (_, _, reply) in out.unsent.drain(..) {
                let _ = reply.try_send(false);
            }
        }
    }
}

impl Out {
    fn bounce(&self, stanza: &Element, f: &Failure) {
        crate::router::bounce(
            &self.core,
            stanza,
            StanzaError::with_text(f.condition, f.text.clone()),
        );
    }

    fn fail_cmd(&self, cmd: Cmd, f: &Failure) {
        match cmd {
            Cmd::Stanza(s) => self.bounce(&s, f),
            Cmd::Verify { reply, .. } => {
                let _ = reply.try_send(false);
            }
        }
    }

    /// DNS, TCP and, for a direct-TLS target, the TLS handshake.
    async fn connect(&mut self) -> Result<Stream, Failure> {
        let targets = self.inner.targets(&self.remote).await;
        if targets.is_empty() {
            return Err(not_found(format!(
                "{} offers no server-to-server service",
                self.remote
            )));
        }
        let mut last = format!("no address for the server of {}", self.remote);
        for (t, fixed) in targets {
            let addrs = match fixed {
                Some(a) => vec![a],
                None => super::dns::addresses(&t.host, t.port).await,
            };
            if addrs.is_empty() {
                continue;
            }
            let tcp = match super::dns::connect(&addrs).await {
                Ok(tcp) => {
                    self.inner
                        .connected
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tcp
                }
                Err(e) => {
                    log::debug!("{} {}:{}: {e}", self.tag, t.host, t.port);
                    last = format!("cannot connect to the server of {}: {e}", self.remote);
                    continue;
                }
            };
            let mut st = Stream::new(Transport::plain(tcp), self.core.config.limits);
            if t.direct_tls {
                if let Err(e) = self.start_tls(&mut st, true).await {
                    last = format!("TLS with the server of {} failed: {e}", self.remote);
                    continue;
                }
                self.stage = Stage::Tls;
            }
            log::debug!("{} connected to {}:{}", self.tag, t.host, t.port);
            return Ok(st);
        }
        Err(not_found(last))
    }

    async fn start_tls(&self, st: &mut Stream, direct: bool) -> std::io::Result<()> {
        let connector =
            super::verify::connector(&self.core.tls, direct).map_err(std::io::Error::other)?;
        let name = rustls::pki_types::ServerName::try_from(self.remote.clone())
            .map_err(std::io::Error::other)?;
        st.transport.connect_tls(&connector, name).await
    }

    /// Negotiates, then sends stanzas until the stream idles out or ends.
    async fn converse(
        &mut self,
        st: &mut Stream,
        rx: &Receiver<Cmd>,
        auth_deadline: Instant,
    ) -> Result<(), Failure> {
        let io = |e: std::io::Error| not_found(format!("the connection broke: {e}"));
        st.send_header(Some(&self.local), Some(&self.remote), None)
            .await
            .map_err(io)?;
        let shutdown = self.core.shutdown_signal();
        let idle = self.inner.config.idle_timeout;
        let mut last_activity = Instant::now();
        enum Ev {
            Read(Read),
            Cmd(Option<Cmd>),
            Timeout,
            Shutdown,
        }
        loop {
            let deadline = if self.stage == Stage::Ready {
                last_activity + idle
            } else {
                auth_deadline
            };
            let ev = {
                let read = async { Ev::Read(st.next().await) };
                let cmd = async { Ev::Cmd(rx.recv().await.ok()) };
                let timer = async {
                    smol::Timer::at(deadline).await;
                    Ev::Timeout
                };
                let stop = async {
                    let _ = shutdown.recv().await;
                    Ev::Shutdown
                };
                read.or(cmd).or(timer).or(stop).await
            };
            match ev {
                Ev::Shutdown => {
                    let _ = st
                        .send(&StreamError::new(StreamCondition::SystemShutdown).to_element())
                        .await;
                    return Ok(());
                }
                Ev::Timeout if self.stage == Stage::Ready => return Ok(()),
                Ev::Timeout => {
                    return Err(Failure {
                        condition: StanzaCondition::RemoteServerTimeout,
                        text: format!(
                            "the server of {} did not authenticate us in time",
                            self.remote
                        ),
                    })
                }
                Ev::Cmd(None) => return Ok(()),
                Ev::Cmd(Some(Cmd::Stanza(s))) => {
                    log::debug!("{} {}", self.tag, super::incoming::brief(&s));
                    if self.stage == Stage::Ready {
                        st.send(&s).await.map_err(io)?;
                        last_activity = Instant::now();
                    } else {
                        self.pending.push_back(s);
                    }
                }
                Ev::Cmd(Some(Cmd::Verify { id, key, reply })) => {
                    if self.stream_id.is_some() {
                        self.send_verify(st, id, key, reply).await.map_err(io)?;
                    } else {
                        self.unsent.push((id, key, reply));
                    }
                }
                Ev::Read(Read::Eof) => {
                    return if self.stage == Stage::Ready {
                        Ok(())
                    } else {
                        Err(not_found(format!(
                            "the server of {} closed the connection",
                            self.remote
                        )))
                    }
                }
                Ev::Read(Read::Error(e)) => {
                    st.fail(e.clone()).await;
                    return Err(not_found(format!(
                        "the server of {} sent bad XML: {e:?}",
                        self.remote
                    )));
                }
                Ev::Read(Read::Event(Event::Close)) => {
                    return if self.stage == Stage::Ready {
                        Ok(())
                    } else {
                        Err(not_found(format!(
                            "the server of {} closed the stream",
                            self.remote
                        )))
                    }
                }
                Ev::Read(Read::Event(Event::Header(h))) => {
                    if h.default_ns.as_deref() != Some(ns::SERVER) {
                        st.fail(StreamError::new(StreamCondition::InvalidNamespace))
                            .await;
                        return Err(not_found("the peer does not speak jabber:server"));
                    }
                    if self.stage == Stage::Tls {
                        self.stream_id = h.id.clone();
                    }
                }
                Ev::Read(Read::Event(Event::Element(e))) => {
                    if self.on_element(st, e).await? {
                        last_activity = Instant::now();
                    }
                }
            }
        }
    }

    async fn send_verify(
        &mut self,
        st: &mut Stream,
        id: String,
        key: String,
        reply: Sender<bool>,
    ) -> std::io::Result<()> {
        st.send_db(
            "verify",
            &[("from", &self.local), ("to", &self.remote), ("id", &id)],
            Some(&key),
        )
        .await?;
        self.asked.entry(id).or_default().push(reply);
        Ok(())
    }

    /// One element from the peer; true once the stream is ready and a stanza came.
    async fn on_element(&mut self, st: &mut Stream, e: Element) -> Result<bool, Failure> {
        let io = |e: std::io::Error| not_found(format!("the connection broke: {e}"));
        let refused = |why: &str| not_found(format!("the server of {} {why}", self.remote));
        if e.is("error", ns::STREAM) {
            let cond = e
                .elements()
                .next()
                .map(|c| c.name.to_string())
                .unwrap_or_default();
            return Err(refused(&format!("closed the stream: {cond}")));
        }
        if e.is("verify", DIALBACK) && e.attr("type").is_none() && self.bidi {
            // XEP-0288: the peer takes this stream for its own outgoing one, and asks us
            // (the authoritative server) about one of our dialback keys on it (§2.4).
            let (Some(from), Some(to), Some(id)) = (e.attr("from"), e.attr("to"), e.attr("id"))
            else {
                st.fail(StreamError::with_text(
                    StreamCondition::BadFormat,
                    "db:verify needs from, to and id",
                ))
                .await;
                return Err(refused("sent a db:verify without from, to or id"));
            };
            self.inner
                .answer_verify(&self.core, st, (from, to, id), &e.text())
                .await
                .map_err(io)?;
            return Ok(false);
        }
        if e.is("verify", DIALBACK) {
            let valid = e.attr("type") == Some("valid");
            if let Some(replies) = e.attr("id").and_then(|id| self.asked.remove(id)) {
                for r in replies {
                    let _ = r.try_send(valid);
                }
            }
            return Ok(false);
        }
        match self.stage {
            Stage::Plain | Stage::Tls | Stage::AfterSasl if e.is("features", ns::STREAM) => {
                self.on_features(st, &e).await
            }
            Stage::Proceed if e.is("proceed", ns::TLS) => {
                if st.has_buffered() {
                    return Err(refused("sent data after <proceed/>"));
                }
                self.start_tls(st, false)
                    .await
                    .map_err(|e| refused(&format!("failed the TLS handshake: {e}")))?;
                st.reset();
                self.stage = Stage::Tls;
                st.send_header(Some(&self.local), Some(&self.remote), None)
                    .await
                    .map_err(io)?;
                Ok(false)
            }
            Stage::Sasl if e.is("success", ns::SASL) => {
                st.reset();
                self.stage = Stage::AfterSasl;
                self.authenticated("EXTERNAL");
                st.send_header(Some(&self.local), Some(&self.remote), None)
                    .await
                    .map_err(io)?;
                Ok(false)
            }
            Stage::Sasl if e.is("failure", ns::SASL) => {
                // COMPAT: ejabberd offers EXTERNAL and refuses it when it cannot validate
                // our certificate; dialback may still do.
                if self.inner.config.secure_auth {
                    return Err(refused("refused our certificate (SASL EXTERNAL)"));
                }
                log::info!(
                    "{} {} → {}: SASL EXTERNAL refused; trying dialback",
                    self.tag,
                    self.local,
                    self.remote
                );
                self.dialback(st).await.map_err(io)?;
                Ok(false)
            }
            Stage::Dialback if e.is("result", DIALBACK) => {
                if e.attr("type") == Some("valid") {
                    self.authenticated("dialback");
                    self.ready(st).await.map_err(io)?;
                    Ok(false)
                } else {
                    Err(refused("refused our dialback key"))
                }
            }
            Stage::Ready if matches!(e.name.as_str(), "message" | "presence" | "iq") => {
                if !self.bidi {
                    // Not a bidirectional stream: stanzas come on the peer's own.
                    log::debug!("{} a stanza on our outgoing stream was ignored", self.tag);
                    return Ok(false);
                }
                self.on_stanza(st, e).await?;
                Ok(true)
            }
            _ => {
                st.fail(StreamError::with_text(
                    StreamCondition::UnsupportedStanzaType,
                    format!("unexpected <{}/>", e.name),
                ))
                .await;
                Err(refused(&format!("sent an unexpected <{}/>", e.name)))
            }
        }
    }

    async fn on_features(&mut self, st: &mut Stream, f: &Element) -> Result<bool, Failure> {
        let io = |e: std::io::Error| not_found(format!("the connection broke: {e}"));
        match self.stage {
            Stage::Plain => {
                if f.child("starttls", ns::TLS).is_none() {
                    return Err(not_found(format!(
                        "the server of {} does not offer TLS",
                        self.remote
                    )));
                }
                st.send(&Element::new("starttls", ns::TLS))
                    .await
                    .map_err(io)?;
                self.stage = Stage::Proceed;
            }
            Stage::Tls => {
                let unsent: Vec<_> = self.unsent.drain(..).collect();
                for (id, key, reply) in unsent {
                    self.send_verify(st, id, key, reply).await.map_err(io)?;
                }
                let certs = st.transport.peer_certificates();
                let valid = self.inner.trust().valid_for(certs.as_deref(), &self.remote);
                if self.inner.config.secure_auth && !valid {
                    return Err(not_found(format!(
                        "the certificate of {} is not valid for it (--s2s-secure-auth)",
                        self.remote
                    )));
                }
                if self.inner.config.bidi && f.child("bidi", BIDI_FEATURE).is_some() {
                    // XEP-0288 §2.2: asked for before authenticating.
                    st.send(&Element::new("bidi", BIDI)).await.map_err(io)?;
                    self.bidi = true;
                }
                let external = f.child("mechanisms", ns::SASL).is_some_and(|m| {
                    m.elements()
                        .any(|x| x.name == "mechanism" && x.text().trim() == "EXTERNAL")
                });
                if external {
                    use base64::Engine;
                    let authzid = base64::engine::general_purpose::STANDARD.encode(&self.local);
                    st.send(
                        &Element::new("auth", ns::SASL)
                            .with_attr("mechanism", "EXTERNAL")
                            .with_text(authzid),
                    )
                    .await
                    .map_err(io)?;
                    self.stage = Stage::Sasl;
                } else if self.inner.config.secure_auth {
                    return Err(not_found(format!(
                        "the server of {} does not accept our certificate (no SASL EXTERNAL)",
                        self.remote
                    )));
                } else {
                    if f.child("dialback", DIALBACK_FEATURE).is_none() {
                        log::debug!("{} no dialback feature; trying dialback anyway", self.tag);
                    }
                    self.dialback(st).await.map_err(io)?;
                }
            }
            Stage::AfterSasl => self.ready(st).await.map_err(io)?,
            _ => {}
        }
        Ok(false)
    }

    /// A stanza from the peer on our bidirectional stream: it must come from the domain we
    /// connected to and go to a domain of ours; it enters the routing core like one on an
    /// incoming stream, at the same flood rate.
    async fn on_stanza(&mut self, st: &mut Stream, e: Element) -> Result<(), Failure> {
        let domain_of = |a: Option<&str>| {
            a.and_then(|s| crate::jid::Jid::parse(s).ok())
                .map(|j| j.domain().to_owned())
        };
        let error = if domain_of(e.attr("from")).as_deref() != Some(self.remote.as_str()) {
            Some(StreamError::with_text(
                StreamCondition::InvalidFrom,
                "the from address is not at the domain of this stream",
            ))
        } else if !domain_of(e.attr("to")).is_some_and(|t| super::is_local(&self.core, &t)) {
            Some(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve the to address's domain",
            ))
        } else {
            None
        };
        if let Some(err) = error {
            let why = format!("sent a stanza that deserved {}", err.condition.name());
            st.fail(err).await;
            return Err(not_found(format!("the server of {} {why}", self.remote)));
        }
        self.flood.throttle(&self.tag).await;
        log::debug!("{} {}", self.tag, super::incoming::brief(&e));
        let mut replies = Vec::new();
        let origin = crate::router::Origin::Remote(self.remote.clone().into());
        if let Err(err) =
            crate::router::process(&self.core, &origin, to_client_ns(&e), &mut replies).await
        {
            let why = format!("sent a stanza that deserved {}", err.condition.name());
            st.fail(err).await;
            return Err(not_found(format!("the server of {} {why}", self.remote)));
        }
        Ok(())
    }

    /// XEP-0220 §2.1.1: our key for this stream.
    async fn dialback(&mut self, st: &mut Stream) -> std::io::Result<()> {
        let id = self.stream_id.clone().unwrap_or_default();
        let key = self.inner.dialback_key(&self.remote, &self.local, &id);
        st.send_db(
            "result",
            &[("from", &self.local), ("to", &self.remote)],
            Some(&key),
        )
        .await?;
        self.stage = Stage::Dialback;
        Ok(())
    }

    fn authenticated(&self, method: &str) {
        log::info!(
            "{} outgoing s2s {} → {} authenticated ({method})",
            self.tag,
            self.local,
            self.remote
        );
    }

    /// Authenticated: the queued stanzas go.
    async fn ready(&mut self, st: &mut Stream) -> std::io::Result<()> {
        self.stage = Stage::Ready;
        if self.bidi {
            log::info!(
                "{} bidirectional: stanzas {} → {} come on this stream",
                self.tag,
                self.remote,
                self.local
            );
        }
        while let Some(s) = self.pending.pop_front() {
            st.send(&s).await?;
        }
        Ok(())
    }
}
