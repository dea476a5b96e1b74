#!/usr/bin/env bash
# The multipath test network: network namespaces joined by paths through a middle namespace (a bridge per path,
# shaped to 100 Mbit/s each way), with kernel MPTCP set up so a connection opens a second subflow over the second path.
# Addresses only from 198.18.0.0/15 (set aside for benchmarking networks), only inside namespaces made here.
#
#   scripts/testbed.sh up PREFIX [direct|proxy]    build it (fails clearly if PREFIX already exists)
#   scripts/testbed.sh down PREFIX                 remove everything it made; safe to call twice
#   scripts/testbed.sh shared PREFIX on|off        route both server addresses through path 0 (every hop)
#   scripts/testbed.sh rate PREFIX PATH RATE       change the rate of path PATH, each way, e.g. 20mbit
#   scripts/testbed.sh link PREFIX PATH up|down    take path PATH down or up (both ends)
#   scripts/testbed.sh exec PREFIX cli|srv|pxy CMD [ARGS...]
#
# Namespaces PREFIX-cli, PREFIX-srv (and PREFIX-pxy), and PREFIX-net in the middle. Inside each end's namespace,
# the interface of path N is "pN"; in PREFIX-net, path N is bridge bN over lN (left end) and rN (right end).
#   direct: path 0  cli 198.18.0.1/24 <-> srv 198.18.0.2/24     path 1  cli 198.18.1.1/24 <-> srv 198.18.1.2/24
#   proxy:  path 0  cli 198.18.0.1/24 <-> pxy 198.18.0.2/24     path 1  cli 198.18.1.1/24 <-> pxy 198.18.1.2/24
#           path 2  pxy 198.18.2.1/24 <-> srv 198.18.2.2/24     path 3  pxy 198.18.3.1/24 <-> srv 198.18.3.2/24
# Exit codes: 0 done, 1 failed, 2 usage, 3 this machine cannot build it (not root, no namespaces, tc or MPTCP).
set -euo pipefail

readonly SHAPE=(burst 64kb latency 5ms)
readonly DEFAULT_RATE=100mbit
# Every flow here uses one congestion control, whatever the host's default: loss-based Reno, the TCP the AMP paper's
# flows compete with (a namespace may only pick from net.ipv4.tcp_allowed_congestion_control, which always holds
# reno). With BBR (this machine's default) even one plain connection against another split 83/17 through the
# shared bottleneck, the later one winning; with Reno, 50/50 (docs/BENCHMARKS.md, "Multipath fairness").
readonly CONGESTION_CONTROL=${TESTBED_CC:-reno}
readonly STATE_ROOT=/run/fileproxy-testbed

usage() {
    sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

fail() {
    echo "testbed: $*" >&2
    exit 1
}

unavailable() {
    echo "testbed: cannot build the test network here: $*" >&2
    exit 3
}

check_prefix() {
    [[ "$1" =~ ^[a-z][a-z0-9]{0,7}$ ]] || fail "PREFIX '$1' must be 1-8 lowercase letters or digits, starting with a letter"
}

# The topology PREFIX was built with; fails if it does not exist.
topology_of() {
    [[ -f "$STATE_ROOT/$1/topology" ]] || fail "no test network '$1' (run: $0 up $1)"
    cat "$STATE_ROOT/$1/topology"
}

# "LEFT RIGHT" namespace roles at the two ends of PATH in TOPOLOGY; left is the connecting side.
ends_of() {
    local topology=$1 path=$2
    case "$topology:$path" in
        direct:0 | direct:1) echo "cli srv" ;;
        proxy:0 | proxy:1) echo "cli pxy" ;;
        proxy:2 | proxy:3) echo "pxy srv" ;;
        *) fail "no path $path in the $topology topology" ;;
    esac
}

paths_of() {
    case "$1" in
        direct) echo "0 1" ;;
        proxy) echo "0 1 2 3" ;;
    esac
}

