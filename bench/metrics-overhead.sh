#!/usr/bin/env bash
# What --metrics-listen costs on the hottest path: 4 KiB cache hits (workload c of bench/run.sh: 64 persistent
# connections, 1000 names). One origin, two proxies over it, the same but for --metrics-listen; the load alternates
# between them run by run (A B B A ...) while /metrics is scraped every second (Prometheus scrapes every 15 s), and
# the medians and their ratio are printed. Native executables from scripts/publish.sh --bench (built if missing).
#
#   bench/metrics-overhead.sh [RUNS]     (default 7 runs each, 40000 requests a run)
#
# Prints requests/s and the proxy's CPU time per request (user + system from /proc), each as medians; on a busy
# machine the CPU time is the steadier of the two.
#
# Environment: BENCH_PORT_BASE (default 18100; uses 5 ports from there), BENCH_NATIVE (directory of the executables,
# default artifacts/native), BENCH_REQUESTS. Everything listens on and talks to 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
requests=${BENCH_REQUESTS:-40000}
native=${BENCH_NATIVE:-artifacts/native}
base=${BENCH_PORT_BASE:-18100}
origin_port=$base plain_port=$((base + 1)) metered_port=$((base + 2)) metrics_port=$((base + 3))
[[ -x $native/fileproxy-bench && -x $native/fileproxy-proxy ]] || scripts/publish.sh --bench "$native" >&2
work=$(mktemp -d /tmp/fileproxy-metrics-bench.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/files/small"
for i in $(seq 0 999); do head -c 4096 /dev/urandom >"$work/files/small/f$i"; done
(cd "$work/files" && ls small | sed 's|^|small/|') >"$work/names.txt"

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
"$native/fileproxy-server" --root "$work/files" --listen 127.0.0.1 --port "$origin_port" --log-level warn & pids+=($!)
wait_port "$origin_port"
"$native/fileproxy-proxy" 127.0.0.1 "$origin_port" "$plain_port" --listen 127.0.0.1 --cache-dir "$work/cache-plain" --log-level warn & pids+=($!)
plain_pid=$!
"$native/fileproxy-proxy" 127.0.0.1 "$origin_port" "$metered_port" --listen 127.0.0.1 --cache-dir "$work/cache-metered" \
  --metrics-listen "127.0.0.1:$metrics_port" --log-level warn & pids+=($!)
metered_pid=$!
wait_port "$plain_port"; wait_port "$metered_port"; wait_port "$metrics_port"
(while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics" || true; done) & pids+=($!)

# CPU time (user + system, clock ticks) a process has used: what a request costs the proxy, which a busy machine
# disturbs far less than the requests per second it manages.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)
load() { "$native/fileproxy-bench" load --proxy "127.0.0.1:$1" --names "$work/names.txt" --connections 64 --requests "$2" --warmup "$3"; }
load "$plain_port" 1000 5000 >/dev/null   # fills every name, then warm
load "$metered_port" 1000 5000 >/dev/null
echo "load: $(uptime | sed 's/.*load average: //')" >&2
for run in $(seq 1 "$runs"); do
  order="plain metered"; ((run % 2 == 0)) && order="metered plain" # A B B A: neither always goes first
  for which in $order; do
    port=$plain_port pid=$plain_pid; [[ $which == metered ]] && port=$metered_port pid=$metered_pid
    before=$(cpu_ticks "$pid")
    rps=$(load "$port" "$requests" 0 | sed -n 's/.*"rps":\([0-9.]*\).*/\1/p')
    us=$(awk -v t=$(($(cpu_ticks "$pid") - before)) -v hz="$ticks_per_second" -v n="$requests" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }')
    echo "$which $run $rps $us" | tee -a "$work/rps.txt" >&2
  done
done
echo "load: $(uptime | sed 's/.*load average: //')" >&2
curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^fileproxy_(requests_total|cache_hits_total) |_count\{operation="get",status="ok",cache="hit"\}' >&2
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
plain=$(awk '$1 == "plain" { print $3 }' "$work/rps.txt" | median)
metered=$(awk '$1 == "metered" { print $3 }' "$work/rps.txt" | median)
# Each run's pair was measured side by side, so its ratio drifts less with the machine's load than either figure.
paired=$(awk '{ r[$2, $1] = $3 } END { for (i = 1; (i, "plain") in r; i++) print r[i, "metered"] / r[i, "plain"] }' "$work/rps.txt" | median)
printf 'median requests/s: without --metrics-listen %.0f, with %.0f (ratio of medians %.3f); median of the paired ratios with/without %.3f\n' \
  "$plain" "$metered" "$(awk -v a="$metered" -v b="$plain" 'BEGIN { print a / b }')" "$paired"
plain_us=$(awk '$1 == "plain" { print $4 }' "$work/rps.txt" | median)
metered_us=$(awk '$1 == "metered" { print $4 }' "$work/rps.txt" | median)
printf 'median proxy CPU per request: without %.2f us, with %.2f us (with/without %.3f)\n' "$plain_us" "$metered_us" \
  "$(awk -v a="$metered_us" -v b="$plain_us" 'BEGIN { print a / b }')"
