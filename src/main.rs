//! The `roost` command line: `serve`, and account management on the same data directory.
#![forbid(unsafe_code)]

mod cli;

use argh::FromArgs;
use roost::config::Config;
use roost::jid::BareJid;
use roost::sasl::StoredCredentials;
use roost::storage::{self, accounts, accounts::AccountError};
use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// roost: a small XMPP server for a family.
#[derive(FromArgs)]
#[argh(help_triggers("-h", "--help", "help"))]
struct Cli {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
// Parsed once at start: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    Serve(Serve),
    AddUser(AddUser),
    Passwd(Passwd),
    DelUser(DelUser),
    Users(Users),
    RenameDomain(RenameDomain),
    CertFingerprint(CertFingerprint),
    TurnSetup(TurnSetup),
    Rooms(Rooms),
    RoomAdd(RoomAdd),
    RoomRemove(RoomRemove),
    Role(cli::role::RoleCmd),
    Circle(cli::circle::CircleCmd),
    Circles(cli::circle::Circles),
    Check(cli::check::Check),
    Backup(cli::backup::Backup),
    Restore(cli::backup::Restore),
    Export(cli::backup::Export),
    Import(cli::backup::Import),
    Invite(cli::invite::Invite),
    Invites(cli::invite::Invites),
    Uninvite(cli::invite::Uninvite),
}

/// The subcommands' names, for pointing at their help after a mistake.
const SUBCOMMANDS: &[&str] = &[
    "serve",
    "adduser",
    "passwd",
    "deluser",
    "users",
    "rename-domain",
    "cert-fingerprint",
    "turn-setup",
    "rooms",
    "room-add",
    "room-remove",
    "role",
    "circle",
    "circles",
    "check",
    "backup",
    "restore",
    "export",
    "import",
    "invite",
    "invites",
    "uninvite",
];

/// Shortest password accepted without --allow-weak-password.
const MIN_PASSWORD_CHARS: usize = 8;

/// Where a packaged install keeps its data.
const PACKAGED_DATA_DIR: &str = "/var/lib/roost";

