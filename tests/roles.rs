//! Roles and admin commands over real XMPP: a limited account cannot make group chats;
//! XEP-0050 ad-hoc commands with XEP-0133's admin commands for admins and only their own
//! commands for everyone else.

mod common;

use common::*;
use roost::roles::Role;
use roost::xml::Element;
use std::time::Duration;

const MUC: &str = "http://jabber.org/protocol/muc";

fn server() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid"] {
        s.add_user(u, "secret-pw");
    }
    set_role(&s, "mom", Role::Admin);
    set_role(&s, "kid", Role::Limited);
    s
}

/// Sets a role as `roost role` does (another connection, a `kicks` row) and waits until
/// the running server has it.
fn set_role(s: &TestServer, user: &str, role: Role) {
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    let mut n = roost::circles::Notices::new(&s.domain);
    roost::circles::set_role(&conn, &s.domain, user, role, &mut n).unwrap();
    n.write_kicks(&conn).unwrap();
    for _ in 0..50 {
        if s.core().state::<roost::roles::Roles>().get(user) == role {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not reload {user}'s role");
}

fn login(s: &TestServer, user: &str) -> Client {
    let mut c = Client::login(s, user, "secret-pw", "phone");
    c.announce("phone", "<presence/>");
    c
}

/// Joins (or creates) a room; the error or the self-presence.
fn join(c: &mut Client, room: &str, nick: &str) -> Element {
    c.send(&format!(
        "<presence to='{room}@groups.localhost/{nick}'><x xmlns='{MUC}'/></presence>"
    ));
    c.wait_for("the join", |e| {
        e.name == "presence" && e.attr("from") == Some(&format!("{room}@groups.localhost/{nick}"))
    })
}

#[test]
fn a_limited_account_cannot_create_rooms_but_joins_others() {
    let s = server();
    let mut kid = login(&s, "kid");
    let e = join(&mut kid, "secret-club", "Kid");
    assert_eq!(e.attr("type"), Some("error"), "{e}");
    assert_eq!(error_condition(&e).as_deref(), Some("not-allowed"), "{e}");
    assert!(e.to_string().contains("limited"), "{e}");
    // A normal account creates it; the kid may join it then (an open room).
    let mut dad = login(&s, "dad");
    let e = join(&mut dad, "secret-club", "Dad");
    assert_ne!(e.attr("type"), Some("error"), "{e}");
    dad.iq("<iq type='set' id='c' to='secret-club@groups.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>");
    let e = join(&mut kid, "secret-club", "Kid");
    assert_ne!(e.attr("type"), Some("error"), "{e}");
}

const CMD: &str = "http://jabber.org/protocol/commands";
const ADMIN: &str = "http://jabber.org/protocol/admin";

/// Sends a `<command/>` to the server and returns the reply.
fn command(c: &mut Client, node: &str, action: &str, session: Option<&str>, x: &str) -> Element {
    let sid = session
        .map(|s| format!(" sessionid='{s}'"))
        .unwrap_or_default();
    c.iq(&format!(
        "<iq type='set' id='c{}' to='localhost'><command xmlns='{CMD}' node='{node}' action='{action}'{sid}>{x}</command></iq>",
        roost::util::random_hex(4)
    ))
}

/// The `<command/>` of a result.
fn cmd_of(iq: &Element) -> &Element {
    assert_eq!(iq.attr("type"), Some("result"), "{iq}");
    iq.child("command", CMD).expect("a command")
}

/// A submitted form with `fields` (var, values).
fn submit(fields: &[(&str, &[&str])]) -> String {
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{ADMIN}</value></field>"
    );
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{v}</value>"));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    x
}

/// Starts a command with a form and completes it with `fields`; the final `<command/>`.
fn run(c: &mut Client, node: &str, fields: &[(&str, &[&str])]) -> Element {
    let first = command(c, node, "execute", None, "");
    let started = cmd_of(&first);
    assert_eq!(started.attr("status"), Some("executing"), "{first}");
    assert!(started.child("x", "jabber:x:data").is_some(), "{first}");
    let sid = started.attr("sessionid").unwrap().to_owned();
    let done = command(c, node, "complete", Some(&sid), &submit(fields));
    let cmd = cmd_of(&done).clone();
    assert_eq!(cmd.attr("status"), Some("completed"), "{done}");
    cmd
}

fn note(cmd: &Element) -> (String, String) {
    let n = cmd.child("note", CMD).expect("a note");
    (n.attr("type").unwrap_or_default().to_owned(), n.text())
}

/// The values of a result form's field.
fn values(cmd: &Element, var: &str) -> Vec<String> {
    cmd.child("x", "jabber:x:data")
        .and_then(|x| x.elements().find(|f| f.attr("var") == Some(var)))
        .map(|f| {
            f.elements()
                .filter(|v| v.name == "value")
                .map(|v| v.text())
                .collect()
        })
        .unwrap_or_default()
}

fn command_nodes(c: &mut Client) -> Vec<String> {
    let r = c.iq(&format!(
        "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    r.child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .elements()
        .filter_map(|i| i.attr("node").map(str::to_owned))
        .collect()
}

#[test]
fn ad_hoc_commands_for_admins_and_for_everyone() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let mut kid = login(&s, "kid");
    // The server announces commands; each role sees its own.
    let info = mom.iq("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    assert!(info.to_string().contains(CMD), "{info}");
    let admin_nodes = command_nodes(&mut mom);
    for n in [
        "add-user",
        "delete-user",
        "change-user-password",
        "user-stats",
        "get-registered-users-num",
        "get-registered-users-list",
        "get-online-users-num",
        "get-online-users-list",
        "announce",
    ] {
        assert!(
            admin_nodes.contains(&format!("{ADMIN}#{n}")),
            "{n}: {admin_nodes:?}"
        );
    }
    assert_eq!(
        command_nodes(&mut dad),
        vec!["roost#change-password".to_string()]
    );
    assert_eq!(
        command_nodes(&mut kid),
        vec!["roost#change-password".to_string()]
    );
    let ni = mom.iq(&format!("<iq type='get' id='n' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='{ADMIN}#add-user'/></iq>"));
    assert!(ni.to_string().contains("command-node"), "{ni}");
    let ni = dad.iq(&format!("<iq type='get' id='n' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='{ADMIN}#add-user'/></iq>"));
    assert_eq!(
        error_condition(&ni).as_deref(),
        Some("item-not-found"),
        "{ni}"
    );
    // Ordinary users may not run admin commands.
    for c in [&mut dad, &mut kid] {
        let r = command(c, &format!("{ADMIN}#add-user"), "execute", None, "");
        assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{r}");
        let r = command(
            c,
            &format!("{ADMIN}#get-registered-users-num"),
            "execute",
            None,
            "",
        );
        assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{r}");
    }
    // add-user: a limited account, which logs in.
    let add = format!("{ADMIN}#add-user");
    let done = run(
        &mut mom,
        &add,
        &[
            ("accountjid", &["gran@localhost"]),
            ("password", &["gran-password"]),
            ("password-verify", &["gran-password"]),
            ("role", &["limited"]),
        ],
    );
    assert_eq!(note(&done).0, "info", "{done}");
    assert_eq!(
        s.core().state::<roost::roles::Roles>().get("gran"),
        Role::Limited
    );
    let mut gran = Client::login(&s, "gran", "gran-password", "tablet");
    // Bad input: a clear error note.
    for (fields, want) in [
        (
            vec![
                ("accountjid", &["gran@localhost"][..]),
                ("password", &["gran-password"][..]),
                ("password-verify", &["gran-password"][..]),
            ],
            "already exists",
        ),
        (
            vec![
                ("accountjid", &["new@localhost"][..]),
                ("password", &["one-password"][..]),
                ("password-verify", &["another-one"][..]),
            ],
            "differ",
        ),
        (
            vec![
                ("accountjid", &["new@elsewhere.example"][..]),
                ("password", &["one-password"][..]),
                ("password-verify", &["one-password"][..]),
            ],
            "at this server",
        ),
        (
            vec![
                ("accountjid", &["new@localhost"][..]),
                ("password", &["short"][..]),
                ("password-verify", &["short"][..]),
            ],
            "shorter than 8",
        ),
    ] {
        let done = run(&mut mom, &add, &fields);
        let (ty, text) = note(&done);
        assert_eq!(ty, "error", "{done}");
        assert!(text.contains(want), "{want}: {text}");
    }
    // Cancel, and a session id used up or unknown.
    let first = command(&mut mom, &add, "execute", None, "");
    let sid = cmd_of(&first).attr("sessionid").unwrap().to_owned();
    let r = command(&mut mom, &add, "cancel", Some(&sid), "");
    assert_eq!(cmd_of(&r).attr("status"), Some("canceled"), "{r}");
    let r = command(&mut mom, &add, "complete", Some(&sid), &submit(&[]));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r}");
    assert!(r.to_string().contains("bad-sessionid"), "{r}");
    // Someone else's session is not yours.
    let first = command(&mut mom, &add, "execute", None, "");
    let sid = cmd_of(&first).attr("sessionid").unwrap().to_owned();
    let r = command(
        &mut dad,
        "roost#change-password",
        "complete",
        Some(&sid),
        &submit(&[]),
    );
    assert!(r.to_string().contains("bad-sessionid"), "{r}");
    // At most five unfinished sessions per account: the oldest goes.
    let sids: Vec<String> = (0..6)
        .map(|_| {
            let r = command(&mut mom, &add, "execute", None, "");
            cmd_of(&r).attr("sessionid").unwrap().to_owned()
        })
        .collect();
    let r = command(&mut mom, &add, "cancel", Some(&sids[0]), "");
    assert!(r.to_string().contains("bad-sessionid"), "{r}");
    let r = command(&mut mom, &add, "cancel", Some(&sids[5]), "");
    assert_eq!(cmd_of(&r).attr("status"), Some("canceled"), "{r}");
    assert!(s.core().state::<roost::modules::adhoc::Sessions>().len() <= 5);
    // Numbers and lists.
    let r = command(
        &mut mom,
        &format!("{ADMIN}#get-registered-users-num"),
        "execute",
        None,
        "",
    );
    let c = cmd_of(&r);
    assert_eq!(c.attr("status"), Some("completed"), "{r}");
    assert_eq!(values(c, "registeredusersnum"), vec!["4".to_string()]);
    let r = command(
        &mut mom,
        &format!("{ADMIN}#get-registered-users-list"),
        "execute",
        None,
        "",
    );
    assert_eq!(
        values(cmd_of(&r), "registereduserjids"),
        ["dad", "gran", "kid", "mom"]
            .map(|u| format!("{u}@localhost"))
            .to_vec()
    );
    let r = command(
        &mut mom,
        &format!("{ADMIN}#get-online-users-num"),
        "execute",
        None,
        "",
    );
    assert_eq!(values(cmd_of(&r), "onlineusersnum"), vec!["4".to_string()]);
    let r = command(
        &mut mom,
        &format!("{ADMIN}#get-online-users-list"),
        "execute",
        None,
        "",
    );
    assert_eq!(values(cmd_of(&r), "onlineuserjids").len(), 4);
    // User statistics.
    let done = run(
        &mut mom,
        &format!("{ADMIN}#user-stats"),
        &[("accountjid", &["dad@localhost"])],
    );
    assert_eq!(values(&done, "onlineresources"), vec!["phone".to_string()]);
    assert_eq!(values(&done, "rostersize"), vec!["0".to_string()]);
    assert_eq!(values(&done, "role"), vec!["normal".to_string()]);
    // An announcement reaches everyone online.
    run(
        &mut mom,
        &format!("{ADMIN}#announce"),
        &[
            ("subject", &["Dinner"]),
            ("announcement", &["at seven", "in the garden"]),
        ],
    );
    let m = dad.wait_for("the announcement", |e| e.name == "message");
    assert_eq!(m.attr("type"), Some("headline"));
    assert_eq!(m.attr("from"), Some("localhost"));
    assert!(m.to_string().contains("at seven\nin the garden"), "{m}");
    gran.wait_for("the announcement", |e| e.name == "message");
    // A user's own password: the other devices are logged out, the asking one stays.
    let mut dad2 = Client::login(&s, "dad", "secret-pw", "laptop");
    let done = run(
        &mut dad,
        "roost#change-password",
        &[
            ("password", &["dads-new-pw"]),
            ("password-verify", &["dads-new-pw"]),
        ],
    );
    assert_eq!(note(&done).0, "info", "{done}");
    assert_eq!(dad2.wait_stream_error(), "not-authorized");
    let r = dad.iq("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(r.attr("type"), Some("result"));
    Client::login(&s, "dad", "dads-new-pw", "laptop");
    // An admin changes a user's password: its devices are logged out.
    run(
        &mut mom,
        &format!("{ADMIN}#change-user-password"),
        &[
            ("accountjid", &["kid@localhost"]),
            ("password", &["kids-new-pw"]),
        ],
    );
    assert_eq!(kid.wait_stream_error(), "not-authorized");
    Client::login(&s, "kid", "kids-new-pw", "phone");
    // delete-user: the account goes, its device is logged out.
    let done = run(
        &mut mom,
        &format!("{ADMIN}#delete-user"),
        &[("accountjids", &["gran@localhost"])],
    );
    assert_eq!(note(&done).0, "info", "{done}");
    gran.wait_stream_error();
    let conn = roost::storage::open_connection(s.dir.path()).unwrap();
    assert!(!roost::storage::accounts::exists(&conn, "localhost", "gran").unwrap());
    let done = run(
        &mut mom,
        &format!("{ADMIN}#delete-user"),
        &[("accountjids", &["mom@localhost"])],
    );
    assert_eq!(note(&done).0, "error", "not one's own account: {done}");
}

/// What in-band registration (an invite naming a circle) does, in the server process:
/// the account made with its role and circles in one storage call, then the notices
/// applied — members online get the new contact at once, and see each other online.
#[test]
fn a_registration_joins_its_circle_and_members_see_it_at_once() {
    use roost::circles::{self, Notices};
    let s = server();
    let mut mom = login(&s, "mom");
    mom.roster_get();
    let mut dad = login(&s, "dad");
    dad.roster_get();
    let core = s.core().clone();
    let notices = smol::block_on(core.storage.call(|c| {
        let mut n = Notices::new("localhost");
        circles::create(c, "localhost", "Cousins", false, &mut n).map_err(to_storage)?;
        circles::join(c, "localhost", "cousins", "mom", &mut n).map_err(to_storage)?;
        circles::join(c, "localhost", "cousins", "dad", &mut n).map_err(to_storage)?;
        Ok(n)
    }))
    .unwrap();
    smol::block_on(notices.apply(&core));
    let is_push = |jid: &'static str| {
        move |e: &Element| {
            e.name == "iq"
                && e.to_string()
                    .contains(&format!("jid='{jid}' subscription='both'"))
        }
    };
    mom.wait_for("dad in mom's roster", is_push("dad@localhost"));
    mom.wait_for("dad's presence", |e| {
        e.name == "presence" && e.attr("from") == Some("dad@localhost/phone")
    });
    // A new account with a role and a circle, as the invite's registration makes it.
    let notices = smol::block_on(core.storage.call(|c| {
        let creds = roost::sasl::StoredCredentials::derive("kid2-password", 4096);
        let tx = c.savepoint()?;
        roost::storage::accounts::create(&tx, "localhost", "kid2", &creds)
            .map_err(|e| roost::storage::StorageError::Refused(e.to_string()))?;
        let n = circles::on_register(&tx, "localhost", "kid2", Role::Limited, Some("cousins"))
            .map_err(to_storage)?;
        tx.commit()?;
        Ok(n)
    }))
    .unwrap();
    smol::block_on(notices.apply(&core));
    mom.wait_for("kid2 in mom's roster", is_push("kid2@localhost"));
    dad.wait_for("kid2 in dad's roster", is_push("kid2@localhost"));
    assert_eq!(
        core.state::<roost::roles::Roles>().get("kid2"),
        Role::Limited
    );
    let mut kid2 = Client::login(&s, "kid2", "kid2-password", "tablet");
    let r = kid2.roster_get().to_string();
    assert!(
        r.contains("mom@localhost") && r.contains("dad@localhost") && r.contains("Cousins"),
        "{r}"
    );
    let bm = kid2.iq("<iq type='get' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>");
    assert!(bm.to_string().contains("cousins@groups.localhost"), "{bm}");
}

fn to_storage(e: roost::circles::CircleError) -> roost::storage::StorageError {
    roost::storage::StorageError::Refused(e.to_string())
}
