#!/usr/bin/env bash
# A Prefect server on 127.0.0.1 and a process worker, in the foreground; one Ctrl-C (or one
# SIGTERM) stops both. Then, in another shell: .venv/bin/prefect --no-prompt deploy --all
#                                              .venv/bin/prefect deployment run build-corpus/sample --watch
# PREFECT_PORT (default 4200) picks the port; PREFECT_HOME (created when missing) holds the
# server's database; ROBERTA_BIN the folder of the `prefect` executable (default .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ROBERTA_BIN:-.venv/bin}
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
# Telemetry off unless asked for: offline, the server logs an ERROR for every failed
# heartbeat. PREFECT_SERVER_ANALYTICS_ENABLED=true turns it back on.
export PREFECT_SERVER_ANALYTICS_ENABLED=${PREFECT_SERVER_ANALYTICS_ENABLED:-false}
export DO_NOT_TRACK=${DO_NOT_TRACK:-1}
# Prefect creates its home without parents, then fails on its database with a bare timeout.
if [ -n "${PREFECT_HOME:-}" ]; then mkdir -p "$PREFECT_HOME"; fi
server="" worker=""

# Each child runs in its own session (setsid), so Ctrl-C reaches only this script, which
# stops the worker first (it reports to the server while it shuts down) and then the server,
# each whole process group: SIGTERM, up to GRACE_S seconds to finish, then SIGKILL. Further
# signals are ignored meanwhile, so a second Ctrl-C cannot leave the children running.
GRACE_S=${ROBERTA_STOP_GRACE_S:-30}

stop_group() {
    local pid=$1 name=$2
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for _ in $(seq $((GRACE_S * 2))); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "the $name is still running after ${GRACE_S} s: killing it" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
}

stop() {
    trap '' INT TERM
    trap - EXIT
    echo "stopping the Prefect worker and server..." >&2
    stop_group "$worker" worker
    stop_group "$server" server
    exit 0
}
trap stop EXIT INT TERM

# bash starts background commands with SIGINT ignored, and Prefect's worker stops by sending
# itself SIGINT (its SIGTERM handler), so it would never stop: give the children the default.
RESET_SIGINT=()
if env --default-signal=INT true 2>/dev/null; then RESET_SIGINT=(env --default-signal=INT); fi

setsid "${RESET_SIGINT[@]}" "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" &
server=$!
until curl -sf "$PREFECT_API_URL/health" >/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "the Prefect server exited" >&2; exit 1; }
    sleep 1
done
echo "Prefect UI: http://127.0.0.1:${PORT}   (PREFECT_API_URL=$PREFECT_API_URL)"
"$BIN/prefect" work-pool create local-process --type process >/dev/null 2>&1 || true
setsid "${RESET_SIGINT[@]}" "$BIN/prefect" worker start --pool local-process --type process &
worker=$!
wait
