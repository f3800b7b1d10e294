//! XEP-0398: the XEP-0084 avatar as the XEP-0054 vCard's PHOTO and as the XEP-0153 hash in
//! presence.

use super::{access, parse_stored, relation};
use crate::jid::BareJid;
use crate::modules::account_key;
use crate::ns;
use crate::router::BoxFuture;
use crate::router::Core;
use crate::storage::pep as store;
use crate::xml::{Element, Node};
use std::sync::Arc;

/// XEP-0398's account feature.
pub use crate::ns::PEP_VCARD_CONVERSION as VCARD_CONVERSION;
/// XEP-0084 avatar data and metadata nodes; XEP-0153's presence extension.
pub use crate::ns::{AVATAR_DATA, AVATAR_METADATA, VCARD_UPDATE};

/// The table's presence filter (XEP-0398 §4).
pub fn with_avatar_hash<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    _requester: &'a BareJid,
    presence: Element,
) -> BoxFuture<'a, Element> {
    Box::pin(avatar_hash(core, owner, presence))
}

/// The table's vCard filter (XEP-0398 §3.1).
pub fn vcard_with_avatar<'a>(
    core: &'a Arc<Core>,
    owner: &'a BareJid,
    requester: &'a BareJid,
    vcard: Element,
) -> BoxFuture<'a, Element> {
    Box::pin(vcard_avatar(core, owner, requester, vcard))
}

/// The current XEP-0084 avatar of an account: the metadata's `<info/>` that is not an
/// external URL (XEP-0398 §3.1), as (id, type); `Some(None)` if the account published
/// that it has no avatar (an empty `<metadata/>`), `None` if it never published one.
pub(super) async fn avatar_info(core: &Core, owner: &BareJid) -> Option<Option<(String, String)>> {
    let (host, user) = account_key(owner);
    let last = core
        .storage
        .call(move |c| store::last_item(c, &host, &user, AVATAR_METADATA))
        .await
        .map_err(|e| log::error!("storage: {e}"))
        .ok()??;
    let metadata = parse_stored(&last.xml)?;
    let info = metadata
        .elements()
        .filter(|e| e.is("info", AVATAR_METADATA) && e.attr("url").is_none())
        .find_map(|i| Some((i.attr("id")?.to_owned(), i.attr("type")?.to_owned())));
    Some(info)
}

/// XEP-0398 §4: the avatar's XEP-0153 hash in an account's available presence. A
/// client's own `<photo/>` (empty or not) is kept; an `<x/>` without one is filled.
pub(super) async fn avatar_hash(core: &Core, owner: &BareJid, mut presence: Element) -> Element {
    let has_photo = presence
        .elements()
        .any(|x| x.is("x", VCARD_UPDATE) && x.child("photo", VCARD_UPDATE).is_some());
    if has_photo {
        return presence;
    }
    let Some(info) = avatar_info(core, owner).await else {
        return presence;
    };
    presence
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("x", VCARD_UPDATE)));
    let mut photo = Element::new("photo", VCARD_UPDATE);
    if let Some((id, _)) = info {
        photo = photo.with_text(id);
    }
    presence.push(Element::new("x", VCARD_UPDATE).with_child(photo));
    presence
}

/// XEP-0398 §3.1: the account's XEP-0084 avatar as the vCard's PHOTO, if the requester
/// may see the avatar data and its SHA-1 matches the metadata's id.
pub(super) async fn vcard_avatar(
    core: &Core,
    owner: &BareJid,
    requester: &BareJid,
    mut vcard: Element,
) -> Element {
    let Some(Some((id, ty))) = avatar_info(core, owner).await else {
        return vcard;
    };
    let relation = relation(core, owner, requester).await;
    let (host, user) = account_key(owner);
    let wanted = id.clone();
    let data = core
        .storage
        .call(move |c| {
            let Some(config) = store::node(c, &host, &user, AVATAR_DATA)? else {
                return Ok(None);
            };
            if access(config.access_model, relation).is_err() {
                return Ok(None);
            }
            Ok(store::items_by_id(c, &host, &user, AVATAR_DATA, &[wanted])?.pop())
        })
        .await
        .map_err(|e| log::error!("storage: {e}"))
        .ok()
        .flatten();
    let Some(binval) = data
        .and_then(|i| parse_stored(&i.xml))
        .filter(|d| d.is("data", AVATAR_DATA))
        .map(|d| d.text())
    else {
        return vcard;
    };
    let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) else {
        return vcard;
    };
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    if !hex.eq_ignore_ascii_case(&id) {
        log::debug!("pep: {owner}'s avatar data does not hash to its id");
        return vcard;
    }
    vcard
        .children
        .retain(|n| !matches!(n, Node::Element(e) if e.is("PHOTO", ns::VCARD)));
    vcard.push(
        Element::new("PHOTO", ns::VCARD)
            .with_child(Element::new("TYPE", ns::VCARD).with_text(ty))
            .with_child(Element::new("BINVAL", ns::VCARD).with_text(compact)),
    );
    vcard
}
