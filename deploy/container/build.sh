#!/usr/bin/env bash
# Builds the cutoff container image for amd64 and arm64 FROM scratch, offline,
# checks each one, and joins them in one multi-arch manifest.
#
#   deploy/container/build.sh [--tag NAME:TAG] [--arch amd64|arm64]... [--no-build]
#                             [--no-check] [--storage DIR]
#
#   --tag NAME:TAG  the manifest's name (default localhost/cutoff:<version>);
#                   the images are NAME:TAG-amd64 and NAME:TAG-arm64
#   --arch A        only this architecture (repeatable; default both)
#   --no-build      take the static binaries already in target/ (CI: release.sh
#                   built and smoke-tested them a step before)
#   --no-check      build only
#   --storage DIR   podman storage of its own under DIR (vfs driver), so a CI
#                   run leaves nothing in the machine's image store
#
# 1. Binaries: deploy/raspberry-pi/build.sh builds and smoke-tests
#    x86_64-unknown-linux-musl and aarch64-unknown-linux-musl (static, so the
#    image needs no C library).
# 2. Images: a context directory with only what deploy/container/Containerfile
#    copies, built with `--pull=never --network none` (no build can reach a
#    registry), `--no-cache` (podman 4.3 reuses a cached LABEL whose build
#    argument changed; the build is a few copies anyway) and the commit's time
#    as the image time (reproducible ids).
# 3. Checks, per image (root, as CI runs):
#    - `podman image inspect`: architecture, user 65532:65532, the ports
#      53/udp 53/tcp 853/tcp 443/tcp 9153/tcp, entrypoint, command and the OCI labels;
#    - its size is under 10 MB (10,000,000 bytes);
#    - from the mounted root file system (`podman image mount`; arm64 under
#      qemu-aarch64-static): `cutoff --version`, and `cutoff check` of the
#      image's own /etc/cutoff/cutoff.yaml;
#    - in a network and mount namespace of its own (unshare -n -m), the root
#      file system bind-mounted read-only where uid 65532 can reach it: dnsmasq on
#      127.0.0.1:5300 is the upstream; `cutoff serve` with the image's config
#      runs as uid 65532 with CAP_NET_BIND_SERVICE as its only capability on
#      port 53 and answers s05.upd.kaspersky.com with NXDOMAIN and EDE 15
#      (the name never reaches dnsmasq, whose query log is read) and
#      example.com with dnsmasq's address; its query log (stdout) records the
#      block; SIGTERM stops it with status 0. Without the capability, the same
#      command must fail to bind port 53 (the capability is what lets it).
# 4. `podman manifest` NAME:TAG holding both images (checked: one per architecture).
# Then a summary: image, size. Exit status 0 when everything passed.
set -euo pipefail

cd "$(dirname "$0")/../.."
[[ -f Cargo.toml && -f deploy/container/Containerfile ]] || { echo "run from the cutoff source tree" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

declare -A TRIPLE=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)
declare -A QEMU=([amd64]="" [arm64]=qemu-aarch64-static)
MAX_BYTES=10000000
BLOCKED=s05.upd.kaspersky.com
ALLOWED=example.com
ALLOWED_ADDR=192.0.2.53

