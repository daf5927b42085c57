//go:build chaos

package chaos

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replog/replog/pkg/testcluster"
)

// TestJoinAcrossHosts is DESIGN §6 "Growing the cluster" across machines:
// three hosts (network namespaces with their own addresses, every server
// on the same ports 8080/9090, as on real machines). server1 starts alone
// and takes writes; server2 joins with PEERS=server1, server3 with
// PEERS=server1,server2; each becomes a voter, a writeConcern 3 write
// succeeds, server3 holds the history written before it joined, and every
// node's /status shows the same three voters. Then server1's host is cut
// off: the other two elect a master and keep taking majority writes.
func TestJoinAcrossHosts(t *testing.T) {
	if ok, why := labAvailable(); !ok {
		t.Skipf("needs network namespaces: %s", why)
	}
	lab, err := newNetlab(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.teardown)
	dir := t.TempDir()
	var nodes []*testcluster.Node
	hostOf := func(i int) string { return nodeIP(i) + ":8080" }
	start := func(i int, env ...string) *testcluster.Node {
		t.Helper()
		nd := testcluster.NewNode(dir, fmt.Sprintf("server%d", i+1), testcluster.Addr{Host: nodeIP(i), HTTP: 8080, GRPC: 9090},
			append([]string{fmt.Sprintf("SERVER_ID=server%d", i+1)}, env...)...)
		nodes = append(nodes, nd)
		t.Cleanup(nd.Kill) // runs before the lab's teardown
		if err := nd.Start(lab.command(i, binary)); err != nil {
			t.Fatal(err)
		}
		if err := nd.WaitHealthy(20 * time.Second); err != nil {
			t.Fatalf("%v\n%s", err, nd.TailLog(4000))
		}
		return nd
	}
	post := func(url, msg string, w any) (int, string) {
		status, ans, _, err := postInsert(newHTTPClient(), url, map[string]any{"message": msg, "writeConcern": w, "timeoutMs": 5000})
		return status, fmt.Sprintf("%+v %v", ans, err)
	}
	type member struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	}
	members := func(nd *testcluster.Node) []member {
		resp, err := probe.Get(nd.URL() + "/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var st struct{ Members []member }
		json.NewDecoder(resp.Body).Decode(&st)
		return st.Members
	}
	voters := func(nd *testcluster.Node) string {
		var ids []string
		for _, m := range members(nd) {
			if m.Voter {
				ids = append(ids, m.ID)
			}
		}
		slices.Sort(ids)
		return strings.Join(ids, ",")
	}
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
		}
	}

	s1 := start(0, "ROLE=master")
	for k := 0; k < 20; k++ {
		if st, a := post(s1.URL(), fmt.Sprint("solo-", k), 1); st != 200 {
			t.Fatalf("write on the one-node cluster: %d %s", st, a)
		}
	}
	start(1, "PEERS="+hostOf(0))
	waitFor("server2 to join as a voter", 20*time.Second, func() bool { return voters(s1) == "server1,server2" })
	s3 := start(2, "PEERS="+hostOf(0)+","+hostOf(1))
	waitFor("server3 to join as a voter", 20*time.Second, func() bool { return voters(s1) == "server1,server2,server3" })
	if st, a := post(nodes[1].URL(), "trio", 3); st != 200 {
		t.Fatalf("writeConcern 3 with three voters (sent to server2): %d %s", st, a)
	}
	want, _, err := getAll(probe, s1.URL(), "local")
	if err != nil || len(want) != 21 {
		t.Fatalf("server1 holds %d messages (%v), want 21", len(want), err)
	}
	got, _, err := getAll(probe, s3.URL(), "local")
	if err != nil || diff(got, want) != "" {
		t.Fatalf("server3 holds %d messages (%v), want the 21 of server1: %s", len(got), err, diff(got, want))
	}
	for _, nd := range nodes {
		if v := voters(nd); v != "server1,server2,server3" || len(members(nd)) != 3 {
			t.Errorf("%s /status members %+v, want the three voters", nd.Name, members(nd))
		}
	}
	t.Logf("three servers on three hosts, joined with PEERS; server3 holds the %d messages written before it joined", len(want))

	// The first server's host drops off the network: the other two go on.
	if err := lab.isolate(0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var last string
	waitFor("a majority write on server2 or server3 with server1's host cut off", 10*time.Second, func() bool {
		for _, nd := range nodes[1:] {
			st, a := post(nd.URL(), "after-cut", "majority")
			if st == 200 {
				return true
			}
			last = fmt.Sprintf("%s: %d %s", nd.Name, st, a)
		}
		return false
	})
	t.Logf("server1's host cut off: a majority write was acknowledged %v later (last refusal: %s)", time.Since(t0).Round(time.Millisecond), last)
	lab.healAll()
}
