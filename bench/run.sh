#!/usr/bin/env bash
# FileProxy benchmark: our origin + proxy against nginx proxy_cache and Varnish (both in front of an nginx origin),
# over the same files on loopback, with the same workloads, interleaved, several runs each. Prints the medians and
# the ratio of ours to the better of the other two, and writes them to bench/out/. See docs/BENCHMARKS.md.
#
#   bench/run.sh            full mode: 1 GiB / 100 MiB files, 5 runs
#   bench/run.sh --quick    smaller files, 3 runs, under 2 minutes (CI's smoke test)
#
# Environment: BENCH_RUNS (runs), BENCH_PORT_BASE (first of the loopback ports used, default 18000),
# BENCH_WORK (work directory, default bench/work), BENCH_PROXY_ARGS (extra options for our proxy, e.g. --no-fsync),
# BENCH_NO_BUILD=1 (reuse the last build), BENCH_WORKLOADS (which of a b c u to run, default all),
# BENCH_HTTP_CLIENT=curl (fetch from nginx and Varnish with curl instead of
# our tool's HTTP client), BENCH_CLIENT_B (a second client executable timed beside ours in workload u: an A/B),
# BENCH_C_LOAD=wrk (workload c's unpaced load on nginx and Varnish from wrk instead of our load generator).
# Our programs run as native executables (scripts/publish.sh), or on the .NET runtime where they cannot be linked.
# Installs nginx, varnish, wrk, iperf3 and curl with apt-get when missing (needs root). Everything it starts is
# stopped when it exits, and everything listens on and talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
started_at=$(date +%s)

mode=full
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [[ $mode == quick ]]; then
  a_bytes=$((64 << 20)); b_bytes=$((16 << 20)); c_files=256; runs=${BENCH_RUNS:-3}; iperf_seconds=1; u_rounds=1
  c_requests=10000; c_rates=(20000); c_paced_seconds=1; c_paced_rounds=2
else
  a_bytes=$((1 << 30)); b_bytes=$((100 << 20)); c_files=1000; runs=${BENCH_RUNS:-5}; iperf_seconds=3; u_rounds=2
  # Workload c's unpaced run: about 1.5 s here, so that its tail is not one scheduling event's luck.
  c_requests=100000
  # Workload c's paced runs, requests/s: light, and moderate (a third of what ours serves here unpaced, over half of
  # nginx's and about two thirds of Varnish's, which often falls behind at it).
  c_rates=(2000 20000)
  # Each paced run lasts this long (RATE × it requests), so that the machine's periodic work (here kdamond samples
  # every 500 ms) lands in each system's runs alike, not in one 0.5 s run by luck.
  c_paced_seconds=3
  # Paced rounds per run, the systems in turn: on this machine one 5 s run's p50 lands in one of two modes 20-40 %
  # apart, whichever system it measures (where the kernel happens to place the generator's and the cache's threads:
  # a wake-up across the two vCPUs costs tens of µs here), so one run per system per run decided the row by luck.
  c_paced_rounds=3
fi
workloads=" ${BENCH_WORKLOADS:-a b c u} "
u_mid_bytes=$((10 << 20)) # workload u: 4 KiB (a small file), 10 MiB, and workload a's big file
b_clients=50
c_file_bytes=4096
c_connections=64
c_warmup=$((c_files > 5000 ? c_files : 5000)) # untimed first, on the same connections
origin_rate=50000000 # bytes/s, workload b's cold runs

base=${BENCH_PORT_BASE:-18000}
port_ours=$base            port_ours_origin=$((base + 1))  port_ours_relay=$((base + 2))
port_nginx=$((base + 10))  port_nginx_origin=$((base + 11)) port_nginx_relay=$((base + 12))
port_varnish=$((base + 20)) port_varnish_admin=$((base + 21)) port_varnish_relay=$((base + 22))
port_iperf=$((base + 30)) # up to 4 ports
iperf_streams=$(nproc); ((iperf_streams > 4)) && iperf_streams=4

