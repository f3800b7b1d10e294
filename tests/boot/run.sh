#!/usr/bin/env bash
# Boot test: a real systemd (Debian bookworm, in systemd-nspawn) installs the roost .deb and
# runs tests/boot/inside.sh as a oneshot unit: service active as user roost after install,
# /etc/default/roost honoured, `roost adduser`, SASL PLAIN logins over direct TLS and
# STARTTLS, the certbot deploy hook installs a certificate that roost then serves, a renewal
# + `systemctl reload` serves the new one from the same process, `systemctl stop` is clean.
#
#   tests/boot/run.sh [--placeholder] [PATH/TO/roost_*_amd64.deb]
#
# --placeholder swaps /usr/bin/roost for tests/boot/placeholder-roost.py after installing
# the package (until the server is merged: it tests the unit, the package and the client).
# The debootstrap root is cached as /var/cache/roost-ci/bookworm-root.tar (ROOST_CI_CACHE),
# rebuilt when its recipe changes. The container has only a loopback network
# (--private-network). Everything is bounded: debootstrap 15 min, the boot ROOST_BOOT_TIMEOUT
# (300 s). Results: target/pi-report/boot/ (results.txt, roost journal, console log).
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/../../cross/lib.sh"
cd "$ROOST_ROOT"

placeholder=
deb=
for arg in "$@"; do
    case "$arg" in
    --placeholder) placeholder=1 ;;
    -*) die "unknown option $arg" ;;
    *) deb=$arg ;;
    esac
done
if [ -z "$deb" ]; then
    deb=$(find target/debian -name 'roost_*_amd64.deb' 2>/dev/null | sort -V | tail -1)
fi
[ -f "${deb:-}" ] || die "no amd64 .deb: run packaging/build-debs.sh x86_64-unknown-linux-gnu first"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, systemd-nspawn)"

need_apt debootstrap systemd-container openssl

cache=${ROOST_CI_CACHE:-/var/cache/roost-ci}
mirror=${ROOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
include=systemd,systemd-sysv,dbus,procps,python3,libgcc-s1
recipe="v1 bookworm minbase $include"
tarball=$cache/bookworm-root.tar

work=$(mktemp -d /var/tmp/roost-boot.XXXXXX)
cleanup() {
    if [ -n "${ROOST_BOOT_KEEP:-}" ]; then
        log "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

if [ ! -f "$tarball" ] || [ "$(cat "$cache/bookworm-root.recipe" 2>/dev/null)" != "$recipe" ]; then
    log "debootstrap bookworm ($include) → $tarball"
    mkdir -p "$cache" "$work/new"
    timeout 900 debootstrap --variant=minbase --include="$include" bookworm "$work/new" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        die "debootstrap failed"
    }
    rm -rf "$work/new/var/cache/apt/archives/"*.deb "$work/new/var/lib/apt/lists/"*
    echo roost-boot >"$work/new/etc/hostname"
    : >"$work/new/etc/machine-id"
    tar -C "$work/new" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "$recipe" >"$cache/bookworm-root.recipe"
    rm -rf "$work/new"
fi

root=$work/root
mkdir -p "$root" "$work/srv/boot-test" "$work/results"
tar -C "$root" -xf "$tarball"

# The test unit, started once multi-user.target is reached; it powers the container off.
cat >"$root/etc/systemd/system/roost-boot-test.service" <<'EOF'
[Unit]
Description=roost boot test (tests/boot/inside.sh)
After=multi-user.target

[Service]
Type=oneshot
EnvironmentFile=-/srv/boot-test/env
ExecStart=/bin/bash /srv/boot-test/inside.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=600

[Install]
WantedBy=multi-user.target
EOF
ln -s ../roost-boot-test.service "$root/etc/systemd/system/multi-user.target.wants/roost-boot-test.service"
# No login prompt on the console pipe.
ln -sf /dev/null "$root/etc/systemd/system/console-getty.service"

cp "$deb" "$work/srv/roost.deb"
cp tests/boot/inside.sh tests/boot/xmpp_login.py tests/boot/placeholder-roost.py "$work/srv/boot-test/"
[ -z "$placeholder" ] || echo ROOST_BOOT_PLACEHOLDER=1 >"$work/srv/boot-test/env"
# Two throwaway certificates for boot.test, standing for Let's Encrypt's before and after a
# renewal (the certbot hook and SIGHUP reload checks).
for c in a b; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=boot.test -addext subjectAltName=DNS:boot.test \
        -keyout "$work/srv/boot-test/key-$c.pem" -out "$work/srv/boot-test/cert-$c.pem" 2>/dev/null
done
chmod -R a+rX "$work/srv"

log "booting $(basename "$deb") in systemd-nspawn${placeholder:+ (placeholder server)}"
rc=0
timeout --kill-after=15 "${ROOST_BOOT_TIMEOUT:-300}" systemd-nspawn --quiet -D "$root" \
    --boot --register=no --keep-unit --console=pipe --private-network \
    --bind-ro="$work/srv:/srv" --bind="$work/results:/results" \
    >"$work/results/console.log" 2>&1 </dev/null || rc=$?

mkdir -p target/pi-report/boot
cp "$work/results/"* target/pi-report/boot/ 2>/dev/null || true
results=$work/results/results.txt
if [ -f "$results" ]; then
    cat "$results"
else
    tail -30 "$work/results/console.log" >&2
fi
[ $rc -eq 0 ] || die "systemd-nspawn exited $rc (124: timed out); console: target/pi-report/boot/console.log"
if [ ! -f "$results" ] || [ "$(tail -1 "$results")" != DONE ]; then
    die "the test unit did not finish"
fi
if grep -q '^FAIL' "$results"; then
    log "journal of roost.service: target/pi-report/boot/roost-journal.txt"
    die "$(grep -c '^FAIL' "$results") boot check(s) failed"
fi
passed=$(grep -c '^PASS' "$results")
log "boot test: $passed checks passed"
echo "boot: $passed passed, 0 failed"
