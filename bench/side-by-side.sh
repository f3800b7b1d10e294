#!/usr/bin/env bash
# roost and Prosody side by side under the same load (issue 6, "Footprint and speed").
#
#   bench/side-by-side.sh           both servers, ROUNDS rounds alternating (as root: Prosody
#                                   runs as the prosody user); about 9 minutes at the
#                                   default sizes on 2 cores, plus the builds
#   bench/side-by-side.sh --smoke   roost only, tiny sizes, a few seconds after the build (CI)
#
# What it does, all on 127.0.0.1:
#  1. builds roost (release) and the load generator (benches/load.rs, `cargo bench`);
#  2. installs Prosody from Debian's packages if it is missing (never uses the packaged
#     service: our instance has its own config, ports and data);
#  3. makes a temporary directory with roost's data directory and Prosody's (data, log, pid
#     file, and a copy of roost's self-signed certificate and key, so that both servers do
#     TLS with the same key); creates the same accounts on both (bench1 … benchN, password
#     "pw"): roost with the load generator's `roost-accounts` mode (the library's
#     accounts::create in one process, as `roost adduser` does one at a time: thousands of
#     `roost adduser` runs would take minutes), Prosody with one `prosodyctl shell` command
#     calling usermanager.create_user in a loop (as `prosodyctl register` does one process
#     per account);
#  4. runs each case against each server, a fresh server process per case, ROUNDS times,
#     alternating which server goes first;
#  5. prints a table of both servers' medians and the ratio roost/Prosody, and keeps the
#     raw results in target/bench-results/<time>/.
#
# The servers as run here:
#  roost    target/release/roost serve --insecure-allow-plaintext [--threads $ROOST_THREADS]
#           --log-level warn --max-connections 20000 --max-unauth-per-ip 1000
#           --muc-rooms-per-account MUC_ROOMS (one session creates the muc_idle rooms)
#  Prosody  Debian's package with bench/prosody.cfg.lua, as the prosody user via setpriv:
#           roost's feature set of modules; mod_limits OFF (Debian's own config rate-limits
#           clients to 10 kB/s); c2s_require_encryption = false and
#           allow_unencrypted_plain_auth = true (like roost's --insecure-allow-plaintext);
#           internal_hashed with 4096 PBKDF2 iterations (roost's count); TCP_NODELAY like
#           roost (BENCH_PROSODY_NAGLE=1 keeps Prosody's default, Nagle on).
#
# The cases (plaintext cases log in with PLAIN, TLS cases with STARTTLS and SCRAM-SHA-1,
# login-rate with SCRAM-SHA-1 without TLS; every session on its own account):
#  connect_plain  CONNECT_N sessions (bind, initial presence) held: memory, login CPU
#  connect_tls    the same over STARTTLS
#  connect_ws     roost only: the same over WebSocket (RFC 7395) on HTTPS, SCRAM-SHA-1
#                 (Prosody's mod_websocket is not configured here)
#  login          LOGIN_SEQ logins one after another, LOGIN_CONC with LOGIN_CONCURRENCY at
#                 once (login + bind + logout)
#  msg_small      PAIRS pairs exchange chat messages, paced at MSG_RATE per second in all,
#                 MSG_WINDOW in flight per direction, for MSG_SECONDS, while ONLINE_SMALL
#                 sessions are online in all (the others idle, with presence)
#  msg_large      the same with ONLINE_LARGE online
#  msg_max        as msg_small without pacing: the most messages per second
#  fast_login     roost only (Prosody 0.12 has no SASL2): FAST_LOGINS SASL2 + Bind 2 logins
#                 over STARTTLS with SCRAM-SHA-1 asking for a FAST token, then FAST_LOGINS
#                 with the tokens (XEP-0484), one after another: CPU per login, round trips
#  fast_login_plain  the same without TLS: the cost of the login itself
#  fast_login_resume  as fast_login, the FAST logins also resuming the TLS session (TLS 1.3
#                 tickets), as a phone reconnecting does
#  muc_room       MUC_OCCUPANTS sessions join one group chat (XEP-0045) and send room
#                 messages in turn, paced at MUC_RATE per second in all, for MSG_SECONDS after
#                 MSG_WARMUP: CPU per 1000 room messages, latency until the last occupant has
#                 a message (every room message archived, XEP-0313 on the room)
#  muc_idle       MUC_PER_ROOM sessions fill MUC_ROOMS rooms (the first creates them, the
#                 others join): memory per room and per occupant
#  big_tls        roost only, once: BIG_N direct-TLS sessions (SCRAM-SHA-1) in batches of
#                 BIG_BATCH, and roost's memory
#  upload         XEP-0363 over HTTPS (roost's upload.localhost; Prosody's
#                 mod_http_file_share on upload.localhost): one UPLOAD_MIB MiB file uploaded
#                 and downloaded alone (MiB/s, server CPU), then UPLOAD_CONC uploads of that
#                 size at once while the server's RSS is sampled every 20 ms (peak above
#                 idle); the files are deleted after each run
#
# Sizes and knobs (environment, defaults in brackets): ROUNDS [2], CONNECT_N [1000],
# LOGIN_SEQ [500], LOGIN_CONC [1000], LOGIN_CONCURRENCY [20], PAIRS [10], MSG_WINDOW [4],
# MSG_RATE [1000], MSG_SECONDS [10], MSG_WARMUP [2], ONLINE_SMALL [100], ONLINE_LARGE [5000],
# FAST_LOGINS [300], BIG_N [10000, 0 skips], BIG_BATCH [100], UPLOAD_MIB [50, 0 skips], UPLOAD_CONC [10],
# MUC_OCCUPANTS [20], MUC_RATE [200: roost lets an occupant send 10 messages/s sustained],
# MUC_ROOMS [1000, 0 skips the group chat cases], MUC_PER_ROOM [5],
# SETTLE [3: seconds before memory is measured],
# SERVER_START_WAIT [1], ROOST_THREADS [roost's default, 1], SERVERS ["roost prosody"],
# ONLY [every case; or a list such as "msg_small msg_max"],
# ports ROOST_PORT [25222], ROOST_TLS_PORT [25223], ROOST_HTTPS_PORT [25281],
# PROSODY_PORT [35222], PROSODY_TLS_PORT [35223], PROSODY_HTTPS_PORT [35281], BENCH_PROSODY_NAGLE [0], OUT [target/bench-results/<time>],
# ROOST_BIN and LOAD_BIN [built here: target/release/roost and the load bench; set them to
# compare two roost binaries without rebuilding].
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "side-by-side.sh: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

