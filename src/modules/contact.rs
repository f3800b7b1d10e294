//! XEP-0157 Contact Addresses for XMPP Services: whom to write to about the server, as an
//! extended `disco#info` form (XEP-0128) on the server's domain, from the repeatable
//! `--contact-admin` and `--contact-abuse` options.

use crate::ns;
use crate::router::Core;
use crate::stanza::forms::{DataForm, Field};
use crate::xml::Element;

/// The `serverinfo` form, or `None` when no address is configured (XEP-0157 §3: the form
/// is only sent when there is something in it).
pub fn form(core: &Core) -> Option<Element> {
    let c = &core.config;
    if c.contact_admin.is_empty() && c.contact_abuse.is_empty() {
        return None;
    }
    let mut form = DataForm::with_form_type("result", ns::SERVERINFO);
    for (var, values) in [
        ("abuse-addresses", &c.contact_abuse),
        ("admin-addresses", &c.contact_admin),
    ] {
        if values.is_empty() {
            continue;
        }
        let mut f = Field::new(var, "list-multi");
        f.values.extend(values.iter().cloned());
        form.fields.push(f);
    }
    Some(Element::from(&form))
}

/// Checks one `--contact-*` value: an absolute URI with a scheme (`mailto:`, `xmpp:`,
/// `https:`, …), as XEP-0157 §2 asks.
pub fn valid_address(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && !uri.chars().any(char::is_whitespace)
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_uris() {
        for good in [
            "mailto:mom@example.org",
            "xmpp:mom@example.org",
            "https://x.example/abuse",
        ] {
            assert!(valid_address(good), "{good}");
        }
        for bad in ["mom@example.org", "", "mailto:", "1x:y", "mailto:a b"] {
            assert!(!valid_address(bad), "{bad}");
        }
    }
}
