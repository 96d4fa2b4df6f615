#!/bin/bash
# Rounds of benches/cpu-per-query.sh, servers and sets interleaved so that the machine's
# load falls on all of them alike, then the median of each figure per set and server.
#
#   benches/cpu-round.sh REPS "SERVER..." [SET...]
#     REPS:   rounds (3 is what docs/performance.md reports)
#     SERVER: cutoff binaries, `unbound`, `dnsdist` (as for cpu-per-query.sh)
#     SET:    blocked, cached, miss (default: all three)
#
# The environment is passed on (DATA, QPS, EDNS, OUTSTANDING, PORT, DIR); every run's
# line goes to stderr as it comes, the medians to stdout. Bounded: REPS x servers x sets
# runs of cpu-per-query.sh, each under its own timeouts.
set -u -o pipefail
REPS=${1:?rounds}
SERVERS=${2:?servers}
shift 2
SETS=${*:-blocked cached miss}
for set in $SETS; do
  case $set in blocked | cached | miss) ;; *) echo "cpu-round.sh: no set $set (blocked, cached or miss)" >&2; exit 2 ;; esac
done
HERE=$(dirname "$0")
LINES=$(mktemp)
trap 'rm -f "$LINES"' EXIT
for _ in $(seq "$REPS"); do
  for set in $SETS; do
    for server in $SERVERS; do
      # A run that fails says why on stderr and counts for nothing.
      "$HERE/cpu-per-query.sh" "$server" "$set" | tee -a "$LINES" >&2 || echo "(that run failed)" >&2
    done
  done
done
# "SERVER SET: answered=N qps=N cpu_us_per_query=X user_us=X sys_us=X upstream_us=X"
awk '
  function median(key,   n, i, j, t, v) {
    n = split(vals[key], v, " ")
    if (n == 0) return "-"
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
    return sprintf("%.2f", n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2)
  }
  / answered=[1-9]/ {
    s = $2; sub(/:$/, "", s); k = s " " $1
    if (!(k in seen)) { seen[k] = 1; order[++count] = k }
    runs[k]++
    for (f = 3; f <= NF; f++) { split($f, kv, "="); vals[k "|" kv[1]] = vals[k "|" kv[1]] " " kv[2] }
  }
  END {
    printf "%-8s %-28s %4s %8s %8s %8s %8s %8s\n", "set", "server", "runs", "qps", "cpu_us", "user_us", "sys_us", "upstr_us"
    for (i = 1; i <= count; i++) {
      k = order[i]; split(k, p, " ")
      printf "%-8s %-28s %4d %8s %8s %8s %8s %8s\n", p[1], p[2], runs[k], median(k "|qps"),
        median(k "|cpu_us_per_query"), median(k "|user_us"), median(k "|sys_us"), median(k "|upstream_us")
    }
  }' "$LINES"
