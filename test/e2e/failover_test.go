package e2e

// Failover on real processes: kill -9 of the master, a planned SIGTERM
// handover, an isolated master (both sentinels SIGSTOPped) and two failures
// out of five. The tests assert behaviour only; times are logged, never
// asserted, since the machines that run them are shared and noisy.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestFailoverKillMaster: kill -9 the master under a steady majority-write
// load; a survivor becomes master, every node names it, writes continue
// through the survivors; the old master comes back as a sentinel and
// catches up; no acknowledged write is lost, no gap, no duplicate.
func TestFailoverKillMaster(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{0, 1, 2}
	old := c.waitAgreedMaster(t, all, 10*time.Second)

	allURLs := c.urls(all)
	l := startLoad(loadOpts{
		prefix: "kill", writers: 1, retry: true, key: true,
		targets: func() []string { return allURLs }, // the dead node too: the writer must move on
		timeout: 3 * time.Second, timeoutMs: 2000,
	})
	defer l.halt()
	l.waitAcks(t, 20, time.Time{}, 10*time.Second)

	killedAt := time.Now()
	c.kill(old)
	survivors := c.live()

	// A survivor becomes master and a majority write goes through a survivor.
	waitFor(t, 10*time.Second, "a majority write acknowledged after the kill", func() bool {
		_, ok := l.firstAckAfter(killedAt)
		return ok
	})
	first, _ := l.firstAckAfter(killedAt)
	t.Logf("kill -9 of %s → first acknowledged majority write (id %d via %s): %v",
		c.procs[old].Name, first.id, first.target, first.end.Sub(killedAt))
	nm := c.waitAgreedMaster(t, survivors, 10*time.Second)
	t.Logf("new master %s; every survivor names it (%v after the kill)", c.procs[nm].Name, time.Since(killedAt))
	if nm == old {
		t.Fatalf("the killed node is master")
	}

	// The old master comes back with the same environment: a sentinel.
	c.start(old)
	restartedAt := time.Now()
	var sawMaster bool
	waitFor(t, 10*time.Second, "the restarted node to be a sentinel following the new master", func() bool {
		s, err := statusOf(c.procs[old].URL())
		if err != nil {
			return false
		}
		if s.Role == "master" {
			sawMaster = true
		}
		m, _ := c.agreedMaster(all)
		return s.Role == "sentinel" && m >= 0 && m != old
	})
	if sawMaster {
		t.Errorf("the restarted old master reported role master; it must come back as a sentinel")
	}
	l.waitAcks(t, 10, restartedAt, 10*time.Second)
	l.halt()
	t.Logf("writes: %s", l.summary())

	c.waitAgreedMaster(t, all, 10*time.Second)
	checkHistory(t, c, all, l.snapshot())
}