if [[ $SMOKE == 1 ]]; then
    : "${ROUNDS:=1}" "${CONNECT_N:=20}" "${LOGIN_SEQ:=5}" "${LOGIN_CONC:=10}"
    : "${LOGIN_CONCURRENCY:=5}" "${PAIRS:=2}" "${MSG_WINDOW:=2}" "${MSG_RATE:=200}"
    : "${MSG_SECONDS:=1}" "${MSG_WARMUP:=0.5}" "${ONLINE_SMALL:=10}" "${ONLINE_LARGE:=0}"
    : "${BIG_N:=0}" "${SERVERS:=roost}" "${SETTLE:=0.2}" "${SERVER_START_WAIT:=0.2}"
    : "${FAST_LOGINS:=5}"
    : "${UPLOAD_MIB:=2}" "${UPLOAD_CONC:=2}"
    : "${MUC_OCCUPANTS:=5}" "${MUC_RATE:=20}" "${MUC_ROOMS:=20}" "${MUC_PER_ROOM:=3}"
fi
FAST_LOGINS=${FAST_LOGINS:-300}
ROUNDS=${ROUNDS:-2}
SETTLE=${SETTLE:-3}
SERVER_START_WAIT=${SERVER_START_WAIT:-1}
CONNECT_N=${CONNECT_N:-1000}
LOGIN_SEQ=${LOGIN_SEQ:-500}
LOGIN_CONC=${LOGIN_CONC:-1000}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-20}
PAIRS=${PAIRS:-10}
MSG_WINDOW=${MSG_WINDOW:-4}
MSG_RATE=${MSG_RATE:-1000}
MSG_SECONDS=${MSG_SECONDS:-10}
MSG_WARMUP=${MSG_WARMUP:-2}
ONLINE_SMALL=${ONLINE_SMALL:-100}
ONLINE_LARGE=${ONLINE_LARGE:-5000}
BIG_N=${BIG_N:-10000}
MUC_OCCUPANTS=${MUC_OCCUPANTS:-20}
MUC_RATE=${MUC_RATE:-200}
MUC_ROOMS=${MUC_ROOMS:-1000}
MUC_PER_ROOM=${MUC_PER_ROOM:-5}
BIG_BATCH=${BIG_BATCH:-100}
UPLOAD_MIB=${UPLOAD_MIB:-50}
UPLOAD_CONC=${UPLOAD_CONC:-10}
ROOST_THREADS=${ROOST_THREADS:-}
SERVERS=${SERVERS:-roost prosody}
ROOST_PORT=${ROOST_PORT:-25222}
ROOST_TLS_PORT=${ROOST_TLS_PORT:-25223}
ROOST_HTTPS_PORT=${ROOST_HTTPS_PORT:-25281}
PROSODY_PORT=${PROSODY_PORT:-35222}
PROSODY_TLS_PORT=${PROSODY_TLS_PORT:-35223}
PROSODY_HTTPS_PORT=${PROSODY_HTTPS_PORT:-35281}
export BENCH_PROSODY_NAGLE=${BENCH_PROSODY_NAGLE:-0}
DOMAIN=localhost
PASSWORD=pw
OUT=${OUT:-$REPO/target/bench-results/$(date +%Y%m%d-%H%M%S)}

