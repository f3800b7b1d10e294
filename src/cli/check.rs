//! `roost check`: a health check of a server's setup, in plain words with the fix for each
//! problem. It reads the flags the server runs with (ROOST_ARGS in /etc/default/roost, or
//! serve's flags after `--`) and checks, in this order: the settings themselves, the data
//! directory's owner and modes, the certificate's names and dates, the ports (free, or held
//! by the running roost), the DNS records (SRV for clients and servers, A/AAAA for the
//! domain and the service subdomains, all on one host) and coturn (a STUN binding request,
//! RFC 5389). Each check prints OK, WARN or FAIL, the last two with one line saying what to
//! do; the exit status is 1 when something FAILs.
//!
//! DNS is asked directly (the SRV stub client of `s2s::dns`, for A/AAAA too) rather than
//! through the system's lookup: an `/etc/hosts` line on the server itself would hide a
//! record missing for everyone else. Tests point it at their own nameserver with the
//! environment variable `ROOST_CHECK_NAMESERVER=ADDRESS:PORT` (no flag: people use
//! /etc/resolv.conf's).

use argh::FromArgs;
use roost::config::Config;
use roost::s2s::dns::{self, Record};
use simple_dns::TYPE;
use smol::future::FutureExt;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Check the server's setup and say what to fix: DNS records, the certificate's names and
/// expiry, the data directory's owner and modes, the ports, coturn. Reads the server's
/// flags from ROOST_ARGS in /etc/default/roost (as the systemd unit does), or takes serve's
/// flags after `--`, e.g. `roost check -- --domain example.org --c2s-port 5222`. Exit
/// status 1 when a check FAILs.
#[derive(FromArgs)]
#[argh(subcommand, name = "check", help_triggers("-h", "--help", "help"))]
pub struct Check {
    /// the domain to check (default: the server's --domain)
    #[argh(option)]
    domain: Option<String>,
    /// the server's data directory (default: /var/lib/roost when the defaults file is
    /// read, else the server's --data-dir)
    #[argh(option)]
    data_dir: Option<PathBuf>,
    /// file holding ROOST_ARGS="…", the flags of `roost serve`, read when it exists and no
    /// flags follow `--` (default: /etc/default/roost)
    #[argh(option)]
    defaults_file: Option<PathBuf>,
    /// the user roost runs as, owner of the data directory (default: the running
    /// server's, else the systemd unit's User=, else the current user)
    #[argh(option)]
    user: Option<String>,
    /// serve's flags, after `--`
    #[argh(positional)]
    serve_args: Vec<String>,
}

const DEFAULTS_FILE: &str = "/etc/default/roost";
const UNIT_FILES: &[&str] = &[
    "/etc/systemd/system/roost.service",
    "/usr/lib/systemd/system/roost.service",
    "/lib/systemd/system/roost.service",
];
/// A certificate expiring sooner than this is warned about.
const EXPIRY_WARNING_DAYS: i64 = 14;
/// STUN: tries and the wait for each answer.
const STUN_TRIES: u32 = 3;
const STUN_WAIT: Duration = Duration::from_secs(1);

/// The printed findings.
#[derive(Default)]
struct Report {
    fails: usize,
    warns: usize,
}

impl Report {
    fn ok(&mut self, what: impl Display) {
        println!("OK    {what}");
    }
    fn warn(&mut self, what: impl Display, fix: impl Display) {
        self.warns += 1;
        println!("WARN  {what}\n      fix: {fix}");
    }
    fn fail(&mut self, what: impl Display, fix: impl Display) {
        self.fails += 1;
        println!("FAIL  {what}\n      fix: {fix}");
    }
}

pub fn run(c: Check) -> ExitCode {
    let mut r = Report::default();
    if let Some(config) = settings(&c, &mut r) {
        let running = running_server(&config.data_dir);
        match running {
            Some(pid) => r.ok(format!("roost is running (process {pid})")),
            None => r.ok("roost is not running on this data directory"),
        }
        data_dir(&c, &config, running, &mut r);
        certificate(&config, &mut r);
        ports(&config, running, &mut r);
        smol::block_on(dns_records(&config, &mut r));
        smol::block_on(turn(&config, &mut r));
    }
    println!();
    if r.fails > 0 {
        println!(
            "{} problem(s) and {} warning(s): fix the FAIL lines first.",
            r.fails, r.warns
        );
        ExitCode::FAILURE
    } else if r.warns > 0 {
        println!("No problems; {} warning(s).", r.warns);
        ExitCode::SUCCESS
    } else {
        println!("Everything checked is fine.");
        ExitCode::SUCCESS
    }
}

