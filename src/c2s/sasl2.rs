//! XEP-0388 Extensible SASL Profile (SASL2) on a client connection, with what it carries
//! inline: XEP-0386 Bind 2 (a resource from the client's tag, carbons, CSI state and stream
//! management enabled in the same round trip), XEP-0198 resumption of a hibernated session,
//! XEP-0484 FAST tokens (the HT-SHA-256 mechanisms, `sasl/ht.rs`) and XEP-0474 downgrade
//! protection in the SCRAM challenge. No stream restart follows a SASL2 success.
//!
//! XEP-0480 SCRAM upgrade tasks: an account holding keys for one hash only (imported from
//! a server that stored SCRAM-SHA-1 keys) gets the other's when its client asks for
//! `UPGR-SCRAM-SHA-256` (or `-SHA-1`): after the password check the server answers
//! `<continue/>` with the task, sends the account's salt and iteration count, and stores
//! the keys made from the SaltedPassword the client sends back.
//!
//! The RFC 6120 path (`negotiation.rs`) is untouched: a client uses one or the other.

use super::connection::{io_error, Connection, Flow};
use super::negotiation::{generated_resource, SaslExchange, Started};
use crate::jid::BareJid;
use crate::ns;
use crate::sasl::ht::{self, HtMechanism};
use crate::sasl::{self, Failure, Mechanism, StoredCredentials, UpgradeTask};
use crate::session::C2sState;
use crate::stanza::{StreamCondition, StreamError};
use crate::storage::fast::Token;
use crate::xml::Element;

/// Longest `<user-agent id/>` accepted (a UUID is 36 characters).
const MAX_USER_AGENT_ID: usize = 256;
/// Longest Bind 2 `<tag/>` kept; a longer one is ignored.
const MAX_TAG: usize = 64;

/// What the client asked for in `<authenticate/>` besides the mechanism.
#[derive(Clone, Debug, Default)]
pub(super) struct Authenticate {
    /// `<user-agent id/>`: the client installation, for FAST tokens and a stable resource.
    user_agent: Option<String>,
    /// XEP-0386 `<bind/>`.
    bind: Option<Element>,
    /// XEP-0198 `<resume previd h/>`.
    resume: Option<(String, u32)>,
    /// XEP-0484 `<request-token mechanism/>`.
    request_token: Option<String>,
    /// XEP-0484 `<fast/>`: authenticating with a token; `invalidate` asked.
    fast: Option<bool>,
    /// XEP-0480 `<upgrade/>`: the upgrade tasks asked for that this server knows.
    upgrades: Vec<UpgradeTask>,
}

impl Authenticate {
    fn parse(e: &Element) -> Result<Authenticate, Failure> {
        let mut a = Authenticate::default();
        if let Some(ua) = e.child("user-agent", ns::SASL2) {
            match ua.attr("id") {
                Some(id) if !id.is_empty() && id.len() <= MAX_USER_AGENT_ID => {
                    a.user_agent = Some(id.to_owned())
                }
                None => {}
                Some(_) => return Err(Failure::MalformedRequest),
            }
        }
        a.bind = e.child("bind", ns::BIND2).cloned();
        if let Some(r) = e.child("resume", ns::SM) {
            let previd = r.attr("previd").ok_or(Failure::MalformedRequest)?;
            let h = r
                .attr("h")
                .and_then(|h| h.parse::<u32>().ok())
                .ok_or(Failure::MalformedRequest)?;
            a.resume = Some((previd.to_owned(), h));
        }
        a.request_token = e
            .child("request-token", ns::FAST)
            .and_then(|r| r.attr("mechanism"))
            .map(str::to_owned);
        a.fast = e
            .child("fast", ns::FAST)
            .map(|f| matches!(f.attr("invalidate"), Some("true") | Some("1")));
        for u in e.elements().filter(|u| u.is("upgrade", ns::SASL_UPGRADE)) {
            if let Some(t) = UpgradeTask::from_name(u.text().trim()) {
                if !a.upgrades.contains(&t) {
                    a.upgrades.push(t);
                }
            }
        }
        Ok(a)
    }

