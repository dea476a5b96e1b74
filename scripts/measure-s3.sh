#!/usr/bin/env bash
# The S3 origin's throughput target (issue 11): a 1 GiB object, cold at the proxy, read through server + proxy +
# client, against what the AWS SDK alone reads from the same Ceph RGW (one GET of the whole object as a range, as the
# origin asks, the SDK's fastest way: see bench/S3Read); and the proxy's peak RSS (VmHWM).
# Server, proxy and client are the native executables (MEASURE_S3_JIT=1: the dotnet builds).
# Rounds alternate the SDK, the origin read straight by the client, and the proxy (restarted with an empty cache
# each round). First, once, the very first
# access (the origin reads the object once more to compute its digest). Starts Ceph with scripts/ceph.sh if it is
# not running, and stops it again at the end in that case.
# Usage: scripts/measure-s3.sh [SIZE_MIB=1024] [ROUNDS=3] [WORK_DIR]
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
rounds=${2:-3}
work=${3:-$(mktemp -d -t fileproxy-s3-XXXXXX)}
artifacts="$work/artifacts"
dotnet build bench/S3Read -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
bin() { echo "$artifacts/bin/$1/release/$1.dll"; }
# Our programs as users run them: the native executables (scripts/publish.sh). MEASURE_S3_JIT=1 runs the dotnet builds.
if [ "${MEASURE_S3_JIT:-0}" = 1 ]; then
  dotnet build FileProxy.sln -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
  server=(dotnet "$(bin FileProxy.Server)"); proxy_cmd=(dotnet "$(bin FileProxy.Proxy)"); client=(dotnet "$(bin FileProxy.Client)")
else
  native=$(scripts/publish.sh "$work/native" | tail -1)
  server=("$native/fileproxy-server"); proxy_cmd=("$native/fileproxy-proxy"); client=("$native/fileproxy-client")
fi

started_ceph=0
scripts/ceph.sh status >/dev/null 2>&1 || started_ceph=1
eval "$(scripts/ceph.sh up)"
endpoint=$FILEPROXY_S3_ENDPOINT
bucket=bench

file="$work/big.bin"
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -ne $((size_mib << 20)) ]; then
  head -c $((size_mib << 20)) /dev/urandom > "$file"
fi
dotnet "$(bin S3Read)" put "$endpoint" "$bucket" big.bin "$file"

origin_port=$(free_port); proxy_port=$(free_port)
origin=; proxy=
cleanup() {
  for pid in $proxy $origin; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((started_ceph)); then scripts/ceph.sh down; fi
}
trap cleanup EXIT
rm -f "$work/digests.tsv"
"${server[@]}" --s3-endpoint "$endpoint" --bucket "$bucket" --s3-digest-index "$work/digests.tsv" \
  --port "$origin_port" --listen 127.0.0.1 --log-level Warning & origin=$!
wait_port "$origin_port"

start_proxy() {
  if [ -n "$proxy" ]; then kill "$proxy"; wait "$proxy" 2>/dev/null || true; fi
  rm -rf "$work/cache"
  "${proxy_cmd[@]}" 127.0.0.1 "$origin_port" "$proxy_port" --listen 127.0.0.1 --cache-dir "$work/cache" \
    --log-level Warning & proxy=$!
  wait_port "$proxy_port"
}
hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# The client's CPU time comes from its own rusage (/usr/bin/time).
timed=(); if [ -x /usr/bin/time ]; then timed=(/usr/bin/time -f '%U %S' -o "$work/client.cpu"); fi
# The client's own "in N ms" / "in N s": the transfer, without the client process's start.
client_ms() {
  "${timed[@]}" "${client[@]}" big.bin --proxy "127.0.0.1:${1:-$proxy_port}" -o /dev/null 2>&1 | tee -a "$work/client.log" \
    | sed -nE 's/.* in ([0-9.]+) (ms|s), .*blake3 verified.*/\1 \2/p' | awk '{ print ($2 == "s") ? $1 * 1000 : $1 }'
}
sdk_ms() { dotnet "$(bin S3Read)" get "$endpoint" "$bucket" big.bin | sed -nE 's/.* in ([0-9.]+) ms,.*/\1/p'; }
mbs() { awk -v ms="$1" -v mib="$size_mib" 'BEGIN { printf "%.0f", mib * 1048576 / (ms / 1000) / 1e6 }'; }