# ------------------------------------------------ inside the namespace
# `build.sh --serve-check ARCH ROOTFS WORK`, run by `unshare -n -m` below: a
# network namespace with only loopback, so port 53 is free and nothing leaves,
# and a mount namespace for the bind mount.
serve_check() {
    local arch=$1 rootfs=$3/rootfs work=$3 pid up out i status
    ip link set lo up
    # podman's storage is root's alone (0700): uid 65532 reaches the image's
    # files through a read-only bind mount, in this mount namespace only.
    mkdir "$rootfs"
    mount --bind "$2" "$rootfs"
    mount -o remount,bind,ro "$rootfs"
    local run=()
    [[ -n ${QEMU[$arch]} ]] && run=("${QEMU[$arch]}")
    run+=("$rootfs/usr/bin/cutoff" serve --config "$rootfs/etc/cutoff/cutoff.yaml" --upstream udp://127.0.0.1:5300)
    # Only CAP_NET_BIND_SERVICE: in the bounding, inheritable and ambient
    # sets, so it survives the exec as uid 65532; every other one is gone.
    local user=(setpriv --reuid 65532 --regid 65532 --clear-groups)
    local caps=(--inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service
        --bounding-set=-all,+net_bind_service)

    # The control: the same command without the capability cannot bind 53.
    if timeout 60 "${user[@]}" --inh-caps=-all --bounding-set=-all "${run[@]}" \
        >"$work/nocap.out" 2>"$work/nocap.err"; then
        fail "$arch: serve without CAP_NET_BIND_SERVICE exited 0"
    fi
    grep -qi 'permission denied' "$work/nocap.err" \
        || fail "$arch: serve without the capability failed for another reason: $(tail -3 "$work/nocap.err")"

    dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
        --user=root --pid-file="$work/dnsmasq.pid" --listen-address=127.0.0.1 \
        --bind-interfaces --port=5300 --address="/$ALLOWED/$ALLOWED_ADDR" \
        --log-queries --log-facility="$work/dnsmasq.log" &
    up=$!
    # dnsmasq answers (REFUSED: it has no upstream) once it is bound.
    for ((i = 0; i < 30; i++)); do
        dig @127.0.0.1 -p 5300 ready.invalid A +time=1 +tries=1 2>&1 | grep -q 'status:' && break
        sleep 0.2
    done
    timeout 120 "${user[@]}" "${caps[@]}" "${run[@]}" >"$work/serve.out" 2>"$work/serve.err" &
    pid=$!
    out=""
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        out=$(dig @127.0.0.1 -p 53 "$BLOCKED" A +time=1 +tries=1 2>&1 || true)
        grep -q 'status:' <<<"$out" && break
        sleep 1
    done
    status=ok
    if ! grep -q 'status: NXDOMAIN' <<<"$out" || ! grep -q 'EDE: 15' <<<"$out"; then
        status="blocked $BLOCKED: expected NXDOMAIN and EDE 15; dig: $(grep -E 'status:|EDE|timed out' <<<"$out" | tr '\n' ' ') serve: $(tail -3 "$work/serve.err" | tr '\n' ' ')"
    else
        out=$(dig @127.0.0.1 -p 53 "$ALLOWED" A +short +time=5 +tries=1 2>&1 || true)
        [[ $out == "$ALLOWED_ADDR" ]] || status="allowed $ALLOWED: expected $ALLOWED_ADDR from dnsmasq; dig: $out"
    fi
    # What the kernel says of the running server (timeout's child): its uid
    # and its effective capabilities (bit 10 = CAP_NET_BIND_SERVICE alone).
    local child ids
    child=$(pgrep -P "$pid" | head -1 || true)
    if [[ $status == ok ]]; then
        ids=$(grep -E '^(Uid|CapEff):' "/proc/${child:-0}/status" 2>/dev/null | tr -s '\t ' ' ' | tr '\n' ' ' || true)
        [[ $ids == "Uid: 65532 65532 65532 65532 CapEff: 0000000000000400 " ]] \
            || status="the server runs with '$ids', expected uid 65532 and CapEff 0000000000000400"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local rc=0
    wait "$pid" || rc=$?
    kill -TERM "$up" 2>/dev/null || true
    wait "$up" 2>/dev/null || true
    [[ $status == ok ]] || fail "$arch: $status"
    [[ $rc -eq 0 ]] || fail "$arch: serve exited $rc after SIGTERM: $(tail -3 "$work/serve.err" | tr '\n' ' ')"
    grep -q "query\[A\] $ALLOWED from 127.0.0.1" "$work/dnsmasq.log" || fail "$arch: dnsmasq never saw $ALLOWED"
    ! grep -q "$BLOCKED" "$work/dnsmasq.log" || fail "$arch: the blocked name reached the upstream"
    grep "\"$BLOCKED\"" "$work/serve.out" | grep -q '"block"' \
        || fail "$arch: no query-log record of the block on stdout: $(head -c 300 "$work/serve.out")"
}
if [[ ${1:-} == --serve-check ]]; then
    shift
    serve_check "$@"
    exit 0
fi

# ------------------------------------------------ options
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
tag=localhost/cutoff:$version
arches=()
build=1
check=1
podman=(podman)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) tag=$2; shift ;;
        --arch) [[ -n ${TRIPLE[$2]:-} ]] || { echo "unknown arch: $2 (amd64, arm64)" >&2; exit 2; }
            arches+=("$2"); shift ;;
        --no-build) build=0 ;;
        --no-check) check=0 ;;
        --storage) mkdir -p "$2"; d=$(cd "$2" && pwd)
            podman=(podman --storage-driver vfs --root "$d/root" --runroot "$d/run"); shift ;;
        --help | -h) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' deploy/container/build.sh; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64)