/// ROOST_ARGS from a defaults file (the last assignment; quotes stripped; split at
/// whitespace as systemd splits an unquoted `$ROOST_ARGS`).
fn roost_args(text: &str) -> Option<Vec<String>> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        let Some(value) = line
            .strip_prefix("ROOST_ARGS=")
            .or_else(|| line.strip_prefix("export ROOST_ARGS="))
        else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        found = Some(value.split_whitespace().map(str::to_owned).collect());
    }
    found
}

/// The server's settings, as `roost serve` would take them.
fn settings(c: &Check, r: &mut Report) -> Option<Config> {
    let mut args: Vec<String> = Vec::new();
    let source;
    let defaults = c
        .defaults_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULTS_FILE));
    if !c.serve_args.is_empty() {
        args.extend(c.serve_args.iter().cloned());
        source = "the flags after --".to_owned();
    } else {
        match std::fs::read_to_string(&defaults) {
            Ok(text) => {
                // As the unit runs it.
                args.extend(["--data-dir".into(), crate::PACKAGED_DATA_DIR.into()]);
                args.extend(roost_args(&text).unwrap_or_default());
                source = format!("ROOST_ARGS in {}", defaults.display());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && c.defaults_file.is_none() => {
                source = "serve's defaults".to_owned();
            }
            Err(e) => {
                r.fail(
                    format!("settings: {}: {e}", defaults.display()),
                    "give the file the server reads its flags from with --defaults-file, \
                     or serve's flags after --",
                );
                return None;
            }
        }
    }
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut serve = match crate::Serve::from_args(&["roost", "serve"], &strs) {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                format!(
                    "settings: `roost serve` would refuse {source}: {}",
                    e.output.trim()
                ),
                "correct them (see `roost serve --help`)",
            );
            return None;
        }
    };
    if let Some(d) = &c.domain {
        serve.domain = d.clone();
    }
    if let Some(d) = &c.data_dir {
        serve.data_dir = d.clone();
    }
    match crate::serve_config(serve) {
        Ok(mut config) => {
            match roost::jid::nameprep(&config.domain) {
                Ok(d) => config.domain = d,
                Err(e) => {
                    r.fail(
                        format!("settings: domain {}: {e}", config.domain),
                        "give the domain the accounts are at, e.g. --domain example.org",
                    );
                    return None;
                }
            }
            r.ok(format!(
                "settings from {source}: domain {}, data directory {}",
                config.domain,
                config.data_dir.display()
            ));
            Some(config)
        }
        Err(e) => {
            r.fail(
                format!("settings: `roost serve` would refuse {source}: {e}"),
                "correct them (see `roost serve --help`); run `roost check` as root if a \
                 file cannot be read",
            );
            None
        }
    }
}

/// The process id of the roost serving this data directory, if one runs.
fn running_server(data_dir: &Path) -> Option<u32> {
    let db = roost::storage::db_path(data_dir);
    if !db.exists() {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    roost::storage::accounts::running_server(&conn)
        .ok()
        .flatten()
}

/// A `Uid:` line's real id in /proc/PID/status.
fn process_uid(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// /etc/passwd's (name, uid) pairs.
fn passwd() -> Vec<(String, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.to_owned();
            let uid = f.nth(1)?.parse().ok()?;
            Some((name, uid))
        })
        .collect()
}