with_prosody=0
[[ " $SERVERS " == *" prosody "* ]] && with_prosody=1
if [[ $with_prosody == 1 && $EUID -ne 0 ]]; then
    echo "side-by-side.sh: run as root (Prosody is started as the prosody user), or SERVERS=roost" >&2
    exit 2
fi
for n in "$ONLINE_SMALL" "$ONLINE_LARGE"; do
    if [[ $n -ne 0 && $n -lt $((2 * PAIRS)) ]]; then
        echo "side-by-side.sh: ONLINE_SMALL and ONLINE_LARGE must be 0 or at least 2*PAIRS" >&2
        exit 2
    fi
done
ACCOUNTS=$CONNECT_N
for n in $((ONLINE_SMALL)) $((ONLINE_LARGE)) $((2 * PAIRS)) $((LOGIN_CONCURRENCY)) $((BIG_N)) \
    $((MUC_OCCUPANTS)) $((MUC_PER_ROOM)); do
    if ((n > ACCOUNTS)); then ACCOUNTS=$n; fi
done

started=$SECONDS
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }

# --- builds -----------------------------------------------------------------------------
say "== building roost (release) and the load generator"
if [[ -n ${ROOST_BIN:-} ]]; then
    ROOST=$ROOST_BIN
else
    cargo build --release --locked --bin roost 2>&1 | tail -n 2
    ROOST=$REPO/target/release/roost
fi
if [[ -n ${LOAD_BIN:-} ]]; then
    LOAD=$LOAD_BIN
