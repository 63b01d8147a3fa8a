#!/usr/bin/env bash
# A Prefect server on 127.0.0.1 and a process worker, in the foreground; Ctrl-C stops both.
# Then, in another shell: .venv/bin/prefect --no-prompt deploy --all
#                         .venv/bin/prefect deployment run build-corpus/sample --watch
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
"$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" &
server=$!
trap 'kill $server $worker 2>/dev/null; wait' EXIT INT TERM
until curl -sf "$PREFECT_API_URL/health" >/dev/null; do sleep 1; done
echo "Prefect UI: http://127.0.0.1:${PORT}   (PREFECT_API_URL=$PREFECT_API_URL)"
"$BIN/prefect" work-pool create local-process --type process >/dev/null 2>&1 || true
"$BIN/prefect" worker start --pool local-process --type process &
worker=$!
wait
