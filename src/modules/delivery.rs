//! What happens to a message once routing (RFC 6121 §8.5, `message.rs`) has accepted it for
//! a local account: the §8.5.2 rules for a bare JID ([`bare_rule`], [`choose`]), XEP-0313
//! archiving for the sender's and the recipient's account, the
//! XEP-0359 stanza-id on the recipient's copy, the hand-off to the recipient's sessions or
//! to offline storage (XEP-0160), and the XEP-0280 carbon copies.
//!
//! [`deliver`] is the one place where a routed message is handed to sessions' queues, and
//! [`store_offline`] the one place where it is stored for later; both write the archive
//! first (with the offline copy in one transaction), so that an id a client sees is always
//! in the archive. A message the chosen sessions refuse because they are going away
//! (XEP-0198) is routed again here, never archived twice.

use super::{account_key, archive, carbons, Ctx};
use crate::jid::{BareJid, FullJid};
use crate::router::Core;
use crate::session::SessionHandle;
use crate::stanza::MessageType;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

/// What to do with a message for a local bare JID (RFC 6121 §8.5.2), given the priorities
/// of the account's available resources. Pure, so that the rules are tested as a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BareRule {
    /// Deliver to these resources (indexes into the priorities given).
    Deliver(Vec<usize>),
    /// Store offline (chat and normal with no resource of non-negative priority).
    Offline,
    /// Answer the sender with `service-unavailable`.
    Reject,
    /// Drop silently.
    Drop,
}

/// RFC 6121 §8.5.2.1.1 / §8.5.2.2.1 for an existing account.
pub fn bare_rule(ty: MessageType, priorities: &[i8]) -> BareRule {
    bare_rule_of(ty, priorities.iter().copied())
}

/// [`bare_rule`] over the priorities as an iterator, so that the router's table can be read
/// without copying it; allocates only the indexes it returns.
fn bare_rule_of(ty: MessageType, priorities: impl Iterator<Item = i8> + Clone) -> BareRule {
    // Only non-negative priorities are eligible.
    let Some(highest) = priorities.clone().filter(|&p| p >= 0).max() else {
        return match ty {
            MessageType::Groupchat => BareRule::Reject,
            MessageType::Headline | MessageType::Error => BareRule::Drop,
            MessageType::Chat | MessageType::Normal => BareRule::Offline,
        };
    };
    let indexes = |keep: &dyn Fn(i8) -> bool| -> Vec<usize> {
        priorities
            .clone()
            .enumerate()
            .filter(|&(_, p)| keep(p))
            .map(|(i, _)| i)
            .collect()
    };
    match ty {
        MessageType::Groupchat => BareRule::Reject,
        MessageType::Headline => BareRule::Deliver(indexes(&|p| p >= 0)),
        MessageType::Error => BareRule::Deliver(
            priorities
                .clone()
                .position(|p| p == highest)
                .into_iter()
                .collect(),
        ),
        MessageType::Chat | MessageType::Normal => BareRule::Deliver(indexes(&|p| p == highest)),
    }
}

/// What to do with a message of type `ty` for `account` (RFC 6121 §8.5.2) and the sessions
/// it goes to, read from the router in place; `None` if the account has no available
/// resource at all.
pub(super) fn choose(
    core: &Core,
    account: &BareJid,
    ty: MessageType,
) -> Option<(BareRule, Vec<SessionHandle>)> {
    core.sessions.with_resources(account, |all| {
        let available = || all.iter().filter(|r| r.is_available());
        available().next()?;
        let rule = bare_rule_of(ty, available().map(|r| r.priority));
        let sessions = match &rule {
            BareRule::Deliver(idx) => available()
                .enumerate()
                .filter(|(i, _)| idx.contains(i))
                .map(|(_, r)| r.handle.clone())
                .collect(),
            _ => Vec::new(),
        };
        Some((rule, sessions))
    })
}

/// Stores a message for `account` as it is (no archive); false when its offline storage
/// is full.
pub(super) async fn keep_offline(
    core: &Core,
    account: &BareJid,
    message: &Element,
) -> Result<bool, crate::storage::StorageError> {
    let (host, user) = account_key(account);
    let stamp = crate::util::datetime::now();
    let text = message.to_client_string();
    let limit = core.config.offline_limit;
    core.storage
        .call(move |c| crate::storage::offline::store(c, &host, &user, &stamp, &text, limit))
        .await
}

/// The message as the recipient gets it: with the stanza-id of the recipient's archive,
/// without the carbons `<private/>` marker.
fn recipient_copy(mut message: Element, to: &BareJid, id: Option<&str>) -> Element {
    carbons::strip_private(&mut message);
    archive::stamp(message, to, id)
}

