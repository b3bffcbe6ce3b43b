#!/usr/bin/env bash
# Builds the npm package with the synthetic chain generator (host-wasm/pkg-demo, when its
# sources are newer than the build), installs
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

# The page generates its chain: it takes the package built with the synthetic chain generator.
if [ "${FORCE_BUILD:-0}" = 1 ]; then
  bash scripts/build-npm.sh --demo
else
  bash scripts/build-npm.sh --demo --if-stale
fi

log "installing the page's dependencies (npm ci)"
npm --prefix www ci --no-audit --no-fund

log "running the page tests (artifacts in www/test-artifacts/)"
npm --prefix www test
