// Package e2e runs real replog processes on real loopback sockets and checks
// what clients see. TestMain builds the binary once.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/replog/replog/pkg/testcluster"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replog-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "replog")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/replog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build replog:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one replog process of a test cluster.
type proc = testcluster.Node

// cluster is a set of processes that a test starts and always stops.
type cluster struct {
	t     *testing.T
	procs []*proc
	base  string // data and logs of processes added later
}

// freePorts reserves n distinct free TCP ports on loopback.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := testcluster.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// newCluster prepares (does not start) a master and n-1 sentinels.
func newCluster(t *testing.T, n int, extraEnv map[string][]string) *cluster {
	t.Helper()
	addrs, err := testcluster.Loopback(n)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t}
	c.procs = testcluster.Bootstrap(t.TempDir(), addrs, func(i int) []string { return extraEnv[fmt.Sprintf("node%d", i)] })
	t.Cleanup(c.stopAll)
	return c
}

// start launches a process (again, after a kill) with its environment and
// waits until it answers.
func (c *cluster) start(i int) {
	c.t.Helper()
	if err := c.procs[i].Start(exec.Command(binary)); err != nil {
		c.t.Fatal(err)
	}
	c.waitHTTP(i)
}

func (c *cluster) startAll() {
	for i := range c.procs {
		c.start(i)
	}
}

func (c *cluster) waitHTTP(i int) {
	c.t.Helper()
	if err := c.procs[i].WaitHealthy(15 * time.Second); err != nil {
		c.dumpLogs()
		c.t.Fatal(err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *cluster) kill(i int) { c.procs[i].Kill() }

func (c *cluster) stopAll() {
	for i := range c.procs {
		c.kill(i)
	}
	if c.t.Failed() {
		c.dumpLogs()
	}
}

func (c *cluster) dumpLogs() {
	for _, p := range c.procs {
		c.t.Logf("---- %s log (tail) ----\n%s", p.Name, p.TailLog(8000))
	}
}

// ---- client helpers (plain HTTP, so tests see exactly what curl sees) ----

type insertAnswer struct {
	Status int
	ID     uint64 `json:"id"`
	Term   uint64 `json:"term"`
	Acks   int    `json:"acks"`
	Error  string `json:"error"`
	Code   string `json:"code"`
}

func post(t *testing.T, url string, body any) insertAnswer {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	resp, err := http.Post(url+"/insert", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s/insert: %v", url, err)
	}
	defer resp.Body.Close()
	var a insertAnswer
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("POST %s/insert: status %d, body %q is not JSON", url, resp.StatusCode, raw)
	}
	a.Status = resp.StatusCode
	return a
}

type logMsg struct {
	ID        uint64    `json:"id"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

func getAll(t *testing.T, url, query string) []logMsg {
	t.Helper()
	resp, err := http.Get(url + "/get-all" + query)
	if err != nil {
		t.Fatalf("GET %s/get-all: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/get-all%s: status %d: %s", url, query, resp.StatusCode, raw)
	}
	var out []logMsg
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET %s/get-all: %v in %q", url, err, raw)
	}
	return out
}

type statusAnswer struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Leader *struct {
		ID   string `json:"id"`
		HTTP string `json:"http"`
	} `json:"leader"`
	LastID  uint64 `json:"lastId"`
	Members []struct {
		ID     string `json:"id"`
		Health string `json:"health"`
	} `json:"members"`
}

func status(url string) (statusAnswer, error) {
	var s statusAnswer
	resp, err := http.Get(url + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

// master returns the index of the process that is master, waiting for one.
func (c *cluster) master(timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, timeout, "a master", func() bool {
		for i, p := range c.procs {
			if !p.Alive() {
				continue
			}
			if s, err := status(p.URL()); err == nil && s.Role == "master" {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func messagesOf(ms []logMsg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%d:%s", m.ID, m.Message)
	}
	return out
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