/// Archives `message` and hands it to `sessions` (resources of `to`), then sends carbons.
pub async fn deliver(
    ctx: &mut Ctx<'_>,
    message: Element,
    to: &BareJid,
    sessions: Vec<SessionHandle>,
) {
    let sender = ctx.from.clone();
    let local = ctx.session().is_some();
    let archived = match archive::plan(&message, &sender, to, local) {
        Some(plan) => {
            match archive::archive(ctx.core, plan).await {
                Ok(a) => a,
                Err(e) => {
                    // Delivering without archiving beats losing the message.
                    log::error!("archive: storing a message failed: {e}");
                    archive::Archived::default()
                }
            }
        }
        None => archive::Archived::default(),
    };
    // Without carbons to send, the message is moved into its last recipient, not copied.
    let copy_carbons = carbons::eligible(&message) && carbons::any_wanted(ctx.core, &sender, to);
    let (received, sent) = if copy_carbons {
        let received = recipient_copy(message.clone(), to, archived.recipient.as_deref());
        (received, Some(message))
    } else {
        (
            recipient_copy(message, to, archived.recipient.as_deref()),
            None,
        )
    };
    let mut kept = Some(received);
    let mut delivered: Vec<FullJid> = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let Some(m) = kept.take() else { break };
        let copy = if i + 1 == sessions.len() && !copy_carbons {
            m
        } else {
            kept.insert(m).clone()
        };
        match s.deliver(copy) {
            Ok(()) => delivered.push(s.jid.clone()),
            // Refused (going away): keep it in case every session refuses.
            Err(back) => kept = Some(back),
        }
    }
    if let Some(received) = kept {
        if delivered.is_empty() && !sessions.is_empty() {
            // Every chosen session was going away: route the message again, without
            // archiving it twice.
            delivered = reroute(ctx, &received, to, &sessions).await;
        }
        if let Some(message) = sent {
            let sent = archive::stamp(message, &sender.to_bare(), archived.sender.as_deref());
            carbons::copy(ctx.core, &sent, &received, &sender, to, &delivered);
        }
    }
}

/// A message (already archived) that the sessions `gone` refused because they were going
/// away (XEP-0198 hands on what a session never delivered, not what it refused): as to an
/// unconnected resource (RFC 6121 §8.5.3.2.1), chat and normal messages go to the account's
/// other available resources or to offline storage; groupchat bounces; the rest is dropped.
/// Returns who got it.
async fn reroute(
    ctx: &mut Ctx<'_>,
    message: &Element,
    to: &BareJid,
    gone: &[SessionHandle],
) -> Vec<FullJid> {
    let ty = MessageType::of(message);
    match ty {
        MessageType::Chat | MessageType::Normal => {}
        MessageType::Groupchat => {
            ctx.reply_error(message, StanzaCondition::ServiceUnavailable.into());
            return Vec::new();
        }
        MessageType::Error | MessageType::Headline => return Vec::new(),
    }
    let resources: Vec<_> = ctx
        .core
        .sessions
        .available(to)
        .into_iter()
        .filter(|r| gone.iter().all(|g| g.id != r.handle.id))
        .collect();
    let priorities: Vec<i8> = resources.iter().map(|r| r.priority).collect();
    if let BareRule::Deliver(idx) = bare_rule(ty, &priorities) {
        let got: Vec<FullJid> = idx
            .into_iter()
            .filter(|&i| resources[i].handle.send(message.clone()))
            .map(|i| resources[i].handle.jid.clone())
            .collect();
        if !got.is_empty() {
            return got;
        }
    }
    match keep_offline(ctx.core, to, message).await {
        Ok(true) => {
            ctx.core
                .emit(crate::router::Event::StoredOffline { to, message })
                .await
        }
        Ok(false) => ctx.reply_error(message, offline_full()),
        Err(e) => ctx.reply_error(message, super::storage_failed(e)),
    }
    Vec::new()
}

fn offline_full() -> StanzaError {
    StanzaError::with_text(
        StanzaCondition::ServiceUnavailable,
        "the recipient's offline storage is full",
    )
}

/// True for the copies the server makes of messages for an account's own resources — XEP-0280
/// carbons and XEP-0313 archive results, from the account's bare JID: a session that ends
/// without delivering one drops it (the original went its own way; the query is over)
/// instead of handing it on as undelivered.
pub fn is_server_copy(stanza: &Element) -> bool {
    let from_account = stanza
        .attr("from")
        .and_then(|f| crate::jid::Jid::parse(f).ok())
        .is_some_and(|j| j.is_bare() && j.node().is_some());
    from_account
        && (stanza.child("sent", carbons::NS).is_some()
            || stanza.child("received", carbons::NS).is_some()
            || stanza.child("result", crate::stanza::mam::NS).is_some())
}

