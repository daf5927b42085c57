// Package chaos runs real replog clusters under injected faults (crashes,
// pauses, network isolation, partitions, one-way link cuts, full restarts)
// with concurrent clients, and checks the recorded history: linearizability
// of majority writes and linearizable reads (porcupine, pkg/linearize), no
// loss of majority-acknowledged writes, gap-free prefix reads, no duplicate
// keys. The tests are behind the build tag `chaos`:
//
//	go test -tags chaos ./test/chaos -run TestChaosQuick -v
//
// See docs/reliability.md.
package chaos