fn user_name(uid: u32) -> String {
    passwd()
        .into_iter()
        .find(|(_, u)| *u == uid)
        .map(|(n, _)| n)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The user roost runs as, and how that was found.
fn expected_user(c: &Check, running: Option<u32>) -> Result<(u32, String), String> {
    if let Some(name) = &c.user {
        return passwd()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, uid)| (uid, format!("--user {name}")))
            .ok_or_else(|| format!("--user {name}: no such user in /etc/passwd"));
    }
    if let Some(uid) = running.and_then(|pid| process_uid(&pid.to_string())) {
        return Ok((uid, "the running server's user".into()));
    }
    for unit in UNIT_FILES {
        let Ok(text) = std::fs::read_to_string(unit) else {
            continue;
        };
        if let Some(name) = text.lines().find_map(|l| l.trim().strip_prefix("User=")) {
            if let Some((_, uid)) = passwd().into_iter().find(|(n, _)| n == name.trim()) {
                return Ok((uid, format!("User= of {unit}")));
            }
        }
    }
    let uid = process_uid("self").ok_or("cannot read /proc/self/status")?;
    Ok((uid, "the current user".into()))
}

/// Owner and modes of the data directory, the database and the generated key.
fn data_dir(c: &Check, config: &Config, running: Option<u32>, r: &mut Report) {
    let dir = &config.data_dir;
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            r.fail(
                format!("data directory: {shown} is a file"),
                "give the server's data directory with --data-dir",
            );
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.fail(
                format!("data directory: {shown} does not exist"),
                format!(
                    "start the server once to create it, or give the right one with \
                     --data-dir (a packaged install: {})",
                    crate::PACKAGED_DATA_DIR
                ),
            );
            return;
        }
        Err(e) => {
            r.fail(
                format!("data directory: {shown}: {e}"),
                "run `roost check` as root or as the user roost runs as",
            );
            return;
        }
    };
    let (uid, why) = match expected_user(c, running) {
        Ok(u) => u,
        Err(e) => {
            r.fail(format!("data directory: {e}"), "give an existing user");
            return;
        }
    };
    let user = user_name(uid);
    let mut fine = true;
    if meta.uid() != uid {
        fine = false;
        r.fail(
            format!(
                "data directory: {shown} belongs to {}, but roost runs as {user} ({why})",
                user_name(meta.uid())
            ),
            format!("chown -R {user}: {shown}"),
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o027 != 0 {
        fine = false;
        r.fail(
            format!(
                "data directory: {shown} has mode {mode:04o}: {}",
                if mode & 0o007 != 0 {
                    "other users can look in"
                } else {
                    "its group can write in it"
                }
            ),
            format!("chmod 0750 {shown}"),
        );
    }
    let db = roost::storage::db_path(dir);
    let mut files = vec![db.clone()];
    for suffix in ["-wal", "-shm"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        files.push(PathBuf::from(p));
    }
    if config.cert.is_none() {
        files.push(roost::net::tls::self_signed_paths(dir, &config.domain).1);
    }
    if !db.exists() {
        fine = false;
        r.fail(
            format!("data directory: {shown} holds no database yet"),
            format!(
                "start the server once (roost serve --data-dir {shown}), or give the right \
                 directory with --data-dir"
            ),
        );
    }
    for f in files {
        let Ok(m) = std::fs::metadata(&f) else {
            continue;
        };
        let fshown = f.display();
        if m.uid() != uid {
            fine = false;
            r.fail(
                format!(
                    "data directory: {fshown} belongs to {}, but roost runs as {user}",
                    user_name(m.uid())
                ),
                format!("chown {user}: {fshown}"),
            );
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o137 != 0 {
            fine = false;
            r.fail(
                format!(
                    "data directory: {fshown} has mode {mode:04o}: only roost (and its group \
                     reading) should open it"
                ),
                format!("chmod 0600 {fshown}"),
            );
        }
    }
    if fine {
        r.ok(format!(
            "data directory: {shown} belongs to {user}, mode {mode:04o}; the database is \
             private"
        ));
    }
}

/// The names the certificate must cover: the domain and the service subdomains in use.
fn needed_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.domain.clone()];
    if let Some(muc) = &config.muc {
        names.push(
            muc.domain
                .clone()
                .unwrap_or_else(|| format!("groups.{}", config.domain)),
        );
    }
    if config.upload.enabled {
        names.push(format!("upload.{}", config.domain));
    }
    names
}

