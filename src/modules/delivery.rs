//! What happens to a message once routing (RFC 6121 §8.5, `message.rs`) has accepted it for
//! a local account: XEP-0313 archiving for the sender's and the recipient's account, the
//! XEP-0359 stanza-id on the recipient's copy, the hand-off to the recipient's sessions or
//! to offline storage (XEP-0160), and the XEP-0280 carbon copies.
//!
//! [`deliver`] is the one place where a routed message is handed to sessions' queues, and
//! [`store_offline`] the one place where it is stored for later; both write the archive
//! first, in the same storage call as the offline copy, so that an id a client sees is
//! always in the archive.

use super::{account_key, archive, carbons, Ctx};
use crate::jid::{BareJid, FullJid};
use crate::session::SessionHandle;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

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
    let sender = ctx.full_jid().clone();
    let archived = match archive::plan(&message, &sender, to) {
        Some(plan) => {
            let now = crate::datetime::unix_now();
            match ctx
                .server
                .storage
                .call(move |c| archive::commit(c, &plan, now))
                .await
            {
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
    let copy_carbons = carbons::eligible(&message);
    let received = recipient_copy(message.clone(), to, archived.recipient.as_deref());
    let delivered: Vec<FullJid> = sessions.iter().map(|s| s.jid.clone()).collect();
    for s in &sessions {
        s.send(received.clone());
    }
    if copy_carbons {
        let sent = archive::stamp(message, &sender.bare(), archived.sender.as_deref());
        carbons::copy(ctx.server, &sent, &received, &sender, to, &delivered);
    }
}

/// Stores `message` for `to`, which has no resource to deliver it to (RFC 6121 §8.5.2.1.1),
/// archived in the same transaction; a full offline store bounces it with
/// `service-unavailable` and archives nothing. Then sends carbons.
pub async fn store_offline(ctx: &mut Ctx<'_>, message: Element, to: &BareJid) {
    let sender = ctx.full_jid().clone();
    let plan = archive::plan(&message, &sender, to);
    let (host, user) = account_key(to);
    let stamp = crate::datetime::now();
    let now = crate::datetime::unix_now();
    let limit = ctx.server.config.offline_limit;
    let (recipient, original) = (to.clone(), message.clone());
    let stored = ctx
        .server
        .storage
        .call(move |c| {
            let tx = c.transaction()?;
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
            if carbons::eligible(&message) {
                let sent = archive::stamp(message, &sender.bare(), archived.sender.as_deref());
                carbons::copy(ctx.server, &sent, &received, &sender, to, &[]);
            }
        }
        Ok(None) => ctx.reply_error(
            &message,
            StanzaError::with_text(
                StanzaCondition::ServiceUnavailable,
                "the recipient's offline storage is full",
            ),
        ),
        Err(e) => ctx.reply_error(&message, super::storage_failed(e)),
    }
}
