#!/usr/bin/env bash
# peerbench-encrypted: dnsperf -m dot and -m doh against cutoff, unbound and dnsdist on
# loopback, in one run, with one self-signed certificate (openssl). Each server is pinned
# to SERVER_CPU and dnsperf to LOAD_CPU (as ../shared/peerbench/run.sh does); every query
# names a blocked zone, so each server answers NXDOMAIN itself and the run measures the
# encrypted transport plus the policy check, not an upstream. Reports qps and server CPU
# microseconds per query (utime+stime of all its threads over the run), and both as ratios
# to cutoff. Only loopback traffic; every load is bounded by `dnsperf -l DURATION` and an
# outer `timeout`; every process started here is stopped by its PID on exit.
#
# MODES=h2load (DoH POST, HTTP/2) loads the DoH listener with nghttp2's h2load instead of
# dnsperf: REQUESTS requests of one binary query in all, over CLIENTS connections with
# OUTSTANDING streams each (h2load -n, -c, -m), bounded by the count and an outer timeout.
#
#   cargo build --release && benches/peerbench-encrypted.sh
#   DURATION=10 PEERS="cutoff unbound dnsdist" MODES="dot doh" benches/peerbench-encrypted.sh
#   REQUESTS=200000 CLIENTS=1 MODES=h2load benches/peerbench-encrypted.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=${PEERBENCH_WORK:-${TMPDIR:-/tmp}/peerbench-encrypted}
DUR=${DURATION:-10}              # seconds per load
CLIENTS=${CLIENTS:-1}            # dnsperf -c (connections; dnsperf 2.10 loses DoH answers with more)
OUTSTANDING=${OUTSTANDING:-100}  # dnsperf -q, h2load -m (streams per connection)
REQUESTS=${REQUESTS:-200000}     # h2load -n (requests in all)
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PEERS=${PEERS:-"cutoff unbound dnsdist"}
MODES=${MODES:-"dot doh"}
CUTOFF=${CUTOFF_BIN:-$ROOT/target/release/cutoff}
HZ=$(getconf CLK_TCK)
# plain, DoT, DoH ports per server; 15499 is an upstream nobody answers (all names blocked)
declare -A BASE=([cutoff]=15400 [unbound]=15410 [dnsdist]=15420)
NOUP=15499
RUN_ID=${RUN_ID:-$(date +%Y%m%d-%H%M%S)}
OUT=$WORK/results/$RUN_ID
RUN=$WORK/run
mkdir -p "$OUT/raw" "$RUN"
PIDS=()

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
stop_pid() {  # stop one process we started, by PID, bounded
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() { local p; for p in "${PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# runq_ns <pid>: nanoseconds its threads spent runnable but waiting for a CPU (schedstat);
# threads that ended during the load are not counted
runq_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{w += $2} END {printf "%.0f", w}'; }

need=(openssl kdig taskset)
case " $MODES " in *" dot "*|*" doh "*) need+=(dnsperf) ;; esac
case " $MODES " in *" h2load "*) need+=(h2load) ;; esac
for t in "${need[@]}"; do
  command -v "$t" >/dev/null || { log "missing $t"; exit 1; }
done

# ---------------------------------------------------------------- data
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$RUN/key.pem" -out "$RUN/cert.pem" -subj /CN=bench.test \
  -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" 2>/dev/null \
  || { log "openssl could not make a certificate"; exit 1; }
for i in $(seq 1 1000); do echo "n$i.blocked.test A"; done > "$RUN/queries.txt"
echo blocked.test > "$RUN/blocked.txt"
# the h2load POST body: one query, n1.blocked.test A (ID 0, RD)
printf '\0\0\1\0\0\1\0\0\0\0\0\0\2n1\7blocked\4test\0\0\1\0\1' > "$RUN/query.bin"

