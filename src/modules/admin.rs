//! The ad-hoc commands (`adhoc.rs`): XEP-0133 Service Administration for admins (add,
//! delete a user, change a user's password, user statistics, registered and online users
//! as numbers and lists, an announcement to everyone online), and each account's own
//! password change. They do what `roost adduser`, `deluser` and `passwd` do, in the
//! server: a new password revokes the account's FAST tokens and logs its other clients
//! out; a deleted account's clients are logged out and its uploaded files removed.

use super::adhoc::{field, form, result, Access, Command, Done};
use crate::circles::Notices;
use crate::command_fn;
use crate::jid::{BareJid, FullJid};
use crate::roles::Role;
use crate::router::Core;
use crate::sasl::StoredCredentials;
use crate::stanza::forms::DataForm;
use crate::storage::accounts::{self, AccountError};
use crate::storage::kicks::Reason;
use crate::xml::Element;
use std::sync::Arc;

/// XEP-0133's `FORM_TYPE`.
pub const FORM_TYPE: &str = "http://jabber.org/protocol/admin";
/// Shortest password these commands accept (as `roost adduser`).
pub const MIN_PASSWORD_CHARS: usize = 8;

pub const CHANGE_PASSWORD: Command = Command {
    node: "roost#change-password",
    name: "Change my password",
    access: Access::Anyone,
    form: Some(change_password_form),
    run: command_fn!(change_password),
};

pub const ADD_USER: Command = Command {
    node: "http://jabber.org/protocol/admin#add-user",
    name: "Add a user",
    access: Access::Admin,
    form: Some(add_user_form),
    run: command_fn!(add_user),
};

pub const DELETE_USER: Command = Command {
    node: "http://jabber.org/protocol/admin#delete-user",
    name: "Delete users",
    access: Access::Admin,
    form: Some(delete_user_form),
    run: command_fn!(delete_user),
};

pub const CHANGE_USER_PASSWORD: Command = Command {
    node: "http://jabber.org/protocol/admin#change-user-password",
    name: "Change a user's password",
    access: Access::Admin,
    form: Some(change_user_password_form),
    run: command_fn!(change_user_password),
};

pub const USER_STATS: Command = Command {
    node: "http://jabber.org/protocol/admin#user-stats",
    name: "Get user statistics",
    access: Access::Admin,
    form: Some(account_form),
    run: command_fn!(user_stats),
};

pub const REGISTERED_USERS_NUM: Command = Command {
    node: "http://jabber.org/protocol/admin#get-registered-users-num",
    name: "Get the number of registered users",
    access: Access::Admin,
    form: None,
    run: command_fn!(registered_users_num),
};

pub const REGISTERED_USERS_LIST: Command = Command {
    node: "http://jabber.org/protocol/admin#get-registered-users-list",
    name: "Get the list of registered users",
    access: Access::Admin,
    form: None,
    run: command_fn!(registered_users_list),
};

pub const ONLINE_USERS_NUM: Command = Command {
    node: "http://jabber.org/protocol/admin#get-online-users-num",
    name: "Get the number of online users",
    access: Access::Admin,
    form: None,
    run: command_fn!(online_users_num),
};

pub const ONLINE_USERS_LIST: Command = Command {
    node: "http://jabber.org/protocol/admin#get-online-users-list",
    name: "Get the list of online users",
    access: Access::Admin,
    form: None,
    run: command_fn!(online_users_list),
};

pub const ANNOUNCE: Command = Command {
    node: "http://jabber.org/protocol/admin#announce",
    name: "Send an announcement to everyone online",
    access: Access::Admin,
    form: Some(announce_form),
    run: command_fn!(announce),
};

fn password_fields(verify: bool) -> Vec<Element> {
    let mut v = vec![field("password", "text-private", "Password", true, &[])];
    if verify {
        v.push(field(
            "password-verify",
            "text-private",
            "Password again",
            true,
            &[],
        ));
    }
    v
}

fn change_password_form(_: &Core, _: &BareJid) -> Element {
    form(
        "",
        "Change my password",
        &format!(
            "Choose a new password ({MIN_PASSWORD_CHARS} characters or more). Your other \
             devices are logged out and log in again with it."
        ),
        password_fields(true),
    )
}

