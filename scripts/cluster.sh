#!/usr/bin/env bash
# A test cluster on loopback (issue 11): a single-node Ceph RGW (scripts/ceph.sh), an S3-backed origin server and
# three proxies in a tier in front of it, each started with the same --peer list.
#
#   scripts/cluster.sh up        build, start Ceph (or reuse it), the origin and the 3 proxies; print the addresses
#   scripts/cluster.sh put DIR   upload every file under DIR into the bucket (name = path under DIR)
#   scripts/cluster.sh env       print the addresses again (export lines)
#   scripts/cluster.sh stop N    stop proxy N (1-3) with SIGKILL, as a crash;  start N: start it again (same port, cache)
#   scripts/cluster.sh status    which processes run
#   scripts/cluster.sh down      stop everything this script started (and Ceph, if this script started it); remove DIR
#
# Settings (environment): CLUSTER_DIR (/tmp/fileproxy-cluster), CLUSTER_PORT (5100: origin 5100, proxies 5101-5103),
# CLUSTER_BUCKET (tier), CLUSTER_PROXY_ARGS (more proxy options, e.g. "--keep-peer-copies false"), and scripts/ceph.sh's.
# Logs: $CLUSTER_DIR/origin.log, proxy1.log ... Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${CLUSTER_DIR:-/tmp/fileproxy-cluster}
BASE=${CLUSTER_PORT:-5100}
BUCKET=${CLUSTER_BUCKET:-tier}
ARTIFACTS=$DIR/artifacts
PEERS=(127.0.0.1:$((BASE + 1)) 127.0.0.1:$((BASE + 2)) 127.0.0.1:$((BASE + 3)))

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }
bin() { echo "$ARTIFACTS/bin/$1/release/$1.dll"; }
alive() { [[ -f $DIR/$1.pid ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

build() {
  mkdir -p "$DIR"
  say "building (dotnet build -c Release into $ARTIFACTS)"
  dotnet build FileProxy.sln -c Release --artifacts-path "$ARTIFACTS" -v quiet -nologo >/dev/null
  dotnet build bench/S3Read -c Release --artifacts-path "$ARTIFACTS" -v quiet -nologo >/dev/null
}

start_proxy() {
  local n=$1 port=$((BASE + $1)) peers=()
  alive "proxy$n" && return 0
  for peer in "${PEERS[@]}"; do peers+=(--peer "$peer"); done
  # shellcheck disable=SC2086
  setsid dotnet "$(bin FileProxy.Proxy)" 127.0.0.1 "$BASE" "$port" --listen 127.0.0.1 --cache-dir "$DIR/cache$n" \
    "${peers[@]}" ${CLUSTER_PROXY_ARGS:-} >>"$DIR/proxy$n.log" 2>&1 &
  echo $! >"$DIR/proxy$n.pid"
  wait_port "$port" || die "proxy $n did not open port $port; see $DIR/proxy$n.log"
}

stop_pid() {
  local name=$1 signal=${2:-TERM}
  if alive "$name"; then
    local pid; pid=$(cat "$DIR/$name.pid")
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$name.pid"
}

print_env() {
  cat "$DIR/ceph.env"
  echo "export FILEPROXY_ORIGIN=127.0.0.1:$BASE"
  echo "export FILEPROXY_TIER=$(IFS=,; echo "${PEERS[*]}")"
  echo "export FILEPROXY_BUCKET=$BUCKET"
}

case ${1:-} in
  up)
    build
    if ! scripts/ceph.sh status >/dev/null 2>&1; then touch "$DIR/started-ceph"; fi
    scripts/ceph.sh up >"$DIR/ceph.env"
    # shellcheck disable=SC1091
    source "$DIR/ceph.env"
    # The bucket must exist before the origin starts (it checks it): upload a marker object.
    echo "fileproxy cluster" >"$DIR/README.txt"
    dotnet "$(bin S3Read)" put "$FILEPROXY_S3_ENDPOINT" "$BUCKET" README.txt "$DIR/README.txt" >/dev/null
    if ! alive origin; then
      setsid dotnet "$(bin FileProxy.Server)" --s3-endpoint "$FILEPROXY_S3_ENDPOINT" --bucket "$BUCKET" \
        --s3-digest-index "$DIR/digests.tsv" --port "$BASE" --listen 127.0.0.1 >>"$DIR/origin.log" 2>&1 &
      echo $! >"$DIR/origin.pid"
      wait_port "$BASE" || die "the origin did not open port $BASE; see $DIR/origin.log"
    fi
    for n in 1 2 3; do start_proxy "$n"; done
    say "up: origin 127.0.0.1:$BASE (bucket $BUCKET at $FILEPROXY_S3_ENDPOINT), tier ${PEERS[*]}"
    print_env
    ;;
  put)
    [[ -d ${2:-} ]] || die "usage: cluster.sh put DIR"
    # shellcheck disable=SC1091
    source "$DIR/ceph.env"
    # putdir uploads DIR's files as PREFIX/PATH: upload from DIR's parent with DIR's name as the prefix.
    dotnet "$(bin S3Read)" putdir "$FILEPROXY_S3_ENDPOINT" "$BUCKET" "$(basename "$2")" "$2"
    ;;
  env) [[ -f $DIR/ceph.env ]] || die "not up"; print_env ;;
  stop) [[ ${2:-} =~ ^[123]$ ]] || die "usage: cluster.sh stop 1|2|3"; stop_pid "proxy$2" KILL ;;
  start) [[ ${2:-} =~ ^[123]$ ]] || die "usage: cluster.sh start 1|2|3"; start_proxy "$2" ;;
  status)
    for name in origin proxy1 proxy2 proxy3; do
      if alive "$name"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
    scripts/ceph.sh status || true
    ;;
  down)
    for name in proxy1 proxy2 proxy3 origin; do stop_pid "$name"; done
    if [[ -f $DIR/started-ceph ]]; then scripts/ceph.sh down; fi
    rm -rf "$DIR"
    say "down"
    ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
