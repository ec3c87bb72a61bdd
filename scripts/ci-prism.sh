#!/usr/bin/env bash
# Install Prism (@stoplight/prism-cli, npm) into .fixtures-cache/prism/ — never globally —
# so tests/catalog/test_prism.py can serve a vendor's own API description on 127.0.0.1 and
# have a mock server nobody on this project wrote judge every curated action's request
# (path, method, parameters, body, auth placement).
#
# 5.14.2: the newest release whose package.json still admits Node 18/20 (5.15 and 5.16 ask
# for Node 24, which CI does not have).
#
# Idempotent: the pinned version already installed is kept; FORCE=1 reinstalls.
# Prints the path of Prism's CLI entry point on stdout (tests find it on their own).
# Usage: scripts/ci-prism.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/prism"
VERSION="5.14.2"
PACKAGE="@stoplight/prism-cli@$VERSION"
BIN="$DEST/node_modules/.bin/prism"

log() { echo "ci-prism: $*" >&2; }

command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
command -v node >/dev/null || { log "node is required"; exit 1; }

installed() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' \
        "$DEST/node_modules/@stoplight/prism-cli/package.json"
}

if [ "${FORCE:-0}" != "1" ] && [ -x "$BIN" ] && [ "$(installed)" = "$VERSION" ]; then
    log "have @stoplight/prism-cli $VERSION"
else
    mkdir -p "$DEST"
    # A private package.json keeps npm from walking up and touching anything outside DEST.
    [ -f "$DEST/package.json" ] || echo '{"name": "patchwire-prism", "private": true}' >"$DEST/package.json"
    npm install --prefix "$DEST" --no-audit --no-fund --silent --save-exact "$PACKAGE" >&2
    log "installed @stoplight/prism-cli $(installed)"
fi
[ -x "$BIN" ] || { log "expected entry point $BIN is missing"; exit 1; }
echo "$BIN"
