//! XEP-0357 Push Notifications, after Prosody's `mod_cloud_notify`: an app (Monal, Siskin,
//! Conversations) registers its vendor's app server; when the app cannot be reached — a
//! message stored offline, a session hibernating with unacknowledged stanzas, stanzas
//! arriving while it hibernates (gathered for about a second; a call invitation at once)
//! — the server publishes a notification to the app server, which wakes the phone.
//!
//! Registrations are stored (at most [`MAX_REGISTRATIONS`] per account, the oldest go),
//! bound to the resource that enabled them (a hibernating session notifies only through
//! its own), and dropped after [`MAX_ERRORS`] errors in a row from the app server. While a
//! resource has push enabled its hibernation (XEP-0198) lasts `--push-hibernation`.
//!
//! The notification carries the `urn:xmpp:push:summary` form: `message-count`, and the
//! sender and body only with `--push-include-body`. A body, an encrypted payload or a call
//! is "important": marked with Tigase's `<priority>high</priority>` (advertised as
//! `tigase:push:priority:0`), which app servers use to wake the phone at once.

use super::{account_key, storage_failed, Ctx, Iq, IqResult};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::{send_to, Core, Event, Target};
use crate::stanza::forms::{self, DataForm, Field};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::push::{self as store, Registration};
use crate::xml::Element;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const NS: &str = "urn:xmpp:push:0";
pub const NS_SUMMARY: &str = "urn:xmpp:push:summary";
pub const NS_PRIORITY: &str = "tigase:push:priority:0";
const NS_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// Registrations kept per account.
pub const MAX_REGISTRATIONS: usize = 5;
/// Errors in a row from an app server before its registration is dropped.
pub const MAX_ERRORS: u32 = 3;
/// Notifications waiting for their answer (beyond it the oldest are forgotten).
const MAX_PENDING: usize = 1000;

/// Notifications sent and not yet answered, by IQ id: (account, app server, node).
#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, (BareJid, String, String)>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (BareJid, String, String)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn own(ctx: &Ctx<'_>, iq: &Iq<'_>) -> Result<FullJid, StanzaError> {
    let session = ctx.local()?;
    match &iq.target {
        Target::Account(a) if *a == ctx.bare_jid() => Ok(session.jid.clone()),
        _ => Err(StanzaCondition::Forbidden.into()),
    }
}

/// `<enable/>` (XEP-0357 §5): stores the registration for the enabling resource.
pub async fn enable(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let me = own(ctx, iq)?;
    if ctx.core.config.push.is_none() {
        return Err(StanzaCondition::ServiceUnavailable.into());
    }
    let p = iq.payload;
    let jid = p
        .attr("jid")
        .ok_or_else(|| StanzaError::with_text(StanzaCondition::BadRequest, "enable needs a jid"))
        .and_then(|j| {
            Jid::parse(j).map_err(|_| {
                StanzaError::with_text(StanzaCondition::JidMalformed, "the app server's jid")
            })
        })?;
    let node = p.attr("node").unwrap_or("").to_owned();
    if node.is_empty() {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "enable needs a node",
        ));
    }
    let options = match p.child("x", forms::NS) {
        Some(x) => {
            let form = DataForm::try_from(x)
                .map_err(|e| StanzaError::with_text(StanzaCondition::BadRequest, e.to_string()))?;
            if form.form_type() != Some(NS_PUBLISH_OPTIONS) {
                return Err(StanzaError::with_text(
                    StanzaCondition::BadRequest,
                    "the form is not publish-options",
                ));
            }
            x.to_string()
        }
        None => String::new(),
    };
    let reg = Registration {
        jid: jid.to_string(),
        node: node.clone(),
        resource: me.resource().to_owned(),
        options,
        created: crate::util::datetime::unix_now(),
        errors: 0,
    };
    let (host, user) = account_key(&me.bare());
    let dropped = ctx
        .core
        .storage
        .call(move |c| store::enable(c, &host, &user, &reg, MAX_REGISTRATIONS))
        .await
        .map_err(storage_failed)?;
    ctx.core
        .sessions
        .update(&me, ctx.session().map_or(0, |s| s.id), |r| {
            r.push = true;
        });
    log::info!(
        "{}: push notifications enabled for {jid} ({} dropped)",
        me,
        dropped
    );
    Ok(None)
}