fn add_user_form(core: &Core, _: &BareJid) -> Element {
    let mut fields = vec![field(
        "accountjid",
        "jid-single",
        "The new address",
        true,
        &[format!("name@{}", core.domain)],
    )];
    fields.extend(password_fields(true));
    fields.push(
        field("role", "list-single", "Role", false, &["normal".into()])
            .with_child(option("Normal", "normal"))
            .with_child(option("Limited (a child or a guest)", "limited"))
            .with_child(option("Admin", "admin")),
    );
    form(
        FORM_TYPE,
        "Add a user",
        "The new account joins the family room and the default circle.",
        fields,
    )
}

fn option(label: &str, value: &str) -> Element {
    Element::new("option", crate::stanza::forms::NS)
        .with_attr("label", label)
        .with_child(Element::new("value", crate::stanza::forms::NS).with_text(value))
}

fn delete_user_form(_: &Core, _: &BareJid) -> Element {
    form(
        FORM_TYPE,
        "Delete users",
        "The accounts and everything stored for them are removed; their devices are \
         logged out.",
        vec![field(
            "accountjids",
            "jid-multi",
            "The accounts to delete",
            true,
            &[],
        )],
    )
}

fn change_user_password_form(_: &Core, _: &BareJid) -> Element {
    let mut fields = vec![field("accountjid", "jid-single", "The account", true, &[])];
    fields.extend(password_fields(false));
    form(
        FORM_TYPE,
        "Change a user's password",
        "The account's devices are logged out and log in again with the new password.",
        fields,
    )
}

fn account_form(_: &Core, _: &BareJid) -> Element {
    form(
        FORM_TYPE,
        "Get user statistics",
        "Which account?",
        vec![field("accountjid", "jid-single", "The account", true, &[])],
    )
}

fn announce_form(_: &Core, _: &BareJid) -> Element {
    form(
        FORM_TYPE,
        "Send an announcement",
        "Everyone online gets this message.",
        vec![
            field("subject", "text-single", "Subject", false, &[]),
            field("announcement", "text-multi", "Announcement", true, &[]),
        ],
    )
}

/// A field's values joined by new lines (text-multi).
fn text(form: &DataForm, var: &str) -> String {
    form.field(var)
        .map(|f| f.values.join("\n"))
        .unwrap_or_default()
}

/// An account of this server named in a form.
fn local_account(core: &Core, given: &str) -> Result<BareJid, String> {
    let jid = BareJid::parse(given.trim()).map_err(|e| format!("{given}: {e}"))?;
    if jid.node().is_none() || jid.domain() != core.domain {
        return Err(format!(
            "{given}: give an address at this server, e.g. name@{}",
            core.domain
        ));
    }
    Ok(jid)
}

/// The new password of a form, checked.
fn new_password(form: &DataForm, verify: bool) -> Result<String, String> {
    let password = form.field("password").and_then(|f| f.values.first());
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err("the password is empty".into());
    };
    if verify && form.field("password-verify").and_then(|f| f.values.first()) != Some(password) {
        return Err("the two passwords differ".into());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is shorter than {MIN_PASSWORD_CHARS} characters"
        ));
    }
    Ok(password.clone())
}