work=$(mkdir -p "${BENCH_WORK:-bench/work}" && cd "${BENCH_WORK:-bench/work}" && pwd)
files=$work/files
run=$work/run
art=$work/artifacts
results=$run/results.jsonl
log() { printf '%(%H:%M:%S)T %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------------------------------------------------- setup

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v varnishd >/dev/null || missing+=(varnish)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v iperf3 >/dev/null || missing+=(iperf3)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    if ((EUID != 0)); then
      echo "missing ${missing[*]}: run as root, or install them first" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Builds only what runs here (the three programs and the bench tool), into the work directory's own artifacts
# path so that builds elsewhere in the tree are not disturbed. BENCH_NO_BUILD=1 reuses the last build.
build() {
  [[ ${BENCH_NO_BUILD:-} == 1 && -f $(dll Bench) ]] && { [[ -x $art/native/fileproxy-bench ]] && native=1; return 0; }
  log "building (Release, artifacts in $art)"
  cat >"$work/bench.slnx" <<EOF
<Solution>
  <Project Path="$repo/src/FileProxy.Server/FileProxy.Server.csproj" />
  <Project Path="$repo/src/FileProxy.Proxy/FileProxy.Proxy.csproj" />
  <Project Path="$repo/src/FileProxy.Client/FileProxy.Client.csproj" />
  <Project Path="$repo/bench/FileProxy.Bench/FileProxy.Bench.csproj" />
</Solution>
EOF
  dotnet build "$work/bench.slnx" -c Release --artifacts-path "$art" -v quiet -nologo >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
  log "publishing the native executables into $art/native"
  if "$repo/scripts/publish.sh" --bench "$art/native" >/dev/null; then
    native=1
  else
    log "no native executables: running our programs on the .NET runtime"
  fi
}
dll() { echo "$art/bin/FileProxy.$1/release/FileProxy.$1.dll"; }
native=0
run_ours() { # PROGRAM ARGUMENTS...: one of our programs (Server, Proxy, Client, Bench), native where it could be built
  local program=$1; shift
  if ((native)); then exec "$art/native/fileproxy-${program,,}" "$@"; else exec dotnet "$(dll "$program")" "$@"; fi
}

# Random contents; regenerated only when a size changes.
make_file() { # PATH BYTES
  [[ -f $1 && $(stat -c %s "$1") == "$2" ]] && return 0
  head -c "$2" /dev/urandom >"$1.tmp" && mv "$1.tmp" "$1"
}
make_files() {
  log "preparing files in $files"
  mkdir -p "$files"
  make_file "$files/big.bin" "$a_bytes"
  make_file "$files/mid.bin" "$b_bytes"
  make_file "$files/prime.bin" 65536
  make_file "$files/user-mid.bin" "$u_mid_bytes"
  if [[ ! -f $files/small/.count || $(cat "$files/small/.count") != "$c_files" ]]; then
    rm -rf "$files/small" && mkdir -p "$files/small"
    head -c $((c_files * c_file_bytes)) /dev/urandom | (cd "$files/small" && split -b "$c_file_bytes" -d -a 5 - f)
    echo "$c_files" >"$files/small/.count"
  fi
  (cd "$files" && ls small | sed 's|^|small/|') >"$work/names.txt"
}

# ------------------------------------------------------------------------------------------------------ processes

declare -A pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for name in "${!pids[@]}"; do stop "$name"; done
  # The caches' contents can be gigabytes; configs and logs stay for a look afterwards.
  rm -rf "$run/cache-ours" "$run/nginx-cache/cache" "$run/varnish" "$run/out"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # NAME COMMAND...: runs in the background, output in logs/NAME.log
  local name=$1; shift
  "$@" >>"$run/logs/$name.log" 2>&1 &
  pids[$name]=$!
}

