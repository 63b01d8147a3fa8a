#!/usr/bin/env bash
# A two-node Ray cluster on this machine, both nodes on 127.0.0.1: a head and a second node
# (`ray start --address`), each with its own temp dir and its own resources, to try the
# cluster path by hand. Token authentication is on (the token is ~/.ray/auth_token).
#
#   infra/ray/local_cluster.sh start     # prints the address and what a driver exports
#   export RAY_ADDRESS=127.0.0.1:6380 RAY_AUTH_MODE=token
#   .venv/bin/roberta build-corpus --root runs/c corpus/sample/ --runner ray
#   .venv/bin/roberta pretrain --root runs/demo --run on-2-nodes --workers 2
#   infra/ray/local_cluster.sh status
#   infra/ray/local_cluster.sh stop      # stops these two nodes only (never `ray stop`)
#
# Settings (environment): RAY_CLUSTER_DIR (default /tmp/roberta-ray-$UID: head/ and node2/
# are the nodes' temp dirs), RAY_HEAD_PORT (6380), RAY_DASHBOARD_PORT (8266),
# RAY_CLIENT_PORT (10001), RAY_METRICS_PORTS ("8081 8082": head, node2),
# RAY_AGENT_PORTS ("52365 52366"), RAY_NODE_CPUS (1 per node), BIN (.venv/bin).
#
# Loopback: Ray 2.60 rewrites 127.0.0.1 to the machine's address unless
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with that set `ray start --address` refuses to start
# a second node. So the head starts with it, and the second node through Ray's own CLI with
# that one rewrite (ray._private.services.resolve_ip_for_localhost) turned off: a private
# function, checked against Ray 2.60 by tests/test_infra.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
DIR=${RAY_CLUSTER_DIR:-/tmp/roberta-ray-$(id -u)}
PORT=${RAY_HEAD_PORT:-6380}
DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8266}
CLIENT_PORT=${RAY_CLIENT_PORT:-10001}
read -r HEAD_METRICS NODE2_METRICS <<< "${RAY_METRICS_PORTS:-8081 8082}"
read -r HEAD_AGENT NODE2_AGENT <<< "${RAY_AGENT_PORTS:-52365 52366}"
CPUS=${RAY_NODE_CPUS:-1}
ADDRESS="127.0.0.1:$PORT"
export RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
# Ray Jobs' drivers inherit the nodes' environment: their Train runs show in the dashboard.
export RAY_TRAIN_ENABLE_STATE_TRACKING=1
# Workers bind random ports (the default range 10002-19999 would be shared by both nodes).
COMMON=(--node-ip-address 127.0.0.1 --num-cpus "$CPUS" --min-worker-port 0
        --max-worker-port 0 --disable-usage-stats)

# Every process of these nodes: those whose command line names their temp dirs (GCS, raylets,
# dashboard, agents), the head's Ray Client server (named by its address) and their
# descendants (the workers, which rename themselves ray::...).
node_pids() {
    local pid found=() todo
    read -r -a todo <<< "$(pgrep -f -- "$DIR/" | tr '\n' ' ') \
        $(pgrep -f -- "client.server --address=$ADDRESS " | tr '\n' ' ')"
    while [ ${#todo[@]} -gt 0 ]; do
        pid=${todo[0]}
        todo=("${todo[@]:1}")
        [[ " ${found[*]-} " == *" $pid "* ]] && continue
        found+=("$pid")
        read -r -a children <<< "$(pgrep -P "$pid" | tr '\n' ' ')"
        todo+=("${children[@]}")
    done
    echo "${found[*]-}"
}

# Those of the given processes still running (an exited one stays a zombie until reaped).
running() {
    local pid stat
    for pid in "$@"; do
        read -r stat 2>/dev/null < "/proc/$pid/stat" || continue
        stat=${stat##*) }                  # after "pid (command) ": the state letter
        [ "${stat:0:1}" != Z ] && echo "$pid"
    done
    return 0
}

start() {
    if [ -n "$(node_pids)" ]; then
        echo "already running (processes under $DIR); stop it first" >&2; exit 1
    fi
    mkdir -p "$DIR/head" "$DIR/node2"
    "$BIN/ray" get-auth-token --generate >/dev/null 2>&1
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$BIN/ray" start --head --port "$PORT" \
        --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
        --ray-client-server-port "$CLIENT_PORT" --metrics-export-port "$HEAD_METRICS" \
        --dashboard-agent-listen-port "$HEAD_AGENT" --temp-dir "$DIR/head" \
        --resources '{"head_node": 1}' "${COMMON[@]}" >"$DIR/head.log" 2>&1 \
        || { cat "$DIR/head.log" >&2; exit 1; }
    "$BIN/python" -c 'import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host   # keep 127.0.0.1
from ray.scripts.scripts import main
sys.argv[0] = "ray"
main()' start --address "$ADDRESS" --metrics-export-port "$NODE2_METRICS" \
        --dashboard-agent-listen-port "$NODE2_AGENT" --temp-dir "$DIR/node2" \
        --resources '{"node2": 1}' "${COMMON[@]}" >"$DIR/node2.log" 2>&1 \
        || { cat "$DIR/node2.log" >&2; stop; exit 1; }
    # (`ray start` returns once its node has registered with the GCS.)
    cat <<EOF
Ray cluster with 2 nodes at $ADDRESS (temp dirs $DIR/head, $DIR/node2)
  dashboard   http://127.0.0.1:$DASHBOARD_PORT   (token: $BIN/ray get-auth-token)
  Train runs  http://127.0.0.1:$DASHBOARD_PORT/api/train/v2/runs/v1
  metrics     http://127.0.0.1:$HEAD_METRICS/metrics  http://127.0.0.1:$NODE2_METRICS/metrics
For drivers (roberta, ray):
  export RAY_ADDRESS=$ADDRESS RAY_AUTH_MODE=token RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
EOF
}

# SIGTERM to every process of the two nodes, up to 10 s to exit, then SIGKILL (as `ray stop`
# does, but for these processes only).
stop() {
    local pids
    pids=$(node_pids)
    [ -z "$pids" ] && { echo "not running"; return 0; }
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 20); do
        [ -z "$(running $pids)" ] && { echo "stopped"; return 0; }
        sleep 0.5
    done
    kill -KILL $(running $pids) 2>/dev/null || true
    echo "stopped (SIGKILL after 10 s)"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "$BIN/ray" status --address "$ADDRESS" ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
