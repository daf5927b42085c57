#!/usr/bin/env bash
# Throughput and latency of a 3-node replog cluster on loopback with
# FSYNC=always: concurrency 1 and 64, writeConcern 1 and majority, 100-byte
# messages. Starts its own cluster on spare ports and stops it afterwards.
#   DURATION=10s make bench
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
go build -o bin/replog ./cmd/replog
go build -o bin/replog-bench ./cmd/replog-bench
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
start() { # name http grpc extra-env...
  local name=$1 http=$2 grpc=$3; shift 3
  env ADVERTISE_HOST=127.0.0.1 PORT=$http GRPC_PORT=$grpc DATA_DIR="$dir/$name" FSYNC=always \
      LOG_LEVEL=warn LOG_FORMAT=json "$@" bin/replog >"$dir/$name.log" 2>&1 &
  pids+=($!)
}
for port in 28080 28081 28082 29090 29091 29092; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "bench: port $port is in use" >&2; exit 1; fi
done
start master 28080 29090 ROLE=master SENTINELS=127.0.0.1:29091,127.0.0.1:29092
start s1 28081 29091
start s2 28082 29092
for i in $(seq 100); do curl -sf localhost:28080/status | grep -q '"role":"master"' && break; sleep 0.1; done
curl -sf localhost:28080/status | grep -q '"role":"master"' || { echo "bench: cluster did not start" >&2; tail "$dir"/*.log >&2; exit 1; }
echo "# 3 nodes on loopback, FSYNC=always, 100-byte messages, ${DURATION} per row ($(nproc) cores)"
for c in 1 64; do
  for w in 1 majority; do
    bin/replog-bench -url http://127.0.0.1:28080 -c $c -w $w -size 100 -d "$DURATION"
  done
done
