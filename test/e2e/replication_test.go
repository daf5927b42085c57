package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestSingleNodeMaster: a master started without SENTINELS is a one-node
// cluster, not an error.
func TestSingleNodeMaster(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.start(0)
	m := c.procs[0].URL()
	c.master(10 * time.Second)
	for i, wc := range []any{1, "majority", "all"} {
		if a := post(t, m, map[string]any{"message": fmt.Sprint("m", i), "writeConcern": wc}); a.Status != 200 || a.ID != uint64(i+1) {
			t.Fatalf("w=%v: got %+v, want 200 id %d", wc, a, i+1)
		}
	}
	if a := post(t, m, map[string]any{"message": "x", "writeConcern": 2}); a.Status != 400 || a.Code != "bad_write_concern" {
		t.Fatalf("w=2 on one node: got %+v, want 400 bad_write_concern", a)
	}
}

type healthAnswer struct {
	Members []struct {
		ID     string `json:"id"`
		Health string `json:"health"`
	} `json:"members"`
}

func healthOf(t *testing.T, url, id string) string {
	t.Helper()
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var h healthAnswer
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	for _, m := range h.Members {
		if m.ID == id {
			return m.Health
		}
	}
	return ""
}

// TestHealthAndCatchUp: the master marks a dead sentinel suspected, then
// unhealthy; writes continue meanwhile; the sentinel comes back, is healthy
// again and catches up with everything it missed, with no gap or duplicate.
func TestHealthAndCatchUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi := c.master(10 * time.Second)
	m := c.procs[mi].URL()
	victim := (mi + 1) % 3
	vid := c.procs[victim].GRPC()
	waitFor(t, 5*time.Second, "all sentinels healthy", func() bool { return healthOf(t, m, vid) == "healthy" })

	for i := 0; i < 10; i++ {
		post(t, m, map[string]any{"message": fmt.Sprint("before-", i), "writeConcern": "all"})
	}
	c.kill(victim)
	seen := map[string]bool{}
	waitFor(t, 5*time.Second, "the dead sentinel to be unhealthy", func() bool {
		h := healthOf(t, m, vid)
		seen[h] = true
		return h == "unhealthy"
	})
	if !seen["suspected"] {
		t.Errorf("health went %v: never suspected on the way to unhealthy", seen)
	}
	for i := 0; i < 200; i++ {
		if a := post(t, m, map[string]any{"message": fmt.Sprint("during-", i), "writeConcern": 2}); a.Status != 200 {
			t.Fatalf("w=2 with one sentinel down: %+v", a)
		}
	}
	c.start(victim)
	waitFor(t, 10*time.Second, "the sentinel to be healthy again", func() bool { return healthOf(t, m, vid) == "healthy" })
	want := messagesOf(getAll(t, m, ""))
	if len(want) != 210 {
		t.Fatalf("master holds %d messages, want 210", len(want))
	}
	waitFor(t, 10*time.Second, "the sentinel to catch up", func() bool {
		return slices.Equal(messagesOf(getAll(t, c.procs[victim].URL(), "")), want)
	})
}

// TestSlowSentinelDelaysOnlyWritesThatNeedIt: with REPLICATION_DELAY on one
// sentinel, w=2 does not wait for it; w=3 does.
func TestSlowSentinelDelaysOnlyWritesThatNeedIt(t *testing.T) {
	const delay = 2 * time.Second
	c := newCluster(t, 3, map[string][]string{"node2": {"REPLICATION_DELAY=" + delay.String()}})
	c.startAll()
	m := c.procs[c.master(10*time.Second)].URL()

	t0 := time.Now()
	if a := post(t, m, map[string]any{"message": "fast", "writeConcern": 2}); a.Status != 200 {
		t.Fatalf("w=2: %+v", a)
	}
	fast := time.Since(t0)
	t0 = time.Now()
	if a := post(t, m, map[string]any{"message": "slow", "writeConcern": 3}); a.Status != 200 {
		t.Fatalf("w=3: %+v", a)
	}
	slow := time.Since(t0)
	// w=3 cannot be answered before the slow sentinel's delay has passed;
	// w=2 must not have waited for it.
	if slow < delay {
		t.Errorf("w=3 answered after %v, before the slow sentinel's %v delay: it did not wait for it", slow, delay)
	}
	if fast >= delay {
		t.Errorf("w=2 took %v: it waited for the slow sentinel (delay %v)", fast, delay)
	}
	t.Logf("w=2 took %v, w=3 took %v (delay %v)", fast, slow, delay)
}

// TestLinearizableReadsOnEveryNode: after a majority write is acknowledged,
// a linearizable read on any node, sentinels included, shows it (it may not
// yet be in a sentinel's local view: the read waits for it).
func TestLinearizableReadsOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, map[string][]string{"node2": {"REPLICATION_DELAY=300ms"}})
	c.startAll()
	m := c.procs[c.master(10*time.Second)].URL()
	for i := 0; i < 5; i++ {
		msg := fmt.Sprint("lin-", i)
		if a := post(t, m, map[string]any{"message": msg, "writeConcern": "majority"}); a.Status != 200 {
			t.Fatalf("insert: %+v", a)
		}
		for _, p := range c.procs {
			got := getAll(t, p.URL(), "?readConcern=linearizable")
			if len(got) != i+1 || got[i].Message != msg {
				t.Fatalf("%s: linearizable read after acknowledged %q shows %v", p.Name, msg, messagesOf(got))
			}
		}
	}
	// The majority view never shows more than the linearizable one, nor
	// anything uncommitted.
	for _, p := range c.procs {
		if got := getAll(t, p.URL(), "?readConcern=majority"); len(got) > 5 {
			t.Fatalf("%s: majority read shows %d messages, only 5 were written", p.Name, len(got))
		}
	}
}
