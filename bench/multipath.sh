#!/usr/bin/env bash
# FileProxy multipath benchmark: builds the two-path test network (scripts/testbed.sh; needs root), fetches one
# file several times per mode, interleaved, and prints the median transfer time of each mode and its ratio to
# one TCP connection over one path, all from the same run. See docs/BENCHMARKS.md, "Multipath".
#
#   bench/multipath.sh [--topology direct|proxy] [--size MIB] [--runs N] [MODE...]
#   bench/multipath.sh --fairness [--runs N] [--seconds S] [tcp|all|adaptive...]
#
# Modes (default: all four; a mode not built yet is reported and skipped):
#   tcp        one TCP connection over path 0 (the baseline)
#   mptcp      kernel MPTCP: --mptcp on both ends (and --upstream-mptcp on the proxy); a second subflow over path 1
#   all        our multipath, every subflow carries data (--multipath all), one subflow per path
#   adaptive   our multipath with the AMP-style controller (--multipath adaptive)
# direct: client <-> server over paths 0 and 1. proxy: client <-> proxy over paths 0 and 1, proxy <-> server over
# paths 2 and 3, and every run fetches a file the proxy has not cached (a cold miss end to end).
# Times are the client's own (request to verified file; no program start-up).
# --fairness: both server addresses through path 0 (a shared bottleneck, `testbed.sh shared`). A competing
# single-path client (one connection to a second server process on port 5011, same files) fetches a large file;
# once it receives, our multipath client (MODE, both addresses, port 5010) fetches it too; from 3 s after that one
# logs "Fetching", each flow's bytes over the same S seconds (default 6) are read from the kernel (`ss`
# bytes_received in the client's namespace, by server port); both are then stopped. Prints the multipath flow's
# share, median of N (the testbed test Against_a_competing_single_path_flow… does the same). Mode tcp there: our
# client with one address (port 5010) against the competitor, the split two single connections reach.
# Environment: BENCH_NO_BUILD=1 reuses the last build, BENCH_WORK (default bench/work/multipath).
# Results go to bench/out/<time>-multipath-<topology|fairness>/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

topology=direct size_mib= runs=3 modes=() fairness=0 seconds=6
while (($#)); do
  case "$1" in
    --topology) topology=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --fairness) fairness=1; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    tcp|mptcp|all|adaptive) modes+=("$1"); shift ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
