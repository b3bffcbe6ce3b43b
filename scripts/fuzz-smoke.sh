#!/usr/bin/env bash
# Smoke run of every fuzz target: builds them all, seeds their corpora from the shared test
# data, and runs each for a fixed number of inputs from a fixed seed (FUZZ_SEED, default 1),
# so a run is reproducible: the same inputs on every machine, about 30 s each here. FUZZ_SECONDS
# (default 120) caps each run on a slow machine; a capped run executes a prefix of the same
# inputs. Fails on the first crash or violated property, naming the input libFuzzer saved.
# See docs/fuzzing.md for the long campaigns.
#
#   scripts/fuzz-smoke.sh                          # every target
#   FUZZ_SEED=7 FUZZ_SECONDS=600 scripts/fuzz-smoke.sh car ops
#
# Needs the nightly toolchain (preinstalled on machines of this kind; rustup cannot fetch one
# here), python3, and crates.io (cargo-fuzz is installed from it when missing). The test data
# is $SPLITSTORE_TESTDATA or ../shared/testdata beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH="${FUZZ_SECONDS:-120}"
SEED="${FUZZ_SEED:-1}"
ALL_TARGETS=(links header car meta ops)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

log() { printf '[fuzz-smoke] %s\n' "$*"; }

if ! rustup toolchain list | grep -q '^nightly'; then
  log "the nightly toolchain is missing (cargo-fuzz needs it): rustup toolchain install nightly"
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (about 2 minutes, once)"
  cargo install -q --locked cargo-fuzz --version "=$CARGO_FUZZ_VERSION"
fi

log "seeding corpora from the shared test data"
python3 fuzz/seed-corpus.py

log "building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
  cargo +nightly fuzz build "$t"
done

# Inputs per target (about 30 s each on this project's machine).
runs() {
  case "$1" in
    links) echo 250000 ;;
    header) echo 400000 ;;
    car) echo 12000 ;;
    meta) echo 60000 ;;
    ops) echo 700 ;;
  esac
}

# Per-target input bounds, as in the long runs (docs/fuzzing.md).
max_len() {
  case "$1" in
    car) echo 65536 ;;
    meta) echo 4096 ;;
    ops) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

for t in "${TARGETS[@]}"; do
  out="$(mktemp)"
  log "running $t: $(runs "$t") inputs from seed $SEED (at most ${SECONDS_EACH}s)"
  if ! cargo +nightly fuzz run "$t" -- -seed="$SEED" -runs="$(runs "$t")" -max_total_time="$SECONDS_EACH" \
      -max_len="$(max_len "$t")" \
      -malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 >"$out" 2>&1; then
    tail -n 60 "$out"
    log "$t FAILED: the failing input is the artifact named above (fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$out" | tail -1)
  log "$t ok: $runs runs, $rate exec/s, $cov"
  rm -f "$out"
done
log "all fuzz targets passed their smoke run"
