#!/bin/bash
# Server CPU per answered query, one server at a time (docs/performance.md, "Batched send"):
# knotd as the upstream on core 1 (every thread of it), the server pinned to core 0, dnsperf on core 1
# (10 clients x 100 outstanding, 5 s), the server's utime+stime over the answered count, and each
# apart; upstream_us is knotd's CPU per answered query.
#
#   benches/cpu-per-query.sh SERVER SET [perf|stat]
#     SERVER: a cutoff binary (target/profiling/cutoff), or `unbound` / `dnsdist`
#     SET:    blocked (peerbench's synthetic blocked names), cached (its allowed names,
#             warmed first), miss (unique names: every query forwarded), or latency
#             (the allowed names at a fixed 2,000 qps, warmed: p50 and p99 instead of CPU)
#     perf:   also record a profile (perf record, DWARF call graphs, 3 s) to $DIR/perf-SET.data
#     stat:   also count system calls (perf stat) into $DIR/stat-SET.txt
#
# QPS=N sends at a fixed rate instead of as fast as the answers come back (every server then
# does the same work per second). EDNS=1 makes dnsperf send EDNS 0 (as most clients do), so a
# server that relays the client's OPT (dnsdist) asks its upstream with EDNS too, as cutoff
# always does. STAT_EVENTS replaces the system-call events of `stat`, and
# PERF_EVENT the cycles `perf` samples, e.g. with a uprobe on glibc's malloc:
#   perf probe -x /lib/x86_64-linux-gnu/libc.so.6 malloc
#   STAT_EVENTS=probe_libc:malloc benches/cpu-per-query.sh BIN miss stat   # mallocs per miss
#   PERF_EVENT=probe_libc:malloc benches/cpu-per-query.sh BIN miss perf    # and where from
#
# Data: ../shared/peerbench's gen_data.py output (DATA, default /tmp/peerbench/data).
# Ports: PORT (default 15400) for knotd, PORT+4 for the server, PORT+5 for cutoff's admin
# endpoint; DIR for configs and logs.
# Runs hold a lock (/tmp/cutoff-cpu-per-query.lock) so two never overlap on the machine.
# Bounded: one dnsperf run of 5 s under a 20 s timeout; every process started here is
# stopped by its PID on exit. Loopback only.
set -u
BIN=${1:?server binary, unbound or dnsdist}
SET=${2:?blocked, cached or miss}
MODE=${3:-}
DATA=${DATA:-/tmp/peerbench/data}
D=${DIR:-$(mktemp -d)}
# A directory made here is removed on exit; one given in DIR is kept.
[ -n "${DIR:-}" ] && TMPD= || TMPD=$D
UP=${PORT:-15400}
SP=$((UP + 4))
[ -f "$DATA/blocklist-large.txt" ] || { echo "no peerbench data in $DATA (run gen_data.py)" >&2; exit 1; }
mkdir -p "$D/knot"
exec 9>/tmp/cutoff-cpu-per-query.lock
flock 9
cat > "$D/knot/knot.conf" <<K
server:
    rundir: "$D/knot"
    listen: 127.0.0.1@$UP
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$D/knot"
template:
  - id: default
    storage: "$DATA"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: example.com
  - domain: example.net
  - domain: example.org
K
cat > "$D/ours.yaml" <<Y
listen: ["127.0.0.1:$SP"]
# Its own admin port: another cutoff (a peerbench run, a service) may hold 9153.
http: "127.0.0.1:$((UP + 5))"
upstreams: ["127.0.0.1:$UP"]
lists:
  bench: {path: "$DATA/blocklist-large.txt"}
rules:
  - {name: bench-block, lists: [bench], action: block}
blocking: {answer: nxdomain, ttl: 300}
cache: {size: 20000}
threads: ${THREADS:-1}
Y
taskset -c 1 knotd -c "$D/knot/knot.conf" > "$D/knotd.log" 2>&1 &
KP=$!
case $BIN in
  unbound)
    sed -e "s|@PORT@|$SP|; s|@UP@|$UP|; s|@DIR@|$D|; s|@DATA@|$DATA|" > "$D/unbound.conf" <<U
server:
  interface: 127.0.0.1
  port: @PORT@
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  so-reuseport: no
  username: ""
  chroot: ""
  directory: "@DIR@"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  do-not-query-localhost: no
  qname-minimisation: no
  msg-cache-size: 64m
  rrset-cache-size: 128m
  include: "@DATA@/unbound-large.conf"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@@UP@
U
    taskset -c 0 unbound -d -c "$D/unbound.conf" > "$D/server.log" 2>&1 &
    ;;
  dnsdist)
    cat > "$D/dnsdist.conf" <<L
