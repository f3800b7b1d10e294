//! Archiving (XEP-0313 §5.1.1): which messages are archived, their XEP-0359 stanza-ids,
//! the plan of who keeps a copy under which preferences (XEP-0441), and the write itself.

use super::account_key;
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::stanza::hints::{self, Hint};
use crate::stanza::mam::{DefaultMode, Prefs};
use crate::stanza::sid;
use crate::stanza::MessageType;
use crate::storage::archive::{self as store, NewEntry};
use crate::storage::StorageError;
use crate::xml::Element;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Is this message archived at all (XEP-0313 §5.1.1)? Chat and normal messages with a
/// body, a XEP-0353 call invitation (a missed call shows later) or a XEP-0334 `<store/>`
/// hint; never with `<no-store/>` or
/// `<no-permanent-store/>`; never groupchat, headline or error.
pub fn archivable(message: &Element) -> bool {
    if !matches!(
        MessageType::of(message),
        MessageType::Chat | MessageType::Normal
    ) {
        return false;
    }
    if hints::has(message, Hint::NoStore) || hints::has(message, Hint::NoPermanentStore) {
        return false;
    }
    message.child("body", ns::CLIENT).is_some()
        || hints::has(message, Hint::Store)
        || crate::stanza::call::is_call(message)
}

/// Removes stanza-ids that claim to be by this server or one of its accounts: only the
/// server adds those (XEP-0359 §5), so a client must not be able to plant one.
pub fn strip_forged_ids(domain: &str, message: &mut Element) {
    let n = sid::remove_where(message, |by| {
        Jid::parse(by).is_ok_and(|j| j.domain() == domain)
    });
    if n > 0 {
        log::debug!("archive: removed {n} forged stanza-id(s)");
    }
}

/// `message` with `<stanza-id by='…' id='…'/>` added if it was archived for `by`.
pub fn stamp(mut message: Element, by: &BareJid, id: Option<&str>) -> Element {
    if let Some(id) = id {
        message.push(sid::stanza_id(by.as_str(), id));
    }
    message
}

/// A new archive id: the time in milliseconds (9 characters), then 75 random bits (15), in
/// base32 with an alphabet in ASCII order (24 characters). Unguessable and, in practice,
/// unique (the database refuses a duplicate); ids sort by time, so the archive's unique
/// index grows at its end instead of at a random page for every message.
pub fn new_id() -> String {
    let mut bytes = [0u8; 10];
    crate::util::random(&mut bytes);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    id_at(ms, &bytes)
}

fn id_at(ms: u64, random: &[u8; 10]) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(24);
    let mut push = |n: u64, chars: u32| {
        for i in (0..chars).rev() {
            out.push(ALPHABET[(n >> (i * 5)) as usize & 31] as char);
        }
    };
    push(ms, 9);
    for chunk in random.chunks(5) {
        let n = chunk.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        push(n, 8);
    }
    out.truncate(24);
    out
}

/// One account's side of an archived message.
#[derive(Clone, Debug)]
struct Side {
    host: String,
    user: String,
    /// The other party.
    with_bare: String,
    with_full: String,
    id: String,
}

impl Side {
    fn new(account: &BareJid, with: &Jid) -> Side {
        let (host, user) = account_key(account);
        Side {
            host,
            user,
            with_bare: with.to_bare().to_string(),
            with_full: with.to_string(),
            id: new_id(),
        }
    }

    /// Messages to oneself (another resource, or no `to`).
    fn is_self(&self) -> bool {
        self.with_bare == format!("{}@{}", self.user, self.host)
    }
}

/// What archiving one message will write: run it with [`commit`] on the storage thread.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The sender's account (`None` when it is also the recipient's).
    sender: Option<Side>,
    recipient: Side,
    /// The message as archived.
    stanza: String,
}

/// The archive ids a message got, if it was archived for the sender's account, the
/// recipient's, or both (the same id when they are one account).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archived {
    pub sender: Option<String>,
    pub recipient: Option<String>,
}

/// The plan for a message from `sender` that routing accepted for local account
/// `recipient`, or `None` if it is not archived at all. The sender's account gets its copy
/// only if `sender_is_local`.
pub fn plan(
    message: &Element,
    sender: &Jid,
    recipient: &BareJid,
    sender_is_local: bool,
) -> Option<Plan> {
    if !archivable(message) {
        return None;
    }
    // The other party as the sender named it: a full JID, or the bare one (also when the
    // message had no `to`, which is the sender's own account, RFC 6120 §10.3).
    let to = message
        .attr("to")
        .and_then(|t| Jid::parse(t).ok())
        .filter(|j| j.to_bare() == *recipient)
        .unwrap_or_else(|| Jid::Bare(recipient.clone()));
    let mut stored = message.clone();
    stored.set_attr("to", to.to_string());
    let own = sender.to_bare();
    Some(Plan {
        sender: (sender_is_local && own != *recipient).then(|| Side::new(&own, &to)),
        recipient: Side::new(recipient, sender),
        stanza: stored.to_client_string(),
    })
}

