//! Messages (RFC 6121 §5, §8.5): delivery to a full JID, to the highest-priority available
//! resources of a bare JID, and offline storage (XEP-0160) with XEP-0203 delay stamps when
//! no resource of non-negative priority is available. What happens once a message is
//! accepted (archive, stanza-id, hand-off, carbons) is in `delivery`.

use super::delivery::{bare_rule, choose, BareRule};
use super::Ctx;
use super::{account_key, storage_failed};
use crate::jid::{BareJid, Jid};
use crate::router::{send_to, Core, Dest, Event, SessionSet};
use crate::session::SessionHandle;
use crate::stanza::{IqType, MessageType, StanzaCondition, StanzaError};
use crate::xml::Element;
use std::sync::Arc;

/// Routes a message from the session in `ctx`.
pub async fn route(ctx: &mut Ctx<'_>, mut message: Element, dest: Dest) {
    super::archive::strip_forged_ids(&ctx.core.domain, &mut message);
    let ty = MessageType::of(&message);
    let target = match dest {
        // RFC 6120 §10.3.1 / RFC 6121 §8.5.1: no `to` is the sender's own bare JID.
        Dest::None if ctx.session().is_some() => Jid::Bare(ctx.bare_jid()),
        Dest::Bare(b) => Jid::Bare(b),
        Dest::Full(f) => Jid::Full(f),
        Dest::Remote(to) => return to_remote(ctx, message, to).await,
        Dest::None | Dest::Host | Dest::HostResource | Dest::Service(_) => {
            crate::router::unhandled(ctx, &message);
            return;
        }
    };
    let recipient = target.to_bare();
    if let Jid::Full(full) = &target {
        if let Some(h) = ctx.core.sessions.get(full) {
            super::delivery::deliver(ctx, message, &recipient, vec![h]).await;
            return;
        }
        // RFC 6121 §8.5.3.2.1: an unconnected full JID.
        match ty {
            MessageType::Chat | MessageType::Normal => {}
            MessageType::Groupchat => {
                ctx.reply_error(&message, StanzaCondition::ServiceUnavailable.into());
                return;
            }
            MessageType::Headline | MessageType::Error => return,
        }
    }
    to_bare(ctx, message, ty, &recipient).await;
}

/// A message for another domain: archived for a local sender, copied to its other
/// resources (carbons), and handed to the router's exit.
async fn to_remote(ctx: &mut Ctx<'_>, message: Element, to: Jid) {
    // A limited account's message is refused before it is archived or copied.
    if ctx.session().is_some() && !crate::roles::of(ctx.core, &ctx.bare_jid()).may_federate() {
        if crate::stanza::MessageType::of(&message) != crate::stanza::MessageType::Error {
            ctx.reply_error(
                &message,
                StanzaError::with_text(
                    crate::stanza::StanzaCondition::NotAllowed,
                    crate::router::NOT_FEDERATING,
                ),
            );
        }
        return;
    }
    let Some(session) = ctx.session() else {
        // Only a local sender's messages leave through here.
        send_to(ctx.core, message);
        return;
    };
    let archived = match super::archive::plan_outgoing(&message, &session.jid, &to) {
        Some(plan) => super::archive::archive(ctx.core, plan)
            .await
            .unwrap_or_else(|e| {
                log::error!("archive: storing a message failed: {e}");
                super::archive::Archived::default()
            }),
        None => super::archive::Archived::default(),
    };
    let from = ctx.from.clone();
    let to_bare = to.to_bare();
    if super::carbons::eligible(&message) && super::carbons::any_wanted(ctx.core, &from, &to_bare) {
        let sent =
            super::archive::stamp(message.clone(), &from.to_bare(), archived.sender.as_deref());
        super::carbons::copy(ctx.core, &sent, &message, &from, &to_bare, &[]);
    }
    send_to(ctx.core, message);
}