/// Run the server (defaults: domain localhost, data in ./roost-data, ports 5222 and 5223).
#[derive(FromArgs)]
#[argh(subcommand, name = "serve", help_triggers("-h", "--help", "help"))]
struct Serve {
    /// the domain served, the part after @ in addresses; a data directory serves one
    /// domain, see `roost rename-domain --help` to change it (default: localhost)
    #[argh(option, default = "String::from(\"localhost\")")]
    domain: String,
    /// directory holding roost.db and the generated certificate, created (mode 0700)
    /// if missing (default: ./roost-data)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// client port with STARTTLS (default: 5222; 0 picks a free port)
    #[argh(option, default = "5222")]
    c2s_port: u16,
    /// client port with direct TLS, XEP-0368 (default: 5223; 0 picks a free port)
    #[argh(option, default = "5223")]
    c2s_tls_port: u16,
    /// address to listen on, repeatable (default: all IPv6 and IPv4 addresses, "::")
    #[argh(option)]
    bind: Vec<IpAddr>,
    /// PEM certificate chain, e.g. Let's Encrypt's fullchain.pem (default: self-signed)
    #[argh(option)]
    cert: Option<PathBuf>,
    /// PEM private key for --cert, e.g. Let's Encrypt's privkey.pem
    #[argh(option)]
    key: Option<PathBuf>,
    /// log level: error, warn, info, debug or trace (default: info)
    #[argh(option, default = "String::from(\"info\")")]
    log_level: String,
    /// worker threads for the sessions (default: 1, enough for a family; more help only
    /// with many logins or TLS handshakes at once)
    #[argh(option)]
    threads: Option<usize>,
    /// let clients log in without TLS (tests and benchmarks on loopback only!)
    #[argh(switch)]
    insecure_allow_plaintext: bool,
    /// largest stanza in bytes (default: 262144)
    #[argh(option, default = "256 * 1024")]
    max_stanza_size: usize,
    /// seconds a connection may take to log in before it is closed (default: 60)
    #[argh(option, default = "60")]
    auth_timeout: u64,
    /// seconds of client silence before the server pings it, XEP-0199 (default: 300)
    #[argh(option, default = "300")]
    ping_interval: u64,
    /// seconds to wait for the answer to that ping before closing (default: 60)
    #[argh(option, default = "60")]
    ping_timeout: u64,
    /// seconds a session whose connection broke stays resumable, XEP-0198 (default: 3600)
    #[argh(option, default = "3600")]
    resume_timeout: u64,
    /// most contacts in one roster (default: 1000)
    #[argh(option, default = "1000")]
    roster_limit: usize,
    /// most offline messages kept for one account (default: 1000)
    #[argh(option, default = "1000")]
    offline_limit: usize,
    /// days archived messages are kept, XEP-0313; 0 keeps them forever (default: 0)
    #[argh(option, default = "0")]
    archive_expires_days: u32,
    /// most connections at once (default: 20000)
    #[argh(option, default = "20_000")]
    max_connections: usize,
    /// most not-yet-logged-in connections at once from one IP address (default: 32)
    #[argh(option, default = "32")]
    max_unauth_per_ip: usize,
    /// let anyone create an account from an app (XEP-0077), one account per IP address
    /// every 10 minutes (default: off; accounts come from `roost adduser` and
    /// invitations, see `roost invite --help`)
    #[argh(switch)]
    open_registration: bool,
    /// how to reach the server's admins, a URI such as mailto:mom@example.org or
    /// xmpp:mom@example.org; repeatable; shown to clients (XEP-0157)
    #[argh(option)]
    contact_admin: Vec<String>,
    /// where to report abuse, a URI as for --contact-admin; repeatable (XEP-0157)
    #[argh(option)]
    contact_abuse: Vec<String>,
    /// host name of the TURN server (coturn) for calls, handed to clients with
    /// credentials, XEP-0215; needs --turn-secret-file (default: none, no calls relay)
    #[argh(option)]
    turn_host: Option<String>,
    /// STUN/TURN port over UDP and TCP (default: 3478)
    #[argh(option, default = "3478")]
    turn_port: u16,
    /// TURN-over-TLS port, when coturn has a certificate (default: none)
    #[argh(option)]
    turns_port: Option<u16>,
    /// file holding coturn's static-auth-secret, see `roost turn-setup --help`
    #[argh(option)]
    turn_secret_file: Option<PathBuf>,
    /// seconds the TURN credentials handed out stay valid (default: 86400, a day)
    #[argh(option, default = "86_400")]
    turn_ttl: u64,
    /// days a fast-login token (XEP-0484 FAST) stays valid without use; renewed daily
    /// while used; 0 turns fast logins off (default: 21)
    #[argh(option, default = "21")]
    fast_token_days: u32,
    /// domain of the group chat service, XEP-0045 (default: groups.<domain>)
    #[argh(option)]
    muc_domain: Option<String>,
    /// no group chats
    #[argh(switch)]
    no_muc: bool,
    /// name of the family room made at first start, which every account joins
    /// (default: family)
    #[argh(option, default = "String::from(\"family\")")]
    family_room: String,
    /// do not make a family room
    #[argh(switch)]
    no_family_room: bool,
    /// most people in one group chat (default: 100)
    #[argh(option, default = "100")]
    muc_max_occupants: usize,
    /// most group chats one account may own (default: 20)
    #[argh(option, default = "20")]
    muc_rooms_per_account: usize,
    /// messages of a group chat sent to someone joining it (default: 50)
    #[argh(option, default = "50")]
    muc_history: usize,
    /// server-to-server port with STARTTLS, for federation (default: 5269; 0 picks a
    /// free port)
    #[argh(option, default = "5269")]
    s2s_port: u16,
    /// server-to-server port with direct TLS, XEP-0368 (default: 5270)
    #[argh(option, default = "5270")]
    s2s_tls_port: u16,
    /// no federation: no server-to-server listeners, addresses at other servers get
    /// remote-server-not-found
    #[argh(switch)]
    no_s2s: bool,
    /// PEM file of certificate authorities to trust for other servers' certificates
    /// besides the system's (/etc/ssl/certs); repeatable
    #[argh(option)]
    s2s_trust: Vec<PathBuf>,
    /// accept only servers whose certificate is valid for their domain (no dialback)
    #[argh(switch)]
    s2s_secure_auth: bool,
    /// seconds without a stanza before a server-to-server connection closes
    /// (default: 600)
    #[argh(option, default = "600")]
    s2s_idle_timeout: u64,
    /// stanzas per second one incoming server-to-server connection may send, with
    /// bursts of twice that; a faster peer is read more slowly (default: 100)
    #[argh(option, default = "100")]
    s2s_stanza_rate: u32,
    /// server-to-server connections one address may open per minute; more are closed at
    /// once (default: 30)
    #[argh(option, default = "30")]
    s2s_connects_per_minute: u32,
    /// no bidirectional server-to-server streams, XEP-0288 (each direction then has its
    /// own connection)
    #[argh(switch)]
    no_s2s_bidi: bool,
    /// no push notifications, XEP-0357 (phones' apps are then not woken up)
    #[argh(switch)]
    no_push: bool,
    /// put the sender and the text of a message in push notifications (they pass through
    /// the app vendor's and Apple's or Google's servers; default: only a count)
    #[argh(switch)]
    push_include_body: bool,
    /// hours a session with push notifications stays resumable, XEP-0198 (default: 72)
    #[argh(option, default = "72")]
    push_hibernation: u64,
    /// turn the HTTP service off: no file upload, WebSocket, host-meta or invitation pages
    #[argh(switch)]
    no_http: bool,
    /// HTTPS port for file upload, WebSocket, host-meta and invitation pages, with the
    /// client certificate
    /// (default: 5281; 0 picks a free port)
    #[argh(option, default = "5281")]
    https_port: u16,
    /// plain HTTP port on 127.0.0.1 and ::1 only, for a reverse proxy that terminates TLS
    /// (default: none)
    #[argh(option)]
    http_port: Option<u16>,
    /// the base URL clients are given for uploads, WebSocket and invitations, e.g.
    /// https://chat.example.org when a proxy serves port 443 (default:
    /// https://DOMAIN:HTTPS-PORT)
    #[argh(option)]
    http_external_url: Option<String>,
    /// turn XMPP over WebSocket (RFC 7395, /xmpp-websocket on the HTTP ports) off
    #[argh(switch)]
    no_websocket: bool,
    /// turn file upload (XEP-0363, upload.DOMAIN) off
    #[argh(switch)]
    no_upload: bool,
    /// largest uploaded file, in bytes or with K, M or G (default: 100M)
    #[argh(option, default = "String::from(\"100M\")")]
    upload_max_size: String,
    /// most bytes of uploaded files kept per account (default: 1G)
    #[argh(option, default = "String::from(\"1G\")")]
    upload_quota: String,
    /// most bytes one account may upload in 24 hours (default: 512M)
    #[argh(option, default = "String::from(\"512M\")")]
    upload_daily_quota: String,
    /// most bytes of uploaded files kept in all (default: 10G)
    #[argh(option, default = "String::from(\"10G\")")]
    upload_disk_cap: String,
    /// days uploaded files are kept; 0 keeps them forever (default: as
    /// --archive-expires-days)
    #[argh(option)]
    upload_expires_days: Option<u32>,
}

