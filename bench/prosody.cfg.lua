-- Prosody (Debian 12's 0.12) for bench/side-by-side.sh: the same job as roost's bench
-- instance, with the features roost has and nothing that would slow it down unfairly.
--
-- Started by the script as the prosody user:
--   setpriv --reuid=prosody --regid=prosody --init-groups prosody --config FILE -F
-- Paths and ports come from the environment (Prosody 0.12 reads ENV_X as $X):
--   BENCH_PROSODY_DIR       a temporary directory owned by prosody: data/, log, pid file,
--                           cert.pem and key.pem (a copy of roost's self-signed pair)
--   BENCH_PROSODY_PORT      plaintext and STARTTLS client port
--   BENCH_PROSODY_TLS_PORT  direct TLS client port (XEP-0368)
--   BENCH_DOMAIN            the served domain
--   BENCH_PROSODY_HTTPS_PORT  HTTPS port of mod_http_file_share (the upload case)
--   BENCH_UPLOAD_MIB        its largest file, in MiB

local dir = assert(ENV_BENCH_PROSODY_DIR, "BENCH_PROSODY_DIR is not set")

data_path = dir .. "/data"
certificates = dir
pidfile = dir .. "/prosody.pid"
log = { warn = dir .. "/prosody.log" }

-- Loopback only, on the script's ports; no server-to-server; HTTPS only for file upload
-- (the upload case), no plain HTTP.
interfaces = { "127.0.0.1" }
https_interfaces = { "127.0.0.1" }
https_ports = { tonumber(ENV_BENCH_PROSODY_HTTPS_PORT or "35281") }
http_ports = {}
c2s_ports = { tonumber(ENV_BENCH_PROSODY_PORT) }
c2s_direct_tls_ports = { tonumber(ENV_BENCH_PROSODY_TLS_PORT) }
modules_disabled = { "s2s" }

-- TCP_NODELAY, as roost sets it. With Nagle on (Prosody's default), a stanza written while
-- an earlier one is unacknowledged waits for the peer's delayed ACK (40 ms on Linux):
-- pipelined messages would measure TCP, not Prosody. The script turns Nagle back on with
-- BENCH_PROSODY_NAGLE=1.
network_settings = { nagle = (ENV_BENCH_PROSODY_NAGLE == "1") }

-- The features roost has (roster, presence, messages, offline storage, disco, blocking,
-- private storage, vCard, ping, time, version, last activity). presence, message, iq,
-- offline, c2s and posix are loaded by Prosody itself. admin_shell (a Unix socket in the
-- data directory) lets the script create thousands of accounts in one go.
--
-- Also what roost does for phones and that costs per message: message carbons, stream
-- management, client state indication, PEP with bookmarks, and the message archive (MAM,
-- every message archived as roost does by default; Prosody keeps it in its internal file
-- store, roost in SQLite).
--
-- Left out on purpose: limits (Debian's config rate-limits every client to 10 kB/s, which
-- would make Prosody look slow for the wrong reason: THE RATE LIMIT IS OFF HERE), and what
-- roost does not do (register, invites, s2s, HTTP).
modules_enabled = {
	"roster";
	"saslauth";
	"tls";
	"disco";
	"blocklist";
	"private";
	"vcard";
	"ping";
	"time";
	"uptime";
	"version";
	"lastactivity";
	"admin_shell";
	"carbons";
	"smacks";
	"csi_simple";
	"pep";
	"bookmarks";
	"mam";
}

-- XEP-0313 as roost: archive every chat message unless the account's preferences say no.
default_archive_policy = true

-- Matches roost's --insecure-allow-plaintext for the plaintext runs: login without TLS,
-- PLAIN included. TLS runs use STARTTLS (or direct TLS) on the same server.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

-- Salted SCRAM-SHA-1 keys in Prosody's own files; 4096 PBKDF2 iterations like roost's
-- accounts (Prosody's default is 10000), so that a PLAIN login hashes the same amount.
authentication = "internal_hashed"
default_iteration_count = 4096
storage = "internal"

ssl = {
	certificate = dir .. "/cert.pem";
	key = dir .. "/key.pem";
}
https_ssl = ssl

-- XEP-0363 as roost serves it (the upload case): Prosody 0.12's own mod_http_file_share,
-- its limits above the files the benchmark sends (roost's are raised the same way).
local upload_mib = tonumber(ENV_BENCH_UPLOAD_MIB or "51")
http_file_share_size_limit = upload_mib * 1024 * 1024
http_file_share_daily_quota = 1000 * 1024 * 1024 * 1024
http_file_share_global_quota = 1000 * 1024 * 1024 * 1024

VirtualHost (ENV_BENCH_DOMAIN or "localhost")

Component ("upload." .. (ENV_BENCH_DOMAIN or "localhost")) "http_file_share"
