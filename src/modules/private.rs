//! XEP-0049 Private XML Storage: an account keeps elements of its own namespaces on the
//! server (bookmarks, client preferences), stored per (element name, namespace). Only the
//! account itself may get or set them.

use super::{account_key, storage_failed, stored_element, Ctx, Iq, IqResult, Target};
use crate::ns;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::storage::private::Entry;
use crate::xml::Element;

/// Most private XML one account may store, serialized, in all.
pub const QUOTA: usize = 1024 * 1024;

/// Namespaces that cannot be stored: the stanza namespaces, this protocol's own (a child
/// written without `xmlns` inherits it), and none at all. The XEP names the children's
/// namespaces "reserved" and allows `not-acceptable` for them.
const RESERVED: &[&str] = &["", ns::CLIENT, ns::SERVER, ns::PRIVATE];

/// The children of a `<query xmlns='jabber:iq:private'/>`, checked:
/// - at least one, else `not-acceptable` (the XEP's "MUST respond with a Not Acceptable");
/// - all in one namespace: a get "MUST NOT query for more than one namespace" and a set "MAY
///   contain multiple elements qualified by the same namespace"; else `bad-request`;
/// - not in a reserved namespace, else `not-acceptable`.
pub fn children(query: &Element) -> Result<Vec<&Element>, StanzaError> {
    let children: Vec<&Element> = query.elements().collect();
    let Some(first) = children.first() else {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "the query must hold an element to store or get",
        ));
    };
    if RESERVED.contains(&first.ns.as_str()) {
        return Err(StanzaError::with_text(
            StanzaCondition::NotAcceptable,
            "that namespace cannot be stored",
        ));
    }
    if children.iter().any(|c| c.ns != first.ns) {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "one namespace per request",
        ));
    }
    Ok(children)
}

/// Private storage is the sender's own; another account's is `forbidden` (the XEP prefers it
/// to `service-unavailable`).
fn own_account(ctx: &Ctx<'_>, iq: &Iq<'_>) -> Result<(String, String), StanzaError> {
    match &iq.target {
        Target::Account(a) if *a == ctx.bare_jid() => Ok(account_key(a)),
        Target::Account(_) => Err(StanzaCondition::Forbidden.into()),
        Target::Host => Err(StanzaCondition::ServiceUnavailable.into()),
    }
}

/// Returns the stored elements named in the query; one never stored comes back empty.
pub async fn get(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own_account(ctx, iq)?;
    let keys: Vec<(String, String)> = children(iq.payload)?
        .into_iter()
        .map(|c| (c.name.to_string(), c.ns.to_string()))
        .collect();
    let stored = ctx
        .core
        .storage
        .call(move |c| {
            keys.into_iter()
                .map(|(name, xmlns)| {
                    let xml = crate::storage::private::get(c, &host, &user, &name, &xmlns)?;
                    Ok((name, xmlns, xml))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(storage_failed)?;
    let mut query = Element::new("query", ns::PRIVATE);
    for (name, xmlns, xml) in stored {
        query.push(match xml {
            Some(xml) => stored_element(&xml)?,
            None => Element::new(&name, &xmlns),
        });
    }
    Ok(Some(query))
}

/// Stores each element of the query, replacing what was stored under its name and
/// namespace; over the quota, nothing is stored and the answer is `policy-violation`.
pub async fn set(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let (host, user) = own_account(ctx, iq)?;
    let entries: Vec<Entry> = children(iq.payload)?
        .into_iter()
        .map(|c| Entry {
            name: c.name.to_string(),
            ns: c.ns.to_string(),
            xml: c.to_string(),
        })
        .collect();
    let stored = ctx
        .core
        .storage
        .call(move |c| crate::storage::private::set(c, &host, &user, &entries, QUOTA))
        .await
        .map_err(storage_failed)?;
    if !stored {
        return Err(StanzaError::with_text(
            StanzaCondition::PolicyViolation,
            format!("private storage is limited to {} KiB", QUOTA / 1024),
        ));
    }
    // XEP-0411: XEP-0048 bookmarks become XEP-0402 ones (pep/bookmarks_sync.rs).
    let owner = ctx.bare_jid();
    ctx.core
        .emit(crate::router::Event::PrivateStored {
            owner: &owner,
            query: iq.payload,
        })
        .await;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn query(inner: &str) -> Element {
        parse_element(
            &Scope::client(),
            format!("<query xmlns='jabber:iq:private'>{inner}</query>").as_bytes(),
        )
        .unwrap()
    }

    fn cond(inner: &str) -> StanzaCondition {
        children(&query(inner)).unwrap_err().condition
    }

    #[test]
    fn one_or_more_children_of_one_namespace() {
        let q = query("<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>");
        let c = children(&q).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].is("exodus", "exodus:prefs"));
        let q = query("<a xmlns='x:y'/> <b xmlns='x:y'/>");
        let names: Vec<_> = children(&q)
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn invalid_queries() {
        assert_eq!(cond(""), StanzaCondition::NotAcceptable);
        assert_eq!(cond("  "), StanzaCondition::NotAcceptable);
        // No xmlns: the child is in jabber:iq:private.
        assert_eq!(cond("<prefs/>"), StanzaCondition::NotAcceptable);
        assert_eq!(cond("<prefs xmlns=''/>"), StanzaCondition::NotAcceptable);
        assert_eq!(
            cond("<message xmlns='jabber:client'/>"),
            StanzaCondition::NotAcceptable
        );
        assert_eq!(
            cond("<x xmlns='jabber:server'/>"),
            StanzaCondition::NotAcceptable
        );
        assert_eq!(
            cond("<a xmlns='x:y'/><b xmlns='x:z'/>"),
            StanzaCondition::BadRequest
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let q = query("<storage xmlns='storage:bookmarks'><conference jid='a@b' autojoin='true'><nick>M&amp;M</nick></conference></storage>");
        let c = children(&q).unwrap()[0];
        assert_eq!(&stored_element(&c.to_string()).unwrap(), c);
    }
}
