#!/usr/bin/env bash
# Builds the npm package: wasm-pack (release), the Blockstore entry and package fields
# (host-wasm/js/finish-package.mjs), wasm-opt from the binaryen npm package, and `npm pack`.
# Prints the module's size before and after wasm-opt.
#
#   scripts/build-npm.sh              the package, into host-wasm/pkg
#   scripts/build-npm.sh --demo       the same with the synthetic chain generator
#                                     (`SyntheticChain`, cargo feature `synth`), into
#                                     host-wasm/pkg-demo, for the page in www/
#   --if-stale                        only when a source is newer than the packed tarball
#
# Needs what scripts/setup.sh installs (wasm-pack, wasm-bindgen-cli, node).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-npm] %s\n' "$*"; }
for tool in wasm-pack node npm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh first" >&2; exit 1; }
done

OUT=pkg
FEATURES=()
IF_STALE=0
for arg in "$@"; do
  case "$arg" in
    --demo) OUT=pkg-demo; FEATURES=(-- --features synth) ;;
    --if-stale) IF_STALE=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
PKG="host-wasm/$OUT"

if [ "$IF_STALE" = 1 ]; then
  tarball="$(ls "$PKG"/splitstore-wasm-*.tgz 2>/dev/null | head -1 || true)"
  if [ -n "$tarball" ] && [ -z "$(find host-wasm/src host-wasm/js host-wasm/Cargo.toml host-wasm/README.md \
      core/src core/Cargo.toml Cargo.lock -newer "$tarball" -not -path '*/node_modules/*' -print -quit)" ]; then
    log "package is up to date: $tarball"
    exit 0
  fi
fi

log "wasm-pack build into $PKG (release; no downloads: --mode no-install)"
rm -rf "$PKG"
wasm-pack build host-wasm --target web --mode no-install --out-dir "$OUT" --release ${FEATURES[@]+"${FEATURES[@]}"}
node host-wasm/js/finish-package.mjs "$PKG"

log "wasm-opt (binaryen from npm, pinned in host-wasm/js/package-lock.json)"
npm --prefix host-wasm/js ci --no-audit --no-fund --silent
wasm="$PKG/splitstore_wasm_bg.wasm"
size() { printf '%s bytes (%s gzipped)' "$(wc -c <"$1")" "$(gzip -9 -c "$1" | wc -c)"; }
before="$(size "$wasm")"
host-wasm/js/node_modules/.bin/wasm-opt -O "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"
log "module size: $before before wasm-opt -O, $(size "$wasm") after"

(cd "$PKG" && npm pack --silent >/dev/null)
log "packed $(ls "$PKG"/splitstore-wasm-*.tgz)"