else
    LOAD=$(cargo bench --locked --bench load --no-run 2>&1 | tee -a "$LOG" |
        sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
fi
[[ -x $LOAD ]] || { echo "side-by-side.sh: no load generator binary" >&2; exit 1; }
[[ -x $ROOST ]] || { echo "side-by-side.sh: no roost binary at $ROOST" >&2; exit 1; }
build_seconds=$((SECONDS - started))

if [[ $with_prosody == 1 ]] && ! command -v prosody >/dev/null; then
    say "== installing Prosody from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q prosody
fi

# 10 000 sessions need 10 000 descriptors in the server and as many in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/roost-side-by-side.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for port in "$ROOST_PORT" "$ROOST_TLS_PORT" "$ROOST_HTTPS_PORT" "$PROSODY_PORT" \
    "$PROSODY_TLS_PORT" "$PROSODY_HTTPS_PORT"; do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "side-by-side.sh: port $port is taken (set ROOST_PORT etc.)" >&2
        exit 1
    fi
done

wait_port() { # PORT [SECONDS]: until something listens there (10 s at most, or SECONDS)
    for _ in $(seq $((${2:-10} * 10))); do
        (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited" >&2; return 1; }
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_roost() {
    "$ROOST" serve --domain "$DOMAIN" --data-dir "$WORK/roost" --bind 127.0.0.1 \
        --c2s-port "$ROOST_PORT" --c2s-tls-port "$ROOST_TLS_PORT" --no-s2s --insecure-allow-plaintext \
        --no-family-room --log-level warn --max-connections 20000 --max-unauth-per-ip 1000 \
        --https-port "$ROOST_HTTPS_PORT" --upload-max-size "$((UPLOAD_MIB + 1))M" \
        --upload-quota 1000G --upload-daily-quota 1000G --upload-disk-cap 1000G \
        --muc-rooms-per-account "$((MUC_ROOMS > 20 ? MUC_ROOMS : 20))" \
        ${ROOST_THREADS:+--threads "$ROOST_THREADS"} 2>>"$OUT/roost.log" &
    SERVER_PID=$!
    wait_port "$ROOST_PORT" "${1:-10}"
}

PROSODY_DIR=$WORK/prosody
export BENCH_PROSODY_DIR=$PROSODY_DIR BENCH_PROSODY_PORT=$PROSODY_PORT
export BENCH_PROSODY_TLS_PORT=$PROSODY_TLS_PORT BENCH_DOMAIN=$DOMAIN
export BENCH_PROSODY_HTTPS_PORT=$PROSODY_HTTPS_PORT BENCH_UPLOAD_MIB=$((UPLOAD_MIB + 1))
PROSODY_CFG=$PROSODY_DIR/prosody.cfg.lua

start_prosody() {
    # setpriv execs prosody, whose #! line execs lua: $! is Prosody's process.
    setpriv --reuid=prosody --regid=prosody --init-groups \
        prosody --config "$PROSODY_CFG" -F >>"$OUT/prosody.out" 2>&1 &
    SERVER_PID=$!
    wait_port "$PROSODY_PORT"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# --- accounts ---------------------------------------------------------------------------
say "== $ACCOUNTS accounts on each server (${BENCH_PREFIX:-bench}1 … , password $PASSWORD)"
"$LOAD" --domain "$DOMAIN" --count "$ACCOUNTS" --password "$PASSWORD" \
    roost-accounts --data-dir "$WORK/roost" | tee -a "$LOG"
# The first start makes roost's self-signed certificate, which both servers then use.
# No family room: it is now the default circle, which makes every account every other's
# contact (a million roster items for 1000 accounts), and Prosody has none.
start_roost 300
stop_server
CERT=$WORK/roost/$DOMAIN.crt
if [[ $with_prosody == 1 ]]; then
    mkdir -p "$PROSODY_DIR/data"
    cp "$REPO/bench/prosody.cfg.lua" "$PROSODY_CFG"
    cp "$CERT" "$PROSODY_DIR/cert.pem"
    cp "$WORK/roost/$DOMAIN.key" "$PROSODY_DIR/key.pem"
    chown -R prosody:prosody "$PROSODY_DIR"
    start_prosody
    echo ">for i = 1, $ACCOUNTS do require'core.usermanager'.create_user('bench'..i, '$PASSWORD', '$DOMAIN') end" |
        prosodyctl --config "$PROSODY_CFG" shell >>"$LOG" 2>&1
    made=$(find "$PROSODY_DIR/data" -path '*/accounts/bench*.dat' | wc -l)
    stop_server
    say "prosody: $made accounts"
    ((made >= ACCOUNTS)) || { echo "side-by-side.sh: Prosody accounts missing" >&2; exit 1; }
fi

# --- the runs ---------------------------------------------------------------------------
# case_args CASE SERVER: the load generator's arguments for a case, in CASE_ARGS.
case_args() {
    local port tls_port
    if [[ $2 == roost ]]; then
        port=$ROOST_PORT tls_port=$ROOST_TLS_PORT
    else
        port=$PROSODY_PORT tls_port=$PROSODY_TLS_PORT
    fi
    local common=(--port "$port" --tls-port "$tls_port" --https-port "$ROOST_HTTPS_PORT" --domain "$DOMAIN" --count "$ACCOUNTS"
        --password "$PASSWORD" --server-pid "$SERVER_PID" --label "$2")
    local msg=(msg --pairs "$PAIRS" --window "$MSG_WINDOW" --duration "$MSG_SECONDS"
        --warmup "$MSG_WARMUP" --settle "$SETTLE")
    case $1 in
        connect_plain) CASE_ARGS=("${common[@]}" connect --sessions "$CONNECT_N" --settle "$SETTLE") ;;
        connect_tls)
            CASE_ARGS=("${common[@]}" --transport starttls --ca "$CERT"
                connect --sessions "$CONNECT_N" --settle "$SETTLE")
            ;;
        connect_ws)
            # At most 16 HTTP connections per address are served at once (the HTTP
            # service's limit): logins in flight stay below it.
            CASE_ARGS=("${common[@]}" --transport websocket --ca "$CERT" --batch 10
                connect --sessions "$CONNECT_N" --settle "$SETTLE")
            ;;
        login)
            CASE_ARGS=("${common[@]}" --mech SCRAM-SHA-1 login-rate --sequential "$LOGIN_SEQ"
                --concurrent "$LOGIN_CONC" --concurrency "$LOGIN_CONCURRENCY")
            ;;
        msg_small) CASE_ARGS=("${common[@]}" "${msg[@]}" --rate "$MSG_RATE" --idle $((ONLINE_SMALL - 2 * PAIRS))) ;;
        msg_large) CASE_ARGS=("${common[@]}" "${msg[@]}" --rate "$MSG_RATE" --idle $((ONLINE_LARGE - 2 * PAIRS))) ;;
        msg_max) CASE_ARGS=("${common[@]}" "${msg[@]}" --idle $((ONLINE_SMALL - 2 * PAIRS))) ;;
        fast_login)
            CASE_ARGS=("${common[@]}" --transport starttls --ca "$CERT" --mech SCRAM-SHA-1
                fast-login --logins "$FAST_LOGINS")
            ;;
        fast_login_plain)
            CASE_ARGS=("${common[@]}" --mech SCRAM-SHA-1 fast-login --logins "$FAST_LOGINS")
            ;;
        fast_login_resume)
            CASE_ARGS=("${common[@]}" --transport starttls --ca "$CERT" --mech SCRAM-SHA-1
                fast-login --logins "$FAST_LOGINS" --tls-resume)
            ;;
        muc_room)
            CASE_ARGS=("${common[@]}" muc --occupants "$MUC_OCCUPANTS" --rate "$MUC_RATE"
                --duration "$MSG_SECONDS" --warmup "$MSG_WARMUP" --settle "$SETTLE")
            ;;
        muc_idle)
            CASE_ARGS=("${common[@]}" muc-idle --rooms "$MUC_ROOMS" --per-room "$MUC_PER_ROOM"
                --settle "$SETTLE")
            ;;
        big_tls)
            CASE_ARGS=("${common[@]}" --transport tls --ca "$CERT" --batch "$BIG_BATCH"
                connect --sessions "$BIG_N" --settle "$SETTLE" --max-seconds 400)
            ;;
        # Both servers' certificate is roost's, for localhost and upload.localhost.
        upload)
            CASE_ARGS=("${common[@]}" --ca "$CERT" --step-timeout 120
                upload --size-mib "$UPLOAD_MIB" --concurrent "$UPLOAD_CONC")
            ;;
    esac
}

