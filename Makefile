# replog — common tasks. `make cluster` starts a local 3-node cluster;
# `make test` runs every test (unit, simulator, real-process, the compose
# scenario and the bounded chaos pass; the Docker parts when an engine answers).
SHELL := /bin/bash
GO    ?= go
BIN   := bin/replog

.PHONY: run-server all build test test-unit test-sim test-e2e test-compose test-chaos chaos sim cluster proto bench bench-failover bench-catchup vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/replog

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }

# Unit tests under the race detector (the simulator is single-threaded and
# runs without it, in test-sim).
test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /pkg/sim)

# The deterministic simulator: 1000 seeded fault schedules, plus the planted
# bugs it must find.
test-sim:
	$(GO) test -count=1 -timeout 20m ./pkg/sim/

# As many seeds as you like: make sim SEEDS=100000 [FROM=1]
SEEDS ?= 10000
FROM  ?= 1
sim:
	$(GO) test -count=1 -timeout 0 ./pkg/sim/ -run 'TestSimulation$$' -seeds $(SEEDS) -seed $(FROM) -v

test-e2e:
	$(GO) test -count=1 -timeout 10m ./test/e2e/

# The compose scenario (DESIGN §6) against the Dockerfile and docker-compose.yml.
test-compose:
	./scripts/compose-test.sh

# The bounded chaos pass (docs/reliability.md), a few minutes: a 3- and a
# 5-node process cluster through every fault kind twice (network faults in
# namespaces when root), the five-node compose cluster through docker kill, pause and
# network disconnect, any two of five down, two of three down, the
# harness against a build with a planted bug, and servers on three hosts
# (namespaces) growing a cluster with PEERS.
CHAOS_QUICK := TestChaosQuick|TestChaosCompose|TestChaosAnyTwoOfFive|TestChaosTwoOfThreeDown|TestChaosFindsPlantedBug|TestJoinAcrossHosts
test-chaos:
	$(GO) test -tags chaos -count=1 -timeout 30m ./test/chaos/ -run '^($(CHAOS_QUICK))$$'

# The long chaos run: seeds back to back for CHAOS_DURATION, then a table
# (runs, operations, faults by kind, writes lost, linearizability verdicts).
CHAOS_DURATION ?= 30m
chaos:
	$(GO) test -tags chaos -count=1 -timeout 0 ./test/chaos/ -run '^TestChaosLong$$' -duration $(CHAOS_DURATION) -v

test: vet test-unit test-sim test-e2e test-compose test-chaos

# Master on 8080/9090, sentinels on 8081/9091 and 8082/9092, as local
# processes; Ctrl-C stops all three. Data in ./data/.
cluster: build
	./scripts/cluster.sh

# One server as a local process, the way the original users grew clusters:
#   make run-server MODE=grpc SERVER_ID=server1 PORT=5555
#   make run-server MODE=grpc SERVER_ID=server2 PORT=5556 PEERS=localhost:5555
# Without PEERS it bootstraps a one-node cluster and is its master; with
# PEERS it joins the running cluster. gRPC listens on PORT+10000, data in
# ./data/SERVER_ID. (MODE=grpc is the only mode and may be left out.)
SERVER_ID ?= server1
PORT      ?= 5555
PEERS     ?=
run-server: build
	ROLE=$(if $(PEERS),sentinel,master) SERVER_ID=$(SERVER_ID) PORT=$(PORT) GRPC_PORT=$$(( $(PORT) + 10000 )) \
	  PEERS=$(PEERS) ADVERTISE_HOST=$${ADVERTISE_HOST:-127.0.0.1} DATA_DIR=$${DATA_DIR:-./data/$(SERVER_ID)} ./$(BIN)

proto:
	cd proto && $(GO) generate

# Throughput and latency of a 3-node loopback cluster (FSYNC=always).
bench: build
	./scripts/bench.sh

# A new member joins a log of MESSAGES (1,000,000) messages of 100 bytes
# under a steady majority writer: time to voter, throughput before/during.
bench-catchup: build
	MESSAGES=$${MESSAGES:-1000000} ./scripts/catchup-bench.sh

# kill -9 the master 20 times under a steady writer; time to the next write.
bench-failover: build
	$(GO) run ./cmd/replog-failover-bench -bin $(BIN) -kills 20
	$(GO) run ./cmd/replog-failover-bench -bin $(BIN) -kills 20 -sigterm

clean:
	rm -rf bin data .cluster