/// `<disable/>` (XEP-0357 §6): one node of an app server, or all of its nodes.
pub async fn disable(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let me = own(ctx, iq)?;
    let jid = iq
        .payload
        .attr("jid")
        .and_then(|j| Jid::parse(j).ok())
        .ok_or_else(|| StanzaError::with_text(StanzaCondition::BadRequest, "disable needs a jid"))?
        .to_string();
    let node = iq.payload.attr("node").map(str::to_owned);
    let (host, user) = account_key(&me.bare());
    let j = jid.clone();
    let (n, left) = ctx
        .core
        .storage
        .call(move |c| {
            let n = store::disable(c, &host, &user, &j, node.as_deref())?;
            Ok((n, store::list(c, &host, &user)?))
        })
        .await
        .map_err(storage_failed)?;
    let resource = me.resource().to_owned();
    let still = left.iter().any(|r| r.resource == resource);
    ctx.core
        .sessions
        .update(&me, ctx.session().map_or(0, |s| s.id), |r| {
            r.push = still;
        });
    log::info!("{me}: push notifications disabled for {jid} ({n} registration(s))");
    Ok(None)
}

/// Is this stanza worth waking the phone for at once: a body, an encrypted payload, a call?
pub fn important(stanza: &Element) -> bool {
    stanza.name == "message"
        && (stanza.child("body", ns::CLIENT).is_some()
            || stanza
                .child("encrypted", "eu.siacs.conversations.axolotl")
                .is_some()
            || stanza.child("encrypted", "urn:xmpp:omemo:2").is_some()
            || is_call(stanza))
}

pub use crate::stanza::call::is_call;

/// The notification IQ for one registration.
fn notification(
    core: &Core,
    account: &BareJid,
    reg: &Registration,
    count: usize,
    last: Option<&Element>,
    id: &str,
) -> Element {
    let mut form = DataForm::with_form_type("submit", NS_SUMMARY);
    form.fields
        .push(Field::new("message-count", "text-single").with_value(count.to_string()));
    let include_body = core.config.push.as_ref().is_some_and(|p| p.include_body);
    if let Some(m) = last {
        if include_body {
            if let Some(from) = m.attr("from") {
                form.fields
                    .push(Field::new("last-message-sender", "jid-single").with_value(from));
            }
            if let Some(b) = m.child("body", ns::CLIENT) {
                form.fields
                    .push(Field::new("last-message-body", "text-single").with_value(b.text()));
            }
        }
    }
    let mut n = Element::new("notification", NS).with_child(Element::from(&form));
    if last.is_some_and(important) {
        n.push(Element::new("priority", NS_PRIORITY).with_text("high"));
    }
    let mut pubsub = Element::new("pubsub", ns::PUBSUB).with_child(
        Element::new("publish", ns::PUBSUB)
            .with_attr("node", reg.node.clone())
            .with_child(Element::new("item", ns::PUBSUB).with_child(n)),
    );
    if !reg.options.is_empty() {
        if let Ok(x) = crate::xml::parse::parse_element(
            &crate::xml::parse::Scope::default(),
            reg.options.as_bytes(),
        ) {
            pubsub.push(Element::new("publish-options", ns::PUBSUB).with_child(x));
        }
    }
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", id)
        .with_attr("from", account.as_str())
        .with_attr("to", reg.jid.clone())
        .with_child(pubsub)
}

/// Sends a notification through each of `account`'s registrations (those of `resource`
/// only, if given).
/// How many messages wait, for a notification's `message-count`.
#[derive(Clone, Copy)]
enum Waiting {
    Known(usize),
    /// The account's offline messages, counted only if it has registrations.
    Offline,
}

