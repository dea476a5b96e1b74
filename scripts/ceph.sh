#!/usr/bin/env bash
# A single-node Ceph object store on loopback, for the S3 origin's tests and benchmarks:
# one monitor, one OSD on memstore (its data lives in memory and is gone when it stops) and a RADOS Gateway (beast)
# on 127.0.0.1:$CEPH_RGW_PORT, all started directly (no systemd) and owned by one directory.
#
#   scripts/ceph.sh up      install Debian's packages if missing, start everything (or reuse what runs), print the env
#   scripts/ceph.sh env     print the environment the S3 origin and the AWS tools need (export lines)
#   scripts/ceph.sh status  say whether it answers
#   scripts/ceph.sh down    stop what this script started and remove its directory
#
# Settings (environment): CEPH_DIR (default /tmp/fileproxy-ceph), CEPH_RGW_PORT (7480), CEPH_MON_PORT (3300),
# CEPH_MEMSTORE_BYTES (3 GiB: the most object data the OSD holds, in memory, only as much as is stored).
# Every wait is bounded; on failure the script says which step failed and where its log is, and exits non-zero.
set -euo pipefail

DIR=${CEPH_DIR:-/tmp/fileproxy-ceph}
RGW_PORT=${CEPH_RGW_PORT:-7480}
MON_PORT=${CEPH_MON_PORT:-3300}
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-3221225472}
CONF=$DIR/ceph.conf
ENDPOINT=http://127.0.0.1:$RGW_PORT
USER_ID=fileproxy

die() { echo "ceph.sh: $*" >&2; exit 1; }
say() { echo "ceph.sh: $*" >&2; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.25 s until it succeeds or SECONDS pass.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.25
  done
}

rgw_answers() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; }

ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }

install() {
  if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v radosgw >/dev/null \
    && command -v radosgw-admin >/dev/null && command -v ceph >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "Ceph is not installed and there is no apt-get to install it with"
  [[ $(id -u) == 0 ]] || die "Ceph is not installed, and installing it needs root (apt-get)"
  say "installing ceph-mon ceph-osd radosgw ceph-common (apt-get, about 20 s)"
  local log=/tmp/fileproxy-ceph-apt.log
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw ceph-common; } \
    >"$log" 2>&1; then
    die "apt-get could not install Ceph; see $log"
  fi
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() {
  pid_alive "$DIR/run/mon.a.pid" && pid_alive "$DIR/run/osd.0.pid" && pid_alive "$DIR/run/client.rgw.a.pid" \
    && [[ -f $DIR/env ]] && rgw_answers
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT]
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
# Without this, RGW's monitor sessions fail with auth error -13 and it never comes up.
ms mon client mode = crc
mon allow pool size one = true
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
keyring = $DIR/\$name.keyring

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw enable usage log = false
EOF
}

start() {
  local fsid osd_uuid step
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$DIR"/{run,log,mon,osd/ceph-0}
  write_conf "$fsid"

  step="monitor"
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/client.admin.keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" >>"$DIR/log/setup.log" 2>&1 \
    || die "$step: mkfs failed; see $DIR/log/setup.log"
  ceph-mon -c "$CONF" -i a >>"$DIR/log/setup.log" 2>&1 || die "$step did not start; see $DIR/log/mon.a.log"
  wait_for 30 "$step" ceph_cli mon stat || die "$step does not answer within 30 s; see $DIR/log/mon.a.log"

  step="OSD"
  ceph_cli osd new "$osd_uuid" >/dev/null || die "$step: 'ceph osd new' failed"
  ceph-authtool --create-keyring "$DIR/osd.0.keyring" --gen-key -n osd.0 >/dev/null
  ceph_cli auth add osd.0 osd 'allow *' mon 'allow profile osd' -i "$DIR/osd.0.keyring" >/dev/null 2>&1 \
    || die "$step: 'ceph auth add' failed"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/setup.log" 2>&1 \
    || die "$step: mkfs failed; see $DIR/log/setup.log"
  ceph-osd -c "$CONF" -i 0 >>"$DIR/log/setup.log" 2>&1 || die "$step did not start; see $DIR/log/osd.0.log"
  wait_for 30 "$step" bash -c "timeout 10 ceph -c '$CONF' --connect-timeout 5 osd stat -f json | grep -q '\"num_up_osds\":1'" \
    || die "$step is not up within 30 s; see $DIR/log/osd.0.log"

  step="RADOS Gateway"
  ceph_cli auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' -o "$DIR/client.rgw.a.keyring" >/dev/null \
    || die "$step: cannot create its key"
  radosgw -c "$CONF" -n client.rgw.a >>"$DIR/log/setup.log" 2>&1 || die "$step did not start; see $DIR/log/client.rgw.a.log"
  wait_for 60 "$step" rgw_answers || die "$step does not answer on $ENDPOINT within 60 s; see $DIR/log/client.rgw.a.log"

  local keys access secret
  keys=$(timeout 60 radosgw-admin -c "$CONF" user create --uid "$USER_ID" --display-name "FileProxy tests" 2>>"$DIR/log/setup.log") \
    || die "radosgw-admin user create failed; see $DIR/log/setup.log"
  access=$(sed -n 's/.*"access_key": "\([^"]*\)".*/\1/p' <<<"$keys" | head -1)
  secret=$(sed -n 's/.*"secret_key": "\([^"]*\)".*/\1/p' <<<"$keys" | head -1)
  [[ -n $access && -n $secret ]] || die "radosgw-admin user create printed no keys"
  cat >"$DIR/env" <<EOF
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export FILEPROXY_S3_ENDPOINT=$ENDPOINT
EOF
}

stop() {
  local pids=() file pid
  for file in "$DIR"/run/client.rgw.a.pid "$DIR"/run/osd.0.pid "$DIR"/run/mon.a.pid; do
    if [[ -f $file ]] && pid=$(cat "$file") && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" && pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
}

case ${1:-} in
  up)
    if [[ -d $DIR ]] && running; then
      say "already up at $ENDPOINT (directory $DIR)"
    else
      install
      if [[ -d $DIR ]]; then
        say "removing what is left of an earlier run in $DIR"
        stop
        rm -rf "$DIR"
      fi
      for port in "$RGW_PORT" "$MON_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
          die "port $port on 127.0.0.1 is taken by another program; choose others with CEPH_RGW_PORT / CEPH_MON_PORT"
        fi
      done
      started=$SECONDS
      start
      say "up at $ENDPOINT in $((SECONDS - started)) s (directory $DIR)"
    fi
    cat "$DIR/env"
    ;;
  env)
    [[ -f $DIR/env ]] || die "not up (no $DIR/env); run: scripts/ceph.sh up"
    cat "$DIR/env"
    ;;
  status)
    if [[ -d $DIR ]] && running; then
      echo "up at $ENDPOINT (directory $DIR)"
    else
      echo "down"
      exit 1
    fi
    ;;
  down)
    if [[ -d $DIR ]]; then
      stop
      rm -rf "$DIR"
      say "stopped; removed $DIR"
    else
      say "not running (no $DIR)"
    fi
    ;;
  *)
    echo "usage: $0 up|env|status|down" >&2
    exit 2
    ;;
esac