fn certificate(config: &Config, r: &mut Report) {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let self_signed = config.cert.is_none();
    let (cert, key) = match (&config.cert, &config.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => roost::net::tls::self_signed_paths(&config.data_dir, &config.domain),
    };
    if self_signed && !cert.exists() {
        r.warn(
            format!(
                "certificate: none yet; roost makes a self-signed one in {} at its first \
                 start, which each app asks to trust",
                config.data_dir.display()
            ),
            "get a certificate from Let's Encrypt and give --cert and --key (see the \
             README's certificate section)",
        );
        return;
    }
    if let Err(e) = roost::net::tls::Tls::load(Some(&cert), Some(&key), &config.data_dir, "") {
        r.fail(
            format!("certificate: {e}"),
            "give a certificate and its own key (Let's Encrypt: fullchain.pem and \
             privkey.pem of the same directory) with --cert and --key",
        );
        return;
    }
    let facts = std::fs::read(&cert)
        .ok()
        .and_then(|pem| CertificateDer::pem_slice_iter(&pem).next()?.ok())
        .and_then(|der| roost::net::x509::facts(&der));
    let Some(facts) = facts else {
        r.fail(
            format!(
                "certificate: {} cannot be read as an X.509 certificate",
                cert.display()
            ),
            "give a PEM certificate with --cert",
        );
        return;
    };
    let shown = cert.display();
    let missing: Vec<String> = needed_names(config)
        .into_iter()
        .filter(|n| !facts.names.iter().any(|c| roost::net::x509::covers(c, n)))
        .collect();
    if missing.is_empty() {
        r.ok(format!(
            "certificate: {shown} covers {}",
            needed_names(config).join(", ")
        ));
    } else if self_signed {
        r.fail(
            format!(
                "certificate: {shown} does not cover {} (it names {})",
                missing.join(", "),
                facts.names.join(", ")
            ),
            format!(
                "move {shown} and its key away and restart roost: it makes a new one for \
                 every name"
            ),
        );
    } else {
        let all: Vec<String> = needed_names(config)
            .iter()
            .map(|n| format!("-d {n}"))
            .collect();
        r.fail(
            format!(
                "certificate: {shown} does not cover {} (it names {}): apps and other \
                 servers refuse those",
                missing.join(", "),
                facts.names.join(", ")
            ),
            format!(
                "get one for every name, e.g. certbot certonly --expand {}",
                all.join(" ")
            ),
        );
    }
    let now = roost::util::datetime::unix_now();
    let until = roost::util::datetime::format(facts.not_after);
    let days = (facts.not_after - now).div_euclid(86_400);
    let renew = if self_signed {
        format!("move {shown} and its key away and restart roost to make a new one")
    } else {
        "renew it (certbot renew), then reload roost (systemctl reload roost)".to_owned()
    };
    if now < facts.not_before {
        r.fail(
            format!(
                "certificate: {shown} is valid only from {}",
                roost::util::datetime::format(facts.not_before)
            ),
            "check this machine's clock (timedatectl)",
        );
    } else if now >= facts.not_after {
        r.fail(format!("certificate: {shown} expired on {until}"), renew);
    } else if days < EXPIRY_WARNING_DAYS {
        r.warn(
            format!("certificate: {shown} expires in {days} day(s), on {until}"),
            renew,
        );
    } else {
        r.ok(format!(
            "certificate: valid until {until} ({days} days left)"
        ));
    }
    if self_signed {
        r.warn(
            "certificate: self-signed; each app asks to trust it and other servers fall \
             back to dialback",
            "get a certificate from Let's Encrypt and give --cert and --key (see the \
             README's certificate section)",
        );
    }
}

/// The ports the settings listen on: (what, addresses, port).
fn listening(config: &Config) -> Vec<(&'static str, Vec<IpAddr>, u16)> {
    let mut out = vec![
        ("client (STARTTLS)", config.bind.clone(), config.c2s_port),
        (
            "client (direct TLS)",
            config.bind.clone(),
            config.c2s_tls_port,
        ),
    ];
    if let Some(s2s) = &config.s2s {
        out.push(("server-to-server (STARTTLS)", config.bind.clone(), s2s.port));
        out.push((
            "server-to-server (direct TLS)",
            config.bind.clone(),
            s2s.tls_port,
        ));
    }
    if config.http.enabled {
        out.push(("HTTPS", config.bind.clone(), config.http.https_port));
        if let Some(p) = config.http.http_port {
            out.push((
                "plain HTTP (loopback)",
                vec![IpAddr::from([127, 0, 0, 1])],
                p,
            ));
        }
    }
    out.retain(|(_, _, p)| *p != 0);
    out
}

