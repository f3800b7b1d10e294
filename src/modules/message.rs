//! Messages (RFC 6121 §5, §8.5): routing to resources by priority, offline storage.

use super::Ctx;
use crate::router::{unhandled, Dest};
use crate::xml::Element;

/// Routes a message from the session in `ctx`.
pub async fn route(ctx: &mut Ctx<'_>, message: Element, dest: Dest) {
    if let Dest::Full(full) = &dest {
        if let Some(h) = ctx.server.router.get(full) {
            h.send(message);
            return;
        }
    }
    unhandled(ctx, &message);
}
