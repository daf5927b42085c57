// Command replog-failover-bench measures failover on real processes: it
// starts a cluster of replog nodes on free loopback ports in a temporary
// directory, keeps a steady majority-write load on it, and N times kills the
// master (kill -9, or SIGTERM with -sigterm), measures the time from the
// kill to the first majority write acknowledged through a survivor,
// restarts the killed node with its same data directory and environment,
// and waits until it is a sentinel again and has caught up. At the end it
// checks that no acknowledged write was lost (every acknowledged id holds
// the same message on every node, ids 1..n with no gap) and prints a table.
//
// It builds nothing itself; build the node binary first:
//
//	go build -o bin/replog ./cmd/replog && go run ./cmd/replog-failover-bench -kills 20
//	go run ./cmd/replog-failover-bench -sigterm -kills 20    # planned handovers
//
// Flags:
//
//	-bin PATH        the replog binary (default bin/replog)
//	-kills N         failovers to run (default 20)
//	-nodes N         cluster size (default 3)
//	-fsync MODE      FSYNC of the nodes: always or never (default always)
//	-sigterm         stop the master with SIGTERM (graceful handover) instead of kill -9
//	-writers N       concurrent writers (default 4)
//	-timeout D       client timeout of one insert (default 1s; timeoutMs is 4/5 of it)
//	-keep            keep the data directory and node logs (kept anyway on failure)
//	-v               also print each failover window's times
//
// The writers send each message with itself as idempotency key, round-robin
// over the nodes that are up (a node is taken out of the rotation just
// before it is killed), and retry until it is acknowledged.
//
// Exit status: 0 when no acknowledged write was lost (and, with -sigterm,
// no request failed); 1 when a write was lost, a node diverged, a failover
// did not complete, or (with -sigterm) a request failed; 2 on bad usage or
// when the cluster cannot start. Ctrl-C kills every node and exits 130.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	bin     string
	kills   int
	nodes   int
	fsync   string
	sigterm bool
	writers int
	timeout time.Duration
	keep    bool
	verbose bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/replog", "path to the replog binary")
	flag.IntVar(&o.kills, "kills", 20, "number of failovers")
	flag.IntVar(&o.nodes, "nodes", 3, "number of nodes")
	flag.StringVar(&o.fsync, "fsync", "always", "FSYNC of the nodes: always or never")
	flag.BoolVar(&o.sigterm, "sigterm", false, "stop the master with SIGTERM (planned handover) instead of kill -9")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers")
	flag.DurationVar(&o.timeout, "timeout", time.Second, "client timeout of one insert")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and node logs")
	flag.BoolVar(&o.verbose, "v", false, "also print each failover window's times")
	flag.Parse()
	if o.kills < 1 || o.nodes < 3 || o.writers < 1 || o.timeout <= 0 || (o.fsync != "always" && o.fsync != "never") {
		fmt.Fprintln(os.Stderr, "replog-failover-bench: need -kills >= 1, -nodes >= 3, -writers >= 1, -timeout > 0, -fsync always|never")
		os.Exit(2)
	}
	bin, err := filepath.Abs(o.bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "replog-failover-bench: binary %s: %v\nbuild it first: go build -o bin/replog ./cmd/replog\n", o.bin, err)
		os.Exit(2)
	}
	o.bin = bin
	os.Exit(run(o))
}

