//! XEP-0050 Ad-Hoc Commands on the server's domain: the command list is `disco#items` on
//! node `http://jabber.org/protocol/commands` (only the commands the requester's role may
//! run), each command answers `disco#info` on its node, and `<command/>` IQ sets run
//! them: `execute` (or no action) starts one, which either completes at once or returns a
//! data form (XEP-0004) under a `sessionid`; `complete`, `next` or `execute` with the
//! submitted form finishes it; `cancel` ends it. Sessions belong to the full JID that
//! started them, at most [`MAX_SESSIONS_PER_ACCOUNT`] per account (the oldest goes) and
//! [`MAX_SESSIONS`] in all, and expire after [`SESSION_TTL`].
//!
//! The commands are rows in [`COMMANDS`]: XEP-0133's for admins and each user's own
//! (`admin.rs`); the XEP-0401 invite command joins them there.

use super::{Ctx, Iq, IqResult};
use crate::jid::{BareJid, FullJid};
use crate::roles::Role;
use crate::router::{BoxFuture, Core};
use crate::stanza::forms::{self, DataForm};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NS: &str = "http://jabber.org/protocol/commands";

/// Most unfinished command sessions of one account; a new one ends the oldest.
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 5;
/// Most unfinished command sessions in all.
pub const MAX_SESSIONS: usize = 500;
/// An unfinished session is forgotten after this long.
pub const SESSION_TTL: Duration = Duration::from_secs(10 * 60);

/// Who may see and run a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Admins only (XEP-0133).
    Admin,
    /// Every account of this server.
    Anyone,
    /// Accounts whose role may invite (`Role::may_invite`).
    MayInvite,
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Admin => role == Role::Admin,
            Access::Anyone => true,
            Access::MayInvite => role.may_invite(),
        }
    }
}

/// What a finished command says: a note for the person, and a result form.
#[derive(Default)]
pub struct Done {
    pub note: Option<String>,
    pub form: Option<Element>,
}

impl Done {
    pub fn note(text: impl Into<String>) -> Done {
        Done {
            note: Some(text.into()),
            form: None,
        }
    }
}

/// Runs a command with the submitted form (empty for a command without one), as the
/// full JID that asked. `Err` is a message for the person (shown as an error note).
pub type RunFn =
    for<'a> fn(&'a Arc<Core>, &'a FullJid, &'a DataForm) -> BoxFuture<'a, Result<Done, String>>;

/// Wraps an `async fn(&Arc<Core>, &FullJid, &DataForm) -> Result<Done, String>`.
#[macro_export]
macro_rules! command_fn {
    ($f:path) => {{
        fn run<'a>(
            core: &'a std::sync::Arc<$crate::router::Core>,
            from: &'a $crate::jid::FullJid,
            form: &'a $crate::stanza::forms::DataForm,
        ) -> $crate::router::BoxFuture<'a, Result<$crate::modules::adhoc::Done, String>> {
            Box::pin($f(core, from, form))
        }
        run as $crate::modules::adhoc::RunFn
    }};
}

/// One command.
pub struct Command {
    pub node: &'static str,
    /// Its name in the apps' command lists.
    pub name: &'static str,
    pub access: Access,
    /// The form to fill in for the requester; `None`: the command runs at once.
    pub form: Option<fn(&Core, &BareJid) -> Element>,
    pub run: RunFn,
}

/// Every command, in the order the apps list them.
pub static COMMANDS: &[Command] = &[
    // Each account's own.
    super::admin::CHANGE_PASSWORD,
    // XEP-0401's `urn:xmpp:invite#invite` (Access::MayInvite) goes here.
    // XEP-0133, for admins.
    super::admin::ADD_USER,
    super::admin::DELETE_USER,
    super::admin::CHANGE_USER_PASSWORD,
    super::admin::USER_STATS,
    super::admin::REGISTERED_USERS_NUM,
    super::admin::REGISTERED_USERS_LIST,
    super::admin::ONLINE_USERS_NUM,
    super::admin::ONLINE_USERS_LIST,
    super::admin::ANNOUNCE,
];

fn find(node: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.node == node)
}

/// Unfinished sessions by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Pending>>);

