//! XEP-0030 Service Discovery: `disco#info` and `disco#items` on the server's domain and on
//! accounts' bare JIDs, derived from the feature table (identities, features, XEP-0128
//! forms such as XEP-0157's, account nodes); the hosted services as the server's items;
//! and XEP-0115 Entity Capabilities for the server (the `<c/>` element, and `disco#info` on
//! the `node#ver` it names).

use super::{Ctx, Iq, IqResult, Target};
use crate::ns;
use crate::router::{Core, Table};
use crate::stanza::caps::{verification_string, Algo};
use crate::stanza::disco::{DiscoInfo, Identity};
use crate::stanza::StanzaCondition;
use crate::xml::Element;
use std::sync::OnceLock;

/// The XEP-0115 `node`: a URI naming the software (§6.1). `.example` is reserved (RFC 2606),
/// so this can never point at someone else's site; replace it with the project's home page
/// once it has one.
pub const CAPS_NODE: &str = "https://roost.example/caps";

/// The server's `disco#info` result (without a node) and its XEP-0115 `ver`, made once per
/// server: the table and the configuration cannot change while it runs.
#[derive(Default)]
pub struct HostInfo(OnceLock<(Element, String)>);

fn host(core: &Core) -> &(Element, String) {
    core.state::<HostInfo>().0.get_or_init(|| {
        let mut query = Element::from(&host_info(&core.table));
        for form in core.table.modules().filter_map(|m| m.host_forms) {
            if let Some(f) = form(core) {
                query.push(f);
            }
        }
        let ver = match verification_string(&query) {
            Ok((_, s)) => Algo::Sha1.ver(s.as_bytes()),
            Err(e) => {
                log::error!("disco: the server's own disco#info is ill-formed: {e}");
                String::new()
            }
        };
        (query, ver)
    })
}

/// Sorted, without duplicates (XEP-0115 §5.4 rejects a result listing a feature twice).
fn sorted(features: impl Iterator<Item = &'static str>) -> Vec<String> {
    let mut v: Vec<String> = features.map(str::to_owned).collect();
    v.sort();
    v.dedup();
    v
}

fn identities(rows: impl Iterator<Item = &'static crate::router::IdentityRow>) -> Vec<Identity> {
    rows.map(|(c, t, n)| Identity::new(c, t, *n)).collect()
}

/// The server's disco#info without a node: every module's identities and features.
pub fn host_info(table: &Table) -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: identities(table.modules().flat_map(|m| m.identities.iter())),
        features: sorted(table.features()),
    }
}

/// An account's disco#info: every module's account identities (`account/registered`, as
/// servers answer on an account's behalf, RFC 6120 §10.3.3) and account features.
pub fn account_info(table: &Table) -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: identities(table.modules().flat_map(|m| m.account_identities.iter())),
        features: sorted(table.account_features()),
    }
}

/// The server's XEP-0115 `ver` (SHA-1, extended forms included).
pub fn caps_ver(core: &Core) -> &str {
    &host(core).1
}

/// `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='…' ver='…'/>` for the
/// server, as announced in stream features (XEP-0115 §6.3).
pub fn caps_element(core: &Core) -> Element {
    Element::new("c", ns::CAPS)
        .with_attr("hash", "sha-1")
        .with_attr("node", CAPS_NODE)
        .with_attr("ver", caps_ver(core))
}

/// The `node` a query names; an empty one counts as none (as in Prosody).
fn node<'a>(iq: &'a Iq<'_>) -> Option<&'a str> {
    iq.payload.attr("node").filter(|n| !n.is_empty())
}

/// `disco#info`: the domain's or an account's identities and features; on the domain also
/// for the XEP-0115 `node#ver` and modules' nodes (ad-hoc commands). Any other node is
/// `item-not-found` (XEP-0030 §3.3).
pub async fn info(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let core = ctx.core;
    // The result echoes the node it answers (XEP-0030 §3.2).
    match (&iq.target, node(iq)) {
        (Target::Host, None) => Ok(Some(host(core).0.clone())),
        (Target::Host, Some(n)) if is_caps_node(core, n) => {
            let mut q = host(core).0.clone();
            q.set_attr("node", n);
            Ok(Some(q))
        }
        (Target::Host, Some(n)) => {
            let requester = ctx.bare_jid();
            core.table
                .modules()
                .filter_map(|m| m.host_node_info)
                .find_map(|f| f(core, &requester, n))
                .unwrap_or(Err(StanzaCondition::ItemNotFound.into()))
                .map(Some)
        }
        (Target::Account(_), None) => Ok(Some(Element::from(&account_info(&core.table)))),
        // XEP-0060 §5.3: an account's node (pep/).
        (Target::Account(a), Some(n)) => {
            let requester = ctx.bare_jid();
            match core.table.modules().find_map(|m| m.account_node_info) {
                Some(f) => f(core, a, &requester, n).await.map(Some),
                None => Err(StanzaCondition::ItemNotFound.into()),
            }
        }
    }
}

