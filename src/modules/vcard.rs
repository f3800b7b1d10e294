//! XEP-0054 vcard-temp: an account sets its own vCard (§3.2) and anyone gets any account's
//! (§3.1). The vCard is stored as the client sent it, serialized.

use super::{account_key, storage_failed, stored_element, Ctx, Iq, IqResult, Target};
use crate::ns;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;

/// The largest vCard stored, serialized: room for a photo of about 90 KiB in base64, which
/// is plenty for an avatar, while a stanza may be up to 256 KiB.
pub const MAX_VCARD: usize = 128 * 1024;

/// The account an IQ addresses (vCard routes serve accounts only).
fn account(iq: &Iq<'_>) -> Result<crate::jid::BareJid, StanzaError> {
    match &iq.target {
        Target::Account(a) => Ok(a.clone()),
        Target::Host => Err(StanzaCondition::ServiceUnavailable.into()),
    }
}

/// The serialization to store for a vCard set, or why it is refused.
pub fn to_store(vcard: &Element) -> Result<String, StanzaError> {
    let xml = vcard.to_string();
    if xml.len() > MAX_VCARD {
        // XEP-0054 sets no limit; ours is local policy, so `policy-violation` (RFC 6120
        // §8.3.3.12) with the limit in the text.
        return Err(StanzaError::with_text(
            StanzaCondition::PolicyViolation,
            format!("a vCard may have at most {} KiB", MAX_VCARD / 1024),
        ));
    }
    Ok(xml)
}

/// Sets the sender's own vCard (an IQ set with no `to` or to the own bare JID). Another
/// account's is `forbidden`.
pub async fn set(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let account = account(iq)?;
    if account != ctx.bare_jid() {
        return Err(StanzaCondition::Forbidden.into());
    }
    let xml = to_store(iq.payload)?;
    let (host, user) = account_key(&account);
    ctx.core
        .storage
        .call(move |c| crate::storage::vcard::set(c, &host, &user, &xml))
        .await
        .map_err(storage_failed)?;
    Ok(None)
}

/// Gets an account's vCard. An account that never set one gets an empty `<vCard/>`: §3.1
/// allows that or `item-not-found`, and clients handle the empty result more gracefully.
pub async fn get(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let owner = account(iq)?;
    let (host, user) = account_key(&owner);
    let stored = ctx
        .core
        .storage
        .call(move |c| crate::storage::vcard::get(c, &host, &user))
        .await
        .map_err(storage_failed)?;
    let vcard = match stored {
        Some(xml) => stored_element(&xml)?,
        None => Element::new("vCard", ns::VCARD),
    };
    // XEP-0398: a PEP avatar shows as the PHOTO (pep/avatar.rs).
    let requester = ctx.bare_jid();
    let vcard = ctx
        .core
        .table
        .filter(
            ctx.core,
            crate::router::FilterPoint::Vcard,
            &owner,
            &requester,
            vcard,
        )
        .await;
    Ok(Some(vcard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    #[test]
    fn stored_form_round_trips() {
        let sent = parse_element(
            &Scope::client(),
            "<vCard xmlns='vcard-temp' xml:lang='fr'><FN>M&amp;m &lt;3 \u{e9}</FN>\
             <PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=\n</BINVAL></PHOTO>\
             <X-ROOST xmlns='urn:example:x' a=\"'\"/></vCard>"
                .as_bytes(),
        )
        .unwrap();
        let xml = to_store(&sent).unwrap();
        assert!(
            xml.starts_with("<vCard xmlns='vcard-temp' xml:lang='fr'>"),
            "{xml}"
        );
        assert_eq!(stored_element(&xml).unwrap(), sent);
    }

    #[test]
    fn oversized_vcards_are_a_policy_violation() {
        let fits = Element::new("vCard", ns::VCARD)
            .with_child(Element::new("NOTE", ns::VCARD).with_text("x".repeat(MAX_VCARD - 100)));
        assert!(to_store(&fits).is_ok());
        let big = Element::new("vCard", ns::VCARD)
            .with_child(Element::new("NOTE", ns::VCARD).with_text("x".repeat(MAX_VCARD)));
        assert_eq!(
            to_store(&big).unwrap_err().condition,
            StanzaCondition::PolicyViolation
        );
    }

    #[test]
    fn a_corrupt_stored_vcard_is_an_internal_error() {
        assert_eq!(
            stored_element("<vCard xmlns='vcard-temp'>")
                .unwrap_err()
                .condition,
            StanzaCondition::InternalServerError
        );
    }
}