// TestSigtermHandsOver: SIGTERM on the master hands leadership over first:
// clients that do not retry see no failed request and no acknowledged write
// is lost.
func TestSigtermHandsOver(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{0, 1, 2}
	old := c.waitAgreedMaster(t, all, 10*time.Second)
	var sentinels []int
	for _, i := range all {
		if i != old {
			sentinels = append(sentinels, i)
		}
	}
	sURLs := c.urls(sentinels)

	l := startLoad(loadOpts{
		prefix: "term", writers: 8, retry: false, key: true,
		targets: func() []string { return sURLs }, // they forward to the master
		timeout: 10 * time.Second,
	})
	defer l.halt()
	l.waitAcks(t, 50, time.Time{}, 10*time.Second)
	time.Sleep(500 * time.Millisecond)

	termAt := time.Now()
	took, clean := c.terminate(old, 15*time.Second)
	if !clean {
		t.Errorf("the master did not exit within 15s of SIGTERM; it was killed")
	}
	t.Logf("SIGTERM → %s exited after %v", c.procs[old].Name, took)
	time.Sleep(time.Second)
	l.waitAcks(t, 10, time.Now(), 10*time.Second)
	l.halt()

	atts := l.snapshot()
	var failed []attempt
	var pause, pauseAll time.Duration
	var pauseAt attempt
	for _, a := range atts {
		if a.status != 200 {
			failed = append(failed, a)
		}
		d := a.end.Sub(a.start)
		pauseAll = max(pauseAll, d)
		// Around the handover: requests in flight from 2 s before the signal on.
		if a.end.After(termAt.Add(-2*time.Second)) && d > pause {
			pause, pauseAt = d, a
		}
	}
	t.Logf("writes: %s", l.summary())
	t.Logf("longest request around the handover (the pause): %v (%s via %s, started %v after SIGTERM); longest overall %v",
		pause, pauseAt.msg, pauseAt.target, pauseAt.start.Sub(termAt), pauseAll)
	if len(failed) > 0 {
		for k, a := range failed {
			if k == 10 {
				t.Errorf("... and %d more", len(failed)-10)
				break
			}
			t.Errorf("failed request during the handover: %q via %s started %v after SIGTERM, took %v: status %d code %q %q err %q id %d",
				a.msg, a.target, a.start.Sub(termAt), a.end.Sub(a.start), a.status, a.code, a.errText, a.err, a.id)
		}
		t.Errorf("%d of %d requests failed across a planned SIGTERM handover; want 0", len(failed), len(atts))
	}

	nm := c.waitAgreedMaster(t, sentinels, 10*time.Second)
	t.Logf("new master %s", c.procs[nm].Name)
	checkHistory(t, c, sentinels, atts)
}

