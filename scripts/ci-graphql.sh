#!/usr/bin/env bash
# Install the GraphQL fixtures into .fixtures-cache/graphql/ — never globally:
# - @octokit/graphql-schema: GitHub's public GraphQL schema (SDL and introspection JSON),
#   imported by tests/graphql/test_github_schema.py (import time, provider rules);
# - json-graphql-server: a real GraphQL server nobody on this project wrote, started on
#   127.0.0.1 by tests/graphql/test_real_server.py (introspect -> import -> call -> errors).
#
# Idempotent: pinned versions already installed are kept; FORCE=1 reinstalls.
# Prints the install directory on stdout (tests find it on their own).
# Usage: scripts/ci-graphql.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/graphql"
SCHEMA="@octokit/graphql-schema@15.26.1"
SERVER="json-graphql-server@3.3.2"

log() { echo "ci-graphql: $*" >&2; }

command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
command -v node >/dev/null || { log "node is required"; exit 1; }

version_of() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' \
        "$DEST/node_modules/$1/package.json"
}

if [ "${FORCE:-0}" != "1" ] && [ "$(version_of @octokit/graphql-schema)" = "15.26.1" ] \
        && [ "$(version_of json-graphql-server)" = "3.3.2" ]; then
    log "have @octokit/graphql-schema 15.26.1 and json-graphql-server 3.3.2"
else
    mkdir -p "$DEST"
    # A private package.json keeps npm from walking up and touching anything outside DEST.
    [ -f "$DEST/package.json" ] || echo '{"name": "patchwire-graphql-fixtures", "private": true}' >"$DEST/package.json"
    npm install --prefix "$DEST" --no-audit --no-fund --silent --save-exact "$SCHEMA" "$SERVER" >&2
    log "installed @octokit/graphql-schema $(version_of @octokit/graphql-schema), json-graphql-server $(version_of json-graphql-server)"
fi
[ -f "$DEST/node_modules/@octokit/graphql-schema/schema.graphql" ] || { log "GitHub's schema.graphql is missing"; exit 1; }
echo "$DEST"
