#!/usr/bin/env bash
# The cold store on S3, quick suite: starts `weed mini` (master, volume server, filer and S3
# gateway in one process; SeaweedFS from PyPI, see scripts/seaweedfs-lib.sh) on free ports of
# 127.0.0.1 with its own credentials and bucket, runs host-native/tests/s3_cold.rs against it,
# and stops it. The failover runs on a cluster are scripts/test-s3-cluster.sh.
#
#   scripts/test-s3.sh              the quick suite (a few minutes)
#   scripts/test-s3.sh --bench      also the benchmark (host-native/benches/s3_cold.rs)
#   SPLITSTORE_S3_KEEP=1 ...        leave the data directory behind (its path is printed)
#
# Needs python3 (with venv) and what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
SW_NAME=test-s3
source scripts/seaweedfs-lib.sh

BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

sw_install
work="$(mktemp -d)"
SW_PIDS=()
trap sw_stop_all EXIT
sw_credentials
read -r master volume filer s3 admin < <(sw_free_ports 5)
mkdir -p "$work/data"
sw_log "starting weed mini in $work (S3 on 127.0.0.1:$s3)"
sw_start mini mini -dir="$work/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3.port="$s3" -admin.port="$admin" \
  -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$work/s3.json" -webdav=false -admin.ui=false \
  -bucket=splitstore
sw_wait_bucket "127.0.0.1:$master" splitstore
sw_log "SeaweedFS is up"

export SPLITSTORE_S3_URL="s3://splitstore?endpoint=http://127.0.0.1:$s3"
cargo test -p splitstore-native --features s3 --lib s3
cargo test -p splitstore-native --features s3 --test s3_cold -- --nocapture
if [ "$BENCH" = 1 ]; then
  cargo bench -p splitstore-native --features s3 --bench s3_cold
fi
