//! XEP-0077 In-Band Registration on a logged-in stream: the account's registration (`get`),
//! a password change and the removal of the account (`set`, §3.2–§3.3). Registration before
//! login (with XEP-0445's preauth token) is part of the stream negotiation
//! (`c2s::register`); the per-address limit of open registration is kept here.

use super::{storage_failed, Ctx, Iq, IqResult, Target};
use crate::ns;
use crate::sasl::StoredCredentials;
use crate::stanza::{StanzaCondition, StanzaError, StreamCondition, StreamError};
use crate::xml::Element;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// When each address last registered an account without an invitation.
#[derive(Default)]
pub struct OpenLimit {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl OpenLimit {
    /// Takes `ip`'s turn if it has not registered within `interval`; false if it has.
    pub fn take(&self, ip: IpAddr, interval: std::time::Duration) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget addresses whose turn came back: the map stays as small as the traffic.
        last.retain(|_, at| now.duration_since(*at) < interval);
        if last.contains_key(&ip) {
            return false;
        }
        last.insert(ip, now);
        true
    }

    /// Gives a turn back (the registration failed after all).
    pub fn give_back(&self, ip: IpAddr) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// The registration form (XEP-0077 §3.1): instructions, username and password.
pub fn form(instructions: &str) -> Element {
    Element::new("query", ns::REGISTER)
        .with_child(Element::new("instructions", ns::REGISTER).with_text(instructions))
        .with_child(Element::new("username", ns::REGISTER))
        .with_child(Element::new("password", ns::REGISTER))
}

/// The username and password of a registration or password change, checked: a username
/// that is not a valid localpart is `jid-malformed`, a missing field or an empty password
/// `not-acceptable` (XEP-0077 §3.1).
pub fn fields(query: &Element) -> Result<(String, String), StanzaError> {
    let text = |name: &str| query.child(name, ns::REGISTER).map(|e| e.text());
    let (Some(user), Some(password)) = (text("username"), text("password")) else {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "give a username and a password",
        ));
    };
    if user.trim().is_empty() {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "the username is empty",
        ));
    }
    let user = crate::jid::nodeprep(&user).map_err(|e| {
        StanzaError::with_text(
            StanzaCondition::JidMalformed,
            format!("that username cannot be an address: {e}"),
        )
    })?;
    if password.is_empty() {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "the password is empty",
        ));
    }
    Ok((user, password))
}

/// After a registration (in-band or on the landing page), once committed: the running
/// server learns the new account's role, and the roster items its circles and a contact
/// invitation wrote are pushed to the accounts' connected clients; circle rooms reload.
pub async fn registered(
    core: &std::sync::Arc<crate::router::Core>,
    done: crate::invite::Registered,
) {
    done.notices.apply(core).await;
}

/// Derives SCRAM credentials off the executor (PBKDF2 takes milliseconds on a Pi).
pub async fn derive(password: String, iterations: u32) -> StoredCredentials {
    smol::unblock(move || StoredCredentials::derive(&password, iterations)).await
}

/// Only one's own registration, addressed to the server or to oneself.
fn own(ctx: &Ctx<'_>, iq: &Iq<'_>) -> Result<(String, String), StanzaError> {
    match &iq.target {
        Target::Account(a) if *a != ctx.bare_jid() => {
            Err(StanzaCondition::ServiceUnavailable.into())
        }
        _ => {
            ctx.local()?;
            let me = ctx.bare_jid();
            Ok((
                me.domain().to_owned(),
                me.node().unwrap_or_default().to_owned(),
            ))
        }
    }
}

/// `get`: the account is registered (XEP-0077 §3.1, Example 4).
pub async fn get(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (_, user) = own(ctx, iq)?;
    Ok(Some(
        Element::new("query", ns::REGISTER)
            .with_child(Element::new("registered", ns::REGISTER))
            .with_child(Element::new("username", ns::REGISTER).with_text(user)),
    ))
}

