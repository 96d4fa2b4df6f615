#!/bin/bash
# Refreshing a 1M-entry URL list while serving (docs/performance.md, "URL list refresh"):
# peak RSS during the swap, download and reload time, queries answered meanwhile;
# then the peak of a SIGHUP reload that leaves the list as it is.
# Needs python3 and dnsperf; build first: cargo build --profile profiling.
# Bounded: dnsperf 20 s at 2000 qps, the whole run under 2 minutes.
set -u
B=${CUTOFF:-$(cd "$(dirname "$0")/.." && pwd)/target/profiling/cutoff}
D=${WORK:-$(mktemp -d)}
cd $D
rm -rf state www; mkdir -p www state
[ -f a.txt ] || python3 -c "
with open('a.txt','w') as f:
    for i in range(1000000): f.write(f'h{i}.ads-a.example\n')
with open('b.txt','w') as f:
    for i in range(1000000): f.write(f'h{i}.ads-b.example\n')
with open('q.txt','w') as f:
    for i in range(0,1000000,100): f.write(f'h{i}.ads-a.example A\nh{i}.ads-b.example A\n')
"
cp a.txt www/list.txt
HP=18$((RANDOM%900+100)); DP=25$((RANDOM%900+100)); AP=29$((RANDOM%900+100))
python3 -m http.server --bind 127.0.0.1 $HP --directory www >/dev/null 2>&1 &
HTTPD=$!
sleep 1
cat > c.yaml <<Y
listen: ["127.0.0.1:$DP"]
http: 127.0.0.1:$AP
upstreams: ["127.0.0.1:9"]
state_dir: $D/state
lists:
  ads:
    url: http://127.0.0.1:$HP/list.txt
    allow_http: true
    refresh: 1m
rules:
  - name: no-ads
    lists: [ads]
    action: block
Y
$B lists update --config c.yaml
# Due 8 s after start: the copy looks 52 s old.
python3 - <<P
import json,time
p='$D/state/lists/ads.meta.json'; m=json.load(open(p)); m['checked']=int(time.time())-52; json.dump(m,open(p,'w'))
P
CUTOFF_LOG_LEVEL=info $B serve --config c.yaml 2> serve.log &
PID=$!
sleep 4
grep -o 'Vm[HR][WS]M*:.*' /proc/$PID/status
STEADY=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
echo "steady VmRSS kB: $STEADY"
echo 5 > /proc/$PID/clear_refs   # reset the peak (VmHWM)
cp b.txt www/list.txt
dnsperf -s 127.0.0.1 -p $DP -d q.txt -l 20 -Q 2000 -c 2 > dnsperf.out 2>&1 &
DP_PID=$!
MAX=0
for i in $(seq 1 220); do
  r=$(awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null || echo 0)
  [ "$r" -gt "$MAX" ] && MAX=$r
  sleep 0.1
done
wait $DP_PID
echo "sampled max VmRSS kB: $MAX"
grep VmHWM /proc/$PID/status
echo "after VmRSS kB: $(awk '/VmRSS/{print $2}' /proc/$PID/status)"
grep -E 'list downloaded|reloaded' serve.log
grep -E 'Queries (sent|completed|lost)|Response codes' dnsperf.out
# A SIGHUP reload with the list unchanged: its index is reused, not rebuilt.
echo 5 > /proc/$PID/clear_refs
kill -HUP $PID
for i in $(seq 1 50); do
  [ "$(grep -c reloaded serve.log)" -ge 2 ] && break
  sleep 0.1
done
echo "SIGHUP, list unchanged: $(grep VmHWM /proc/$PID/status)"
kill $PID $HTTPD
wait 2>/dev/null
