//! Stream negotiation on a client connection (RFC 6120 §4 stream headers and features,
//! §5 STARTTLS, §6 SASL, §7 resource binding; RFC 3921 §3 session): the `Connection`
//! methods that run before, and until, the stream carries stanzas.

use super::connection::{io_error, Connection, Flow};
use crate::jid::{BareJid, FullJid};
use crate::ns;
use crate::router::StreamPhase;
use crate::sasl::{self, ChannelBindings, Failure, Mechanism, ScramWait, Start};
use crate::session::{Bound, C2sState, SessionHandle};
use crate::stanza::IqType;
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::reader::StreamHeader;
use crate::xml::{escape, Element};
use smol::future::FutureExt;
use smol::Timer;
use std::time::Duration;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// SASL failures tolerated on one connection before it is closed.
const MAX_AUTH_FAILURES: u32 = 5;

/// A SASL exchange in progress.
pub(super) enum SaslExchange {
    /// `<auth/>` came without an initial response: we sent an empty challenge and wait
    /// for the client's first message in a `<response/>`.
    Initial(Mechanism),
    /// Waiting for the client's final SCRAM message.
    Scram { wait: ScramWait, username: String },
    /// A XEP-0388 exchange: the `<authenticate/>` request and the mechanism's step.
    Sasl2(Box<super::sasl2::Sasl2Exchange>),
}

/// What the client's first message led to.
pub(super) enum Started {
    /// Authenticated: the username and the success data.
    Done(String, Vec<u8>),
    /// A challenge to send, and the exchange waiting for the answer.
    Challenge(Vec<u8>, SaslExchange),
}

/// The result of a SASL step: `Ok(None)` while the exchange goes on, `Ok(Some((username,
/// success data)))` when it succeeded, or the failure and the username if known.
type SaslOutcome = Result<Option<(String, Vec<u8>)>, (Failure, Option<String>)>;

impl Connection {
    /// Performs the TLS handshake with the current certificate.
    pub(super) async fn handshake(&mut self) -> std::io::Result<()> {
        let loaded = self.server.tls.current();
        let acceptor = loaded.acceptor.clone();
        let hs = self.transport.start_tls(&acceptor);
        let timeout = async {
            Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(std::io::ErrorKind::TimedOut.into())
        };
        hs.or(timeout).await?;
        self.tls = Some(loaded);
        Ok(())
    }

