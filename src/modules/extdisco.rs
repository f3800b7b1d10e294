//! XEP-0215 External Service Discovery: the STUN and TURN services a call needs (coturn,
//! run beside roost), with short-lived TURN credentials by the TURN REST convention that
//! coturn's `use-auth-secret` checks (draft-uberti-behave-turn-rest-00 §2.2, as Prosody's
//! `mod_turn_external`): `username = "<expiry>:<bare JID>"`,
//! `password = base64(HMAC-SHA1(static-auth-secret, username))`. `urn:xmpp:extdisco:2`,
//! and `:1` for older clients, answered alike. Only local accounts' own sessions get an
//! answer: the credentials open a relay paid for by the family's line.

use super::{Ctx, Iq, IqResult};
pub use crate::config::TurnConfig;
use crate::stanza::{StanzaCondition, StanzaError};
use crate::xml::Element;
use base64::Engine;

/// One external service, as `<service/>` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub ty: &'static str,
    pub transport: &'static str,
    pub host: String,
    pub port: u16,
    /// username, password, expiry (Unix time): TURN only.
    pub credentials: Option<(String, String, i64)>,
}

impl Service {
    fn element(&self, ns: &str) -> Element {
        let mut e = Element::new("service", ns)
            .with_attr("type", self.ty)
            .with_attr("transport", self.transport)
            .with_attr("host", self.host.as_str())
            .with_attr("port", self.port.to_string());
        if let Some((user, pass, expires)) = &self.credentials {
            e.set_attr("username", user.as_str());
            e.set_attr("password", pass.as_str());
            e.set_attr("expires", crate::util::datetime::format(*expires));
            e.set_attr("restricted", "1");
        }
        e
    }
}

/// The TURN REST credentials for `user` (a bare JID) valid until Unix time `expires`.
pub fn credentials(secret: &[u8], user: &str, expires: i64) -> (String, String) {
    let username = format!("{expires}:{user}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (username, password)
}

/// Every service for `user` at Unix time `now`, with credentials made with `secret`: STUN
/// (UDP), TURN over UDP and TCP, and `turns` over TCP when a TLS port is configured.
pub fn services(turn: &TurnConfig, secret: &[u8], user: &str, now: i64) -> Vec<Service> {
    let expires = now.saturating_add(turn.ttl.as_secs() as i64);
    let (username, password) = credentials(secret, user, expires);
    let creds = Some((username, password, expires));
    let mut out = vec![
        Service {
            ty: "stun",
            transport: "udp",
            host: turn.host.clone(),
            port: turn.port,
            credentials: None,
        },
        Service {
            ty: "turn",
            transport: "udp",
            host: turn.host.clone(),
            port: turn.port,
            credentials: creds.clone(),
        },
        Service {
            ty: "turn",
            transport: "tcp",
            host: turn.host.clone(),
            port: turn.port,
            credentials: creds.clone(),
        },
    ];
    if let Some(p) = turn.tls_port {
        out.push(Service {
            ty: "turns",
            transport: "tcp",
            host: turn.host.clone(),
            port: p,
            credentials: creds,
        });
    }
    out
}

/// The services the sender may see, or `forbidden` for anyone but a local account's own
/// session.
fn for_sender(ctx: &Ctx<'_>) -> Result<Vec<Service>, StanzaError> {
    ctx.local()?;
    Ok(match &ctx.core.config.turn {
        Some(turn) => {
            let reread = ctx.core.state::<Secret>().current();
            services(
                turn,
                reread.as_deref().unwrap_or(&turn.secret),
                ctx.bare_jid().as_ref(),
                crate::util::datetime::unix_now(),
            )
        }
        None => Vec::new(),
    })
}

/// The TURN secret as last re-read from `--turn-secret-file` (SIGHUP); `None` until then:
/// the configuration's.
#[derive(Default)]
pub struct Secret(std::sync::RwLock<Option<Vec<u8>>>);

impl Secret {
    fn current(&self) -> Option<Vec<u8>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Reads a secret file as coturn's `static-auth-secret` (surrounding whitespace dropped);
/// an empty file is an error.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let secret = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!("{}: the file is empty", path.display()));
    }
    Ok(secret)
}

