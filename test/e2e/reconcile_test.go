package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestReconciliationCountsDroppedWrites: a master takes w=1 writes that no
// sentinel receives (both are stopped), then dies. The sentinels elect a new
// master and go on. When the old master comes back, the suffix the new
// master lacks is dropped — allowed for w=1 — and counted in its metrics and
// logged with the ids: the loss is never silent.
func TestReconciliationCountsDroppedWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi := c.master(10 * time.Second)
	m := c.procs[mi].URL()
	if a := post(t, m, map[string]any{"message": "base", "writeConcern": "all"}); a.Status != 200 {
		t.Fatalf("base write: %+v", a)
	}
	var others []int
	for i := range c.procs {
		if i != mi {
			others = append(others, i)
			if err := c.signal(i, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for _, i := range others {
			c.signal(i, syscall.SIGCONT)
		}
	})
	// Until CheckQuorum notices (one election timeout), the master still
	// takes w=1 writes, acknowledged by its own disk alone.
	var orphaned []string
	for i := 0; i < 200; i++ {
		msg := fmt.Sprint("w1-", i)
		a := post(t, m, map[string]any{"message": msg, "writeConcern": 1})
		if a.Status != 200 {
			break
		}
		orphaned = append(orphaned, msg)
	}
	if len(orphaned) == 0 {
		t.Fatal("the master took no w=1 write before noticing it lost its majority")
	}
	c.kill(mi)
	for _, i := range others {
		c.signal(i, syscall.SIGCONT)
	}
	ni := c.waitAgreedMaster(t, others, 10*time.Second)
	n := c.procs[ni].URL()
	if a := post(t, n, map[string]any{"message": "after", "writeConcern": "majority"}); a.Status != 200 {
		t.Fatalf("write on the new master: %+v", a)
	}
	c.start(mi)
	var final []string
	waitFor(t, 10*time.Second, "the old master to converge", func() bool {
		final = messagesOf(getAll(t, n, ""))
		return slices.Equal(messagesOf(getAll(t, c.procs[mi].URL(), "")), final)
	})
	lost := 0
	for _, msg := range orphaned {
		found := false
		for _, f := range final {
			if regexp.MustCompile(`^\d+:` + regexp.QuoteMeta(msg) + `$`).MatchString(f) {
				found = true
			}
		}
		if !found {
			lost++
		}
	}
	if lost == 0 {
		t.Fatalf("no w=1 write was lost: the scenario did not happen (final log %v)", final)
	}
	resp, err := http.Get(c.procs[mi].URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mm := regexp.MustCompile(`(?m)^replog_dropped_messages_total (\d+)`).FindSubmatch(body)
	if mm == nil {
		t.Fatalf("no replog_dropped_messages_total in /metrics")
	}
	if got, _ := strconv.Atoi(string(mm[1])); got != lost {
		t.Fatalf("replog_dropped_messages_total = %d, but %d acknowledged w=1 writes are gone", got, lost)
	}
	t.Logf("%d w=1 writes acknowledged by the isolated master, %d dropped on its return, counted and logged", len(orphaned), lost)
}
