#!/usr/bin/env bash
# Builds the release set on a Debian 12 x86_64 machine:
#
#   cutoff_<version>-1_amd64.deb                      PCs, servers (Debian 12+, Ubuntu 22.04+)
#   cutoff_<version>-1_arm64.deb                      Raspberry Pi OS 64-bit (bookworm+)
#   cutoff_<version>-1_armhf.deb                      Raspberry Pi OS 32-bit (bookworm+)
#   cutoff-<version>-aarch64-unknown-linux-musl.tar.gz  static binary + unit + config, any 64-bit ARM Linux
#   cutoff-<version>-x86_64-unknown-linux-musl.tar.gz   the same for any x86_64 Linux
#   SHA256SUMS                                        sha256sum -c SHA256SUMS checks them
#
#   deploy/release.sh [--no-setup] [--out DIR]        (DIR defaults to target/dist)
#
# Each binary is built once, by deploy/raspberry-pi/build.sh (amd64 natively,
# the ARM ones with Debian's cross gcc), smoke-tested there (under qemu-user
# for ARM), and then packed as it is by deploy/debian/build-deb.sh: the
# packages hold exactly the binaries that passed. Every .deb is checked with
# dpkg-deb --info/--contents and lintian (deploy/debian/check-deb.sh).
#
# The release profile is fat LTO with one codegen unit: expect several
# minutes per target on 2 cores. CI checks the same steps faster with
#   CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 deploy/release.sh
set -euo pipefail

cd "$(dirname "$0")/.."
out=target/dist
setup=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-setup) setup=(--no-setup) ;;
        --out) out=$2; shift ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '==> %s\n' "$*" >&2; }
target_dir=${CARGO_TARGET_DIR:-target}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

# target triple -> Debian architecture (empty: a tarball, not a package).
declare -A ARCH=(
    [x86_64-unknown-linux-gnu]=amd64
    [aarch64-unknown-linux-gnu]=arm64
    [armv7-unknown-linux-gnueabihf]=armhf
    [aarch64-unknown-linux-musl]=
    [x86_64-unknown-linux-musl]=
)
# The two musl binaries are also the container images' (deploy/container/build.sh --no-build).
triples=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

log "build and smoke-test ${triples[*]}"
deploy/raspberry-pi/build.sh "${setup[@]}" "${triples[@]}"

rm -rf "$out"
mkdir -p "$out"
debs=()
for t in "${triples[@]}"; do
    bin="$target_dir/$t/release/cutoff"
    if [[ -n ${ARCH[$t]} ]]; then
        debs+=("$(deploy/debian/build-deb.sh "$bin" "${ARCH[$t]}" "$out")")
    else
        name="cutoff-$version-$t"
        stage=$(mktemp -d)
        mkdir "$stage/$name"
        install -m 755 "$bin" "$stage/$name/cutoff"
        install -m 644 deploy/systemd/cutoff.service deploy/cutoff.yaml README.md CHANGELOG.md "$stage/$name/"
        # Reproducible: fixed owner, order and times.
        tar --sort=name --owner=0 --group=0 --numeric-owner \
            --mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)" \
            -C "$stage" -czf "$out/$name.tar.gz" "$name"
        rm -rf "$stage"
    fi
done
log "check ${debs[*]}"
deploy/debian/check-deb.sh "${debs[@]}"
(cd "$out" && sha256sum -- *.deb *.tar.gz >SHA256SUMS && sha256sum --quiet -c SHA256SUMS)
log "release set in $out:"
(cd "$out" && ls -l -- *.deb *.tar.gz SHA256SUMS >&2)
