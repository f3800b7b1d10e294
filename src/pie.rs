//! XEP-0227 Portable Import/Export Format (`urn:xmpp:pie:0`, version 1.1): one account's
//! data as an XML document, for `roost export` and `roost import`.
//!
//! A `<user/>` holds: its SCRAM credentials (`urn:xmpp:pie:0#scram`, SCRAM-SHA-1 and
//! SCRAM-SHA-256, which share roost's salt and iteration count: never a plaintext
//! password), the roster (`jabber:iq:roster`, with groups, subscription, `ask` and
//! `approved`), pending inbound subscription requests (`<presence type='subscribe'/>`),
//! the vCard (`vcard-temp`), private XML (`jabber:iq:private`), PEP nodes with their
//! configuration forms (`pubsub#owner`) and items (`pubsub`), offline messages (each with
//! the server's `<delay/>` carrying its storage time) and the message archive (§4.10:
//! XEP-0313 `<result/>`s with `<forwarded/>` and `<delay/>`, oldest first). The blocklist
//! and the account's role (admin or limited) travel as extensions, which §4 allows:
//! `<blocklist xmlns='urn:xmpp:blocking'/>`, `<role xmlns='urn:xmpp:roost:role:0'/>`.
//!
//! Import checks the whole document before it writes, then writes every user in one
//! transaction: bad input leaves the database as it was.

use crate::jid::{BareJid, Jid};
use crate::sasl::{ScramKeys, StoredCredentials};
use crate::stanza::forms::DataForm;
use crate::stanza::pubsub::NodeConfig;
use crate::storage::{self, accounts, pep, roster, StorageError};
use crate::subscription::State;
use crate::util::datetime;
use crate::xml::parse::{parse_element, Scope};
use crate::xml::{Element, Node};
use crate::{ns, stanza};
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use std::fmt;

/// The format's namespace.
pub const NS: &str = "urn:xmpp:pie:0";
const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
const NS_MAM: &str = "urn:xmpp:pie:0#mam";
const DELAY_TEXT: &str = "Offline Storage";
/// roost's extension (XEP-0227 §4 allows them): the account's role, when not normal.
pub const NS_ROLE: &str = "urn:xmpp:roost:role:0";

/// Why an export or import failed; an import that fails has written nothing.
#[derive(Debug)]
pub enum PieError {
    Storage(StorageError),
    /// Not a usable XEP-0227 document: says where and what.
    Invalid(String),
    /// Refused: an account that exists, a domain not served here, …
    Refused(String),
}

impl fmt::Display for PieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PieError::Storage(e) => write!(f, "{e}"),
            PieError::Invalid(why) => write!(f, "not a usable XEP-0227 file: {why}"),
            PieError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for PieError {}

impl From<StorageError> for PieError {
    fn from(e: StorageError) -> PieError {
        PieError::Storage(e)
    }
}

impl From<rusqlite::Error> for PieError {
    fn from(e: rusqlite::Error) -> PieError {
        PieError::Storage(StorageError::Sqlite(e))
    }
}

