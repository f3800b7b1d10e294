//! XEP-0092 Software Version: the server's domain answers with its name and version. No
//! `<os/>`: it is optional, and the XEP's security considerations warn that revealing the
//! operating system invites attacks on it; a home server has no reason to tell.

use super::{Ctx, Iq, IqResult};
use crate::ns;
use crate::xml::Element;

/// The software name the server reports.
pub const NAME: &str = "roost";

/// The `<query xmlns='jabber:iq:version'/>` result payload.
pub fn query() -> Element {
    Element::new("query", ns::VERSION)
        .with_child(Element::new("name", ns::VERSION).with_text(NAME))
        .with_child(Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")))
}

/// Answers a version query to the domain.
pub async fn handle(_ctx: &mut Ctx<'_>, _iq: &Iq<'_>) -> IqResult {
    Ok(Some(query()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_name_and_version_without_os() {
        assert_eq!(
            query().to_client_string(),
            format!(
                "<query xmlns='jabber:iq:version'><name>roost</name><version>{}</version>\
                 </query>",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
