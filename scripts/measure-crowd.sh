#!/usr/bin/env bash
# Issue 3's figure: N clients (default 100) asking at once for one cold file (default 50 MiB) through a fresh proxy,
# beside one client fetching the same file warm. Uses the benchmark's client (bench/FileProxy.Bench get, which
# verifies every body's BLAKE3 with --verify) and prints its per-client JSON summary and the proxy's counters.
# Usage: scripts/measure-crowd.sh [CLIENTS=100] [MIB=50] [RUNS=3] [WORK_DIR]
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
cd "$(dirname "$0")/.."
clients=${1:-100} mib=${2:-50} runs=${3:-3}
work=${4:-$(mktemp -d -t fileproxy-crowd-XXXXXX)}
artifacts="$work/artifacts"
dotnet build FileProxy.sln -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
dotnet build bench/FileProxy.Bench -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
dll() { echo "$artifacts/bin/FileProxy.$1/release/FileProxy.$1.dll"; }
mkdir -p "$work/root"
[ -f "$work/root/crowd.bin" ] || head -c $((mib << 20)) /dev/urandom > "$work/root/crowd.bin"
head -c 4096 /dev/urandom > "$work/root/prime.bin"
origin_port=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
dotnet "$(dll Server)" --root "$work/root" --port "$origin_port" --listen 127.0.0.1 --log-level Warning & pids+=($!)
until (exec 3<>"/dev/tcp/127.0.0.1/$origin_port") 2>/dev/null; do sleep 0.05; done
dotnet "$(dll Client)" stat crowd.bin --proxy "127.0.0.1:$origin_port" >/dev/null   # origin hashes it now, untimed
summary() { python3 -c '
import json, sys, statistics
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
ok = sum(1 for r in rows if r.get("ok"))
total = max(r["total_s"] for r in rows); ttfb = statistics.median(r["ttfb_s"] for r in rows)
print(f"{len(rows)} clients, {ok} byte-exact and verified, last done after {total:.3f} s, median first byte {ttfb*1000:.1f} ms")'; }
for run in $(seq 1 "$runs"); do
  proxy_port=$(free_port)
  rm -rf "$work/cache"
  dotnet "$(dll Proxy)" 127.0.0.1 "$origin_port" "$proxy_port" --listen 127.0.0.1 --cache-dir "$work/cache" --log-level Warning &
  proxy=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null; do sleep 0.05; done
  get() { dotnet "$(dll Bench)" get crowd.bin --proxy "127.0.0.1:$proxy_port" --clients "$1" --warmup prime.bin --verify; }
  echo "run $run cold, $clients clients: $(get "$clients" | summary)"
  echo "run $run warm, 1 client:    $(get 1 | summary)"
  echo "run $run proxy counters: $(dotnet "$(dll Client)" stats --proxy "127.0.0.1:$proxy_port" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: d[k] for k in ("upstream_fetches","cache_misses","coalesced_requests","cache_hits")})')"
  kill "$proxy"; wait "$proxy" 2>/dev/null || true
done
