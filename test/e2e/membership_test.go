package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replog/replog/pkg/testcluster"
)

// addProc prepares a process with its own ports and data dir and the given
// extra environment (not started).
func (c *cluster) addProc(name string, env ...string) int {
	ports := freePorts(c.t, 2)
	if c.base == "" {
		c.base = c.t.TempDir()
	}
	p := testcluster.NewNode(c.base, name, testcluster.Addr{Host: "127.0.0.1", HTTP: ports[0], GRPC: ports[1]}, env...)
	c.procs = append(c.procs, p)
	return len(c.procs) - 1
}

type memberView struct {
	ID    string `json:"id"`
	Voter bool   `json:"voter"`
}

func membersOf(t *testing.T, url string) []memberView {
	t.Helper()
	resp, err := http.Get(url + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct{ Members []memberView }
	json.NewDecoder(resp.Body).Decode(&st)
	return st.Members
}

func isVoter(ms []memberView, id string) bool {
	for _, m := range ms {
		if m.ID == id && m.Voter {
			return true
		}
	}
	return false
}

func hasMember(ms []memberView, id string) bool {
	for _, m := range ms {
		if m.ID == id {
			return true
		}
	}
	return false
}

// TestGrowWithPeers is DESIGN §6 "Growing the cluster" (the seed 000
// flow): server1 alone is a one-node cluster and its master; server2 and
// server3 join with PEERS, catch up and vote; a w=3 write succeeds and
// server3 holds the history written before it joined.
func TestGrowWithPeers(t *testing.T) {
	c := &cluster{t: t, base: t.TempDir()} // before stopAll's cleanup, so logs outlive it
	t.Cleanup(c.stopAll)
	s1 := c.addProc("server1", "ROLE=master", "SERVER_ID=server1")
	c.start(s1)
	u1 := c.procs[s1].URL()
	c.master(10 * time.Second)
	for i := 0; i < 50; i++ {
		if a := post(t, u1, map[string]any{"message": fmt.Sprint("solo-", i), "writeConcern": 1}); a.Status != 200 {
			t.Fatalf("write on the one-node cluster: %+v", a)
		}
	}
	host1 := strings.TrimPrefix(u1, "http://")
	s2 := c.addProc("server2", "SERVER_ID=server2", "PEERS="+host1)
	c.start(s2)
	waitFor(t, 15*time.Second, "server2 to join and become a voter", func() bool { return isVoter(membersOf(t, u1), "server2") })
	if a := post(t, c.procs[s2].URL(), map[string]any{"message": "pair", "writeConcern": 2}); a.Status != 200 {
		t.Fatalf("w=2 with two voters: %+v", a)
	}
	s3 := c.addProc("server3", "SERVER_ID=server3", "PEERS="+host1+","+strings.TrimPrefix(c.procs[s2].URL(), "http://"))
	c.start(s3)
	waitFor(t, 15*time.Second, "server3 to join and become a voter", func() bool { return isVoter(membersOf(t, u1), "server3") })
	if a := post(t, u1, map[string]any{"message": "trio", "writeConcern": 3}); a.Status != 200 {
		t.Fatalf("w=3 with three voters: %+v", a)
	}
	want := messagesOf(getAll(t, u1, ""))
	if len(want) != 52 {
		t.Fatalf("server1 holds %d messages, want 52", len(want))
	}
	for _, i := range []int{s2, s3} {
		waitFor(t, 5*time.Second, c.procs[i].Name+" to hold the whole history", func() bool {
			return slices.Equal(messagesOf(getAll(t, c.procs[i].URL(), "")), want)
		})
	}
	// Every node's /status shows the same three voters.
	for _, p := range c.procs {
		ms := membersOf(t, p.URL())
		if len(ms) != 3 || !isVoter(ms, "server1") || !isVoter(ms, "server2") || !isVoter(ms, "server3") {
			t.Errorf("%s /status members = %+v, want the three voters", p.Name, ms)
		}
	}
}

func deleteMember(t *testing.T, url, id string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, url+"/cluster/members/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE member %s: %v", id, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestMembershipChangesUnderLoad: under a steady majority writer, add two
// nodes, then remove two (one of them the master): no write fails, none is
// lost.
func TestMembershipChangesUnderLoad(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi := c.master(10 * time.Second)
	var targets atomic.Value
	targets.Store(c.urls([]int{0, 1, 2}))
	l := startLoad(loadOpts{prefix: "member", writers: 4, key: true, retry: false,
		targets: func() []string { return targets.Load().([]string) }})
	defer l.halt()
	time.Sleep(300 * time.Millisecond)

	peers := strings.TrimPrefix(c.procs[mi].URL(), "http://")
	a := c.addProc("node3", "PEERS="+peers)
	b := c.addProc("node4", "PEERS="+peers)
	c.start(a)
	waitFor(t, 15*time.Second, "node3 to become a voter", func() bool { return isVoter(membersOf(t, c.procs[mi].URL()), c.procs[a].GRPC()) })
	c.start(b)
	waitFor(t, 15*time.Second, "node4 to become a voter", func() bool { return isVoter(membersOf(t, c.procs[mi].URL()), c.procs[b].GRPC()) })

	// Remove a sentinel, then the master; stop sending to each first.
	victim := (mi + 1) % 3
	remaining := []int{}
	for i := range c.procs {
		if i != victim {
			remaining = append(remaining, i)
		}
	}
	targets.Store(c.urls(remaining))
	if code, body := deleteMember(t, c.procs[mi].URL(), c.procs[victim].GRPC()); code != 200 {
		t.Fatalf("remove %s: %d %s", c.procs[victim].Name, code, body)
	}
	final := []int{}
	for _, i := range remaining {
		if i != mi {
			final = append(final, i)
		}
	}
	targets.Store(c.urls(final))
	time.Sleep(100 * time.Millisecond)
	if code, body := deleteMember(t, c.procs[final[0]].URL(), c.procs[mi].GRPC()); code != 200 {
		t.Fatalf("remove the master %s: %d %s", c.procs[mi].Name, code, body)
	}
	nm := c.waitAgreedMaster(t, final, 10*time.Second)
	l.waitAcks(t, 20, time.Now(), 10*time.Second)
	l.halt()
	if ms := membersOf(t, c.procs[nm].URL()); len(ms) != 3 || hasMember(ms, c.procs[mi].GRPC()) || hasMember(ms, c.procs[victim].GRPC()) {
		t.Fatalf("members after removing two = %+v", ms)
	}
	var failed []attempt
	for _, at := range l.snapshot() {
		if at.status != 200 {
			failed = append(failed, at)
		}
	}
	t.Logf("writes: %s", l.summary())
	if len(failed) > 0 {
		for _, f := range failed[:min(5, len(failed))] {
			t.Logf("failed: %+v", f)
		}
		t.Errorf("%d majority writes failed during the membership changes", len(failed))
	}
	checkHistory(t, c, final, l.snapshot())
}

// TestForceReconfigure: with two of three nodes gone for good, the survivor
// is made a one-node cluster and takes writes; while a majority is alive
// the call is refused.
func TestForceReconfigure(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.startAll()
	mi := c.master(10 * time.Second)
	if a := post(t, c.procs[mi].URL(), map[string]any{"message": "before", "writeConcern": "all"}); a.Status != 200 {
		t.Fatalf("write: %+v", a)
	}
	survivor := (mi + 1) % 3
	su := c.procs[survivor].URL()
	force := func() (int, string) {
		resp, err := http.Post(su+"/cluster/force-reconfigure", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := force(); code != 409 || !strings.Contains(body, "majority_reachable") {
		t.Fatalf("force-reconfigure with a majority alive: %d %s, want 409 majority_reachable", code, body)
	}
	// The CLI: without -yes it only says what it would do; with -yes it is
	// refused while the majority is alive.
	cli := func(args ...string) (int, string) {
		cmd := exec.Command(binary, append([]string{"force-reconfigure", "-node", su}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("replog force-reconfigure: %v", err)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := cli(); code != 2 || !strings.Contains(out, "Nothing was changed") {
		t.Fatalf("replog force-reconfigure without -yes: exit %d\n%s\nwant exit 2, nothing changed", code, out)
	}
	if code, out := cli("-yes"); code != 1 || !strings.Contains(out, "refused: a majority is still reachable") {
		t.Fatalf("replog force-reconfigure -yes with a majority alive: exit %d\n%s\nwant exit 1, refused", code, out)
	}
	for i := range c.procs {
		if i != survivor {
			c.kill(i)
		}
	}
	if a := post(t, su, map[string]any{"message": "stuck"}); a.Status != 503 {
		t.Fatalf("write with two of three dead: %+v, want 503", a)
	}
	waitFor(t, 10*time.Second, "replog force-reconfigure -yes to be accepted", func() bool {
		code, out := cli("-yes")
		if code != 0 {
			t.Logf("replog force-reconfigure -yes: exit %d: %s", code, out)
		}
		return code == 0
	})
	c.master(10 * time.Second)
	if a := post(t, su, map[string]any{"message": "after", "writeConcern": "majority"}); a.Status != 200 {
		t.Fatalf("write after force-reconfigure: %+v", a)
	}
	if got := messagesOf(getAll(t, su, "")); !slices.Equal(got, []string{"1:before", "2:after"}) {
		t.Fatalf("survivor holds %v", got)
	}
}