/// `set`: `<remove/>` deletes the account and everything stored for it, as `roost
/// deluser` does, then ends its sessions (§3.2); `<username/><password/>` changes the
/// password, revokes the account's FAST tokens and ends its other sessions (§3.3).
pub async fn set(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own(ctx, iq)?;
    let me = ctx.bare_jid();
    let this = ctx.local()?.id;
    if iq.payload.child("remove", ns::REGISTER).is_some() {
        if iq.payload.elements().count() != 1 {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "<remove/> comes alone",
            ));
        }
        let data_dir = ctx.core.config.data_dir.clone();
        let (h, u) = (host.clone(), user.clone());
        let uploads = ctx
            .core
            .storage
            .call(move |c| {
                let ids = crate::storage::uploads::ids_of(c, &h, &u)?;
                match crate::storage::accounts::delete(c, &h, &u) {
                    Ok(()) => Ok(ids),
                    Err(crate::storage::accounts::AccountError::Storage(e)) => Err(e),
                    // Gone already (another session removed it): nothing left to do.
                    Err(_) => Ok(Vec::new()),
                }
            })
            .await
            .map_err(storage_failed)?;
        crate::upload::remove_files(&data_dir, &uploads);
        log::info!("{me}: account removed by its owner (XEP-0077)");
        // After the result, which goes out first: this session's queue is read after the
        // replies to this stanza are written.
        for r in ctx.core.sessions.resources(&me) {
            r.handle.close(StreamError::with_text(
                StreamCondition::NotAuthorized,
                "this account was removed",
            ));
        }
        return Ok(None);
    }
    let (name, password) = fields(iq.payload)?;
    if name != user {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAllowed,
            "only your own password can be changed",
        ));
    }
    let creds = derive(password, ctx.core.config.scram_iterations).await;
    ctx.core
        .storage
        .call(
            move |c| match crate::storage::accounts::set_credentials(c, &host, &user, &creds) {
                Ok(()) => Ok(true),
                Err(crate::storage::accounts::AccountError::Storage(e)) => Err(e),
                Err(_) => Ok(false),
            },
        )
        .await
        .map_err(storage_failed)?
        .then_some(())
        .ok_or(StanzaCondition::RegistrationRequired)?;
    log::info!("{me}: password changed by its owner (XEP-0077)");
    // The account's other clients must log in with the new password.
    for r in ctx.core.sessions.resources(&me) {
        if r.handle.id != this {
            r.handle.close(crate::kick::stream_error(
                crate::storage::kicks::Reason::Password,
            ));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_registers_once_per_interval() {
        let l = OpenLimit::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let minute = std::time::Duration::from_secs(60);
        assert!(l.take(a, minute));
        assert!(!l.take(a, minute));
        assert!(l.take(b, minute));
        l.give_back(a);
        assert!(l.take(a, minute));
        assert!(l.take(a, std::time::Duration::ZERO), "interval over");
    }

    #[test]
    fn fields_are_checked() {
        let q = |xml: &str| {
            crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), xml.as_bytes())
                .unwrap()
        };
        let cond = |r: Result<(String, String), StanzaError>| r.unwrap_err().condition;
        assert_eq!(
            fields(&q("<query xmlns='jabber:iq:register'><username>Kid</username><password>p</password></query>")).unwrap(),
            ("kid".to_owned(), "p".to_owned())
        );
        assert_eq!(
            cond(fields(&q("<query xmlns='jabber:iq:register'><username>a b</username><password>p</password></query>"))),
            StanzaCondition::JidMalformed
        );
        assert_eq!(
            cond(fields(&q(
                "<query xmlns='jabber:iq:register'><username>kid</username><password/></query>"
            ))),
            StanzaCondition::NotAcceptable
        );
        assert_eq!(
            cond(fields(&q(
                "<query xmlns='jabber:iq:register'><username>kid</username></query>"
            ))),
            StanzaCondition::NotAcceptable
        );
    }
}