add_path() {
    local prefix=$1 topology=$2 path=$3 left right
    read -r left right < <(ends_of "$topology" "$path")
    # Each end's pN leads to the middle namespace, where bridge bN joins lN (towards the left end) and rN (towards
    # the right end). The shaping is on lN's and rN's egress: a queue in the path, as a router's would be, not on the
    # sending host's own device, where TCP small queues would hold a newly started flow to a couple of packets in
    # the queue at a time behind an established one (one connection against one split 4/96 that way).
    ip link add "p$path" netns "$prefix-$left" type veth peer name "l$path" netns "$prefix-net"
    ip link add "p$path" netns "$prefix-$right" type veth peer name "r$path" netns "$prefix-net"
    ip -n "$prefix-net" link add "b$path" type bridge
    ip -n "$prefix-$left" address add "198.18.$path.1/24" dev "p$path"
    ip -n "$prefix-$right" address add "198.18.$path.2/24" dev "p$path"
    local ns dev
    for ns in "$prefix-$left" "$prefix-$right"; do
        ip -n "$ns" link set "p$path" up
    done
    ip -n "$prefix-net" link set "b$path" up
    for dev in "l$path" "r$path"; do
        ip -n "$prefix-net" link set "$dev" master "b$path"
        ip -n "$prefix-net" link set "$dev" up
        tc -n "$prefix-net" qdisc add dev "$dev" root tbf rate "$DEFAULT_RATE" "${SHAPE[@]}" \
            || unavailable "tc tbf on $dev in $prefix-net failed"
    done
}

cmd_up() {
    local prefix=$1 topology=${2:-direct}
    check_prefix "$prefix"
    [[ "$topology" == direct || "$topology" == proxy ]] || fail "topology must be direct or proxy, not '$topology'"
    [[ $EUID -eq 0 ]] || unavailable "needs root (network namespaces, veth, tc)"
    command -v ip >/dev/null || unavailable "iproute2 ('ip') is not installed"
    command -v tc >/dev/null || unavailable "'tc' is not installed"
    local roles=(cli srv) role
    [[ "$topology" == proxy ]] && roles+=(pxy)
    for role in "${roles[@]}" net; do
        [[ ! -e "/run/netns/$prefix-$role" ]] || fail "namespace $prefix-$role already exists (run: $0 down $prefix)"
    done
    [[ ! -e "$STATE_ROOT/$prefix" ]] || fail "test network '$prefix' already exists (run: $0 down $prefix)"

    mkdir -p "$STATE_ROOT/$prefix"
    echo "$topology" >"$STATE_ROOT/$prefix/topology"
    # From here on, a failure removes whatever was made.
    trap 'status=$?; [[ $status -eq 0 ]] || cmd_down "$prefix" >/dev/null 2>&1 || true' EXIT

    for role in "${roles[@]}"; do
        ip netns add "$prefix-$role" 2>/dev/null || unavailable "cannot create network namespace $prefix-$role"
        ip -n "$prefix-$role" link set lo up
        ip netns exec "$prefix-$role" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        ip netns exec "$prefix-$role" sysctl -qw net.ipv4.tcp_congestion_control="$CONGESTION_CONTROL" \
            || unavailable "cannot use TCP congestion control '$CONGESTION_CONTROL' in a namespace (see net.ipv4.tcp_allowed_congestion_control)"
        [[ "$(ip netns exec "$prefix-$role" sysctl -n net.mptcp.enabled 2>/dev/null)" == 1 ]] \
            || unavailable "the kernel has no MPTCP, or net.mptcp.enabled is 0"
        ip -n "$prefix-$role" mptcp limits set subflow 4 add_addr_accepted 4 2>/dev/null \
            || unavailable "'ip mptcp limits' failed (kernel or iproute2 without MPTCP path manager)"
    done
    ip netns add "$prefix-net" 2>/dev/null || unavailable "cannot create network namespace $prefix-net"
    local path
    for path in $(paths_of "$topology"); do
        add_path "$prefix" "$topology" "$path"
    done
    # The connecting side of each hop opens its second subflow from its second address, bound to that path's device.
    case "$topology" in
        direct) ip -n "$prefix-cli" mptcp endpoint add 198.18.1.1 dev p1 subflow ;;
        proxy)
            ip -n "$prefix-cli" mptcp endpoint add 198.18.1.1 dev p1 subflow
            ip -n "$prefix-pxy" mptcp endpoint add 198.18.3.1 dev p3 subflow
            ;;
    esac
    echo "test network '$prefix' ($topology) is up: namespaces ${roles[*]/#/$prefix-}"
}