echo "for the record, the SDK's plain GET (it checks the body's MD5 against the ETag): $(dotnet "$(bin S3Read)" get "$endpoint" "$bucket" big.bin plain)"
start_proxy
first=$(client_ms)
[ -n "$first" ] || { echo "first access failed; see $work/client.log" >&2; exit 1; }
echo "first access (origin hashes, then sends): $first ms = $(mbs "$first") MB/s; proxy VmHWM $(hwm "$proxy") MiB"

sdk_all=(); origin_all=(); proxy_all=(); hwm_all=()
for round in $(seq 1 "$rounds"); do
  s=$(sdk_ms)
  o=$(client_ms "$origin_port")
  [ -n "$o" ] || { echo "round $round: transfer from the origin failed; see $work/client.log" >&2; exit 1; }
  origin_all+=("$o")
  start_proxy
  rgw=$(pgrep -x radosgw | head -1); osd=$(pgrep -x ceph-osd | head -1)
  before=("$(cpu_ticks "$rgw")" "$(cpu_ticks "$osd")" "$(cpu_ticks "$origin")" "$(cpu_ticks "$proxy")")
  p=$(client_ms)
  [ -n "$p" ] || { echo "round $round: transfer failed; see $work/client.log" >&2; exit 1; }
  h=$(hwm "$proxy")
  echo "round $round: CPU-seconds of the transfer through the proxy: rgw $(ticks_to_secs $(($(cpu_ticks "$rgw") - before[0])))," \
    "osd $(ticks_to_secs $(($(cpu_ticks "$osd") - before[1]))), origin $(ticks_to_secs $(($(cpu_ticks "$origin") - before[2]))), proxy $(ticks_to_secs $(($(cpu_ticks "$proxy") - before[3])))," \
    "client $(awk '{ printf "%.2f", $1 + $2 }' "$work/client.cpu" 2>/dev/null || echo '?') (2 cores: at most $(awk -v p="$p" 'BEGIN { printf "%.2f", 2 * p / 1000 }') in $p ms)"
  sdk_all+=("$s"); proxy_all+=("$p"); hwm_all+=("$h")
  echo "round $round: sdk alone $s ms = $(mbs "$s") MB/s; origin alone $o ms = $(mbs "$o") MB/s;" \
    "through the proxy (cold) $p ms = $(mbs "$p") MB/s;" \
    "ratio $(awk -v s="$s" -v p="$p" 'BEGIN { printf "%.2f", s / p }'); proxy VmHWM $h MiB"
done
sm=$(median "${sdk_all[@]}"); om=$(median "${origin_all[@]}"); pm=$(median "${proxy_all[@]}")
echo "median: sdk alone $sm ms = $(mbs "$sm") MB/s; origin alone $om ms = $(mbs "$om") MB/s" \
  "(origin/sdk $(awk -v s="$sm" -v o="$om" 'BEGIN { printf "%.2f", s / o }')); through the proxy (cold) $pm ms = $(mbs "$pm") MB/s;" \
  "proxy/sdk $(awk -v s="$sm" -v p="$pm" 'BEGIN { printf "%.2f", s / p }') (target >= 0.8);" \
  "proxy VmHWM max $(printf '%s\n' "${hwm_all[@]}" | sort -g | tail -1) MiB (target < 100); origin VmHWM $(hwm "$origin") MiB"

# Byte-exact check against the uploaded file (a hit now), outside the timings.
"${client[@]}" big.bin --proxy "127.0.0.1:$proxy_port" -o "$work/out.bin" >/dev/null
cmp -s "$file" "$work/out.bin" && echo "output: byte-exact" || { echo "output: DIFFERENT" >&2; exit 1; }
rm -f "$work/out.bin"
