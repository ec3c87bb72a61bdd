#!/usr/bin/env bash
# Install (if needed) and start a local PostgreSQL for Patchwire's store tests.
#
# Idempotent: safe to run when PostgreSQL is already installed and/or running. Works as
# root on a clean Debian 12 machine without systemd (containers, CI runners). The server
# listens on 127.0.0.1:5432 only; a role and database "patchwire" (password "patchwire")
# are created. The last line printed is the export to paste (or eval) for the tests:
#
#   eval "$(scripts/ci-postgres.sh | tail -n1)"
set -euo pipefail

PG_USER=patchwire
PG_PASSWORD=patchwire
PG_DB=patchwire
PG_PORT=5432

log() { echo "ci-postgres: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs packages and runs commands as the postgres user)"
    exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

# Newest installed major version.
PG_VERSION="$(ls /usr/lib/postgresql | sort -n | tail -n1)"
CLUSTER=main

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$CLUSTER" '$1==v && $2==c {found=1} END {exit !found}'; then
    log "creating cluster $PG_VERSION/$CLUSTER"
    pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$CLUSTER" >&2
fi

CONF_DIR="/etc/postgresql/$PG_VERSION/$CLUSTER"
# Loopback only, fixed port: written as a conf.d drop-in so reruns do not pile up edits.
mkdir -p "$CONF_DIR/conf.d"
cat > "$CONF_DIR/conf.d/patchwire.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
CONF
chown postgres:postgres "$CONF_DIR/conf.d/patchwire.conf"
grep -q "^include_dir = 'conf.d'" "$CONF_DIR/postgresql.conf" \
    || echo "include_dir = 'conf.d'" >> "$CONF_DIR/postgresql.conf"

status="$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
if [ "$status" != "online" ]; then
    log "starting cluster $PG_VERSION/$CLUSTER"
    # pg_ctlcluster runs pg_ctl directly when systemd is not PID 1.
    pg_ctlcluster "$PG_VERSION" "$CLUSTER" start >&2
else
    log "cluster $PG_VERSION/$CLUSTER already running"
fi

# Wait until it accepts connections (up to ~30 s).
for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then break; fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PG_PORT" >&2

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -p $PG_PORT -qtA $*"; }

if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'\"")" != "1" ]; then
    log "creating role $PG_USER"
    psql_admin "-c \"CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB\"" >&2
else
    psql_admin "-c \"ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB\"" >&2
fi
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname='$PG_DB'\"")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin "-c \"CREATE DATABASE $PG_DB OWNER $PG_USER\"" >&2
fi

echo "export PATCHWIRE_TEST_POSTGRES_URL=postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
