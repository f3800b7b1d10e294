//! XEP-0313 Message Archive Management for every account, on by default: which messages
//! are archived (§5.1.1, with XEP-0334 hints and XEP-0441 preferences), the XEP-0359
//! stanza-id that names a message's place in the archive (§3.5), archive queries with
//! XEP-0059 paging (§4), the query form, the archive metadata (§5), the preferences, and
//! the expiry of old messages (`--archive-expires-days`).
//!
//! Archiving happens in `delivery`, when routing accepts a message ([`archive`]): the
//! sender's and the recipient's copy are queued on the storage thread (group-committed)
//! before the message is handed on.

use super::{account_key, storage_failed, Ctx, Iq, IqResult, IqType, Target};
use crate::jid::{BareJid, FullJid, Jid};
use crate::ns;
use crate::router::Core;
use crate::stanza::hints::{self, Hint};
use crate::stanza::mam::QueryError as BadQuery;
use crate::stanza::mam::{self, DefaultMode, Fin, Metadata, Prefs, PrefsError, Query};
use crate::stanza::rsm::{Before, SetResult};
use crate::stanza::MessageType;
use crate::stanza::{sid, StanzaCondition, StanzaError};
use crate::storage::archive::{self as store, Filter, NewEntry, QueryError, Range};
use crate::storage::StorageError;
use crate::xml::Element;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Results per page when the query does not say.
pub const DEFAULT_PAGE: usize = 50;
/// The most results per page, whatever the query says.
pub const MAX_PAGE: usize = 250;
/// The most ids one query may name.
pub const MAX_IDS: usize = 250;
/// The most messages one expiry pass deletes, so that it never holds the storage thread
/// for long.
pub const EXPIRY_BATCH: usize = 1000;
/// Time between expiry passes.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);
/// Time between passes while older messages remain than one pass deletes.
const EXPIRY_BACKLOG_INTERVAL: Duration = Duration::from_secs(10);

/// Is this message archived at all (XEP-0313 §5.1.1)? Chat and normal messages with a
/// body, or with a XEP-0334 `<store/>` hint; never with `<no-store/>` or
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
    message.child("body", ns::CLIENT).is_some() || hints::has(message, Hint::Store)
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
/// (they change only through [`prefs`]), so that routing a message needs no storage round
/// trip to know whether and under which id it is archived. Keyed by host, then username,
/// so that a lookup borrows the names instead of copying them.
#[derive(Default)]
pub struct PrefsCache(Mutex<HashMap<String, HashMap<String, Arc<Prefs>>>>);

impl PrefsCache {
    fn get(&self, host: &str, user: &str) -> Option<Arc<Prefs>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(host)?.get(user).cloned()
    }

    fn put(&self, host: String, user: String, prefs: Prefs) {
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

/// The archive is its owner's: another account's is `forbidden` (XEP-0313 §7.1).
fn own_archive(ctx: &Ctx<'_>, iq: &Iq<'_>) -> Result<(String, String), StanzaError> {
    match &iq.target {
        Target::Account(a) if *a == ctx.bare_jid() => Ok(account_key(a)),
        Target::Account(_) => Err(StanzaCondition::Forbidden.into()),
        Target::Host => Err(StanzaCondition::ServiceUnavailable.into()),
    }
}

fn query_error(e: BadQuery) -> StanzaError {
    let condition = match e {
        BadQuery::UnknownField(_) => StanzaCondition::FeatureNotImplemented,
        BadQuery::BadJid(_) => StanzaCondition::JidMalformed,
        _ => StanzaCondition::BadRequest,
    };
    StanzaError::with_text(condition, e.to_string())
}

/// The storage filter and page of a query; errors for what roost does not do.
pub fn to_store(q: &Query) -> Result<(Filter, Range), StanzaError> {
    if q.rsm.index.is_some() {
        // XEP-0059 §2.4: a responder that cannot jump to an index says so.
        return Err(StanzaError::with_text(
            StanzaCondition::FeatureNotImplemented,
            "paging by index is not supported",
        ));
    }
    if q.ids.len() > MAX_IDS {
        return Err(StanzaError::with_text(
            StanzaCondition::PolicyViolation,
            format!("at most {MAX_IDS} ids per query"),
        ));
    }
    let (with_bare, with_full) = match &q.with {
        None => (None, None),
        Some(j @ Jid::Bare(_)) => (Some(j.to_string()), None),
        Some(j @ Jid::Full(_)) => (Some(j.to_bare().to_string()), Some(j.to_string())),
    };
    let filter = Filter {
        with_bare,
        with_full,
        start: q.start,
        end: q.end,
        after_id: q.after_id.clone(),
        before_id: q.before_id.clone(),
        ids: q.ids.clone(),
    };
    let range = Range {
        after: q.rsm.after.clone(),
        before: match &q.rsm.before {
            Some(Before::Id(id)) => Some(id.clone()),
            _ => None,
        },
        backwards: q.backwards(),
        max: q.rsm.max.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE),
    };
    Ok((filter, range))
}

