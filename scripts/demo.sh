#!/usr/bin/env bash
# Runs the whole system on built-in defaults: an origin on 5010 over a sample directory, the proxy on 5000,
# a client fetch that misses and then one that hits. Everything started here is stopped on exit.
# It runs the native executables (scripts/publish.sh, into artifacts/native); where they cannot be linked (no C
# toolchain and not root), it says so and runs the same programs on the .NET runtime instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if native=$(./scripts/publish.sh); then
  run() { local name=$1; shift; exec "$native/fileproxy-${name,,}" "$@"; }
else
  echo "== running the programs on the .NET runtime instead of as native executables" >&2
  dotnet build FileProxy.sln -c Release -v quiet -nologo >/dev/null
  run() { local name=$1; shift; exec dotnet "$PWD/src/FileProxy.$name/bin/Release/net10.0/FileProxy.$name.dll" "$@"; }
fi

work=$(mktemp -d -t fileproxy-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/root/docs" "$work/out"
head -c $((10 * 1024 * 1024)) /dev/urandom > "$work/root/sample.bin"
printf 'Hello from FileProxy.\n\tTabs,  double  spaces and CRLF\r\nsurvive byte for byte.\n' > "$work/root/docs/hello world.txt"

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

for port in 5010 5000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: stop whatever listens there first" >&2
    exit 1
  fi
done

run Server --root "$work/root" --port 5010 --log-level Warning &
pids+=($!)
run Proxy 127.0.0.1 5010 5000 --cache-dir "$work/cache" --log-level Warning &
pids+=($!)
wait_port 5010
wait_port 5000

client() { (cd "$work/out" && run Client "$@"); }
echo "== first fetch (miss: the proxy fetches from the origin)"
client sample.bin
echo "== second fetch (hit: served from the proxy's cache)"
client sample.bin
echo "== a text file in a subdirectory, with a space in its name"
client "docs/hello world.txt"
cmp "$work/root/sample.bin" "$work/out/sample.bin" && cmp "$work/root/docs/hello world.txt" "$work/out/hello world.txt" \
  && echo "== both files are byte-identical to the origin's"
echo "== proxy counters"
client stats
