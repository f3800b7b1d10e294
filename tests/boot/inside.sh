#!/usr/bin/env bash
# Runs INSIDE the booted container (roost-boot-test.service, a oneshot started by
# multi-user.target): installs the roost .deb, checks the service, and writes one line per
# check to /results/results.txt ("PASS name" / "FAIL name: why"), then "DONE", then powers the
# container off. Every wait is bounded; the host bounds the whole boot with `timeout`.
set -uo pipefail

R=/results/results.txt
DOMAIN=boot.test
: >"$R"
pass() { echo "PASS $1" | tee -a "$R"; }
fail() { echo "FAIL $1: ${2:-}" | tee -a "$R"; }
check() { # check NAME COMMAND... : PASS when the command succeeds
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | tail -3 | tr '\n' ' ')"; fi
}
expect() { # expect NAME ACTUAL WANTED
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', wanted '$3'"; fi
}
prop() { systemctl show -p "$1" --value roost.service; }
wait_state() { # wait_state ACTIVE SUB SECONDS
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        [ "$(prop ActiveState)" = "$1" ] && [ "$(prop SubState)" = "$2" ] && return 0
        sleep 0.5
    done
    echo "state $(prop ActiveState)/$(prop SubState), wanted $1/$2"
    return 1
}
main_user() { # user name of the main process
    local pid
    pid=$(prop MainPID)
    [ "$pid" != 0 ] || { echo "no main pid"; return 1; }
    stat -c %U "/proc/$pid"
}
login() { # login NAME ARGS... : SASL PLAIN + bind over TLS, with the test account
    check "$1" timeout 30 python3 /srv/boot-test/xmpp_login.py --domain "$DOMAIN" --user alice \
        --password 'correct horse' "${@:2}"
}
finish() {
    journalctl -u roost.service --no-pager -o short-monotonic >/results/roost-journal.txt 2>&1 || true
    systemctl status roost.service --no-pager >/results/roost-status.txt 2>&1 || true
    echo DONE >>"$R"
    sync
    systemctl poweroff --no-block
}
trap finish EXIT

# 1. Install: postinst creates the user, enables and starts roost.service.
check install timeout 180 dpkg -i /srv/roost.deb
if [ -n "${ROOST_BOOT_PLACEHOLDER:-}" ]; then
    # Until the server is merged: a stand-in that speaks just enough of the protocol.
    install -m 0755 /srv/boot-test/placeholder-roost.py /usr/bin/roost
    echo "NOTE placeholder server" >>"$R"
    systemctl restart roost.service
fi
check user-exists getent passwd roost
expect unit-enabled "$(systemctl is-enabled roost.service)" enabled
check started-by-postinst wait_state active running 60

# 2. Configuration from /etc/default/roost (a conffile), then a restart.
sed -i "s|^ROOST_ARGS=.*|ROOST_ARGS=\"--domain $DOMAIN\"|" /etc/default/roost
check restart timeout 90 systemctl restart roost.service
check active wait_state active running 60
if ! grep -qx 'PASS active' "$R"; then
    # Everything below needs a running server: say so once instead of timing out 20 times.
    fail aborted "roost.service does not run; later checks skipped (see roost-journal.txt)"
    exit 1
fi
expect runs-as-roost "$(main_user)" roost

expect data-dir-owned-by-roost "$(stat -c %U /var/lib/roost)" roost
check listening-5222 timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5222'
check listening-5223 timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5223'
# The HTTPS service (file upload, web clients) under the unit's sandbox, with the upload
# directory it creates in the data directory.
check listening-5281 timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5281'
expect upload-dir-owned-by-roost "$(stat -c %U /var/lib/roost/upload)" roost

# 3. Accounts: the CLI as user roost on the same data directory (password from stdin).
check adduser timeout 60 runuser -u roost -- bash -c \
    "echo 'correct horse' | roost adduser --data-dir /var/lib/roost alice@$DOMAIN"
check users-lists-alice timeout 30 runuser -u roost -- bash -c \
    "roost users --data-dir /var/lib/roost | grep -q alice@$DOMAIN"

# 4. Logins over TLS: direct TLS (5223) and STARTTLS (5222); a wrong password is refused.
login login-direct-tls --port 5223 --direct-tls --check-san
login login-starttls --port 5222
check login-wrong-password timeout 30 python3 /srv/boot-test/xmpp_login.py --domain "$DOMAIN" \
    --user alice --password wrong --port 5223 --direct-tls --expect-failure

# 5. Let's Encrypt: the certbot deploy hook (as installed by the package) copies the
#    certificate to /etc/roost and reloads; roost then serves it from --cert/--key.
le=/tmp/letsencrypt/live/$DOMAIN
renew() { # renew a|b : a certbot renewal: new files in the lineage, then the deploy hook
    cp "/srv/boot-test/cert-$1.pem" "$le/fullchain.pem"
    cp "/srv/boot-test/key-$1.pem" "$le/privkey.pem"
    RENEWED_LINEAGE=$le RENEWED_DOMAINS=$DOMAIN ROOST_DOMAIN=$DOMAIN \
        timeout 60 /usr/share/roost/certbot-deploy-hook.sh
}
mkdir -p "$le"
check certbot-hook renew a
expect cert-dir-mode "$(stat -c %U:%G:%a /etc/roost)" root:roost:750
expect key-mode "$(stat -c %U:%G:%a /etc/roost/privkey.pem)" root:roost:640
expect chain-mode "$(stat -c %U:%G:%a /etc/roost/fullchain.pem)" root:roost:644
check active-after-hook wait_state active running 30
sed -i "s|^ROOST_ARGS=.*|ROOST_ARGS=\"--domain $DOMAIN --cert /etc/roost/fullchain.pem --key /etc/roost/privkey.pem\"|" \
    /etc/default/roost
check restart-with-cert timeout 90 systemctl restart roost.service
check active-with-cert wait_state active running 60
login login-serves-le-cert --port 5223 --direct-tls --expect-cert /srv/boot-test/cert-a.pem

# 6. Reload (SIGHUP): a renewed certificate is served by the same, still active, process.
pid=$(prop MainPID)
check hook-after-renewal renew b
check active-after-reload wait_state active running 30
expect same-pid-after-reload "$(prop MainPID)" "$pid"
login login-serves-renewed-cert --port 5223 --direct-tls --expect-cert /srv/boot-test/cert-b.pem
login login-starttls-renewed-cert --port 5222 --expect-cert /srv/boot-test/cert-b.pem
check systemctl-reload timeout 60 systemctl reload roost.service
check active-after-systemctl-reload wait_state active running 30
expect same-pid-after-systemctl-reload "$(prop MainPID)" "$pid"

# 7. Stop: SIGTERM, clean exit status 0 well within TimeoutStopSec, no restart.
start=$(date +%s)
check stop timeout 60 systemctl stop roost.service
check stopped wait_state inactive dead 30
expect stop-result "$(prop Result)" success
expect stop-exit-0 "$(prop ExecMainCode)/$(prop ExecMainStatus)" "1/0"
check stop-fast test $(($(date +%s) - start)) -lt 20
expect no-restarts "$(prop NRestarts)" 0
