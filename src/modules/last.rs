//! XEP-0012 Last Activity: the server's uptime on its domain ("Server and Component Query"),
//! and on an account's bare JID how long ago the account logged out, with the status it left
//! ("Offline User Query"), only to those allowed to see its presence.

use super::{account_key, storage_failed, Ctx, Iq, IqResult, Target};
use crate::jid::BareJid;
use crate::ns;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

/// `<query xmlns='jabber:iq:last' seconds='…'>status</query>`.
pub fn query(seconds: u64, status: &str) -> Element {
    let q = Element::new("query", ns::LAST).with_attr("seconds", seconds.to_string());
    if status.is_empty() {
        q
    } else {
        q.with_text(status)
    }
}

/// Answers a last activity query to the domain or to an account.
pub async fn handle(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let account = match &iq.target {
        // A server answers with its uptime, and no text.
        Target::Host => return Ok(Some(query(ctx.core.started.elapsed().as_secs(), ""))),
        Target::Account(b) => b.clone(),
    };
    let requester = ctx.bare_jid();
    if account != requester && !may_see_presence(ctx, &account, &requester).await? {
        // "MUST NOT return last activity information to an entity that is not
        // authorized to view the user's presence information", with `forbidden`.
        return Err(StanzaCondition::Forbidden.into());
    }
    let available = ctx
        .core
        .sessions
        .resources(&account)
        .iter()
        .any(|r| r.is_available());
    let seen = if available {
        None
    } else {
        let (host, user) = account_key(&account);
        ctx.core
            .storage
            .call(move |c| crate::storage::lastact::get(c, &host, &user))
            .await
            .map_err(storage_failed)?
    };
    account_last(available, seen, crate::util::datetime::unix_now())
}

/// The answer for an account: `available` if it has an available resource, else when it was
/// last seen going offline (Unix time) and its status then.
pub fn account_last(available: bool, seen: Option<(i64, String)>, now: i64) -> IqResult {
    if available {
        // Online: an empty query with `seconds='0'`, as the XEP asks.
        return Ok(Some(query(0, "")));
    }
    match seen {
        // A clock stepped backwards must not make a negative (invalid) xs:unsignedLong.
        Some((at, status)) => Ok(Some(query(now.saturating_sub(at).max(0) as u64, &status))),
        // Never logged out since last activity was recorded. XEP-0012 does not say what to
        // answer; `seconds='0'` (Prosody) would claim the account is online, and
        // `service-unavailable` (ejabberd) would contradict our disco#info. Nothing is known,
        // so: `item-not-found`, the condition for "no such information" (RFC 6120 §8.3.3.7).
        None => Err(StanzaError::with_text(
            StanzaCondition::ItemNotFound,
            "this account has not been seen going offline",
        )),
    }
}

/// True if `requester` may see `account`'s presence: `account`'s roster has a subscription
/// `from` (or `both`) for it. That item is the account's own record of whom it approved
/// (RFC 6121 §3.1.4), and the one presence broadcasts follow (§4.2.2).
async fn may_see_presence(
    ctx: &Ctx<'_>,
    account: &BareJid,
    requester: &BareJid,
) -> Result<bool, StanzaError> {
    let (host, user) = account_key(account);
    let contact = requester.to_string();
    let item = ctx
        .core
        .storage
        .call(move |c| crate::storage::roster::item(c, &host, &user, &contact))
        .await
        .map_err(storage_failed)?;
    Ok(item.is_some_and(|i| i.state.is_from()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(r: IqResult) -> StanzaCondition {
        r.unwrap_err().condition
    }

    #[test]
    fn serializes_seconds_and_status() {
        assert_eq!(
            query(903, "Heading Home").to_client_string(),
            "<query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>"
        );
        assert_eq!(
            query(0, "").to_client_string(),
            "<query xmlns='jabber:iq:last' seconds='0'/>"
        );
    }

    #[test]
    fn available_accounts_are_active_now() {
        let q = account_last(true, Some((10, "gone".into())), 1000)
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("0"));
        assert_eq!(q.text(), "");
        let q = account_last(true, None, 1000).unwrap().unwrap();
        assert_eq!(q.attr("seconds"), Some("0"));
    }

    #[test]
    fn offline_accounts_report_time_since_logout_and_status() {
        let q = account_last(false, Some((97, "Heading Home".into())), 1000)
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("903"));
        assert_eq!(q.text(), "Heading Home");
        // Clock stepped back: zero, never negative.
        let q = account_last(false, Some((2000, String::new())), 1000)
            .unwrap()
            .unwrap();
        assert_eq!(q.attr("seconds"), Some("0"));
    }

    #[test]
    fn never_seen_is_item_not_found() {
        assert_eq!(
            cond(account_last(false, None, 1000)),
            StanzaCondition::ItemNotFound
        );
    }
}