CASES=(connect_plain connect_tls connect_ws login)
if ((ONLINE_SMALL > 0)); then CASES+=(msg_small); fi
if ((ONLINE_LARGE > 0)); then CASES+=(msg_large); fi
if ((ONLINE_SMALL > 0)); then CASES+=(msg_max); fi
if ((FAST_LOGINS > 0)); then CASES+=(fast_login fast_login_plain fast_login_resume); fi
if ((UPLOAD_MIB > 0)); then CASES+=(upload); fi
if ((MUC_ROOMS > 0)); then CASES+=(muc_room muc_idle); fi
if [[ -n ${ONLY:-} ]]; then
    read -r -a CASES <<<"$ONLY"
fi

RESULTS=$OUT/results.txt
: >"$RESULTS"

# run_case CASE SERVER ROUND: a fresh server, one load generator run, results filed as
# "SERVER CASE.NAME VALUE ROUND".
run_case() {
    # Prosody's WebSocket module is not set up here: that case is roost's alone.
    [[ $1 == connect_ws && $2 != roost ]] && return 0
    "start_$2"
    sleep "$SERVER_START_WAIT"
    case_args "$1" "$2"
    local args=("${CASE_ARGS[@]}")
    echo "\$ load ${args[*]}" >>"$LOG"
    local out
    if ! out=$("$LOAD" "${args[@]}" 2>&1); then
        echo "$out" | tee -a "$LOG"
        echo "side-by-side.sh: $2 $1 failed" >&2
        exit 1
    fi
    echo "$out" >>"$LOG"
    stop_server
    # The uploaded files (hundreds of MiB a round) go at once.
    if [[ $1 == upload ]]; then
        rm -rf "$WORK/roost/upload" "$PROSODY_DIR/data/upload%2elocalhost"
    fi
    echo "$out" | awk -v s="$2" -v c="$1" -v r="$3" '$1 == "RESULT" { print s, c "." $3, $4, r }' >>"$RESULTS"
    # One line per run: its main figures and the load average around it.
    echo "$out" | awk -v s="$2" -v c="$1" -v r="$3" '
        $1 == "RESULT" { v[$3] = $4 }
        END {
            line = sprintf("round %s %-8s %-14s load %s→%s", r, s, c, v["load_avg_1min_start"], v["load_avg_1min_end"])
            n = split("bytes_per_room bytes_per_occupant muc_server_cpu_ms_per_1000_room_msgs last_latency_p99_ms bytes_per_session login_server_cpu_ms_per_login seq_server_cpu_ms_per_login msg_server_cpu_ms_per_1000_msgs msgs_per_s latency_p99_ms server_loaded_rss_kib upload_mib_per_s download_mib_per_s concurrent_rss_above_idle_kib", k, " ")
            for (i = 1; i <= n; i++) if (k[i] in v) line = line sprintf("  %s=%s", k[i], v[k[i]])
            print line
        }' | tee -a "$LOG"
}

