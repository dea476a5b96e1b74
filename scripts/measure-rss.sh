#!/usr/bin/env bash
# Measures each process's peak RSS (VmHWM) while one large file passes origin -> proxy -> client, cold (miss)
# and then warm (hit). Usage: scripts/measure-rss.sh [SIZE_GIB=4] [WORK_DIR]
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
cd "$(dirname "$0")/.."
size_gib=${1:-4}
work=${2:-$(mktemp -d -t fileproxy-rss-XXXXXX)}
artifacts="$work/artifacts"
dotnet build FileProxy.sln -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
bin() { echo "$artifacts/bin/FileProxy.$1/release/FileProxy.$1.dll"; }

mkdir -p "$work/root" "$work/out"
file="$work/root/big.bin"
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -ne $((size_gib << 30)) ]; then
  echo "writing ${size_gib} GiB of random bytes to $file"
  head -c $((size_gib << 30)) /dev/urandom > "$file"
fi
rm -rf "$work/cache"

origin_port=$(free_port); proxy_port=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
dotnet "$(bin Server)" --root "$work/root" --port "$origin_port" --listen 127.0.0.1 --log-level Warning & pids+=($!); origin=$!
dotnet "$(bin Proxy)" 127.0.0.1 "$origin_port" "$proxy_port" --listen 127.0.0.1 --cache-dir "$work/cache" --log-level Warning & pids+=($!); proxy=$!
for p in "$origin_port" "$proxy_port"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done

hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
fetch() {
  local label=$1 peak=0 pid
  dotnet "$(bin Client)" big.bin --proxy "127.0.0.1:$proxy_port" -o "$work/out/big.bin" & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local now; now=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
    (( now > peak )) && peak=$now
    sleep 0.2
  done
  wait "$pid"
  cmp -s "$file" "$work/out/big.bin" && same=byte-exact || same=DIFFERENT
  echo "$label: client peak RSS ${peak} MiB (sampled); origin VmHWM $(hwm "$origin") MiB; proxy VmHWM $(hwm "$proxy") MiB; output $same"
}
fetch "cold (miss)"
fetch "warm (hit) "