if ((fairness)); then
  size_mib=${size_mib:-256} # neither flow may finish inside the window
  ((${#modes[@]})) || modes=(tcp all adaptive)
  for mode in "${modes[@]}"; do
    [[ $mode != mptcp ]] || { echo "--fairness compares tcp, all and adaptive, not $mode" >&2; exit 2; }
  done
  [[ $topology == direct ]] || { echo "--fairness runs in the direct topology" >&2; exit 2; }
  [[ $seconds =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "--seconds is a whole number of seconds" >&2; exit 2; }
fi
size_mib=${size_mib:-100}
((${#modes[@]})) || modes=(tcp mptcp all adaptive)
[[ $topology == direct || $topology == proxy ]] || { echo "--topology is direct or proxy" >&2; exit 2; }
((EUID == 0)) || { echo "needs root (network namespaces, tc)" >&2; exit 1; }

work=$(mkdir -p "${BENCH_WORK:-bench/work/multipath}" && cd "${BENCH_WORK:-bench/work/multipath}" && pwd)
art=$work/artifacts
root=$work/root
out=$repo/bench/out/$(date -u +%Y%m%d-%H%M%S)-multipath-$( ((fairness)) && echo fairness || echo "$topology")
prefix=mpb$$
prefix=${prefix:0:8}
log() { printf '%(%H:%M:%S)T %s\n' -1 "$*" >&2; }
dll() { echo "$art/bin/FileProxy.$1/release/FileProxy.$1.dll"; }
testbed() { "$repo/scripts/testbed.sh" "$@"; }

# ------------------------------------------------------------------------------------------------ build, network

build() {
  [[ ${BENCH_NO_BUILD:-} == 1 && -f $(dll Client) ]] && return 0
  log "building (Release, artifacts in $art)"
  cat >"$work/multipath.slnx" <<EOF
<Solution>
  <Project Path="$repo/src/FileProxy.Server/FileProxy.Server.csproj" />
  <Project Path="$repo/src/FileProxy.Proxy/FileProxy.Proxy.csproj" />
  <Project Path="$repo/src/FileProxy.Client/FileProxy.Client.csproj" />
</Solution>
EOF
  dotnet build "$work/multipath.slnx" -c Release --artifacts-path "$art" -v quiet -nologo >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
}

declare -a pids=()
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  testbed down "$prefix" || true
  rm -rf "$work/out" "$work/cache-"*
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # NAME NS ARGS...: a program in a namespace, in the background, output in $out/NAME.log
  local name=$1 ns=$2; shift 2
  # The script itself, not the shell function: it execs `ip netns exec`, which execs dotnet, so $! is the
  # program's own pid (a function in the background would be a subshell, and killing it would leave dotnet).
  "$repo/scripts/testbed.sh" exec "$prefix" "$ns" dotnet "$@" >"$out/$name.log" 2>&1 &
  pids+=($!)
}

wait_port() { # FROM_NS ADDRESS PORT
  local deadline=$((SECONDS + 30))
  until testbed exec "$prefix" "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "nothing answers on $2:$3 (see $out/*.log)" >&2; exit 1; }
    sleep 0.1
  done
}

# The origin listens on MPTCP (TCP clients still connect). In the proxy topology four proxies run side by side:
# port 5001 plain TCP on both sides, port 5000 MPTCP on both sides, 5002 and 5003 our multipath (all, adaptive)
# towards the origin's two addresses.
start_programs() {
  start server srv "$(dll Server)" --root "$root" --port 5010 --mptcp
  if [[ $topology == direct ]]; then
    wait_port cli 198.18.0.2 5010
  else
    wait_port pxy 198.18.2.2 5010
    start proxy-tcp pxy "$(dll Proxy)" 198.18.2.2 5010 --port 5001 --cache-dir "$work/cache-tcp"
    start proxy-mptcp pxy "$(dll Proxy)" 198.18.2.2 5010 --port 5000 --cache-dir "$work/cache-mptcp" --mptcp --upstream-mptcp
    start proxy-all pxy "$(dll Proxy)" 198.18.2.2 5010 --port 5002 --cache-dir "$work/cache-all" \
      --upstream-address 198.18.3.2:5010 --upstream-multipath all
    start proxy-adaptive pxy "$(dll Proxy)" 198.18.2.2 5010 --port 5003 --cache-dir "$work/cache-adaptive" \
      --upstream-address 198.18.3.2:5010 --upstream-multipath adaptive
    wait_port cli 198.18.0.2 5001
    wait_port cli 198.18.0.2 5000
    wait_port cli 198.18.0.2 5002
    wait_port cli 198.18.0.2 5003
  fi
}

# ------------------------------------------------------------------------------------------------------ the modes

client() { # ARGS...: the client in the client namespace; prints its result line
  testbed exec "$prefix" cli dotnet "$(dll Client)" "$@" -o "$work/out/file.bin" 2>&1
  rm -f "$work/out/file.bin"
}

# Each mode_X NAME fetches file NAME once and prints the client's output; status 99 means "not built yet".
mode_tcp() {
  if [[ $topology == direct ]]; then client "$1" --proxy 198.18.0.2:5010
  else client "$1" --proxy 198.18.0.2:5001; fi
}
mode_mptcp() {
  if [[ $topology == direct ]]; then client "$1" --proxy 198.18.0.2:5010 --mptcp
  else client "$1" --proxy 198.18.0.2:5000 --mptcp; fi
}
# Our multipath (issue 7, part 2): one TCP subflow per address. In the proxy topology the client uses both of
# the proxy's addresses, and the proxy (port 5002 all, 5003 adaptive) both of the origin's.
mode_all() {
  if [[ $topology == direct ]]; then client "$1" --proxy 198.18.0.2:5010 --proxy 198.18.1.2:5010 --multipath all
  else client "$1" --proxy 198.18.0.2:5002 --proxy 198.18.1.2:5002 --multipath all; fi
}
mode_adaptive() {
  if [[ $topology == direct ]]; then client "$1" --proxy 198.18.0.2:5010 --proxy 198.18.1.2:5010 --multipath adaptive
  else client "$1" --proxy 198.18.0.2:5003 --proxy 198.18.1.2:5003 --multipath adaptive; fi
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ------------------------------------------------------------------------------------------------------ fairness

received() { # PORT: bytes the client namespace's open connections to server port PORT have received so far
  testbed exec "$prefix" cli ss -tinH state established "( dport = :$1 )" \
    | grep -oE 'bytes_received:[0-9]+' | awk -F: '{ sum += $2 } END { printf "%d\n", sum }'
}

until_true() { # WHAT COMMAND...: polls COMMAND for up to 30 s
  local what=$1 deadline=$((SECONDS + 30)); shift
  until "$@"; do
    ((SECONDS < deadline)) || { echo "gave up waiting until $what (see $out/*.log)" >&2; exit 1; }
    sleep 0.05
  done
}

# MODE RUN: one competition; sets fair_result to "MULTIPATH_BYTES SINGLE_BYTES" over the common window. Runs in
# the main shell (not a subshell), so an exit on the way stops both clients through the EXIT trap.
fair_once() {
  local mode=$1 run=$2 single multi a0 b0 a1 b1 status=0
  "$repo/scripts/testbed.sh" exec "$prefix" cli dotnet "$(dll Client)" big.bin --proxy 198.18.0.2:5011 -o "$work/out/single.bin" \
    >"$out/$mode-$run-single.log" 2>&1 &
  single=$!; pids+=("$single")
  until_true "the competing flow receives" eval '(($(received 5011) > 1048576))'
  local addresses=(--proxy 198.18.0.2:5010 --proxy 198.18.1.2:5010 --multipath "$mode")
  [[ $mode == tcp ]] && addresses=(--proxy 198.18.0.2:5010)
  "$repo/scripts/testbed.sh" exec "$prefix" cli dotnet "$(dll Client)" big.bin "${addresses[@]}" -o "$work/out/multi.bin" \
    >"$out/$mode-$run-multipath.log" 2>&1 &
  multi=$!; pids+=("$multi")
  if [[ $mode == tcp ]]; then
    until_true "the second flow receives" eval '(($(received 5010) > 0))'
  else
    until_true "the multipath client begins" grep -q "Fetching big.bin" "$out/$mode-$run-multipath.log"
  fi
  sleep 3 # the window starts after the decisions of the first seconds
  a0=$(received 5010) b0=$(received 5011)
  sleep "$seconds"
  a1=$(received 5010) b1=$(received 5011)
  kill -0 "$single" 2>/dev/null && kill -0 "$multi" 2>/dev/null || status=1
  kill "$single" "$multi" 2>/dev/null || true
  wait "$single" "$multi" 2>/dev/null || true
  until_true "both clients' connections are closed" eval \
    '[[ -z $(testbed exec "$prefix" cli ss -tnH state established "( dport = :5010 or dport = :5011 )") ]]'
  rm -rf "${work:?}/out/"*
  ((status == 0)) || { echo "$mode run $run: a client ended inside the window (see $out/$mode-$run-*.log)" >&2; exit 3; }
  fair_result="$((a1 - a0)) $((b1 - b0))"
}

fairness_main() {
  local bytes=$((size_mib << 20)) mode run share line
  mkdir -p "$root" "$work/out" "$out"
  log "preparing one file of $size_mib MiB"
  [[ -f $root/big.bin && $(stat -c %s "$root/big.bin") == "$bytes" ]] || head -c "$bytes" /dev/urandom >"$root/big.bin"
  testbed up "$prefix" direct >/dev/null
  testbed shared "$prefix" on
  start server srv "$(dll Server)" --root "$root" --port 5010
  start server-single srv "$(dll Server)" --root "$root" --port 5011
  wait_port cli 198.18.0.2 5010
  wait_port cli 198.18.0.2 5011
  # Untimed: the origins compute the file's digest on its first request.
  client big.bin --proxy 198.18.0.2:5010 --length 1 >/dev/null
  client big.bin --proxy 198.18.0.2:5011 --length 1 >/dev/null
  declare -A shares=()
  for ((run = 1; run <= runs; run++)); do
    for mode in "${modes[@]}"; do
      fair_once "$mode" "$run"
      read -r multi single <<<"$fair_result"
      share=$(awk -v m="$multi" -v s="$single" 'BEGIN { printf "%.3f", m / (m + s) }')
      shares[$mode]+="$share "
      line=$(awk -v mode="$mode" -v run="$run" -v m="$multi" -v s="$single" -v t="$seconds" \
        'BEGIN { printf "%s run %d: multipath %.2f MiB/s, single %.2f MiB/s over %d s: split %.1f/%.1f", mode, run, m / t / 1048576, s / t / 1048576, t, 100 * m / (m + s), 100 * s / (m + s) }')
      echo "$line" >>"$out/runs.txt"
      log "$line ($(grep -oE 'Multipath (collapse|keep multipath|keep trial|back off|trial) at [0-9]+ ms' "$out/$mode-$run-multipath.log" | sed 's/Multipath //' | paste -sd ';' -))"
    done
  done
  {
    echo "Multipath fairness, shared bottleneck (both server addresses through path 0), a competing single-path flow, $seconds s window, median of $runs, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) cores, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| mode (port 5010) | its share, median | split (it/single) | runs (share) |"
    echo "| --- | --- | --- | --- |"
    for mode in "${modes[@]}"; do
      m=$(median "${shares[$mode]}")
      awk -v mode="$mode" -v m="$m" -v all="${shares[$mode]}" \
        'BEGIN { printf "| %s | %.3f | %.0f/%.0f | %s|\n", mode, m, 100 * m, 100 - 100 * m, all }'
    done
  } | tee "$out/results.md"
  log "written to $out"
}

# -------------------------------------------------------------------------------------------------------- running

build
if ((fairness)); then fairness_main; exit 0; fi
mkdir -p "$root" "$work/out" "$out"
bytes=$((size_mib << 20))
# direct: one file, fetched again and again. proxy: a fresh file for every fetch, so each one is a cold miss.
if [[ $topology == direct ]]; then
  names=(file.bin)
else
  names=(); for ((i = 0; i < runs * ${#modes[@]}; i++)); do names+=("cold$i.bin"); done
fi
log "preparing ${#names[@]} file(s) of $size_mib MiB"
for name in "${names[@]}"; do
  [[ -f $root/$name && $(stat -c %s "$root/$name") == "$bytes" ]] || head -c "$bytes" /dev/urandom >"$root/$name"
done
testbed up "$prefix" "$topology" >/dev/null
start_programs

# Untimed: the origin computes a file's digest on its first request, and the programs' first run loads them.
[[ $topology == direct ]] && mode_tcp "${names[0]}" >/dev/null

declare -A seconds=() skipped=()
next=0
for ((run = 1; run <= runs; run++)); do
  for mode in "${modes[@]}"; do
    [[ -n ${skipped[$mode]:-} ]] && continue
    name=${names[0]}
    if [[ $topology == proxy ]]; then name=${names[next]}; next=$((next + 1)); fi
    status=0
    line=$("mode_$mode" "$name") || status=$?
    if ((status == 99)); then
      skipped[$mode]=1; log "$mode: not built yet, skipped"; continue
    fi
    echo "$mode run $run: $line" >>"$out/runs.txt"
    time=$(sed -nE 's/.*bytes \([^)]*\) in ([0-9.]+) (s|ms), .*/\1 \2/p' <<<"$line" | head -1)
    [[ -n $time && $status == 0 ]] || { echo "$mode run $run failed: $line" >&2; exit 3; }
    read -r value unit <<<"$time"
    [[ $unit == ms ]] && value=$(awk -v v="$value" 'BEGIN { printf "%.3f", v / 1000 }')
    seconds[$mode]+="$value "
    log "$mode run $run: $value s ($(grep -oE 'over MPTCP[^,]*, [0-9]+ subflows?|MPTCP [a-z ]+TCP|[0-9]+ of [0-9]+ subflows carried data' <<<"$line" || echo TCP))"
  done
done

base=$(median "${seconds[tcp]:-}")
{
  echo "Multipath, $topology topology, $size_mib MiB, median of $runs, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) cores, Linux $(uname -r)"
  echo
  echo "| mode | median s | MiB/s | vs tcp | runs (s) |"
  echo "| --- | --- | --- | --- | --- |"
  for mode in "${modes[@]}"; do
    if [[ -n ${skipped[$mode]:-} ]]; then echo "| $mode | not built yet | | | |"; continue; fi
    m=$(median "${seconds[$mode]}")
    awk -v mode="$mode" -v m="$m" -v base="$base" -v size="$size_mib" -v all="${seconds[$mode]}" \
      'BEGIN { printf "| %s | %.3f | %.2f | %s | %s|\n", mode, m, size / m, base ? sprintf("%.2fx", base / m) : "-", all }'
  done
} | tee "$out/results.md"
log "written to $out"
