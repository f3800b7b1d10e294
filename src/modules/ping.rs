//! XEP-0199 XMPP Ping: the server and accounts answer `<ping/>` with an empty result.

use super::{Ctx, Iq, IqResult};

/// Answers a ping with an empty result.
pub async fn handle(_ctx: &mut Ctx<'_>, _iq: &Iq<'_>) -> IqResult {
    Ok(None)
}
