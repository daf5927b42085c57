//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runSpec is one chaos run: everything it does follows from these fields.
type runSpec struct {
	nodes  int
	seed   int64
	faults int // how many faults; the first ones are one of each available kind
	bin    string
	only   []string // fault kinds to draw from (nil: all)
	label  string
	// compose: the nodes are the containers of docker-compose.yml (with
	// docker kill, pause and network disconnect as faults), not processes.
	compose bool
	// expectViolation: the caller wants a violation (the planted-bug test);
	// the run still reports what it found.
	expectViolation bool
	// outBase, if set, is where a failed run leaves its artifacts instead
	// of $CHAOS_OUT or a fresh temporary directory.
	outBase string
}

// runResult is what one run did and found.
type runResult struct {
	spec     runSpec
	ops      int64
	faults   map[string]int
	skipped  []string
	verdict  verdict
	elapsed  time.Duration
	artifact string
}

func (r runResult) replay() string {
	cmd := fmt.Sprintf("go test -tags chaos ./test/chaos -run 'TestChaosReplay$' -v -seed %d -nodes %d -faults %d", r.spec.seed, r.spec.nodes, r.spec.faults)
	if r.spec.compose {
		cmd += " -compose"
	}
	if r.spec.bin != binary {
		cmd += " -bin " + r.spec.bin
	}
	return cmd
}

// schedule is the run's fault sequence: a seeded permutation of the
// available kinds (so every kind appears once), then random ones.
func schedule(rng *rand.Rand, kinds []Fault, n int) []Fault {
	var out []Fault
	for len(out) < n {
		for _, k := range rng.Perm(len(kinds)) {
			if len(out) < n {
				out = append(out, kinds[k])
			}
		}
	}
	return out
}