fn invalid(why: impl Into<String>) -> PieError {
    PieError::Invalid(why.into())
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A stored serialized element (stanzas are stored with `jabber:client` implied).
fn stored(xml: &str) -> Result<Element, PieError> {
    parse_element(&Scope::client(), xml.as_bytes())
        .map_err(|e| PieError::Refused(format!("a stored element does not parse: {e}")))
}

fn text_child(name: &str, ns: &str, text: impl Into<std::sync::Arc<str>>) -> Element {
    Element::new(name, ns).with_text(text)
}

/// The XEP-0227 document for the account `user@host`.
pub fn export(conn: &Connection, host: &str, user: &str) -> Result<String, PieError> {
    let creds = accounts::credentials(conn, host, user)?
        .ok_or_else(|| PieError::Refused(format!("{user}@{host}: no such account")))?;
    let mut u = Element::new("user", NS).with_attr("name", user);
    for (mech, keys) in [
        ("SCRAM-SHA-1", &creds.sha1),
        ("SCRAM-SHA-256", &creds.sha256),
    ] {
        u.push(
            Element::new("scram-credentials", NS_SCRAM)
                .with_attr("mechanism", mech)
                .with_child(text_child(
                    "iter-count",
                    NS_SCRAM,
                    creds.iterations.to_string(),
                ))
                .with_child(text_child("salt", NS_SCRAM, b64(&creds.salt)))
                .with_child(text_child("server-key", NS_SCRAM, b64(&keys.server_key)))
                .with_child(text_child("stored-key", NS_SCRAM, b64(&keys.stored_key))),
        );
    }

    match accounts::role(conn, host, user)? {
        Some(r) if r != accounts::Role::Normal => {
            u.push(text_child("role", NS_ROLE, r.as_str()));
        }
        _ => {}
    }

    let items = roster::items(conn, host, user)?;
    let mut query = Element::new("query", ns::ROSTER);
    for it in items.iter().filter(|i| i.in_roster) {
        let mut e = Element::new("item", ns::ROSTER)
            .with_attr("jid", it.contact.clone())
            .with_attr("subscription", it.state.subscription());
        if let Some(n) = &it.name {
            e.set_attr("name", n.clone());
        }
        if it.state.pending_out() {
            e.set_attr("ask", "subscribe");
        }
        if it.approved {
            e.set_attr("approved", "true");
        }
        for g in &it.groups {
            e.push(text_child("group", ns::ROSTER, g.clone()));
        }
        query.push(e);
    }
    u.push(query);
    for it in items.iter().filter(|i| i.state.pending_in()) {
        let mut p = match it.request.as_deref().map(stored) {
            Some(Ok(p)) if p.is("presence", ns::CLIENT) => p,
            _ => Element::new("presence", ns::CLIENT),
        };
        p.set_attr("type", "subscribe");
        p.set_attr("from", it.contact.clone());
        p.remove_attr("to");
        u.push(p);
    }

    if let Some(v) = storage::vcard::get(conn, host, user)? {
        u.push(stored(&v)?);
    }

    let mut private = Element::new("query", ns::PRIVATE);
    let mut st = conn.prepare(
        "SELECT xml FROM private_storage WHERE host = ?1 AND username = ?2 ORDER BY ns, name",
    )?;
    for xml in st.query_map(params![host, user], |r| r.get::<_, String>(0))? {
        private.push(stored(&xml?)?);
    }
    if private.first_element().is_some() {
        u.push(private);
    }

    let nodes = pep::nodes(conn, host, user)?;
    if !nodes.is_empty() {
        let mut owner = Element::new("pubsub", ns::PUBSUB_OWNER);
        let mut data = Element::new("pubsub", ns::PUBSUB);
        for (node, config) in &nodes {
            owner.push(
                Element::new("configure", ns::PUBSUB_OWNER)
                    .with_attr("node", node.clone())
                    .with_child(Element::from(&config.to_form())),
            );
            let mut items = Element::new("items", ns::PUBSUB).with_attr("node", node.clone());
            for item in pep::items(conn, host, user, node, None)? {
                items.push(
                    Element::new("item", ns::PUBSUB)
                        .with_attr("id", item.id)
                        .with_child(stored(&item.xml)?),
                );
            }
            data.push(items);
        }
        u.push(owner);
        u.push(data);
    }

    let offline = storage::offline::load(conn, host, user)?;
    if !offline.is_empty() {
        let mut list = Element::new("offline-messages", NS);
        for m in offline {
            let mut message = stored(&m.stanza)?;
            message.push(
                Element::new("delay", ns::DELAY)
                    .with_attr("from", host)
                    .with_attr("stamp", m.stamp)
                    .with_text(DELAY_TEXT),
            );
            list.push(message);
        }
        u.push(list);
    }

    let mut archive = Element::new("archive", NS_MAM);
    let mut st = conn.prepare(
        "SELECT id, ts, stanza FROM archive WHERE host = ?1 AND username = ?2 ORDER BY ts, seq",
    )?;
    let rows = st.query_map(params![host, user], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (id, ts, xml) = row?;
        archive.push(
            Element::new("result", stanza::mam::NS)
                .with_attr("id", id)
                .with_child(
                    Element::new("forwarded", stanza::forward::NS)
                        .with_child(
                            Element::new("delay", ns::DELAY)
                                .with_attr("stamp", datetime::format(ts)),
                        )
                        .with_child(stored(&xml)?),
                ),
        );
    }
    if archive.first_element().is_some() {
        u.push(archive);
    }

    let blocked = storage::blocking::list(conn, host, user)?;
    if !blocked.is_empty() {
        let mut list = Element::new("blocklist", ns::BLOCKING);
        for j in blocked {
            list.push(Element::new("item", ns::BLOCKING).with_attr("jid", j));
        }
        u.push(list);
    }

    let doc = Element::new("server-data", NS).with_child(
        Element::new("host", NS)
            .with_attr("jid", host)
            .with_child(u),
    );
    let mut out = String::from("<?xml version='1.0' encoding='UTF-8'?>\n");
    doc.write_standalone(&mut out);
    out.push('\n');
    Ok(out)
}

/// One account read from a document, checked, ready to write.
struct Account {
    host: String,
    user: String,
    creds: StoredCredentials,
    role: accounts::Role,
    roster: Vec<roster::Item>,
    vcard: Option<String>,
    private: Vec<(String, String, String)>,
    nodes: Vec<(String, NodeConfig, Vec<pep::StoredItem>)>,
    /// (stamp, stanza)
    offline: Vec<(String, String)>,
    archive: Vec<ArchiveEntry>,
    blocked: Vec<String>,
}

struct ArchiveEntry {
    id: String,
    ts: i64,
    with_bare: String,
    with_full: String,
    stanza: String,
}

/// What an import wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub jid: String,
    pub replaced: bool,
    pub contacts: usize,
    pub pep_items: usize,
    pub offline: usize,
    pub archived: usize,
    /// Elements of the file roost does not import (XEP-0227 §4: reported, not fatal).
    pub skipped: Vec<String>,
}

