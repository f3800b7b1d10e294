//! XEP-0313 Message Archive Management for every account, on by default: which messages
//! are archived (§5.1.1, with XEP-0334 hints and XEP-0441 preferences), the XEP-0359
//! stanza-id that names a message's place in the archive (§3.5), archive queries with
//! XEP-0059 paging (§4), the query form, the archive metadata (§5), the preferences, and
//! the expiry of old messages (`--archive-expires-days`).
//!
//! Archiving happens in `delivery`, when routing accepts a message ([`archive`]): the
//! sender's and the recipient's copy are queued on the storage thread (group-committed)
//! before the message is handed on.

mod write;

use super::{account_key, storage_failed, Ctx, Iq, IqResult, IqType, Target};
use crate::jid::Jid;
use crate::ns;
use crate::router::Core;
use crate::stanza::mam::QueryError as BadQuery;
use crate::stanza::mam::{self, Fin, Metadata, Prefs, PrefsError, Query};
use crate::stanza::rsm::{Before, SetResult};
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::archive::{self as store, Filter, QueryError, Range};
use crate::storage::StorageError;
use crate::xml::Element;
use rusqlite::Connection;
use std::sync::Arc;
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

pub use write::{
    archivable, archive, commit, decide, new_id, plan, plan_outgoing, stamp, strip_forged_ids,
    Archived, Decision, Plan, PrefsCache,
};

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
    let me = ctx.bare_jid();
    let (results, fin) = page_answer(&q, &page, me.as_str(), ctx.from.as_str());
    ctx.replies.extend(results);
    Ok(Some(fin))
}

/// The answer to query `q` for `page` of the archive of `owner` (an account, a room), to
/// the querying `to`: each message in a `<result/>` message, then the `<fin/>` for the
/// IQ result (§4.2, §4.3).
pub fn page_answer(
    q: &Query,
    page: &store::Page,
    owner: &str,
    to: &str,
) -> (Vec<Element>, Element) {
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
                .with_attr("from", owner)
                .with_attr("to", to)
                .with_child(mam::result(q.queryid.as_deref(), &e.id, &stamp, message)),
        );
    }
    if q.flip_page {
        results.reverse();
    }
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
    (results, Element::from(&fin))
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
    use crate::jid::{BareJid, FullJid};
    use crate::xml::parse::{parse_element, Scope};

    pub(super) fn msg(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
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
        // The sender's copy and the recipient's.
        assert_eq!(expire(&c, 9, now).unwrap(), 2);
        assert_eq!(store::count(&c, "h", "kid").unwrap(), 0);
        assert_eq!(store::count(&c, "h", "mom").unwrap(), 0);
    }
}