/// The plan for a message from local `sender` to `to` at another domain: archived only
/// for the sender's account (its one side; the ids of [`Archived`] are both that side's).
pub fn plan_outgoing(message: &Element, sender: &FullJid, to: &Jid) -> Option<Plan> {
    if !archivable(message) {
        return None;
    }
    Some(Plan {
        sender: None,
        recipient: Side::new(&sender.bare(), to),
        stanza: message.to_client_string(),
    })
}

/// XEP-0441 §3 for one message: archived, not, or only with a contact in the roster. A
/// bare JID in a list covers all its resources; `never` wins over `always`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Archive,
    Skip,
    IfInRoster,
}

/// The preferences' decision for a message with `with_full` (bare or full).
pub fn decide(prefs: &Prefs, with_bare: &str, with_full: &str) -> Decision {
    let listed = |l: &[String]| l.iter().any(|j| j == with_bare || j == with_full);
    if listed(&prefs.never) {
        Decision::Skip
    } else if listed(&prefs.always) {
        Decision::Archive
    } else {
        match prefs.default {
            DefaultMode::Always => Decision::Archive,
            DefaultMode::Never => Decision::Skip,
            DefaultMode::Roster => Decision::IfInRoster,
        }
    }
}

/// Does `side`'s account want the message, as far as its preferences tell without the
/// roster? `None`: only the roster can tell.
fn known_wanted(prefs: &Prefs, side: &Side) -> Option<bool> {
    match decide(prefs, &side.with_bare, &side.with_full) {
        Decision::Archive => Some(true),
        Decision::Skip => Some(false),
        // One's own account counts as a contact.
        Decision::IfInRoster => side.is_self().then_some(true),
    }
}

/// Does this account's archive want the message?
fn wanted(conn: &Connection, side: &Side) -> Result<bool, StorageError> {
    let prefs = store::prefs(conn, &side.host, &side.user)?.unwrap_or_default();
    match known_wanted(&prefs, side) {
        Some(w) => Ok(w),
        None => Ok(
            crate::storage::roster::item(conn, &side.host, &side.user, &side.with_bare)?
                .is_some_and(|i| i.in_roster),
        ),
    }
}

fn insert(conn: &Connection, plan: &Plan, side: &Side, now: i64) -> Result<(), StorageError> {
    store::insert(
        conn,
        &NewEntry {
            host: &side.host,
            username: &side.user,
            id: &side.id,
            with_bare: &side.with_bare,
            with_full: &side.with_full,
            stanza: &plan.stanza,
            now,
        },
    )
    .map(drop)
}

/// Which sides want the message, as decided (sender, recipient) → the ids it gets.
fn archived(plan: &Plan, sender: bool, recipient: bool) -> Archived {
    let recipient = recipient.then(|| plan.recipient.id.clone());
    let sender = match &plan.sender {
        Some(s) => sender.then(|| s.id.clone()),
        None => recipient.clone(),
    };
    Archived { sender, recipient }
}

/// Writes the sides of a planned message that want it (`sender` counts only when the
/// sender's account is not the recipient's).
fn write(
    conn: &Connection,
    plan: &Plan,
    sender: bool,
    recipient: bool,
    now: i64,
) -> Result<(), StorageError> {
    if let Some(s) = plan.sender.as_ref().filter(|_| sender) {
        insert(conn, plan, s, now)?;
    }
    if recipient {
        insert(conn, plan, &plan.recipient, now)?;
    }
    Ok(())
}

/// Archives a planned message for each account whose preferences want it (on the storage
/// thread, inside the caller's transaction if it has one).
pub fn commit(conn: &Connection, plan: &Plan, now: i64) -> Result<Archived, StorageError> {
    let sender = match &plan.sender {
        Some(s) => wanted(conn, s)?,
        None => false,
    };
    let recipient = wanted(conn, &plan.recipient)?;
    write(conn, plan, sender, recipient, now)?;
    Ok(archived(plan, sender, recipient))
}

/// Accounts' archive preferences, read once per account and kept while the server runs
/// (they change only through [`prefs`](super::prefs)), so that routing a message needs no storage round
/// trip to know whether and under which id it is archived. Keyed by host, then username,
/// so that a lookup borrows the names instead of copying them.
#[derive(Default)]
pub struct PrefsCache(Mutex<HashMap<String, HashMap<String, Arc<Prefs>>>>);

