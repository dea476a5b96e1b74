#!/usr/bin/env bash
# One cold 1 GiB miss through our native origin + proxy + client, for comparing two builds of the programs: rounds
# alternate the builds (A B A B ...), each round a fresh proxy with an empty cache in front of an origin whose page
# cache already holds the file. Prints per round the client's transfer time, its CPU, and the CPU-seconds the origin
# and the proxy spent on the transfer; then medians per build.
# Usage: scripts/measure-cold-miss.sh DIR_A [DIR_B] [ROUNDS=3] [SIZE_MIB=1024]
#   DIR_*: directories holding fileproxy-server, fileproxy-proxy and fileproxy-client (scripts/publish.sh DIR).
# Listens on 127.0.0.1 only, on two free ports; everything it starts is stopped when it exits.
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
dirs=("$1"); [ -n "${2:-}" ] && [ -d "${2:-}" ] && dirs+=("$2")
rounds=${3:-3}
size_mib=${4:-1024}
work=$(mktemp -d -t fileproxy-cold-XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/root"
head -c $((size_mib << 20)) /dev/urandom > "$work/root/big.bin"


declare -A wall_all cpu_all
for round in $(seq 1 "$rounds"); do
  for dir in "${dirs[@]}"; do
    origin_port=$(free_port); proxy_port=$(free_port)
    "$dir/fileproxy-server" --root "$work/root" --port "$origin_port" --listen 127.0.0.1 --log-level Warning & origin=$!
    rm -rf "$work/cache"
    "$dir/fileproxy-proxy" 127.0.0.1 "$origin_port" "$proxy_port" --listen 127.0.0.1 --cache-dir "$work/cache" --log-level Warning & proxy=$!
    pids=("$origin" "$proxy")
    wait_port "$origin_port"; wait_port "$proxy_port"
    "$dir/fileproxy-client" big.bin --proxy "127.0.0.1:$origin_port" -o /dev/null 2>/dev/null # the origin hashes it once
    o0=$(cpu_ticks "$origin"); p0=$(cpu_ticks "$proxy")
    line=$(/usr/bin/time -f 'cpu %U %S' "$dir/fileproxy-client" big.bin --proxy "127.0.0.1:$proxy_port" -o /dev/null 2>&1)
    ms=$(sed -nE 's/.* in ([0-9.]+) (ms|s), .*cache miss.*/\1 \2/p' <<<"$line" | awk '{ print ($2 == "s") ? $1 * 1000 : $1 }')
    [ -n "$ms" ] || { echo "round $round ($dir): the transfer failed: $line" >&2; exit 1; }
    client_cpu=$(awk '/^cpu/ { printf "%.2f", $2 + $3 }' <<<"$line")
    sleep 0.2 # the proxy's commit and fsync run after the last byte: count them too
    echo "round $round $dir: $ms ms; CPU-s client $client_cpu, origin $(ticks_to_secs $(($(cpu_ticks "$origin") - o0))), proxy $(ticks_to_secs $(($(cpu_ticks "$proxy") - p0)))"
    wall_all[$dir]+="$ms "; cpu_all[$dir]+="$(ticks_to_secs $(($(cpu_ticks "$proxy") - p0))) "
    kill "$origin" "$proxy"; wait "$origin" "$proxy" 2>/dev/null || true; pids=()
  done
done
for dir in "${dirs[@]}"; do
  # shellcheck disable=SC2086 # word lists
  echo "median $dir: $(median ${wall_all[$dir]}) ms, proxy CPU $(median ${cpu_all[$dir]}) s"
done