# ---------------------------------------------------------------- servers
# render <peer>: write its config, print its command line (run under taskset)
render() {
  local p=$1 plain=${BASE[$1]} d=$RUN/$1
  local dot=$((plain + 1)) doh=$((plain + 2))
  rm -rf "$d"; mkdir -p "$d"
  case $p in
  cutoff)
    # tcp.max_queries and idle_timeout raised: dnsperf keeps its connections for the run
    # (unbound and dnsdist do not cap queries per connection by default).
    cat > "$d/cutoff.yaml" <<C
listen: ["127.0.0.1:$plain"]
listen_tls: ["127.0.0.1:$dot"]
listen_https: ["127.0.0.1:$doh"]
tls: {certificate: $RUN/cert.pem, key: $RUN/key.pem}
http: 127.0.0.1:$((plain + 3))
upstreams: ["127.0.0.1:$NOUP"]
tcp: {max_queries: 1000000, idle_timeout: 60s}
lists:
  bench: {path: $RUN/blocked.txt}
rules:
  - {name: bench, lists: [bench], action: block}
C
    echo "$CUTOFF serve --config $d/cutoff.yaml" ;;
  unbound)
    cat > "$d/unbound.conf" <<U
server:
  interface: 127.0.0.1@$plain
  interface: 127.0.0.1@$dot
  interface: 127.0.0.1@$doh
  tls-port: $dot
  https-port: $doh
  tls-service-key: "$RUN/key.pem"
  tls-service-pem: "$RUN/cert.pem"
  http-endpoint: "/dns-query"
  http-max-streams: 100
  incoming-num-tcp: 1000
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  so-reuseport: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  module-config: "iterator"
  do-not-query-localhost: no
  local-zone: "blocked.test." always_nxdomain
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$NOUP
U
    echo "unbound -d -c $d/unbound.conf" ;;
  dnsdist)
    cat > "$d/dnsdist.conf" <<D
setSecurityPollSuffix("")
setLocal("127.0.0.1:$plain")
addTLSLocal("127.0.0.1:$dot", "$RUN/cert.pem", "$RUN/key.pem")
addDOHLocal("127.0.0.1:$doh", "$RUN/cert.pem", "$RUN/key.pem", "/dns-query")
setMaxTCPClientThreads(1)
newServer({address="127.0.0.1:$NOUP", name="none", checkInterval=3600})
local smn = newSuffixMatchNode()
smn:add("blocked.test")
addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN))
D
    echo "dnsdist --supervised --disable-syslog -C $d/dnsdist.conf" ;;
  esac
}

# up <port>: wait (bounded) until plain DNS answers on port
up() {
  local i
  for i in $(seq 120); do
    kdig @127.0.0.1 -p "$1" +time=1 +retry=0 n1.blocked.test A 2>/dev/null | grep -q "status: NXDOMAIN" && return 0
    sleep 0.5
  done
  return 1
}

