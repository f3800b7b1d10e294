#!/usr/bin/env bash
# Checks the systemd files offline:
#  - `systemd-analyze verify` on roost.service must print nothing (it exits 0 even on unknown
#    keys and bad values, so any output fails). It also insists that ExecStart's binary
#    exists: we verify a copy whose ExecStart points at a built roost (ROOST_BIN, or the
#    first of target/{x86_64-unknown-linux-gnu/,}release/roost, target/debug/roost), or at
#    /bin/true when none is built yet;
#  - `systemd-analyze security --offline=yes` exposure must be <= ROOST_MAX_EXPOSURE (1.5);
#  - roost.sysusers must create the user roost in an empty root (systemd-sysusers --root);
#  - the shell scripts under systemd/ must pass `bash -n` (and shellcheck, when installed).
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/../cross/lib.sh"
cd "$ROOST_ROOT"

max_exposure=${ROOST_MAX_EXPOSURE:-1.5}
command -v systemd-analyze >/dev/null || need_apt systemd

bin=${ROOST_BIN:-}
if [ -z "$bin" ]; then
    for b in "$ROOST_TARGET_DIR"/{x86_64-unknown-linux-gnu/release,release,debug}/roost /bin/true; do
        if [ -x "$b" ]; then
            bin=$(realpath "$b")
            break
        fi
    done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/roost #$bin #g" systemd/roost.service >"$tmp/roost.service"
grep -q "^ExecStart=$bin serve" "$tmp/roost.service" || die "could not point ExecStart at $bin"

status=0
log "systemd-analyze verify roost.service (ExecStart → $bin)"
out=$(timeout 60 systemd-analyze verify --man=no "$tmp/roost.service" 2>&1) || status=1
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    status=1
fi
[ $status -eq 0 ] || log "FAIL: systemd-analyze verify complained"

report=$(timeout 60 systemd-analyze security --offline=yes systemd/roost.service 2>&1) || true
exposure=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for roost.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
    printf '%s\n' "$report" >&2
    log "FAIL: no exposure score from systemd-analyze security"
    status=1
else
    log "systemd-analyze security: exposure $exposure (max $max_exposure)"
    if ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
        printf '%s\n' "$report" | grep '✗' >&2 || true
        log "FAIL: exposure $exposure above $max_exposure"
        status=1
    fi
    mkdir -p target/pi-report
    echo "roost.service exposure $exposure" >target/pi-report/exposure.txt
fi

# The optional daily backup (off by default): the service and its timer, sandboxed as tightly.
sed "s#/usr/bin/roost #$bin #g" systemd/backup/roost-backup.service >"$tmp/roost-backup.service"
cp systemd/backup/roost-backup.timer "$tmp/"
grep -q "^ExecStart=$bin backup" "$tmp/roost-backup.service" || die "could not point the backup's ExecStart at $bin"
log "systemd-analyze verify roost-backup.service roost-backup.timer"
out=$(timeout 60 systemd-analyze verify --man=no "$tmp/roost-backup.service" "$tmp/roost-backup.timer" 2>&1) || status=1
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    log "FAIL: systemd-analyze verify complained about the backup units"
    status=1
fi
report=$(timeout 60 systemd-analyze security --offline=yes systemd/backup/roost-backup.service 2>&1) || true
exposure=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for roost-backup.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ] || ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
    printf '%s\n' "$report" | grep '✗' >&2 || true
    log "FAIL: roost-backup.service exposure '${exposure}' above $max_exposure"
    status=1
else
    log "systemd-analyze security roost-backup.service: exposure $exposure"
fi

mkdir -p "$tmp/root/etc"
if timeout 60 systemd-sysusers --root="$tmp/root" "$ROOST_ROOT/systemd/roost.sysusers" >/dev/null 2>&1 &&
    grep -q '^roost:x:[0-9]*:[0-9]*:roost XMPP server:/var/lib/roost:/usr/sbin/nologin$' "$tmp/root/etc/passwd"; then
    log "roost.sysusers creates user roost"
else
    log "FAIL: roost.sysusers did not create user roost"
    status=1
fi

for s in systemd/*.sh; do
    bash -n "$s" || status=1
done
if command -v shellcheck >/dev/null; then
    shellcheck -x systemd/*.sh || status=1
fi
exit $status
