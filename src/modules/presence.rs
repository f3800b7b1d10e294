//! Presence (RFC 6121 §3, §4): broadcasts, probes, directed presence and subscriptions.

use super::Ctx;
use crate::router::Dest;
use crate::xml::Element;

/// Handles a presence stanza from the session in `ctx`.
pub async fn route(ctx: &mut Ctx<'_>, presence: Element, dest: Dest) {
    let _ = (ctx, presence, dest);
}
