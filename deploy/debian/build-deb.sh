#!/usr/bin/env bash
# Packs an already built cutoff binary into a .deb: the binary is used as it
# is, never rebuilt, so the package holds exactly what was tested.
#
#   deploy/debian/build-deb.sh BINARY ARCH OUTDIR
#   deploy/debian/build-deb.sh target/release/cutoff amd64 target/dist
#
# ARCH is the Debian architecture: amd64, arm64 or armhf. Writes
# OUTDIR/cutoff_<version>-1_<ARCH>.deb (version from Cargo.toml) and prints
# its path. Depends are read off the binary's ELF header (NEEDED libraries and
# the newest GLIBC_/GCC_ symbol version), so a cross-built binary needs no
# foreign-architecture libraries installed. Needs dpkg-deb, and objdump for
# ARCH (binutils, or the cross binutils that come with gcc-aarch64-linux-gnu /
# gcc-arm-linux-gnueabihf). Check the result with
#   deploy/debian/check-deb.sh OUTDIR/cutoff_*.deb
set -euo pipefail

[[ $# -eq 3 ]] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
binary=$1 arch=$2 out=$3
cd "$(dirname "$0")/../.."
[[ -x $binary ]] || { echo "no executable at $binary" >&2; exit 1; }

case "$arch" in
    amd64) objdump=objdump ;;
    arm64) objdump=aarch64-linux-gnu-objdump ;;
    armhf) objdump=arm-linux-gnueabihf-objdump ;;
    *) echo "unsupported architecture: $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
esac
command -v "$objdump" >/dev/null || { echo "$objdump not found" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
debver="$version-1"

# Depends from the ELF: each NEEDED library maps to its Debian package, at
# the newest symbol version the binary asks for.
header=$("$objdump" -p "$binary")
symbols=$("$objdump" -T "$binary" 2>/dev/null || true)
floor() { grep -o "$1[0-9.]*" <<<"$symbols" | sed "s/^$1//" | sort -uV | tail -1; }
depends=()
for lib in $(awk '$1 == "NEEDED" {print $2}' <<<"$header"); do
    case "$lib" in
        libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | ld-linux*)
            dep="libc6 (>= $(floor GLIBC_))" ;;
        libgcc_s.so.1)
            v=$(floor GCC_); dep="libgcc-s1 (>= ${v:-3.0})" ;;
        *) echo "$binary needs $lib, which this script does not map to a package" >&2; exit 1 ;;
    esac
    [[ " ${depends[*]} " == *" $dep "* ]] || depends+=("$dep")
done
depends_line=$(printf '%s\n' "${depends[@]}" | sort | paste -sd, - | sed 's/,/, /g')

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/etc/cutoff" "$root/etc/logrotate.d" "$root/usr/share/doc/cutoff/examples"
install -m 755 "$binary" "$root/usr/bin/cutoff"
install -m 644 deploy/systemd/cutoff.service "$root/lib/systemd/system/cutoff.service"
install -m 644 deploy/cutoff.yaml "$root/etc/cutoff/cutoff.yaml"
install -m 644 deploy/systemd/cutoff.logrotate "$root/etc/logrotate.d/cutoff"
install -m 644 README.md docs/*.md "$root/usr/share/doc/cutoff/"
gzip -9n <CHANGELOG.md >"$root/usr/share/doc/cutoff/changelog.gz"
install -m 644 docs/examples/*.yaml "$root/usr/share/doc/cutoff/examples/"
cat >"$root/usr/share/doc/cutoff/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cutoff

Files: *
Copyright: 2024-2026, the cutoff authors
License: MIT or Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0. The MIT license: permission is
 granted, free of charge, to deal in the software without restriction,
 provided the copyright notice and this permission notice are included.
 The software is provided "as is", without warranty of any kind.
COPYRIGHT
# A Debian changelog dated by the last commit, so rebuilding the same
# commit gives the same package.
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'cutoff (%s) unstable; urgency=medium\n\n  * Release %s; see /usr/share/doc/cutoff/changelog.gz.\n\n -- cutoff maintainers <cutoff@example.org>  %s\n' \
    "$debver" "$version" "$when" | gzip -9n >"$root/usr/share/doc/cutoff/changelog.Debian.gz"

install -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
printf '/etc/cutoff/cutoff.yaml\n/etc/logrotate.d/cutoff\n' >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
    echo "Package: cutoff"
    echo "Version: $debver"
    echo "Architecture: $arch"
    echo "Maintainer: cutoff maintainers <cutoff@example.org>"
    echo "Installed-Size: $size"
    [[ -n $depends_line ]] && echo "Depends: $depends_line"
    echo "Section: net"
    echo "Priority: optional"
    echo "Homepage: https://example.org/cutoff"
    echo "Description: DNS sinkhole that blocks or logs Kaspersky lookups per network"
    fold -s -w 72 <<'LONG' | sed 's/^/ /; s/ *$//'
cutoff answers DNS for a network. For the names of Kaspersky's update, telemetry (KSN) and activation services it blocks or only logs the lookup, per client network, from dated cut-offs onward (no updates or KSN from 2024-09-29); everything else is forwarded to upstream resolvers. The package installs a hardened systemd service that answers on port 53 with only CAP_NET_BIND_SERVICE and refuses clients outside loopback and the private ranges.
LONG
} >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/cutoff_${debver}_${arch}.deb"
# DEB_COMPRESS: dpkg-deb's compression options (the tests use a fast one).
# shellcheck disable=SC2086
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) \
    dpkg-deb --root-owner-group ${DEB_COMPRESS:--Zxz} --build "$root" "$deb" >/dev/null
echo "$deb"