/// Parses a document (an XML declaration may come first).
pub fn parse_document(text: &str) -> Result<Element, PieError> {
    let mut body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with("<?xml") {
        let end = body
            .find("?>")
            .ok_or_else(|| invalid("the XML declaration does not end"))?;
        body = body[end + 2..].trim();
    }
    let root = parse_element(&Scope::new([]), body.trim_end().as_bytes())
        .map_err(|e| invalid(format!("not well-formed XML: {e}")))?;
    if !root.is("server-data", NS) {
        return Err(invalid(format!(
            "the root element is <{}/> in namespace '{}', not <server-data xmlns='{NS}'/>",
            root.name.as_str(),
            root.ns.as_str()
        )));
    }
    Ok(root)
}

fn unb64(what: &str, text: &str) -> Result<Vec<u8>, PieError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| invalid(format!("{what} is not base64")))
}

/// Reads the credentials of a `<user/>`: SCRAM-SHA-1 and SCRAM-SHA-256 keys with one salt
/// and iteration count, or a plaintext `password` (older exporters), derived here.
fn credentials(
    u: &Element,
    jid: &str,
    iterations: u32,
    fallback: Option<&str>,
) -> Result<StoredCredentials, PieError> {
    let mut sha1 = None;
    let mut sha256 = None;
    let mut common: Option<(Vec<u8>, u32)> = None;
    for c in u.elements().filter(|c| c.is("scram-credentials", NS_SCRAM)) {
        let mech = c.attr("mechanism").unwrap_or_default();
        let field = |name: &str| {
            c.child(name, NS_SCRAM)
                .map(|e| e.text())
                .ok_or_else(|| invalid(format!("{jid}: {mech} credentials without <{name}/>")))
        };
        let iter_text = field("iter-count")?;
        let iter = iter_text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0 && !iter_text.trim().starts_with('0'))
            .ok_or_else(|| invalid(format!("{jid}: {mech} iter-count is not a positive number")))?;
        let salt = unb64(&format!("{jid}: {mech} salt"), &field("salt")?)?;
        let keys = ScramKeys {
            server_key: unb64(&format!("{jid}: {mech} server-key"), &field("server-key")?)?,
            stored_key: unb64(&format!("{jid}: {mech} stored-key"), &field("stored-key")?)?,
        };
        let (slot, len) = match mech {
            "SCRAM-SHA-1" => (&mut sha1, 20),
            "SCRAM-SHA-256" => (&mut sha256, 32),
            _ => continue,
        };
        if keys.server_key.len() != len || keys.stored_key.len() != len || salt.is_empty() {
            return Err(invalid(format!("{jid}: {mech} keys of the wrong length")));
        }
        if slot.is_some() {
            return Err(invalid(format!("{jid}: {mech} credentials twice")));
        }
        *slot = Some(keys);
        match &common {
            Some(c) if *c != (salt.clone(), iter) => {
                if let Some(p) = fallback {
                    return Ok(StoredCredentials::derive(p, iterations));
                }
                return Err(PieError::Refused(format!(
                    "{jid}: the SCRAM-SHA-1 and SCRAM-SHA-256 credentials have different \
                     salts or iteration counts, and roost keeps one of each; give \
                     --set-password to choose a new password; nothing was imported"
                )));
            }
            _ => common = Some((salt, iter)),
        }
    }
    match (sha1, sha256, common) {
        (Some(sha1), Some(sha256), Some((salt, iterations))) => Ok(StoredCredentials {
            salt,
            iterations,
            sha1,
            sha256,
        }),
        _ => match (u.attr("password"), fallback) {
            (Some(p), _) if !p.is_empty() => Ok(StoredCredentials::derive(p, iterations)),
            (_, Some(p)) => Ok(StoredCredentials::derive(p, iterations)),
            _ => Err(PieError::Refused(format!(
                "{jid}: no usable credentials: roost needs both SCRAM-SHA-1 and SCRAM-SHA-256 \
                 <scram-credentials/> (with the same salt and iteration count), or a password \
                 attribute; give --set-password to choose a new password; nothing was imported"
            ))),
        },
    }
}

