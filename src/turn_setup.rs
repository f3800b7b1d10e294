//! `roost turn-setup`: the essentials of coturn's `/etc/turnserver.conf` for calls through
//! roost (XEP-0215 credentials by the TURN REST convention), and the shared secret. What it
//! writes follows Prosody's and Snikket's coturn advice: `use-auth-secret`, a realm, a small
//! relay port range a parent can forward on the router, no relaying to loopback, private or
//! special-purpose addresses (a relay must not open the home network to strangers), quotas,
//! no telnet CLI. Lines it manages that were set before are commented out, and its own
//! block is replaced on each run, so running it again is safe.

use std::net::IpAddr;

/// The first line of the block `turn-setup` writes.
pub const BEGIN: &str =
    "# --- roost turn-setup: begin (edits here are replaced on the next run) ---";
/// Its last line.
pub const END: &str = "# --- roost turn-setup: end ---";

/// The relay port range (UDP) to forward on the router: 20 calls at once.
pub const MIN_PORT: u16 = 49160;
pub const MAX_PORT: u16 = 49200;

/// Settings `turn-setup` manages; any earlier line setting one of them is commented out.
const MANAGED: &[&str] = &[
    "listening-port",
    "use-auth-secret",
    "static-auth-secret",
    "lt-cred-mech",
    "realm",
    "min-port",
    "max-port",
    "no-cli",
    "cli-password",
    "no-tcp-relay",
    "no-multicast-peers",
    "allow-loopback-peers",
    "denied-peer-ip",
    "user-quota",
    "total-quota",
    "fingerprint",
    "external-ip",
];

/// Peers a relay must never reach: RFC 6890 special-purpose and private ranges, as the
/// coturn advice of Prosody and Snikket lists them.
const DENIED_PEERS: &[&str] = &[
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.0.2.0-192.0.2.255",
    "192.88.99.0-192.88.99.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "198.51.100.0-198.51.100.255",
    "203.0.113.0-203.0.113.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "100::-100::ffff:ffff:ffff:ffff",
    "2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
    "2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/// What goes into the block.
pub struct Setup<'a> {
    /// coturn's realm: the XMPP domain.
    pub realm: &'a str,
    pub secret: &'a str,
    pub port: u16,
    /// The router's public address, when the machine is behind NAT and knows it.
    pub external_ip: Option<IpAddr>,
}

/// A new random secret: 32 bytes as hex.
pub fn new_secret() -> String {
    crate::util::random::random_hex(32)
}

/// The key of a configuration line (`key=value`, `key value` or `key`), if it sets one.
fn key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let t = t.strip_prefix("--").unwrap_or(t);
    t.split(|c: char| c == '=' || c.is_whitespace()).next()
}

/// `existing` (a turnserver.conf) with roost's block replacing the previous one and every
/// earlier setting of a managed key commented out.
pub fn edit_conf(existing: &str, s: &Setup<'_>) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in existing.lines() {
        if line == BEGIN {
            inside = true;
            continue;
        }
        if inside {
            inside = line != END;
            continue;
        }
        match key(line) {
            Some(k) if MANAGED.contains(&k) => {
                out.push_str("# (off: roost turn-setup sets it below) ");
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(&block(s));
    out.push_str(END);
    out.push('\n');
    out
}

/// roost's settings, one a line.
fn block(s: &Setup<'_>) -> String {
    let mut b = format!(
        "listening-port={}\n\
         # Credentials come from roost (XEP-0215), made with this shared secret.\n\
         use-auth-secret\nstatic-auth-secret={}\nrealm={}\n\
         # The relay ports to forward (UDP) on the router.\n\
         min-port={MIN_PORT}\nmax-port={MAX_PORT}\n\
         no-cli\nfingerprint\nno-tcp-relay\nno-multicast-peers\n\
         user-quota=12\ntotal-quota=1200\n\
         # Never relay into the home network, loopback or special-purpose addresses.\n",
        s.port, s.secret, s.realm
    );
    for range in DENIED_PEERS {
        b.push_str("denied-peer-ip=");
        b.push_str(range);
        b.push('\n');
    }
    if let Some(ip) = s.external_ip {
        b.push_str(&format!("external-ip={ip}\n"));
    }
    b
}

/// The secret in an existing secret file (trimmed), if there is one.
pub fn read_secret(text: &str) -> Option<&str> {
    let t = text.trim();
    (!t.is_empty() && !t.contains(char::is_whitespace)).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup<'static> {
        Setup {
            realm: "example.org",
            secret: "s3cret",
            port: 3478,
            external_ip: Some("203.0.113.7".parse().unwrap()),
        }
    }

    #[test]
    fn managed_lines_are_commented_and_the_block_replaced() {
        let before = "# a comment\nlistening-port=3479\nverbose\nlt-cred-mech\nrealm = old\n";
        let once = edit_conf(before, &setup());
        assert!(once.contains("# a comment\n"));
        assert!(once.contains("\nverbose\n"));
        assert!(once.contains("# (off: roost turn-setup sets it below) listening-port=3479\n"));
        assert!(once.contains("# (off: roost turn-setup sets it below) lt-cred-mech\n"));
        assert!(once.contains("# (off: roost turn-setup sets it below) realm = old\n"));
        assert!(once.contains("\nstatic-auth-secret=s3cret\n"));
        assert!(once.contains("\nrealm=example.org\n"));
        assert!(once.contains("\ndenied-peer-ip=192.168.0.0-192.168.255.255\n"));
        assert!(once.contains("\nexternal-ip=203.0.113.7\n"));
        assert!(once.contains("\nno-cli\n"));
        // Idempotent: a second run changes nothing.
        let twice = edit_conf(&once, &setup());
        assert_eq!(once, twice);
        assert_eq!(twice.matches(BEGIN).count(), 1);
        // The active settings are roost's only.
        let active: Vec<&str> = twice.lines().filter(|l| key(l) == Some("realm")).collect();
        assert_eq!(active, ["realm=example.org"]);
    }

    #[test]
    fn keys_and_secrets() {
        assert_eq!(key("--no-cli"), Some("no-cli"));
        assert_eq!(key("  realm=x"), Some("realm"));
        assert_eq!(key("#realm=x"), None);
        assert_eq!(read_secret("abc\n"), Some("abc"));
        assert_eq!(read_secret(" \n"), None);
        assert_eq!(new_secret().len(), 64);
        assert_ne!(new_secret(), new_secret());
    }
}