func run(o options) int {
	dir, err := os.MkdirTemp("", "replog-failover-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := newCluster(o.bin, dir, o.nodes, o.fsync)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	keep := o.keep
	cleanup := func() {
		c.killAll()
		if keep {
			fmt.Printf("data and node logs kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "\n%v: killing the nodes\n", s)
		keep = true
		cleanup()
		os.Exit(130)
	}()
	defer cleanup()

	mode := "kill -9"
	if o.sigterm {
		mode = "SIGTERM"
	}
	fmt.Printf("replog-failover-bench: %d nodes, FSYNC=%s, %d × %s of the master, %d writers (timeout %v); data in %s\n",
		o.nodes, o.fsync, o.kills, mode, o.writers, o.timeout, dir)
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			fmt.Fprintln(os.Stderr, err)
			keep = true
			return 2
		}
	}
	if _, _, err := c.waitStable(30 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		keep = true
		return 2
	}

	w := startWriters(c, o.writers, o.timeout)
	writersStopped := false
	stopWriters := func() {
		if !writersStopped {
			writersStopped = true
			w.stop()
		}
	}
	defer stopWriters()
	if !w.waitAcks(50, 30*time.Second) {
		fmt.Fprintln(os.Stderr, "the writers got no 50 acknowledgements within 30s")
		keep = true
		return 1
	}

	var (
		toWrite  []time.Duration
		problems []string
		pauses   []pauseStat
		windows  [][2]time.Time
		exitTook []time.Duration
	)
	for k := 1; k <= o.kills; k++ {
		m, ms, err := c.waitStable(30 * time.Second)
		if err != nil {
			problems = append(problems, fmt.Sprintf("round %d: %v", k, err))
			break
		}
		// A little steady state between failovers.
		w.waitAcks(20, 10*time.Second)

		victim := c.nodes[m]
		c.setDown(m, true)
		t0 := time.Now()
		w.watch(t0)
		var exitedAfter time.Duration
		if o.sigterm {
			took, clean := c.terminate(m, 20*time.Second)
			exitedAfter = took
			exitTook = append(exitTook, took)
			if !clean {
				problems = append(problems, fmt.Sprintf("round %d: %s did not exit within 20s of SIGTERM (killed)", k, victim.Name))
			}
		} else {
			c.kill(m)
		}
		at, via, ok := w.waitFirstAck(30 * time.Second)
		if !ok {
			problems = append(problems, fmt.Sprintf("round %d: no write acknowledged within 30s of stopping %s", k, victim.Name))
			break
		}
		d := at.Sub(t0)
		toWrite = append(toWrite, d)

		if err := c.start(m); err != nil {
			problems = append(problems, fmt.Sprintf("round %d: restart: %v", k, err))
			break
		}
		restarted := time.Now()
		if err := c.waitConverged(m, 30*time.Second); err != nil {
			problems = append(problems, fmt.Sprintf("round %d: %v", k, err))
			break
		}
		caughtUp := time.Since(restarted)
		c.setDown(m, false)

		// The handover window: from the signal until the node is back.
		failed, longest, gap := w.window(t0, time.Now())
		windows = append(windows, [2]time.Time{t0, time.Now()})
		pauses = append(pauses, pauseStat{failed: failed, longest: longest, gap: gap})
		extra := ""
		if o.sigterm {
			extra = fmt.Sprintf("; exited after %v; window: %d failed, longest request %v", exitedAfter.Round(time.Millisecond), failed, longest.Round(time.Millisecond))
		}
		fmt.Printf("  %2d/%d  %s %s (master, term %d) → first write after %v via %s; back as sentinel, caught up in %v%s\n",
			k, o.kills, mode, victim.Name, ms.Term, d.Round(time.Millisecond), nodeName(c, via), caughtUp.Round(time.Millisecond), extra)
	}

	stopWriters()
	lost, dups, verr := verify(c, w)
	problems = append(problems, verr...)

	// The report.
	w.mu.Lock()
	kinds := [numKinds]int{}
	for _, a := range w.attempts {
		kinds[a.kind]++
	}
	acked, nfail, failures, conflicts := len(w.acked), w.nfail, slices.Clone(w.failures), slices.Clone(w.conflict)
	w.mu.Unlock()
	problems = append(problems, conflicts...)

	var maxLongest, maxGap time.Duration
	windowFailed := 0
	for _, p := range pauses {
		maxLongest, maxGap = max(maxLongest, p.longest), max(maxGap, p.gap)
		windowFailed += p.failed
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\t%s, %d nodes, FSYNC=%s, %d writers\n", mode, o.nodes, o.fsync, o.writers)
	fmt.Fprintf(tw, "kills\t%d of %d\n", len(toWrite), o.kills)
	stop := "kill"
	if o.sigterm {
		stop = "SIGTERM"
	}
	fmt.Fprintf(tw, "%s→write median\t%v\n", stop, pct(toWrite, 50))
	fmt.Fprintf(tw, "%s→write p90\t%v\n", stop, pct(toWrite, 90))
	fmt.Fprintf(tw, "%s→write max\t%v\n", stop, pct(toWrite, 100))
	fmt.Fprintf(tw, "acknowledged writes\t%d\n", acked)
	fmt.Fprintf(tw, "lost\t%d\n", lost)
	fmt.Fprintf(tw, "duplicated messages\t%d\n", dups)
	var parts []string
	for k, n := range kinds {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", kindNames[k], n))
		}
	}
	fmt.Fprintf(tw, "requests\t%s\n", strings.Join(parts, ", "))
	fmt.Fprintf(tw, "failed requests (all)\t%d\n", nfail)
	fmt.Fprintf(tw, "failed in failover windows\t%d\n", windowFailed)
	fmt.Fprintf(tw, "max pause (longest request)\t%v\n", maxLongest.Round(time.Millisecond))
	fmt.Fprintf(tw, "max pause (no ack at all)\t%v\n", maxGap.Round(time.Millisecond))
	if o.sigterm {
		fmt.Fprintf(tw, "SIGTERM→exit median/max\t%v / %v\n", pct(exitTook, 50), pct(exitTook, 100))
	}
	tw.Flush()

	if o.sigterm && nfail > 0 {
		fmt.Println()
		fmt.Printf("first failed requests (of %d):\n", nfail)
		for i, f := range failures {
			if i == 10 {
				break
			}
			fmt.Printf("  %s %s via %s after %v: status %d code %q %s %s\n",
				f.at.Format("15:04:05.000"), f.msg, nodeName(c, f.target), f.took.Round(time.Millisecond), f.status, f.code, f.errText, f.detail)
		}
	}
	var outside []failure
	for _, f := range failures {
		in := false
		for _, win := range windows {
			if !f.at.Add(f.took).Before(win[0]) && !f.at.After(win[1]) {
				in = true
			}
		}
		if !in {
			outside = append(outside, f)
		}
	}
	if len(outside) > 0 {
		fmt.Println()
		fmt.Printf("failed requests outside the failover windows (of the first %d failures):\n", len(failures))
		for i, f := range outside {
			if i == 10 {
				break
			}
			fmt.Printf("  %s %s via %s after %v: status %d code %q %s %s\n",
				f.at.Format("15:04:05.000"), f.msg, nodeName(c, f.target), f.took.Round(time.Millisecond), f.status, f.code, f.errText, f.detail)
		}
	}
	for k, win := range windows {
		if o.verbose {
			fmt.Printf("window %d: %s – %s\n", k+1, win[0].Format("15:04:05.000"), win[1].Format("15:04:05.000"))
		}
	}
	code := 0
	if o.sigterm && nfail > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed across planned handovers (target 0)", nfail))
	}
	if lost > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged writes lost", lost))
	}
	if len(problems) > 0 {
		fmt.Println()
		fmt.Println("FAIL:")
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		keep = true
		code = 1
	} else {
		fmt.Println("\nPASS: no acknowledged write lost")
	}
	return code
}