CSV=$OUT/results.csv
echo "server,mode,qps,completed,lost,cpu_s,us_per_query,runq_wait_s" > "$CSV"
for p in $PEERS; do
  case $p in
    cutoff) [ -x "$CUTOFF" ] || { log "skip cutoff: no $CUTOFF (cargo build --release)"; continue; } ;;
    *) command -v "$p" >/dev/null || { log "skip $p: not installed"; continue; } ;;
  esac
  cmd=$(render "$p")
  taskset -c "$SERVER_CPU" bash -c "exec $cmd" > "$OUT/raw/$p-server.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  if ! up "${BASE[$p]}"; then log "$p did not answer; see $OUT/raw/$p-server.log"; stop_pid "$pid"; continue; fi
  log "$p pid=$pid up"
  for m in $MODES; do
    port=$((BASE[$p] + 1)); extra=()
    if [ "$m" = doh ]; then
      port=$((BASE[$p] + 2))
      extra=(-O "doh-uri=https://127.0.0.1:$port/dns-query" -O "doh-method=${DOH_METHOD:-GET}")
    fi
    raw=$OUT/raw/$p-$m.txt
    s0=$(proc_ticks "$pid"); w0=$(runq_ns "$pid")
    if [ "$m" = h2load ]; then
      port=$((BASE[$p] + 2))
      taskset -c "$LOAD_CPU" timeout $((DUR + 60)) h2load -n "$REQUESTS" -c "$CLIENTS" \
        -m "$OUTSTANDING" -d "$RUN/query.bin" -H "content-type: application/dns-message" \
        "https://127.0.0.1:$port/dns-query" > "$raw" 2>&1
    else
      taskset -c "$LOAD_CPU" timeout $((DUR + 30)) dnsperf -m "$m" -s 127.0.0.1 -p "$port" \
        -d "$RUN/queries.txt" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 -l "$DUR" "${extra[@]}" > "$raw" 2>&1
    fi
    s1=$(proc_ticks "$pid"); w1=$(runq_ns "$pid")
    if [ "$m" = h2load ]; then
      # "finished in 1.2s, 80000.00 req/s, ..."; "requests: N total, N started, N done,
      # N succeeded, N failed, N errored, N timeout" (succeeded: a 2xx answer)
      qps=$(awk '/^finished in/{gsub(",", "", $4); printf "%.0f", $4}' "$raw")
      done_n=$(awk '/^requests:/{print $8}' "$raw")
      lost=$(awk '/^requests:/{print $2 - $8}' "$raw")
    else
      qps=$(awk '/Queries per second:/{printf "%.0f", $4}' "$raw")
      done_n=$(awk '/Queries completed:/{print $3}' "$raw")
      lost=$(awk '/Queries lost:/{print $3}' "$raw")
    fi
    cpu=$(awk -v t=$((s1 - s0)) -v hz="$HZ" 'BEGIN{printf "%.2f", t / hz}')
    us=$(awk -v c="$cpu" -v n="${done_n:-0}" 'BEGIN{if (n > 0) printf "%.1f", 1e6 * c / n}')
    runq=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.2f", (b - a) / 1e9}')
    echo "$p,$m,${qps:-},${done_n:-},${lost:-},$cpu,$us,$runq" >> "$CSV"
    log "$p $m: qps=${qps:-?} completed=${done_n:-?} lost=${lost:-?} cpu=${cpu}s ${us:-?} us/query runq-wait=${runq}s"
  done
  stop_pid "$pid"
done

# ---------------------------------------------------------------- report
{ echo "date=$(date -Is) cpus=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "DURATION=$DUR CLIENTS=$CLIENTS OUTSTANDING=$OUTSTANDING REQUESTS=$REQUESTS SERVER_CPU=$SERVER_CPU LOAD_CPU=$LOAD_CPU"
  echo "dnsperf=$(dnsperf -h 2>&1 | grep -m1 Version) unbound=$(unbound -V 2>&1 | head -1) dnsdist=$(dnsdist --version 2>&1 | head -1) h2load=$(h2load --version 2>&1 | head -1)"
} > "$OUT/env.txt"
awk -F, 'NR > 1 { k = $1 "," $2; qps[k] = $3; us[k] = $7; srv[$1] = 1; mode[$2] = 1 }
  END {
    print "| server | mode | qps | server CPU us/query | qps / cutoff | CPU per query / cutoff |"
    print "| --- | --- | ---: | ---: | ---: | ---: |"
    for (m in mode) for (s in srv) {
      k = s "," m; c = "cutoff," m
      if (!(k in qps)) continue
      rq = (qps[c] > 0) ? sprintf("%.2f", qps[k] / qps[c]) : "-"
      ru = (us[c] > 0) ? sprintf("%.2f", us[k] / us[c]) : "-"
      printf "| %s | %s | %s | %s | %s | %s |\n", s, m, qps[k], us[k], rq, ru
    }
  }' "$CSV" | tee "$OUT/table.md"
log "results in $OUT (results.csv, table.md, env.txt, raw/)"
