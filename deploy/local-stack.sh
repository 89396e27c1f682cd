#!/usr/bin/env bash
# Supplyline's production shape on one machine, for a trial: a Prefect server on PostgreSQL
# (loopback only), the `supplyline` process work pool, Supplyline's blocks registered, its
# database migrated, every deployment of prefect.yaml, and process workers.
#
#   deploy/local-stack.sh up        # start it all (idempotent: what runs is left running)
#   deploy/local-stack.sh status    # what runs, and where
#   deploy/local-stack.sh down      # stop the workers and the server (databases are kept)
#   . .stack/env                    # then: prefect / supplyline commands talk to this stack
#
# Settings (environment):
#   SUPPLYLINE_STACK_DIR  state: pids, logs, Prefect home, Supplyline home   (./.stack)
#   PREFECT_PORT          the Prefect server's port on 127.0.0.1; UI at http://127.0.0.1:PORT (4200)
#   PG_ADMIN_URL          a PostgreSQL role that may create databases
#                         (postgresql://postgres@127.0.0.1:5432/postgres)
#   PREFECT_DB            the Prefect server's database                     (supplyline_prefect)
#   SUPPLYLINE_DB         Supplyline's database                             (supplyline)
#   WORKERS               process workers to start                          (2)
#   PREFECT_FILE          the deployments to apply                          (./prefect.yaml)
# Anything else in the environment (SUPPLYLINE_*, PREFECT_WORKER_QUERY_SECONDS, ...) reaches
# the workers and so the flow runs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

STACK_DIR="$(mkdir -p "${SUPPLYLINE_STACK_DIR:-$ROOT/.stack}" && cd "${SUPPLYLINE_STACK_DIR:-$ROOT/.stack}" && pwd)"
PREFECT_PORT="${PREFECT_PORT:-4200}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
PREFECT_DB="${PREFECT_DB:-supplyline_prefect}"
SUPPLYLINE_DB="${SUPPLYLINE_DB:-supplyline}"
WORKERS="${WORKERS:-2}"
PREFECT_FILE="${PREFECT_FILE:-$ROOT/prefect.yaml}"
START_TIMEOUT="${START_TIMEOUT:-120}"

PG_BASE="${PG_ADMIN_URL%/*}"                       # postgresql://user@host:port
PG_ASYNC_BASE="postgresql+asyncpg://${PG_BASE#*://}"

export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 GX_ANALYTICS_ENABLED=false
export PREFECT_HOME="$STACK_DIR/prefect-home"
export PREFECT_API_URL="http://127.0.0.1:$PREFECT_PORT/api"
export SUPPLYLINE_DATABASE_URL="$PG_BASE/$SUPPLYLINE_DB"
export SUPPLYLINE_HOME="${SUPPLYLINE_HOME:-$STACK_DIR/home}"
export SUPPLYLINE_PROJECT_DIR="$ROOT"

BIN="$(uv run --frozen python -c 'import os, sys; print(os.path.dirname(sys.executable))')"

log() { printf '%s\n' "$*" >&2; }

running() {  # running NAME: the pid in NAME.pid is alive
    local pidfile="$STACK_DIR/$1.pid"
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {  # start NAME COMMAND...: in its own session (so `down` stops its children too)
    local name="$1"
    shift
    if running "$name"; then
        log "$name: already running (pid $(cat "$STACK_DIR/$name.pid"))"
        return
    fi
    setsid "$@" >>"$STACK_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$STACK_DIR/$name.pid"
    log "$name: started (pid $!, log $STACK_DIR/$name.log)"
}

stop() {  # stop NAME...: interrupt each (as Ctrl-C: a worker takes no new run), then KILL
          # its process group, flow runs included, if it still runs after 15 s
    local name pid pids=()
    for name in "$@"; do
        [ -f "$STACK_DIR/$name.pid" ] || continue
        pid="$(cat "$STACK_DIR/$name.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true
            pids+=("$pid")
            log "$name: stopping (pid $pid)"
        fi
        rm -f "$STACK_DIR/$name.pid"
    done
    for _ in $(seq 1 30); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
}

create_database() {  # create_database NAME, unless it exists
    "$BIN/python" - "$PG_ADMIN_URL" "$1" <<'PY'
import sys

import psycopg
from psycopg import sql

admin_url, name = sys.argv[1:]
with psycopg.connect(admin_url, autocommit=True) as connection:
    found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if not found:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"database {name}: created", file=sys.stderr)
PY
}

wait_for_server() {
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$BIN/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$PREFECT_API_URL/health" >/dev/null 2>&1; do
        if ! running server; then
            log "the Prefect server exited; see $STACK_DIR/server.log"
            tail -n 30 "$STACK_DIR/server.log" >&2 || true
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "the Prefect server did not answer within ${START_TIMEOUT}s; see $STACK_DIR/server.log"
            exit 1
        fi
        sleep 0.5
    done
}

write_env() {
    cat >"$STACK_DIR/env" <<EOF
export PREFECT_API_URL=$PREFECT_API_URL
export PREFECT_HOME=$PREFECT_HOME
export SUPPLYLINE_DATABASE_URL=$SUPPLYLINE_DATABASE_URL
export SUPPLYLINE_HOME=$SUPPLYLINE_HOME
export SUPPLYLINE_PROJECT_DIR=$SUPPLYLINE_PROJECT_DIR
EOF
}

up() {
    mkdir -p "$PREFECT_HOME" "$SUPPLYLINE_HOME"
    create_database "$PREFECT_DB"
    create_database "$SUPPLYLINE_DB"
    PREFECT_API_DATABASE_CONNECTION_URL="$PG_ASYNC_BASE/$PREFECT_DB" \
        start server "$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT"
    wait_for_server
    log "Prefect server: $PREFECT_API_URL (UI http://127.0.0.1:$PREFECT_PORT)"

    if ! "$BIN/prefect" work-pool inspect supplyline >/dev/null 2>&1; then
        "$BIN/prefect" work-pool create supplyline --type process >&2
    fi
    "$BIN/prefect" block register -m blocks >&2
    "$BIN/supplyline" db upgrade >&2
    "$BIN/prefect" --no-prompt deploy --all --prefect-file "$PREFECT_FILE" >"$STACK_DIR/deploy.log" 2>&1 \
        || { tail -n 40 "$STACK_DIR/deploy.log" >&2; exit 1; }
    log "deployments applied from $PREFECT_FILE (log $STACK_DIR/deploy.log)"

    for n in $(seq 1 "$WORKERS"); do
        start "worker-$n" "$BIN/prefect" worker start --pool supplyline --type process \
            --name "supplyline-$(hostname)-$n"
    done
    write_env
    log "ready: . $STACK_DIR/env  # to use this stack from a shell"
}

down() {
    local workers=()
    for pidfile in "$STACK_DIR"/worker-*.pid; do
        [ -e "$pidfile" ] && workers+=("$(basename "$pidfile" .pid)")
    done
    [ "${#workers[@]}" = 0 ] || stop "${workers[@]}"
    stop server
}

status() {
    for pidfile in "$STACK_DIR"/*.pid; do
        [ -e "$pidfile" ] || continue
        name="$(basename "$pidfile" .pid)"
        if running "$name"; then state="running"; else state="stopped"; fi
        printf '%-10s %-8s pid %s\n' "$name" "$state" "$(cat "$pidfile")"
    done
    printf 'API %s\n' "$PREFECT_API_URL"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *)
        echo "usage: $0 up|down|status" >&2
        exit 2
        ;;
esac
