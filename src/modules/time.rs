//! XEP-0202 Entity Time: the server's domain answers with the time in UTC. The offset is
//! always `+00:00`: the server's own time zone would tell strangers where the family lives,
//! and clients only need `utc` to measure clock skew.

use super::{Ctx, Iq, IqResult};
use crate::ns;
use crate::xml::Element;

/// `<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>…Z</utc></time>` for Unix time `now`.
pub fn time(now: i64) -> Element {
    Element::new("time", ns::TIME)
        .with_child(Element::new("tzo", ns::TIME).with_text("+00:00"))
        .with_child(Element::new("utc", ns::TIME).with_text(crate::util::datetime::format(now)))
}

/// Answers a time query to the domain.
pub async fn handle(_ctx: &mut Ctx<'_>, _iq: &Iq<'_>) -> IqResult {
    Ok(Some(time(crate::util::datetime::unix_now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_offset_and_utc() {
        assert_eq!(
            time(1_795_631_277).to_client_string(),
            "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2026-11-25T18:27:57Z</utc></time>"
        );
    }
}
