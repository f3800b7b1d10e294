//! The `roost` command line: `serve`, and account management on the same data directory.
#![forbid(unsafe_code)]

use argh::FromArgs;
use roost::config::Config;
use roost::jid::BareJid;
use roost::sasl::StoredCredentials;
use roost::storage::{self, accounts, accounts::AccountError};
use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// roost: a small XMPP server for a family.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Serve(Serve),
    AddUser(AddUser),
    Passwd(Passwd),
    DelUser(DelUser),
    Users(Users),
}

/// Run the server (defaults: domain localhost, data in ./roost-data, ports 5222 and 5223).
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
struct Serve {
    /// the domain served, the part after @ in addresses (default: localhost)
    #[argh(option, default = "String::from(\"localhost\")")]
    domain: String,
    /// directory holding roost.db and the generated certificate (default: ./roost-data)
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
}

/// Add a family member's account; the password is read from stdin.
#[derive(FromArgs)]
#[argh(subcommand, name = "adduser")]
struct AddUser {
    /// the new address, e.g. mom@example.org
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Change an account's password; the new password is read from stdin.
#[derive(FromArgs)]
#[argh(subcommand, name = "passwd")]
struct Passwd {
    /// the account's address
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// Remove an account and everything stored for it.
#[derive(FromArgs)]
#[argh(subcommand, name = "deluser")]
struct DelUser {
    /// the account's address
    #[argh(positional)]
    jid: String,
    /// data directory of the server (default: ./roost-data)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

/// List the accounts.
#[derive(FromArgs)]
#[argh(subcommand, name = "users")]
struct Users {
    /// data directory of the server (default: ./roost-data)
    #[argh(option, default = "PathBuf::from(\"./roost-data\")")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    let result = match cli.command {
        Command::Serve(s) => serve(s),
        Command::AddUser(a) => add_user(&a.jid, &a.data_dir),
        Command::Passwd(p) => passwd(&p.jid, &p.data_dir),
        Command::DelUser(d) => del_user(&d.jid, &d.data_dir),
        Command::Users(u) => users(&u.data_dir),
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
    simplelog::TermLogger::init(
        level,
        simplelog::ConfigBuilder::new()
            .set_target_level(log::LevelFilter::Off)
            .set_thread_level(log::LevelFilter::Off)
            .build(),
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    )
    .map_err(|e| format!("logging: {e}"))?;
    if s.cert.is_some() != s.key.is_some() {
        return Err("--cert and --key go together".into());
    }
    if s.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    if s.max_stanza_size < 4096 {
        return Err("--max-stanza-size must be at least 4096 bytes".into());
    }
    let mut config = Config {
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
        offline_limit: s.offline_limit,
        archive_expires_days: s.archive_expires_days,
        max_connections: s.max_connections,
        max_unauth_per_ip: s.max_unauth_per_ip,
        ..Config::default()
    };
    config.limits.max_stanza = s.max_stanza_size;
    if !s.bind.is_empty() {
        config.bind = s.bind;
    }
    if let Some(t) = s.threads {
        config.threads = t;
    }
    roost::run(config).map_err(|e| e.to_string())
}

/// Parses an account address and checks its domain against the one this data directory
/// serves. Returns (domain, username).
fn account(
    jid: &str,
    data_dir: &std::path::Path,
) -> Result<(rusqlite::Connection, String, String), String> {
    let bare = BareJid::parse(jid).map_err(|e| format!("{jid}: {e}"))?;
    let username = bare
        .node()
        .ok_or_else(|| format!("{jid}: an account address needs a name before the @"))?
        .to_owned();
    let domain = bare.domain().to_owned();
    let conn = storage::open_connection(data_dir).map_err(|e| e.to_string())?;
    match accounts::served_domain(&conn).map_err(|e| e.to_string())? {
        Some(served) if served != domain => Err(format!(
            "{jid}: domain {domain} is not served here ({} serves {served})",
            data_dir.display()
        )),
        _ => Ok((conn, domain, username)),
    }
}

/// Reads a password: a prompt without echo on a terminal, one line when piped.
fn read_password(prompt: &str) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(prompt).map_err(|e| format!("reading password: {e}"))?;
        let again = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| format!("reading password: {e}"))?;
        if p != again {
            return Err("the passwords differ".into());
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
        return Err("the password is empty".into());
    }
    Ok(password)
}

fn add_user(jid: &str, data_dir: &std::path::Path) -> Result<(), String> {
    let (conn, domain, username) = account(jid, data_dir)?;
    if accounts::exists(&conn, &domain, &username).map_err(|e| e.to_string())? {
        return Err(format!("{username}@{domain} already exists"));
    }
    let password = read_password(&format!("Password for {username}@{domain}: "))?;
    let creds = StoredCredentials::derive(&password, roost::Config::default().scram_iterations);
    match accounts::create(&conn, &domain, &username, &creds) {
        Ok(()) => {
            println!("added {username}@{domain}");
            Ok(())
        }
        Err(AccountError::Exists) => Err(format!("{username}@{domain} already exists")),
        Err(e) => Err(e.to_string()),
    }
}

fn passwd(jid: &str, data_dir: &std::path::Path) -> Result<(), String> {
    let (conn, domain, username) = account(jid, data_dir)?;
    if !accounts::exists(&conn, &domain, &username).map_err(|e| e.to_string())? {
        return Err(format!("{username}@{domain}: no such account"));
    }
    let password = read_password(&format!("New password for {username}@{domain}: "))?;
    let creds = StoredCredentials::derive(&password, roost::Config::default().scram_iterations);
    match accounts::set_credentials(&conn, &domain, &username, &creds) {
        Ok(()) => {
            println!("changed the password of {username}@{domain}");
            Ok(())
        }
        Err(AccountError::NotFound) => Err(format!("{username}@{domain}: no such account")),
        Err(e) => Err(e.to_string()),
    }
}

fn del_user(jid: &str, data_dir: &std::path::Path) -> Result<(), String> {
    let (mut conn, domain, username) = account(jid, data_dir)?;
    match accounts::delete(&mut conn, &domain, &username) {
        Ok(()) => {
            println!("removed {username}@{domain} and everything stored for it");
            Ok(())
        }
        Err(AccountError::NotFound) => Err(format!("{username}@{domain}: no such account")),
        Err(e) => Err(e.to_string()),
    }
}

fn users(data_dir: &std::path::Path) -> Result<(), String> {
    let conn = storage::open_connection(data_dir).map_err(|e| e.to_string())?;
    for (host, user) in accounts::list(&conn).map_err(|e| e.to_string())? {
        println!("{user}@{host}");
    }
    Ok(())
}