stop() { # NAME: SIGTERM, then SIGKILL after 10 s
  local name=$1 pid=${pids[$1]:-}
  [[ -n $pid ]] || return 0
  unset "pids[$name]"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

wait_port() { # PORT NAME
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    if [[ -n ${2:-} && -n ${pids[$2]:-} ]] && ! kill -0 "${pids[$2]}" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "$2 is not listening on 127.0.0.1:$1; its log:" >&2
  tail -20 "$run/logs/$2.log" >&2 || true
  exit 1
}

check_ports_free() {
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use: stop what listens there, or set BENCH_PORT_BASE" >&2
      exit 1
    fi
  done
}

# A process and all its descendants, from /proc.
tree() {
  local pid=$1
  echo "$pid"
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree "$child"; done
}
peak_rss_kib() { # NAME: the sum of VmHWM over the process tree
  local total=0 kib
  for pid in $(tree "${pids[$1]}"); do
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

fill() { # TEMPLATE OUTPUT KEY=VALUE...
  local template=$1 output=$2; shift 2
  local args=(-e "s|@RUN@|$run|g" -e "s|@FILES@|$files|g" -e "s|@USER@|$( ((EUID == 0)) && echo 'user root;')|g")
  for pair in "$@"; do args+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
  sed "${args[@]}" "$repo/bench/conf/$template" >"$output"
}

start_origins() {
  log "starting origins"
  start ours-origin run_ours Server --root "$files" --listen 127.0.0.1 --port "$port_ours_origin" --log-level Warning
  mkdir -p "$run/nginx-origin"
  fill nginx-origin.conf "$run/nginx-origin.conf" PORT="$port_nginx_origin"
  start nginx-origin nginx -e "$run/logs/nginx-origin.error.log" -p "$run/nginx-origin" -c "$run/nginx-origin.conf"
  wait_port "$port_ours_origin" ours-origin
  wait_port "$port_nginx_origin" nginx-origin
  # Our origin hashes each file once, on first request; do that before anything is timed.
  for name in big.bin mid.bin; do
    (run_ours Client stat "$name" --proxy "127.0.0.1:$port_ours_origin") >/dev/null
  done
}

# Starts SYSTEM's cache, empty, fetching from its origin directly (UPSTREAM=direct) or through its relay (relay).
start_cache() { # SYSTEM UPSTREAM
  local system=$1 upstream
  stop "$system"
  case $system in
    ours)
      upstream=$([[ $2 == relay ]] && echo "$port_ours_relay" || echo "$port_ours_origin")
      rm -rf "$run/cache-ours"
      # shellcheck disable=SC2086 # BENCH_PROXY_ARGS is a list of options
      start ours run_ours Proxy 127.0.0.1 "$upstream" "$port_ours" --listen 127.0.0.1 --cache-dir "$run/cache-ours" \
        --revalidate-after 1d --log-level Warning ${BENCH_PROXY_ARGS:-}
      wait_port "$port_ours" ours
      ;;
    nginx)
      upstream=$([[ $2 == relay ]] && echo "$port_nginx_relay" || echo "$port_nginx_origin")
      rm -rf "$run/nginx-cache" && mkdir -p "$run/nginx-cache"
      fill nginx-cache.conf "$run/nginx-cache.conf" PORT="$port_nginx" UPSTREAM_PORT="$upstream" CACHE_SIZE=$((4 * a_bytes))
      start nginx nginx -e "$run/logs/nginx-cache.error.log" -p "$run/nginx-cache" -c "$run/nginx-cache.conf"
      wait_port "$port_nginx" nginx
      ;;
    varnish)
      upstream=$([[ $2 == relay ]] && echo "$port_varnish_relay" || echo "$port_nginx_origin")
      rm -rf "$run/varnish" && mkdir -p "$run/varnish"
      fill varnish.vcl "$run/varnish.vcl" UPSTREAM_PORT="$upstream"
      head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run/varnish.secret"
      start varnish varnishd -F -j none -n "$run/varnish" -a "127.0.0.1:$port_varnish" -T "127.0.0.1:$port_varnish_admin" \
        -S "$run/varnish.secret" -f "$run/varnish.vcl" -s "malloc,$((2 * a_bytes + (256 << 20)))"
      wait_port "$port_varnish" varnish
      ;;
  esac
  # Every cache answers one small request first, so that no timed request pays for first-use costs (JIT, pools).
  fetch "$system" prime.bin 1 /dev/null >/dev/null
}

