#!/usr/bin/env bash
# Debian packages of roost from the release builds, with cargo-deb (`--target T --no-build`):
#
#   cross/build.sh x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
#   packaging/build-debs.sh            # → target/debian/roost_<version>-1_{amd64,arm64,armhf}.deb
#   packaging/build-debs.sh aarch64-unknown-linux-gnu
#
# Metadata: [package.metadata.deb] in Cargo.toml; units, sysusers file and /etc/default/roost
# under systemd/. Before packaging, checks that each binary needs no library beyond libc6
# and libgcc-s1 and no GLIBC symbol newer than the libc6 version in the Depends line (which
# is written by hand: cargo-deb's $auto would pin the build host's libc6). After, checks the
# package: architecture, Depends, conffile, units, and the user/enable/start maintainer code.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "$0")/../cross/lib.sh"
cd "$ROOST_ROOT"

CARGO_DEB_VERSION=3.8.0
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-gnu "${ROOST_ARM_TARGETS[@]}")

need_cargo_tool cargo-deb "$CARGO_DEB_VERSION"
need_apt dpkg-dev

# The libc6 version our Depends promises, e.g. 2.34.
depends=$(sed -n 's/^depends = "\(.*\)"$/\1/p' Cargo.toml)
libc_min=$(printf '%s\n' "$depends" | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
[ -n "$libc_min" ] || die "no 'libc6 (>= x.y)' in [package.metadata.deb] depends of Cargo.toml"

mkdir -p target/debian
for t in "${targets[@]}"; do
    arch=$(deb_arch "$t")
    prefix=$(gnu_prefix "$t")
    need_cross_toolchain "$t"
    bin="$ROOST_TARGET_DIR/$t/release/roost"
    [ -x "$bin" ] || die "$bin is missing: run cross/build.sh $t first"

    needed=$("${prefix}objdump" -p "$bin" | awk '$1 == "NEEDED" { print $2 }' | sort | tr '\n' ' ')
    for lib in $needed; do
        case "$lib" in
        libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux*) ;;
        *) die "$bin needs $lib, which the Depends line does not cover" ;;
        esac
    done
    glibc=$(glibc_needed "$t" "$bin")
    version_le "${glibc:-0}" "$libc_min" || die "$bin needs GLIBC_$glibc but Depends says libc6 (>= $libc_min)"
    "${prefix}objdump" -h "$bin" | grep -q '\.symtab' && log "warning: $bin is not stripped"

    log "cargo deb --target $t --no-build ($arch; needs $needed; GLIBC_$glibc)"
    # --no-strip: the release profile strips already, and cargo-deb would run the host's strip.
    deb=$(timeout 600 cargo deb --target "$t" --no-build --no-strip --output target/debian/ | tail -1)
    [ -f "$deb" ] || die "cargo deb produced no package for $t"

    # What dpkg will see.
    info=$(dpkg-deb --info "$deb")
    files=$(dpkg-deb --contents "$deb")
    ctl=$(mktemp -d)
    dpkg-deb --control "$deb" "$ctl"
    grep -qx " Architecture: $arch" <<<"$info" || die "$deb: architecture is not $arch"
    grep -qF " Depends: $depends" <<<"$info" || die "$deb: Depends is not the hand-written one"
    grep -qx /etc/default/roost "$ctl/conffiles" || die "$deb: /etc/default/roost is not a conffile"
    for f in ./usr/bin/roost ./usr/lib/systemd/system/roost.service ./usr/lib/sysusers.d/roost.conf \
        ./etc/default/roost ./usr/share/roost/certbot-deploy-hook.sh \
        ./usr/lib/systemd/system/roost-backup.service ./usr/lib/systemd/system/roost-backup.timer; do
        grep -q " $f\$" <<<"$files" || die "$deb lacks $f"
    done
    grep -q 'systemd-sysusers.*roost.conf' "$ctl/postinst" || die "$deb: postinst does not create the user"
    grep -q 'deb-systemd-helper.*enable roost.service' "$ctl/postinst" || die "$deb: postinst does not enable roost.service"
    # The backup timer ships off (Cargo.toml: enable = false, start = false): the postinst
    # never starts it, and enables it again on an upgrade only where the admin had enabled
    # it (debhelper's --no-enable snippet, guarded by "debian-installed").
    ! grep -q 'deb-systemd-invoke.*roost-backup' "$ctl/postinst" || die "$deb: postinst starts the backup timer, which is off by default"
    if grep -q 'enable roost-backup' "$ctl/postinst"; then
        grep -q 'debian-installed roost-backup.timer' "$ctl/postinst" ||
            die "$deb: postinst enables the backup timer on installation, which is off by default"
    fi
    rm -rf "$ctl"
    echo "$(basename "$deb") $(stat -c %s "$deb") bytes" | tee -a target/pi-report/debs.txt
done