/// Moves an element and its descendants in the file's namespace into `jabber:client`.
fn into_client_namespace(e: &mut Element) {
    if e.ns == NS {
        e.ns = crate::xml::Name::new(ns::CLIENT);
    }
    for c in e.children.iter_mut() {
        if let Node::Element(c) = c {
            into_client_namespace(c);
        }
    }
}

/// The other party of an archived message of `me`, as (bare, as named).
fn archive_with(message: &Element, me: &str) -> (String, String) {
    let parse = |a: &str| message.attr(a).and_then(|j| Jid::parse(j).ok());
    let from = parse("from");
    let other = match &from {
        Some(f) if f.to_bare().as_str() == me => parse("to"),
        Some(_) => from.clone(),
        None => parse("to"),
    };
    match other {
        Some(j) => (j.to_bare().to_string(), j.to_string()),
        None => (me.to_owned(), me.to_owned()),
    }
}

fn read_user(
    host: &str,
    u: &Element,
    iterations: u32,
    fallback: Option<&str>,
    skipped: &mut Vec<String>,
) -> Result<Account, PieError> {
    let name = u
        .attr("name")
        .ok_or_else(|| invalid(format!("a <user/> of {host} without a name")))?;
    let user = crate::jid::nodeprep(name)
        .map_err(|e| invalid(format!("user name {name:?} of {host}: {e}")))?;
    let jid = format!("{user}@{host}");
    let creds = credentials(u, &jid, iterations, fallback)?;
    let now = datetime::unix_now();
    let mut a = Account {
        host: host.to_owned(),
        user,
        creds,
        role: accounts::Role::Normal,
        roster: Vec::new(),
        vcard: None,
        private: Vec::new(),
        nodes: Vec::new(),
        offline: Vec::new(),
        archive: Vec::new(),
        blocked: Vec::new(),
    };
    let mut pending_in: Vec<(String, String)> = Vec::new();
    let mut configs: Vec<(String, NodeConfig)> = Vec::new();
    let mut node_items: Vec<(String, Vec<pep::StoredItem>)> = Vec::new();
    for c in u.elements() {
        let ns_ = c.ns.as_str();
        match (c.name.as_str(), ns_) {
            ("scram-credentials", NS_SCRAM) => {}
            ("role", NS_ROLE) => {
                a.role = c
                    .text()
                    .trim()
                    .parse()
                    .map_err(|e| invalid(format!("{jid}: role: {e}")))?;
            }
            ("query", ns::ROSTER) => {
                for it in c.elements().filter(|i| i.is("item", ns::ROSTER)) {
                    let contact = it
                        .attr("jid")
                        .and_then(|j| BareJid::parse(j).ok())
                        .ok_or_else(|| {
                            invalid(format!("{jid}: a roster item without a valid jid"))
                        })?
                        .to_string();
                    let subscription = match it.attr("subscription").unwrap_or("none") {
                        s @ ("none" | "to" | "from" | "both") => s,
                        "remove" => continue,
                        s => {
                            return Err(invalid(format!(
                                "{jid}: roster item {contact}: subscription '{s}'"
                            )))
                        }
                    };
                    let mut item = roster::Item::new(&contact);
                    item.name = it.attr("name").filter(|n| !n.is_empty()).map(str::to_owned);
                    item.state =
                        State::from_parts(subscription, it.attr("ask") == Some("subscribe"), false);
                    item.approved = matches!(it.attr("approved"), Some("true" | "1"));
                    for g in it.elements().filter(|g| g.is("group", ns::ROSTER)) {
                        let g = g.text();
                        if !g.is_empty() && !item.groups.contains(&g) {
                            item.groups.push(g);
                        }
                    }
                    if a.roster.iter().any(|i| i.contact == contact) {
                        return Err(invalid(format!("{jid}: roster item {contact} twice")));
                    }
                    a.roster.push(item);
                }
            }
            // COMPAT: Prosody 0.12 writes the requests without xmlns='jabber:client', so
            // in the file's namespace.
            ("presence", ns::CLIENT | NS) if c.attr("type") == Some("subscribe") => {
                let from = c
                    .attr("from")
                    .and_then(|j| BareJid::parse(j).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "{jid}: a subscription request without a valid from"
                        ))
                    })?;
                let mut request = c.clone();
                into_client_namespace(&mut request);
                pending_in.push((from.to_string(), request.to_client_string()));
            }
            ("vCard", ns::VCARD) => a.vcard = Some(c.to_string()),
            ("query", ns::PRIVATE) => {
                for e in c.elements() {
                    a.private
                        .push((e.ns.to_string(), e.name.to_string(), e.to_string()));
                }
            }
            ("pubsub", ns::PUBSUB_OWNER) => {
                for conf in c.elements() {
                    if !conf.is("configure", ns::PUBSUB_OWNER) {
                        skipped.push(format!("{jid}: pubsub#owner <{}/>", conf.name.as_str()));
                        continue;
                    }
                    let node = conf
                        .attr("node")
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| invalid(format!("{jid}: <configure/> without a node")))?;
                    let mut config = NodeConfig::default();
                    if let Some(x) = conf.child("x", stanza::forms::NS) {
                        let form = DataForm::try_from(x)
                            .map_err(|e| invalid(format!("{jid}: node {node}: {e}")))?;
                        config.apply_form(&form).map_err(|e| {
                            invalid(format!(
                                "{jid}: node {node}: {}",
                                e.text.unwrap_or_default()
                            ))
                        })?;
                    }
                    configs.push((node.to_owned(), config));
                }
            }
            ("pubsub", ns::PUBSUB) => {
                for items in c.elements().filter(|i| i.is("items", ns::PUBSUB)) {
                    let node = items
                        .attr("node")
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| invalid(format!("{jid}: <items/> without a node")))?;
                    let mut list = Vec::new();
                    for it in items.elements().filter(|i| i.is("item", ns::PUBSUB)) {
                        let id = it.attr("id").filter(|i| !i.is_empty()).ok_or_else(|| {
                            invalid(format!("{jid}: an item of {node} without an id"))
                        })?;
                        let payload = it.first_element().ok_or_else(|| {
                            invalid(format!("{jid}: item {id} of {node} without a payload"))
                        })?;
                        list.push(pep::StoredItem {
                            id: id.to_owned(),
                            published: now,
                            xml: payload.to_string(),
                        });
                    }
                    node_items.push((node.to_owned(), list));
                }
            }
            ("offline-messages", NS) => {
                for m in c.elements() {
                    if !m.is("message", ns::CLIENT) {
                        return Err(invalid(format!(
                            "{jid}: <{}/> among the offline messages",
                            m.name.as_str()
                        )));
                    }
                    let mut m = m.clone();
                    // The delay we (or another server) added: the storage time.
                    let mut stamp = datetime::format(now);
                    let at = m.children.iter().rposition(|n| {
                        matches!(n, Node::Element(e) if e.is("delay", ns::DELAY)
                            && e.attr("from") == Some(host))
                    });
                    if let Some(i) = at {
                        if let Node::Element(d) = &m.children[i] {
                            let s = d.attr("stamp").unwrap_or_default();
                            datetime::parse(s).ok_or_else(|| {
                                invalid(format!("{jid}: an offline message's stamp {s:?}"))
                            })?;
                            stamp = s.to_owned();
                        }
                        m.children.remove(i);
                    }
                    a.offline.push((stamp, m.to_client_string()));
                }
            }
            ("archive", NS_MAM) => {
                let me = jid.clone();
                for r in c.elements() {
                    let bad = |why: &str| invalid(format!("{jid}: an archived message {why}"));
                    if !r.is("result", stanza::mam::NS) {
                        return Err(bad("is not a urn:xmpp:mam:2 <result/>"));
                    }
                    let fwd = r
                        .child("forwarded", stanza::forward::NS)
                        .ok_or_else(|| bad("has no <forwarded/>"))?;
                    let ts = fwd
                        .child("delay", ns::DELAY)
                        .and_then(|d| d.attr("stamp"))
                        .and_then(datetime::parse)
                        .ok_or_else(|| bad("has no valid <delay stamp/>"))?;
                    let message = fwd
                        .child("message", ns::CLIENT)
                        .ok_or_else(|| bad("has no <message/>"))?;
                    let (with_bare, with_full) = archive_with(message, &me);
                    a.archive.push(ArchiveEntry {
                        id: r
                            .attr("id")
                            .filter(|i| !i.is_empty())
                            .map(str::to_owned)
                            .unwrap_or_else(|| crate::util::random_hex(16)),
                        ts,
                        with_bare,
                        with_full,
                        stanza: message.to_client_string(),
                    });
                }
            }
            ("blocklist", ns::BLOCKING) => {
                for it in c.elements().filter(|i| i.is("item", ns::BLOCKING)) {
                    if let Some(j) = it.attr("jid").and_then(|j| Jid::parse(j).ok()) {
                        a.blocked.push(j.to_string());
                    }
                }
            }
            (name, ns_) => skipped.push(format!("{jid}: <{name} xmlns='{ns_}'/>")),
        }
    }
    for (contact, request) in pending_in {
        match a.roster.iter_mut().find(|i| i.contact == contact) {
            Some(i) => {
                i.state = State::from_parts(i.state.subscription(), i.state.pending_out(), true);
                i.request = Some(request);
            }
            None => {
                let mut i = roster::Item::new(&contact);
                i.state = State::NonePendingIn;
                i.in_roster = false;
                i.request = Some(request);
                a.roster.push(i);
            }
        }
    }
    for (node, items) in node_items {
        match configs.iter().position(|(n, _)| *n == node) {
            Some(_) => {}
            None => configs.push((node.clone(), NodeConfig::default())),
        }
        if let Some(e) = a.nodes.iter_mut().find(|(n, _, _)| *n == node) {
            e.2.extend(items);
        } else {
            a.nodes.push((node, NodeConfig::default(), items));
        }
    }
    for (node, config) in configs {
        match a.nodes.iter_mut().find(|(n, _, _)| *n == node) {
            Some(e) => e.1 = config,
            None => a.nodes.push((node, config, Vec::new())),
        }
    }
    Ok(a)
}