/// A size in bytes, with an optional K, M or G (powers of 1024) suffix.
fn parse_size(flag: &str, text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => {
            return Err(format!(
                "{flag} {text}: give bytes, or a number with K, M or G"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} {text}: give bytes, or a number with K, M or G"))
}

/// `--http-external-url`: `http(s)://host[:port]`, no path (the routes live at the root).
fn check_external_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.trim_end_matches('/').is_empty()
                && !r.trim_end_matches('/').contains(['/', '?', '#', ' ']) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "--http-external-url {url}: give a base URL such as https://chat.example.org or \
             https://chat.example.org:5281, without a path"
        )),
    }
}

/// Add a family member's account; the password (8 characters or more) is asked for on a
/// terminal, or read as one line from stdin. The server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "adduser", help_triggers("-h", "--help", "help"))]
struct AddUser {
    /// the new address, e.g. mom@example.org
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// accept a password shorter than 8 characters
    #[argh(switch)]
    allow_weak_password: bool,
    /// make the account an admin (the first admin is made this way, or with `roost role`)
    #[argh(switch)]
    admin: bool,
    /// the account's role: admin, normal or limited (see `roost role --help`; default:
    /// normal)
    #[argh(option)]
    role: Option<String>,
    /// also put the account in this circle (see `roost circle --help`)
    #[argh(option)]
    circle: Option<String>,
}

/// Change an account's password, read like adduser's; the account's connected clients are
/// logged out within a second and must log in with the new password.
#[derive(FromArgs)]
#[argh(subcommand, name = "passwd", help_triggers("-h", "--help", "help"))]
struct Passwd {
    /// the account's address
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// accept a password shorter than 8 characters
    #[argh(switch)]
    allow_weak_password: bool,
}

/// Remove an account and everything stored for it; its connected clients are logged out
/// within a second. Asks for confirmation on a terminal.
#[derive(FromArgs)]
#[argh(subcommand, name = "deluser", help_triggers("-h", "--help", "help"))]
struct DelUser {
    /// the account's address
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
}

/// List the accounts, with the role of those not normal (admin, limited).
#[derive(FromArgs)]
#[argh(subcommand, name = "users", help_triggers("-h", "--help", "help"))]
struct Users {
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Move every account and everything stored for it from domain OLD to domain NEW (stop the
/// server first, then start it with --domain NEW). Asks for confirmation on a terminal.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "rename-domain",
    help_triggers("-h", "--help", "help")
)]
struct RenameDomain {
    /// the domain the data directory serves now, e.g. localhost
    #[argh(positional)]
    old: String,
    /// the new domain, e.g. example.org
    #[argh(positional)]
    new: String,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
}

/// Print the SHA-256 and SHA-1 fingerprints of the server's certificate, to compare with
/// what a client shows when it asks whether to trust it.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "cert-fingerprint",
    help_triggers("-h", "--help", "help")
)]
struct CertFingerprint {
    /// data directory of the server, holding the self-signed certificate (default:
    /// ./roost-data; a packaged install: /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
    /// the domain whose self-signed certificate to read (default: the one the data
    /// directory serves)
    #[argh(option)]
    domain: Option<String>,
    /// a PEM certificate file to read instead, e.g. the one given to `roost serve --cert`
    #[argh(option)]
    cert: Option<PathBuf>,
}

/// Set up coturn (Debian package coturn) for calls: writes a random shared secret for roost
/// and fills /etc/turnserver.conf's essentials (run as root; running it again keeps the
/// secret). Then tells what to forward on the router and which flags to give roost.
#[derive(FromArgs)]
#[argh(subcommand, name = "turn-setup", help_triggers("-h", "--help", "help"))]
struct TurnSetup {
    /// the domain roost serves, coturn's realm, e.g. example.org
    #[argh(option)]
    domain: String,
    /// the name clients reach coturn at (default: the domain)
    #[argh(option)]
    turn_host: Option<String>,
    /// STUN/TURN port (default: 3478)
    #[argh(option, default = "3478")]
    turn_port: u16,
    /// the router's public IP address, when this machine is behind NAT
    #[argh(option)]
    external_ip: Option<IpAddr>,
    /// coturn's configuration file (default: /etc/turnserver.conf)
    #[argh(option, default = "PathBuf::from(\"/etc/turnserver.conf\")")]
    turnserver_conf: PathBuf,
    /// where to write the secret for roost's --turn-secret-file, readable by the group
    /// roost (default: /etc/roost/turn-secret)
    #[argh(option, default = "PathBuf::from(\"/etc/roost/turn-secret\")")]
    secret_file: PathBuf,
    /// make a new secret even if the secret file has one (calls placed with the old
    /// credentials fail until their clients ask again)
    #[argh(switch)]
    new_secret: bool,
}