/// `<iq type='set'><query xmlns='urn:xmpp:mam:2'/></iq>`: the matching messages, each in a
/// `<result/>` message to the querying resource, then the IQ result with `<fin/>`.
pub async fn query(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own_archive(ctx, iq)?;
    let q = Query::try_from(iq.payload).map_err(query_error)?;
    let (filter, range) = to_store(&q)?;
    let page = ctx
        .core
        .storage
        .call(move |c| Ok(store::query(c, &host, &user, &filter, &range)))
        .await
        .map_err(storage_failed)?
        .map_err(|e| match e {
            QueryError::UnknownId(_) => {
                StanzaError::with_text(StanzaCondition::ItemNotFound, e.to_string())
            }
            QueryError::Storage(e) => storage_failed(e),
        })?;
    let me = ctx.bare_jid().to_string();
    let to = ctx.from.to_string();
    let scope = crate::xml::parse::Scope::client();
    let mut results = Vec::with_capacity(page.entries.len());
    for e in &page.entries {
        let message = match crate::xml::parse::parse_element(&scope, e.stanza.as_bytes()) {
            Ok(m) => m,
            Err(err) => {
                log::error!("archive: message {} does not parse: {err}", e.id);
                continue;
            }
        };
        let stamp = crate::util::datetime::format(e.ts);
        results.push(
            Element::new("message", ns::CLIENT)
                .with_attr("from", me.clone())
                .with_attr("to", to.clone())
                .with_child(mam::result(q.queryid.as_deref(), &e.id, &stamp, message)),
        );
    }
    if q.flip_page {
        results.reverse();
    }
    ctx.replies.extend(results);
    // COMPAT: no `index` on <first/> (XEP-0313 makes it optional): slixmpp's RSM iterator
    // (1.17) stops paging backwards after the first page when `first index + page size
    // == count`, which is true of the last page of the archive.
    let fin = Fin {
        complete: page.complete,
        set: SetResult {
            first: page.entries.first().map(|e| e.id.clone()),
            first_index: None,
            last: page.entries.last().map(|e| e.id.clone()),
            count: Some(page.count),
        },
    };
    Ok(Some(Element::from(&fin)))
}

/// `<iq type='get'><query xmlns='urn:xmpp:mam:2'/></iq>`: the fields a query may use.
pub async fn form(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    own_archive(ctx, iq)?;
    Ok(Some(
        Element::new("query", mam::NS).with_child(Element::from(&mam::query_form())),
    ))
}

/// `<metadata xmlns='urn:xmpp:mam:2'/>`: the archive's first and last message (§5).
pub async fn metadata(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own_archive(ctx, iq)?;
    let bounds = ctx
        .core
        .storage
        .call(move |c| store::bounds(c, &host, &user))
        .await
        .map_err(storage_failed)?;
    let m = match bounds {
        Some((first, last)) => Metadata {
            start: Some(first),
            end: Some(last),
        },
        None => Metadata::default(),
    };
    Ok(Some(Element::from(&m)))
}

/// XEP-0441 preferences: get returns them (the defaults if never set); set replaces them
/// and returns what is now in force.
pub async fn prefs(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own_archive(ctx, iq)?;
    let prefs = match iq.ty {
        IqType::Get => ctx
            .core
            .storage
            .call(move |c| store::prefs(c, &host, &user))
            .await
            .map_err(storage_failed)?
            .unwrap_or_default(),
        IqType::Set => {
            let p = Prefs::try_from(iq.payload).map_err(|e| {
                let condition = match e {
                    PrefsError::BadJid(_) => StanzaCondition::JidMalformed,
                    _ => StanzaCondition::BadRequest,
                };
                StanzaError::with_text(condition, e.to_string())
            })?;
            let stored = p.clone();
            let key = (host.clone(), user.clone());
            ctx.core
                .storage
                .call(move |c| store::set_prefs(c, &host, &user, &stored))
                .await
                .map_err(storage_failed)?;
            ctx.core.state::<PrefsCache>().put(key.0, key.1, p.clone());
            p
        }
    };
    Ok(Some(Element::from(&prefs)))
}

