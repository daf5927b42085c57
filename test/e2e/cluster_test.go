// Package e2e runs real replog processes on real loopback sockets and checks
// what clients see. TestMain builds the binary once.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
type proc struct {
	name     string
	httpPort int
	grpcPort int
	env      []string
	dataDir  string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func (p *proc) url() string  { return fmt.Sprintf("http://127.0.0.1:%d", p.httpPort) }
func (p *proc) grpc() string { return fmt.Sprintf("127.0.0.1:%d", p.grpcPort) }

// cluster is a set of processes that a test starts and always stops.
type cluster struct {
	t     *testing.T
	procs []*proc
	base  string // data and logs of processes added later
}

// freePorts reserves n distinct free TCP ports on loopback.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// newCluster prepares (does not start) a master and n-1 sentinels.
func newCluster(t *testing.T, n int, extraEnv map[string][]string) *cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	c := &cluster{t: t}
	base := t.TempDir()
	for i := 0; i < n; i++ {
		p := &proc{
			name:     fmt.Sprintf("node%d", i),
			httpPort: ports[2*i],
			grpcPort: ports[2*i+1],
		}
		p.dataDir = filepath.Join(base, p.name)
		p.logPath = filepath.Join(base, p.name+".log")
		c.procs = append(c.procs, p)
	}
	var sentinels []string
	for _, p := range c.procs[1:] {
		sentinels = append(sentinels, p.grpc())
	}
	for i, p := range c.procs {
		p.env = []string{
			"PORT=" + strconv.Itoa(p.httpPort),
			"GRPC_PORT=" + strconv.Itoa(p.grpcPort),
			"ADVERTISE_HOST=127.0.0.1",
			"DATA_DIR=" + p.dataDir,
			"LOG_FORMAT=json",
			"LOG_LEVEL=info",
			"FSYNC=always",
		}
		if i == 0 {
			p.env = append(p.env, "ROLE=master", "SENTINELS="+strings.Join(sentinels, ","))
		} else {
			p.env = append(p.env, "ROLE=sentinel")
		}
		p.env = append(p.env, extraEnv[p.name]...)
	}
	t.Cleanup(c.stopAll)
	return c
}

// start launches a process (again, after a kill) with its environment.
func (c *cluster) start(i int) {
	c.t.Helper()
	p := c.procs[i]
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.exited) }()
	c.waitHTTP(i)
}

func (c *cluster) startAll() {
	for i := range c.procs {
		c.start(i)
	}
}

func (c *cluster) waitHTTP(i int) {
	c.t.Helper()
	p := c.procs[i]
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			c.dumpLogs()
			c.t.Fatalf("%s exited during start", p.name)
		default:
		}
		resp, err := http.Get(p.url() + "/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.dumpLogs()
	c.t.Fatalf("%s did not answer /health", p.name)
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *cluster) kill(i int) {
	p := c.procs[i]
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
	p.cmd = nil
}

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
		b, _ := os.ReadFile(p.logPath)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		c.t.Logf("---- %s log (tail) ----\n%s", p.name, b)
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
			if p.cmd == nil {
				continue
			}
			if s, err := status(p.url()); err == nil && s.Role == "master" {
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
