#!/usr/bin/env bash
# Release builds of roost for the Raspberry Pi (and amd64) on a Debian host, without Docker.
#
#   cross/build.sh                       # aarch64 + armv7, for Debian 12 / Pi OS bookworm
#   cross/build.sh x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
#   cross/build.sh --bullseye            # aarch64 + armv7 linked against glibc 2.31 (zig)
#
# Installs what is missing (rustup targets, Debian cross gcc/libc/binutils; for --bullseye
# ziglang from PyPI and cargo-zigbuild), builds, then for each binary prints its stripped
# size and the highest GLIBC symbol version it needs, and fails when that is above the
# release's glibc (bookworm 2.36, bullseye 2.31; override with ROOST_MAX_GLIBC=x.y).
# Binaries: target/<triple>/release/roost (bullseye: target/bullseye/<triple>/release/roost;
# target/ is $CARGO_TARGET_DIR when set).
# A line per binary is appended to target/pi-report/sizes.txt.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOST_ROOT"

ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.0

release=bookworm
targets=()
for arg in "$@"; do
    case "$arg" in
    --bullseye) release=bullseye ;;
    --bookworm) release=bookworm ;;
    -h | --help)
        sed -n '2,13p' "$0"
        exit 0
        ;;
    -*) die "unknown option $arg" ;;
    *) targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ROOST_ARM_TARGETS[@]}")

case "$release" in
bookworm) max_glibc=${ROOST_MAX_GLIBC:-2.36} ;;
bullseye) max_glibc=${ROOST_MAX_GLIBC:-2.31} ;;
esac

if [ "$release" = bullseye ]; then
    # zig links against the glibc version named in the target suffix; its own `zig cc`
    # replaces the Debian cross gcc, so our linker/CC settings must not apply.
    if ! python3 -c 'import ziglang' 2>/dev/null; then
        log "pip install ziglang==$ZIGLANG_VERSION"
        timeout 600 python3 -m pip install -q "ziglang==$ZIGLANG_VERSION"
    fi
    need_cargo_tool cargo-zigbuild "$ZIGBUILD_VERSION"
    unset CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER CC_aarch64_unknown_linux_gnu AR_aarch64_unknown_linux_gnu \
        CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER CC_armv7_unknown_linux_gnueabihf AR_armv7_unknown_linux_gnueabihf
    # A separate target dir: zig's objects must not mix with (or evict) the gcc-built ones.
    export CARGO_TARGET_DIR="$ROOST_TARGET_DIR/bullseye"
fi
target_dir=${CARGO_TARGET_DIR:-$ROOST_TARGET_DIR}

mkdir -p target/pi-report
report=target/pi-report/sizes.txt
status=0
for t in "${targets[@]}"; do
    need_cross_toolchain "$t"
    start=$(date +%s)
    if [ "$release" = bullseye ]; then
        log "cargo zigbuild --release --target $t.2.31"
        timeout 3600 cargo zigbuild --release --locked --target "$t.2.31"
    else
        log "cargo build --release --target $t"
        timeout 3600 cargo build --release --locked --target "$t"
    fi
    took=$(($(date +%s) - start))
    bin="$target_dir/$t/release/roost"
    [ -x "$bin" ] || die "no binary at $bin"

    # The release profile strips already; measure a stripped copy anyway, so the number
    # stays comparable if the profile changes.
    stripped=$(mktemp)
    "$(gnu_prefix "$t")strip" -o "$stripped" "$bin"
    size=$(stat -c %s "$stripped")
    rm -f "$stripped"
    glibc=$(glibc_needed "$t" "$bin")
    line=$(printf '%-8s %-32s %8d bytes (%4s MiB) stripped  needs GLIBC_%s (max %s)  built in %ss' \
        "$release" "$t" "$size" "$(awk "BEGIN{printf \"%.2f\", $size/1048576}")" "${glibc:-none}" "$max_glibc" "$took")
    echo "$line" | tee -a "$report"
    if [ -n "$glibc" ] && ! version_le "$glibc" "$max_glibc"; then
        log "FAIL: $bin needs GLIBC_$glibc, above $max_glibc ($release)"
        status=1
    fi
done
exit $status