cmd_down() {
    local prefix=$1 role
    check_prefix "$prefix"
    for role in cli srv pxy net; do
        if [[ -e "/run/netns/$prefix-$role" ]]; then
            ip netns delete "$prefix-$role"
        fi
    done
    rm -rf "${STATE_ROOT:?}/$prefix"
}

# Shared bottleneck: on every hop, traffic to the far side's second address (both directions) takes the first
# path's device. MPTCP subflows bound to the second device still leave the connecting side over it, but the data
# the far side sends back to the second address crosses the first path.
apply_shared() {
    local prefix=$1 topology=$2 on=$3 first second left right verb
    [[ "$on" == on ]] && verb=replace || verb=delete
    for first in $(paths_of "$topology"); do
        ((first % 2 == 0)) || continue
        second=$((first + 1))
        read -r left right < <(ends_of "$topology" "$first")
        if [[ "$verb" == replace ]]; then
            ip -n "$prefix-$left" route replace "198.18.$second.2/32" dev "p$first"
            ip -n "$prefix-$right" route replace "198.18.$second.1/32" dev "p$first"
        else
            ip -n "$prefix-$left" route delete "198.18.$second.2/32" 2>/dev/null || true
            ip -n "$prefix-$right" route delete "198.18.$second.1/32" 2>/dev/null || true
        fi
    done
}

cmd_shared() {
    local prefix=$1 on=$2 topology
    check_prefix "$prefix"
    [[ "$on" == on || "$on" == off ]] || usage
    topology=$(topology_of "$prefix")
    apply_shared "$prefix" "$topology" "$on"
    if [[ "$on" == on ]]; then touch "$STATE_ROOT/$prefix/shared"; else rm -f "$STATE_ROOT/$prefix/shared"; fi
}

cmd_rate() {
    local prefix=$1 path=$2 rate=$3 topology dev
    check_prefix "$prefix"
    topology=$(topology_of "$prefix")
    ends_of "$topology" "$path" >/dev/null
    for dev in "l$path" "r$path"; do
        tc -n "$prefix-net" qdisc change dev "$dev" root tbf rate "$rate" "${SHAPE[@]}"
    done
}

cmd_link() {
    local prefix=$1 path=$2 state=$3 topology left right ns
    check_prefix "$prefix"
    [[ "$state" == up || "$state" == down ]] || usage
    topology=$(topology_of "$prefix")
    read -r left right < <(ends_of "$topology" "$path")
    for ns in "$prefix-$left" "$prefix-$right"; do
        ip -n "$ns" link set "p$path" "$state"
    done
    # Routes through a device go with it when it goes down; put the shared-bottleneck routes back.
    if [[ "$state" == up && -f "$STATE_ROOT/$prefix/shared" ]]; then
        apply_shared "$prefix" "$topology" on
    fi
}

cmd_exec() {
    local prefix=$1 role=$2
    shift 2
    check_prefix "$prefix"
    [[ "$role" == cli || "$role" == srv || "$role" == pxy ]] || usage
    [[ -e "/run/netns/$prefix-$role" ]] || fail "no namespace $prefix-$role"
    exec ip netns exec "$prefix-$role" "$@"
}

main() {
    (($# >= 2)) || usage
    local command=$1
    shift
    case "$command" in
        up) (($# <= 2)) || usage; cmd_up "$@" ;;
        down) (($# == 1)) || usage; cmd_down "$@" ;;
        shared) (($# == 2)) || usage; cmd_shared "$@" ;;
        rate) (($# == 3)) || usage; cmd_rate "$@" ;;
        link) (($# == 3)) || usage; cmd_link "$@" ;;
        exec) (($# >= 3)) || usage; cmd_exec "$@" ;;
        *) usage ;;
    esac
}

main "$@"
