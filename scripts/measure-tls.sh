#!/usr/bin/env bash
# What TLS costs on the warm-hit path: the same file fetched through two proxies over one origin, one plain and one
# with TLS on its listening side, in alternating pairs; prints each run and the medians. Loopback only.
# usage: scripts/measure-tls.sh [SIZE_MIB=1024] [PAIRS=5]
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
pairs=${2:-5}
work=$(mktemp -d /tmp/fileproxy-tls.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

dotnet build -c Release --nologo -v q >/dev/null
bin() { echo "src/FileProxy.$1/bin/Release/net10.0/FileProxy.$1.dll"; }
mkdir -p "$work/root"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/root/big.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

origin=$(free_port); plain=$(free_port); tls=$(free_port)
dotnet "$(bin Server)" --root "$work/root" --port "$origin" --listen 127.0.0.1 --log-level Warning & pids+=($!)
dotnet "$(bin Proxy)" 127.0.0.1 "$origin" "$plain" --listen 127.0.0.1 --cache-dir "$work/c1" --no-fsync --log-level Warning & pids+=($!)
dotnet "$(bin Proxy)" 127.0.0.1 "$origin" "$tls" --listen 127.0.0.1 --cache-dir "$work/c2" --no-fsync --log-level Warning \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" & pids+=($!)
for port in "$origin" "$plain" "$tls"; do
  for _ in $(seq 100); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.1; done
done
client() { dotnet "$(bin Client)" big.bin -o /dev/null "$@" 2>&1 >/dev/null | tail -1; }
seconds() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
# Warm both caches first.
client -p "127.0.0.1:$plain" >/dev/null; client -p "127.0.0.1:$tls" --tls-ca "$work/cert.pem" >/dev/null
plain_runs=(); tls_runs=()
for i in $(seq "$pairs"); do
  p=$(seconds dotnet "$(bin Client)" big.bin -o /dev/null -p "127.0.0.1:$plain")
  t=$(seconds dotnet "$(bin Client)" big.bin -o /dev/null -p "127.0.0.1:$tls" --tls-ca "$work/cert.pem")
  echo "pair $i: plain ${p} s, tls ${t} s"
  plain_runs+=("$p"); tls_runs+=("$t")
done
mp=$(median "${plain_runs[@]}"); mt=$(median "${tls_runs[@]}")
echo "warm hit, ${size_mib} MiB, whole client process: plain median ${mp} s, TLS median ${mt} s, TLS/plain $(awk -v a="$mt" -v b="$mp" 'BEGIN {printf "%.2f", a/b}')"