start_relay() { # SYSTEM: throttled relay from SYSTEM's cache to its origin, with fresh counters
  local system=$1 listen target
  case $system in
    ours) listen=$port_ours_relay target=$port_ours_origin ;;
    nginx) listen=$port_nginx_relay target=$port_nginx_origin ;;
    varnish) listen=$port_varnish_relay target=$port_nginx_origin ;;
  esac
  stop "$system-relay"
  rm -f "$run/$system-relay.json"
  start "$system-relay" run_ours Bench relay --listen "127.0.0.1:$listen" --target "127.0.0.1:$target" \
    --rate "$origin_rate" --stats "$run/$system-relay.json"
  wait_port "$listen" "$system-relay"
}

port_of() { local p="port_$1"; echo "${!p}"; }

# ------------------------------------------------------------------------------------------------------ workloads

record() { # TYPE RUN SYSTEM [TEST]: prefixes each JSON line on stdin and appends it to the results
  local fields="\"type\":\"$1\",\"run\":$2,\"system\":\"$3\""
  [[ -n ${4:-} ]] && fields+=",\"test\":\"$4\""
  sed "s/^{/{$fields,/" | tee -a "$results"
}

# CLIENTS concurrent fetches of NAME from SYSTEM, to OUTPUT (a file; client i > 0 writes OUTPUT.i) or /dev/null.
# One JSON line per client: ok, ttfb_s, total_s, bytes, cache. The same client (FileProxy.Bench get, our protocol or
# HTTP) for every system, unless BENCH_HTTP_CLIENT=curl.
fetch() { # SYSTEM NAME CLIENTS OUTPUT
  local system=$1 name=$2 clients=$3 output=$4 port
  port=$(port_of "$system")
  if [[ $system == ours || ${BENCH_HTTP_CLIENT:-} != curl ]]; then
    local args=(get "$name" --proxy "127.0.0.1:$port" --clients "$clients" --warmup prime.bin)
    [[ $system != ours ]] && args+=(--http)
    [[ $output != /dev/null ]] && args+=(-o "$output")
    (run_ours Bench "${args[@]}") || true
  else
    local args=(-sS --no-progress-meter --noproxy '*' --parallel --parallel-immediate --parallel-max "$clients"
      -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download} %header{x-cache-status}\n')
    for i in $(seq 0 $((clients - 1))); do
      args+=(-o "$([[ $output == /dev/null || $i == 0 ]] && echo "$output" || echo "$output.$i")" "http://127.0.0.1:$port/$name")
    done
    curl "${args[@]}" | awk '{ printf "{\"client\":%d,\"ok\":%s,\"ttfb_s\":%s,\"total_s\":%s,\"bytes\":%s,\"cache\":\"%s\"}\n",
      NR - 1, ($1 == 200 ? "true" : "false"), $2, $3, $4, $5 }' || true
  fi
}

load() { # SYSTEM RUN [RATE ROUND]: workload c's load, as fast as it goes or (RATE > 0) paced at RATE requests/s
  local system=$1 run_no=$2 rate=${3:-0} round=${4:-} port requests=$c_requests
  port=$(port_of "$system")
  ((rate == 0)) || requests=$((rate * c_paced_seconds))
  # As in workloads a and u: no dirty pages of an earlier workload (workload b's cache files, which nginx does not
  # fsync) left for the kernel to write back while this one runs, whichever system wrote them.
  sync
  # One load generator for all three (HTTP for nginx and Varnish), so that their latencies come from the same process
  # on the same threads; BENCH_C_LOAD=wrk loads nginx and Varnish with wrk instead (not paced: wrk cannot).
  if [[ $system != ours && ${BENCH_C_LOAD:-} == wrk && $rate == 0 ]]; then
    wrk -t1 -c"$c_connections" -d60s -s "$repo/bench/wrk-load.lua" "http://127.0.0.1:$port/" "$work/names.txt" "$c_warmup" \
      >"$run/logs/wrk-warmup.log" 2>&1 || true
    wrk -t1 -c"$c_connections" -d60s -s "$repo/bench/wrk-load.lua" "http://127.0.0.1:$port/" "$work/names.txt" "$c_requests" \
      2>&1 | tee "$run/logs/wrk.log" | grep '^{"requests"' || true
  else
    # shellcheck disable=SC2046 # the one option or none
    (run_ours Bench load --proxy "127.0.0.1:$port" --names "$work/names.txt" --connections "$c_connections" \
      --requests "$requests" --warmup "$c_warmup" --rate "$rate" $([[ $system == ours ]] || echo --http) \
      --trace "$run/logs/load-$system-$run_no-$rate${round:+-$round}.txt") || true
  fi | sed "s/^{/{${round:+\"round\":$round,}/" | record load "$run_no" "$system"
}