// TestIsolatedMasterRefusesWrites: with both sentinels SIGSTOPped the
// master steps down (CheckQuorum) and acknowledges nothing; once they
// continue, the cluster takes majority writes again.
func TestIsolatedMasterRefusesWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{0, 1, 2}
	m := c.waitAgreedMaster(t, all, 10*time.Second)
	var sentinels []int
	for _, i := range all {
		if i != m {
			sentinels = append(sentinels, i)
		}
	}
	mURL := c.procs[m].URL()
	for i := 0; i < 5; i++ {
		if _, _, err := postUntilOK([]string{mURL}, fmt.Sprint("before-", i), 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Registered after newCluster's cleanup, so it runs before the kill.
	cont := func() {
		for _, i := range sentinels {
			c.signal(i, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	stoppedAt := time.Now()
	for _, i := range sentinels {
		if err := c.signal(i, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	var (
		first503, notMaster time.Duration
		answers             = map[string]int{}
		unknown             = map[string]uint64{} // 504'ed message → its id
		acked               []string
		seq                 int
	)
	deadline := stoppedAt.Add(10 * time.Second)
	var stopAt time.Time // keep writing 1 s past the first 503
	for time.Now().Before(deadline) && (stopAt.IsZero() || time.Now().Before(stopAt) || notMaster == 0) {
		msg := fmt.Sprint("isolated-", seq)
		seq++
		a, sent, err := tryPost(hc, mURL, map[string]any{"message": msg, "writeConcern": "majority", "timeoutMs": 500})
		switch {
		case err != nil && a.Status == 0:
			answers["transport-error"]++
			if sent {
				unknown[msg] = 0
			}
		case a.Status == 200:
			acked = append(acked, msg)
			t.Errorf("the isolated master acknowledged %q (id %d) %v after both sentinels stopped", msg, a.ID, time.Since(stoppedAt))
		case a.Status == 503:
			if first503 == 0 {
				first503 = time.Since(stoppedAt)
				stopAt = time.Now().Add(time.Second)
			}
		case a.Status == 504:
			unknown[msg] = a.ID
		default:
			t.Errorf("isolated master answered %q with status %d code %q (%v): want 503 or 504", msg, a.Status, a.Code, err)
		}
		if a.Status != 0 {
			answers[fmt.Sprint(a.Status)]++
		}
		if notMaster == 0 {
			if s, err := statusOf(mURL); err == nil && (s.Role != "master" || s.ReadOnly) {
				notMaster = time.Since(stoppedAt)
				t.Logf("%v after SIGSTOP the isolated node reports role %q readOnly %v", notMaster, s.Role, s.ReadOnly)
			}
		}
	}
	t.Logf("answers while isolated: %v; first 503 after %v", answers, first503)
	if first503 == 0 {
		t.Errorf("the isolated master never answered 503 within 10s of losing both sentinels")
	}
	if notMaster == 0 {
		t.Errorf("the isolated master still reports itself master (not read-only) 10s after losing both sentinels")
	}

	cont()
	a, took, err := postUntilOK(c.urls(all), "after-cont", 10*time.Second)
	if err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	t.Logf("after SIGCONT a majority write was acknowledged (id %d) after %v", a.ID, took)
	c.waitAgreedMaster(t, all, 10*time.Second)

	// The history: the "before" writes and "after-cont" at their ids; a
	// 504'ed write at most once, and only at the id its 504 named.
	logs := map[int][]logMsg{}
	waitFor(t, 10*time.Second, "the three logs to converge", func() bool {
		for _, i := range all {
			l, err := tryGetAll(quick, c.procs[i].URL(), "")
			if err != nil {
				return false
			}
			logs[i] = l
		}
		return slices.Equal(messagesOf(logs[0]), messagesOf(logs[1])) && slices.Equal(messagesOf(logs[0]), messagesOf(logs[2]))
	})
	got := logs[0]
	count := map[string]int{}
	for j, e := range got {
		if e.ID != uint64(j+1) {
			t.Fatalf("position %d holds id %d: gap or reordering in %v", j+1, e.ID, messagesOf(got))
		}
		count[e.Message]++
		if id, ok := unknown[e.Message]; ok && id != 0 && id != e.ID {
			t.Errorf("504'ed write %q was answered with id %d but is at id %d", e.Message, id, e.ID)
		}
	}
	for i := 0; i < 5; i++ {
		msg := fmt.Sprint("before-", i)
		if len(got) <= i || got[i].Message != msg {
			t.Errorf("acknowledged %q is not at id %d", msg, i+1)
		}
	}
	if a.ID == 0 || a.ID > uint64(len(got)) || got[a.ID-1].Message != "after-cont" {
		t.Errorf("acknowledged \"after-cont\" (id %d) is not at its id", a.ID)
	}
	for msg, n := range count {
		if n > 1 {
			t.Errorf("%q appears %d times", msg, n)
		}
	}
	kept := 0
	for msg := range unknown {
		kept += count[msg]
	}
	t.Logf("%d writes answered 504 while isolated; %d of them survived", len(unknown), kept)
}

// TestFiveNodesSurviveTwoFailures: five nodes; kill -9 the master and one
// sentinel at once; majority writes continue on the remaining three and no
// acknowledged write is lost.
func TestFiveNodesSurviveTwoFailures(t *testing.T) {
	c := newCluster(t, 5, nil)
	c.startAll()
	all := []int{0, 1, 2, 3, 4}
	old := c.waitAgreedMaster(t, all, 10*time.Second)
	var others []int
	for _, i := range all {
		if i != old {
			others = append(others, i)
		}
	}
	victim := others[rand.IntN(len(others))]

	allURLs := c.urls(all)
	l := startLoad(loadOpts{
		prefix: "five", writers: 2, retry: true, key: true,
		targets: func() []string { return allURLs },
		timeout: 3 * time.Second, timeoutMs: 2000,
	})
	defer l.halt()
	l.waitAcks(t, 20, time.Time{}, 10*time.Second)

	killedAt := time.Now()
	c.kill(old)
	c.kill(victim)
	survivors := c.live()
	waitFor(t, 10*time.Second, "a majority write acknowledged after the kills", func() bool {
		_, ok := l.firstAckAfter(killedAt)
		return ok
	})
	first, _ := l.firstAckAfter(killedAt)
	t.Logf("kill -9 of master %s and sentinel %s → first acknowledged majority write via %s after %v",
		c.procs[old].Name, c.procs[victim].Name, first.target, first.end.Sub(killedAt))
	nm := c.waitAgreedMaster(t, survivors, 10*time.Second)
	t.Logf("new master %s", c.procs[nm].Name)
	l.waitAcks(t, 30, time.Now(), 10*time.Second)
	l.halt()
	t.Logf("writes: %s", l.summary())
	checkHistory(t, c, survivors, l.snapshot())
}

// TestForwardToFrozenMasterGivesUp: an insert sent to a sentinel, which
// forwards it to a master that then never answers (SIGSTOPped: the kernel
// still accepts the connection), is answered 504 forward_failed soon after
// the sentinels have another master, not when the old one comes back. A
// retry with the same key then lands exactly once.
func TestForwardToFrozenMasterGivesUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	all := []int{0, 1, 2}
	m := c.waitAgreedMaster(t, all, 10*time.Second)
	s := (m + 1) % 3
	sURL := c.procs[s].URL()
	if _, _, err := postUntilOK([]string{sURL}, "before", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Registered after newCluster's cleanup, so it runs before the kill.
	t.Cleanup(func() { c.signal(m, syscall.SIGCONT) })
	if err := c.signal(m, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// At once, while the sentinel still names the frozen master. No
	// timeoutMs: the insert would wait for its concern indefinitely.
	body := map[string]any{"message": "via-sentinel", "writeConcern": "majority", "key": "k-frozen"}
	t0 := time.Now()
	a, sent, err := tryPost(&http.Client{Timeout: 20 * time.Second}, sURL, body)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("insert through %s with the master frozen: no answer after %v (sent %v): %v", c.procs[s].Name, took.Round(time.Millisecond), sent, err)
	}
	if a.Status != http.StatusGatewayTimeout || a.Code != "forward_failed" {
		t.Fatalf("insert through %s with the master frozen: %d %q (%s) after %v, want 504 forward_failed", c.procs[s].Name, a.Status, a.Code, a.Error, took)
	}
	t.Logf("insert forwarded to the frozen master: 504 forward_failed after %v: %s", took.Round(time.Millisecond), a.Error)

	if err := c.signal(m, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.waitAgreedMaster(t, all, 10*time.Second)
	hc := &http.Client{Timeout: 10 * time.Second}
	var r insertAnswer
	waitFor(t, 10*time.Second, "the retry with the same key to be acknowledged", func() bool {
		r, _, err = tryPost(hc, sURL, body)
		return err == nil && r.Status == 200
	})
	// Majority reads: the old master may still hold its own copy of the
	// forwarded insert (appended when it woke up, in its old term) until
	// it learns the new master's log; only committed entries count.
	var why string
	waitFor(t, 10*time.Second, "every node's majority read to hold the retried insert exactly once", func() bool {
		for _, p := range c.procs {
			got, err := tryGetAll(hc, p.URL(), "?readConcern=majority")
			if err != nil {
				why = err.Error()
				return false
			}
			n, at := 0, 0
			for i, e := range got {
				if e.ID != uint64(i+1) {
					t.Fatalf("%s: position %d holds id %d", p.Name, i+1, e.ID)
				}
				if e.Message == "via-sentinel" {
					n, at = n+1, i+1
				}
			}
			if n != 1 || at != int(r.ID) {
				why = fmt.Sprintf("%s holds the keyed insert %d times (at %d, acknowledged at %d): %v", p.Name, n, at, r.ID, messagesOf(got))
				return false
			}
		}
		return true
	})
	t.Logf("the retry with the same key was acknowledged at id %d and every node holds it once (the last look before that: %s)", r.ID, why)
}