/// List the stored (persistent) group chat rooms with their members.
#[derive(FromArgs)]
#[argh(subcommand, name = "rooms", help_triggers("-h", "--help", "help"))]
struct Rooms {
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Make addresses members of a group chat room (and bookmark it for this server's
/// accounts); the server may be running.
#[derive(FromArgs)]
#[argh(subcommand, name = "room-add", help_triggers("-h", "--help", "help"))]
struct RoomAdd {
    /// the room, e.g. family or family@groups.example.org
    #[argh(positional)]
    room: String,
    /// the addresses to add, e.g. grandma@example.org
    #[argh(positional)]
    jids: Vec<String>,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Take addresses out of a group chat room's members (and their bookmarks); the server
/// may be running; occupants who are no longer members leave a members-only room.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "room-remove",
    help_triggers("-h", "--help", "help")
)]
struct RoomRemove {
    /// the room, e.g. family or family@groups.example.org
    #[argh(positional)]
    room: String,
    /// the addresses to remove
    #[argh(positional)]
    jids: Vec<String>,
    /// data directory of the server (default: ./roost-data; a packaged install:
    /// /var/lib/roost)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&["roost"], &strs) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}", early.output.trim_end());
                    match strs.iter().find(|a| SUBCOMMANDS.contains(a)) {
                        Some(sub) => eprintln!("Run `roost {sub} --help` for help."),
                        None => eprintln!("Run `roost --help` for help."),
                    }
                    ExitCode::from(2)
                }
            };
        }
    };
    if cli.version {
        println!("roost {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        eprintln!("roost: no command given. Run `roost --help` for the commands.");
        return ExitCode::from(2);
    };
    let result = match command {
        Command::Serve(s) => serve(s),
        Command::AddUser(a) => add_user(&a),
        Command::Passwd(p) => passwd(&p.jid, &p.data_dir, p.allow_weak_password),
        Command::DelUser(d) => del_user(&d.jid, &d.data_dir, d.yes),
        Command::Users(u) => users(&u.data_dir),
        Command::RenameDomain(r) => rename_domain(&r.old, &r.new, &r.data_dir, r.yes),
        Command::CertFingerprint(c) => cert_fingerprint(&c),
        Command::TurnSetup(t) => turn_setup(&t),
        Command::Rooms(r) => rooms(&r.data_dir),
        Command::RoomAdd(r) => room_members(&r.room, &r.jids, &r.data_dir, true),
        Command::RoomRemove(r) => room_members(&r.room, &r.jids, &r.data_dir, false),
        Command::Role(r) => cli::role::run(&r),
        Command::Circle(c) => cli::circle::run(&c),
        Command::Circles(c) => cli::circle::list(&c),
        Command::Check(c) => return cli::check::run(c),
        Command::Backup(b) => cli::backup::backup(&b),
        Command::Restore(r) => cli::backup::restore(&r),
        Command::Export(e) => cli::backup::export(&e),
        Command::Import(i) => cli::backup::import(&i),
        Command::Invite(i) => cli::invite::run_invite(&i),
        Command::Invites(i) => cli::invite::run_invites(&i),
        Command::Uninvite(u) => cli::invite::run_uninvite(&u),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("roost: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn serve(s: Serve) -> Result<(), String> {
    let level = s.log_level.parse::<log::LevelFilter>().map_err(|_| {
        format!(
            "--log-level {}: use error, warn, info, debug or trace",
            s.log_level
        )
    })?;
    // rustls logs peers' TLS mistakes (a client closing without close_notify, a bad
    // alert) as warnings with its internals and URLs: roost logs the disconnect itself, in
    // plain words. They appear from --log-level debug on.
    let ignore: &[&str] = if level < log::LevelFilter::Debug {
        &["rustls", "futures_rustls"]
    } else {
        &[]
    };
    roost::util::logger::init(level, ignore).map_err(|e| format!("logging: {e}"))?;
    let config = serve_config(s)?;
    roost::run(config).map_err(|e| e.to_string())
}

/// The server's settings from `serve`'s flags (also read by `roost check`).
fn serve_config(s: Serve) -> Result<Config, String> {
    if s.cert.is_some() != s.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    if s.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    if s.max_stanza_size < 4096 {
        return Err("--max-stanza-size must be at least 4096 bytes".into());
    }
    for (flag, uris) in [
        ("--contact-admin", &s.contact_admin),
        ("--contact-abuse", &s.contact_abuse),
    ] {
        if let Some(bad) = uris
            .iter()
            .find(|u| !roost::modules::contact::valid_address(u))
        {
            return Err(format!(
                "{flag} {bad}: give a URI with its scheme, e.g. mailto:mom@example.org or \
                 xmpp:mom@example.org"
            ));
        }
    }
    let turn = turn_config(
        s.turn_host,
        s.turn_port,
        s.turns_port,
        s.turn_secret_file,
        s.turn_ttl,
    )?;
    if s.fast_token_days > 3650 {
        return Err("--fast-token-days: at most 3650".into());
    }
    let mut config = Config {
        turn,
        fast_token_ttl: Duration::from_secs(u64::from(s.fast_token_days) * 86_400),
        domain: s.domain,
        data_dir: s.data_dir,
        c2s_port: s.c2s_port,
        c2s_tls_port: s.c2s_tls_port,
        cert: s.cert,
        key: s.key,
        insecure_allow_plaintext: s.insecure_allow_plaintext,
        auth_timeout: Duration::from_secs(s.auth_timeout),
        ping_interval: Duration::from_secs(s.ping_interval.max(1)),
        ping_timeout: Duration::from_secs(s.ping_timeout.max(1)),
        resume_timeout: Duration::from_secs(s.resume_timeout),
        roster_limit: s.roster_limit,
        contact_admin: s.contact_admin,
        contact_abuse: s.contact_abuse,
        offline_limit: s.offline_limit,
        archive_expires_days: s.archive_expires_days,
        max_connections: s.max_connections,
        max_unauth_per_ip: s.max_unauth_per_ip,
        open_registration: s.open_registration,
        ..Config::default()
    };
    config.limits.max_stanza = s.max_stanza_size;
    config.s2s = if s.no_s2s {
        None
    } else {
        Some(roost::config::S2sConfig {
            port: s.s2s_port,
            tls_port: s.s2s_tls_port,
            trust: s.s2s_trust,
            secure_auth: s.s2s_secure_auth,
            idle_timeout: Duration::from_secs(s.s2s_idle_timeout.max(1)),
            stanza_rate: s.s2s_stanza_rate.max(1),
            connects_per_minute: s.s2s_connects_per_minute.max(1),
            bidi: !s.no_s2s_bidi,
            ..roost::config::S2sConfig::default()
        })
    };
    if let Some(url) = &s.http_external_url {
        check_external_url(url)?;
    }
    config.http.enabled = !s.no_http;
    config.http.https_port = s.https_port;
    config.http.http_port = s.http_port;
    config.http.external_url = s.http_external_url;
    config.http.websocket = !s.no_websocket;
    config.upload.enabled = !s.no_upload && !s.no_http;
    config.upload.max_size = parse_size("--upload-max-size", &s.upload_max_size)?;
    config.upload.quota = parse_size("--upload-quota", &s.upload_quota)?;
    config.upload.daily_quota = parse_size("--upload-daily-quota", &s.upload_daily_quota)?;
    config.upload.disk_cap = parse_size("--upload-disk-cap", &s.upload_disk_cap)?;
    config.upload.expires_days = s.upload_expires_days;
    config.push = (!s.no_push).then(|| roost::config::PushConfig {
        include_body: s.push_include_body,
        hibernation: Duration::from_secs(s.push_hibernation.saturating_mul(3600)),
    });
    config.muc = if s.no_muc {
        None
    } else {
        let domain = s
            .muc_domain
            .map(|d| roost::jid::nameprep(&d).map_err(|e| format!("--muc-domain {d}: {e}")))
            .transpose()?;
        let family_room = if s.no_family_room {
            None
        } else {
            Some(
                roost::jid::nodeprep(&s.family_room)
                    .map_err(|e| format!("--family-room {}: {e}", s.family_room))?,
            )
        };
        if s.muc_max_occupants == 0 {
            return Err("--muc-max-occupants must be at least 1".into());
        }
        Some(roost::config::MucConfig {
            domain,
            family_room,
            max_occupants: s.muc_max_occupants,
            rooms_per_account: s.muc_rooms_per_account,
            history: s.muc_history,
            ..roost::config::MucConfig::default()
        })
    };
    if !s.bind.is_empty() {
        config.bind = s.bind;
    }
    if let Some(t) = s.threads {
        config.threads = t;
    }
    Ok(config)
}

/// The TURN settings from the `--turn-*` flags: none without --turn-host; the secret read
/// from its file (trailing newline dropped).
fn turn_config(
    host: Option<String>,
    port: u16,
    tls_port: Option<u16>,
    secret_file: Option<PathBuf>,
    ttl: u64,
) -> Result<Option<roost::config::TurnConfig>, String> {
    let Some(host) = host else {
        if secret_file.is_some() || tls_port.is_some() {
            return Err("--turn-secret-file and --turns-port need --turn-host".into());
        }
        return Ok(None);
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['/', '@']) {
        return Err(format!("--turn-host {host}: give a host name or address"));
    }
    let Some(path) = secret_file else {
        return Err(
            "--turn-host needs --turn-secret-file, the file with coturn's \
             static-auth-secret (see `roost turn-setup --help`)"
                .into(),
        );
    };
    if port == 0 || tls_port == Some(0) {
        return Err("--turn-port and --turns-port must not be 0".into());
    }
    if ttl == 0 {
        return Err("--turn-ttl must be at least 1 second".into());
    }
    let secret = roost::modules::extdisco::read_secret(&path)
        .map_err(|e| format!("--turn-secret-file {e}"))?;
    Ok(Some(roost::config::TurnConfig {
        host,
        port,
        tls_port,
        secret,
        secret_file: Some(path),
        ttl: Duration::from_secs(ttl),
    }))
}

/// What to say when a data directory is not the server's: how to find the right one.
fn data_dir_hint(data_dir: &Path) -> String {
    format!(
        "start the server once to create it (roost serve --data-dir {}), or {}",
        data_dir.display(),
        give_data_dir()
    )
}

/// Where the right data directory is.
fn give_data_dir() -> String {
    format!(
        "give the server's data directory with --data-dir (on a packaged install: \
         --data-dir {PACKAGED_DATA_DIR})"
    )
}

/// What to say when the data directory belongs to another user (the packaged server's).
fn permission_hint(path: &Path) -> String {
    format!(
        "{}: permission denied; run the command as the user that runs the server (on a \
         packaged install: sudo -u roost roost … --data-dir {PACKAGED_DATA_DIR})",
        path.display()
    )
}

/// Opens the database of an existing data directory: the account commands never create
/// one (a mistyped --data-dir would get accounts the server never sees).
fn open_existing(data_dir: &Path) -> Result<rusqlite::Connection, String> {
    use std::io::ErrorKind;
    let shown = data_dir.display();
    match std::fs::metadata(data_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "{shown} is a file, not a data directory: {}",
                give_data_dir()
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "the data directory {shown} does not exist: {}",
                data_dir_hint(data_dir)
            ))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(permission_hint(data_dir)),
        Err(e) => return Err(format!("the data directory {shown}: {e}")),
    }
    let db = storage::db_path(data_dir);
    match std::fs::OpenOptions::new().read(true).write(true).open(&db) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{shown} holds no roost database ({}): {}",
                storage::DB_FILE,
                data_dir_hint(data_dir)
            ))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(permission_hint(&db)),
        Err(e) => return Err(format!("{}: {e}", db.display())),
    }
    storage::open_connection(data_dir).map_err(|e| format!("{}: {e}", db.display()))
}