/// The socket inodes of TCP listeners on `port` (/proc/net/tcp and tcp6).
fn listener_inodes(port: u16) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Ok(inode) = f[9].parse() {
                    out.insert(inode);
                }
            }
        }
    }
    out
}

/// Whether process `pid` holds one of `inodes`; `None` if its descriptors cannot be read.
fn holds(pid: &str, inodes: &BTreeSet<u64>) -> Option<bool> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|l| {
                l.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            })
            .is_some_and(|i| inodes.contains(&i))
    }))
}

/// The process holding one of `inodes`: "name (process PID)".
fn holder(inodes: &BTreeSet<u64>) -> Option<String> {
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if holds(pid, inodes) == Some(true) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return Some(format!("{} (process {pid})", comm.trim()));
        }
    }
    None
}

fn ports(config: &Config, running: Option<u32>, r: &mut Report) {
    for (what, addrs, port) in listening(config) {
        let inodes = listener_inodes(port);
        if let Some(pid) = running {
            match holds(&pid.to_string(), &inodes) {
                Some(true) => {
                    r.ok(format!("port {port} ({what}): roost listens on it"));
                    continue;
                }
                None if !inodes.is_empty() => {
                    r.warn(
                        format!(
                            "port {port} ({what}): in use, but whose cannot be seen from \
                             this user"
                        ),
                        "run `roost check` as root",
                    );
                    continue;
                }
                _ if inodes.is_empty() => {
                    r.fail(
                        format!(
                            "port {port} ({what}): roost (process {pid}) runs but does not \
                             listen on it"
                        ),
                        "restart roost so it runs with these settings (systemctl restart \
                         roost)",
                    );
                    continue;
                }
                _ => {}
            }
        }
        let mut free = true;
        for ip in &addrs {
            match std::net::TcpListener::bind(SocketAddr::new(*ip, port)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => free = false,
                Err(e) => {
                    free = false;
                    r.fail(
                        format!("port {port} ({what}): cannot listen on {ip}: {e}"),
                        if port < 1024 {
                            "give roost CAP_NET_BIND_SERVICE (see roost.service) or use a \
                             port above 1023"
                        } else {
                            "give an address of this machine with --bind"
                        },
                    );
                }
            }
        }
        if free {
            r.ok(format!("port {port} ({what}): free for roost"));
        } else if !inodes.is_empty() || running.is_none() {
            let who = holder(&listener_inodes(port))
                .map(|h| format!("by {h}"))
                .unwrap_or_else(|| "by another program".into());
            r.fail(
                format!("port {port} ({what}): in use {who}, not by roost"),
                "stop that program, or give roost another port (see `roost serve --help`)",
            );
        }
    }
}

/// The nameservers to ask.
fn nameservers() -> Vec<SocketAddr> {
    if let Some(ns) = std::env::var("ROOST_CHECK_NAMESERVER")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![ns];
    }
    dns::nameservers(Path::new(dns::RESOLV_CONF))
}

/// An address clients outside the home network cannot reach.
fn private(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private() || a.is_loopback() || a.is_link_local(),
        IpAddr::V6(a) => {
            a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00 || a.segments()[0] == 0xfe80
        }
    }
}

/// The A and AAAA records of `name`; `None` if DNS did not answer.
async fn addresses(ns: &[SocketAddr], name: &str) -> Option<BTreeSet<IpAddr>> {
    let (a, aaaa) = smol::future::zip(
        dns::query(ns, name, TYPE::A),
        dns::query(ns, name, TYPE::AAAA),
    )
    .await;
    if a.is_none() && aaaa.is_none() {
        return None;
    }
    Some(
        a.into_iter()
            .chain(aaaa)
            .flatten()
            .filter_map(|r| match r {
                Record::Addr(ip) => Some(ip),
                Record::Srv(_) => None,
            })
            .collect(),
    )
}

async fn srv(ns: &[SocketAddr], name: &str) -> Option<Vec<dns::Srv>> {
    Some(
        dns::query(ns, name, TYPE::SRV)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::Srv(s) if s.target != "." && !s.target.is_empty() => Some(s),
                _ => None,
            })
            .collect(),
    )
}