workload_a() { # SYSTEM RUN: 1 GiB, one client, to a file: cold miss, then warm hit
  local system=$1 run_no=$2
  start_cache "$system" direct
  for test in a-cold a-warm; do
    # As in workload u: no dirty pages of an earlier fetch (a client's output, a cache's file) left to write back
    # while this one runs, whichever system wrote them.
    sync
    fetch "$system" big.bin 1 "$run/out/big.bin" | record fetch "$run_no" "$system" "$test" | summarize
    rm -f "$run/out/big.bin"
  done
}

workload_b() { # SYSTEM RUN: 50 clients, cold through an origin limited to 50 MB/s, then warm; origin bytes; RSS
  local system=$1 run_no=$2
  start_relay "$system"
  start_cache "$system" relay
  for test in b-cold b-warm; do
    fetch "$system" mid.bin "$b_clients" /dev/null | record fetch "$run_no" "$system" "$test" | summarize
  done
  sleep 0.2 # the relay rewrites its counters every 100 ms
  record origin "$run_no" "$system" <"$run/$system-relay.json" >/dev/null
  echo "{\"rss_kib\":$(peak_rss_kib "$system")}" | record rss "$run_no" "$system" >/dev/null
}

# Workload c: small files, 64 persistent connections, all hits after an untimed first pass. All three caches are up
# at once (after workload b each is still up, behind its relay; run alone, BENCH_WORKLOADS=c, each starts direct):
# first each one's closed loop, then c_paced_rounds rounds of the paced runs with the systems in turn, a different
# one first in each round, so that the machine's drift hits all of them alike (as in workload u). The report takes
# each system's median over a run's rounds.
workload_c() { # RUN
  local run_no=$1 system rate round shift_by turn
  for system in "${order[@]}"; do [[ -n ${pids[$system]:-} ]] || start_cache "$system" direct; done
  for system in "${order[@]}"; do load "$system" "$run_no" | sed 's/^/    /' >&2; done
  for round in $(seq 1 "$c_paced_rounds"); do
    shift_by=$(((round - 1) % ${#order[@]}))
    turn=("${order[@]:shift_by}" "${order[@]:0:shift_by}")
    for system in "${turn[@]}"; do
      for rate in "${c_rates[@]}"; do load "$system" "$run_no" "$rate" "$round" | sed 's/^/    /' >&2; done
    done
  done
  for system in "${order[@]}"; do
    stop "$system"
    stop "$system-relay"
  done
}

# Whole-process fetches, as a user runs them: `fileproxy-client NAME -o FILE` against `curl -o FILE` through nginx
# and Varnish, warm hits, 4 KiB, 10 MiB and workload a's big file; u_rounds short rounds with the systems in turn,
# so that the machine's drift hits all of them. One JSON line per fetch: wall and CPU time, peak RSS (process-time.py).
# With BENCH_CLIENT_B (another client executable, e.g. an older build), it fetches through our proxy too, beside
# ours, before it in odd rounds and after it in even ones: recorded as system "ours-b" (in results.jsonl, not the table).
u_systems() { # ROUND
  local system
  for system in "${order[@]}"; do
    if [[ $system == ours && -n ${BENCH_CLIENT_B:-} ]]; then
      if (($1 % 2)); then echo ours-b ours; else echo ours ours-b; fi
    else
      echo "$system"
    fi
  done
}
workload_u() { # RUN
  local run_no=$1 system test name round port output=$run/out/user.bin
  for system in "${order[@]}"; do start_cache "$system" direct; done
  for round in $(seq 0 "$u_rounds"); do # round 0 fills the caches and is not recorded
    for test in u-small u-mid u-big; do
      case $test in u-small) name=small/f00000 ;; u-mid) name=user-mid.bin ;; u-big) name=big.bin ;; esac
      for system in $(u_systems "$round"); do
        port=$(port_of "${system%-b}")
        rm -f "$output"
        # Every fetch starts with no dirty pages of earlier ones left to write back: a 1 GiB write that followed
        # another one's took from 0.9 to 3.2 s (its writes cost ten times the CPU), for curl and our client alike.
        sync
        if [[ $system == ours-b ]]; then
          set -- "$BENCH_CLIENT_B" "$name" --proxy "127.0.0.1:$port" -o "$output"
        elif [[ $system == ours ]]; then
          set -- "$name" --proxy "127.0.0.1:$port" -o "$output"
          if ((native)); then set -- "$art/native/fileproxy-client" "$@"; else set -- dotnet "$(dll Client)" "$@"; fi
        else
          set -- curl -sS --noproxy '*' -o "$output" "http://127.0.0.1:$port/$name"
        fi
        if ((round == 0)); then
          ("$@") >/dev/null || log "$system $test: the first fetch failed"
          continue
        fi
        line=$("$repo/bench/process-time.py" "$@" | tail -1)
        echo "{\"bytes\":$(stat -c %s "$output" 2>/dev/null || echo 0),${line#\{}" | record user "$run_no" "$system" "$test" >/dev/null
      done
    done
  done
  for system in "${order[@]}"; do stop "$system"; done
}

