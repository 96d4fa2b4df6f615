#!/usr/bin/env bash
# Cross-build cutoff for Raspberry Pi on a Debian 12 (bookworm) x86_64 host and
# smoke-test every binary under qemu-user.
#
#   deploy/raspberry-pi/build.sh                                   # all three targets
#   deploy/raspberry-pi/build.sh aarch64-unknown-linux-gnu         # just one
#   deploy/raspberry-pi/build.sh --no-setup armv7-unknown-linux-gnueabihf
#
# Targets:
#   aarch64-unknown-linux-gnu       Pi 3/4/5, Zero 2 W on 64-bit Raspberry Pi OS bookworm (glibc >= 2.34)
#   armv7-unknown-linux-gnueabihf   Pi 2/3/4 on 32-bit Raspberry Pi OS bookworm (glibc >= 2.34)
#   aarch64-unknown-linux-musl      any 64-bit ARM Linux, static: older OS (bullseye), other distros
#   x86_64-unknown-linux-gnu        the PC itself (not in "all"): built and smoke-tested natively,
#                                   so deploy/release.sh packages amd64 the same way
#   x86_64-unknown-linux-musl       the PC, static (not in "all"): the amd64 container image's binary
#
# Set-up (skipped with --no-setup): installs the Debian cross compilers,
# qemu-user-static and dig with apt-get when missing (needs root or sudo), and
# the rustup targets. Linkers are passed as CARGO_TARGET_<TRIPLE>_LINKER
# environment variables; nothing is written to .cargo/.
#
# Smoke test, per target, under qemu-user (bounded by timeouts):
#   1. `cutoff --version`, `cutoff check` (embedded default) and
#      `cutoff check --config deploy/cutoff.yaml` exit 0;
#   2. `cutoff serve` on 127.0.0.1:<free port> with upstream 127.0.0.1:9
#      (nothing listens there) answers a blocked name with NXDOMAIN and
#      Extended DNS Error 15 (blocked names never go upstream), and an allowed
#      name with SERVFAIL (no upstream reachable);
#   3. SIGTERM stops it with exit status 0.
# Then a summary: target, binary size, glibc floor, smoke result.
# Exit status: 0 when every requested target built and passed, 1 otherwise.
#
# Build times on a 2-core box: a few minutes per target (fat LTO). Run it
# niced when the machine is shared: `nice -n 10 deploy/raspberry-pi/build.sh`.

set -euo pipefail

ALL_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl)

usage() {
    sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'
}

setup=1
smoke=1
targets=()
for arg in "$@"; do
    case "$arg" in
        --no-setup) setup=0 ;;
        --no-smoke) smoke=0 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
        *) targets+=("$arg") ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")

# Per target: the linker / C compiler, the cross objdump, the qemu binary and
# the Debian package whose files form the glibc sysroot (none for musl).
target_info() {
    case "$1" in
        aarch64-unknown-linux-gnu)
            GCC=aarch64-linux-gnu-gcc OBJDUMP=aarch64-linux-gnu-objdump
            QEMU=qemu-aarch64-static LIBC_PKG=libc6-arm64-cross LDSO=ld-linux-aarch64.so.1
            APT_PKGS="gcc-aarch64-linux-gnu" ;;
        armv7-unknown-linux-gnueabihf)
            GCC=arm-linux-gnueabihf-gcc OBJDUMP=arm-linux-gnueabihf-objdump
            QEMU=qemu-arm-static LIBC_PKG=libc6-armhf-cross LDSO=ld-linux-armhf.so.3
            APT_PKGS="gcc-arm-linux-gnueabihf" ;;
        aarch64-unknown-linux-musl)
            # rustc links musl targets with its self-contained crt and libc;
            # the gnu cross gcc only drives the linker.
            GCC=aarch64-linux-gnu-gcc OBJDUMP=aarch64-linux-gnu-objdump
            QEMU=qemu-aarch64-static LIBC_PKG="" LDSO=""
            APT_PKGS="gcc-aarch64-linux-gnu" ;;
        x86_64-unknown-linux-gnu)
            GCC=cc OBJDUMP=objdump QEMU="" LIBC_PKG="" LDSO="" APT_PKGS="build-essential" ;;
        x86_64-unknown-linux-musl)
            # As for aarch64 musl: rustc brings musl's crt and libc, the host
            # gcc compiles ring's C code and drives the linker.
            GCC=cc OBJDUMP=objdump QEMU="" LIBC_PKG="" LDSO="" APT_PKGS="build-essential" ;;
        *)
            echo "unsupported target: $1 (supported: ${ALL_TARGETS[*]})" >&2
            return 1 ;;
    esac
}

