#!/usr/bin/env bash
# The cold store on a SeaweedFS cluster, the failover runs (minutes; not in test-all.sh): three
# masters (Raft), three volume servers with replication 001 (two copies of every volume), one
# filer and one S3 gateway (read-your-writes goes through one gateway), all on free ports of
# 127.0.0.1; then host-native/tests/s3_cluster.rs, which kills a volume server just before a
# compaction's second move page and the leader master while the store serves, and stops the
# cluster.
#
#   scripts/test-s3-cluster.sh
#   SPLITSTORE_S3_KEEP=1 ...        leave the data directory behind (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
SW_NAME=test-s3-cluster
source scripts/seaweedfs-lib.sh

sw_install
work="$(mktemp -d)"
SW_PIDS=()
trap sw_stop_all EXIT
sw_credentials
read -r m1 m2 m3 v1 v2 v3 filer s3 < <(sw_free_ports 8)
peers="127.0.0.1:$m1,127.0.0.1:$m2,127.0.0.1:$m3"
sw_log "starting three masters, three volume servers, a filer and an S3 gateway in $work"
for i in 1 2 3; do
  port_var="m$i"
  mkdir -p "$work/m$i"
  sw_start "master$i" master -ip=127.0.0.1 -port="${!port_var}" -mdir="$work/m$i" -peers="$peers" \
    -defaultReplication=001 -volumeSizeLimitMB=64 -electionTimeout=2s
done
sleep 2
for i in 1 2 3; do
  port_var="v$i"
  mkdir -p "$work/v$i"
  sw_start "volume$i" volume -ip=127.0.0.1 -port="${!port_var}" -dir="$work/v$i" -mserver="$peers" -max=30
done
mkdir -p "$work/filer"
sw_start filer filer -ip=127.0.0.1 -port="$filer" -master="$peers" -defaultReplicaPlacement=001 \
  -defaultStoreDir="$work/filer"
sw_start s3 s3 -ip.bind=127.0.0.1 -port="$s3" -filer="127.0.0.1:$filer" -config="$work/s3.json" \
  -port.iceberg=0 -port.lance=0
for _ in $(seq 60); do
  echo "s3.bucket.create -name splitstore" | "$weed" shell -master="$peers" 2>/dev/null | grep -q "splitstore" && break
  sleep 1
done
sw_wait_bucket "$peers" splitstore
sw_log "cluster is up"

export SPLITSTORE_S3_URL="s3://splitstore?endpoint=http://127.0.0.1:$s3"
export SPLITSTORE_S3_VOLUMES="$pid_volume1,$pid_volume2,$pid_volume3"
export SPLITSTORE_S3_MASTERS="127.0.0.1:$m1=$pid_master1,127.0.0.1:$m2=$pid_master2,127.0.0.1:$m3=$pid_master3"
cargo test -p splitstore-native --features s3 --test s3_cluster -- --nocapture --test-threads 1
