#!/usr/bin/env bash
# The npm package as users install it: installs the packed tarball into a Vite app
# (host-wasm/npm-tests), type-checks a TypeScript user of it (strict tsc), builds the app with
# Vite, and runs it in headless Chromium: the interface-blockstore
# contract suite (interface-blockstore-tests) in both pin modes, Helia beside a compacting
# chain, and the package inside a Web Worker.
#
# Builds the package first when a source is newer than the tarball (scripts/build-npm.sh).
# Needs what scripts/setup.sh installs (wasm-pack, wasm-bindgen-cli, node, Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-npm] %s\n' "$*"; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "missing Chromium: run scripts/setup.sh" >&2; exit 1; }

bash scripts/build-npm.sh --if-stale
tarball="$(ls "$PWD"/host-wasm/pkg/splitstore-wasm-*.tgz)"

app=host-wasm/npm-tests
log "installing the app's locked dependencies (npm ci), then the packed package"
npm --prefix "$app" ci --no-audit --no-fund --silent
# Not saved: the tarball's hash changes with every build; the lockfile pins everything else.
npm --prefix "$app" install --no-save --no-audit --no-fund --silent "$tarball"

log "type-checking a TypeScript user of the package (tsc --noEmit, strict)"
npm --prefix "$app" run --silent typecheck

log "building the app with Vite"
npm --prefix "$app" run --silent build

log "running the app in headless Chromium"
npm --prefix "$app" test
