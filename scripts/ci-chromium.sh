#!/usr/bin/env bash
# Install Debian's Chromium (if missing) for the browser tests in tests/browser/.
#
# Playwright (pip, a dev dependency) drives this Chromium through its executable path; its
# own browser download does not work here (no network but the package registries).
# Idempotent; works as root on a clean Debian 12 machine (CI). Prints the executable path.
set -euo pipefail

log() { echo "ci-chromium: $*" >&2; }

find_chromium() {
    for candidate in chromium chromium-browser; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if ! find_chromium >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        log "chromium is missing and this is not root: apt-get install chromium"
        exit 1
    fi
    log "installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi

find_chromium