for t in "${targets[@]}"; do target_info "$t"; done

cd "$(dirname "$0")/../.."
[[ -f Cargo.toml && -f deploy/cutoff.yaml ]] || { echo "run from the cutoff source tree" >&2; exit 1; }
TARGET_DIR=${CARGO_TARGET_DIR:-target}

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- set-up
if [[ $setup -eq 1 ]]; then
    missing=()
    for t in "${targets[@]}"; do
        target_info "$t"
        command -v "$GCC" >/dev/null || missing+=("$APT_PKGS")
        if [[ $smoke -eq 1 && -n $QEMU ]]; then
            command -v "$QEMU" >/dev/null || missing+=(qemu-user-static)
        fi
    done
    [[ $smoke -eq 1 ]] && ! command -v dig >/dev/null && missing+=(dnsutils)
    if [[ ${#missing[@]} -gt 0 ]]; then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        log "apt-get install ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    installed=$(rustup target list --installed)
    for t in "${targets[@]}"; do
        grep -qx "$t" <<<"$installed" || { log "rustup target add $t"; rustup target add "$t"; }
    done
fi

# ---------------------------------------------------------------- helpers
# A free local port (UDP and TCP): asked of the kernel with python3, or
# picked at random and checked with ss.
free_port() {
    if ! command -v python3 >/dev/null; then
        local p i
        for ((i = 0; i < 50; i++)); do
            p=$((20000 + RANDOM % 40000))
            if [[ -z $(ss -Hln "( sport = :$p )" 2>/dev/null) ]]; then echo "$p"; return; fi
        done
        return
    fi
    python3 - <<'EOF'
import socket
for _ in range(50):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    u.close(); t.close()
    print(port)
    break
EOF
}

glibc_floor() { # $1 binary
    local v
    v=$("$OBJDUMP" -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
    echo "${v:-none (static)}"
}

# The command that runs the target binary: under qemu-user (with the glibc
# sysroot for gnu targets), or directly for the host's own target.
runner() {
    RUN=()
    [[ -n $QEMU ]] && RUN=("$QEMU")
    [[ -n $SYSROOT ]] && RUN+=(-L "$SYSROOT")
    RUN+=("$BIN")
}

# Runs one command of the target binary, bounded.
run_qemu() { # $@ args to cutoff
    runner
    timeout 60 "${RUN[@]}" "$@"
}

# Stops a process of this shell by PID with SIGTERM, waits up to $2 seconds,
# then SIGKILL. Sets STOP_STATUS to the exit status (or "killed"). Not to be
# called in $(...): `wait` only works for children of this shell.
stop_pid() { # $1 pid, $2 seconds
    local pid=$1 i
    STOP_STATUS=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        STOP_STATUS=killed
        return
    fi
    wait "$pid" || STOP_STATUS=$?
}

smoke_test() { # $1 target; sets SMOKE
    local t=$1 work port hport pid out i
    work=$(mktemp -d)
    SMOKE=""
    run_qemu --version >"$work/version" 2>&1 || { SMOKE="FAIL: --version: $(head -c 300 "$work/version")"; return 1; }
    run_qemu check >"$work/check" 2>&1 || { SMOKE="FAIL: check (embedded default): $(tail -5 "$work/check")"; return 1; }
    run_qemu check --config deploy/cutoff.yaml >"$work/check2" 2>&1 \
        || { SMOKE="FAIL: check deploy/cutoff.yaml: $(tail -5 "$work/check2")"; return 1; }

    port=$(free_port)
    hport=$(free_port)
    [[ -n $port && -n $hport ]] || { SMOKE="FAIL: no free port"; return 1; }
    # A config of its own, so that the admin port cannot clash with a resolver
    # already running on this host.
    cat >"$work/smoke.yaml" <<EOF
listen: ["127.0.0.1:$port"]
upstreams: ["127.0.0.1:9"]
upstream_timeout: 1s
http: 127.0.0.1:$hport
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - name: kaspersky-cutoff
    lists: [kaspersky]
    categories: [update, telemetry, activation]
    before: log
    action: block
    from: 2024-09-29T00:00:00-04:00
blocking: {answer: nxdomain, ttl: 300}
EOF
    runner
    timeout 120 "${RUN[@]}" serve --config "$work/smoke.yaml" \
        --listen "127.0.0.1:$port" --upstream 127.0.0.1:9 >"$work/serve.log" 2>&1 &
    # `timeout` forwards SIGTERM to the child and exits with its status.
    pid=$!

    # Wait (at most 30 s) for the first answer: qemu start-up is slow.
    out=""
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        out=$(timeout 5 dig @127.0.0.1 -p "$port" s05.upd.kaspersky.com A +time=1 +tries=1 2>&1 || true)
        grep -q 'status:' <<<"$out" && break
        sleep 1
    done
    if ! grep -q 'status: NXDOMAIN' <<<"$out" || ! grep -q 'EDE: 15' <<<"$out"; then
        stop_pid "$pid" 5
        SMOKE="FAIL: blocked name: expected NXDOMAIN + EDE 15; dig said: $(grep -E 'status:|EDE|timed out|refused' <<<"$out" | tr '\n' ' ')serve log: $(tail -3 "$work/serve.log" | tr '\n' ' ')"
        return 1
    fi
    out=$(timeout 10 dig @127.0.0.1 -p "$port" example.com A +time=5 +tries=1 2>&1 || true)
    if ! grep -q 'status: SERVFAIL' <<<"$out"; then
        stop_pid "$pid" 5
        SMOKE="FAIL: allowed name with no upstream: expected SERVFAIL; dig said: $(grep -E 'status:|EDE|timed out' <<<"$out" | tr '\n' ' ')"
        return 1
    fi
    stop_pid "$pid" 10
    if [[ $STOP_STATUS != 0 ]]; then
        SMOKE="FAIL: SIGTERM: exit status $STOP_STATUS; serve log: $(tail -3 "$work/serve.log" | tr '\n' ' ')"
        return 1
    fi
    SMOKE="ok (check; blocked NXDOMAIN+EDE15; no upstream SERVFAIL; SIGTERM exit 0)"
    rm -rf "$work"
}

# ---------------------------------------------------------------- build + test
declare -A SIZE FLOOR RESULT
failed=0
for t in "${targets[@]}"; do
    target_info "$t"
    triple_env=$(tr 'a-z-' 'A-Z_' <<<"$t")
    cc_env=$(tr '-' '_' <<<"$t")
    log "cargo build --release --locked --target $t"
    if ! env "CARGO_TARGET_${triple_env}_LINKER=$GCC" "CC_${cc_env}=$GCC" \
        cargo build --release --locked --target "$t"; then
        SIZE[$t]=-; FLOOR[$t]=-; RESULT[$t]="FAIL: build"; failed=1
        continue
    fi
    BIN="$TARGET_DIR/$t/release/cutoff"
    SIZE[$t]=$(stat -c %s "$BIN")
    FLOOR[$t]=$(glibc_floor "$BIN")
    if [[ $smoke -eq 0 ]]; then
        RESULT[$t]="not run (--no-smoke)"
        continue
    fi
    SYSROOT=""
    if [[ -n $LIBC_PKG ]]; then
        ldso=$(dpkg -L "$LIBC_PKG" 2>/dev/null | grep "/$LDSO\$" | head -1 || true)
        if [[ -z $ldso ]]; then
            RESULT[$t]="FAIL: no $LDSO in $LIBC_PKG (apt-get install $LIBC_PKG)"; failed=1
            continue
        fi
        SYSROOT=$(dirname "$(dirname "$ldso")")
    fi
    log "smoke test $t${QEMU:+ under $QEMU}${SYSROOT:+ -L $SYSROOT}"
    if smoke_test "$t"; then
        RESULT[$t]=$SMOKE
    else
        RESULT[$t]=$SMOKE; failed=1
    fi
done

printf '\n%-32s %12s  %-16s %s\n' target "size (bytes)" "glibc floor" smoke
for t in "${targets[@]}"; do
    printf '%-32s %12s  %-16s %s\n' "$t" "${SIZE[$t]}" "${FLOOR[$t]}" "${RESULT[$t]}"
done
exit "$failed"
