#!/usr/bin/env bash
# Raspberry Pi delivery checks, in order, with the time of each step (called by .ci/run):
#   1. release builds for amd64, aarch64 and armv7, each checked for size and GLIBC (≤ 2.36)
#   2. the test suite for aarch64 and armv7 under qemu user-mode
#   3. the systemd unit: systemd-analyze verify (no output) and security (exposure ≤ 1.5)
#   4. .deb packages for amd64, arm64 and armhf (cargo-deb --no-build), checked
#   5. boot test: bookworm under systemd-nspawn installs the amd64 .deb and logs in over TLS
#   6. (ROOST_PI_BULLSEYE=1) aarch64 + armv7 builds against glibc 2.31 with cargo-zigbuild
# Installs what it needs (Debian packages, rustup targets, cargo-deb). Under CI (CI=true)
# cargo builds go to /var/cache/roost-ci/target, so repeated runs on one machine reuse the
# compiled dependencies; set CARGO_TARGET_DIR to choose another place.
# Boot test server: ROOST_BOOT_MODE=real|placeholder|auto (auto: the placeholder while
# `roost --help` does not list `serve`, i.e. until the server is merged; said loudly).
# Reports: target/pi-report/ (sizes.txt, debs.txt, exposure.txt, boot/, timings.txt).
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/../cross/lib.sh"
cd "$ROOST_ROOT"

if [ "${CI:-}" = true ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR=/var/cache/roost-ci/target
    mkdir -p "$CARGO_TARGET_DIR"
fi
ROOST_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOST_ROOT/target}
export ROOST_TARGET_DIR

rm -rf target/pi-report
mkdir -p target/pi-report
total_start=$(date +%s)
summary() {
    local rc=$?
    {
        echo "--- .ci/pi.sh timings"
        printf '%s' "$ROOST_TIMINGS"
        printf '%-28s %5ss %s\n' total "$(($(date +%s) - total_start))" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
    } | tee target/pi-report/timings.txt >&2
    cat target/pi-report/sizes.txt target/pi-report/debs.txt target/pi-report/exposure.txt 2>/dev/null >&2 || true
}
trap summary EXIT

all=(x86_64-unknown-linux-gnu "${ROOST_ARM_TARGETS[@]}")
steps_passed=0
run() {
    step "$@"
    steps_passed=$((steps_passed + 1))
}

run "release builds + glibc" cross/build.sh "${all[@]}"
run "tests under qemu" cross/test-qemu.sh
run "systemd unit checks" systemd/verify.sh
run "debian packages" packaging/build-debs.sh "${all[@]}"

mode=${ROOST_BOOT_MODE:-auto}
if [ "$mode" = auto ]; then
    # The help is read whole before it is searched: `--help | grep -q` under pipefail fails
    # when grep stops reading early (roost then dies of SIGPIPE), which silently chose the
    # placeholder for a binary that has `serve`.
    help=$("$ROOST_TARGET_DIR/x86_64-unknown-linux-gnu/release/roost" --help 2>&1 || true)
    if grep -qw serve <<<"$help"; then
        mode=real
    else
        mode=placeholder
        log "NOTE: roost has no 'serve' command yet: the boot test runs the placeholder server"
    fi
fi
boot_args=()
[ "$mode" = placeholder ] && boot_args=(--placeholder)
run "boot test ($mode)" tests/boot/run.sh "${boot_args[@]}"

if [ "${ROOST_PI_BULLSEYE:-}" = 1 ]; then
    run "bullseye builds (zig)" cross/build.sh --bullseye
fi
echo "pi: $steps_passed passed, 0 failed"
