#!/usr/bin/env bash
# Measures what the first request after a start costs: starts the origin (and then the proxy, over a cache that
# already holds the file) ROUNDS times each, native and on the .NET runtime, and fetches a 4 KiB file ten times,
# one client process each; prints the first GET's and the tenth GET's time as the client saw them (from
# connecting to the digest checked), and their ratio. Uses 127.0.0.1 ports 19010 and 19000.
# Usage: scripts/measure-first-request.sh [ROUNDS=5]
set -euo pipefail
source "$(dirname "$0")/lib/measure.sh"
cd "$(dirname "$0")/.."
rounds=${1:-5}
work=$(mktemp -d -t fileproxy-first-XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

native=$(./scripts/publish.sh)
dotnet build FileProxy.sln -c Release -v quiet -nologo >/dev/null
mkdir -p "$work/root"
head -c 4096 /dev/urandom >"$work/root/small.bin"

program() { # KIND NAME: the command line of one of our programs
  if [[ $1 == native ]]; then echo "$native/fileproxy-${2,,}"; else echo "dotnet src/FileProxy.$2/bin/Release/net10.0/FileProxy.$2.dll"; fi
}
# Ten GETs, one native client process (and connection) each; the client prints each one's time from connecting to
# the digest checked.
ten_gets() { # PORT: prints "first tenth" in ms
  for _ in $(seq 10); do
    "$native/fileproxy-client" small.bin --proxy "127.0.0.1:$1" -o /dev/null 2>&1 # its summary is on stderr
  done | sed -nE 's/.* in ([0-9.]+) (ms|s), .*/\1 \2/p' \
    | awk '{t[NR] = $2 == "s" ? $1 * 1000 : $1} END {printf "%.2f %.2f\n", t[1], t[10]}'
}

# The proxy's cache, filled once beforehand, so that its first GET is a hit like its tenth.
$(program native Server) --root "$work/root" --listen 127.0.0.1 --port 19010 --log-level Warning & origin=$!
wait_port 19010 200 0.05
"$native/fileproxy-proxy" 127.0.0.1 19010 19000 --listen 127.0.0.1 --cache-dir "$work/cache" --log-level Warning & pid=$!
wait_port 19000 200 0.05
"$native/fileproxy-client" small.bin --proxy 127.0.0.1:19000 -o /dev/null >/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

printf '%-7s %-7s %6s %10s %10s %6s\n' program kind round 'first ms' 'tenth ms' ratio
for name in Server Proxy; do
  for kind in native runtime; do
    for round in $(seq "$rounds"); do
      if [[ $name == Server ]]; then
        kill "$origin" 2>/dev/null; wait "$origin" 2>/dev/null || true
        $(program "$kind" Server) --root "$work/root" --listen 127.0.0.1 --port 19010 --log-level Warning & origin=$!
        port=19010
      else
        $(program "$kind" Proxy) 127.0.0.1 19010 19000 --listen 127.0.0.1 --cache-dir "$work/cache" --revalidate-after 1d \
          --log-level Warning & pid=$!
        port=19000
      fi
      wait_port "$port" 200 0.05
      read -r first tenth < <(ten_gets "$port")
      printf '%-7s %-7s %6s %10s %10s %6.2f\n' "$name" "$kind" "$round" "$first" "$tenth" "$(echo "$first / $tenth" | bc -l)"
      if [[ -n $pid ]]; then kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; fi
    done
  done
done
kill "$origin" 2>/dev/null || true