    /// Validates the client's stream header (RFC 6120 §4.7, §4.9.3) and answers with ours
    /// and the stream features for the current state.
    pub(super) async fn on_header(&mut self, h: StreamHeader) -> Result<Flow, StreamError> {
        if !self.expect_header {
            return Err(StreamError::with_text(
                StreamCondition::NotWellFormed,
                "unexpected stream header",
            ));
        }
        self.send_header(h.from.as_deref());
        self.expect_header = false;
        self.lang = h.lang.filter(|l| !l.is_empty());
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            return Err(StreamError::with_text(
                StreamCondition::InvalidNamespace,
                "the default namespace must be jabber:client",
            ));
        }
        match h.version.as_deref().map(parse_version) {
            Some(Some((1, _))) => {}
            Some(None) => {
                return Err(StreamError::with_text(
                    StreamCondition::BadFormat,
                    "malformed version attribute",
                ))
            }
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::UnsupportedVersion,
                    "only XMPP 1.0 streams are supported",
                ))
            }
        }
        let to_ok =
            h.to.as_deref()
                .and_then(|to| crate::jid::nameprep(to).ok())
                .is_some_and(|to| to == self.server.domain);
        if !to_ok {
            return Err(StreamError::with_text(
                StreamCondition::HostUnknown,
                "this server does not serve that domain",
            ));
        }
        let features = self.features();
        self.queue_element(&features);
        self.flush().await.map_err(io_error)?;
        Ok(Flow::Continue)
    }

    /// The stream features for the current state (RFC 6120 §4.3.2).
    fn features(&self) -> Element {
        let mut f = Element::new("features", ns::STREAM);
        let secure = self.transport.is_tls();
        let plaintext_ok = self.server.config.insecure_allow_plaintext;
        match &self.state {
            C2sState::Unauthed => {
                if !secure && !self.transport.is_websocket() {
                    let mut starttls = Element::new("starttls", ns::TLS);
                    if !plaintext_ok {
                        starttls.push(Element::new("required", ns::TLS));
                    }
                    f.push(starttls);
                }
                if secure || plaintext_ok {
                    let mut mechs = Element::new("mechanisms", ns::SASL);
                    for m in self.offered_mechanisms() {
                        mechs.push(Element::new("mechanism", ns::SASL).with_text(m.name()));
                    }
                    f.push(mechs);
                    // XEP-0388 SASL2, with Bind2, inline SM and FAST.
                    f.push(self.sasl2_feature());
                    // XEP-0077 registration, with an invitation (XEP-0401, XEP-0445) or,
                    // with --open-registration, without.
                    f.push(Element::new("register", ns::REGISTER_FEATURE));
                    f.push(Element::new("register", ns::INVITE));
                    f.push(Element::new("register", ns::IBR_TOKEN));
                }
                let cb = self.channel_bindings();
                if !cb.is_empty() {
                    // XEP-0440: which channel-binding types -PLUS may use here.
                    let mut types = Element::new("sasl-channel-binding", ns::SASL_CB);
                    for t in cb.types() {
                        types.push(
                            Element::new("channel-binding", ns::SASL_CB).with_attr("type", t),
                        );
                    }
                    f.push(types);
                }
            }
            C2sState::Authed { .. } => {
                f.push(Element::new("bind", ns::BIND));
                // What the feature table offers (roster versioning, sm, csi, session, caps…).
                for sf in self
                    .server
                    .table
                    .modules()
                    .flat_map(|m| m.stream_features.iter())
                    .filter(|sf| sf.phase == StreamPhase::Authenticated)
                {
                    f.push((sf.element)(&self.server));
                }
            }
            C2sState::Bound(_) => {}
        }
        f
    }

    /// -PLUS only with channel binding data, PLAIN only under TLS (or when plaintext is
    /// explicitly allowed), nothing before TLS unless plaintext is allowed.
    pub(super) fn offered_mechanisms(&self) -> Vec<Mechanism> {
        let secure = self.transport.is_tls();
        if !secure && !self.server.config.insecure_allow_plaintext {
            return Vec::new();
        }
        Mechanism::offered(&self.channel_bindings(), true)
    }

    pub(super) fn channel_bindings(&self) -> ChannelBindings {
        match &self.tls {
            Some(t) => self
                .transport
                .channel_bindings(t.server_end_point.as_deref()),
            None => ChannelBindings::default(),
        }
    }

    /// Before authentication: STARTTLS and SASL only (RFC 6120 §5.4, §6.4).
    pub(super) async fn on_unauthed(&mut self, e: Element) -> Result<Flow, StreamError> {
        if e.ns == ns::TLS && e.name == "starttls" {
            // RFC 7395 §3.3: a WebSocket is secured by its HTTP connection, never in-band.
            if self.transport.is_tls() || self.transport.is_websocket() {
                self.queue_element(&Element::new("failure", ns::TLS));
                self.push_close();
                let _ = self.write_out().await;
                return Ok(Flow::End("STARTTLS on a TLS stream".into()));
            }
            // Bytes after <starttls/> were sent before our <proceed/>: they would be read
            // as TLS records or, worse, as if protected by TLS. Refuse.
            if self.reader.has_buffered() {
                return Err(StreamError::with_text(
                    StreamCondition::PolicyViolation,
                    "data pipelined after <starttls/>",
                ));
            }
            // In plaintext, before the handshake.
            self.queue_element(&Element::new("proceed", ns::TLS));
            self.write_out().await.map_err(io_error)?;
            if let Err(e) = self.handshake().await {
                return Ok(Flow::End(format!("TLS handshake failed: {e}")));
            }
            self.restart();
            return Ok(Flow::Continue);
        }
        if e.ns == ns::SASL {
            return self.on_sasl(e).await;
        }
        if e.ns == ns::SASL2 {
            return self.on_sasl2(e).await;
        }
        // XEP-0077 registration (with XEP-0445's preauth), under TLS only.
        if e.name == "iq"
            && e.ns == ns::CLIENT
            && (self.transport.is_tls() || self.server.config.insecure_allow_plaintext)
        {
            return self.on_register_iq(e).await;
        }
        Err(StreamError::with_text(
            StreamCondition::NotAuthorized,
            "authenticate first",
        ))
    }

    /// SASL negotiation (RFC 6120 §6.4).
    async fn on_sasl(&mut self, e: Element) -> Result<Flow, StreamError> {
        let outcome = match (e.name.as_str(), self.sasl.take().map(|b| *b)) {
            ("auth", None) => self.sasl_auth(&e).await,
            ("response", Some(SaslExchange::Initial(mech))) => {
                match sasl::decode_payload(&e.text()) {
                    Ok(initial) => self.sasl_start(mech, &initial).await,
                    Err(f) => Err((f, None)),
                }
            }
            ("response", Some(SaslExchange::Scram { wait, username })) => {
                match sasl::decode_payload(&e.text()).and_then(|data| wait.finish(&data)) {
                    Ok(success) => Ok(Some((username, success))),
                    Err(f) => Err((f, Some(username))),
                }
            }
            ("abort", Some(SaslExchange::Scram { username, .. })) => {
                Err((Failure::Aborted, Some(username)))
            }
            ("abort", _) => Err((Failure::Aborted, None)),
            // A new <auth/> in the middle of an exchange abandons the old one.
            ("auth", Some(_)) => Err((Failure::Aborted, None)),
            _ => Err((Failure::MalformedRequest, None)),
        };
        match outcome {
            // A challenge was sent; the exchange goes on.
            Ok(None) => Ok(Flow::Continue),
            Ok(Some((username, success))) => {
                self.server.throttle.clear(&self.peer, &username);
                log::info!(
                    "c2s:{} authenticated as {}@{}",
                    self.id,
                    username,
                    self.server.domain
                );
                let mut s = Element::new("success", ns::SASL);
                if !success.is_empty() {
                    s = s.with_text(sasl::encode_payload(&success));
                }
                self.queue_element(&s);
                self.flush().await.map_err(io_error)?;
                self.state = C2sState::Authed { username };
                if let Some(g) = self.guard.as_mut() {
                    g.authenticated();
                }
                self.restart();
                Ok(Flow::Continue)
            }
            Err((failure, username)) => {
                let f = Element::new("failure", ns::SASL)
                    .with_child(Element::new(failure.condition(), ns::SASL));
                self.auth_failed(failure, username, f).await
            }
        }
    }

    /// A failed authentication (either profile): counted, slowed down when a named
    /// account's credentials were wrong, answered with `failure`; too many end the stream.
    pub(super) async fn auth_failed(
        &mut self,
        failure: Failure,
        username: Option<String>,
        answer: Element,
    ) -> Result<Flow, StreamError> {
        if failure != Failure::Aborted {
            self.auth_failures += 1;
            // Only a failed credential check (a named account) is slowed down: a
            // client probing mechanisms or channel-binding types (slixmpp tries
            // tls-unique on TLS 1.2) has guessed no password.
            let delay = match username.as_deref() {
                Some(u) if !u.is_empty() => self.server.throttle.failure(&self.peer, u),
                _ => Duration::ZERO,
            };
            log::info!(
                "c2s:{} authentication failed ({}){}",
                self.id,
                failure.condition(),
                username
                    .as_deref()
                    .map(|u| format!(" for {u}"))
                    .unwrap_or_default()
            );
            // Slows down password guessing, per address and per account.
            Timer::after(delay).await;
        }
        self.queue_element(&answer);
        self.flush().await.map_err(io_error)?;
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return Err(StreamError::with_text(
                StreamCondition::PolicyViolation,
                "too many failed authentication attempts",
            ));
        }
        Ok(Flow::Continue)
    }

    /// `<auth mechanism='…'>`: checks the mechanism and starts the exchange.
    async fn sasl_auth(&mut self, e: &Element) -> SaslOutcome {
        let secure = self.transport.is_tls();
        if !secure && !self.server.config.insecure_allow_plaintext {
            return Err((Failure::EncryptionRequired, None));
        }
        let mech = e
            .attr("mechanism")
            .and_then(Mechanism::from_name)
            .filter(|m| self.offered_mechanisms().contains(m))
            .ok_or((Failure::InvalidMechanism, None))?;
        // RFC 6120 §6.4.2: no text means no initial response: ask for it with an empty
        // challenge; "=" is an empty initial response.
        let text = e.text();
        if text.trim().is_empty() {
            self.send_challenge(&[]).await?;
            self.sasl = Some(Box::new(SaslExchange::Initial(mech)));
            return Ok(None);
        }
        let initial = sasl::decode_payload(&text).map_err(|f| (f, None))?;
        self.sasl_start(mech, &initial).await
    }

    /// The client's first message: PLAIN completes at once, SCRAM sends its challenge.
    /// `Ok(None)` if a challenge was sent, `Ok(Some((user, success data)))` on success.
    async fn sasl_start(&mut self, mech: Mechanism, initial: &[u8]) -> SaslOutcome {
        match self.sasl_begin(mech, initial, None).await? {
            Started::Done(username, data) => Ok(Some((username, data))),
            Started::Challenge(data, exchange) => {
                self.send_challenge(&data).await?;
                self.sasl = Some(Box::new(exchange));
                Ok(None)
            }
        }
    }

    /// The client's first message for `mech`, for either profile; `ssdp` is the XEP-0474
    /// hash a SCRAM challenge carries.
    pub(super) async fn sasl_begin(
        &mut self,
        mech: Mechanism,
        initial: &[u8],
        ssdp: Option<&str>,
    ) -> Result<Started, (Failure, Option<String>)> {
        let cb = self.channel_bindings();
        match sasl::start(mech, initial, &cb).map_err(|f| (f, None))? {
            Start::Plain {
                authzid,
                username,
                password,
            } => {
                let Ok(username) = crate::jid::nodeprep(&username) else {
                    sasl::check_plain(None, &password).map_err(|f| (f, None))?;
                    unreachable!("check_plain without credentials always fails");
                };
                let creds = self.lookup(&username).await?;
                sasl::check_plain(creds.as_ref(), &password)
                    .map_err(|f| (f, Some(username.clone())))?;
                self.check_authzid(authzid.as_deref(), &username)?;
                Ok(Started::Done(username, Vec::new()))
            }
            Start::Scram(start) => {
                // A name that cannot be an account is answered as a missing account, so
                // that the exchange looks the same either way.
                let username = crate::jid::nodeprep(start.username()).unwrap_or_default();
                if !username.is_empty() {
                    self.check_authzid(start.authzid(), &username)?;
                }
                let creds = if username.is_empty() {
                    None
                } else {
                    self.lookup(&username).await?
                };
                let (challenge, wait) = start.challenge_ssdp(creds.as_ref(), ssdp);
                Ok(Started::Challenge(
                    challenge,
                    SaslExchange::Scram { wait, username },
                ))
            }
        }
    }

    async fn send_challenge(&mut self, data: &[u8]) -> Result<(), (Failure, Option<String>)> {
        self.queue_element(
            &Element::new("challenge", ns::SASL).with_text(sasl::encode_payload(data)),
        );
        self.flush()
            .await
            .map_err(|_| (Failure::TemporaryAuthFailure, None))
    }

    /// An authorization identity may only name the authenticating account itself.
    fn check_authzid(
        &self,
        authzid: Option<&str>,
        username: &str,
    ) -> Result<(), (Failure, Option<String>)> {
        let own = BareJid::new(Some(username), &self.server.domain)
            .map_err(|_| (Failure::NotAuthorized, None))?;
        sasl::check_authzid(authzid, &own).map_err(|f| (f, Some(username.to_owned())))
    }

    pub(super) async fn lookup(
        &self,
        username: &str,
    ) -> Result<Option<sasl::StoredCredentials>, (Failure, Option<String>)> {
        let host = self.server.domain.clone();
        let user = username.to_owned();
        self.server
            .storage
            .call(move |c| crate::storage::accounts::credentials(c, &host, &user))
            .await
            .map_err(|e| {
                log::error!("c2s:{} credential lookup failed: {e}", self.id);
                (Failure::TemporaryAuthFailure, Some(username.to_owned()))
            })
    }

    /// After SASL, before binding: resource binding and the legacy session (RFC 6120 §7).
    pub(super) async fn on_authed(&mut self, e: Element) -> Result<Flow, StreamError> {
        if e.name == "iq" && e.ns == ns::CLIENT {
            if let Some(payload) = e.first_element() {
                if payload.is("bind", ns::BIND) && IqType::of(&e) == Some(IqType::Set) {
                    return self.bind(&e).await;
                }
                if payload.is("session", ns::SESSION) {
                    self.reply_result(&e, None).await?;
                    return Ok(Flow::Continue);
                }
            }
        }
        Err(StreamError::with_text(
            StreamCondition::NotAuthorized,
            "bind a resource first",
        ))
    }

    /// Resource binding (RFC 6120 §7.5–§7.7): the client's resource or a generated one; on a
    /// conflict the newer session wins and the older gets a `conflict` stream error.
    async fn bind(&mut self, iq: &Element) -> Result<Flow, StreamError> {
        let C2sState::Authed { username } = &self.state else {
            unreachable!("bind is only handled in the Authed state");
        };
        let username = username.clone();
        let bare = BareJid::new(Some(username.as_str()), &self.server.domain)
            .map_err(|_| StreamError::new(StreamCondition::InternalServerError))?;
        let requested = iq
            .first_element()
            .and_then(|b| b.child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let jid = match requested {
            Some(r) => match bare.with_resource(&r) {
                Ok(j) => j,
                Err(_) => {
                    let err = StanzaError::with_text(
                        StanzaCondition::BadRequest,
                        "the resource is not a valid resourcepart",
                    );
                    self.reply_error(iq, err).await?;
                    return Ok(Flow::Continue);
                }
            },
            None => generated_resource(&bare),
        };
        self.bind_jid(jid.clone()).await?;
        let result = Element::new("bind", ns::BIND)
            .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string()));
        self.reply_result(iq, Some(result)).await?;
        Ok(Flow::Continue)
    }

    /// Binds the session to `jid` (RFC 6120 §7, XEP-0386): into the router's table with the
    /// account's block list; an older session with the same JID is replaced.
    pub(super) async fn bind_jid(&mut self, jid: FullJid) -> Result<(), StreamError> {
        let (host, user) = (
            self.server.domain.clone(),
            jid.node().unwrap_or_default().to_owned(),
        );
        let blocked = self
            .server
            .storage
            .call(move |c| crate::storage::blocking::list(c, &host, &user))
            .await
            .map_err(|e| {
                log::error!("c2s:{} loading the block list failed: {e}", self.id);
                StreamError::new(StreamCondition::InternalServerError)
            })?;
        let (handle, queue) = SessionHandle::new(self.id, jid.clone());
        if let Some(old) = self.server.sessions.bind(handle.clone(), blocked) {
            log::info!("c2s:{} replaces c2s:{} as {}", self.id, old.id, jid);
            old.close(StreamError::with_text(
                StreamCondition::Conflict,
                "replaced by a new connection for the same resource",
            ));
        }
        log::info!("c2s:{} bound {}", self.id, jid);
        self.queue = Some(queue);
        self.state = C2sState::Bound(Box::new(Bound::new(handle)));
        Ok(())
    }

    /// Stream restart after TLS or SASL success (RFC 6120 §4.3.3).
    fn restart(&mut self) {
        self.reader.reset();
        self.expect_header = true;
    }

    pub(super) fn send_header(&mut self, client_from: Option<&str>) {
        let ws = self.transport.is_websocket();
        if ws {
            // RFC 7395 §3.3.2: the framing `<open/>`, a message of its own.
            self.out.push_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' version='1.0' xml:lang='en' id='");
        } else {
            self.out.push_str("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en' id='");
        }
        self.out.push_str(&crate::util::random_hex(16));
        self.out.push_str("' from='");
        self.out.push_str(&escape(&self.server.domain));
        self.out.push('\'');
        if let Some(to) = client_from {
            if crate::jid::Jid::parse(to).is_ok() {
                self.out.push_str(" to='");
                self.out.push_str(&escape(to));
                self.out.push('\'');
            }
        }
        if ws {
            self.out.push_str("/>");
            self.end_message();
        } else {
            self.out.push('>');
        }
    }
}

/// `major.minor` of a version attribute (RFC 6120 §4.7.5).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A server-generated resource: "roost-" and 8 random hex digits.
pub(super) fn generated_resource(bare: &BareJid) -> FullJid {
    bare.with_resource(&format!("roost-{}", crate::util::random_hex(4)))
        .expect("a hex resource is always valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0"), Some((1, 0)));
        assert_eq!(parse_version("1.12"), Some((1, 12)));
        assert_eq!(parse_version("2.0"), Some((2, 0)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("one.zero"), None);
    }
}