struct Pending {
    owner: FullJid,
    node: &'static str,
    started: Instant,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `owner`; `None` when the server has too many.
    fn start(&self, owner: &FullJid, node: &'static str) -> Option<String> {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, p| now.duration_since(p.started) < SESSION_TTL);
        let bare = owner.bare_str();
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, p)| p.owner.bare_str() == bare)
            .map(|(id, p)| (p.started, id.clone()))
            .collect();
        own.sort();
        while own.len() >= MAX_SESSIONS_PER_ACCOUNT {
            let (_, oldest) = own.remove(0);
            map.remove(&oldest);
        }
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        let id = crate::util::random_hex(8);
        map.insert(
            id.clone(),
            Pending {
                owner: owner.clone(),
                node,
                started: now,
            },
        );
        Some(id)
    }

    /// Ends the session `id` of `owner` on `node`; false if there is no such session.
    fn take(&self, id: &str, owner: &FullJid, node: &str) -> bool {
        let mut map = self.lock();
        match map.get(id) {
            Some(p) if p.owner == *owner && p.node == node && p.started.elapsed() < SESSION_TTL => {
                map.remove(id);
                true
            }
            _ => false,
        }
    }

    /// Unfinished sessions (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An error with XEP-0050's application condition (§4.6: `bad-action`, `bad-sessionid`,
/// `bad-payload`, `malformed-action`).
fn error(condition: StanzaCondition, app: &str, text: &str) -> StanzaError {
    StanzaError {
        app: Some(Box::new(Element::new(app, NS))),
        ..StanzaError::with_text(condition, text)
    }
}

/// The `<command/>` of a reply.
fn reply(node: &str, sessionid: &str, status: &str) -> Element {
    Element::new("command", NS)
        .with_attr("node", node)
        .with_attr("sessionid", sessionid)
        .with_attr("status", status)
}

/// `<command/>` sets to the server.
pub async fn execute(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let Some(session) = ctx.session() else {
        return Err(StanzaError::with_text(
            StanzaCondition::Forbidden,
            "commands are for this server's users",
        ));
    };
    let requester = session.jid.clone();
    let core = ctx.core;
    let cmd = iq.payload;
    let Some(node) = cmd.attr("node") else {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "the command has no node",
        ));
    };
    let Some(command) = find(node) else {
        return Err(StanzaCondition::ItemNotFound.into());
    };
    let role = crate::roles::of(core, &requester.bare());
    if !command.access.allows(role) {
        return Err(StanzaError::with_text(
            StanzaCondition::Forbidden,
            "only the server's admins may run this command",
        ));
    }
    let action = cmd.attr("action").unwrap_or("execute");
    if !matches!(action, "execute" | "next" | "complete" | "cancel" | "prev") {
        return Err(error(
            StanzaCondition::BadRequest,
            "malformed-action",
            "the action is execute, next, complete, prev or cancel",
        ));
    }
    let sessions = core.state::<Sessions>();
    let (sessionid, submitted) = match cmd.attr("sessionid") {
        None => {
            if action != "execute" {
                return Err(error(
                    StanzaCondition::BadRequest,
                    "bad-action",
                    "start the command with execute",
                ));
            }
            if let Some(form) = command.form {
                let Some(id) = sessions.start(&requester, command.node) else {
                    return Err(StanzaError::with_text(
                        StanzaCondition::ResourceConstraint,
                        "too many commands are running: try again later",
                    ));
                };
                let actions = Element::new("actions", NS)
                    .with_attr("execute", "complete")
                    .with_child(Element::new("complete", NS));
                return Ok(Some(
                    reply(node, &id, "executing")
                        .with_child(actions)
                        .with_child(form(core, &requester.bare())),
                ));
            }
            // Runs at once: no form.
            let empty = DataForm {
                ty: "submit".into(),
                fields: Vec::new(),
            };
            (crate::util::random_hex(8), empty)
        }
        Some(id) => {
            if !sessions.take(id, &requester, node) {
                return Err(error(
                    StanzaCondition::BadRequest,
                    "bad-sessionid",
                    "no such command session (it may have expired): start again",
                ));
            }
            if action == "cancel" {
                return Ok(Some(reply(node, id, "canceled")));
            }
            if action == "prev" {
                return Err(error(
                    StanzaCondition::BadRequest,
                    "bad-action",
                    "this command has one step",
                ));
            }
            let form = cmd
                .child("x", forms::NS)
                .map(DataForm::try_from)
                .transpose()
                .map_err(|e| {
                    error(
                        StanzaCondition::BadRequest,
                        "bad-payload",
                        &format!("the form: {e}"),
                    )
                })?;
            match form {
                Some(f) if f.ty == "cancel" => return Ok(Some(reply(node, id, "canceled"))),
                Some(f) if f.ty == "submit" => (id.to_owned(), f),
                _ => {
                    return Err(error(
                        StanzaCondition::BadRequest,
                        "bad-payload",
                        "send the filled-in form (type submit)",
                    ))
                }
            }
        }
    };
    let mut out = reply(node, &sessionid, "completed");
    match (command.run)(core, &requester, &submitted).await {
        Ok(done) => {
            if let Some(text) = done.note {
                out.push(
                    Element::new("note", NS)
                        .with_attr("type", "info")
                        .with_text(text),
                );
            }
            if let Some(form) = done.form {
                out.push(form);
            }
        }
        Err(text) => {
            log::info!("command {node} by {requester}: {text}");
            out.push(
                Element::new("note", NS)
                    .with_attr("type", "error")
                    .with_text(text),
            );
        }
    }
    Ok(Some(out))
}