impl PrefsCache {
    fn get(&self, host: &str, user: &str) -> Option<Arc<Prefs>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(host)?.get(user).cloned()
    }

    pub(super) fn put(&self, host: String, user: String, prefs: Prefs) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host).or_default().insert(user, Arc::new(prefs));
    }
}

/// [`known_wanted`] from the cached preferences (read from the database the first time);
/// `None` also when they cannot be read.
async fn cached_wanted(core: &Core, side: &Side) -> Option<bool> {
    let prefs = match core.state::<PrefsCache>().get(&side.host, &side.user) {
        Some(p) => p,
        None => {
            let (host, user) = (side.host.clone(), side.user.clone());
            let stored = core
                .storage
                .call(move |c| store::prefs(c, &host, &user))
                .await
                .ok()?
                .unwrap_or_default();
            core.state::<PrefsCache>()
                .put(side.host.clone(), side.user.clone(), stored.clone());
            Arc::new(stored)
        }
    };
    known_wanted(&prefs, side)
}

/// Archives a planned message for the accounts that want it and returns its ids.
///
/// When the preferences in [`PrefsCache`] decide it, the write is queued on the storage
/// thread and the message is handed on without waiting for it: storage jobs run in order,
/// so any later archive query sees the message, and the disk write is group-committed
/// with others. (A power cut in the [`crate::storage::COMMIT_DELAY`] before that commit
/// loses the archive copy of a message that was already delivered.) Otherwise (a `roster`
/// default that needs the roster) the write is awaited as one storage call.
pub async fn archive(core: &Core, plan: Plan) -> Result<Archived, StorageError> {
    let now = crate::util::datetime::unix_now();
    let sender = match &plan.sender {
        Some(s) => cached_wanted(core, s).await,
        None => Some(false),
    };
    let recipient = cached_wanted(core, &plan.recipient).await;
    if let (Some(sender), Some(recipient)) = (sender, recipient) {
        let ids = archived(&plan, sender, recipient);
        if sender || recipient {
            core.storage.submit("archiving a message", move |c| {
                write(c, &plan, sender, recipient, now)
            });
        }
        return Ok(ids);
    }
    core.storage.call(move |c| commit(c, &plan, now)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::archive::tests::msg;

    #[test]
    fn what_is_archived() {
        let yes = [
            "<message type='chat'><body>hi</body></message>",
            "<message><body>normal</body></message>",
            "<message type='bogus'><body>unknown types are normal</body></message>",
            "<message type='chat'><store xmlns='urn:xmpp:hints'/>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
            "<message type='chat'><reject xmlns='urn:xmpp:jingle-message:1' id='c'/></message>",
        ];
        let no = [
            "<message type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/>\
             <no-store xmlns='urn:xmpp:hints'/></message>",
            "<message type='headline'><propose xmlns='urn:xmpp:jingle-message:0' id='c'/></message>",
            "<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message type='groupchat'><body>room</body></message>",
            "<message type='headline'><body>news</body></message>",
            "<message type='error'><body>bounced</body></message>",
            "<message type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>",
            "<message type='chat'><body>hi</body>\
             <no-permanent-store xmlns='urn:xmpp:hints'/></message>",
            "<message type='chat'><body xmlns='urn:other'>not a body</body></message>",
        ];
        for x in yes {
            assert!(archivable(&msg(x)), "{x}");
        }
        for x in no {
            assert!(!archivable(&msg(x)), "{x}");
        }
    }

    #[test]
    fn forged_stanza_ids_go_others_stay() {
        let mut m = msg(
            "<message><stanza-id xmlns='urn:xmpp:sid:0' by='kid@localhost' id='1'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='LOCALHOST' id='2'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example' id='3'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='mom@localhost/phone' id='4'/></message>",
        );
        strip_forged_ids("localhost", &mut m);
        assert_eq!(sid::stanza_ids(&m), vec![("room@muc.example", "3")]);
    }

    #[test]
    fn ids_are_base32_and_differ() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 24);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        assert_ne!(a, b);
        // Later ids sort after earlier ones whatever their random part.
        let early = id_at(1_764_115_200_000, &[0xff; 10]);
        let late = id_at(1_764_115_200_001, &[0; 10]);
        assert!(early < late, "{early} {late}");
        assert_eq!(early.len(), 24);
        assert!(id_at(0, &[0; 10]) < id_at(u64::from(u32::MAX), &[0; 10]));
    }

    #[test]
    fn plans_one_side_per_account() {
        let kid = FullJid::parse("kid@h/phone").unwrap();
        let mom = BareJid::parse("mom@h").unwrap();
        let m = msg("<message type='chat' to='Mom@H/laptop'><body>hi</body></message>");
        let p = plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap();
        let s = p.sender.as_ref().unwrap();
        assert_eq!((s.user.as_str(), s.with_bare.as_str()), ("kid", "mom@h"));
        assert_eq!(s.with_full, "mom@h/laptop");
        assert_eq!(p.recipient.user, "mom");
        assert_eq!(p.recipient.with_full, "kid@h/phone");
        assert_ne!(s.id, p.recipient.id);
        assert!(p.stanza.contains("to='mom@h/laptop'"), "{}", p.stanza);
        // To oneself (no `to`): one side, with oneself, and a `to` in the archived copy.
        let own = kid.bare();
        let p = plan(
            &msg("<message><body>note</body></message>"),
            &Jid::Full(kid.clone()),
            &own,
            true,
        )
        .unwrap();
        assert!(p.sender.is_none());
        assert!(p.recipient.is_self());
        assert!(p.stanza.contains("to='kid@h'"), "{}", p.stanza);
        assert!(plan(
            &msg("<message type='headline'><body>x</body></message>"),
            &Jid::Full(kid.clone()),
            &mom,
            true
        )
        .is_none());
    }

    #[test]
    fn preferences_decide() {
        use Decision::*;
        let p = Prefs {
            default: DefaultMode::Roster,
            always: vec!["dad@h".into(), "mom@h/phone".into()],
            never: vec!["gran@h".into(), "dad@h/work".into()],
        };
        let table = [
            ("dad@h", "dad@h/home", Archive),
            ("dad@h", "dad@h/work", Skip),
            ("mom@h", "mom@h/phone", Archive),
            ("mom@h", "mom@h/tablet", IfInRoster),
            ("gran@h", "gran@h", Skip),
            ("x@y", "x@y/z", IfInRoster),
        ];
        for (bare, full, want) in table {
            assert_eq!(decide(&p, bare, full), want, "{full}");
        }
        let always = Prefs::default();
        assert_eq!(decide(&always, "x@y", "x@y"), Archive);
        let never = Prefs {
            default: DefaultMode::Never,
            ..Prefs::default()
        };
        assert_eq!(decide(&never, "x@y", "x@y"), Skip);
    }

    #[test]
    fn commit_follows_preferences_and_the_roster() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::storage::migrations::migrate(&mut c).unwrap();
        let kid = FullJid::parse("kid@h/phone").unwrap();
        let mom = BareJid::parse("mom@h").unwrap();
        let m = msg("<message type='chat' to='mom@h'><body>hi</body></message>");
        let p = plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap();
        let a = commit(&c, &p, 10).unwrap();
        assert_eq!(
            a.sender.as_deref(),
            Some(p.sender.as_ref().unwrap().id.as_str())
        );
        assert_eq!(a.recipient.as_deref(), Some(p.recipient.id.as_str()));
        // Mom archives only contacts; kid is not in her roster yet.
        let roster_only = Prefs {
            default: DefaultMode::Roster,
            ..Prefs::default()
        };
        store::set_prefs(&c, "h", "mom", &roster_only).unwrap();
        let a = commit(
            &c,
            &plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap(),
            11,
        )
        .unwrap();
        assert!(a.sender.is_some());
        assert_eq!(a.recipient, None);
        crate::storage::roster::put(&c, "h", "mom", &crate::storage::roster::Item::new("kid@h"))
            .unwrap();
        let a = commit(
            &c,
            &plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap(),
            12,
        )
        .unwrap();
        assert!(a.recipient.is_some());
        // Kid never archives mom.
        let never_mom = Prefs {
            never: vec!["mom@h".into()],
            ..Prefs::default()
        };
        store::set_prefs(&c, "h", "kid", &never_mom).unwrap();
        let a = commit(
            &c,
            &plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap(),
            13,
        )
        .unwrap();
        assert_eq!(a.sender, None);
        assert_eq!(store::count(&c, "h", "kid").unwrap(), 3);
        assert_eq!(store::count(&c, "h", "mom").unwrap(), 3);
        // A note to oneself is archived once, and is the sender's and the recipient's.
        let own = kid.bare();
        let note = plan(
            &msg("<message><body>note</body></message>"),
            &Jid::Full(kid.clone()),
            &own,
            true,
        )
        .unwrap();
        let a = commit(&c, &note, 14).unwrap();
        assert!(a.sender.is_some());
        assert_eq!(a.sender, a.recipient);
        assert_eq!(store::count(&c, "h", "kid").unwrap(), 4);
    }
}
