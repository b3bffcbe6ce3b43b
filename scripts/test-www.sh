#!/usr/bin/env bash
# Builds the npm package from host-wasm (when its sources are newer than the build), installs
# the page's locked dependencies and runs the page's Playwright tests in headless Chromium.
#
#   scripts/test-www.sh            # build if needed, npm ci, test
#   FORCE_BUILD=1 scripts/test-www.sh
#
# Needs wasm-pack, wasm-bindgen-cli and Chromium (scripts/setup.sh installs them) and the
# shared test data (SPLITSTORE_TESTDATA, default ../shared/testdata beside the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-www] %s\n' "$*"; }

for tool in wasm-pack node npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "missing Chromium: run scripts/setup.sh" >&2; exit 1; }

pkg=host-wasm/pkg/splitstore_wasm.js
stale=0
if [ "${FORCE_BUILD:-0}" = 1 ] || [ ! -f "$pkg" ]; then
  stale=1
elif [ -n "$(find host-wasm/src host-wasm/Cargo.toml core/src core/Cargo.toml Cargo.lock -newer "$pkg" -print -quit)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  log "building the package (wasm-pack, release)"
  wasm-pack build host-wasm --target web --mode no-install --out-dir pkg
else
  log "package is up to date: $pkg"
fi

log "installing the page's dependencies (npm ci)"
npm --prefix www ci --no-audit --no-fund

log "running the page tests (artifacts in www/test-artifacts/)"
npm --prefix www test