/// Stores a new password (its FAST tokens go) and logs the account's clients out, all but
/// `keep`.
async fn set_password(
    core: &Arc<Core>,
    account: &BareJid,
    password: &str,
    keep: Option<&FullJid>,
) -> Result<usize, String> {
    let creds = StoredCredentials::derive(password, core.config.scram_iterations);
    let (host, user) = crate::storage::account_key(account);
    let result = core
        .storage
        .call(
            move |c| match accounts::set_credentials(c, &host, &user, &creds) {
                Ok(()) => Ok(Ok(())),
                Err(AccountError::Storage(e)) => Err(e),
                Err(e) => Ok(Err(e)),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    match result {
        Ok(()) => {}
        Err(AccountError::NotFound) => return Err(format!("{account}: no such account")),
        Err(e) => return Err(e.to_string()),
    }
    let mut closed = 0;
    for r in core.sessions.resources(account) {
        if Some(&r.handle.jid) != keep {
            r.handle.close(crate::kick::stream_error(Reason::Password));
            closed += 1;
        }
    }
    Ok(closed)
}

async fn change_password(
    core: &Arc<Core>,
    from: &FullJid,
    form: &DataForm,
) -> Result<Done, String> {
    let password = new_password(form, true)?;
    let closed = set_password(core, &from.bare(), &password, Some(from)).await?;
    log::info!("{}: password changed by a command", from.bare());
    Ok(Done::note(format!(
        "Your password was changed; {closed} other device(s) were logged out."
    )))
}

async fn add_user(core: &Arc<Core>, from: &FullJid, form: &DataForm) -> Result<Done, String> {
    let account = local_account(core, form.value("accountjid").unwrap_or_default())?;
    let password = new_password(form, true)?;
    let role: Role = form.value("role").unwrap_or("normal").parse()?;
    let creds = StoredCredentials::derive(&password, core.config.scram_iterations);
    let (host, user) = crate::storage::account_key(&account);
    let made = core
        .storage
        .call(move |c| {
            let tx = c.savepoint()?;
            match accounts::create(&tx, &host, &user, &creds) {
                Ok(()) => {}
                Err(AccountError::Storage(e)) => return Err(e),
                Err(e) => return Ok(Err(e.to_string())),
            }
            let mut notices = Notices::new(&host);
            if let Err(e) =
                crate::circles::account_added(&tx, &host, &user, role, None, &mut notices)
            {
                return Ok(Err(e.to_string()));
            }
            tx.commit()?;
            Ok(Ok(notices))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{account}: {e}"))?;
    made.apply(core).await;
    log::info!("{account}: added by {} ({role})", from.bare());
    Ok(Done::note(format!("Added {account} ({role}).")))
}

async fn delete_user(core: &Arc<Core>, from: &FullJid, form: &DataForm) -> Result<Done, String> {
    let given = form
        .field("accountjids")
        .map(|f| f.values.clone())
        .unwrap_or_default();
    let given: Vec<&String> = given.iter().filter(|v| !v.trim().is_empty()).collect();
    if given.is_empty() {
        return Err("give the accounts to delete".into());
    }
    let mut accounts_to_delete = Vec::new();
    for g in given {
        let a = local_account(core, g)?;
        if a == from.bare() {
            return Err(
                "you cannot delete your own account here: ask another admin, or use \
                 `roost deluser`"
                    .into(),
            );
        }
        accounts_to_delete.push(a);
    }
    let mut deleted = Vec::new();
    for account in accounts_to_delete {
        let (host, user) = crate::storage::account_key(&account);
        let jid = account.to_string();
        let outcome = core
            .storage
            .call(move |c| {
                let uploads = crate::storage::uploads::ids_of(c, &host, &user)?;
                let contacts: Vec<String> = crate::storage::roster::items(c, &host, &user)?
                    .into_iter()
                    .filter_map(|i| {
                        let (local, domain) = i.contact.split_once('@')?;
                        (domain == host).then(|| local.to_owned())
                    })
                    .collect();
                let rooms: Vec<(String, String)> = c
                    .prepare("SELECT host, room FROM muc_affiliations WHERE jid = ?1")?
                    .query_map([&jid], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                match accounts::delete(c, &host, &user) {
                    Ok(()) => Ok(Ok((uploads, contacts, rooms))),
                    Err(AccountError::Storage(e)) => Err(e),
                    Err(e) => Ok(Err(e.to_string())),
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        let (uploads, contacts, rooms) = outcome.map_err(|e| format!("{account}: {e}"))?;
        crate::upload::remove_files(&core.config.data_dir, &uploads);
        let username = account.node().unwrap_or_default().to_owned();
        crate::kick::close_sessions(core, &username, Reason::Deleted);
        core.state::<crate::roles::Roles>()
            .set(&username, Role::Normal);
        // Its contacts here see it unsubscribed; its rooms lose it.
        let mut notices = Notices::new(&core.domain);
        for c in contacts {
            notices.rosters.insert((c, account.to_string()));
        }
        notices.rooms.extend(rooms);
        notices.apply(core).await;
        log::info!("{account}: deleted by {}", from.bare());
        deleted.push(account.to_string());
    }
    Ok(Done::note(format!("Deleted {}.", deleted.join(", "))))
}

async fn change_user_password(
    core: &Arc<Core>,
    from: &FullJid,
    form: &DataForm,
) -> Result<Done, String> {
    let account = local_account(core, form.value("accountjid").unwrap_or_default())?;
    let password = new_password(form, false)?;
    let keep = (account == from.bare()).then_some(from);
    let closed = set_password(core, &account, &password, keep).await?;
    log::info!("{account}: password changed by {}", from.bare());
    Ok(Done::note(format!(
        "Changed the password of {account}; {closed} device(s) were logged out."
    )))
}

async fn user_stats(core: &Arc<Core>, _: &FullJid, form: &DataForm) -> Result<Done, String> {
    let account = local_account(core, form.value("accountjid").unwrap_or_default())?;
    let (host, user) = crate::storage::account_key(&account);
    let stored = core
        .storage
        .call(move |c| {
            let Some(role) = accounts::role(c, &host, &user)? else {
                return Ok(None);
            };
            Ok(Some((
                role,
                crate::storage::roster::count(c, &host, &user)?,
                crate::circles::circles_of(c, &host, &user)?,
            )))
        })
        .await
        .map_err(|e| e.to_string())?;
    let Some((role, roster_size, circles)) = stored else {
        return Err(format!("{account}: no such account"));
    };
    let resources: Vec<String> = core
        .sessions
        .resources(&account)
        .iter()
        .map(|r| r.handle.jid.resource().to_owned())
        .collect();
    Ok(Done {
        note: None,
        form: Some(result(
            FORM_TYPE,
            vec![
                field(
                    "accountjid",
                    "jid-single",
                    "The account",
                    false,
                    &[account.to_string()],
                ),
                field(
                    "rostersize",
                    "text-single",
                    "Contacts",
                    false,
                    &[roster_size.to_string()],
                ),
                field(
                    "onlineresources",
                    "text-multi",
                    "Devices online",
                    false,
                    &resources,
                ),
                field("role", "text-single", "Role", false, &[role.to_string()]),
                field("circles", "text-multi", "Circles", false, &circles),
            ],
        )),
    })
}

async fn registered(core: &Arc<Core>) -> Result<Vec<String>, String> {
    let host = core.domain.clone();
    let users = core
        .storage
        .call(move |c| accounts::with_roles(c, &host))
        .await
        .map_err(|e| e.to_string())?;
    Ok(users
        .into_iter()
        .map(|(u, _)| format!("{u}@{}", core.domain))
        .collect())
}

fn online(core: &Core) -> Vec<String> {
    let mut v: Vec<String> = core
        .sessions
        .all()
        .into_iter()
        .map(|h| h.jid.bare_str().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn one_field(var: &str, ty: &str, label: &str, values: &[String]) -> Done {
    Done {
        note: None,
        form: Some(result(
            FORM_TYPE,
            vec![field(var, ty, label, false, values)],
        )),
    }
}

async fn registered_users_num(core: &Arc<Core>, _: &FullJid, _: &DataForm) -> Result<Done, String> {
    let n = registered(core).await?.len();
    Ok(one_field(
        "registeredusersnum",
        "text-single",
        "Number of registered users",
        &[n.to_string()],
    ))
}

async fn registered_users_list(
    core: &Arc<Core>,
    _: &FullJid,
    _: &DataForm,
) -> Result<Done, String> {
    Ok(one_field(
        "registereduserjids",
        "jid-multi",
        "Registered users",
        &registered(core).await?,
    ))
}

async fn online_users_num(core: &Arc<Core>, _: &FullJid, _: &DataForm) -> Result<Done, String> {
    Ok(one_field(
        "onlineusersnum",
        "text-single",
        "Number of online users",
        &[online(core).len().to_string()],
    ))
}

async fn online_users_list(core: &Arc<Core>, _: &FullJid, _: &DataForm) -> Result<Done, String> {
    Ok(one_field(
        "onlineuserjids",
        "jid-multi",
        "Online users",
        &online(core),
    ))
}

async fn announce(core: &Arc<Core>, from: &FullJid, form: &DataForm) -> Result<Done, String> {
    let body = text(form, "announcement");
    if body.trim().is_empty() {
        return Err("the announcement is empty".into());
    }
    let subject = text(form, "subject");
    let mut sent = 0;
    for h in core.sessions.all() {
        let mut m = Element::new("message", crate::ns::CLIENT)
            .with_attr("type", "headline")
            .with_attr("from", core.domain.clone())
            .with_attr("to", h.jid.as_str())
            .with_attr("id", crate::util::random_hex(6));
        if !subject.trim().is_empty() {
            m.push(Element::new("subject", crate::ns::CLIENT).with_text(subject.clone()));
        }
        m.push(Element::new("body", crate::ns::CLIENT).with_text(body.clone()));
        h.send(m);
        sent += 1;
    }
    log::info!("announcement by {} to {sent} session(s)", from.bare());
    Ok(Done::note(format!("Sent to {sent} device(s).")))
}
