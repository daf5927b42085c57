//go:build chaos

package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestChaosQuick is the bounded pass (about two minutes): one run on 3
// nodes and one on 5, each injecting every fault kind twice, in a seeded
// order.
func TestChaosQuick(t *testing.T) {
	seed := baseSeed()
	t.Logf("seed %d (replay the pass with -seed %d)", seed, seed)
	for k, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes%d", n), func(t *testing.T) {
			kinds, _ := availableFaults(runSpec{}, backendCaps(runSpec{}))
			r := runChaos(t, runSpec{nodes: n, seed: seed + int64(k), faults: 2 * len(kinds), bin: binary, label: fmt.Sprintf("quick-n%d", n)})
			report(t, r)
		})
	}
}

// TestChaosReplay replays one run from its seed (the command a failure
// prints).
func TestChaosReplay(t *testing.T) {
	if *seedFlag == 0 {
		t.Skip("replay needs -seed N (and -nodes, -faults as printed by the failure)")
	}
	spec := runSpec{nodes: *nodesFlag, seed: *seedFlag, faults: *faultsFlag, bin: binary, compose: *composeFlag, label: fmt.Sprintf("replay-n%d", *nodesFlag)}
	if spec.faults == 0 {
		kinds, _ := availableFaults(spec, backendCaps(spec))
		spec.faults = len(kinds)
	}
	if spec.compose {
		requireCompose(t)
	}
	report(t, runChaos(t, spec))
}

// TestChaosLong keeps running seeds for -duration, then prints a summary
// table: process clusters of 3 and 5 nodes alternately (7 to 14 faults
// each), and, when a Docker engine answers, every third run against the
// compose cluster (3 and 5 containers alternately).
func TestChaosLong(t *testing.T) {
	if *duration <= 0 {
		t.Skip("TestChaosLong runs with -duration (e.g. -duration 30m -timeout 0)")
	}
	seed := baseSeed()
	withCompose, why := composeAvailable()
	if !withCompose {
		t.Logf("SKIP compose runs: %s", why)
	}
	t.Logf("seed %d, duration %v", seed, *duration)
	deadline := time.Now().Add(*duration)
	var results []runResult
	t0 := time.Now()
	for i, nc := 0, 0; time.Now().Before(deadline); i++ {
		s := seed + int64(i)
		spec := runSpec{nodes: []int{3, 5}[i%2], seed: s, bin: binary}
		if withCompose && i%3 == 2 {
			spec.compose, spec.nodes = true, []int{3, 5}[nc%2]
			nc++
		}
		kinds, _ := availableFaults(spec, backendCaps(spec))
		spec.faults = len(kinds) + int(s%8)
		spec.label = fmt.Sprintf("long-n%d", spec.nodes)
		if spec.compose {
			spec.label = fmt.Sprintf("long-compose-n%d", spec.nodes)
		}
		r := runChaos(t, spec)
		report(t, r)
		results = append(results, r)
	}
	t.Log("\n" + summary(results, time.Since(t0)))
}

// summary is the table TestChaosLong prints.
func summary(rs []runResult, took time.Duration) string {
	var ops int64
	faults := map[string]int{}
	lin := map[porcupine.CheckResult]int{}
	linHow := map[string]int{}
	var majAcked, majLost, w1Acked, w1Lost, unknown, failed, localStale int
	var failedSeeds []string
	runs := map[string]int{}
	for _, r := range rs {
		runs[fmt.Sprintf("%s, %d nodes", map[bool]string{false: "processes", true: "compose"}[r.spec.compose], r.spec.nodes)]++
		ops += r.ops
		for k, n := range r.faults {
			faults[k] += n
		}
		v := r.verdict
		lin[v.lin]++
		linHow[v.linHow]++
		majAcked += v.majorityAcked
		majLost += v.majorityLost
		w1Acked += v.w1Acked
		w1Lost += v.w1Lost
		unknown += v.unknownWrites
		localStale += v.localStale
		if len(v.failures) > 0 {
			failed++
			failedSeeds = append(failedSeeds, fmt.Sprintf("%d(n%d%s)", r.spec.seed, r.spec.nodes, map[bool]string{true: ",compose"}[r.spec.compose]))
		}
	}
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "| %-44s | %v |\n", k, v) }
	fmt.Fprintf(&b, "| %-44s | %s |\n|%s|---|\n", "chaos summary", "value", strings.Repeat("-", 46))
	row("wall time", took.Round(time.Second))
	row("runs (failed)", fmt.Sprintf("%d (%d)", len(rs), failed))
	for _, k := range slices.Sorted(maps.Keys(runs)) {
		row("runs: "+k, runs[k])
	}
	row("operations", ops)
	for _, k := range slices.Sorted(maps.Keys(faults)) {
		row("faults: "+k, faults[k])
	}
	row("majority writes acknowledged", majAcked)
	row("majority-acknowledged writes lost (must be 0)", majLost)
	row("writes with unknown outcome", unknown)
	row("linearizability: ok / illegal / unknown", fmt.Sprintf("%d / %d / %d", lin[porcupine.Ok], lin[porcupine.Illegal], lin[porcupine.Unknown]))
	row("checked with full / resolved history", fmt.Sprintf("%d / %d", linHow["full"], linHow["resolved"]))
	row("w=1 writes acknowledged", w1Acked)
	row("w=1 writes lost", w1Lost)
	row("local reads showing rolled-back entries", localStale)
	if len(failedSeeds) > 0 {
		row("failed seeds", strings.Join(failedSeeds, " "))
	}
	return b.String()
}