/// Re-reads the TURN secret from its file (SIGHUP, after `roost turn-setup --new-secret`):
/// the file read, or `None` when no file is configured. On error the old secret stays.
pub fn reload_secret(core: &crate::Core) -> Result<Option<std::path::PathBuf>, String> {
    let Some(path) = core
        .config
        .turn
        .as_ref()
        .and_then(|t| t.secret_file.clone())
    else {
        return Ok(None);
    };
    let secret = read_secret(&path)?;
    *core
        .state::<Secret>()
        .0
        .write()
        .unwrap_or_else(|p| p.into_inner()) = Some(secret);
    Ok(Some(path))
}

/// `<services/>`: every service, or those of the requested `type` (XEP-0215 §3.1).
pub async fn services_query(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let ns = iq.payload.ns.to_string();
    let wanted = iq.payload.attr("type");
    let mut reply = Element::new("services", &ns);
    for s in for_sender(ctx)?
        .iter()
        .filter(|s| wanted.is_none_or(|t| t == s.ty))
    {
        reply.push(s.element(&ns));
    }
    Ok(Some(reply))
}

/// `<credentials/>`: the credentials for the services named by type and host (and port,
/// when given) (XEP-0215 §3.3); one that is not known is `item-not-found`.
pub async fn credentials_query(ctx: &mut Ctx<'_>, iq: &Iq<'_>) -> IqResult {
    let ns = iq.payload.ns.to_string();
    let all = for_sender(ctx)?;
    let mut reply = Element::new("credentials", &ns);
    let mut asked = 0;
    for want in iq.payload.elements().filter(|e| e.name == "service") {
        asked += 1;
        let (Some(ty), Some(host)) = (want.attr("type"), want.attr("host")) else {
            return Err(StanzaError::with_text(
                StanzaCondition::BadRequest,
                "a service needs its type and host",
            ));
        };
        let port = match want.attr("port") {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                StanzaError::with_text(StanzaCondition::BadRequest, "the port is not a number")
            })?),
        };
        let found: Vec<&Service> = all
            .iter()
            .filter(|s| {
                s.ty == ty
                    && s.host == host
                    && port.is_none_or(|p| p == s.port)
                    && s.credentials.is_some()
            })
            .collect();
        if found.is_empty() {
            return Err(StanzaError::with_text(
                StanzaCondition::ItemNotFound,
                "no such service with credentials",
            ));
        }
        for s in found {
            reply.push(s.element(&ns));
        }
    }
    if asked == 0 {
        return Err(StanzaError::with_text(
            StanzaCondition::BadRequest,
            "name the service whose credentials are wanted",
        ));
    }
    Ok(Some(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn turn() -> TurnConfig {
        TurnConfig {
            host: "turn.example.org".into(),
            port: 3478,
            tls_port: Some(5349),
            secret: b"north".to_vec(),
            secret_file: None,
            ttl: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn credentials_follow_the_turn_rest_formula() {
        // Computed independently: printf '1700000000:mom@example.org' |
        //   openssl dgst -sha1 -hmac north -binary | base64
        let (u, p) = credentials(b"north", "mom@example.org", 1_700_000_000);
        assert_eq!(u, "1700000000:mom@example.org");
        assert_eq!(p, "q+RE3/1XzPraexLeAZSPtgJxw3w=");
    }

    #[test]
    fn services_with_and_without_tls() {
        let mut t = turn();
        let s = services(&t, b"north", "mom@example.org", 100);
        let kinds: Vec<_> = s.iter().map(|s| (s.ty, s.transport, s.port)).collect();
        assert_eq!(
            kinds,
            [
                ("stun", "udp", 3478),
                ("turn", "udp", 3478),
                ("turn", "tcp", 3478),
                ("turns", "tcp", 5349)
            ]
        );
        assert!(s[0].credentials.is_none());
        assert_eq!(s[1].credentials.as_ref().unwrap().2, 86_500);
        t.tls_port = None;
        assert_eq!(services(&t, b"north", "mom@example.org", 100).len(), 3);
        let e = s[1].element(crate::ns::EXTDISCO).to_client_string();
        assert!(e.contains("restricted='1'"), "{e}");
        assert!(e.contains("expires='1970-01-02T00:01:40Z'"), "{e}");
        assert!(!format!("{t:?}").contains("north"));
    }
}
