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