/// Imports every account of the document `text` into `conn`, in one transaction. Accounts
/// that exist are refused unless `replace` (then their data is replaced, and their
/// sessions are ended by a running server). `served`: the domain the database serves.
/// `new_password`: for accounts whose file has no usable credentials (only SCRAM-SHA-1
/// keys, as Prosody 0.12 exports).
pub fn import(
    conn: &mut Connection,
    text: &str,
    served: Option<&str>,
    replace: bool,
    iterations: u32,
    new_password: Option<&str>,
) -> Result<Vec<Imported>, PieError> {
    let root = parse_document(text)?;
    let mut accounts_read = Vec::new();
    let mut skipped = Vec::new();
    for h in root.elements() {
        if !h.is("host", NS) {
            skipped.push(format!("<{}/> under <server-data/>", h.name.as_str()));
            continue;
        }
        let given = h
            .attr("jid")
            .ok_or_else(|| invalid("a <host/> without a jid"))?;
        let host =
            crate::jid::nameprep(given).map_err(|e| invalid(format!("host {given:?}: {e}")))?;
        if let Some(s) = served {
            if s != host {
                return Err(PieError::Refused(format!(
                    "the file holds accounts of {host}, but this data directory serves {s} \
                     (one data directory serves one domain); nothing was imported"
                )));
            }
        }
        for u in h.elements() {
            if !u.is("user", NS) {
                skipped.push(format!("{host}: <{}/>", u.name.as_str()));
                continue;
            }
            accounts_read.push(read_user(&host, u, iterations, new_password, &mut skipped)?);
        }
    }
    if accounts_read.is_empty() {
        return Err(invalid("no <host><user/></host> in the file"));
    }
    let hosts: Vec<&str> = accounts_read.iter().map(|a| a.host.as_str()).collect();
    if hosts.iter().any(|h| *h != hosts[0]) {
        return Err(PieError::Refused(
            "the file holds accounts of several domains; one data directory serves one".into(),
        ));
    }
    // IMMEDIATE: the write lock from the start (waiting for the server's writes), so the
    // reads below never turn stale under a running server.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut done = Vec::new();
    for a in &accounts_read {
        done.push(write_account(&tx, a, replace)?);
    }
    if served.is_none() {
        accounts::set_served_domain(&tx, hosts[0])?;
    }
    tx.commit()?;
    if let Some(first) = done.first_mut() {
        first.skipped = skipped;
    }
    Ok(done)
}

