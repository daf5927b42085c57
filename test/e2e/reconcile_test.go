package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// orphanWrites makes a master take w=1 writes no sentinel receives (both
// are SIGSTOPped, so it acknowledges them on its own disk until CheckQuorum
// notices, one election timeout), at most max of them; then it kills the
// master, lets the sentinels go on, and returns the old master's index,
// the new master's and the orphaned messages. Nothing is restarted.
func orphanWrites(t *testing.T, c *cluster, max int) (old, cur int, orphaned []string) {
	t.Helper()
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
	for i := 0; i < max; i++ {
		msg := fmt.Sprint("w1-", i)
		if a := post(t, m, map[string]any{"message": msg, "writeConcern": 1}); a.Status != 200 {
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
	if a := post(t, c.procs[ni].URL(), map[string]any{"message": "after", "writeConcern": "majority"}); a.Status != 200 {
		t.Fatalf("write on the new master: %+v", a)
	}
	return mi, ni, orphaned
}

// TestReconciliationCountsDroppedWrites: a master takes w=1 writes that no
// sentinel receives (both are stopped), then dies. The sentinels elect a new
// master and go on. When the old master comes back, the suffix the new
// master lacks is dropped — allowed for w=1 — and counted in its metrics and
// logged with the ids: the loss is never silent.
func TestReconciliationCountsDroppedWrites(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi, ni, orphaned := orphanWrites(t, c, 200)
	n := c.procs[ni].URL()
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

// TestLocalReadsDuringTruncation: readers stream local /get-all from an old
// master while it rejoins and truncates the suffix the new master lacks.
// Every read answers 200 with a gap-free list (entries about to be dropped
// may show: a local read is what the node holds at that moment), never a
// 500 from reading a log that shrank under it.
func TestLocalReadsDuringTruncation(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi, ni, orphaned := orphanWrites(t, c, 2000)
	if len(orphaned) < 20 {
		t.Fatalf("the master took only %d w=1 writes before noticing it lost its majority", len(orphaned))
	}
	m := c.procs[mi].URL()

	// Readers on the old master's HTTP port, from before it starts until it
	// has converged.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reads, refused int
	var bad []string
	hc := &http.Client{Timeout: 5 * time.Second}
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Get(m + "/get-all")
				if err != nil {
					time.Sleep(time.Millisecond) // not up yet
					continue
				}
				raw, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				var got []logMsg
				jerr := json.Unmarshal(raw, &got)
				mu.Lock()
				switch {
				case resp.StatusCode == 503:
					refused++
				case resp.StatusCode != 200 || rerr != nil || jerr != nil:
					bad = append(bad, fmt.Sprintf("status %d (%v %v): %.300s", resp.StatusCode, rerr, jerr, raw))
				default:
					reads++
					for i, e := range got {
						if e.ID != uint64(i+1) {
							bad = append(bad, fmt.Sprintf("position %d holds id %d", i+1, e.ID))
							break
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	c.start(mi)
	waitFor(t, 10*time.Second, "the old master to converge", func() bool {
		return slices.Equal(messagesOf(getAll(t, c.procs[mi].URL(), "")), messagesOf(getAll(t, c.procs[ni].URL(), "")))
	})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d local reads during the truncation went wrong, e.g. %s", len(bad), reads+len(bad), bad[0])
	}
	if reads == 0 {
		t.Fatal("no read answered: the readers never overlapped the rejoin")
	}
	t.Logf("%d orphaned w=1 writes truncated on rejoin; %d local reads meanwhile, all 200 and gap-free (%d answered 503)", len(orphaned), reads, refused)
}
