//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/replog/replog/pkg/linearize"
)

// verdict is what the checkers found in one run.
type verdict struct {
	failures []string

	finalLen      int
	majorityAcked int
	majorityLost  int // must be 0
	w1Acked       int
	w1Lost        int // allowed, reported
	unknownWrites int
	refusedWrites int
	readsByConc   map[string]int
	readFails     map[string]int
	localStale    int // local reads that showed entries the final log does not hold
	lin           porcupine.CheckResult
	linHow        string // "full" or "resolved" (see linearize.Resolve)
	linOps        int
	linInfo       porcupine.LinearizationInfo
	linHistory    []porcupine.Operation
}

func (v *verdict) failf(format string, args ...any) {
	if len(v.failures) < 200 {
		v.failures = append(v.failures, fmt.Sprintf(format, args...))
	}
}

// converge heals everything, waits for one master, commits a barrier write
// and waits until every node holds the same log, all of it committed. It
// returns that log.
func converge(ctx context.Context, c *cluster, w *workload, v *verdict) []logMsg {
	if c.net != nil {
		if err := c.net.healAll(); err != nil {
			v.failf("heal network: %v", err)
		}
	}
	for i := range c.nodes {
		if c.paused(i) {
			c.resume(i)
		}
	}
	if err := c.startAndWait(ctx, c.all()...); err != nil {
		v.failf("restart for convergence: %v", err)
		return nil
	}
	if _, err := c.waitAgreedMaster(ctx, c.all(), 30*time.Second); err != nil {
		v.failf("after healing everything: %v", err)
		return nil
	}
	// The barrier: one majority write, retried with its key until acknowledged.
	hc := newHTTPClient()
	rng := rand.New(rand.NewSource(w.seed))
	client := w.rec.NewClient()
	msg := w.tag + "-barrier"
	deadline := time.Now().Add(30 * time.Second)
	for retry := false; ; retry = true {
		if r := w.insert(hc, rng, &client, msg, "majority", retry); r.out == definite {
			break
		}
		if time.Now().After(deadline) {
			v.failf("after healing everything, no majority write was acknowledged within 30s")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var why string
	logs := make([][]logMsg, len(c.nodes))
	deadline = time.Now().Add(30 * time.Second)
	for {
		why = ""
		for i, nd := range c.nodes {
			l, _, err := getAll(probe, nd.url(), "local")
			if err != nil {
				why = nd.name + ": " + err.Error()
				break
			}
			logs[i] = l
			if s, err := getStatus(nd.url()); err != nil || s.CommitID != uint64(len(l)) {
				why = fmt.Sprintf("%s: commitId %d, log holds %d (%v)", nd.name, s.CommitID, len(l), err)
				break
			}
		}
		if why == "" {
			for i := 1; i < len(logs); i++ {
				if d := diff(logs[0], logs[i]); d != "" {
					why = fmt.Sprintf("%s and %s differ: %s", c.nodes[0].name, c.nodes[i].name, d)
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
		v.failf("the nodes did not converge within 30s: %s", why)
	}
	// A final linearizable read, part of the porcupine history.
	if m := c.master(); m >= 0 {
		w.read(hc, c.nodes[m], "linearizable", w.rec.NewClient())
	}
	if why != "" {
		// Check against the master's log anyway: the failure is recorded,
		// and what else is wrong is worth knowing.
		if m := c.master(); m >= 0 && logs[m] != nil {
			v.failf("checking against %s's (the master's) log, since the nodes disagree", c.nodes[m].name)
			return logs[m]
		}
		return nil
	}
	return logs[0]
}

func diff(a, b []logMsg) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].ID != b[i].ID || a[i].Message != b[i].Message {
			return fmt.Sprintf("at position %d: %d:%q vs %d:%q", i+1, a[i].ID, a[i].Message, b[i].ID, b[i].Message)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("lengths %d and %d", len(a), len(b))
	}
	return ""
}

// checkRun runs checkers (b)–(e) against final and (a) porcupine.
func checkRun(w *workload, final []logMsg, linTimeout time.Duration, v *verdict) {
	w.mu.Lock()
	writes := slices.Clone(w.writes)
	reads := w.reads
	v.readFails = w.readFails
	for _, s := range w.http500 {
		v.failf("a client got an answer DESIGN §1 rules out: %s", s)
	}
	w.mu.Unlock()

	v.finalLen = len(final)
	if final == nil {
		v.failf("durability and prefix checks skipped: the cluster never converged on one log")
		h := w.rec.History()
		v.linOps = len(h)
		v.lin, v.linInfo = linearize.Check(h, linTimeout/4)
		v.linHow, v.linHistory = "full", h
		return
	}
	finalMsgs := make([]string, len(final))
	pos := map[string]int{}
	for i, m := range final {
		finalMsgs[i] = m.Message
		if m.ID != uint64(i+1) {
			v.failf("final log: position %d holds id %d (gap or reordering)", i+1, m.ID)
		}
		// (d) no key twice.
		if p, dup := pos[m.Message]; dup {
			v.failf("final log: %q (its own key) appears twice, at ids %d and %d", m.Message, p, i+1)
		} else {
			pos[m.Message] = i + 1
		}
	}
	sent := map[string]bool{}
	// other[msg]: another attempt with this key may explain where the
	// message is (an unknown outcome, or a definite answer with that id).
	otherIDs := map[string][]int{}
	for _, r := range writes {
		sent[r.msg] = true
		switch r.out {
		case unknown:
			otherIDs[r.msg] = append(otherIDs[r.msg], -1)
		case definite:
			otherIDs[r.msg] = append(otherIDs[r.msg], int(r.id))
		}
	}
	for i, m := range final {
		if !sent[m.Message] {
			v.failf("final log: id %d holds %q, which no client sent", i+1, m.Message)
		}
	}

	// (b) every acknowledged majority write is in the final log, exactly
	// once, at its id (the log is identical on every node: converge).
	// (e) w=1 writes lost.
	for _, r := range writes {
		switch r.out {
		case unknown:
			v.unknownWrites++
		case refused:
			v.refusedWrites++
		}
		if r.out != definite {
			continue
		}
		at, present := pos[r.msg]
		if r.wc == "majority" {
			v.majorityAcked++
			if !present || at != int(r.id) {
				v.majorityLost++
				v.failf("majority write %q acknowledged with id %d by %s at %s is lost: final log has it at %d (0 = absent)",
					r.msg, r.id, r.node, r.end.Format("15:04:05.000"), at)
			}
		} else {
			v.w1Acked++
			if !present {
				v.w1Lost++
			} else if at != int(r.id) {
				// The acknowledged copy was rolled back (allowed for w=1); the
				// message survives only through another attempt with its key.
				v.w1Lost++
				if !slices.ContainsFunc(otherIDs[r.msg], func(id int) bool { return id == -1 || id == at }) {
					v.failf("w=1 write %q acknowledged with id %d is at id %d in the final log, and no other attempt with its key explains that", r.msg, r.id, at)
				}
			}
		}
	}

	// (c) every read is a gap-free prefix of the final log; local reads may
	// show rolled-back entries past the point where they diverge.
	v.readsByConc = map[string]int{}
	for _, r := range reads {
		v.readsByConc[r.concern]++
		for i, m := range r.msgs {
			if m.ID != uint64(i+1) {
				v.failf("%s read on %s at %s: position %d holds id %d (gap or reordering)", r.concern, r.node, r.start.Format("15:04:05.000"), i+1, m.ID)
				break
			}
		}
		if len(r.msgs) > len(final) && r.concern != "local" {
			v.failf("%s read on %s at %s returned %d entries, the final log holds %d", r.concern, r.node, r.start.Format("15:04:05.000"), len(r.msgs), len(final))
		}
		for i, m := range r.msgs {
			if i < len(final) && final[i].Message == m.Message {
				continue
			}
			if r.concern == "local" {
				v.localStale++
			} else {
				got := "nothing"
				if i < len(final) {
					got = fmt.Sprintf("%q", final[i].Message)
				}
				v.failf("%s read on %s at %s showed %q at id %d; the final log has %s there", r.concern, r.node, r.start.Format("15:04:05.000"), m.Message, i+1, got)
			}
			break
		}
	}

	// (a) porcupine: the full nondeterministic check first; if it runs out of
	// time, the history resolved against the final log.
	h := w.rec.History()
	v.linOps = len(h)
	v.lin, v.linInfo = linearize.Check(h, linTimeout/4)
	v.linHow, v.linHistory = "full", h
	if v.lin == porcupine.Unknown && final != nil {
		r := linearize.Resolve(h, finalMsgs)
		v.lin, v.linInfo = linearize.Check(r, linTimeout)
		v.linHow, v.linHistory = "resolved", r
	}
	if v.lin == porcupine.Illegal {
		v.failf("porcupine (%s history, %d ops): the majority writes and linearizable reads are NOT linearizable", v.linHow, len(v.linHistory))
	}
}

// saveArtifacts writes what a failed run leaves for a human: the porcupine
// visualization, node logs, the failures and the client history.
func saveArtifacts(dir string, c *cluster, w *workload, v *verdict, events []string) {
	os.MkdirAll(dir, 0o755)
	c.copyLogs(dir)
	if v.lin == porcupine.Illegal {
		linearize.Visualize(filepath.Join(dir, "linearizability.html"), v.linHistory, v.linInfo)
	}
	os.WriteFile(filepath.Join(dir, "failures.txt"), []byte(strings.Join(v.failures, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "faults.txt"), []byte(strings.Join(events, "\n")+"\n"), 0o644)
	var b strings.Builder
	w.mu.Lock()
	for _, r := range w.writes {
		fmt.Fprintf(&b, "%s %s insert %q w=%s retry=%v -> %s status=%d code=%q id=%d %s (%v)\n",
			r.start.Format("15:04:05.000000"), r.node, r.msg, r.wc, r.retry, r.out, r.status, r.code, r.id, r.err, r.end.Sub(r.start).Round(time.Millisecond))
	}
	for _, r := range w.reads {
		last := ""
		if n := len(r.msgs); n > 0 {
			last = fmt.Sprintf("%d:%s", r.msgs[n-1].ID, r.msgs[n-1].Message)
		}
		fmt.Fprintf(&b, "%s %s read %s -> %d entries, last %s (%v)\n",
			r.start.Format("15:04:05.000000"), r.node, r.concern, len(r.msgs), last, r.end.Sub(r.start).Round(time.Millisecond))
	}
	w.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	slices.Sort(lines)
	os.WriteFile(filepath.Join(dir, "history.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