async fn notify(
    core: &Arc<Core>,
    account: &BareJid,
    resource: Option<&str>,
    waiting: Waiting,
    last: Option<&Element>,
) {
    if core.config.push.is_none() {
        return;
    }
    let (host, user) = account_key(account);
    let listed = core
        .storage
        .call(move |c| {
            let regs = store::list(c, &host, &user)?;
            let count = match waiting {
                Waiting::Known(n) => n,
                Waiting::Offline if regs.is_empty() => 0,
                Waiting::Offline => crate::storage::offline::count(c, &host, &user)?,
            };
            Ok((regs, count))
        })
        .await;
    let (regs, count) = match listed {
        Ok(r) => r,
        Err(e) => {
            log::error!("push: {e}");
            return;
        }
    };
    for reg in regs
        .iter()
        .filter(|r| resource.is_none_or(|res| r.resource == res))
    {
        let id = format!("push-{}", crate::util::random_hex(8));
        {
            let mut pending = core.state::<Pending>().lock();
            if pending.len() >= MAX_PENDING {
                pending.clear();
            }
            pending.insert(
                id.clone(),
                (account.clone(), reg.jid.clone(), reg.node.clone()),
            );
        }
        log::debug!("push: notifying {} for {account}", reg.jid);
        send_to(core, notification(core, account, reg, count, last, &id));
    }
}

/// The events that lead to a notification, and the app servers' answers.
pub async fn on_event(core: &Arc<Core>, event: &Event<'_>) {
    match event {
        Event::StoredOffline { to, message } => {
            notify(core, to, None, Waiting::Offline, Some(message)).await;
        }
        Event::Hibernating { jid, unacked } if *unacked > 0 => {
            notify(
                core,
                &jid.bare(),
                Some(jid.resource()),
                Waiting::Known(*unacked),
                None,
            )
            .await;
        }
        Event::QueuedWhileHibernated { jid, waiting, last } => {
            notify(
                core,
                &jid.bare(),
                Some(jid.resource()),
                Waiting::Known(*waiting),
                Some(last),
            )
            .await;
        }
        Event::AccountIqResponse { account, from, iq } => {
            let Some(id) = iq.attr("id").filter(|i| i.starts_with("push-")) else {
                return;
            };
            let Some((owner, jid, node)) = core.state::<Pending>().lock().remove(id) else {
                return;
            };
            if owner != **account || from.as_str() != jid {
                return;
            }
            let error = iq.attr("type") == Some("error");
            let (host, user) = account_key(account);
            let (j, n) = (jid.clone(), node.clone());
            let errors = core
                .storage
                .call(move |c| {
                    let errors = store::answered(c, &host, &user, &j, &n, error)?;
                    if errors >= MAX_ERRORS {
                        store::disable(c, &host, &user, &j, Some(&n))?;
                    }
                    Ok(errors)
                })
                .await;
            match errors {
                Ok(n) if n >= MAX_ERRORS => log::info!(
                    "{account}: push notifications disabled for {jid} after {n} errors from it"
                ),
                Ok(_) => {}
                Err(e) => log::error!("push: {e}"),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn msg(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_encrypted_messages_and_calls_are_important() {
        assert!(important(&msg("<message><body>hi</body></message>")));
        assert!(important(&msg(
            "<message><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>"
        )));
        assert!(important(&msg(
            "<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>"
        )));
        assert!(!important(&msg(
            "<message><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )));
        assert!(!important(&msg("<presence/>")));
    }

    #[test]
    fn the_summary_carries_the_body_only_when_asked() {
        let reg = Registration {
            jid: "push.example".into(),
            node: "n1".into(),
            resource: "phone".into(),
            options: "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3</value></field></x>".into(),
            created: 0,
            errors: 0,
        };
        let m = msg("<message from='dad@h/pc'><body>dinner</body></message>");
        let mom = BareJid::parse("mom@h").unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut config = crate::config::Config {
            data_dir: a.path().into(),
            ..crate::config::Config::default()
        };
        let core = crate::modules::test_core(config.clone());
        let n = notification(&core, &mom, &reg, 2, Some(&m), "push-1").to_string();
        assert!(n.contains("message-count") && n.contains(">2<"), "{n}");
        assert!(!n.contains("dinner") && !n.contains("dad@h"), "{n}");
        assert!(
            n.contains("tigase:push:priority:0") && n.contains("s3"),
            "{n}"
        );
        config.push.as_mut().unwrap().include_body = true;
        config.data_dir = b.path().into();
        let core = crate::modules::test_core(config);
        let n = notification(&core, &mom, &reg, 2, Some(&m), "push-1").to_string();
        assert!(n.contains("dinner") && n.contains("dad@h/pc"), "{n}");
    }
}
