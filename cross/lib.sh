# shellcheck shell=bash
# Shared by cross/*.sh, packaging/*.sh, systemd/verify.sh and .ci/*.sh (sourced, not run):
# the ONE place where the ARM linkers, C compilers and qemu runners are set (switching between
# this environment and a .cargo/config.toml would rebuild the C code of SQLite and ring),
# plus small helpers that install missing tools from Debian, rustup and the crate registry.

ROOST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOST_ROOT
# Where cargo puts builds (CI may point CARGO_TARGET_DIR at a cache); reports and .debs
# always go to $ROOST_ROOT/target.
ROOST_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOST_ROOT/target}
export ROOST_TARGET_DIR

# The Pi targets we ship (used by the scripts that source this file).
# shellcheck disable=SC2034
ROOST_ARM_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# Prefix of the GNU cross tools for a Rust target triple ("" for the host).
gnu_prefix() {
    case "$1" in
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu- ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf- ;;
    x86_64-unknown-linux-gnu) echo "" ;;
    *)
        echo "unsupported target: $1" >&2
        return 1
        ;;
    esac
}

# Debian architecture of a Rust target triple.
deb_arch() {
    case "$1" in
    aarch64-unknown-linux-gnu) echo arm64 ;;
    armv7-unknown-linux-gnueabihf) echo armhf ;;
    x86_64-unknown-linux-gnu) echo amd64 ;;
    *)
        echo "unsupported target: $1" >&2
        return 1
        ;;
    esac
}

# Linker and C compiler per target (cargo reads CARGO_TARGET_<TRIPLE>_LINKER, the cc crate
# CC_<triple>/AR_<triple>), and the qemu user-mode runner used by `cargo test --target`.
# They apply only when building for that target, so they are harmless for native builds.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar
# Pi 3/4 (Cortex-A53/A72, 64-bit OS) and Pi 2 (Cortex-A7, 32-bit OS): test on the oldest core.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm -cpu cortex-a7 -L /usr/arm-linux-gnueabihf"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}

# Installs the Debian packages that are not installed yet (one `apt-get update` per process).
ROOST_APT_UPDATED=${ROOST_APT_UPDATED:-}
need_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ -z "$ROOST_APT_UPDATED" ]; then
        timeout 600 apt-get update -q >/dev/null
        ROOST_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 1200 \
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# Rust standard library for a target.
need_rust_target() {
    rustup target list --installed | grep -qx "$1" || timeout 600 rustup target add "$1"
}

# The triple rustc builds for by default (on a Pi: aarch64-unknown-linux-gnu or
# armv7-unknown-linux-gnueabihf).
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}

# Cross compiler, libc and binutils (objdump, strip) for a target; the native ones when the
# target is the host's (building on the Pi itself: Debian's native binutils and gcc also
# answer to the triplet-prefixed names, e.g. aarch64-linux-gnu-objdump).
need_cross_toolchain() {
    if [ "$1" = "$(host_triple)" ]; then
        need_apt gcc libc6-dev binutils
        need_rust_target "$1"
        return 0
    fi
    case "$1" in
    aarch64-unknown-linux-gnu) need_apt gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) need_apt gcc-arm-linux-gnueabihf libc6-dev-armhf-cross binutils-arm-linux-gnueabihf ;;
    x86_64-unknown-linux-gnu) need_apt gcc libc6-dev binutils ;;
    esac
    need_rust_target "$1"
}

# A cargo subcommand from the crate registry, pinned by version for reproducible CI.
need_cargo_tool() { # need_cargo_tool CRATE VERSION (a `cargo-X` crate, run as `cargo X`)
    local have
    have=$(cargo "${1#cargo-}" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1 || true)
    [ "$have" = "$2" ] && return 0
    log "cargo install $1@$2"
    timeout 1800 cargo install --locked --quiet "$1" --version "$2"
}

# Highest GLIBC_x.y symbol version a binary needs (empty when it needs none).
glibc_needed() { # glibc_needed TARGET BINARY
    local prefix
    prefix=$(gnu_prefix "$1")
    "${prefix}objdump" -T "$2" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

# True when version $1 <= version $2.
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

# Times a step: `step NAME command...`; prints the duration, keeps a summary line.
ROOST_TIMINGS=${ROOST_TIMINGS:-}
step() {
    local name=$1 start rc=0
    shift
    start=$(date +%s)
    log "=== $name"
    "$@" || rc=$?
    local took=$(($(date +%s) - start))
    log "=== $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)") in ${took}s"
    ROOST_TIMINGS+=$(printf '%-28s %5ss %s' "$name" "$took" "$([ $rc -eq 0 ] && echo ok || echo FAILED)")$'\n'
    return $rc
}