type pauseStat struct {
	failed       int
	longest, gap time.Duration
}

// verify waits until every node holds the same log, then checks it against
// what was acknowledged. lost counts acknowledged writes missing (or with
// another message) on at least one node.
func verify(c *cluster, w *writers) (lost, dups int, problems []string) {
	var logs [][]logMsg
	deadline := time.Now().Add(60 * time.Second)
	var why string
	for {
		why = ""
		logs = logs[:0]
		for _, nd := range c.nodes {
			l, err := getAll(nd.URL())
			if err != nil {
				why = err.Error()
				break
			}
			logs = append(logs, l)
		}
		if why == "" {
			for i := 1; i < len(logs); i++ {
				if !equalLogs(logs[0], logs[i]) {
					why = fmt.Sprintf("%s holds %d messages, %s holds %d", c.nodes[0].Name, len(logs[0]), c.nodes[i].Name, len(logs[i]))
					break
				}
			}
		}
		if why == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if why != "" {
		problems = append(problems, "the nodes did not converge within 60s: "+why)
	}
	w.mu.Lock()
	acked := w.acked
	w.mu.Unlock()
	missing := map[uint64]bool{}
	for i, l := range logs {
		byID := make(map[uint64]string, len(l))
		seen := make(map[string]int, len(l))
		for j, m := range l {
			if m.ID != uint64(j+1) {
				problems = append(problems, fmt.Sprintf("%s: position %d holds id %d (gap or reordering)", c.nodes[i].Name, j+1, m.ID))
				break
			}
		}
		for _, m := range l {
			byID[m.ID] = m.Message
			seen[m.Message]++
		}
		for id, msg := range acked {
			if byID[id] != msg {
				if !missing[id] && len(missing) < 5 {
					problems = append(problems, fmt.Sprintf("%s: acknowledged %q (id %d) lost: id %d holds %q", c.nodes[i].Name, msg, id, id, byID[id]))
				}
				missing[id] = true
			}
		}
		if i == 0 {
			for msg, n := range seen {
				if n > 1 {
					dups++
					if dups <= 5 {
						problems = append(problems, fmt.Sprintf("%q appears %d times despite its idempotency key", msg, n))
					}
				}
			}
		}
	}
	return len(missing), dups, problems
}

func equalLogs(a, b []logMsg) bool {
	return slices.Equal(a, b)
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100
	k = min(max(k, 1), len(s))
	return s[k-1].Round(time.Millisecond)
}

func sortTimes(ts []time.Time) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
}

func nodeName(c *cluster, url string) string {
	for _, nd := range c.nodes {
		if nd.URL() == url {
			return nd.Name
		}
	}
	return url
}