/// One expiry pass: deletes messages older than `days` days (0 keeps them forever), at
/// most [`EXPIRY_BATCH`]; returns how many went.
pub fn expire(conn: &Connection, days: u32, now: i64) -> Result<usize, StorageError> {
    if days == 0 {
        return Ok(0);
    }
    store::expire(conn, now - i64::from(days) * 86_400, EXPIRY_BATCH)
}

/// Expires old messages every hour (every few seconds while a backlog remains) until the
/// server shuts down. The first pass runs at start, in `server::start`.
pub async fn expiry_task(core: Arc<Core>) {
    use smol::future::FutureExt;
    let days = core.config.archive_expires_days;
    if days == 0 {
        return;
    }
    let shutdown = core.shutdown_signal();
    loop {
        let pass = core
            .storage
            .call(move |c| expire(c, days, crate::util::datetime::unix_now()))
            .await;
        let wait = match pass {
            Ok(n) => {
                if n > 0 {
                    log::info!("archive: expired {n} messages older than {days} days");
                }
                if n >= EXPIRY_BATCH {
                    EXPIRY_BACKLOG_INTERVAL
                } else {
                    EXPIRY_INTERVAL
                }
            }
            Err(StorageError::Closed) => return,
            Err(e) => {
                log::error!("archive: expiry failed: {e}");
                EXPIRY_INTERVAL
            }
        };
        let stop = async {
            let _ = shutdown.recv().await;
            true
        };
        let timer = async {
            smol::Timer::after(wait).await;
            false
        };
        if stop.or(timer).await {
            return;
        }
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
    fn what_is_archived() {
        let yes = [
            "<message type='chat'><body>hi</body></message>",
            "<message><body>normal</body></message>",
            "<message type='bogus'><body>unknown types are normal</body></message>",
            "<message type='chat'><store xmlns='urn:xmpp:hints'/>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        ];
        let no = [
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

    #[test]
    fn queries_map_to_storage() {
        let q = Query {
            with: Some(Jid::parse("mom@h/phone").unwrap()),
            rsm: crate::stanza::rsm::SetRequest {
                max: Some(10_000),
                before: Some(Before::Id("b".into())),
                ..Default::default()
            },
            ..Query::default()
        };
        let (f, r) = to_store(&q).unwrap();
        assert_eq!(f.with_bare.as_deref(), Some("mom@h"));
        assert_eq!(f.with_full.as_deref(), Some("mom@h/phone"));
        assert_eq!(r.max, MAX_PAGE);
        assert!(r.backwards);
        assert_eq!(r.before.as_deref(), Some("b"));
        let last = Query {
            with: Some(Jid::parse("mom@h").unwrap()),
            rsm: crate::stanza::rsm::SetRequest {
                before: Some(Before::Last),
                ..Default::default()
            },
            ..Query::default()
        };
        let (f, r) = to_store(&last).unwrap();
        assert_eq!(f.with_full, None);
        assert_eq!((r.before, r.backwards, r.max), (None, true, DEFAULT_PAGE));
        let index = Query {
            rsm: crate::stanza::rsm::SetRequest {
                index: Some(3),
                ..Default::default()
            },
            ..Query::default()
        };
        assert_eq!(
            to_store(&index).unwrap_err().condition,
            StanzaCondition::FeatureNotImplemented
        );
        let many = Query {
            ids: (0..=MAX_IDS).map(|i| i.to_string()).collect(),
            ..Query::default()
        };
        assert_eq!(
            to_store(&many).unwrap_err().condition,
            StanzaCondition::PolicyViolation
        );
    }

    #[test]
    fn expiry_keeps_everything_at_zero_days() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::storage::migrations::migrate(&mut c).unwrap();
        let creds = crate::sasl::StoredCredentials::derive("pw", 4096);
        crate::storage::accounts::create(&c, "h", "kid", &creds).unwrap();
        let kid = FullJid::parse("kid@h/phone").unwrap();
        let mom = BareJid::parse("mom@h").unwrap();
        let m = msg("<message type='chat' to='mom@h'><body>old</body></message>");
        commit(
            &c,
            &plan(&m, &Jid::Full(kid.clone()), &mom, true).unwrap(),
            0,
        )
        .unwrap();
        let now = 10 * 86_400;
        assert_eq!(expire(&c, 0, now).unwrap(), 0);
        assert_eq!(expire(&c, 11, now).unwrap(), 0);
        assert_eq!(expire(&c, 9, now).unwrap(), 1);
        assert_eq!(store::count(&c, "h", "kid").unwrap(), 0);
    }
}
