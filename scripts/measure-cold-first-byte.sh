#!/usr/bin/env bash
# The cold miss's time to first byte as bench/run.sh workload a measures it, for comparing builds of our programs:
# per round a fresh proxy with an empty cache in front of one origin per build (the file already hashed there),
# prime.bin fetched through it, then `fileproxy-bench get big.bin --warmup prime.bin -o FILE`, whose ttfb runs from
# its connect to the first body byte. Rounds alternate the builds (A B A B ...); prints each round, then medians.
# Usage: scripts/measure-cold-first-byte.sh ROUNDS SIZE_MIB DIR_A [DIR_B ...]
#   DIR_*: directories holding fileproxy-server, fileproxy-proxy and fileproxy-bench (scripts/publish.sh --bench DIR);
#   a directory may hold a wrapper script instead of a program (to A/B an environment switch in one build).
# Listens on 127.0.0.1 only, on free ports; everything it starts is stopped when it exits.
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
rounds=$1
size_mib=$2
shift 2
dirs=("$@")
work=$(mktemp -d -t fileproxy-ttfb-XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root" "$work/out"
head -c $((size_mib << 20)) /dev/urandom >"$work/root/big.bin"
head -c 65536 /dev/urandom >"$work/root/prime.bin"


declare -A origin_port all
for dir in "${dirs[@]}"; do
  origin_port[$dir]=$(free_port)
  "$dir/fileproxy-server" --root "$work/root" --port "${origin_port[$dir]}" --listen 127.0.0.1 --log-level Warning &
  pids+=($!)
  wait_port "${origin_port[$dir]}" 100 0.05
  "$dir/fileproxy-bench" get big.bin --proxy "127.0.0.1:${origin_port[$dir]}" >/dev/null # the origin hashes it once
done
for round in $(seq 1 "$rounds"); do
  for dir in "${dirs[@]}"; do
    proxy_port=$(free_port)
    rm -rf "$work/cache"
    "$dir/fileproxy-proxy" 127.0.0.1 "${origin_port[$dir]}" "$proxy_port" --listen 127.0.0.1 --cache-dir "$work/cache" \
      --revalidate-after 1d --log-level Warning &
    proxy=$!
    wait_port "$proxy_port" 100 0.05
    "$dir/fileproxy-bench" get prime.bin --proxy "127.0.0.1:$proxy_port" --warmup prime.bin >/dev/null
    sync # as bench/run.sh does: nothing of an earlier round left to write back
    line=$("$dir/fileproxy-bench" get big.bin --proxy "127.0.0.1:$proxy_port" --warmup prime.bin -o "$work/out/big.bin")
    rm -f "$work/out/big.bin"*
    [[ $line == *'"ok":true'*'"cache":"MISS"'* ]] || { echo "round $round ($dir): not a whole cold miss: $line" >&2; exit 1; }
    ms=$(sed -nE 's/.*"ttfb_s":([0-9.eE+-]+).*/\1/p' <<<"$line" | awk '{ printf "%.2f", $1 * 1000 }')
    echo "round $round $dir: first byte $ms ms"
    all[$dir]+="$ms "
    kill "$proxy"
    wait "$proxy" 2>/dev/null || true
  done
done
for dir in "${dirs[@]}"; do
  # shellcheck disable=SC2086 # word lists
  echo "median $dir: $(median ${all[$dir]}) ms (sorted: $(printf '%s\n' ${all[$dir]} | sort -g | tr '\n' ' '))"
done