/// Parses an account address and checks its domain against the one this data directory
/// serves (one database never holds two domains). Returns (connection, domain, username).
fn account(jid: &str, data_dir: &Path) -> Result<(rusqlite::Connection, String, String), String> {
    let bare = BareJid::parse(jid).map_err(|e| format!("{jid}: {e}"))?;
    let username = bare
        .node()
        .ok_or_else(|| format!("{jid}: an account address needs a name before the @"))?
        .to_owned();
    let domain = bare.domain().to_owned();
    let conn = open_existing(data_dir)?;
    let served = accounts::served_domain(&conn).map_err(|e| e.to_string())?;
    let other = match served {
        Some(served) => (served != domain).then_some(served),
        // Not served yet: the accounts decide.
        None => accounts::list(&conn)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(host, _)| host)
            .find(|host| *host != domain),
    };
    match other {
        Some(served) => Err(format!(
            "{jid}: domain {domain} is not served here ({} serves {served}; one data \
             directory serves one domain: see `roost rename-domain --help`)",
            data_dir.display()
        )),
        None => Ok((conn, domain, username)),
    }
}

/// Reads a password: a prompt without echo on a terminal, one line when piped. Refuses one
/// shorter than [`MIN_PASSWORD_CHARS`] unless `allow_weak`.
fn read_password(prompt: &str, allow_weak: bool) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).map_err(|e| format!("reading password: {e}"))?;
        let again = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| format!("reading password: {e}"))?;
        if p != again {
            return Err("the passwords differ; nothing was changed".into());
        }
        p
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading password: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err("the password is empty; nothing was changed".into());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS && !allow_weak {
        return Err(format!(
            "the password is shorter than {MIN_PASSWORD_CHARS} characters; nothing was \
             changed. Choose a longer one (or give --allow-weak-password)"
        ));
    }
    Ok(password)
}

