#!/usr/bin/env bash
# Checks built packages: dpkg-deb can read each, it holds the files the
# package must have (binary, unit, conffiles, docs) with the right modes, the
# binary is for the package's architecture, and lintian reports no error or
# warning except the tags listed below with the reason they are accepted.
#
#   deploy/debian/check-deb.sh target/dist/cutoff_*.deb
set -euo pipefail

# Accepted lintian tags:
#   no-manual-page                `cutoff --help` and /usr/share/doc/cutoff are the manual
#   initial-upload-closes-no-bugs not uploaded to Debian; no bug to close
ACCEPTED=no-manual-page,initial-upload-closes-no-bugs

[[ $# -gt 0 ]] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
failed=0
for deb in "$@"; do
    fail() { echo "FAIL $deb: $*" >&2; failed=1; }
    info=$(dpkg-deb --info "$deb") || { fail "dpkg-deb --info"; continue; }
    contents=$(dpkg-deb --contents "$deb") || { fail "dpkg-deb --contents"; continue; }
    arch=$(dpkg-deb --field "$deb" Architecture)
    for want in '-rwxr-xr-x root/root .* ./usr/bin/cutoff$' \
        '-rw-r--r-- root/root .* ./lib/systemd/system/cutoff.service$' \
        '-rw-r--r-- root/root .* ./etc/cutoff/cutoff.yaml$' \
        '-rw-r--r-- root/root .* ./etc/logrotate.d/cutoff$' \
        '-rw-r--r-- root/root .* ./usr/share/doc/cutoff/copyright$' \
        '-rw-r--r-- root/root .* ./usr/share/doc/cutoff/configuration.md$'; do
        grep -q -- "$want" <<<"$contents" || fail "no file matching '$want'"
    done
    for conf in /etc/cutoff/cutoff.yaml /etc/logrotate.d/cutoff; do
        dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx "$conf" || fail "$conf is not a conffile"
    done
    grep -q '^ Depends: .*libc6 (>= 2\.' <<<"$info" || fail "no Depends on libc6"
    # The binary inside is for the package's architecture.
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/bin/cutoff
    machine=$(od -An -t x2 -j 18 -N 2 "$tmp/usr/bin/cutoff" | tr -d ' ')
    rm -rf "$tmp"
    case "$arch:$machine" in
        amd64:003e | arm64:00b7 | armhf:0028) ;;
        *) fail "Architecture $arch but ELF machine 0x$machine" ;;
    esac
    if command -v lintian >/dev/null; then
        # lintian warns that it runs as root (CI does); the tags are what counts.
        lintian --fail-on error,warning --suppress-tags "$ACCEPTED" "$deb" 2>/dev/null \
            || fail "lintian: $(lintian --suppress-tags "$ACCEPTED" "$deb" 2>/dev/null | tr '\n' ' ')"
    else
        fail "lintian is not installed (apt-get install lintian)"
    fi
    [[ $failed -eq 0 ]] && echo "ok   $deb ($arch, $(grep '^ Depends:' <<<"$info" | sed 's/^ //'))"
done
exit "$failed"
