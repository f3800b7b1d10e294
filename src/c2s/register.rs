//! XEP-0077 In-Band Registration before login, with XEP-0445's pre-authentication: a
//! client presents an invitation token (`<preauth xmlns='urn:xmpp:pars:0' token='…'/>`),
//! asks for the form and registers a username and password; then it logs in with SASL on
//! the same stream. Without a token only `--open-registration` lets it register, one
//! account per address per `registration_interval`.
//!
//! Every refused step counts as a failed authentication (five end the stream), so a client
//! cannot try tokens or usernames without end.

use super::connection::{Connection, Flow};
use crate::invite::{Presented, RegisterError};
use crate::ns;
use crate::stanza::{IqType, StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::storage::invites::Status;
use crate::xml::Element;

/// Refused registration steps tolerated on one connection (with failed logins).
const MAX_FAILURES: u32 = 5;

impl Connection {
    /// An IQ before login: the preauth token, or the registration form and its submission.
    /// Anything else is a stream error, as before.
    pub(super) async fn on_register_iq(&mut self, iq: Element) -> Result<Flow, StreamError> {
        let ty = IqType::of(&iq);
        let payload = iq.first_element().cloned();
        let outcome = match (ty, payload) {
            (Some(IqType::Set), Some(p)) if p.is("preauth", ns::PARS) => self.preauth(&p).await,
            (Some(IqType::Get), Some(p)) if p.is("query", ns::REGISTER) => {
                Ok(Some(crate::modules::register::form(
                    if self.preauth.is_some() || self.server.config.open_registration {
                        "Choose a username and a password."
                    } else {
                        "This server registers accounts with an invitation only: open the \
                         invitation link you were sent, or scan its code with your app."
                    },
                )))
            }
            (Some(IqType::Set), Some(p)) if p.is("query", ns::REGISTER) => self.register(&p).await,
            _ => {
                return Err(StreamError::with_text(
                    StreamCondition::NotAuthorized,
                    "authenticate first",
                ))
            }
        };
        match outcome {
            Ok(payload) => self.reply_result(&iq, payload).await?,
            Err(err) => {
                self.auth_failures += 1;
                self.reply_error(&iq, err).await?;
                if self.auth_failures >= MAX_FAILURES {
                    return Err(StreamError::with_text(
                        StreamCondition::PolicyViolation,
                        "too many failed attempts",
                    ));
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// XEP-0445 §5: checks the token now (expiry counts at this moment), keeps it for the
    /// registration; nothing is used up yet.
    async fn preauth(&mut self, p: &Element) -> Result<Option<Element>, StanzaError> {
        let invalid = || {
            StanzaError::with_text(
                StanzaCondition::ItemNotFound,
                "the invitation is unknown, used up or expired",
            )
        };
        let token = p.attr("token").unwrap_or("");
        if !crate::invite::token_shaped(token) {
            return Err(invalid());
        }
        let key = crate::invite::key(token);
        let now = crate::util::datetime::unix_now();
        let (host, k) = (self.server.domain.clone(), key.clone());
        let status = self
            .server
            .storage
            .call(move |c| crate::storage::invites::status(c, &host, &k, now))
            .await
            .map_err(crate::modules::storage_failed)?;
        match status {
            Status::Valid(_) => {
                log::info!("c2s:{} presented a valid invitation", self.id);
                self.preauth = Some(Box::new(Presented { key, at: now }));
                Ok(None)
            }
            _ => Err(invalid()),
        }
    }

    /// XEP-0077 §3.1: creates the account (see `invite::register`).
    async fn register(&mut self, query: &Element) -> Result<Option<Element>, StanzaError> {
        if query.child("remove", ns::REGISTER).is_some() {
            return Err(StanzaError::with_text(
                StanzaCondition::NotAuthorized,
                "log in to remove your account",
            ));
        }
        let (user, password) = crate::modules::register::fields(query)?;
        let open = self.server.config.open_registration;
        let limit = self.server.state::<crate::modules::register::OpenLimit>();
        let ip = self.peer.ip();
        let token = self.preauth.take();
        match &token {
            Some(_) => {}
            None if !open => {
                return Err(StanzaError::with_text(
                    StanzaCondition::NotAllowed,
                    "this server registers accounts with an invitation only",
                ))
            }
            None => {
                if !limit.take(ip, self.server.config.registration_interval) {
                    return Err(StanzaError::with_text(
                        StanzaCondition::PolicyViolation,
                        format!(
                            "one new account per address every {} minutes: try again later",
                            self.server
                                .config
                                .registration_interval
                                .as_secs()
                                .div_ceil(60)
                        ),
                    ));
                }
            }
        }
        let creds =
            crate::modules::register::derive(password, self.server.config.scram_iterations).await;
        let host = self.server.domain.clone();
        let (h, u) = (host.clone(), user.clone());
        let presented = token.as_deref().map(|p| Presented {
            key: p.key.clone(),
            at: p.at,
        });
        let result = self
            .server
            .storage
            .call(move |c| {
                Ok(crate::invite::register(
                    c,
                    &h,
                    &u,
                    &creds,
                    presented.as_ref(),
                ))
            })
            .await
            .map_err(crate::modules::storage_failed)?;
        match result {
            Ok(done) => {
                log::info!(
                    "c2s:{} registered {user}@{host}{}",
                    self.id,
                    match &done.invite {
                        Some(i) => format!(" with the invitation {}", i.id()),
                        None => " (open registration)".into(),
                    }
                );
                crate::modules::register::registered(&self.server, done).await;
                Ok(None)
            }
            Err(e) => {
                if token.is_none() {
                    limit.give_back(ip);
                }
                Err(match e {
                    RegisterError::Conflict => {
                        // The invitation is still good for another name.
                        self.preauth = token;
                        StanzaError::with_text(
                            StanzaCondition::Conflict,
                            "that username is taken: choose another",
                        )
                    }
                    RegisterError::Invite => StanzaError::with_text(
                        StanzaCondition::Forbidden,
                        "the invitation is used up or has expired",
                    ),
                    RegisterError::Storage(e) => crate::modules::storage_failed(e),
                })
            }
        }
    }
}