# One line per test on stderr: clients, slowest total time, median first-byte time, cache outcomes, failures.
summarize() {
  awk -F'[,:}]' '
    function value(key,   i) { for (i = 1; i < NF; i++) if ($i == "\"" key "\"") { v = $(i + 1); gsub(/"/, "", v); return v } return "" }
    {
      n++; ttfb[n] = value("ttfb_s") + 0; total = value("total_s") + 0; if (total > max) max = total
      caches[value("cache")]++; if (value("ok") != "true") bad++
      test = value("test"); sys = value("system")
    }
    END {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && ttfb[j - 1] > ttfb[j]; j--) { t = ttfb[j]; ttfb[j] = ttfb[j - 1]; ttfb[j - 1] = t }
      out = ""; for (c in caches) out = out " " c "=" caches[c]
      printf "    %-8s %-7s %2d client(s): all done in %.3f s, median ttfb %.1f ms,%s%s\n",
        sys, test, n, max, ttfb[int((n + 1) / 2)] * 1000, out, (bad ? ", " bad " FAILED" : "")
    }' >&2
}

# Loopback TCP throughput in bytes/s, into $measured: STREAMS iperf3 pairs at once (iperf3 3.12 runs one stream per
# process), summed. Not in a subshell, so that the exit trap knows the servers' ids.
loopback_bytes_per_s() { # STREAMS
  local streams=$1 clients=() i
  for i in $(seq 0 $((streams - 1))); do
    start "iperf3-$i" iperf3 -s -B 127.0.0.1 -p $((port_iperf + i))
    wait_port $((port_iperf + i)) "iperf3-$i"
  done
  for i in $(seq 0 $((streams - 1))); do
    iperf3 -c 127.0.0.1 -p $((port_iperf + i)) -t "$iperf_seconds" -f m >"$run/logs/iperf3-client-$i.log" 2>&1 &
    clients+=($!)
  done
  wait "${clients[@]}"
  for i in $(seq 0 $((streams - 1))); do stop "iperf3-$i"; done
  measured=$(cat "$run"/logs/iperf3-client-*.log | awk '/receiver/ {mbits += $(NF - 2)} END {printf "%.0f", mbits * 1e6 / 8}')
  rm -f "$run"/logs/iperf3-client-*.log
}

# Sequential write of a file as big as workload a's, in bytes/s, with dd's extra options (e.g. conv=fdatasync).
file_write_bytes_per_s() { # [DD OPTION]
  rm -f "$run/dd.bin"
  dd if=/dev/zero of="$run/dd.bin" bs=1M count=$((a_bytes >> 20)) "$@" 2>&1 | awk '/copied/ {printf "%.0f", $1 / $(NF - 3)}'
  rm -f "$run/dd.bin"
}

measure_limits() {
  log "measuring the machine's limits"
  local loopback loopback_parallel write write_sync
  loopback_bytes_per_s 1
  loopback=$measured
  loopback_bytes_per_s "$iperf_streams"
  loopback_parallel=$measured
  write=$(file_write_bytes_per_s)
  write_sync=$(file_write_bytes_per_s conv=fdatasync)
  echo "{\"type\":\"limit\",\"loopback_bytes_per_s\":$loopback,\"loopback_parallel_bytes_per_s\":$loopback_parallel,\"loopback_streams\":$iperf_streams,\"file_write_bytes_per_s\":$write,\"file_write_fsync_bytes_per_s\":$write_sync}" \
    | tee -a "$results" | sed 's/^/    /' >&2
}

# ----------------------------------------------------------------------------------------------------------- main

check_ports_free "$port_ours" "$port_ours_origin" "$port_ours_relay" "$port_nginx" "$port_nginx_origin" "$port_nginx_relay" \
  "$port_varnish" "$port_varnish_admin" "$port_varnish_relay" $(seq "$port_iperf" $((port_iperf + iperf_streams - 1)))
install_tools
build
make_files
rm -rf "$run" && mkdir -p "$run/logs" "$run/out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "{\"type\":\"config\",\"http_client\":\"${BENCH_HTTP_CLIENT:-bench}\",\"mode\":\"$mode\",\"runs\":$runs,\"u_rounds\":$u_rounds,\"u_mid_bytes\":$u_mid_bytes,\"native\":$native,\"started\":\"$stamp\",\"a_bytes\":$a_bytes,\"b_bytes\":$b_bytes,\"b_clients\":$b_clients,\"c_files\":$c_files,\"c_file_bytes\":$c_file_bytes,\"c_requests\":$c_requests,\"c_connections\":$c_connections,\"c_rates\":[$(IFS=,; echo "${c_rates[*]}")],\"c_paced_seconds\":$c_paced_seconds,\"c_paced_rounds\":$c_paced_rounds,\"origin_rate\":$origin_rate,\"proxy_args\":\"${BENCH_PROXY_ARGS:-}\"}" >"$results"
measure_limits
start_origins

systems=(ours nginx varnish)
for run_no in $(seq 1 "$runs"); do
  # Each run starts with a different system, so none is always first (or last) after the others.
  shift_by=$(((run_no - 1) % 3))
  order=("${systems[@]:shift_by}" "${systems[@]:0:shift_by}")
  log "run $run_no of $runs (${order[*]})"
  if [[ $workloads == *" a "* ]]; then for system in "${order[@]}"; do workload_a "$system" "$run_no"; done; fi
  if [[ $workloads == *" b "* ]]; then for system in "${order[@]}"; do workload_b "$system" "$run_no"; done; fi
  if [[ $workloads == *" c "* ]]; then workload_c "$run_no"; fi
  if [[ $workloads == *" u "* ]]; then workload_u "$run_no"; fi
done

out=$repo/bench/out/$stamp-$mode
mkdir -p "$out"
cp "$results" "$out/results.jsonl"
echo
report_status=0
(run_ours Bench report --results "$results" --out "$out") || report_status=$?
echo
log "done in $(($(date +%s) - started_at)) s; results in ${out#"$repo"/}/"
exit "$report_status"