/// True if `node` is `CAPS_NODE#ver` for the server's current `ver`.
fn is_caps_node(core: &Core, node: &str) -> bool {
    node.strip_prefix(CAPS_NODE)
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|ver| ver == caps_ver(core))
}

/// `disco#items`: on the domain, the hosted services, or a module's node (ad-hoc
/// commands); on an account, what its modules list (its PEP nodes the requester may see).
/// Any other node is `item-not-found`.
pub async fn items(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let core = ctx.core;
    if let (Target::Host, Some(n)) = (&iq.target, node(iq)) {
        // A module's node (XEP-0050's command list).
        let requester = ctx.bare_jid();
        return core
            .table
            .modules()
            .filter_map(|m| m.host_node_items)
            .find_map(|f| f(core, &requester, n))
            .unwrap_or(Err(StanzaCondition::ItemNotFound.into()))
            .map(Some);
    }
    if node(iq).is_some() {
        return Err(StanzaCondition::ItemNotFound.into());
    }
    if let Target::Account(a) = &iq.target {
        let requester = ctx.bare_jid();
        // XEP-0163 §6.2 (pep/).
        return match core.table.modules().find_map(|m| m.account_items) {
            Some(f) => f(core, a, &requester).await.map(Some),
            None => Ok(Some(Element::new("query", ns::DISCO_ITEMS))),
        };
    }
    let mut q = Element::new("query", ns::DISCO_ITEMS);
    for domain in core.service_domains() {
        q.push(Element::new("item", ns::DISCO_ITEMS).with_attr("jid", domain));
    }
    Ok(Some(q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::MODULES;

    #[test]
    fn host_info_lists_every_module_feature_once_and_sorted() {
        let info = host_info(&Table(MODULES));
        for f in crate::modules::features() {
            assert!(info.features.iter().any(|x| x == f), "{f}");
        }
        let mut s = info.features.clone();
        s.sort();
        s.dedup();
        assert_eq!(s, info.features);
        assert!(info.features.iter().any(|f| f == ns::DISCO_INFO));
        assert!(info.features.iter().any(|f| f == ns::DISCO_ITEMS));
        assert_eq!(
            info.identities,
            vec![Identity::new("server", "im", Some("roost"))]
        );
    }

    #[test]
    fn account_info_lists_account_features() {
        let info = account_info(&Table(MODULES));
        assert_eq!(
            info.identities,
            vec![
                Identity::new("account", "registered", None),
                Identity::new("pubsub", "pep", None)
            ]
        );
        for f in crate::modules::account_features() {
            assert!(info.features.iter().any(|x| x == f), "{f}");
        }
        assert!(
            !info.features.iter().any(|f| f == ns::PRIVATE),
            "private storage is not offered to others"
        );
    }

    #[test]
    fn caps_ver_covers_the_contact_form() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plain = crate::modules::test_core(crate::config::Config {
            data_dir: a.path().into(),
            ..crate::config::Config::default()
        });
        let with_contact = crate::modules::test_core(crate::config::Config {
            data_dir: b.path().into(),
            contact_admin: vec!["mailto:mom@example.org".into()],
            ..crate::config::Config::default()
        });
        let c = caps_element(&plain);
        assert!(c.is("c", ns::CAPS));
        assert_eq!(c.attr("hash"), Some("sha-1"));
        assert_eq!(c.attr("node"), Some(CAPS_NODE));
        let ver = caps_ver(&plain).to_owned();
        // Without forms the ver is the classic one of identities and features.
        assert_eq!(ver, host_info(&Table(MODULES)).caps_ver());
        assert_ne!(ver, caps_ver(&with_contact), "the form is part of the hash");
        assert!(is_caps_node(&plain, &format!("{CAPS_NODE}#{ver}")));
        assert!(!is_caps_node(&plain, CAPS_NODE));
        assert!(!is_caps_node(&plain, &format!("{CAPS_NODE}#")));
        assert!(!is_caps_node(&plain, &format!("{CAPS_NODE}#{ver}x")));
        assert!(!is_caps_node(&plain, &format!("{CAPS_NODE}x#{ver}")));
    }
}
