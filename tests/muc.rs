//! Group chats (XEP-0045 and friends) over real sockets: the service, creating and
//! configuring rooms, joining with every status code, messages, history, subject, private
//! messages, affiliations and roles, registration, invitations, destruction, the room
//! archive and moderation, self-ping, occupant ids, avatars, the family room, persistence
//! and the limits.

mod common;

use common::{error_condition, Client, TestServer};
use roost::xml::Element;
use std::time::Duration;

const MUC: &str = "http://jabber.org/protocol/muc";
const USER: &str = "http://jabber.org/protocol/muc#user";
const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const OWNER: &str = "http://jabber.org/protocol/muc#owner";
const SERVICE: &str = "groups.localhost";
const QUIET: Duration = Duration::from_millis(300);

fn server() -> TestServer {
    let s = TestServer::start();
    for u in ["mom", "dad", "kid", "gran"] {
        s.add_user(u, "secret-pw");
    }
    s
}

fn login(s: &TestServer, user: &str) -> Client {
    let mut c = Client::login(s, user, "secret-pw", "phone");
    c.announce("phone", "<presence/>");
    c
}

/// The status codes of a presence's muc#user payload.
fn codes(p: &Element) -> Vec<String> {
    p.child("x", USER)
        .map(|x| {
            x.elements()
                .filter(|e| e.name == "status")
                .filter_map(|e| e.attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn item(p: &Element) -> Element {
    p.child("x", USER)
        .and_then(|x| x.child("item", USER))
        .cloned()
        .unwrap_or_else(|| panic!("no muc#user item in {p}"))
}

/// Joins `room` as `nick` (with `extra` inside the MUC `<x/>`), returning everything up to
/// and including the subject message that ends a join (XEP-0045 §7.2.16).
fn join_with(c: &mut Client, room: &str, nick: &str, extra: &str) -> Vec<Element> {
    c.send(&format!(
        "<presence to='{room}@{SERVICE}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>"
    ));
    let mut got = Vec::new();
    for _ in 0..200 {
        let e = c.element();
        let done = e.name == "message" && e.child("subject", "jabber:client").is_some();
        let failed = e.attr("type") == Some("error");
        got.push(e);
        if done || failed {
            return got;
        }
    }
    panic!("no end of join");
}

fn join(c: &mut Client, room: &str, nick: &str) -> Vec<Element> {
    join_with(c, room, nick, "")
}

/// The own presence (status 110) among a join's stanzas.
fn own(got: &[Element]) -> &Element {
    got.iter()
        .find(|e| e.name == "presence" && codes(e).contains(&"110".to_owned()))
        .unwrap_or_else(|| panic!("no self-presence in {got:?}"))
}

fn join_error(got: &[Element]) -> String {
    let last = got.last().expect("something");
    assert_eq!(last.attr("type"), Some("error"), "{last}");
    error_condition(last).unwrap()
}

/// Creates a room as an instant room with `fields` (`var=value` pairs) submitted.
fn create(c: &mut Client, room: &str, nick: &str, fields: &[(&str, &str)]) {
    let got = join(c, room, nick);
    assert!(codes(own(&got)).contains(&"201".to_owned()), "{got:?}");
    configure(c, room, fields);
}

fn configure(c: &mut Client, room: &str, fields: &[(&str, &str)]) {
    let mut f = String::new();
    for (var, value) in fields {
        f.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    let r = c.iq(&format!(
        "<iq type='set' id='cfg' to='{room}@{SERVICE}'><query xmlns='{OWNER}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
         {f}</x></query></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
}

fn private_group() -> Vec<(&'static str, &'static str)> {
    vec![
        ("muc#roomconfig_persistentroom", "1"),
        ("muc#roomconfig_membersonly", "1"),
        ("muc#roomconfig_whois", "anyone"),
        ("muc#roomconfig_publicroom", "0"),
        ("muc#roomconfig_enablearchiving", "1"),
    ]
}

fn set_affiliation(c: &mut Client, room: &str, jid: &str, aff: &str) -> Element {
    c.iq(&format!(
        "<iq type='set' id='aff' to='{room}@{SERVICE}'><query xmlns='{ADMIN}'>\
         <item affiliation='{aff}' jid='{jid}'><reason>because</reason></item></query></iq>"
    ))
}

fn say(c: &mut Client, room: &str, text: &str) {
    c.send(&format!(
        "<message type='groupchat' to='{room}@{SERVICE}' id='m-{text}'><body>{text}</body></message>"
    ));
}

/// Waits for the group message with `text`.
fn heard(c: &mut Client, text: &str) -> Element {
    c.wait_for(text, |e| {
        e.name == "message"
            && e.child("body", "jabber:client")
                .map(|b| b.text())
                .as_deref()
                == Some(text)
    })
}

fn features(q: &Element) -> Vec<String> {
    q.elements()
        .filter(|e| e.name == "feature")
        .filter_map(|e| e.attr("var").map(str::to_owned))
        .collect()
}

fn disco_info(c: &mut Client, to: &str) -> Element {
    let r = c.iq(&format!(
        "<iq type='get' id='di' to='{to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    r.first_element().unwrap().clone()
}

#[test]
fn the_service_is_discovered_and_lists_public_rooms_only() {
    let s = server();
    let mut mom = login(&s, "mom");
    let items = mom.iq("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    assert!(items.to_string().contains(SERVICE), "{items}");
    let info = disco_info(&mut mom, SERVICE);
    let id = info
        .child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("conference"), Some("text"))
    );
    assert!(features(&info).contains(&MUC.to_owned()));
    create(
        &mut mom,
        "picnic",
        "Mom",
        &[("muc#roomconfig_roomname", "Picnic")],
    );
    create(
        &mut mom,
        "secret",
        "Mom",
        &[("muc#roomconfig_publicroom", "0")],
    );
    let items = mom.iq(&format!("<iq type='get' id='i2' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"));
    let q = items.first_element().unwrap();
    let jids: Vec<&str> = q.elements().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, [format!("picnic@{SERVICE}")], "{items}");
    assert_eq!(q.elements().next().unwrap().attr("name"), Some("Picnic"));
    // A unique room name (XEP-0045 §10.1.4).
    let u = mom.iq(&format!("<iq type='get' id='u' to='{SERVICE}'><unique xmlns='http://jabber.org/protocol/muc#unique'/></iq>"));
    assert!(!u.first_element().unwrap().text().is_empty());
    // Nothing else is served at the service's own JID.
    let r = mom.iq(&format!(
        "<iq type='get' id='v' to='{SERVICE}'><query xmlns='jabber:iq:version'/></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn a_reserved_room_is_locked_until_configured_and_its_features_follow_the_form() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let got = join(&mut mom, "kids", "Mom");
    let me = own(&got);
    assert!(codes(me).contains(&"201".to_owned()), "{me}");
    assert_eq!(item(me).attr("affiliation"), Some("owner"));
    assert_eq!(item(me).attr("role"), Some("moderator"));
    // Locked: nobody else enters or sees it.
    assert_eq!(join_error(&join(&mut dad, "kids", "Dad")), "item-not-found");
    let form = mom.iq(&format!(
        "<iq type='get' id='f' to='kids@{SERVICE}'><query xmlns='{OWNER}'/></iq>"
    ));
    for var in [
        "muc#roomconfig_roomname",
        "muc#roomconfig_roomdesc",
        "muc#roomconfig_persistentroom",
        "muc#roomconfig_publicroom",
        "muc#roomconfig_membersonly",
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_passwordprotectedroom",
        "muc#roomconfig_roomsecret",
        "muc#roomconfig_whois",
        "muc#roomconfig_maxusers",
        "muc#roomconfig_allowinvites",
        "muc#roomconfig_changesubject",
        "muc#roomconfig_allowpm",
        "muc#roomconfig_enablearchiving",
        "muc#roomconfig_presencebroadcast",
    ] {
        assert!(form.to_string().contains(var), "{var} missing from {form}");
    }
    // Not an owner: forbidden.
    let r = dad.iq(&format!(
        "<iq type='get' id='f' to='kids@{SERVICE}'><query xmlns='{OWNER}'/></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    let mut fields = private_group();
    fields.push(("muc#roomconfig_roomdesc", "the kids"));
    configure(&mut mom, "kids", &fields);
    let info = disco_info(&mut mom, &format!("kids@{SERVICE}"));
    let f = features(&info);
    for want in [
        "muc_persistent",
        "muc_membersonly",
        "muc_nonanonymous",
        "muc_unsecured",
        "muc_unmoderated",
        "muc_hidden",
        "urn:xmpp:mam:2",
        "urn:xmpp:sid:0",
        "urn:xmpp:occupant-id:0",
        "http://jabber.org/protocol/muc#self-ping-optimization",
    ] {
        assert!(f.contains(&want.to_owned()), "{want} not in {f:?}");
    }
    let text = info.to_string();
    assert!(
        text.contains("muc#roominfo") && text.contains("the kids"),
        "{info}"
    );
    // Unlocked, but members-only now.
    assert_eq!(
        join_error(&join(&mut dad, "kids", "Dad")),
        "registration-required"
    );
    let r = dad.iq(&format!(
        "<iq type='get' id='f2' to='kids@{SERVICE}'><query xmlns='{OWNER}'/></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // A bad form is refused.
    let r = mom.iq(&format!(
        "<iq type='set' id='bad' to='kids@{SERVICE}'><query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='muc#roomconfig_whois'><value>everyone</value></field></x></query></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
}

#[test]
fn joining_chatting_nick_changes_and_leaving() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    create(
        &mut mom,
        "home",
        "Mom",
        &[("muc#roomconfig_whois", "anyone")],
    );
    let got = join(&mut dad, "home", "Dad");
    let me = own(&got);
    let c = codes(me);
    assert!(
        c.contains(&"100".to_owned()) && c.contains(&"170".to_owned()),
        "{me}"
    );
    // Mom's presence came before dad's own, with her real JID (non-anonymous).
    let mom_p = got
        .iter()
        .find(|e| e.attr("from") == Some(&format!("home@{SERVICE}/Mom")))
        .expect("mom's presence");
    assert_eq!(item(mom_p).attr("jid"), Some("mom@localhost/phone"));
    assert!(mom_p
        .child("occupant-id", "urn:xmpp:occupant-id:0")
        .is_some());
    let dad_seen = mom.wait_for("dad joins", |e| {
        e.attr("from") == Some(&format!("home@{SERVICE}/Dad"))
    });
    assert_eq!(item(&dad_seen).attr("role"), Some("participant"));
    // A taken nick.
    let mut kid = login(&s, "kid");
    assert_eq!(join_error(&join(&mut kid, "home", "Mom")), "conflict");
    // A message to everyone, stamped by the room.
    say(&mut dad, "home", "hello");
    let m = heard(&mut mom, "hello");
    assert_eq!(m.attr("from"), Some(format!("home@{SERVICE}/Dad").as_str()));
    assert_eq!(m.attr("type"), Some("groupchat"));
    let sid = m.child("stanza-id", "urn:xmpp:sid:0").expect("stanza-id");
    assert_eq!(sid.attr("by"), Some(format!("home@{SERVICE}").as_str()));
    let echo = heard(&mut dad, "hello");
    assert_eq!(echo.attr("id"), Some("m-hello"), "the sender's id is kept");
    // Not in the room: not-acceptable.
    say(&mut kid, "home", "sneaky");
    let e = kid.wait_for("error", |e| e.attr("type") == Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
    // A nick change: 303 with the new nick, then the new presence.
    dad.send(&format!("<presence to='home@{SERVICE}/Papa'/>"));
    let gone = mom.wait_for("303", |e| codes(e).contains(&"303".to_owned()));
    assert_eq!(item(&gone).attr("nick"), Some("Papa"));
    mom.wait_for("Papa", |e| {
        e.attr("from") == Some(&format!("home@{SERVICE}/Papa"))
    });
    // A private message through the room.
    dad.send(&format!(
        "<message type='chat' to='home@{SERVICE}/Mom'><body>psst</body></message>"
    ));
    let pm = heard(&mut mom, "psst");
    assert_eq!(
        pm.attr("from"),
        Some(format!("home@{SERVICE}/Papa").as_str())
    );
    assert!(pm.child("x", USER).is_some());
    dad.send(&format!(
        "<message type='chat' to='home@{SERVICE}/Nobody' id='pm2'><body>?</body></message>"
    ));
    let e = dad.wait_for("error", |e| e.attr("id") == Some("pm2"));
    assert_eq!(error_condition(&e).as_deref(), Some("item-not-found"));
    // Leaving.
    dad.send(&format!(
        "<presence type='unavailable' to='home@{SERVICE}/Papa'/>"
    ));
    let bye = dad.wait_for("own unavailable", |e| e.attr("type") == Some("unavailable"));
    assert!(codes(&bye).contains(&"110".to_owned()));
    mom.wait_for("dad leaves", |e| {
        e.attr("type") == Some("unavailable")
            && e.attr("from") == Some(&format!("home@{SERVICE}/Papa"))
    });
    // A session that ends without leaving leaves too.
    join(&mut kid, "home", "Kid");
    mom.wait_for("kid joins", |e| {
        e.attr("from") == Some(&format!("home@{SERVICE}/Kid"))
    });
    drop(kid);
    mom.wait_for("kid gone", |e| {
        e.attr("type") == Some("unavailable")
            && e.attr("from") == Some(&format!("home@{SERVICE}/Kid"))
    });
}

#[test]
fn history_and_subject_on_join() {
    let s = server();
    let mut mom = login(&s, "mom");
    create(&mut mom, "news", "Mom", &[]);
    mom.send(&format!(
        "<message type='groupchat' to='news@{SERVICE}'><subject>Sunday lunch</subject></message>"
    ));
    mom.wait_for("subject", |e| e.child("subject", "jabber:client").is_some());
    for i in 1..=5 {
        say(&mut mom, "news", &format!("m{i}"));
        heard(&mut mom, &format!("m{i}"));
    }
    let mut dad = login(&s, "dad");
    let got = join_with(&mut dad, "news", "Dad", "<history maxstanzas='2'/>");
    let bodies: Vec<String> = got
        .iter()
        .filter_map(|e| e.child("body", "jabber:client").map(|b| b.text()))
        .collect();
    assert_eq!(bodies, ["m4", "m5"]);
    let delayed = got
        .iter()
        .find(|e| e.child("body", "jabber:client").is_some())
        .unwrap();
    assert!(
        delayed.child("delay", "urn:xmpp:delay").is_some(),
        "{delayed}"
    );
    let subject = got.last().unwrap();
    assert_eq!(
        subject.child("subject", "jabber:client").unwrap().text(),
        "Sunday lunch"
    );
    assert_eq!(
        subject.attr("from"),
        Some(format!("news@{SERVICE}/Mom").as_str())
    );
    // maxchars=0: no history, still the subject.
    let mut kid = login(&s, "kid");
    let got = join_with(&mut kid, "news", "Kid", "<history maxchars='0'/>");
    assert!(
        got.iter()
            .all(|e| e.child("body", "jabber:client").is_none()),
        "{got:?}"
    );
    // `since` in the future: nothing; in the past: everything.
    let mut gran = login(&s, "gran");
    let got = join_with(
        &mut gran,
        "news",
        "Gran",
        "<history since='2999-01-01T00:00:00Z'/>",
    );
    assert!(
        got.iter()
            .all(|e| e.child("body", "jabber:client").is_none()),
        "{got:?}"
    );
    gran.send(&format!(
        "<presence type='unavailable' to='news@{SERVICE}/Gran'/>"
    ));
    gran.wait_for("left", |e| e.attr("type") == Some("unavailable"));
    let got = join_with(
        &mut gran,
        "news",
        "Gran",
        "<history since='2000-01-01T00:00:00Z'/>",
    );
    let n = got
        .iter()
        .filter(|e| e.child("body", "jabber:client").is_some())
        .count();
    assert_eq!(n, 5);
    // Participants may not change the subject by default.
    kid.send(&format!(
        "<message type='groupchat' to='news@{SERVICE}' id='s'><subject>mine</subject></message>"
    ));
    let e = kid.wait_for("error", |e| e.attr("id") == Some("s"));
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
}

#[test]
fn passwords_members_bans_and_kicks() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let mut kid = login(&s, "kid");
    create(
        &mut mom,
        "locked",
        "Mom",
        &[
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "sesame"),
        ],
    );
    assert_eq!(
        join_error(&join(&mut dad, "locked", "Dad")),
        "not-authorized"
    );
    let got = join_with(&mut dad, "locked", "Dad", "<password>sesame</password>");
    own(&got);
    // Kick (307) with actor and reason.
    join_with(&mut kid, "locked", "Kid", "<password>sesame</password>");
    let r = mom.iq(&format!(
        "<iq type='set' id='k' to='locked@{SERVICE}'><query xmlns='{ADMIN}'>\
         <item nick='Kid' role='none'><reason>bedtime</reason></item></query></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let kicked = kid.wait_for("kicked", |e| e.attr("type") == Some("unavailable"));
    let c = codes(&kicked);
    assert!(
        c.contains(&"307".to_owned()) && c.contains(&"110".to_owned()),
        "{kicked}"
    );
    assert!(kicked.to_string().contains("bedtime"));
    // A participant cannot kick.
    let r = dad.iq(&format!(
        "<iq type='set' id='k2' to='locked@{SERVICE}'><query xmlns='{ADMIN}'><item nick='Mom' role='none'/></query></iq>"
    ));
    assert!(
        matches!(
            error_condition(&r).as_deref(),
            Some("forbidden" | "not-allowed")
        ),
        "{r}"
    );
    // Ban (301): out, and never back, and hears nothing more.
    let r = set_affiliation(&mut mom, "locked", "dad@localhost", "outcast");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let banned = dad.wait_for("banned", |e| e.attr("type") == Some("unavailable"));
    assert!(codes(&banned).contains(&"301".to_owned()), "{banned}");
    assert_eq!(
        join_error(&join_with(
            &mut dad,
            "locked",
            "Dad",
            "<password>sesame</password>"
        )),
        "forbidden"
    );
    say(&mut mom, "locked", "after the ban");
    heard(&mut mom, "after the ban");
    dad.assert_silent(QUIET);
    // The outcast list is the admins'.
    let list = mom.iq(&format!(
        "<iq type='get' id='l' to='locked@{SERVICE}'><query xmlns='{ADMIN}'><item affiliation='outcast'/></query></iq>"
    ));
    assert!(list.to_string().contains("dad@localhost"), "{list}");
}

#[test]
fn a_private_group_shows_members_their_list_and_real_jids() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    create(&mut mom, "us", "Mom", &private_group());
    let r = set_affiliation(&mut mom, "us", "dad@localhost", "member");
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let got = join(&mut dad, "us", "Dad");
    let mom_p = got
        .iter()
        .find(|e| e.attr("from") == Some(&format!("us@{SERVICE}/Mom")))
        .unwrap();
    assert_eq!(item(mom_p).attr("jid"), Some("mom@localhost/phone"));
    // OMEMO needs the member list: members read it.
    for aff in ["member", "owner"] {
        let list = dad.iq(&format!(
            "<iq type='get' id='l-{aff}' to='us@{SERVICE}'><query xmlns='{ADMIN}'><item affiliation='{aff}'/></query></iq>"
        ));
        assert_eq!(list.attr("type"), Some("result"), "{list}");
    }
    let list = dad.iq(&format!(
        "<iq type='get' id='l' to='us@{SERVICE}'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>"
    ));
    assert!(list.to_string().contains("dad@localhost"));
    // Losing membership of a members-only room removes the occupant (321).
    set_affiliation(&mut mom, "us", "dad@localhost", "none");
    let out = dad.wait_for("removed", |e| e.attr("type") == Some("unavailable"));
    assert!(codes(&out).contains(&"321".to_owned()), "{out}");
    // A room keeps an owner.
    let r = set_affiliation(&mut mom, "us", "mom@localhost", "member");
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    // A mediated invitation makes the invitee a member.
    mom.send(&format!(
        "<message to='us@{SERVICE}'><x xmlns='{USER}'><invite to='dad@localhost'><reason>come back</reason></invite></x></message>"
    ));
    let inv = dad.wait_for("invite", |e| {
        e.child("x", USER)
            .is_some_and(|x| x.child("invite", USER).is_some())
    });
    assert_eq!(inv.attr("from"), Some(format!("us@{SERVICE}").as_str()));
    assert!(inv.to_string().contains("mom@localhost") && inv.to_string().contains("come back"));
    own(&join(&mut dad, "us", "Dad"));
    // A decline reaches the inviter.
    let mut kid = login(&s, "kid");
    kid.send(&format!(
        "<message to='us@{SERVICE}'><x xmlns='{USER}'><decline to='mom@localhost'><reason>busy</reason></decline></x></message>"
    ));
    let d = mom.wait_for("decline", |e| {
        e.child("x", USER)
            .is_some_and(|x| x.child("decline", USER).is_some())
    });
    assert!(d.to_string().contains("kid@localhost"), "{d}");
}

#[test]
fn voice_in_moderated_rooms_and_registered_nicks() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut kid = login(&s, "kid");
    create(
        &mut mom,
        "quiet",
        "Mom",
        &[("muc#roomconfig_moderatedroom", "1")],
    );
    let got = join(&mut kid, "quiet", "Kid");
    assert_eq!(item(own(&got)).attr("role"), Some("visitor"));
    mom.wait_for("kid joins", |e| {
        e.attr("from") == Some(&format!("quiet@{SERVICE}/Kid"))
    });
    say(&mut kid, "quiet", "can I talk");
    let e = kid.wait_for("error", |e| e.attr("type") == Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    // A voice request reaches the moderator; approving it gives voice.
    kid.send(&format!(
        "<message to='quiet@{SERVICE}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#role'><value>participant</value></field></x></message>"
    ));
    let req = mom.wait_for("voice request", |e| e.child("x", "jabber:x:data").is_some());
    assert!(req.to_string().contains("Kid"), "{req}");
    mom.send(&format!(
        "<message to='quiet@{SERVICE}'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#roomnick'><value>Kid</value></field>\
         <field var='muc#request_allow'><value>true</value></field></x></message>"
    ));
    let p = kid.wait_for("voice", |e| {
        e.name == "presence" && codes(e).contains(&"110".to_owned())
    });
    assert_eq!(item(&p).attr("role"), Some("participant"));
    say(&mut kid, "quiet", "thanks");
    heard(&mut mom, "thanks");
    // Registering a nick (muc#register).
    let form = kid.iq(&format!(
        "<iq type='get' id='rg' to='quiet@{SERVICE}'><query xmlns='jabber:iq:register'/></iq>"
    ));
    assert!(form.to_string().contains("muc#register_roomnick"), "{form}");
    let r = kid.iq(&format!(
        "<iq type='set' id='rs' to='quiet@{SERVICE}'><query xmlns='jabber:iq:register'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
         <field var='muc#register_roomnick'><value>Kiddo</value></field></x></query></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let again = kid.iq(&format!(
        "<iq type='get' id='rg2' to='quiet@{SERVICE}'><query xmlns='jabber:iq:register'/></iq>"
    ));
    assert!(again.to_string().contains("registered") && again.to_string().contains("Kiddo"));
    // Somebody else cannot take it.
    let mut dad = login(&s, "dad");
    assert_eq!(join_error(&join(&mut dad, "quiet", "Kiddo")), "conflict");
    // Joining with another nick, the kid gets the registered one (210).
    kid.send(&format!(
        "<presence type='unavailable' to='quiet@{SERVICE}/Kid'/>"
    ));
    kid.wait_for("left", |e| e.attr("type") == Some("unavailable"));
    let got = join(&mut kid, "quiet", "Other");
    let me = own(&got);
    assert!(codes(me).contains(&"210".to_owned()), "{me}");
    assert_eq!(
        me.attr("from"),
        Some(format!("quiet@{SERVICE}/Kiddo").as_str())
    );
}

#[test]
fn destroying_a_room_tells_everyone_where_to_go() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    create(
        &mut mom,
        "old",
        "Mom",
        &[("muc#roomconfig_persistentroom", "1")],
    );
    join(&mut dad, "old", "Dad");
    let r = dad.iq(&format!(
        "<iq type='set' id='d' to='old@{SERVICE}'><query xmlns='{OWNER}'><destroy jid='new@{SERVICE}'><reason>moved</reason></destroy></query></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let r = mom.iq(&format!(
        "<iq type='set' id='d2' to='old@{SERVICE}'><query xmlns='{OWNER}'><destroy jid='new@{SERVICE}'><reason>moved</reason></destroy></query></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let p = dad.wait_for("destroyed", |e| e.attr("type") == Some("unavailable"));
    let d = p
        .child("x", USER)
        .and_then(|x| x.child("destroy", USER))
        .expect("destroy");
    assert_eq!(d.attr("jid"), Some(format!("new@{SERVICE}").as_str()));
    assert!(d.to_string().contains("moved"));
    let info = mom.iq(&format!(
        "<iq type='get' id='gone' to='old@{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ));
    assert_eq!(error_condition(&info).as_deref(), Some("item-not-found"));
}

#[test]
fn the_room_archive_pages_and_keeps_a_tombstone_of_a_retracted_message() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    create(&mut mom, "log", "Mom", &[]);
    join(&mut dad, "log", "Dad");
    let mut ids = Vec::new();
    for i in 1..=5 {
        say(&mut dad, "log", &format!("n{i}"));
        let m = heard(&mut mom, &format!("n{i}"));
        ids.push(
            m.child("stanza-id", "urn:xmpp:sid:0")
                .unwrap()
                .attr("id")
                .unwrap()
                .to_owned(),
        );
    }
    // Page of 2 from the start, then the next one.
    let q = |c: &mut Client, id: &str, rsm: &str| -> (Vec<Element>, Element) {
        c.send(&format!(
            "<iq type='set' id='{id}' to='log@{SERVICE}'><query xmlns='urn:xmpp:mam:2' queryid='{id}'>\
             <set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set></query></iq>"
        ));
        let mut results = Vec::new();
        loop {
            let e = c.element();
            if e.name == "iq" && e.attr("id") == Some(id) {
                return (results, e);
            }
            if e.child("result", "urn:xmpp:mam:2").is_some() {
                results.push(e);
            }
        }
    };
    let (page, fin) = q(&mut dad, "p1", "<max>2</max>");
    assert_eq!(fin.attr("type"), Some("result"), "{fin}");
    assert_eq!(page.len(), 2);
    assert!(page[0].to_string().contains("n1") && page[1].to_string().contains("n2"));
    assert_eq!(
        page[0].attr("from"),
        Some(format!("log@{SERVICE}").as_str())
    );
    let (page, _) = q(
        &mut dad,
        "p2",
        &format!("<max>2</max><after>{}</after>", ids[1]),
    );
    assert!(page[0].to_string().contains("n3"), "{page:?}");
    // A moderator retracts n2: occupants hear it; the archive keeps a tombstone.
    let r = dad.iq(&format!(
        "<iq type='set' id='mod0' to='log@{SERVICE}'><moderate id='{}' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>", ids[1]
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let r = mom.iq(&format!(
        "<iq type='set' id='mod' to='log@{SERVICE}'><moderate id='{}' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/><reason>oops</reason></moderate></iq>", ids[1]
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let retraction = dad.wait_for("retraction", |e| {
        e.child("retract", "urn:xmpp:message-retract:1").is_some()
    });
    assert!(retraction.to_string().contains(&ids[1]));
    let (page, _) = q(&mut dad, "p3", "<max>5</max>");
    let second = page[1].to_string();
    assert!(
        second.contains("retracted") && !second.contains("<body>"),
        "{second}"
    );
    let r = mom.iq(&format!(
        "<iq type='set' id='mod2' to='log@{SERVICE}'><moderate id='nope' xmlns='urn:xmpp:message-moderate:1'><retract xmlns='urn:xmpp:message-retract:1'/></moderate></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn self_ping_occupant_iqs_occupant_ids_and_the_room_avatar() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    create(&mut mom, "ping", "Mom", &[]);
    let first = join(&mut dad, "ping", "Dad");
    let id1 = own(&first)
        .child("occupant-id", "urn:xmpp:occupant-id:0")
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    let r = dad.iq(&format!(
        "<iq type='get' id='sp' to='ping@{SERVICE}/Dad'><ping xmlns='urn:xmpp:ping'/></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let mut kid = login(&s, "kid");
    let r = kid.iq(&format!(
        "<iq type='get' id='sp2' to='ping@{SERVICE}/Dad'><ping xmlns='urn:xmpp:ping'/></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    // An IQ to another occupant goes through the room, and its answer back.
    dad.send(&format!(
        "<iq type='get' id='vc' to='ping@{SERVICE}/Mom'><vCard xmlns='vcard-temp'/></iq>"
    ));
    let fwd = mom.wait_for("forwarded", |e| {
        e.name == "iq" && e.attr("type") == Some("get")
    });
    assert_eq!(
        fwd.attr("from"),
        Some(format!("ping@{SERVICE}/Dad").as_str())
    );
    mom.send(&format!(
        "<iq type='result' id='{}' to='{}'><vCard xmlns='vcard-temp'><FN>Mom</FN></vCard></iq>",
        fwd.attr("id").unwrap(),
        fwd.attr("from").unwrap()
    ));
    let back = dad.wait_for("answer", |e| e.attr("id") == Some("vc"));
    assert_eq!(
        back.attr("from"),
        Some(format!("ping@{SERVICE}/Mom").as_str())
    );
    assert!(back.to_string().contains("<FN>Mom</FN>") || back.to_string().contains("Mom</FN>"));
    // The occupant id survives a rejoin under another nick.
    dad.send(&format!(
        "<presence type='unavailable' to='ping@{SERVICE}/Dad'/>"
    ));
    dad.wait_for("left", |e| e.attr("type") == Some("unavailable"));
    let again = join(&mut dad, "ping", "Papa");
    let id2 = own(&again)
        .child("occupant-id", "urn:xmpp:occupant-id:0")
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    assert_eq!(id1, id2);
    // A forged occupant id is replaced.
    dad.send(&format!(
        "<message type='groupchat' to='ping@{SERVICE}'><body>x</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"
    ));
    let m = heard(&mut mom, "x");
    let oid: Vec<&str> = m
        .elements()
        .filter(|e| e.name == "occupant-id")
        .filter_map(|e| e.attr("id"))
        .collect();
    assert_eq!(oid, [id1.as_str()]);
    // The owner sets the room's avatar; occupants get its hash (XEP-0486).
    let r = dad.iq(&format!(
        "<iq type='set' id='av0' to='ping@{SERVICE}'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard></iq>"
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let r = mom.iq(&format!(
        "<iq type='set' id='av' to='ping@{SERVICE}'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard></iq>"
    ));
    assert_eq!(r.attr("type"), Some("result"), "{r}");
    let p = dad.wait_for("avatar", |e| e.child("x", "vcard-temp:x:update").is_some());
    // SHA-1 of "hello".
    assert!(
        p.to_string()
            .contains("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
        "{p}"
    );
    let v = kid.iq(&format!(
        "<iq type='get' id='avg' to='ping@{SERVICE}'><vCard xmlns='vcard-temp'/></iq>"
    ));
    assert!(v.to_string().contains("aGVsbG8="), "{v}");
}

#[test]
fn limits_and_bad_input() {
    let s = TestServer::start_with(|c| {
        let m = c.muc.as_mut().unwrap();
        m.max_occupants = 2;
        m.rooms_per_account = 1;
        m.max_message_size = 2000;
    });
    for u in ["mom", "dad", "kid"] {
        s.add_user(u, "secret-pw");
    }
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let mut kid = login(&s, "kid");
    create(&mut mom, "small", "Mom", &[]);
    // Rooms per account.
    assert_eq!(join_error(&join(&mut mom, "second", "Mom")), "not-allowed");
    join(&mut dad, "small", "Dad");
    // Full.
    assert_eq!(
        join_error(&join(&mut kid, "small", "Kid")),
        "service-unavailable"
    );
    // Nicks that are not valid resourceparts: empty, too long.
    for bad in [String::new(), "☃".repeat(400)] {
        kid.send(&format!("<presence to='small@{SERVICE}/{bad}'/>"));
        let e = kid.wait_for("error", |e| e.attr("type") == Some("error"));
        assert_eq!(error_condition(&e).as_deref(), Some("jid-malformed"));
    }
    // Joining without a nick.
    kid.send(&format!(
        "<presence to='small@{SERVICE}'><x xmlns='{MUC}'/></presence>"
    ));
    let e = kid.wait_for("error", |e| e.attr("type") == Some("error"));
    assert_eq!(error_condition(&e).as_deref(), Some("jid-malformed"));
    // Too big.
    let big = "a".repeat(3000);
    dad.send(&format!(
        "<message type='groupchat' to='small@{SERVICE}' id='big'><body>{big}</body></message>"
    ));
    let e = dad.wait_for("error", |e| e.attr("id") == Some("big"));
    assert_eq!(error_condition(&e).as_deref(), Some("policy-violation"));
    // A flood: refused after the burst, while the others keep chatting.
    let mut refused = 0;
    for i in 0..60 {
        dad.send(&format!(
            "<message type='groupchat' to='small@{SERVICE}' id='f{i}'><body>f{i}</body></message>"
        ));
    }
    for e in dad.drain(QUIET) {
        if e.attr("type") == Some("error") {
            assert_eq!(error_condition(&e).as_deref(), Some("resource-constraint"));
            refused += 1;
        }
    }
    assert!(refused >= 20, "only {refused} refused");
    mom.drain(QUIET);
    say(&mut mom, "small", "still here");
    heard(&mut dad, "still here");
}

#[test]
fn rooms_survive_a_restart_and_temporary_rooms_vanish() {
    let mut s = server();
    {
        let mut mom = login(&s, "mom");
        let mut dad = login(&s, "dad");
        create(&mut mom, "keep", "Mom", &private_group());
        set_affiliation(&mut mom, "keep", "dad@localhost", "member");
        join(&mut dad, "keep", "Dad");
        say(&mut dad, "keep", "remember me");
        heard(&mut mom, "remember me");
        create(&mut mom, "brief", "Mom", &[]);
        mom.send(&format!(
            "<presence type='unavailable' to='brief@{SERVICE}/Mom'/>"
        ));
        mom.wait_for("left", |e| {
            e.attr("type") == Some("unavailable")
                && e.attr("from") == Some(&format!("brief@{SERVICE}/Mom"))
        });
        let r = mom.iq(&format!("<iq type='get' id='b' to='brief@{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
        assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    }
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    let s = TestServer::start_in(dir, |_| {});
    let mut dad = login(&s, "dad");
    let got = join(&mut dad, "keep", "Dad");
    let bodies: Vec<String> = got
        .iter()
        .filter_map(|e| e.child("body", "jabber:client").map(|b| b.text()))
        .collect();
    assert!(bodies.contains(&"remember me".to_owned()), "{got:?}");
    let mut kid = login(&s, "kid");
    assert_eq!(
        join_error(&join(&mut kid, "keep", "Kid")),
        "registration-required"
    );
    let f = features(&disco_info(&mut dad, &format!("keep@{SERVICE}")));
    assert!(f.contains(&"muc_membersonly".to_owned()) && f.contains(&"muc_persistent".to_owned()));
}

#[test]
fn the_family_room_has_every_account_with_an_autojoin_bookmark() {
    // Accounts made before the first start (as `roost adduser` does).
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = roost::storage::open_connection(dir.path()).unwrap();
        let creds = roost::sasl::StoredCredentials::derive("secret-pw", 4096);
        for u in ["mom", "dad"] {
            roost::storage::accounts::create(&conn, "localhost", u, &creds).unwrap();
        }
    }
    let s = TestServer::start_in(dir, |_| {});
    let mut dad = login(&s, "dad");
    let r = dad.iq(
        "<iq type='get' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>",
    );
    let text = r.to_string();
    assert!(
        text.contains(&format!("family@{SERVICE}")) && text.contains("autojoin='true'")
            || text.contains("autojoin=\"true\""),
        "{r}"
    );
    let got = join(&mut dad, "family", "Dad");
    assert_eq!(item(own(&got)).attr("affiliation"), Some("member"));
    let f = features(&disco_info(&mut dad, &format!("family@{SERVICE}")));
    for want in [
        "muc_persistent",
        "muc_membersonly",
        "muc_nonanonymous",
        "muc_hidden",
    ] {
        assert!(f.contains(&want.to_owned()), "{want}");
    }
    // An account made while the server runs joins it (as `roost adduser` does), and one
    // deleted leaves it (as `roost deluser` does); the server hears of both.
    {
        let conn = roost::storage::open_connection(s.dir.path()).unwrap();
        let creds = roost::sasl::StoredCredentials::derive("secret-pw", 4096);
        roost::storage::accounts::create(&conn, "localhost", "kid", &creds).unwrap();
        roost::muc::family::account_added(&conn, "localhost", "kid").unwrap();
    }
    let mut kid = login(&s, "kid");
    let mut joined = None;
    for _ in 0..50 {
        let got = join(&mut kid, "family", "Kid");
        if got.last().unwrap().attr("type") != Some("error") {
            joined = Some(got);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    own(&joined.expect("the kid joins within 5 s"));
    {
        let mut conn = roost::storage::open_connection(s.dir.path()).unwrap();
        roost::storage::accounts::delete(&mut conn, "localhost", "dad").unwrap();
    }
    let members = |c: &mut Client| {
        c.iq(&format!(
            "<iq type='get' id='ml' to='family@{SERVICE}'><query xmlns='{ADMIN}'><item affiliation='member'/></query></iq>"
        ))
        .to_string()
    };
    let mut gone = false;
    for _ in 0..50 {
        if !members(&mut kid).contains("dad@localhost") {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gone, "dad is still a member");
    assert!(members(&mut kid).contains("kid@localhost"));
}

#[test]
fn group_chats_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.muc = None);
    s.add_user("mom", "secret-pw");
    let mut mom = login(&s, "mom");
    let items = mom.iq("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    assert!(!items.to_string().contains(SERVICE), "{items}");
    mom.send(&format!(
        "<message type='groupchat' to='x@{SERVICE}' id='g'><body>hi</body></message>"
    ));
    let e = mom.wait_for("error", |e| e.attr("id") == Some("g"));
    assert_eq!(
        error_condition(&e).as_deref(),
        Some("remote-server-not-found")
    );
}

#[test]
fn configuration_changes_are_announced_and_outsiders_leave_a_room_made_members_only() {
    let s = server();
    let mut mom = login(&s, "mom");
    let mut dad = login(&s, "dad");
    let mut kid = login(&s, "kid");
    create(
        &mut mom,
        "club",
        "Mom",
        &[
            ("muc#roomconfig_allowpm", "none"),
            ("muc#roomconfig_presencebroadcast", "moderator"),
        ],
    );
    set_affiliation(&mut mom, "club", "dad@localhost", "member");
    join(&mut dad, "club", "Dad");
    join(&mut kid, "club", "Kid");
    // Only moderators' presence is broadcast: gran sees mom, not dad.
    let got = join(&mut login(&s, "gran"), "club", "Gran");
    let from: Vec<&str> = got
        .iter()
        .filter(|e| e.name == "presence")
        .filter_map(|e| e.attr("from"))
        .collect();
    assert!(
        from.contains(&format!("club@{SERVICE}/Mom").as_str()),
        "{from:?}"
    );
    assert!(
        !from.contains(&format!("club@{SERVICE}/Dad").as_str()),
        "{from:?}"
    );
    // Private messages are off.
    kid.send(&format!(
        "<message type='chat' to='club@{SERVICE}/Dad' id='pm'><body>hi</body></message>"
    ));
    let e = kid.wait_for("error", |e| e.attr("id") == Some("pm"));
    assert_eq!(error_condition(&e).as_deref(), Some("forbidden"));
    configure(
        &mut mom,
        "club",
        &[
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_whois", "anyone"),
        ],
    );
    let m = dad.wait_for("104", |e| {
        e.name == "message" && codes(e).contains(&"104".to_owned())
    });
    assert!(codes(&m).contains(&"172".to_owned()), "{m}");
    let out = kid.wait_for("322", |e| e.attr("type") == Some("unavailable"));
    assert!(codes(&out).contains(&"322".to_owned()), "{out}");
    // A direct invitation (XEP-0249) is an ordinary message between accounts.
    mom.send(&format!(
        "<message to='kid@localhost' id='di'><x xmlns='jabber:x:conference' jid='club@{SERVICE}' reason='join us'/></message>"
    ));
    let d = kid.wait_for("direct invitation", |e| {
        e.child("x", "jabber:x:conference").is_some()
    });
    assert_eq!(d.attr("from"), Some("mom@localhost/phone"));
}

#[test]
fn a_shutdown_tells_occupants_with_332() {
    let mut s = server();
    let mut mom = login(&s, "mom");
    create(&mut mom, "bye", "Mom", &[]);
    s.stop();
    let p = mom.wait_for("332", |e| e.attr("type") == Some("unavailable"));
    assert!(codes(&p).contains(&"332".to_owned()), "{p}");
}