setSecurityPollSuffix("")
setLocal("127.0.0.1:$SP")
setMaxTCPClientThreads(1)
newServer({address="127.0.0.1:$UP", name="knotd", checkName="www0.example.com."})
getPool(""):setCache(newPacketCache(100000, {maxTTL=86400, minTTL=0}))
local smn = newSuffixMatchNode()
for line in io.lines([[$DATA/blocklist-large.txt]]) do smn:add(line) end
addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN))
L
    taskset -c 0 dnsdist --supervised --disable-syslog -C "$D/dnsdist.conf" > "$D/server.log" 2>&1 &
    ;;
  *)
    taskset -c 0 "$BIN" serve --config "$D/ours.yaml" --log-level warn > "$D/server.log" 2>&1 &
    ;;
esac
CP=$!
trap 'kill $KP $CP 2>/dev/null; wait; [ -n "$TMPD" ] && rm -rf "$TMPD"' EXIT
for _ in $(seq 300); do
  dig +short +time=1 +tries=1 -p $SP @127.0.0.1 m0.example.net > /dev/null 2>&1 && break
  sleep 0.3
done
# knotd pins each UDP worker to a CPU of its own choosing (the first on CPU 0), whatever
# taskset it was started under: put all its threads back on core 1, or its UDP worker shares
# the server's core (and the server's CPU per miss counts the switches between them).
taskset -a -p -c 1 $KP > /dev/null || { echo "knotd is not running (see $D/knotd.log)" >&2; exit 1; }
case $SET in
  blocked) F=$DATA/q-blocked-synth.txt ;;
  cached)
    F=$DATA/q-allowed.txt
    taskset -c 1 timeout 30 dnsperf -s 127.0.0.1 -p $SP -d "$F" -n 1 -q 20 -t 2 > /dev/null 2>&1
    ;;
  miss) F=$DATA/q-miss.txt ;;
  latency)
    F=$DATA/q-allowed.txt
    taskset -c 1 timeout 30 dnsperf -s 127.0.0.1 -p $SP -d "$F" -n 1 -q 20 -t 2 > /dev/null 2>&1
    taskset -c 1 timeout 20 dnsperf -s 127.0.0.1 -p $SP -d "$F" -l 5 -Q 2000 -t 2 -v > "$D/dnsperf-$SET.txt" 2>&1
    # -v prints "> RCODE name type seconds" per answer.
    awk '/^> /{print $NF}' "$D/dnsperf-$SET.txt" | sort -g | awk -v bin="$BIN" '
      {v[NR] = $1} END {if (NR == 0) {print bin " latency: no answers"; exit 1}
      printf "%s latency: answered=%d p50_ms=%.3f p99_ms=%.3f\n", bin, NR, v[int(NR*0.5)+1]*1000, v[int(NR*0.99)+1]*1000}'
    exit
    ;;
  *) echo "unknown set $SET" >&2; exit 2 ;;
esac
# utime and stime, in clock ticks.
cpu() { awk '{print $14, $15}' /proc/$CP/stat; }
# knotd's CPU too: what the server's way of forwarding costs its upstream (core 1).
kcpu() { awk '{print $14 + $15}' /proc/$KP/stat; }
t0=$(cpu)
k0=$(kcpu)
case $MODE in
  perf) perf record ${PERF_EVENT:+-e "$PERF_EVENT"} -F 1000 --call-graph dwarf,16384 -p $CP -o "$D/perf-$SET.data" -- sleep 3 > /dev/null 2>&1 & PP=$! ;;
  stat) perf stat -e "${STAT_EVENTS:-syscalls:sys_enter_*}" -p $CP -o "$D/stat-$SET.txt" -- sleep 5 > /dev/null 2>&1 & PP=$! ;;
  *) PP= ;;
esac
taskset -c 1 timeout 20 dnsperf -s 127.0.0.1 -p $SP -d "$F" -c 10 -q ${OUTSTANDING:-100} ${QPS:+-Q "$QPS"} $([ "${EDNS:-0}" = 1 ] && printf %s -e) -t 2 -l 5 > "$D/dnsperf-$SET.txt" 2>&1
t1=$(cpu)
k1=$(kcpu)
[ -n "$PP" ] && wait $PP
q=$(awk '/Queries completed/{print $3}' "$D/dnsperf-$SET.txt")
[ "${q:-0}" -gt 0 ] 2>/dev/null || { echo "$BIN $SET: no answers (see $D/dnsperf-$SET.txt)" >&2; exit 1; }
qps=$(awk '/Queries per second/{printf "%d", $4}' "$D/dnsperf-$SET.txt")
ticks=$(getconf CLK_TCK)
# CPU per answered query, and its user and kernel (system) parts: the kernel part is what
# any server pays to receive and send the datagrams, the user part is the server's own work.
echo "$BIN $SET: answered=$q qps=$qps $(awk -v a="$t0" -v b="$t1" -v q="$q" -v t="$ticks" 'BEGIN{
  split(a, x, " "); split(b, y, " "); u = (y[1]-x[1])*1e6/t/q; s = (y[2]-x[2])*1e6/t/q
  printf "cpu_us_per_query=%.2f user_us=%.2f sys_us=%.2f", u+s, u, s}') upstream_us=$(awk -v a="$k0" -v b="$k1" -v q="$q" -v t="$ticks" 'BEGIN{printf "%.2f", (b-a)*1e6/t/q}')"