fn show(addrs: &BTreeSet<IpAddr>) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn dns_records(config: &Config, r: &mut Report) {
    let d = &config.domain;
    if !d.contains('.') || d.ends_with(".localhost") || d == "localhost" {
        r.warn(
            format!("DNS: {d} is a name only this machine knows: apps elsewhere cannot reach it"),
            "serve a domain you own (see `roost rename-domain --help`) and publish its records",
        );
        return;
    }
    let ns = nameservers();
    // (record, port roost listens on, the port used without the record: none for direct TLS)
    let mut services = vec![
        ("_xmpp-client._tcp", config.c2s_port, Some(5222)),
        ("_xmpps-client._tcp", config.c2s_tls_port, None),
    ];
    if let Some(s2s) = &config.s2s {
        services.push(("_xmpp-server._tcp", s2s.port, Some(5269)));
        services.push(("_xmpps-server._tcp", s2s.tls_port, None));
    } else {
        r.ok("DNS: federation is off (--no-s2s): no server-to-server records needed");
    }
    let Some(domain_addrs) = addresses(&ns, d).await else {
        r.fail(
            format!(
                "DNS: no nameserver answered ({})",
                ns.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "check this machine's network and /etc/resolv.conf, then run `roost check` again",
        );
        return;
    };
    // Every name roost is reached at, with its addresses: all should be one machine.
    let mut host_names: Vec<(String, BTreeSet<IpAddr>)> = Vec::new();
    let mut fallback_used = false;
    for (service, port, fallback) in services {
        let name = format!("{service}.{d}");
        let records = srv(&ns, &name).await.unwrap_or_default();
        if records.is_empty() {
            match fallback {
                Some(default) if port == default && !domain_addrs.is_empty() => {
                    fallback_used = true;
                    r.ok(format!(
                        "DNS: no {name} record; apps use {d}:{port}, which is roost's port"
                    ));
                }
                Some(_) => r.fail(
                    format!(
                        "DNS: no {name} record, and {}",
                        if domain_addrs.is_empty() {
                            format!("{d} has no address either")
                        } else {
                            format!("roost listens on {port}, not the default port")
                        }
                    ),
                    format!("add the record {name}. 3600 IN SRV 0 5 {port} {d}."),
                ),
                None => r.warn(
                    format!(
                        "DNS: no {name} record: {} cannot find direct TLS on port {port}",
                        if service.contains("client") {
                            "apps"
                        } else {
                            "other servers"
                        }
                    ),
                    format!(
                        "add the record {name}. 3600 IN SRV 0 5 {port} {d}. (direct TLS \
                         gets through more firewalls)"
                    ),
                ),
            }
            continue;
        }
        for s in records {
            let target_addrs = addresses(&ns, &s.target).await.unwrap_or_default();
            if s.port != port {
                r.fail(
                    format!(
                        "DNS: {name} points at port {}, but roost listens on {port}",
                        s.port
                    ),
                    format!(
                        "change the record to {name}. 3600 IN SRV {} {} {port} {}.",
                        s.priority, s.weight, s.target
                    ),
                );
            } else if target_addrs.is_empty() {
                r.fail(
                    format!(
                        "DNS: {name} points at {}, which has no A or AAAA record",
                        s.target
                    ),
                    format!(
                        "add an A (and AAAA) record for {} with this machine's public address",
                        s.target
                    ),
                );
            } else {
                r.ok(format!(
                    "DNS: {name} → {}:{} ({})",
                    s.target,
                    s.port,
                    show(&target_addrs)
                ));
                host_names.push((s.target.clone(), target_addrs));
            }
        }
    }
    if fallback_used {
        host_names.push((d.clone(), domain_addrs.clone()));
    }
    // The service subdomains: reached by other servers (federation), by name.
    let mut subdomains: Vec<(String, bool)> = Vec::new();
    if config.s2s.is_some() {
        if let Some(muc) = &config.muc {
            let name = muc.domain.clone().unwrap_or_else(|| format!("groups.{d}"));
            subdomains.push((name, true));
        }
        if config.upload.enabled {
            subdomains.push((format!("upload.{d}"), false));
        }
    }
    for (name, needed) in subdomains {
        let own_srv = srv(&ns, &format!("_xmpp-server._tcp.{name}"))
            .await
            .unwrap_or_default();
        let mut addrs = addresses(&ns, &name).await.unwrap_or_default();
        for s in &own_srv {
            addrs.extend(addresses(&ns, &s.target).await.unwrap_or_default());
        }
        if addrs.is_empty() {
            let what = format!(
                "DNS: {name} has no A/AAAA (or SRV) record: {}",
                if needed {
                    "people on other servers cannot join your group chats"
                } else {
                    "other servers cannot reach the upload service"
                }
            );
            let fix = format!("add the record {name}. 3600 IN CNAME {d}. (or an A record)");
            if needed {
                r.fail(what, fix);
            } else {
                r.warn(what, fix);
            }
        } else {
            r.ok(format!("DNS: {name} → {}", show(&addrs)));
            host_names.push((name, addrs));
        }
    }
    // One machine: every name shares an address with the first.
    if let Some((first, first_addrs)) = host_names.first().cloned() {
        let mut same = true;
        for (name, addrs) in &host_names[1..] {
            if addrs.is_disjoint(&first_addrs) {
                same = false;
                r.warn(
                    format!(
                        "DNS: {name} ({}) and {first} ({}) point at different machines, but \
                         roost runs on one",
                        show(addrs),
                        show(&first_addrs)
                    ),
                    format!("point {name} at the machine roost runs on (e.g. CNAME {first}.)"),
                );
            }
        }
        if same {
            r.ok(format!(
                "DNS: every name points at the same machine ({})",
                show(&first_addrs)
            ));
        }
        let private_ones: BTreeSet<IpAddr> = host_names
            .iter()
            .flat_map(|(_, a)| a.iter().copied())
            .filter(private)
            .collect();
        if !private_ones.is_empty() {
            r.warn(
                format!(
                    "DNS: the records point at private addresses ({}): apps outside this \
                     network cannot reach them",
                    show(&private_ones)
                ),
                "publish the router's public address and forward the ports to this machine",
            );
        }
    }
}

/// A STUN binding request (RFC 5389 §6): type 0x0001, length 0, the magic cookie, a random
/// transaction id.
fn binding_request() -> ([u8; 20], [u8; 12]) {
    let mut tid = [0u8; 12];
    roost::util::random::random(&mut tid);
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&0x0001u16.to_be_bytes());
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..20].copy_from_slice(&tid);
    (m, tid)
}