    /// The client's key in the token table: the hex SHA-256 of its user-agent id.
    fn client_key(&self) -> Option<String> {
        self.user_agent.as_deref().map(|id| {
            ring::digest::digest(&ring::digest::SHA256, id.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
    }
}

/// A SASL2 exchange waiting for the client's `<response/>`, or, authenticated, for the
/// next step of an upgrade task.
pub(super) struct Sasl2Exchange {
    request: Authenticate,
    step: Sasl2Step,
}

enum Sasl2Step {
    /// `Initial` (no initial response yet) or `Scram`.
    Mechanism(SaslExchange),
    /// XEP-0480: authenticated; the tasks still to do (the first is the one announced).
    Upgrade(Box<Upgrade>),
}

/// An account's upgrade in progress.
struct Upgrade {
    username: String,
    creds: StoredCredentials,
    tasks: Vec<UpgradeTask>,
    /// `<next/>` came and the salt went out: the client's hash is awaited.
    salt_sent: bool,
}

/// A token that authenticated this connection: the client's key, the token, the mechanism.
struct UsedToken {
    client: String,
    token: Token,
    mechanism: HtMechanism,
}

/// The result of one step: `Ok(None)` while the exchange goes on.
type Step = Result<Option<(String, Vec<u8>, Option<UsedToken>)>, (Failure, Option<String>)>;

impl Connection {
    fn fast_enabled(&self) -> bool {
        !self.server.config.fast_token_ttl.is_zero()
    }

    /// The mechanism names SASL2 offers here (the RFC 6120 ones).
    fn sasl2_mechanisms(&self) -> Vec<&'static str> {
        self.offered_mechanisms()
            .into_iter()
            .map(Mechanism::name)
            .collect()
    }

    /// `<authentication xmlns='urn:xmpp:sasl:2'/>`: the mechanisms, and what may be done
    /// inline: Bind 2 (with carbons, CSI and SM inside it), SM resumption, FAST.
    pub(super) fn sasl2_feature(&self) -> Element {
        let mut auth = Element::new("authentication", ns::SASL2);
        for m in self.sasl2_mechanisms() {
            auth.push(Element::new("mechanism", ns::SASL2).with_text(m));
        }
        let mut inline = Element::new("inline", ns::SASL2);
        let mut bind_inline = Element::new("inline", ns::BIND2);
        for var in [ns::CARBONS, ns::CSI, ns::SM] {
            bind_inline.push(Element::new("feature", ns::BIND2).with_attr("var", var));
        }
        inline.push(Element::new("bind", ns::BIND2).with_child(bind_inline));
        inline.push(Element::new("sm", ns::SM));
        if self.fast_enabled() {
            let mut fast = Element::new("fast", ns::FAST);
            for m in HtMechanism::offered(&self.channel_bindings()) {
                fast.push(Element::new("mechanism", ns::FAST).with_text(m.name()));
            }
            inline.push(fast);
        }
        auth.push(inline);
        for t in UpgradeTask::ALL {
            auth.push(Element::new("upgrade", ns::SASL_UPGRADE).with_text(t.name()));
        }
        auth
    }

    /// XEP-0474: the hash of what this connection advertised, for a SCRAM challenge.
    fn ssdp(&self, mech: Mechanism) -> Option<String> {
        mech.is_scram().then(|| {
            sasl::ssdp_hash(
                mech,
                &self.sasl2_mechanisms(),
                &self.channel_bindings().types(),
            )
        })
    }

    /// `<authenticate/>`, `<response/>` and `<abort/>` in the SASL2 namespace.
    pub(super) async fn on_sasl2(&mut self, e: Element) -> Result<Flow, StreamError> {
        let exchange = match self.sasl.take().map(|b| *b) {
            Some(SaslExchange::Sasl2(x)) => Some(*x),
            // A SASL2 element in the middle of an RFC 6120 exchange abandons it.
            Some(_) => return self.sasl2_failed(Failure::Aborted, None, None).await,
            None => None,
        };
        let (outcome, request) = match (e.name.as_str(), exchange) {
            ("authenticate", None) => match Authenticate::parse(&e) {
                Ok(request) => {
                    let step = self.sasl2_authenticate(&e, &request).await;
                    (step, request)
                }
                Err(f) => (Err((f, None)), Authenticate::default()),
            },
            (
                "response",
                Some(Sasl2Exchange {
                    step: Sasl2Step::Mechanism(step),
                    request,
                }),
            ) => {
                let step = match sasl::decode_payload(&e.text()) {
                    Err(f) => Err((f, None)),
                    Ok(data) => match step {
                        SaslExchange::Initial(mech) => {
                            self.sasl2_first(mech, &data, &request).await
                        }
                        SaslExchange::Scram { wait, username } => match wait.finish(&data) {
                            Ok(success) => Ok(Some((username, success, None))),
                            Err(f) => Err((f, Some(username))),
                        },
                        SaslExchange::Sasl2(_) => Err((Failure::MalformedRequest, None)),
                    },
                };
                (step, request)
            }
            (
                "next" | "task-data",
                Some(Sasl2Exchange {
                    step: Sasl2Step::Upgrade(up),
                    request,
                }),
            ) => return self.upgrade_step(&e, *up, request).await,
            ("abort", x) => {
                let user = x.and_then(|x| match x.step {
                    Sasl2Step::Mechanism(SaslExchange::Scram { username, .. }) => Some(username),
                    Sasl2Step::Upgrade(up) => Some(up.username),
                    _ => None,
                });
                (Err((Failure::Aborted, user)), Authenticate::default())
            }
            _ => (
                Err((Failure::MalformedRequest, None)),
                Authenticate::default(),
            ),
        };
        match outcome {
            Ok(None) => Ok(Flow::Continue),
            Ok(Some((username, data, used))) => {
                // Only after a password mechanism: a FAST token does not prove the password
                // the new keys are made from.
                if !request.upgrades.is_empty() && used.is_none() {
                    if let Some((creds, tasks)) = self.upgrades_needed(&username, &request).await? {
                        let up = Upgrade {
                            username,
                            creds,
                            tasks,
                            salt_sent: false,
                        };
                        return self.upgrade_continue(&data, up, request).await;
                    }
                }
                self.sasl2_success(username, data, request, used).await
            }
            Err((failure, username)) => self.sasl2_failed(failure, username, None).await,
        }
    }

    /// XEP-0480: the tasks asked for whose keys `username` lacks; `None` if there are none.
    async fn upgrades_needed(
        &mut self,
        username: &str,
        request: &Authenticate,
    ) -> Result<Option<(StoredCredentials, Vec<UpgradeTask>)>, StreamError> {
        let creds = match self.lookup(username).await {
            Ok(Some(c)) => c,
            _ => return Err(StreamError::new(StreamCondition::InternalServerError)),
        };
        let tasks: Vec<UpgradeTask> = request
            .upgrades
            .iter()
            .copied()
            .filter(|t| t.needed(&creds))
            .collect();
        Ok((!tasks.is_empty()).then_some((creds, tasks)))
    }

    /// `<continue/>` naming the next task (with the mechanism's success data the first time).
    async fn upgrade_continue(
        &mut self,
        data: &[u8],
        up: Upgrade,
        request: Authenticate,
    ) -> Result<Flow, StreamError> {
        let task = up.tasks[0];
        let mut c = Element::new("continue", ns::SASL2);
        if !data.is_empty() {
            c.push(
                Element::new("additional-data", ns::SASL2).with_text(sasl::encode_payload(data)),
            );
        }
        c.push(
            Element::new("tasks", ns::SASL2)
                .with_child(Element::new("task", ns::SASL2).with_text(task.name())),
        );
        c.push(
            Element::new("text", ns::SASL2)
                .with_text(format!("This account needs an upgrade to {}", task.name())),
        );
        self.queue_element(&c);
        self.flush().await.map_err(io_error)?;
        self.sasl = Some(Box::new(SaslExchange::Sasl2(Box::new(Sasl2Exchange {
            request,
            step: Sasl2Step::Upgrade(Box::new(up)),
        }))));
        Ok(Flow::Continue)
    }

    /// XEP-0480 §3: `<next task/>` gets the salt and iteration count; `<task-data/>` with
    /// the SaltedPassword stores the keys, then the next task or `<success/>`.
    async fn upgrade_step(
        &mut self,
        e: &Element,
        mut up: Upgrade,
        request: Authenticate,
    ) -> Result<Flow, StreamError> {
        let task = up.tasks[0];
        let username = Some(up.username.clone());
        if e.name == "next" && !up.salt_sent {
            if e.attr("task") != Some(task.name()) {
                return self
                    .sasl2_failed(
                        Failure::MalformedRequest,
                        username,
                        Some("the task announced in <continue/> is the one to start"),
                    )
                    .await;
            }
            let salt = Element::new("salt", ns::SCRAM_UPGRADE)
                .with_attr("iterations", up.creds.iterations.to_string())
                .with_text(sasl::encode_payload(&up.creds.salt));
            self.queue_element(&Element::new("task-data", ns::SASL2).with_child(salt));
            self.flush().await.map_err(io_error)?;
            up.salt_sent = true;
            self.sasl = Some(Box::new(SaslExchange::Sasl2(Box::new(Sasl2Exchange {
                request,
                step: Sasl2Step::Upgrade(Box::new(up)),
            }))));
            return Ok(Flow::Continue);
        }
        let keys = (e.name == "task-data" && up.salt_sent)
            .then(|| e.child("hash", ns::SCRAM_UPGRADE))
            .flatten()
            .and_then(|h| sasl::decode_payload(h.text().trim()).ok())
            .and_then(|salted| task.keys(&salted));
        let Some(keys) = keys else {
            return self
                .sasl2_failed(
                    Failure::MalformedRequest,
                    username,
                    Some("expected <task-data/> with the SaltedPassword for the task"),
                )
                .await;
        };
        let old = up.creds.clone();
        task.fill(&mut up.creds, keys);
        let (host, user, new) = (
            self.server.domain.clone(),
            up.username.clone(),
            up.creds.clone(),
        );
        let stored = self
            .server
            .storage
            .call(move |c| crate::storage::accounts::upgrade_keys(c, &host, &user, &old, &new))
            .await
            .map_err(|e| {
                log::error!("c2s:{} storing upgraded keys failed: {e}", self.id);
                StreamError::new(StreamCondition::InternalServerError)
            })?;
        if stored {
            log::info!(
                "c2s:{} {}@{} upgraded ({})",
                self.id,
                up.username,
                self.server.domain,
                task.name()
            );
        }
        up.tasks.remove(0);
        up.salt_sent = false;
        if !up.tasks.is_empty() {
            return self.upgrade_continue(&[], up, request).await;
        }
        self.sasl2_success(up.username, Vec::new(), request, None)
            .await
    }

    /// Checks the mechanism and starts the exchange.
    async fn sasl2_authenticate(&mut self, e: &Element, request: &Authenticate) -> Step {
        let secure = self.transport.is_tls();
        if !secure && !self.server.config.insecure_allow_plaintext {
            return Err((Failure::EncryptionRequired, None));
        }
        let name = e.attr("mechanism").unwrap_or_default();
        let initial = match e.child("initial-response", ns::SASL2) {
            Some(i) => Some(sasl::decode_payload(&i.text()).map_err(|f| (f, None))?),
            None => None,
        };
        if let Some(ht) = HtMechanism::from_name(name) {
            if !self.fast_enabled() || !HtMechanism::offered(&self.channel_bindings()).contains(&ht)
            {
                return Err((Failure::InvalidMechanism, None));
            }
            // A token is used with <fast/> and the user-agent it was issued to.
            if request.fast.is_none() || request.user_agent.is_none() {
                return Err((Failure::MalformedRequest, None));
            }
            let initial = initial.ok_or((Failure::MalformedRequest, None))?;
            return self.fast_authenticate(ht, &initial, request).await;
        }
        let mech = Mechanism::from_name(name)
            .filter(|m| self.offered_mechanisms().contains(m))
            .ok_or((Failure::InvalidMechanism, None))?;
        match initial {
            Some(initial) => self.sasl2_first(mech, &initial, request).await,
            None => {
                self.sasl2_challenge(&[]).await?;
                self.sasl = Some(Box::new(SaslExchange::Sasl2(Box::new(Sasl2Exchange {
                    request: request.clone(),
                    step: Sasl2Step::Mechanism(SaslExchange::Initial(mech)),
                }))));
                Ok(None)
            }
        }
    }

    /// The client's first message of a password mechanism.
    async fn sasl2_first(
        &mut self,
        mech: Mechanism,
        initial: &[u8],
        request: &Authenticate,
    ) -> Step {
        let ssdp = self.ssdp(mech);
        match self.sasl_begin(mech, initial, ssdp.as_deref()).await? {
            Started::Done(username, data) => Ok(Some((username, data, None))),
            Started::Challenge(data, step) => {
                self.sasl2_challenge(&data).await?;
                self.sasl = Some(Box::new(SaslExchange::Sasl2(Box::new(Sasl2Exchange {
                    request: request.clone(),
                    step: Sasl2Step::Mechanism(step),
                }))));
                Ok(None)
            }
        }
    }

    async fn sasl2_challenge(&mut self, data: &[u8]) -> Result<(), (Failure, Option<String>)> {
        self.queue_element(
            &Element::new("challenge", ns::SASL2).with_text(sasl::encode_payload(data)),
        );
        self.flush()
            .await
            .map_err(|_| (Failure::TemporaryAuthFailure, None))
    }

    /// XEP-0484: a token of this client, for this mechanism, that the initiator hash
    /// proves. An expired token is removed and answered `credentials-expired`.
    async fn fast_authenticate(
        &mut self,
        mech: HtMechanism,
        initial: &[u8],
        request: &Authenticate,
    ) -> Step {
        let (user, initiator) = ht::parse(initial).map_err(|f| (f, None))?;
        let Ok(username) = crate::jid::nodeprep(&user) else {
            return Err((Failure::NotAuthorized, None));
        };
        let client = request
            .client_key()
            .ok_or((Failure::MalformedRequest, None))?;
        let cb = self.channel_bindings();
        let cb_data = mech
            .cb_data(&cb)
            .ok_or((Failure::InvalidMechanism, None))?
            .to_vec();
        let (host, user, c) = (self.server.domain.clone(), username.clone(), client.clone());
        let now = crate::util::datetime::unix_now();
        let invalidate = request.fast == Some(true);
        let name = mech.name();
        let found = self
            .server
            .storage
            .call(move |conn| {
                let tokens = crate::storage::fast::tokens(conn, &host, &user, &c)?;
                let hit = tokens
                    .iter()
                    .find(|t| t.mechanism == name && ht::verify(&t.key, &cb_data, &initiator))
                    .cloned();
                if let Some(t) = &hit {
                    let remove = invalidate || t.expires <= now;
                    // A write only when something goes: most logins just read.
                    if remove || tokens.iter().any(|o| o.expires < t.expires) {
                        crate::storage::fast::used(conn, &host, &user, &c, t, remove)?;
                    }
                }
                Ok(hit)
            })
            .await
            .map_err(|e| {
                log::error!("c2s:{} FAST token lookup failed: {e}", self.id);
                (Failure::TemporaryAuthFailure, Some(username.clone()))
            })?;
        let Some(token) = found else {
            return Err((Failure::NotAuthorized, Some(username)));
        };
        if token.expires <= now {
            return Err((Failure::CredentialsExpired, Some(username)));
        }
        let cb_data = mech.cb_data(&cb).unwrap_or_default();
        let answer = ht::responder(&token.key, cb_data);
        Ok(Some((
            username,
            answer,
            Some(UsedToken {
                client,
                token,
                mechanism: mech,
            }),
        )))
    }

    /// A SASL2 `<failure/>`, counted and slowed down as an RFC 6120 one.
    async fn sasl2_failed(
        &mut self,
        failure: Failure,
        username: Option<String>,
        text: Option<&str>,
    ) -> Result<Flow, StreamError> {
        let mut f = Element::new("failure", ns::SASL2)
            .with_child(Element::new(failure.condition(), ns::SASL));
        if let Some(t) = text {
            f.push(Element::new("text", ns::SASL2).with_text(t));
        }
        self.auth_failed(failure, username, f).await
    }

    /// XEP-0484: a new token for this client, stored; `keep` is the token just used, which
    /// stays valid until the new one is used.
    async fn issue_token(
        &self,
        username: &str,
        client: String,
        mech: HtMechanism,
        keep: Option<Vec<u8>>,
    ) -> Result<Element, StreamError> {
        let (token, key) = ht::new_token();
        let now = crate::util::datetime::unix_now();
        let expires = now.saturating_add(self.server.config.fast_token_ttl.as_secs() as i64);
        let row = Token {
            mechanism: mech.name().to_owned(),
            key: key.to_vec(),
            issued: now,
            expires,
        };
        let (host, user) = (self.server.domain.clone(), username.to_owned());
        self.server
            .storage
            .call(move |c| {
                crate::storage::fast::issue(c, &host, &user, &client, &row, keep.as_deref())
            })
            .await
            .map_err(|e| {
                log::error!("c2s:{} storing a FAST token failed: {e}", self.id);
                StreamError::new(StreamCondition::InternalServerError)
            })?;
        Ok(Element::new("token", ns::FAST)
            .with_attr("expiry", crate::util::datetime::format(expires))
            .with_attr("token", token))
    }

    /// Authenticated: `<success/>` with the additional data, a FAST token when asked for or
    /// due, then an inline resumption (the resumed session answers) or Bind 2.
    async fn sasl2_success(
        &mut self,
        username: String,
        data: Vec<u8>,
        request: Authenticate,
        used: Option<UsedToken>,
    ) -> Result<Flow, StreamError> {
        self.server.throttle.clear(&self.peer, &username);
        log::info!(
            "c2s:{} authenticated as {}@{} (SASL2{})",
            self.id,
            username,
            self.server.domain,
            if used.is_some() { ", FAST token" } else { "" }
        );
        self.state = C2sState::Authed {
            username: username.clone(),
        };
        if let Some(g) = self.guard.as_mut() {
            g.authenticated();
        }
        let mut success = Element::new("success", ns::SASL2);
        if !data.is_empty() {
            success.push(
                Element::new("additional-data", ns::SASL2).with_text(sasl::encode_payload(&data)),
            );
        }
        let mut tail = Vec::new();
        // XEP-0484: a token when asked for, or when the one used is due for rotation.
        let cb = self.channel_bindings();
        let requested = request
            .request_token
            .as_deref()
            .and_then(HtMechanism::from_name)
            .filter(|m| self.fast_enabled() && HtMechanism::offered(&cb).contains(m));
        let rotate = used.as_ref().filter(|u| {
            request.fast != Some(true)
                && crate::util::datetime::unix_now() - u.token.issued
                    >= self.server.config.fast_token_rotate.as_secs() as i64
        });
        if let (Some(mech), Some(client)) = (requested, request.client_key()) {
            let keep = used.as_ref().map(|u| u.token.key.clone());
            tail.push(self.issue_token(&username, client, mech, keep).await?);
        } else if let Some(u) = rotate {
            let keep = Some(u.token.key.clone());
            tail.push(
                self.issue_token(&username, u.client.clone(), u.mechanism, keep)
                    .await?,
            );
        }
        // XEP-0198 inline resumption: the hibernated session answers with this success.
        let bare = BareJid::new(Some(username.as_str()), &self.server.domain)
            .map_err(|_| StreamError::new(StreamCondition::InternalServerError))?;
        if let Some((previd, h)) = &request.resume {
            let mut handed = success.clone();
            for t in &tail {
                handed.push(t.clone());
            }
            if self.hand_over(previd, *h, &username, Some(handed)).await? {
                return Ok(Flow::End("handed over to the resumed session".into()));
            }
            success.push(
                Element::new("failed", ns::SM)
                    .with_child(Element::new("item-not-found", ns::STANZAS)),
            );
        }
        match &request.bind {
            Some(bind) => {
                let bound = self
                    .bind2(bind, &bare, request.user_agent.as_deref())
                    .await?;
                let C2sState::Bound(b) = &self.state else {
                    unreachable!("bind2 binds");
                };
                success.push(
                    Element::new("authorization-identifier", ns::SASL2)
                        .with_text(b.full_jid().to_string()),
                );
                success.push(bound);
            }
            None => success.push(
                Element::new("authorization-identifier", ns::SASL2).with_text(bare.to_string()),
            ),
        }
        for t in tail {
            success.push(t);
        }
        self.queue_element(&success);
        self.flush().await.map_err(io_error)?;
        Ok(Flow::Continue)
    }

    /// XEP-0386: binds a resource made from the client's tag (stable per user-agent, so a
    /// reconnecting device replaces its own old session), then carbons, the CSI state and
    /// stream management as asked; returns `<bound/>`.
    async fn bind2(
        &mut self,
        request: &Element,
        bare: &BareJid,
        user_agent: Option<&str>,
    ) -> Result<Element, StreamError> {
        let tag = request
            .child("tag", ns::BIND2)
            .map(|t| t.text().trim().to_owned())
            .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TAG && !t.contains('/'));
        let suffix = match user_agent {
            Some(id) => {
                ring::digest::digest(&ring::digest::SHA256, format!("{id}\0{bare}").as_bytes())
                    .as_ref()[..4]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }
            None => crate::util::random_hex(4),
        };
        let jid = tag
            .and_then(|t| bare.with_resource(&format!("{t}.{suffix}")).ok())
            .or_else(|| {
                user_agent.and_then(|_| bare.with_resource(&format!("roost-{suffix}")).ok())
            })
            .unwrap_or_else(|| generated_resource(bare));
        self.bind_jid(jid.clone()).await?;
        let mut bound = Element::new("bound", ns::BIND2);
        if request.child("enable", ns::CARBONS).is_some() {
            crate::modules::carbons::enable_inline(&self.server, &jid, self.id);
        }
        if request.child("inactive", ns::CSI).is_some() {
            self.inactive = true;
        }
        if let Some(enable) = request.child("enable", ns::SM) {
            let enabled = self.sm_enable(enable);
            bound.push(enabled);
        }
        Ok(bound)
    }
}
