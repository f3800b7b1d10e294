//! XEP-0030 Service Discovery: `disco#info` and `disco#items` on the server's domain and on
//! accounts' bare JIDs, derived from the module list; and XEP-0115 Entity Capabilities for
//! the server (the `<c/>` element, and `disco#info` on the `node#ver` it names).

use super::{Ctx, Iq, IqResult, Target};
use crate::ns;
use crate::stanza::disco::{DiscoInfo, Identity};
use crate::stanza::StanzaCondition;
use crate::xml::Element;
use std::sync::OnceLock;

/// The XEP-0115 `node`: a URI naming the software (§6.1). `.example` is reserved (RFC 2606),
/// so this can never point at someone else's site; replace it with the project's home page
/// once it has one.
pub const CAPS_NODE: &str = "https://roost.example/caps";

/// The server's `disco#info` (without a node) and its XEP-0115 `ver`, computed once: the
/// module list is static, so they cannot change while the process runs.
struct ServerInfo {
    info: DiscoInfo,
    ver: String,
}

fn server_info() -> &'static ServerInfo {
    static INFO: OnceLock<ServerInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let info = DiscoInfo {
            node: None,
            identities: vec![Identity::new("server", "im", Some("roost"))],
            features: sorted(super::features()),
        };
        let ver = info.caps_ver();
        ServerInfo { info, ver }
    })
}

/// Sorted, without duplicates (XEP-0115 §5.4 rejects a result listing a feature twice).
fn sorted(features: impl Iterator<Item = &'static str>) -> Vec<String> {
    let mut v: Vec<String> = features.map(str::to_owned).collect();
    v.sort();
    v.dedup();
    v
}

/// The server's disco#info without a node: identity `server/im` and every module's feature.
pub fn host_info() -> DiscoInfo {
    server_info().info.clone()
}

/// An account's disco#info: identity `account/registered` (the XMPP Registrar's "account"
/// category, as servers answer on an account's behalf, RFC 6120 §10.3.3) and every module's
/// account feature.
pub fn account_info() -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: vec![
            Identity::new("account", "registered", None),
            super::pep::identity(),
        ],
        features: sorted(super::account_features()),
    }
}

/// The server's XEP-0115 `ver` (SHA-1).
pub fn caps_ver() -> &'static str {
    &server_info().ver
}

/// `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='…' ver='…'/>` for the
/// server, as announced in stream features (XEP-0115 §6.3).
pub fn caps_element() -> Element {
    Element::new("c", ns::CAPS)
        .with_attr("hash", "sha-1")
        .with_attr("node", CAPS_NODE)
        .with_attr("ver", caps_ver())
}

/// The `node` a query names; an empty one counts as none (as in Prosody).
fn node<'a>(iq: &'a Iq<'_>) -> Option<&'a str> {
    iq.payload.attr("node").filter(|n| !n.is_empty())
}

/// `disco#info`: the domain's or an account's identities and features; on the domain also
/// for the XEP-0115 `node#ver`. Any other node is `item-not-found` (XEP-0030 §3.3).
pub async fn info(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    // The result echoes the node it answers (XEP-0030 §3.2).
    let info = match (&iq.target, node(iq)) {
        (Target::Host, None) => host_info(),
        (Target::Host, Some(n)) if is_caps_node(n) => {
            let mut info = host_info();
            info.node = Some(n.to_owned());
            info
        }
        (Target::Account(_), None) => account_info(),
        // XEP-0060 §5.3: an account's PEP node (pep.rs).
        (Target::Account(a), Some(n)) => {
            return super::pep::disco_node_info(ctx.server, a, &ctx.bare_jid(), n)
                .await
                .map(Some)
        }
        _ => return Err(StanzaCondition::ItemNotFound.into()),
    };
    Ok(Some(Element::from(&info)))
}

/// True if `node` is `CAPS_NODE#ver` for the server's current `ver`.
fn is_caps_node(node: &str) -> bool {
    node.strip_prefix(CAPS_NODE)
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|ver| ver == caps_ver())
}

/// `disco#items`: none on the domain (no components yet); on an account, its PEP nodes the
/// requester may see. Any node is `item-not-found`.
pub async fn items(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    if node(iq).is_some() {
        return Err(StanzaCondition::ItemNotFound.into());
    }
    if let Target::Account(a) = &iq.target {
        // XEP-0163 §6.2 (pep.rs).
        return super::pep::disco_items(ctx.server, a, &ctx.bare_jid())
            .await
            .map(Some);
    }
    Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_info_lists_every_module_feature_once_and_sorted() {
        let info = host_info();
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
        let info = account_info();
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
    fn caps_element_and_node() {
        let c = caps_element();
        assert!(c.is("c", ns::CAPS));
        assert_eq!(c.attr("hash"), Some("sha-1"));
        assert_eq!(c.attr("node"), Some(CAPS_NODE));
        assert_eq!(c.attr("ver"), Some(host_info().caps_ver().as_str()));
        assert!(is_caps_node(&format!("{CAPS_NODE}#{}", caps_ver())));
        assert!(!is_caps_node(CAPS_NODE));
        assert!(!is_caps_node(&format!("{CAPS_NODE}#")));
        assert!(!is_caps_node(&format!("{CAPS_NODE}#{}x", caps_ver())));
        assert!(!is_caps_node(&format!("{CAPS_NODE}x#{}", caps_ver())));
    }
}
