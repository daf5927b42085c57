#!/usr/bin/env bash
# How fast a new member catches up on a large log, and what that costs the
# master: a 3-node loopback cluster (FSYNC=always) is loaded with
# ${MESSAGES:-1000000} messages of 100 bytes; its majority-write throughput is
# measured; then a fourth node joins with PEERS while the same load runs,
# and the script reports the time until it is a voter and the throughput
# meanwhile. Starts and stops its own processes.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-1000000}
go build -o bin/replog ./cmd/replog
go build -o bin/replog-bench ./cmd/replog-bench
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for port in 38180 38181 38182 38183 39190 39191 39192 39193; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "catchup-bench: port $port is in use" >&2; exit 1; fi
done
start() { # name http grpc extra-env...
  local name=$1 http=$2 grpc=$3; shift 3
  env ADVERTISE_HOST=127.0.0.1 PORT=$http GRPC_PORT=$grpc DATA_DIR="$dir/$name" FSYNC=always \
      LOG_LEVEL=info LOG_FORMAT=json "$@" bin/replog >"$dir/$name.log" 2>&1 &
  pids+=($!)
}
start master 38180 39190 ROLE=master SENTINELS=127.0.0.1:39191,127.0.0.1:39192
start s1 38181 39191
start s2 38182 39192
for i in $(seq 100); do curl -sf localhost:38180/status | grep -q '"role":"master"' && break; sleep 0.1; done
curl -sf localhost:38180/status | grep -q '"role":"master"' || { echo "catchup-bench: no master" >&2; tail "$dir"/*.log >&2; exit 1; }
t0=$(date +%s.%N)
bin/replog-bench -url http://127.0.0.1:38180 -c 256 -w 1 -size 100 -n "$MESSAGES" -warmup 0 ||
  { echo "catchup-bench: loading failed" >&2; tail -5 "$dir"/master.log >&2; exit 1; }
t1=$(date +%s.%N)
echo "# loaded $MESSAGES messages in $(awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.1f\", b-a}") s; data on the master: $(du -sh "$dir/master" | cut -f1)"
echo "# before the join: majority writes, c=64, 10 s"
bin/replog-bench -url http://127.0.0.1:38180 -c 64 -w majority -size 100 -d 10s
echo "# a fourth node joins with PEERS, under the same load"
# The master's last message id (exact; the metrics page prints large
# counters in floating point).
inserts() { curl -sf localhost:38180/status | grep -o '"lastId":[0-9]*' | cut -d: -f2; }
bin/replog-bench -url http://127.0.0.1:38180 -c 64 -w majority -size 100 -d 600s -warmup 0 > "$dir/during.txt" &
bench=$!
sleep 1
i0=$(inserts)
j0=$(date +%s.%N)
start joiner 38183 39193 PEERS=127.0.0.1:38180
voter=""
for i in $(seq 1200); do
  if curl -sf localhost:38180/status | grep -q '"id":"127.0.0.1:39193"[^}]*"voter":true'; then voter=yes; break; fi
  sleep 0.1
done
j1=$(date +%s.%N)
i1=$(inserts)
kill -TERM $bench 2>/dev/null || true  # (a background job ignores SIGINT)
wait $bench 2>/dev/null || true
if [ -z "$voter" ]; then echo "catchup-bench: the joiner did not become a voter in 120 s" >&2; tail -20 "$dir/joiner.log" >&2; exit 1; fi
echo "# joiner became a voter $(awk -v a="$j0" -v b="$j1" "BEGIN{printf \"%.1f\", b-a}") s after it started"
echo "# master's majority-write throughput during the catch-up: $(awk -v a="$i0" -v b="$i1" -v s="$j0" -v e="$j1" 'BEGIN{printf "%.0f", (b-a)/(e-s)}') inserts/s"
echo "# the load generator over the same window: $(cat "$dir/during.txt")"
grep -h '"member catching up"' "$dir/master.log" | tail -3 || true
