#!/usr/bin/env bash
# Runs every suite on a fresh machine: installs the toolchain pieces it needs first
# (scripts/setup.sh), then native tests, the cold store on S3 against SeaweedFS, the no_std /
# wasm builds of the core, the browser
# suites in headless Chromium, the packed npm package in a Vite app (Helia, the
# interface-blockstore contract suite, a Web Worker, a strict tsc check), the web page's
# Playwright tests, a short run of every fuzz target, the linters, and a publish dry-run of
# the two crates.
#
#   SPLITSTORE_SEEDS        interleaving seeds (default 1000)
#   SPLITSTORE_KILL_TRIALS  kill -9 trials of the native CLI (default 20)
#   SPLITSTORE_TESTDATA     the shared test-data folder (default ../shared/testdata)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "core builds without std (thumbv7em) and for wasm32"
cargo build -q -p splitstore-core --target thumbv7em-none-eabihf --no-default-features
cargo build -q -p splitstore-core --target wasm32-unknown-unknown

step "native tests (core, conformance suites, native host, CLI)"
cargo test --workspace --exclude splitstore-wasm

step "the cold store on S3 (SeaweedFS started by the script)"
bash scripts/test-s3.sh

step "embedding examples (a store embedded with threads, and under tokio)"
cargo run -q -p splitstore-native --example embed_thread
cargo run -q -p splitstore-native --example embed_tokio

step "browser tests (IndexedDB backend in headless Chromium) and the npm package"
bash scripts/test-wasm.sh

step "the packed npm package in a Vite app: interface-blockstore-tests, Helia, a Web Worker, tsc"
bash scripts/test-npm.sh

step "web page (Playwright on headless Chromium)"
bash scripts/test-www.sh

step "fuzz smoke: every target builds and runs about 30 s"
bash scripts/fuzz-smoke.sh

step "lint"
cargo fmt --all --check
cargo clippy -q --workspace --exclude splitstore-wasm --all-targets -- -D warnings
cargo clippy -q -p splitstore-native --features s3 --all-targets -- -D warnings
cargo clippy -q -p splitstore-wasm --target wasm32-unknown-unknown --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --all-features -p splitstore-core -p splitstore-native
# splitstore-core and splitstore-native as crates.io would take them: packaged together (the
# native crate verified against the packaged core) and built from the packages. Reuses the
# examples' dev-profile build.
# Cargo unpacks the packaged core from its temporary registry into CARGO_HOME once per version
# and reuses that copy on later runs, so a machine that ran this before would verify the
# native crate against an old core: drop those copies (never crates.io's) first.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/splitstore-core-*
# Cargo also reuses what it built from such a copy without reading its sources again (a
# registry's sources are taken to be immutable): drop those builds too.
target="${CARGO_TARGET_DIR:-target}/debug"
for dep_info in "$target"/deps/splitstore_core-*.d; do
  [ -e "$dep_info" ] && grep -q 'registry/src/-[0-9a-f]*/splitstore-core-' "$dep_info" || continue
  hash=${dep_info##*/splitstore_core-}
  hash=${hash%.d}
  rm -rf "$target/.fingerprint/splitstore-core-$hash" "$target"/deps/*splitstore_core-"$hash".*
done
cargo publish -q --dry-run --allow-dirty --workspace --exclude splitstore-wasm --exclude splitstore-conformance

step "all suites passed"
