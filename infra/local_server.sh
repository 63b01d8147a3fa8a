#!/usr/bin/env bash
# A Prefect server on 127.0.0.1 and a process worker, in the foreground; Ctrl-C stops both.
# Then, in another shell: .venv/bin/prefect --no-prompt deploy --all
#                         .venv/bin/prefect deployment run build-corpus/sample --watch
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
# The usual opt-out variable also stops the server's telemetry heartbeat (a separate setting).
if [ "${DO_NOT_TRACK:-0}" = 1 ]; then export PREFECT_SERVER_ANALYTICS_ENABLED=false; fi
server="" worker=""

# Each child runs in its own session (setsid), so Ctrl-C reaches only this script, which
# stops each child's whole process group (the server's uvicorn, the worker's flow runs):
# SIGTERM, up to 10 s to finish, then SIGKILL.
stop() {
    trap - EXIT INT TERM
    local groups=()
    for pid in $worker $server; do groups+=("-$pid"); done
    [ ${#groups[@]} -eq 0 ] && exit 0
    kill -TERM -- "${groups[@]}" 2>/dev/null || true
    for _ in $(seq 20); do
        kill -0 -- "${groups[@]}" 2>/dev/null || exit 0
        sleep 0.5
    done
    echo "still running after 10 s: killing" >&2
    kill -KILL -- "${groups[@]}" 2>/dev/null || true
    exit 0
}
trap stop EXIT INT TERM

setsid "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" &
server=$!
until curl -sf "$PREFECT_API_URL/health" >/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "the Prefect server exited" >&2; exit 1; }
    sleep 1
done
echo "Prefect UI: http://127.0.0.1:${PORT}   (PREFECT_API_URL=$PREFECT_API_URL)"
"$BIN/prefect" work-pool create local-process --type process >/dev/null 2>&1 || true
setsid "$BIN/prefect" worker start --pool local-process --type process &
worker=$!
wait