say "== $ROUNDS round(s), servers: $SERVERS; results in $OUT"
read -r -a servers <<<"$SERVERS"
for round in $(seq "$ROUNDS"); do
    order=("${servers[@]}")
    if ((round % 2 == 0)) && ((${#servers[@]} == 2)); then
        order=("${servers[1]}" "${servers[0]}")
    fi
    for server in "${order[@]}"; do
        for c in "${CASES[@]}"; do
            # SASL2 and FAST: roost only.
            [[ $server == prosody && $c == fast_login* ]] && continue
            run_case "$c" "$server" "$round"
        done
    done
done
if ((BIG_N > 0)) && [[ " $SERVERS " == *" roost "* ]]; then
    run_case big_tls roost 1
fi

# --- the table --------------------------------------------------------------------------
median() { # SERVER KEY
    awk -v s="$1" -v k="$2" '$1 == s && $2 == k { print $3 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            fmt = (m >= 100) ? "%.0f\n" : "%.3g\n"
            printf fmt, m
        }'
}
loads() { # CASE: the range of 1-minute load averages at the start of that case's runs
    awk -v k="$1.load_avg_1min_start" '$2 == k { print $3 }' "$RESULTS" | sort -g |
        awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.1f-%.1f", lo, hi }'
}
ROWS=(
    "connect_plain.server_idle_rss_kib|idle server RSS, KiB (fresh start)|roost <= 4096 KiB"
    "connect_plain.server_idle_anon_kib|idle server anonymous memory (RssAnon), KiB|"
    "connect_plain.server_loaded_rss_kib|RSS with $CONNECT_N plaintext sessions, KiB|"
    "connect_plain.bytes_per_session|bytes per idle session, plaintext|<= 1/4"
    "connect_tls.bytes_per_session|bytes per idle session, STARTTLS|reported"
    "connect_ws.bytes_per_session|bytes per idle session, WebSocket (HTTPS)|reported (roost only)"
    "connect_plain.login_server_cpu_ms_per_login|login CPU ms, PLAIN + bind + presence|"
    "connect_tls.login_server_cpu_ms_per_login|login CPU ms, STARTTLS + SCRAM-SHA-1 + ...|"
    "login.seq_server_cpu_ms_per_login|login CPU ms, SCRAM-SHA-1 + bind + logout, sequential|<= 1/4"
    "login.conc_server_cpu_ms_per_login|login CPU ms, the same, $LOGIN_CONCURRENCY at once|<= 1/4"
    "login.seq_logins_per_s|logins/s sequential|"
    "login.seq_client_cpu_pct|load generator CPU % meanwhile|"
    "login.conc_logins_per_s|logins/s, $LOGIN_CONCURRENCY at once|"
    "msg_small.msg_server_cpu_ms_per_1000_msgs|CPU ms per 1000 msgs, $ONLINE_SMALL online, $MSG_RATE/s|<= 1/10"
    "msg_large.msg_server_cpu_ms_per_1000_msgs|CPU ms per 1000 msgs, $ONLINE_LARGE online, $MSG_RATE/s|<= 1/10, ~= the row above"
    "msg_small.latency_p50_ms|latency p50 ms, $ONLINE_SMALL online|"
    "msg_small.latency_p99_ms|latency p99 ms, $ONLINE_SMALL online|<= 1/5"
    "msg_large.latency_p99_ms|latency p99 ms, $ONLINE_LARGE online|<= 1/5"
    "msg_large.server_online_rss_kib|RSS with $ONLINE_LARGE online, KiB|"
    "msg_max.msgs_per_s|most msgs/s (window $MSG_WINDOW x $((2 * PAIRS)) directions)|"
    "msg_max.msg_server_cpu_ms_per_1000_msgs|CPU ms per 1000 msgs at that rate|"
    "msg_max.msg_client_cpu_pct|load generator CPU % at that rate|"
    "msg_max.latency_p99_ms|latency p99 ms at that rate|"
    "fast_login.sasl2_scram_server_cpu_ms_per_login|login CPU ms, STARTTLS + SASL2 SCRAM-SHA-1 + Bind 2 (roost)|"
    "fast_login.fast_server_cpu_ms_per_login|login CPU ms, STARTTLS + SASL2 FAST token + Bind 2 (roost)|"
    "fast_login.sasl2_scram_client_cpu_ms_per_login|client CPU ms per login, SCRAM-SHA-1 (PBKDF2)|"
    "fast_login.fast_client_cpu_ms_per_login|client CPU ms per login, FAST token|"
    "fast_login_plain.sasl2_scram_server_cpu_ms_per_login|login CPU ms, no TLS, SASL2 SCRAM-SHA-1 + Bind 2|"
    "fast_login_plain.fast_server_cpu_ms_per_login|login CPU ms, no TLS, SASL2 FAST token + Bind 2|FAST <= 1/10 of SCRAM"
    "fast_login_resume.sasl2_scram_server_cpu_ms_per_login|login CPU ms, STARTTLS (full handshake) + SASL2 SCRAM-SHA-1 + Bind 2|"
    "fast_login_resume.fast_server_cpu_ms_per_login|login CPU ms, STARTTLS (resumed) + SASL2 FAST token + Bind 2|FAST <= 1/10 of SCRAM"
    "fast_login_resume.fast_tls_resumed_share|share of those FAST logins whose TLS resumed|"
    "fast_login.sasl2_scram_round_trips|round trips after TLS to bound, SASL2 SCRAM|"
    "fast_login.fast_round_trips|round trips after TLS to bound, FAST|1"
    "upload.upload_mib_per_s|upload MiB/s, one $UPLOAD_MIB MiB file over HTTPS|"
    "upload.upload_server_cpu_ms_per_file|upload server CPU ms per file|"
    "upload.download_mib_per_s|download MiB/s, the same file|"
    "upload.download_server_cpu_ms_per_file|download server CPU ms per file|"
    "upload.idle_rss_kib|RSS before the uploads, KiB|"
    "upload.concurrent_rss_above_idle_kib|RSS peak above that, $UPLOAD_CONC uploads at once, KiB|roost <= 4096 KiB"
    "upload.concurrent_upload_mib_per_s|MiB/s in all, $UPLOAD_CONC uploads at once|"
    "muc_room.muc_server_cpu_ms_per_1000_room_msgs|group chat: CPU ms per 1000 room msgs, $MUC_OCCUPANTS occupants, $MUC_RATE/s|<= 1/5"
    "muc_room.last_latency_p50_ms|group chat: latency to the last occupant p50 ms|"
    "muc_room.last_latency_p99_ms|group chat: latency to the last occupant p99 ms|<= 1/5"
    "muc_room.deliveries_per_s|group chat: stanzas delivered per s|"
    "muc_idle.bytes_per_room|group chat: bytes per room (with its first occupant)|reported"
    "muc_idle.bytes_per_occupant|group chat: bytes per further occupant, $MUC_ROOMS rooms of $MUC_PER_ROOM|reported"
    "muc_idle.create_server_cpu_ms_per_room|group chat: CPU ms to create a room (instant)|"
    "muc_idle.join_server_cpu_ms_per_join|group chat: CPU ms per join|"
)
{
    echo
    echo "== results: medians of $ROUNDS round(s); ratio = roost / Prosody"
    printf '%-58s %12s %12s %8s  %-11s %s\n' "" roost prosody ratio "load avg" target
    for row in "${ROWS[@]}"; do
        IFS='|' read -r key label target <<<"$row"
        r=$(median roost "$key")
        p=$(median prosody "$key")
        [[ $r == - && $p == - ]] && continue
        ratio=$(awk -v r="$r" -v p="$p" 'BEGIN { if (r == "-" || p == "-" || p == 0) print "-"; else printf "%.3f", r / p }')
        printf '%-58s %12s %12s %8s  %-11s %s\n' "$label" "$r" "$p" "$ratio" "$(loads "${key%%.*}")" "$target"
    done
    if grep -q '^roost big_tls' "$RESULTS"; then
        echo
        echo "roost alone, $BIG_N direct-TLS sessions (SCRAM-SHA-1, batches of $BIG_BATCH):"
        for k in server_idle_rss_kib server_loaded_rss_kib server_loaded_hwm_kib bytes_per_session \
            logins_per_s login_server_cpu_ms_per_login server_after_logout_rss_kib; do
            printf '  %-34s %s\n' "$k" "$(median roost "big_tls.$k")"
        done
    fi
    echo
    loads=$(awk '$2 ~ /load_avg_1min_(start|end)$/ { print $3 }' "$RESULTS" | sort -g)
    echo "load average (1 min) during the runs: $(echo "$loads" | head -n 1) to $(echo "$loads" | tail -n 1) on $(nproc) cores"
    echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -r)"
    echo "roost $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?') with --threads ${ROOST_THREADS:-1 (default)}; $(rustc --version)"
    [[ $with_prosody == 1 ]] && echo "prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '?') (lua5.4, epoll), Nagle $([[ $BENCH_PROSODY_NAGLE == 1 ]] && echo on || echo off), mod_limits off"
    echo "sizes: FAST_LOGINS=$FAST_LOGINS CONNECT_N=$CONNECT_N LOGIN_SEQ=$LOGIN_SEQ LOGIN_CONC=$LOGIN_CONC PAIRS=$PAIRS MSG_WINDOW=$MSG_WINDOW MSG_RATE=$MSG_RATE MSG_SECONDS=$MSG_SECONDS ONLINE_SMALL=$ONLINE_SMALL ONLINE_LARGE=$ONLINE_LARGE MUC_OCCUPANTS=$MUC_OCCUPANTS MUC_RATE=$MUC_RATE MUC_ROOMS=$MUC_ROOMS MUC_PER_ROOM=$MUC_PER_ROOM BIG_N=$BIG_N UPLOAD_MIB=$UPLOAD_MIB UPLOAD_CONC=$UPLOAD_CONC"
    echo "took $((SECONDS - started)) s ($build_seconds s of it building); raw results: $RESULTS"
} | tee "$OUT/table.txt" | tee -a "$LOG"