/// The tables an import fills (and `--replace` empties first).
const IMPORTED_TABLES: &[&str] = &[
    "roster",
    "offline",
    "blocklist",
    "vcard",
    "private_storage",
    "archive",
    "pep_nodes",
    "pep_items",
];

fn write_account(tx: &Connection, a: &Account, replace: bool) -> Result<Imported, PieError> {
    let (host, user) = (a.host.as_str(), a.user.as_str());
    let jid = format!("{user}@{host}");
    let exists = accounts::exists(tx, host, user)?;
    if exists && !replace {
        return Err(PieError::Refused(format!(
            "{jid} already exists: give --replace to replace its data with the file's \
             (or remove it first with roost deluser); nothing was imported"
        )));
    }
    let account_error = |e: accounts::AccountError| PieError::Refused(format!("{jid}: {e}"));
    if exists {
        for table in IMPORTED_TABLES {
            tx.execute(
                &format!("DELETE FROM {table} WHERE host = ?1 AND username = ?2"),
                params![host, user],
            )?;
        }
        accounts::set_credentials(tx, host, user, &a.creds).map_err(account_error)?;
        let mut notices = crate::circles::Notices::new(host);
        crate::circles::set_role(tx, host, user, a.role, &mut notices)
            .map_err(|e| PieError::Refused(format!("{jid}: {e}")))?;
        notices.write_kicks(tx)?;
        // A running server ends its sessions, which then see the imported data.
        storage::kicks::request(tx, host, user, storage::kicks::Reason::Password)?;
    } else {
        accounts::create(tx, host, user, &a.creds).map_err(account_error)?;
        // As `roost adduser`: its role, in the default circles (the family room).
        let mut notices = crate::circles::Notices::new(host);
        crate::circles::account_added(tx, host, user, a.role, None, &mut notices)
            .map_err(|e| PieError::Refused(format!("{jid}: {e}")))?;
        notices.write_kicks(tx)?;
    }
    for item in &a.roster {
        roster::put(tx, host, user, item)?;
    }
    if let Some(v) = &a.vcard {
        storage::vcard::set(tx, host, user, v)?;
    }
    for (ns_, name, xml) in &a.private {
        tx.execute(
            "INSERT INTO private_storage (host, username, ns, name, xml)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (host, username, ns, name) DO UPDATE SET xml = excluded.xml",
            params![host, user, ns_, name, xml],
        )?;
    }
    let mut pep_items = 0;
    for (node, config, items) in &a.nodes {
        pep::set_config(tx, host, user, node, config)?;
        for item in items {
            pep::put_item(tx, host, user, node, item)?;
            pep_items += 1;
        }
    }
    for (stamp, stanza) in &a.offline {
        tx.execute(
            "INSERT INTO offline (host, username, stamp, stanza) VALUES (?1, ?2, ?3, ?4)",
            params![host, user, stamp, stanza],
        )?;
    }
    for e in &a.archive {
        // Archive ids are unique across the server: one taken by another account gets a
        // new one.
        let taken = tx
            .query_row("SELECT 1 FROM archive WHERE id = ?1", [&e.id], |_| Ok(()))
            .optional()?
            .is_some();
        let id = if taken {
            crate::util::random_hex(16)
        } else {
            e.id.clone()
        };
        storage::archive::insert(
            tx,
            &storage::archive::NewEntry {
                host,
                username: user,
                id: &id,
                with_bare: &e.with_bare,
                with_full: &e.with_full,
                stanza: &e.stanza,
                now: e.ts,
            },
        )?;
    }
    for j in &a.blocked {
        tx.execute(
            "INSERT OR IGNORE INTO blocklist (host, username, jid) VALUES (?1, ?2, ?3)",
            params![host, user, j],
        )?;
    }
    Ok(Imported {
        jid,
        replaced: exists,
        contacts: a.roster.iter().filter(|i| i.in_roster).count(),
        pep_items,
        offline: a.offline.len(),
        archived: a.archive.len(),
        skipped: Vec::new(),
    })
}
