#!/usr/bin/env bash
# Install oauth2-mock-server (npm, 8.x: the line that supports Node 20) into
# .fixtures-cache/node/ — never globally — so tests/oauth/ can start it on 127.0.0.1 as an
# OAuth2 provider nobody on this project wrote.
#
# Idempotent: an existing install of the pinned major is kept; run with FORCE=1 to reinstall.
# Prints the path of the server's CLI entry point on stdout (tests find it on their own).
# Usage: scripts/ci-oauth-mock.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/node"
PACKAGE="oauth2-mock-server@8"
BIN="$DEST/node_modules/.bin/oauth2-mock-server"

log() { echo "ci-oauth-mock: $*" >&2; }

command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
command -v node >/dev/null || { log "node is required"; exit 1; }

installed_major() {
    node -e 'try { console.log(require(process.argv[1]).version.split(".")[0]) } catch { console.log("") }' \
        "$DEST/node_modules/oauth2-mock-server/package.json"
}

if [ "${FORCE:-0}" != "1" ] && [ -f "$BIN" ] && [ "$(installed_major)" = "8" ]; then
    log "have oauth2-mock-server $(node -p "require('$DEST/node_modules/oauth2-mock-server/package.json').version")"
else
    mkdir -p "$DEST"
    # A private package.json keeps npm from walking up and touching anything outside DEST.
    [ -f "$DEST/package.json" ] || echo '{"name": "patchwire-fixtures", "private": true}' >"$DEST/package.json"
    npm install --prefix "$DEST" --no-audit --no-fund --silent "$PACKAGE" >&2
    log "installed oauth2-mock-server $(node -p "require('$DEST/node_modules/oauth2-mock-server/package.json').version")"
fi
[ -f "$BIN" ] || { log "expected entry point $BIN is missing"; exit 1; }
echo "$BIN"