const MAGIC_COOKIE: u32 = 0x2112_A442;

/// A binding success response to transaction `tid`: the XOR-MAPPED-ADDRESS (or
/// MAPPED-ADDRESS) it carries, `Some(None)` if none; `None` if it is not that response.
fn binding_response(m: &[u8], tid: &[u8; 12]) -> Option<Option<SocketAddr>> {
    if m.len() < 20 || m[0] & 0xc0 != 0 {
        return None;
    }
    let ty = u16::from_be_bytes([m[0], m[1]]);
    let len = usize::from(u16::from_be_bytes([m[2], m[3]]));
    if ty != 0x0101
        || len != m.len() - 20
        || m[4..8] != MAGIC_COOKIE.to_be_bytes()
        || m[8..20] != tid[..]
    {
        return None;
    }
    let mut attrs = &m[20..];
    while attrs.len() >= 4 {
        let at = u16::from_be_bytes([attrs[0], attrs[1]]);
        let alen = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + alen)?;
        if (at == 0x0020 || at == 0x0001) && value.len() >= 8 {
            let xor = at == 0x0020;
            let mut port = u16::from_be_bytes([value[2], value[3]]);
            if xor {
                port ^= (MAGIC_COOKIE >> 16) as u16;
            }
            let ip = match value[1] {
                0x01 => {
                    let mut a = [value[4], value[5], value[6], value[7]];
                    if xor {
                        for (b, k) in a.iter_mut().zip(MAGIC_COOKIE.to_be_bytes()) {
                            *b ^= k;
                        }
                    }
                    IpAddr::from(a)
                }
                0x02 if value.len() >= 20 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&value[4..20]);
                    if xor {
                        let key: Vec<u8> = MAGIC_COOKIE
                            .to_be_bytes()
                            .into_iter()
                            .chain(tid.iter().copied())
                            .collect();
                        for (b, k) in a.iter_mut().zip(key) {
                            *b ^= k;
                        }
                    }
                    IpAddr::from(a)
                }
                _ => return Some(None),
            };
            return Some(Some(SocketAddr::new(ip, port)));
        }
        // Attributes are padded to 4 bytes.
        let step = 4 + alen.div_ceil(4) * 4;
        attrs = attrs.get(step..).unwrap_or_default();
    }
    Some(None)
}