[[ $tag == *:* ]] || { echo "--tag needs NAME:TAG" >&2; exit 2; }

missing=()
for c in podman git; do command -v "$c" >/dev/null || missing+=("$c"); done
if [[ $check -eq 1 ]]; then
    for c in unshare setpriv mount ip pgrep dig dnsmasq; do command -v "$c" >/dev/null || missing+=("$c"); done
    for a in "${arches[@]}"; do
        [[ -z ${QEMU[$a]} ]] || command -v "${QEMU[$a]}" >/dev/null || missing+=("${QEMU[$a]}")
    done
fi
[[ ${#missing[@]} -eq 0 ]] || fail "missing: ${missing[*]} (bash .ci/setup installs them)"

target_dir=${CARGO_TARGET_DIR:-target}
if [[ $build -eq 1 ]]; then
    triples=()
    for a in "${arches[@]}"; do triples+=("${TRIPLE[$a]}"); done
    log "build and smoke-test ${triples[*]}"
    deploy/raspberry-pi/build.sh --no-setup "${triples[@]}"
fi

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain 2>/dev/null) ]] || revision=$revision-dirty
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
source=${CUTOFF_SOURCE_URL:-https://example.org/cutoff}
work=$(mktemp -d "${TMPDIR:-/tmp}/cutoff-image.XXXXXX")
chmod 755 "$work" # uid 65532 runs the image's binary from under it
mounted=()
cleanup() {
    local i
    for i in "${mounted[@]}"; do "${podman[@]}" image unmount "$i" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------ checks of one image
inspect() { "${podman[@]}" image inspect --format "$2" "$1"; }
expect() { # $1 image, $2 what, $3 format, $4 expected
    local got
    got=$(inspect "$1" "$3")
    [[ $got == "$4" ]] || fail "$1: $2 is '$got', expected '$4'"
}
check_image() { # $1 arch, $2 image
    local arch=$1 image=$2 size rootfs l run=()
    expect "$image" architecture '{{.Architecture}}' "$arch"
    expect "$image" user '{{.Config.User}}' 65532:65532
    expect "$image" entrypoint '{{json .Config.Entrypoint}}' '["/usr/bin/cutoff"]'
    expect "$image" command '{{json .Config.Cmd}}' '["serve","--config","/etc/cutoff/cutoff.yaml"]'
    expect "$image" ports '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' '443/tcp 53/tcp 53/udp 853/tcp 9153/tcp '
    expect "$image" 'label version' '{{index .Labels "org.opencontainers.image.version"}}' "$version"
    expect "$image" 'label revision' '{{index .Labels "org.opencontainers.image.revision"}}' "$revision"
    expect "$image" 'label licenses' '{{index .Labels "org.opencontainers.image.licenses"}}' 'MIT OR Apache-2.0'
    expect "$image" 'label source' '{{index .Labels "org.opencontainers.image.source"}}' "$source"
    size=$(inspect "$image" '{{.Size}}')
    [[ $size -lt $MAX_BYTES ]] || fail "$image: $size bytes, the limit is $MAX_BYTES"
    SIZE[$arch]=$size

    rootfs=$("${podman[@]}" image mount "$image")
    mounted+=("$image")
    for l in /usr/bin/cutoff /etc/cutoff/cutoff.yaml /etc/passwd /etc/group; do
        [[ -e $rootfs$l ]] || fail "$image: no $l"
    done
    [[ $(stat -c %u:%g "$rootfs/var/lib/cutoff") == 65532:65532 ]] || fail "$image: /var/lib/cutoff is not 65532's"
    [[ -n ${QEMU[$arch]} ]] && run=("${QEMU[$arch]}")
    run+=("$rootfs/usr/bin/cutoff")
    timeout 60 "${run[@]}" --version | grep -q "$version" || fail "$image: cutoff --version"
    timeout 60 "${run[@]}" check --config "$rootfs/etc/cutoff/cutoff.yaml" >"$work/check.$arch" 2>&1 \
        || fail "$image: cutoff check of the image's config: $(tail -5 "$work/check.$arch")"
    mkdir -p -m 755 "$work/ns.$arch"
    log "$image: serve on port 53 as 65532 with CAP_NET_BIND_SERVICE only, in a network namespace"
    unshare -n -m -- deploy/container/build.sh --serve-check "$arch" "$rootfs" "$work/ns.$arch"
}

# ------------------------------------------------ build
declare -A SIZE
images=()
for a in "${arches[@]}"; do
    bin=$target_dir/${TRIPLE[$a]}/release/cutoff
    [[ -x $bin ]] || fail "no $bin (build it: deploy/raspberry-pi/build.sh ${TRIPLE[$a]})"
    ctx=$work/ctx.$a
    mkdir -p "$ctx/empty"
    install -m 755 "$bin" "$ctx/cutoff"
    install -m 644 deploy/container/cutoff.yaml deploy/container/rootfs/etc/passwd \
        deploy/container/rootfs/etc/group "$ctx/"
    image=$tag-$a
    log "podman build $image (linux/$a, offline)"
    "${podman[@]}" build --quiet --no-cache --pull=never --network none --platform "linux/$a" \
        --timestamp "$epoch" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        --build-arg SOURCE="$source" -f deploy/container/Containerfile -t "$image" "$ctx" >/dev/null
    images+=("$image")
    if [[ $check -eq 1 ]]; then
        check_image "$a" "$image"
    else
        SIZE[$a]=$(inspect "$image" '{{.Size}}')
    fi
done

# Earlier builds' images, now untagged, in a storage of this script's own.
[[ ${#podman[@]} -eq 1 ]] || "${podman[@]}" image prune -f >/dev/null 2>&1 || true

# ------------------------------------------------ manifest
if "${podman[@]}" manifest exists "$tag" 2>/dev/null; then "${podman[@]}" manifest rm "$tag" >/dev/null; fi
"${podman[@]}" manifest create "$tag" >/dev/null
for i in "${images[@]}"; do
    "${podman[@]}" manifest add "$tag" "containers-storage:$i" >/dev/null
done
got=$("${podman[@]}" manifest inspect "$tag" | sed -n 's/.*"architecture": *"\([a-z0-9]*\)".*/\1/p' | sort | tr '\n' ' ')
want=$(printf '%s\n' "${arches[@]}" | sort | tr '\n' ' ')
[[ $got == "$want" ]] || fail "manifest $tag holds '$got', expected '$want'"
log "manifest $tag: ${images[*]}"

printf '\n%-40s %12s  %s\n' image "size (bytes)" checks
for a in "${arches[@]}"; do
    printf '%-40s %12s  %s\n' "$tag-$a" "${SIZE[$a]}" "$([[ $check -eq 1 ]] && echo ok || echo 'not run (--no-check)')"
done
