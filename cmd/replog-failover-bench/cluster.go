package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/replog/replog/pkg/testcluster"
)

// probe bounds every status and health call.
var probe = &http.Client{Timeout: 2 * time.Second}

// node is one replog process the benchmark owns.
type node struct {
	*testcluster.Node
	// down: the writers leave this node alone (set just before it is
	// killed or terminated, cleared once it is back).
	down bool
}

// cluster is the set of processes; every method is safe for concurrent use,
// so the signal handler can kill everything at any moment.
type cluster struct {
	bin   string
	mu    sync.Mutex
	nodes []*node
	gone  bool // killAll ran: start nothing more
}

func newCluster(bin, dir string, n int, fsync string) (*cluster, error) {
	addrs, err := testcluster.Loopback(n)
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin}
	for _, nd := range testcluster.Bootstrap(dir, addrs, func(int) []string { return []string{"FSYNC=" + fsync} }) {
		c.nodes = append(c.nodes, &node{Node: nd})
	}
	return c, nil
}

// start launches node i with its environment (the same every time) and
// waits until it answers /health.
func (c *cluster) start(i int) error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return fmt.Errorf("cluster stopped")
	}
	nd := c.nodes[i]
	cmd := exec.Command(c.bin)
	// Own process group: a Ctrl-C in the terminal reaches the benchmark
	// only, which then kills its nodes. Pdeathsig kills them should the
	// benchmark itself die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := nd.Start(cmd)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return nd.WaitHealthy(15 * time.Second)
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *cluster) kill(i int) { c.nodes[i].Kill() }

// terminate sends SIGTERM to node i and waits up to timeout for it to exit
// (killing it after that); it returns how long the exit took.
func (c *cluster) terminate(i int, timeout time.Duration) (time.Duration, bool) {
	return c.nodes[i].Terminate(timeout)
}

// killAll kills every node; no node starts after it.
func (c *cluster) killAll() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
	for i := range c.nodes {
		c.kill(i)
	}
}

func (c *cluster) setDown(i int, down bool) {
	c.mu.Lock()
	c.nodes[i].down = down
	c.mu.Unlock()
}

// targets are the URLs of the nodes the writers may use.
func (c *cluster) targets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, nd := range c.nodes {
		if nd.Alive() && !nd.down {
			out = append(out, nd.URL())
		}
	}
	return out
}

func (c *cluster) running(i int) bool { return c.nodes[i].Alive() }

// status is the part of GET /status the benchmark reads.
type status struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Leader *struct {
		ID string `json:"id"`
	} `json:"leader"`
	LastID   uint64 `json:"lastId"`
	CommitID uint64 `json:"commitId"`
}

func (s status) leader() string {
	if s.Leader == nil {
		return ""
	}
	return s.Leader.ID
}

func statusOf(url string) (status, error) {
	var s status
	resp, err := probe.Get(url + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("GET /status: %d", resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// stableMaster returns the master's index when every node runs, exactly
// one says master and all name it as leader; -1 and why otherwise.
func (c *cluster) stableMaster() (int, status, string) {
	master := -1
	var ms status
	sts := make([]status, len(c.nodes))
	for i, nd := range c.nodes {
		if !c.running(i) {
			return -1, ms, nd.Name + " is not running"
		}
		s, err := statusOf(nd.URL())
		if err != nil {
			return -1, ms, fmt.Sprintf("%s: %v", nd.Name, err)
		}
		sts[i] = s
		if s.Role == "master" {
			if master >= 0 {
				return -1, ms, "two nodes say master"
			}
			master, ms = i, s
		}
	}
	if master < 0 {
		return -1, ms, "no master"
	}
	for i, s := range sts {
		if s.leader() != ms.ID {
			return -1, ms, fmt.Sprintf("%s names leader %q, not %q", c.nodes[i].Name, s.leader(), ms.ID)
		}
	}
	return master, ms, ""
}

// waitStable waits until stableMaster holds.
func (c *cluster) waitStable(timeout time.Duration) (int, status, error) {
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		m, s, w := c.stableMaster()
		if m >= 0 {
			return m, s, nil
		}
		why = w
		time.Sleep(20 * time.Millisecond)
	}
	return -1, status{}, fmt.Errorf("no stable master within %v: %s", timeout, why)
}

// waitConverged waits until node i is a sentinel and its lastId has
// reached the master's commitId (sampled before each look at node i).
func (c *cluster) waitConverged(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		commit := uint64(0)
		found := false
		for j, nd := range c.nodes {
			if j == i || !c.running(j) {
				continue
			}
			if s, err := statusOf(nd.URL()); err == nil && s.Role == "master" {
				commit, found = s.CommitID, true
				break
			}
		}
		s, err := statusOf(c.nodes[i].URL())
		switch {
		case !found:
			why = "no master among the other nodes"
		case err != nil:
			why = err.Error()
		case s.Role != "sentinel":
			why = fmt.Sprintf("%s is %q", c.nodes[i].Name, s.Role)
		case s.LastID < commit:
			why = fmt.Sprintf("%s lastId %d < master commitId %d", c.nodes[i].Name, s.LastID, commit)
		default:
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not converge within %v: %s", c.nodes[i].Name, timeout, why)
}

// logMsg is one /get-all item.
type logMsg struct {
	ID      uint64 `json:"id"`
	Message string `json:"message"`
}

func getAll(url string) ([]logMsg, error) {
	hc := &http.Client{Timeout: 2 * time.Minute}
	resp, err := hc.Get(url + "/get-all")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s/get-all: %d %s", url, resp.StatusCode, b)
	}
	var out []logMsg
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}
