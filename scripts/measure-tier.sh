#!/usr/bin/env bash
# The tier's targets (issue 11) on the test cluster (scripts/cluster.sh: Ceph RGW, S3 origin, 3 proxies on loopback):
#   1. 1,000 distinct 1 MiB files, random order, each through a random proxy, 4 workers: origin fetches (GET body
#      bytes the origin served / 1 MiB) and bodies verified against the files they were made from.
#   2. The same with proxy 2 killed (SIGKILL) a few seconds into the run: failed requests (after asking another
#      proxy), origin fetches beyond 1,000, against the names proxy 2 owns; then proxy 2 started again and, once the
#      others try it again (10 s), its names asked through the others: what proxy 2 answers and the origin sends.
#   3. Adding a 4th peer: share of the 1,000 names whose owner changes.
#   4. Warm hits through the owner vs through a proxy that does not own the name, ROUNDS interleaved rounds of
#      WARM names each: with hot copies (the default) and with --keep-peer-copies false (relayed from the owner).
# Starts the cluster (and Ceph) if it is not up, and takes it down at the end in that case.
# Usage: scripts/measure-tier.sh [FILES=1000] [ROUNDS=5] [WARM=200] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-1000}
rounds=${2:-5}
warm=${3:-200}
work=${4:-/tmp/fileproxy-tierbench}
export CLUSTER_DIR=${CLUSTER_DIR:-/tmp/fileproxy-cluster}
base=${CLUSTER_PORT:-5100}

started=0
if ! [[ -f $CLUSTER_DIR/origin.pid ]]; then started=1; scripts/cluster.sh up >/dev/null; fi
cleanup() { if ((started)); then scripts/cluster.sh down; fi; }
trap cleanup EXIT
eval "$(scripts/cluster.sh env)"
artifacts=$CLUSTER_DIR/artifacts
dotnet build bench/FileProxy.Bench -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
bench() { dotnet "$artifacts/bin/FileProxy.Bench/release/FileProxy.Bench.dll" "$@"; }
client() { dotnet "$artifacts/bin/FileProxy.Client/release/FileProxy.Client.dll" "$@"; }

# The files: FILES random 1 MiB files under $work/set, uploaded as set/fNNN.bin (once).
mkdir -p "$work/set"
if [[ $(find "$work/set" -type f | wc -l) -ne $files ]]; then
  rm -f "$work/set"/*
  for i in $(seq 1 "$files"); do head -c 1048576 /dev/urandom >"$work/set/f$(printf %04d "$i").bin"; done
  scripts/cluster.sh put "$work/set"
fi
(cd "$work" && find set -type f | sort) >"$work/names.txt"

counter() { client stats --proxy "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
origin_bytes() { counter "127.0.0.1:$base" bytes_served; }
fresh_tier() {
  for n in 1 2 3; do scripts/cluster.sh stop "$n"; rm -rf "$CLUSTER_DIR/cache$n"; scripts/cluster.sh start "$n"; done
}
run() { bench tier --tier "$FILEPROXY_TIER" --names "$work/names.txt" --expect-dir "$work" "$@"; }
echo "# load before: $(uptime)"

echo "## 1. $files distinct files, random order, random proxies"
fresh_tier
before=$(origin_bytes)
run --pick random --connections 4 --seed 1
echo "origin_fetches $(( ($(origin_bytes) - before) / 1048576 )) for $files files"

echo "## 2. the same, proxy 2 killed mid-run"
fresh_tier
owned2=$(bench tier --tier "$FILEPROXY_TIER" --names "$work/names.txt" --owned-by "127.0.0.1:$((base + 2))" --moved-by 127.0.0.1:1 \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['names'])")
before=$(origin_bytes)
run --pick random --connections 4 --seed 2 & runner=$!
sleep "${KILL_AFTER:-4}"
scripts/cluster.sh stop 2
echo "killed proxy 2 (it owns $owned2 of the $files names)"
wait "$runner" && echo "run: every request succeeded" || echo "run: some requests FAILED"
after=$(origin_bytes)
echo "origin_fetches $(( (after - before) / 1048576 )) for $files files (at most $((files + owned2)) allowed)"
scripts/cluster.sh start 2
echo "proxy 2 started again; waiting 11 s (--peer-down-time 10s) for the others to try it again"
sleep 11
marked=$(counter "127.0.0.1:$((base + 2))" tier_hop_marked_received)
before=$(origin_bytes)
run --pick other --connections 4 --seed 3 --owned-by "127.0.0.1:$((base + 2))"
echo "proxy 2 answered $(( $(counter "127.0.0.1:$((base + 2))" tier_hop_marked_received) - marked )) forwarded requests for its $owned2 names;" \
  "origin sent $(( ($(origin_bytes) - before) / 1048576 )) files meanwhile"

echo "## 3. a 4th peer joins"
bench tier --tier "$FILEPROXY_TIER" --names "$work/names.txt" --moved-by "127.0.0.1:$((base + 4))"

warm_rounds() {
  head -n "$warm" "$work/names.txt" >"$work/warm.txt"
  bench tier --tier "$FILEPROXY_TIER" --names "$work/warm.txt" --pick owner --connections 4 --seed 9 >/dev/null
  bench tier --tier "$FILEPROXY_TIER" --names "$work/warm.txt" --pick other --connections 4 --seed 9 >/dev/null
  for r in $(seq 1 "$rounds"); do
    for pick in owner other; do
      echo "round $r $(bench tier --tier "$FILEPROXY_TIER" --names "$work/warm.txt" --pick $pick --connections 4 --seed 9)"
    done
  done | tee "$work/warm.log"
  python3 - "$work/warm.log" <<'PY'
import json, statistics, sys
rates = {"owner": [], "other": []}
for line in open(sys.argv[1]):
    row = json.loads(line.split(" ", 2)[2])
    rates[row["pick"]].append(row["mib_per_s"])
owner, other = statistics.median(rates["owner"]), statistics.median(rates["other"])
print(f"median MiB/s: owner {owner}, non-owner {other}, ratio {other / owner:.2f} ({len(rates['owner'])} rounds each)")
PY
}
echo "## 4a. warm hits, owner vs non-owner, hot copies (default); load: $(uptime)"
warm_rounds
echo "## 4b. warm hits, owner vs non-owner, --keep-peer-copies false; load: $(uptime)"
CLUSTER_PROXY_ARGS="--keep-peer-copies false" fresh_tier
warm_rounds
CLUSTER_PROXY_ARGS="" fresh_tier
echo "# load after: $(uptime)"
