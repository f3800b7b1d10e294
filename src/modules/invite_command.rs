//! XEP-0401 §3: `urn:xmpp:invite#invite`, the ad-hoc command (XEP-0050) with which an
//! account whose role may invite makes a contact invitation from its app (Monal,
//! Conversations and Gajim offer it): a XEP-0379 invitation of the requester, good for
//! one registration (`ibr=y`) within a week. It completes at once with a result form of
//! `uri` (the `xmpp:` URI), `landing-url` (the web page, when the HTTP service is on) and
//! `expire` (XEP-0082), as Prosody's mod_invites_adhoc answers.

use super::adhoc::{field, result, Access, Command, Done};
use crate::command_fn;
use crate::jid::FullJid;
use crate::router::Core;
use crate::stanza::forms::DataForm;
use crate::storage::invites::{self, Kind};
use std::sync::Arc;

/// How long an invitation made from an app stays valid.
pub const VALID_SECS: i64 = 7 * 86_400;

pub const INVITE: Command = Command {
    node: "urn:xmpp:invite#invite",
    name: "Invite someone",
    access: Access::MayInvite,
    form: None,
    run: command_fn!(invite),
};

async fn invite(core: &Arc<Core>, from: &FullJid, _: &DataForm) -> Result<Done, String> {
    let token = crate::invite::new_token();
    let key = crate::invite::key(&token);
    let now = crate::util::datetime::unix_now();
    let expires = now + VALID_SECS;
    let (host, creator) = (core.domain.clone(), from.bare_str().to_owned());
    let stored = core
        .storage
        .call(move |c| {
            let new = invites::New {
                kind: Kind::Roster,
                creator: &creator,
                role: "normal",
                circle: "",
                expires,
                uses: 1,
            };
            invites::create(c, &host, &key, &new, now)?;
            let base = crate::storage::muc::meta(c, crate::invite::META_BASE_URL)?;
            Ok((invites::find(c, &host, &key)?, base))
        })
        .await
        .map_err(|e| {
            log::error!("invite command: {e}");
            "the invitation could not be stored".to_owned()
        })?;
    let (Some(invite), base) = stored else {
        return Err("the invitation could not be stored".into());
    };
    log::info!("{from}: made the contact invitation {}", invite.id());
    let mut fields = vec![field(
        "uri",
        "text-single",
        "Invitation URI (for XMPP apps)",
        false,
        &[crate::invite::uri(&core.domain, &invite, &token)],
    )];
    if let Some(base) = base.filter(|b| !b.is_empty()) {
        fields.push(field(
            "landing-url",
            "text-single",
            "Invitation link (share it)",
            false,
            &[crate::invite::landing_url(&base, &token)],
        ));
    }
    fields.push(field(
        "expire",
        "text-single",
        "Valid until",
        false,
        &[crate::util::datetime::format(expires)],
    ));
    Ok(Done {
        note: Some("Share the link: whoever opens it can make an account here, and you become each other's contacts.".into()),
        form: Some(result("", fields)),
    })
}
