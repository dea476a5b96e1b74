#!/usr/bin/env bash
# Measures the proxy's start-up with a large cache: writes N committed entries (small data files with matching
# .meta files, as the proxy itself writes them), starts the proxy over them several times, and prints the time
# its index load took (from its log) and the time until its port accepts connections.
# Usage: scripts/measure-startup.sh [ENTRIES=100000] [RUNS=5] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
entries=${1:-100000}
runs=${2:-5}
work=${3:-$(mktemp -d -t fileproxy-startup-XXXXXX)}
artifacts="$work/artifacts"
dotnet build src/FileProxy.Proxy -c Release --artifacts-path "$artifacts" -v quiet -nologo >/dev/null
proxy_dll="$artifacts/bin/FileProxy.Proxy/release/FileProxy.Proxy.dll"

if [ ! -f "$work/cache/.generated-$entries" ]; then
  rm -rf "$work/cache"
  python3 - "$work/cache" "$entries" <<'PY'
import hashlib, os, sys, time
root, count = sys.argv[1], int(sys.argv[2])
now = int(time.time() * 1000)
for i in range(count):
    name = f"dir{i % 100}/file-{i}.bin"
    data = f"entry {i}\n".encode()
    key = hashlib.sha256(name.encode()).hexdigest()
    shard = os.path.join(root, "entries", key[:2])
    os.makedirs(shard, exist_ok=True)
    data_name = f"{key}.{i:032x}.data"
    with open(os.path.join(shard, data_name), "wb") as f:
        f.write(data)
    digest = "0" * 64  # placeholder: start-up reads no metadata; a first use would check (and drop) it
    meta = (f"fileproxy-cache-entry 2\nname {name}\nsize {len(data)}\nversion v{i}\nblake3 {digest}\n"
            f"data {data_name}\nfetched {now - i}\n")
    with open(os.path.join(shard, key + ".meta"), "w") as f:
        f.write(meta)
PY
  touch "$work/cache/.generated-$entries"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for run in $(seq 1 "$runs"); do
  [ "${COLD:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }   # COLD=1: empty the page cache first
  log="$work/proxy-$run.log"
  start=$(date +%s%N)
  dotnet "$proxy_dll" 127.0.0.1 1 "$port" --listen 127.0.0.1 --cache-dir "$work/cache" --log-level Information >"$log" 2>&1 &
  pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.01; done
  ready=$(( ($(date +%s%N) - start) / 1000000 ))
  kill -TERM "$pid"; wait "$pid" || true
  loaded=$(grep -o '[0-9]* entries, [0-9]* bytes, loaded in [0-9]* ms' "$log" | head -1)
  echo "run $run: index of $loaded; port open after ${ready} ms (process start included)"
done