/// Stores `message` for `to`, which has no resource to deliver it to (RFC 6121 §8.5.2.1.1),
/// archived in the same transaction; a full offline store bounces it with
/// `service-unavailable` and archives nothing. Then sends carbons.
pub async fn store_offline(ctx: &mut Ctx<'_>, message: Element, to: &BareJid) {
    let sender = ctx.from.clone();
    let plan = archive::plan(&message, &sender, to, ctx.session().is_some());
    let (host, user) = account_key(to);
    let stamp = crate::util::datetime::now();
    let now = crate::util::datetime::unix_now();
    let limit = ctx.core.config.offline_limit;
    let (recipient, original) = (to.clone(), message.clone());
    let stored = ctx
        .core
        .storage
        .call(move |c| {
            let tx = c.savepoint()?;
            if crate::storage::offline::count(&tx, &host, &user)? >= limit {
                return Ok(None);
            }
            let archived = match &plan {
                Some(p) => archive::commit(&tx, p, now)?,
                None => archive::Archived::default(),
            };
            let copy = recipient_copy(original, &recipient, archived.recipient.as_deref());
            let text = copy.to_client_string();
            crate::storage::offline::store(&tx, &host, &user, &stamp, &text, limit)?;
            tx.commit()?;
            Ok(Some((archived, copy)))
        })
        .await;
    match stored {
        Ok(Some((archived, received))) => {
            ctx.core
                .emit(crate::router::Event::StoredOffline {
                    to,
                    message: &received,
                })
                .await;
            if carbons::eligible(&message) {
                let sent = archive::stamp(message, &sender.to_bare(), archived.sender.as_deref());
                carbons::copy(ctx.core, &sent, &received, &sender, to, &[]);
            }
        }
        Ok(None) => ctx.reply_error(&message, offline_full()),
        Err(e) => ctx.reply_error(&message, super::storage_failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6121_8_5_2_bare_jid_rules() {
        use BareRule::*;
        use MessageType::*;
        // (type, priorities of available resources) → rule
        let table: &[(MessageType, &[i8], BareRule)] = &[
            (Chat, &[], Offline),
            (Normal, &[], Offline),
            (Chat, &[-1], Offline),
            (Normal, &[-5, -1], Offline),
            (Chat, &[0], Deliver(vec![0])),
            (Chat, &[1, 5, 5, -1], Deliver(vec![1, 2])),
            (Normal, &[3, 1], Deliver(vec![0])),
            (Chat, &[-1, 0], Deliver(vec![1])),
            (Headline, &[], Drop),
            (Headline, &[-1], Drop),
            (Headline, &[1, 0, -1], Deliver(vec![0, 1])),
            (Groupchat, &[5], Reject),
            (Groupchat, &[], Reject),
            (Error, &[], Drop),
            (Error, &[2, 7, 7], Deliver(vec![1])),
        ];
        for (ty, prios, want) in table {
            assert_eq!(&bare_rule(*ty, prios), want, "{ty:?} {prios:?}");
        }
    }

    use crate::jid::Jid;
    use crate::xml::parse::{parse_element, Scope};

    /// A message whose chosen session is going away (its queue gone, as when XEP-0198
    /// hands a closing session's stanzas on) is archived once and kept offline, with the
    /// archive id.
    #[test]
    fn a_message_refused_by_a_closing_session_goes_offline_archived_once() {
        let dir = tempfile::tempdir().unwrap();
        let core = crate::modules::test_core(crate::config::Config {
            data_dir: dir.path().to_path_buf(),
            ..crate::config::Config::default()
        });
        {
            let conn = crate::storage::open_connection(dir.path()).unwrap();
            let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
            for u in ["kid", "mom"] {
                crate::storage::accounts::create(&conn, "localhost", u, &creds).unwrap();
            }
        }
        let kid = FullJid::parse("kid@localhost/phone").unwrap();
        let mom = FullJid::parse("mom@localhost/pc").unwrap();
        let (kid_handle, _kid_queue) = SessionHandle::new(1, kid.clone());
        let (mom_handle, mom_queue) = SessionHandle::new(2, mom.clone());
        drop(mom_queue);
        core.sessions.bind(mom_handle.clone(), Vec::new());
        let message = parse_element(
            &Scope::client(),
            b"<message to='mom@localhost/pc' from='kid@localhost/phone' type='chat'>\
              <body>bye</body></message>",
        )
        .unwrap();
        let origin = crate::router::Origin::Client(kid_handle);
        let mut replies = Vec::new();
        let mut ctx = Ctx::new(&core, &origin, Jid::Full(kid), &mut replies);
        smol::block_on(deliver(&mut ctx, message, &mom.bare(), vec![mom_handle]));
        assert!(replies.is_empty(), "no error for the sender: {replies:?}");
        let (offline, archived) = smol::block_on(core.storage.call(|c| {
            Ok((
                crate::storage::offline::load(c, "localhost", "mom")?,
                (
                    crate::storage::archive::count(c, "localhost", "mom")?,
                    crate::storage::archive::count(c, "localhost", "kid")?,
                ),
            ))
        }))
        .unwrap();
        assert_eq!(archived, (1, 1));
        assert_eq!(offline.len(), 1);
        let kept = parse_element(&Scope::client(), offline[0].stanza.as_bytes()).unwrap();
        let ids = crate::stanza::sid::stanza_ids(&kept);
        assert_eq!(ids.len(), 1, "{kept}");
        assert_eq!(ids[0].0, "mom@localhost");
        core.storage.close();
    }
}