/// `disco#items` on the command list node: the commands the requester may run.
pub fn items(core: &Core, requester: &BareJid, node: &str) -> Option<Result<Element, StanzaError>> {
    if node != NS {
        return None;
    }
    let role = crate::roles::of(core, requester);
    let mut q = Element::new("query", crate::ns::DISCO_ITEMS).with_attr("node", NS);
    if requester.domain() == core.domain {
        for c in COMMANDS.iter().filter(|c| c.access.allows(role)) {
            q.push(
                Element::new("item", crate::ns::DISCO_ITEMS)
                    .with_attr("jid", core.domain.clone())
                    .with_attr("node", c.node)
                    .with_attr("name", c.name),
            );
        }
    }
    Some(Ok(q))
}

/// `disco#info` on the command list node and on each command the requester may run
/// (XEP-0050 §2.2, §2.3).
pub fn info(core: &Core, requester: &BareJid, node: &str) -> Option<Result<Element, StanzaError>> {
    let identity = |ty: &str, name: &str| {
        Element::new("identity", crate::ns::DISCO_INFO)
            .with_attr("category", "automation")
            .with_attr("type", ty)
            .with_attr("name", name)
    };
    let feature = |var: &str| Element::new("feature", crate::ns::DISCO_INFO).with_attr("var", var);
    let q = Element::new("query", crate::ns::DISCO_INFO).with_attr("node", node);
    if node == NS {
        return Some(Ok(q
            .with_child(identity("command-list", "Commands"))
            .with_child(feature(NS))));
    }
    let command = find(node)?;
    let role = crate::roles::of(core, requester);
    if requester.domain() != core.domain || !command.access.allows(role) {
        return Some(Err(StanzaCondition::ItemNotFound.into()));
    }
    Some(Ok(q
        .with_child(identity("command-node", command.name))
        .with_child(feature(NS))
        .with_child(feature(forms::NS))))
}

/// A form for a command: `<x type='form'/>` with a title, instructions and fields, the
/// hidden `FORM_TYPE` first when given.
pub fn form(form_type: &str, title: &str, instructions: &str, fields: Vec<Element>) -> Element {
    let mut x = Element::new("x", forms::NS).with_attr("type", "form");
    x.push(Element::new("title", forms::NS).with_text(title));
    x.push(Element::new("instructions", forms::NS).with_text(instructions));
    if !form_type.is_empty() {
        x.push(hidden_form_type(form_type));
    }
    for f in fields {
        x.push(f);
    }
    x
}

/// A result form (`<x type='result'/>`).
pub fn result(form_type: &str, fields: Vec<Element>) -> Element {
    let mut x = Element::new("x", forms::NS).with_attr("type", "result");
    if !form_type.is_empty() {
        x.push(hidden_form_type(form_type));
    }
    for f in fields {
        x.push(f);
    }
    x
}

fn hidden_form_type(form_type: &str) -> Element {
    Element::new("field", forms::NS)
        .with_attr("var", forms::FORM_TYPE)
        .with_attr("type", "hidden")
        .with_child(Element::new("value", forms::NS).with_text(form_type))
}

/// A field with a label, required or not, with values.
pub fn field(var: &str, ty: &str, label: &str, required: bool, values: &[String]) -> Element {
    let mut f = Element::new("field", forms::NS)
        .with_attr("var", var)
        .with_attr("type", ty)
        .with_attr("label", label);
    if required {
        f.push(Element::new("required", forms::NS));
    }
    for v in values {
        f.push(Element::new("value", forms::NS).with_text(v.clone()));
    }
    f
}
