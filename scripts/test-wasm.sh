#!/usr/bin/env bash
# Browser host: runs every browser test suite of splitstore-wasm in headless Chromium, builds
# the npm package (scripts/build-npm.sh), and loads the packed module in a plain ESM page.
#
#   scripts/test-wasm.sh            tests + package
#   scripts/test-wasm.sh --bench    also the IndexedDB benchmark (prints its figures)
#   scripts/test-wasm.sh --no-pack  tests only
#   scripts/test-wasm.sh --pack-only package build and ESM page only
#
# Needs what scripts/setup.sh installs; the package build fetches wasm-opt (binaryen) from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=0
PACK=1
TESTS=1
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 ;;
    --no-pack) PACK=0 ;;
    --pack-only) TESTS=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[test-wasm] %s\n' "$*"; }
need() { command -v "$1" >/dev/null || { echo "missing $1: run scripts/setup.sh first" >&2; exit 1; }; }
for tool in wasm-bindgen-test-runner chromedriver chromium; do need "$tool"; done

export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
# The conformance suites (crash matrix, every compaction mode) take minutes on IndexedDB.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-900}"

if [ "$TESTS" = 1 ]; then
  log "browser tests (headless Chromium, flags in host-wasm/webdriver.json)"
  cargo test -p splitstore-wasm --target wasm32-unknown-unknown --no-fail-fast -- --nocapture
fi

if [ "$BENCH" = 1 ]; then
  log "benchmark: raw IndexedDB vs compaction vs one transaction per operation"
  cargo test -p splitstore-wasm --target wasm32-unknown-unknown --test bench -- --include-ignored --nocapture
fi

[ "$PACK" = 1 ] || exit 0
for tool in wasm-pack npm python3; do need "$tool"; done

bash scripts/build-npm.sh
tarball="$(ls host-wasm/pkg/splitstore-wasm-*.tgz)"

# A plain ESM page imports the packed module and uses IndexedDB through it.
work="$(mktemp -d)"
server=""
browser=""
# A process group is alive while any member is not a zombie (read from /proc: no procps needed).
group_alive() {
  python3 -c '
import os, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
    if pgrp == sys.argv[1] and state != "Z":
        sys.exit(0)
sys.exit(1)' "$1"
}
# Cleanup never decides the script's exit status: what is left behind is only a temporary
# directory, and it is named when it cannot be removed.
cleanup() {
  local status=$?
  if [ -n "$browser" ]; then
    local signal
    for signal in TERM KILL; do
      kill "-$signal" -- "-$browser" 2>/dev/null || true
      for _ in $(seq 50); do group_alive "$browser" || break; sleep 0.1; done
    done
  fi
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  for _ in 1 2 3 4 5; do rm -rf "$work" 2>/dev/null && break; sleep 0.2; done
  [ ! -e "$work" ] || echo "[test-wasm] note: could not remove $work" >&2
  exit "$status"
}
trap cleanup EXIT
tar -xzf "$tarball" -C "$work"
for f in splitstore_wasm.js splitstore_wasm_bg.wasm splitstore_wasm.d.ts blockstore.js blockstore.d.ts README.md LICENSE-MIT; do
  [ -f "$work/package/$f" ] || { echo "the tarball lacks $f" >&2; exit 1; }
done
# A raw-codec SHA2-256 CIDv1 of the block bytes "splitstore", computed independently here.
cid="$(python3 -c '
import base64, hashlib
b = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(b"splitstore").digest()
print("b" + base64.b32encode(b).decode().lower().rstrip("="))')"
cat >"$work/index.html" <<EOF
<!doctype html>
<meta charset="utf-8">
<title>splitstore-wasm smoke</title>
<pre id="out">PENDING</pre>
<script type="module">
import init, { SplitStore } from "./package/splitstore_wasm.js";
const out = document.getElementById("out");
try {
  await init();
  const name = "smoke-" + Date.now();
  const store = await SplitStore.open(name, { mode: "universal" });
  const bytes = new TextEncoder().encode("splitstore");
  await store.put("$cid", bytes);
  const back = await store.get("$cid");
  const info = await store.info();
  let inUse = "";
  try { await SplitStore.open(name); } catch (e) { inUse = e.code; }
  await store.close();
  await SplitStore.destroy(name);
  const same = back && new TextDecoder().decode(back) === "splitstore";
  out.textContent = (same && info.hot.keys === 1 && inUse === "InUse" ? "SMOKE OK" : "SMOKE FAIL")
    + " " + JSON.stringify({ same, hot: info.hot, inUse });
} catch (e) {
  out.textContent = "SMOKE FAIL " + e + " " + (e.cause || "");
}
await fetch("/done?" + encodeURIComponent(out.textContent)).catch(() => {});
</script>
EOF
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The server's request log is how the page reports back: it fetches /done?<result>.
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" 2>"$work/requests.log" >/dev/null &
server=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
  sleep 0.1
done
# Chromium runs in a session of its own: its helpers (zygote, renderers) outlive
# the main process for a moment and keep writing the profile, so cleanup stops the whole group
# and waits for it to be gone before removing the directory.
setsid chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --disable-background-networking --disable-component-update --disable-sync --disable-quic \
  --disable-breakpad --disable-crash-reporter \
  --no-first-run --user-data-dir="$work/profile" "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 &
browser=$!
result=""
for _ in $(seq 600); do
  result="$(python3 - "$work/requests.log" <<'PY'
import re, sys, urllib.parse
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r'"GET /done\?(\S*) HTTP', line)
    if m:
        print(urllib.parse.unquote(m.group(1)))
        break
PY
)"
  [ -n "$result" ] && break
  sleep 0.1
done
log "ESM page: ${result:-no report within 60 s}"
case "$result" in
  "SMOKE OK"*) log "all done" ;;
  *) echo "the packed module did not work in a plain ESM page" >&2; exit 1 ;;
esac
