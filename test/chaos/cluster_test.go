//go:build chaos

package chaos

import (
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
	"sync"
	"syscall"
	"time"
)

// node is one replog process of a chaos cluster.
type node struct {
	idx      int
	name     string
	host     string // the address the test and the other nodes reach it at
	httpPort int
	grpcPort int
	env      []string
	dataDir  string
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

func (n *node) url() string  { return "http://" + net.JoinHostPort(n.host, strconv.Itoa(n.httpPort)) }
func (n *node) grpc() string { return net.JoinHostPort(n.host, strconv.Itoa(n.grpcPort)) }

// cluster is a set of replog processes, on loopback or in a netlab.
type cluster struct {
	bin   string
	dir   string
	lab   *netlab // nil: loopback, no network faults
	nodes []*node
	logf  func(format string, args ...any)
}

// newCluster prepares n nodes (node0 bootstraps as master) under dir.
func newCluster(bin, dir string, n int, lab *netlab, logf func(string, ...any)) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir, lab: lab, logf: logf}
	var ports []int
	if lab == nil {
		var err error
		if ports, err = freePorts(2 * n); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		nd := &node{idx: i, name: fmt.Sprintf("node%d", i)}
		if lab != nil {
			nd.host, nd.httpPort, nd.grpcPort = nodeIP(i), 8080, 9090
		} else {
			nd.host, nd.httpPort, nd.grpcPort = "127.0.0.1", ports[2*i], ports[2*i+1]
		}
		nd.dataDir = filepath.Join(dir, nd.name)
		nd.logPath = filepath.Join(dir, nd.name+".log")
		c.nodes = append(c.nodes, nd)
	}
	var sentinels []string
	for _, nd := range c.nodes[1:] {
		sentinels = append(sentinels, nd.grpc())
	}
	for i, nd := range c.nodes {
		nd.env = []string{
			"PORT=" + strconv.Itoa(nd.httpPort),
			"GRPC_PORT=" + strconv.Itoa(nd.grpcPort),
			"ADVERTISE_HOST=" + nd.host,
			"DATA_DIR=" + nd.dataDir,
			"LOG_FORMAT=json",
			"LOG_LEVEL=info",
			"FSYNC=always",
			"HEARTBEAT_INTERVAL=50ms",
			"ELECTION_TIMEOUT_MIN=300ms",
			"ELECTION_TIMEOUT_MAX=600ms",
		}
		if i == 0 {
			nd.env = append(nd.env, "ROLE=master", "SENTINELS="+strings.Join(sentinels, ","))
		} else {
			nd.env = append(nd.env, "ROLE=sentinel")
		}
	}
	return c, nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start launches node i (again, after a kill) with its environment and
// data directory, without waiting for it.
func (c *cluster) start(i int) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "{\"chaos\":\"start %s at %s\"}\n", nd.name, time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if c.lab != nil {
		// ip netns exec execs the binary in place: the pid is replog's.
		cmd = c.lab.command(i, c.bin)
	} else {
		cmd = exec.Command(c.bin)
	}
	cmd.Env = append(os.Environ(), nd.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", nd.name, err)
	}
	nd.cmd, nd.paused = cmd, false
	exited := make(chan struct{})
	nd.exited = exited
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	return nil
}

// waitUp waits (bounded) until node i answers /health.
func (c *cluster) waitUp(ctx context.Context, i int, timeout time.Duration) error {
	nd := c.nodes[i]
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		nd.mu.Lock()
		exited := nd.exited
		nd.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start (see %s)", nd.name, nd.logPath)
		default:
		}
		resp, err := probe.Get(nd.url() + "/health")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer /health within %v", nd.name, timeout)
}