/// Asks "question [y/N]" on a terminal; true without asking when stdin is not one (a
/// script) or `yes`.
fn confirm(question: &str, yes: bool) -> Result<(), String> {
    if yes || !std::io::stdin().is_terminal() {
        return Ok(());
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the answer: {e}"))?;
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err("not confirmed; nothing was changed".into()),
    }
}

fn add_user(a: &AddUser) -> Result<(), String> {
    let role = match (&a.role, a.admin) {
        (Some(r), false) => r.parse::<accounts::Role>()?,
        (Some(r), true) if r.parse::<accounts::Role>()? == accounts::Role::Admin => {
            accounts::Role::Admin
        }
        (Some(_), true) => return Err("--admin and --role say different things".into()),
        (None, true) => accounts::Role::Admin,
        (None, false) => accounts::Role::Normal,
    };
    let (conn, domain, username) = account(&a.jid, &a.data_dir)?;
    if accounts::exists(&conn, &domain, &username).map_err(|e| e.to_string())? {
        return Err(format!("{username}@{domain} already exists"));
    }
    if let Some(c) = &a.circle {
        if roost::circles::get(&conn, &domain, c)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!(
                "no circle {c} (see `roost circles`); nothing was changed"
            ));
        }
    }
    let password = read_password(
        &format!("Password for {username}@{domain}: "),
        a.allow_weak_password,
    )?;
    let creds = StoredCredentials::derive(&password, roost::Config::default().scram_iterations);
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    if accounts::served_domain(&tx)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        accounts::set_served_domain(&tx, &domain).map_err(|e| e.to_string())?;
    }
    match accounts::create(&tx, &domain, &username, &creds) {
        Ok(()) => {
            // Its role, the default circle (the family room) and the one named.
            let mut notices = roost::circles::Notices::new(&domain);
            roost::circles::account_added(
                &tx,
                &domain,
                &username,
                role,
                a.circle.as_deref(),
                &mut notices,
            )
            .map_err(|e| e.to_string())?;
            notices.write_kicks(&tx).map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())?;
            match role {
                accounts::Role::Normal => println!("added {username}@{domain}"),
                r => println!("added {username}@{domain}, {}", cli::role::describe(r)),
            }
            Ok(())
        }
        Err(AccountError::Exists) => Err(format!("{username}@{domain} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

fn passwd(jid: &str, data_dir: &Path, allow_weak: bool) -> Result<(), String> {
    let (conn, domain, username) = account(jid, data_dir)?;
    if !accounts::exists(&conn, &domain, &username).map_err(|e| e.to_string())? {
        return Err(format!("{username}@{domain}: no such account"));
    }
    let password = read_password(
        &format!("New password for {username}@{domain}: "),
        allow_weak,
    )?;
    let creds = StoredCredentials::derive(&password, roost::Config::default().scram_iterations);
    // The new password and the request to log out its sessions, together.
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    match accounts::set_credentials(&tx, &domain, &username, &creds) {
        Ok(()) => {}
        Err(AccountError::NotFound) => return Err(format!("{username}@{domain}: no such account")),
        Err(e) => return Err(e.to_string()),
    }
    storage::kicks::request(&tx, &domain, &username, storage::kicks::Reason::Password)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    println!(
        "changed the password of {username}@{domain}; a running server logs its connected \
         clients out within a second"
    );
    Ok(())
}

fn del_user(jid: &str, data_dir: &Path, yes: bool) -> Result<(), String> {
    let (mut conn, domain, username) = account(jid, data_dir)?;
    if !accounts::exists(&conn, &domain, &username).map_err(|e| e.to_string())? {
        return Err(format!("{username}@{domain}: no such account"));
    }
    confirm(
        &format!(
            "Remove {username}@{domain} with its messages, contacts and everything stored \
             for it?"
        ),
        yes,
    )?;
    // The uploaded files' names, read before their rows go with the account.
    let uploads = storage::uploads::ids_of(&conn, &domain, &username).map_err(|e| e.to_string())?;
    match accounts::delete(&mut conn, &domain, &username) {
        Ok(()) => {
            roost::upload::remove_files(data_dir, &uploads);
            println!(
                "removed {username}@{domain} and everything stored for it; a running server \
                 logs its connected clients out within a second"
            );
            Ok(())
        }
        Err(AccountError::NotFound) => Err(format!("{username}@{domain}: no such account")),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a listing line to stdout; false once stdout is gone (`roost rooms | head`), which
/// ends a listing quietly instead of with a panic.
fn line(text: std::fmt::Arguments<'_>) -> bool {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}").is_ok()
}

fn users(data_dir: &Path) -> Result<(), String> {
    let conn = open_existing(data_dir)?;
    for (host, user) in accounts::list(&conn).map_err(|e| e.to_string())? {
        let role = accounts::role(&conn, &host, &user)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        // Normal accounts alone on their line, as before roles: scripts read it.
        let shown = match role {
            accounts::Role::Normal => String::new(),
            r => format!("  {r}"),
        };
        if !line(format_args!("{user}@{host}{shown}")) {
            break;
        }
    }
    Ok(())
}

/// The group chat service's domain of a data directory: the one the server last ran
/// with, or `groups.<domain>`.
fn muc_domain(conn: &rusqlite::Connection) -> Result<String, String> {
    use roost::muc::family::META_MUC_DOMAIN;
    if let Some(d) = storage::muc::meta(conn, META_MUC_DOMAIN).map_err(|e| e.to_string())? {
        return Ok(d);
    }
    match accounts::served_domain(conn).map_err(|e| e.to_string())? {
        Some(d) => Ok(format!("groups.{d}")),
        None => Err("this data directory has no accounts and no rooms yet".into()),
    }
}

fn rooms(data_dir: &Path) -> Result<(), String> {
    let conn = open_existing(data_dir)?;
    let host = muc_domain(&conn)?;
    let rooms = storage::muc::rooms(&conn, &host).map_err(|e| e.to_string())?;
    if rooms.is_empty() {
        line(format_args!(
            "no stored rooms on {host} (temporary rooms are not listed)"
        ));
    }
    for r in rooms {
        let config = roost::muc::room::RoomConfig::from_stored(&r.config, usize::MAX);
        let affs = storage::muc::affiliations(&conn, &host, &r.name).map_err(|e| e.to_string())?;
        let mut flags = vec![if config.members_only {
            "members-only"
        } else {
            "open"
        }];
        flags.push(if config.public { "public" } else { "hidden" });
        if config.password.is_some() {
            flags.push("password");
        }
        let name = if config.name.is_empty() {
            &r.name
        } else {
            &config.name
        };
        if !line(format_args!(
            "{}@{host}  \"{name}\"  ({})",
            r.name,
            flags.join(", ")
        )) {
            break;
        }
        for a in affs.iter().filter(|a| a.affiliation != "none") {
            line(format_args!("    {} {}", a.affiliation, a.jid));
        }
    }
    Ok(())
}

fn room_members(room: &str, jids: &[String], data_dir: &Path, add: bool) -> Result<(), String> {
    use roost::muc::family;
    if jids.is_empty() {
        return Err(format!(
            "give the addresses to {}, e.g. `roost room-{} {room} grandma@example.org`",
            if add { "add" } else { "remove" },
            if add { "add" } else { "remove" }
        ));
    }
    let conn = open_existing(data_dir)?;
    let host = muc_domain(&conn)?;
    let name = match room.split_once('@') {
        Some((n, h)) if roost::jid::nameprep(h).ok().as_deref() == Some(host.as_str()) => n,
        Some((_, h)) => {
            return Err(format!(
                "{h} is not this server's group chat service ({host})"
            ))
        }
        None => room,
    };
    let name = roost::jid::nodeprep(name).map_err(|e| format!("{room}: {e}"))?;
    if !storage::muc::exists(&conn, &host, &name).map_err(|e| e.to_string())? {
        let known: Vec<String> = storage::muc::rooms(&conn, &host)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| r.name)
            .collect();
        return Err(format!(
            "no room {name}@{host}; the stored rooms are: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut parsed = Vec::new();
    for j in jids {
        let b = BareJid::parse(j).map_err(|e| format!("{j}: {e}"))?;
        if b.node().is_none() {
            return Err(format!(
                "{j}: give a user's address, e.g. grandma@example.org"
            ));
        }
        parsed.push(b);
    }
    let served = accounts::served_domain(&conn).map_err(|e| e.to_string())?;
    let room_jid = format!("{name}@{host}");
    let config = storage::muc::rooms(&conn, &host)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| roost::muc::room::RoomConfig::from_stored(&r.config, usize::MAX))
        .unwrap_or_else(|| roost::muc::room::RoomConfig::new(usize::MAX));
    let title = if config.name.is_empty() {
        name.clone()
    } else {
        config.name.clone()
    };
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    for b in &parsed {
        let local = served.as_deref() == Some(b.domain())
            && accounts::exists(&tx, b.domain(), b.node().unwrap_or_default())
                .map_err(|e| e.to_string())?;
        let user = b.node().unwrap_or_default();
        if add {
            family::add_member(&tx, &host, &name, b.as_str()).map_err(|e| e.to_string())?;
            if local {
                family::bookmark(&tx, b.domain(), user, &room_jid, &title, true)
                    .map_err(|e| e.to_string())?;
            }
        } else {
            storage::muc::set_affiliation(
                &tx,
                &host,
                &name,
                &storage::muc::StoredAffiliation {
                    jid: b.to_string(),
                    affiliation: "none".into(),
                    nick: None,
                    reason: String::new(),
                },
            )
            .map_err(|e| e.to_string())?;
            if local {
                family::unbookmark(&tx, b.domain(), user, &room_jid).map_err(|e| e.to_string())?;
            }
        }
    }
    storage::kicks::request(&tx, &host, &name, storage::kicks::Reason::Room)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    let list: Vec<String> = parsed.iter().map(|b| b.to_string()).collect();
    println!(
        "{} {room_jid}: {}; a running server applies it within a second",
        if add { "added to" } else { "removed from" },
        list.join(", ")
    );
    Ok(())
}

fn rename_domain(old: &str, new: &str, data_dir: &Path, yes: bool) -> Result<(), String> {
    let normalize = |d: &str| -> Result<String, String> {
        let n = roost::jid::nameprep(d).map_err(|e| format!("{d}: {e}"))?;
        BareJid::new(None, &n).map_err(|e| format!("{d}: {e}"))?;
        Ok(n)
    };
    let (old, new) = (normalize(old)?, normalize(new)?);
    let mut conn = open_existing(data_dir)?;
    if let Some(pid) = accounts::running_server(&conn).map_err(|e| e.to_string())? {
        return Err(format!(
            "a roost server (process {pid}) is running on {}: stop it first (on a packaged \
             install: sudo systemctl stop roost); nothing was changed",
            data_dir.display()
        ));
    }
    confirm(
        &format!(
            "Move every account of {old} in {} to {new}? Stop the server first.",
            data_dir.display()
        ),
        yes,
    )?;
    let r = storage::rename::rename_domain(&mut conn, &old, &new).map_err(|e| e.to_string())?;
    println!(
        "moved {} account(s) and everything stored for them from {old} to {new}.\n\
         Start the server with --domain {new} (on a packaged install: ROOST_ARGS in \
         /etc/default/roost). Without --cert it makes a self-signed certificate for {new}, \
         which clients will ask to trust.",
        r.accounts
    );
    Ok(())
}

fn cert_fingerprint(c: &CertFingerprint) -> Result<(), String> {
    let path = match &c.cert {
        Some(p) => p.clone(),
        None => {
            let domain = match &c.domain {
                Some(d) => roost::jid::nameprep(d).map_err(|e| format!("--domain {d}: {e}"))?,
                None => accounts::served_domain(&open_existing(&c.data_dir)?)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "{} serves no domain yet: give --domain",
                            c.data_dir.display()
                        )
                    })?,
            };
            let p = roost::net::tls::self_signed_paths(&c.data_dir, &domain).0;
            if !p.exists() {
                return Err(format!(
                    "{}: no such certificate; the server makes it at its first start without \
                     --cert (or give the certificate file with --cert)",
                    p.display()
                ));
            }
            p
        }
    };
    let f = roost::net::tls::fingerprints(&path).map_err(|e| e.to_string())?;
    println!("{}", path.display());
    println!("SHA-256: {}", f.sha256);
    println!("SHA-1:   {}", f.sha1);
    Ok(())
}

fn turn_setup(t: &TurnSetup) -> Result<(), String> {
    use roost::turn_setup::{edit_conf, new_secret, read_secret, Setup, MAX_PORT, MIN_PORT};
    use std::io::ErrorKind;
    use std::os::unix::fs::PermissionsExt;
    let domain =
        roost::jid::nameprep(&t.domain).map_err(|e| format!("--domain {}: {e}", t.domain))?;
    BareJid::new(None, &domain).map_err(|e| format!("--domain {}: {e}", t.domain))?;
    let host = t.turn_host.clone().unwrap_or_else(|| domain.clone());
    if t.turn_port == 0 {
        return Err("--turn-port must not be 0".into());
    }
    let conf_path = &t.turnserver_conf;
    let existing = match std::fs::read_to_string(conf_path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{}: no such file; install coturn first (sudo apt install coturn) or give \
                 its configuration file with --turnserver-conf",
                conf_path.display()
            ))
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(format!(
                "{}: permission denied; run it as root (sudo roost turn-setup …)",
                conf_path.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", conf_path.display())),
    };
    let kept = match std::fs::read_to_string(&t.secret_file) {
        Ok(text) if !t.new_secret => read_secret(&text).map(str::to_owned),
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", t.secret_file.display())),
    };
    let reused = kept.is_some();
    let secret = kept.unwrap_or_else(new_secret);
    // The secret first: a config naming a secret roost does not have would refuse calls.
    if let Some(dir) = t.secret_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let write_secret = || -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&t.secret_file)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        std::io::Write::write_all(&mut &f, format!("{secret}\n").as_bytes())?;
        f.sync_all()
    };
    write_secret().map_err(|e| format!("{}: {e}", t.secret_file.display()))?;
    // Readable by the server's group when it exists (the package's user roost).
    let group_note = match group_id("roost") {
        Some(gid) => match std::os::unix::fs::chown(&t.secret_file, None, Some(gid)) {
            Ok(()) => String::new(),
            Err(e) => format!(" (could not give it to the group roost: {e})"),
        },
        None => {
            " (there is no group roost here: make it readable by the user that runs roost)".into()
        }
    };
    let text = edit_conf(
        &existing,
        &Setup {
            realm: &domain,
            secret: &secret,
            port: t.turn_port,
            external_ip: t.external_ip,
        },
    );
    // In place: the file keeps its owner and mode (root:turnserver 0640 on Debian).
    std::fs::write(conf_path, text).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    println!(
        "{} the shared secret in {}{group_note}\nwrote coturn's settings to {} (realm {domain})\n\n\
         Next:\n\
         1. Restart coturn: sudo systemctl restart coturn\n\
         2. Give roost these flags (ROOST_ARGS in /etc/default/roost), then restart it:\n   \
         --turn-host {host} --turn-port {} --turn-secret-file {}\n\
         3. On the router, forward to this machine: UDP and TCP port {}, and UDP ports \
         {MIN_PORT}-{MAX_PORT}.{}",
        if reused { "kept" } else { "wrote" },
        t.secret_file.display(),
        conf_path.display(),
        t.turn_port,
        t.secret_file.display(),
        t.turn_port,
        if t.external_ip.is_none() {
            "\n   Behind a router, also give --external-ip with its public address."
        } else {
            ""
        }
    );
    Ok(())
}

/// The id of group `name` from /etc/group.
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
        })
}
