#!/usr/bin/env bash
# Starts a 3-node replog cluster as local processes: master on 8080 (gRPC
# 9090), sentinels on 8081/9091 and 8082/9092. Ctrl-C stops all three.
# Data lives in ${DATA:-./data}; remove it for a fresh cluster.
# Extra environment (e.g. REPLICATION_DELAY for sentinel 2) passes through:
#   SLOW_DELAY=10s make cluster
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/replog}
DATA=${DATA:-./data}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/replog
mkdir -p "$DATA"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping cluster..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
common=(ADVERTISE_HOST=127.0.0.1 FSYNC=${FSYNC:-always} LOG_LEVEL=${LOG_LEVEL:-info})
env "${common[@]}" ROLE=master PORT=8080 GRPC_PORT=9090 DATA_DIR="$DATA/master" \
  SENTINELS=127.0.0.1:9091,127.0.0.1:9092 "$BIN" > >(sed -u 's/^/[master]    /') 2>&1 &
pids+=($!)
env "${common[@]}" ROLE=sentinel PORT=8081 GRPC_PORT=9091 DATA_DIR="$DATA/sentinel1" \
  "$BIN" > >(sed -u 's/^/[sentinel1] /') 2>&1 &
pids+=($!)
env "${common[@]}" ROLE=sentinel PORT=8082 GRPC_PORT=9092 DATA_DIR="$DATA/sentinel2" \
  REPLICATION_DELAY=${SLOW_DELAY:-0s} "$BIN" > >(sed -u 's/^/[sentinel2] /') 2>&1 &
pids+=($!)
echo "replog cluster: master http://localhost:8080, sentinels http://localhost:8081 http://localhost:8082 (Ctrl-C stops)"
wait