// availableFaults filters the kinds by spec.only and by what the network
// can do.
func availableFaults(spec runSpec, caps netCaps) (kinds []Fault, skipped []string) {
	for _, f := range allFaults() {
		if spec.only != nil && !contains(spec.only, f.Name()) {
			continue
		}
		if f.needs()&^caps != 0 {
			skipped = append(skipped, f.Name())
			continue
		}
		kinds = append(kinds, f)
	}
	return kinds, skipped
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// newRunCluster builds the cluster of a run: the containers of a compose
// project (spec.compose), else processes, each in its own network
// namespace when the netlab is available and on 127.0.0.1 otherwise. It
// says where the nodes run; cleanup stops them and removes what was made.
func newRunCluster(spec runSpec, dir string, logf func(string, ...any)) (*cluster, string, func(), error) {
	if spec.compose {
		c, err := newComposeCluster(spec.nodes, logf)
		if err != nil {
			return nil, "", nil, err
		}
		return c, "docker-compose project " + composeProject, c.stopAll, nil
	}
	var lab *netlab
	where := "processes on 127.0.0.1"
	if ok, _ := labAvailable(); ok {
		var err error
		if lab, err = newNetlab(spec.nodes); err != nil {
			return nil, "", nil, fmt.Errorf("network lab: %v", err)
		}
		where = "processes in network namespaces, " + subnet + ".0/24"
	}
	c, err := newProcCluster(spec.bin, dir, spec.nodes, lab)
	if err != nil {
		if lab != nil {
			lab.teardown()
		}
		return nil, "", nil, err
	}
	return c, where, func() {
		c.stopAll()
		if lab != nil {
			lab.teardown()
		}
	}, nil
}

// backendCaps is what the network of a run of spec can do, without
// building it.
func backendCaps(spec runSpec) netCaps {
	if spec.compose {
		return composeCaps
	}
	if ok, _ := labAvailable(); ok {
		return capIsolate | capFilter
	}
	return 0
}

// skipReason says why a run of spec cannot make some faults.
func skipReason(spec runSpec) string {
	if spec.compose {
		return "docker network disconnect cuts a container off from everyone; it cannot drop chosen links"
	}
	_, why := labAvailable()
	return why + " (running on 127.0.0.1)"
}

// runChaos starts a cluster, runs the workload through the seeded fault
// schedule, converges and checks. It never calls t.Fatal: failures are in
// the result, for the caller to judge.
func runChaos(t *testing.T, spec runSpec) runResult {
	t0 := time.Now()
	res := runResult{spec: spec, faults: map[string]int{}}
	t.Logf("chaos run %s: seed %d, %d nodes, %d faults", spec.label, spec.seed, spec.nodes, spec.faults)
	v := &res.verdict
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "replog-chaos-run-")
	if err != nil {
		v.failf("%v", err)
		return res
	}
	defer os.RemoveAll(dir)
	c, where, cleanup, err := newRunCluster(spec, dir, t.Logf)
	if err != nil {
		v.failf("%v", err)
		return res
	}
	defer cleanup()
	var kinds []Fault
	kinds, res.skipped = availableFaults(spec, c.netCaps())
	if len(res.skipped) > 0 {
		t.Logf("SKIP faults %v on this run: %s", res.skipped, skipReason(spec))
	}
	rng := rand.New(rand.NewSource(spec.seed))
	sched := schedule(rng, kinds, spec.faults)

	var events []string
	event := func(format string, args ...any) {
		s := fmt.Sprintf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		events = append(events, s)
		t.Log(s)
	}
	w := newWorkload(c, fmt.Sprintf("s%d", spec.seed), spec.seed)

	finish := func() runResult {
		res.ops = w.ops.Load()
		res.elapsed = time.Since(t0)
		if crashed := c.crashed(); len(crashed) > 0 {
			v.failf("processes exited on their own: %v", crashed)
		}
		if len(v.failures) > 0 {
			name := fmt.Sprintf("%s-seed%d", spec.label, spec.seed)
			if spec.outBase != "" {
				res.artifact = filepath.Join(spec.outBase, name)
			} else {
				res.artifact = outDir(name)
			}
			saveArtifacts(res.artifact, c, w, v, events)
		}
		return res
	}

	if err := c.startAndWait(ctx, c.all()...); err != nil {
		v.failf("start: %v", err)
		return finish()
	}
	if _, err := c.waitAgreedMaster(ctx, c.all(), 20*time.Second); err != nil {
		v.failf("start: %v", err)
		return finish()
	}
	event("cluster up (%s)", where)
	w.start(4, 3)
	time.Sleep(time.Second)
	for _, f := range sched {
		if ctx.Err() != nil {
			break
		}
		desc, err := f.Inject(ctx, c, rng)
		res.faults[f.Name()]++
		if err != nil {
			v.failf("inject %s: %v", f.Name(), err)
		}
		event("inject %s: %s", f.Name(), desc)
		time.Sleep(time.Duration(800+rng.Intn(2200)) * time.Millisecond)
		if err := f.Heal(ctx, c); err != nil {
			v.failf("heal %s: %v", f.Name(), err)
		}
		if crashed := c.crashed(); len(crashed) > 0 {
			v.failf("after %s (%s) processes exited on their own: %v", f.Name(), desc, crashed)
			event("CRASHED: %v; restarting them", crashed)
			for i := range c.nodes {
				if c.exitedOnItsOwn(i) {
					c.kill(i)
				}
			}
			c.startAndWait(ctx, c.all()...)
		}
		m, err := c.waitAgreedMaster(ctx, c.all(), 20*time.Second)
		if err != nil {
			v.failf("liveness: 20s after healing %s (%s): %v", f.Name(), desc, err)
			event("heal %s: %v", f.Name(), err)
		} else {
			event("heal %s: master %s (%d ops so far)", f.Name(), c.nodes[m].name, w.ops.Load())
		}
		time.Sleep(time.Duration(500+rng.Intn(1000)) * time.Millisecond)
	}
	w.stop()
	event("workload stopped: %d operations", w.ops.Load())
	final := converge(ctx, c, w, v)
	event("converged: %d entries", len(final))
	checkRun(w, final, *linTimeout, v)
	event("checked: porcupine %s (%s, %d ops); majority acked %d lost %d; w=1 acked %d lost %d",
		v.lin, v.linHow, v.linOps, v.majorityAcked, v.majorityLost, v.w1Acked, v.w1Lost)
	return finish()
}

// report logs a run's outcome; with failures it names the seed, the
// replay command and the artifacts, and fails t unless a violation was
// what the caller wanted.
func report(t *testing.T, r runResult) {
	t.Helper()
	v := r.verdict
	t.Logf("run %s seed %d: %d ops in %v, faults %v, reads %v (failed %v), local reads showing rolled-back entries %d, unknown writes %d",
		r.spec.label, r.spec.seed, r.ops, r.elapsed.Round(time.Second), r.faults, v.readsByConc, v.readFails, v.localStale, v.unknownWrites)
	if len(v.failures) == 0 {
		return
	}
	msg := fmt.Sprintf("chaos run %s FAILED, seed %d (%d nodes):\n  %s\nartifacts (node logs, history, porcupine visualization): %s\nreplay: %s",
		r.spec.label, r.spec.seed, r.spec.nodes, strings.Join(v.failures, "\n  "), r.artifact, r.replay())
	if r.spec.expectViolation {
		t.Log(msg)
		return
	}
	t.Error(msg)
}