/// Whether coturn answers a STUN binding request over UDP.
async fn turn(config: &Config, r: &mut Report) {
    let Some(t) = &config.turn else {
        r.warn(
            "calls: no TURN server (--turn-host): calls between different networks may \
             ring but not connect",
            "set up coturn with `roost turn-setup` (see `roost turn-setup --help`)",
        );
        return;
    };
    let where_ = format!("{}:{}", t.host, t.port);
    let resolve = async { async_net::resolve((t.host.as_str(), t.port)).await.ok() };
    let timeout = async {
        smol::Timer::after(Duration::from_secs(5)).await;
        None
    };
    let Some(addr) = resolve.or(timeout).await.and_then(|a| a.into_iter().next()) else {
        r.fail(
            format!("calls: the TURN host {} has no address", t.host),
            "give --turn-host a name with an A/AAAA record (or an address)",
        );
        return;
    };
    let answer = async {
        let bind: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = async_net::UdpSocket::bind(bind).await.ok()?;
        sock.connect(addr).await.ok()?;
        let (request, tid) = binding_request();
        let mut buf = [0u8; 1500];
        for _ in 0..STUN_TRIES {
            sock.send(&request).await.ok()?;
            let wait = async {
                smol::Timer::after(STUN_WAIT).await;
                None
            };
            let got = async {
                loop {
                    // An ICMP "port unreachable" shows as an error here: keep waiting out
                    // the try, then ask again.
                    let Ok(n) = sock.recv(&mut buf).await else {
                        smol::Timer::after(STUN_WAIT).await;
                        return None;
                    };
                    if let Some(mapped) = binding_response(&buf[..n], &tid) {
                        return Some(mapped);
                    }
                }
            };
            if let Some(mapped) = got.or(wait).await {
                return Some(mapped);
            }
        }
        None
    };
    match answer.await {
        Some(mapped) => r.ok(format!(
            "calls: coturn answers at {where_} (UDP){}",
            mapped
                .map(|m| format!(", and sees this machine as {m}"))
                .unwrap_or_default()
        )),
        None => r.fail(
            format!("calls: nothing answers STUN at {where_} (UDP, {addr})"),
            "start coturn (systemctl enable --now coturn; see `roost turn-setup --help`) \
             and let UDP port through the firewall",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roost_args_takes_the_last_assignment_without_quotes() {
        let text = "# ROOST_ARGS=\"--domain commented\"\nROOST_ARGS=\"\"\n\
                    ROOST_ARGS=\"--domain example.org  --c2s-port 5999\"\n";
        assert_eq!(
            roost_args(text).unwrap(),
            ["--domain", "example.org", "--c2s-port", "5999"]
        );
        assert_eq!(roost_args("OTHER=1"), None);
        assert_eq!(roost_args("ROOST_ARGS='--no-s2s'").unwrap(), ["--no-s2s"]);
    }

    #[test]
    fn a_binding_response_gives_the_mapped_address() {
        let (req, tid) = binding_request();
        assert_eq!(&req[4..8], &[0x21, 0x12, 0xa4, 0x42]);
        // RFC 5769 §2.2's response, with our transaction id: 192.0.2.1:32853.
        let mut m = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&tid);
        m.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47]);
        m.extend_from_slice(&[0xe1, 0x12, 0xa6, 0x43]);
        assert_eq!(
            binding_response(&m, &tid),
            Some(Some("192.0.2.1:32853".parse().unwrap()))
        );
        // Another transaction, a request, a bad length: not the answer.
        assert_eq!(binding_response(&m, &[0; 12]), None);
        let mut req2 = m.clone();
        req2[1] = 0x01;
        req2[0] = 0x00;
        assert_eq!(binding_response(&req2, &tid), None);
        assert_eq!(binding_response(&m[..m.len() - 1], &tid), None);
    }
}