// startAndWait starts the nodes and waits for each to answer.
func (c *cluster) startAndWait(ctx context.Context, idx ...int) error {
	for _, i := range idx {
		if err := c.start(i); err != nil {
			return err
		}
	}
	for _, i := range idx {
		if err := c.waitUp(ctx, i, 20*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// kill sends SIGKILL (continuing a paused process first is not needed:
// SIGKILL ends a stopped process too) and waits for it to be gone.
func (c *cluster) kill(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	cmd, exited := nd.cmd, nd.exited
	nd.cmd, nd.paused = nil, false
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// signal sends sig to node i's process.
func (c *cluster) signal(i int, sig syscall.Signal) error {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return fmt.Errorf("%s is not running", nd.name)
	}
	if err := syscall.Kill(nd.cmd.Process.Pid, sig); err != nil {
		return err
	}
	switch sig {
	case syscall.SIGSTOP:
		nd.paused = true
	case syscall.SIGCONT:
		nd.paused = false
	}
	return nil
}

// running reports whether node i's process is up and not paused.
func (c *cluster) running(i int) bool {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil || nd.paused {
		return false
	}
	select {
	case <-nd.exited:
		return false
	default:
		return true
	}
}

func (c *cluster) all() []int {
	out := make([]int, len(c.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// stopAll kills every process (SIGCONT first is unnecessary for SIGKILL).
func (c *cluster) stopAll() {
	for i := range c.nodes {
		c.kill(i)
	}
}

// exitedOnItsOwn reports whether node i's process ended without the
// harness killing it.
func (c *cluster) exitedOnItsOwn(i int) bool {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	select {
	case <-nd.exited:
		return true
	default:
		return false
	}
}

// crashed lists nodes whose process ended without the harness killing it.
func (c *cluster) crashed() []string {
	var out []string
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			select {
			case <-nd.exited:
				out = append(out, fmt.Sprintf("%s (exit %v)", nd.name, nd.cmd.ProcessState))
			default:
			}
		}
		nd.mu.Unlock()
	}
	return out
}

// ---- observation ----

// probe bounds every harness call: a SIGSTOPped node accepts connections
// (the kernel does) and never answers.
var probe = &http.Client{Timeout: time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

type status struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Leader *struct {
		ID string `json:"id"`
	} `json:"leader"`
	LastID   uint64 `json:"lastId"`
	CommitID uint64 `json:"commitId"`
	Members  []struct {
		ID     string `json:"id"`
		Health string `json:"health"`
	} `json:"members"`
}

func (s status) leaderID() string {
	if s.Leader == nil {
		return ""
	}
	return s.Leader.ID
}

func getStatus(url string) (status, error) {
	var s status
	resp, err := probe.Get(url + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// master is the index of a running node that says it is master with the
// highest term, or -1.
func (c *cluster) master() int {
	best, term := -1, uint64(0)
	for i, nd := range c.nodes {
		if !c.running(i) {
			continue
		}
		if s, err := getStatus(nd.url()); err == nil && s.Role == "master" && s.Term >= term {
			best, term = i, s.Term
		}
	}
	return best
}

// agreedMaster: every node in among answers, exactly one is master, and
// all name it as leader.
func (c *cluster) agreedMaster(among []int) (int, string) {
	m := -1
	var want string
	sts := map[int]status{}
	for _, i := range among {
		s, err := getStatus(c.nodes[i].url())
		if err != nil {
			return -1, fmt.Sprintf("%s: %v", c.nodes[i].name, err)
		}
		sts[i] = s
		if s.Role == "master" {
			if m >= 0 {
				return -1, fmt.Sprintf("two masters: %s and %s", c.nodes[m].name, c.nodes[i].name)
			}
			m, want = i, s.ID
		}
	}
	if m < 0 {
		return -1, "no master"
	}
	for _, i := range among {
		if got := sts[i].leaderID(); got != want {
			return -1, fmt.Sprintf("%s names leader %q, the master is %s", c.nodes[i].name, got, want)
		}
	}
	return m, ""
}

func (c *cluster) waitAgreedMaster(ctx context.Context, among []int, timeout time.Duration) (int, error) {
	var why string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var m int
		if m, why = c.agreedMaster(among); m >= 0 {
			return m, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, fmt.Errorf("no agreed master among %v within %v: %s", c.names(among), timeout, why)
}

func (c *cluster) names(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.nodes[i].name)
	}
	return out
}

// logMsg is one element of /get-all.
type logMsg struct {
	ID        uint64    `json:"id"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

// getAll is a bounded GET /get-all with the given read concern.
func getAll(hc *http.Client, url, concern string) ([]logMsg, int, error) {
	resp, err := hc.Get(url + "/get-all?readConcern=" + concern)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out []logMsg
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("body is not a JSON list: %v", err)
	}
	return out, 200, nil
}

// copyLogs copies every node's log into dir.
func (c *cluster) copyLogs(dir string) {
	os.MkdirAll(dir, 0o755)
	for _, nd := range c.nodes {
		if b, err := os.ReadFile(nd.logPath); err == nil {
			os.WriteFile(filepath.Join(dir, nd.name+".log"), b, 0o644)
		}
	}
}