/// A stanza for `account` that its session never handed to the client (the session ended
/// with it queued or unacknowledged, XEP-0198 §5): chat and normal messages go to another
/// available resource or offline storage; when neither can take them, and for IQ requests,
/// the sender gets an error. Nothing is silently dropped but presence and headlines.
pub async fn undelivered(core: &Arc<Core>, account: &BareJid, stanza: Element) {
    let bounce = |stanza: &Element, err: StanzaError| {
        if let Some(reply) = err.reply_to(stanza) {
            send_to(core, reply);
        }
    };
    match stanza.name.as_str() {
        "message" => {
            let ty = MessageType::of(&stanza);
            if !matches!(ty, MessageType::Chat | MessageType::Normal)
                || super::delivery::is_server_copy(&stanza)
            {
                return;
            }
            if let Some((BareRule::Deliver(_), sessions)) =
                choose(core, account, ty, crate::stanza::call::is_call(&stanza))
            {
                // The last one gets the stanza itself.
                if let Some((last, others)) = sessions.split_last() {
                    for s in others {
                        let mut copy = stanza.clone();
                        copy.set_attr("to", &s.jid);
                        send_to(core, copy);
                    }
                    let mut stanza = stanza;
                    stanza.set_attr("to", &last.jid);
                    send_to(core, stanza);
                }
                return;
            }
            match super::delivery::keep_offline(core, account, &stanza).await {
                Ok(true) => {}
                Ok(false) => bounce(&stanza, StanzaCondition::ServiceUnavailable.into()),
                Err(e) => bounce(&stanza, storage_failed(e)),
            }
        }
        "iq" if IqType::of(&stanza).is_some_and(IqType::is_request) => {
            bounce(&stanza, StanzaCondition::ServiceUnavailable.into())
        }
        _ => {}
    }
}

async fn to_bare(ctx: &mut Ctx<'_>, message: Element, ty: MessageType, to: &BareJid) {
    let (rule, sessions) = match choose(ctx.core, to, ty, crate::stanza::call::is_call(&message)) {
        Some(chosen) => chosen,
        // RFC 6121 §8.5.2.2.1: no such account.
        None if !ctx.account_exists(to).await => match ty {
            MessageType::Error => (BareRule::Drop, Vec::new()),
            _ => (BareRule::Reject, Vec::new()),
        },
        None => (bare_rule(ty, &[]), Vec::new()),
    };
    match rule {
        BareRule::Deliver(_) => {
            super::delivery::deliver(ctx, message, to, sessions).await;
        }
        BareRule::Drop => {}
        BareRule::Reject => ctx.reply_error(&message, StanzaCondition::ServiceUnavailable.into()),
        BareRule::Offline => super::delivery::store_offline(ctx, message, to).await,
    }
}

/// The sessions (by id) that got their account's offline messages already.
#[derive(Default)]
pub struct OfflineDelivered(SessionSet);

/// A session that ends is forgotten.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    if let Event::Unbound { id, .. } = event {
        core.state::<OfflineDelivered>().0.remove(*id);
    }
}

/// Queues the account's offline messages, oldest first, each with a XEP-0203 `<delay/>`,
/// for `session` (once per session). Their ids go to `ctx.offline_ids`: the connection
/// deletes them only once they are written to the socket.
pub async fn deliver_offline(ctx: &mut Ctx<'_>, session: &SessionHandle) {
    if !ctx.core.state::<OfflineDelivered>().0.insert(session.id) {
        return;
    }
    let (host, user) = account_key(&ctx.bare_jid());
    let stored = match ctx
        .core
        .storage
        .call(move |c| crate::storage::offline::load(c, &host, &user))
        .await
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("loading offline messages: {e}");
            return;
        }
    };
    let scope = crate::xml::parse::Scope::client();
    for s in stored {
        match crate::xml::parse::parse_element(&scope, s.stanza.as_bytes()) {
            Ok(mut m) => {
                m.set_attr("to", &session.jid);
                m.push(
                    Element::new("delay", crate::ns::DELAY)
                        .with_attr("from", ctx.core.domain.clone())
                        .with_attr("stamp", s.stamp.clone())
                        .with_text("Offline Storage"),
                );
                ctx.replies.push(m);
            }
            Err(e) => log::error!("dropping an unreadable offline message {}: {e}", s.id),
        }
        ctx.offline_ids.push(s.id);
    }
}

#[cfg(test)]
mod tests {
    use super::MessageType::*;
    use super::*;
    use crate::ns;

    #[test]
    fn message_types() {
        let m = |t: &str| Element::new("message", ns::CLIENT).with_attr("type", t);
        assert_eq!(MessageType::of(&m("chat")), Chat);
        assert_eq!(MessageType::of(&m("bogus")), Normal);
        assert_eq!(
            MessageType::of(&Element::new("message", ns::CLIENT)),
            Normal
        );
    }
}
