//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// node is one replog server of a chaos cluster, however it runs.
type node struct {
	name     string
	base     string // http://host:port, where the test reaches it
	memberID string // the id the other members know it by
}

func (n *node) url() string { return n.base }

// nodeState is what a runner knows of one node.
type nodeState int

const (
	stateDown    nodeState = iota // not running, as the harness left it
	stateUp                       // running
	statePaused                   // SIGSTOPped / docker paused
	stateCrashed                  // ended without the harness stopping it
)

// runner starts, stops and freezes the nodes: local processes (procRunner,
// on loopback or in the netlab) or the containers of a docker-compose
// project (composeRunner).
type runner interface {
	// start launches node i (again, after a kill) with its configuration
	// and data, without waiting for it; a running node is left alone.
	start(i int) error
	// kill stops node i at once (SIGKILL) and returns once it is gone.
	kill(i int)
	pause(i int) error  // SIGSTOP
	resume(i int) error // SIGCONT
	// state is node i's state and, for a crashed node, how it ended.
	state(i int) (nodeState, string)
	copyLogs(dir string)
	stopAll()
}

// netCaps are the network faults a network can make.
type netCaps uint8

const (
	capIsolate netCaps = 1 << iota // cut a node off from everyone
	capFilter                      // drop packets between chosen nodes, one way or both
)

// network cuts links between the nodes (the netlab, or docker networks).
type network interface {
	caps() netCaps
	// isolate cuts node i off from everyone, the test's clients included.
	isolate(i int) error
	// drop makes node i drop packets from (and, if both, to) the peers;
	// the test's clients still reach every node.
	drop(i int, peers []int, both bool) error
	// healAll undoes every cut.
	healAll() error
}

// cluster is a set of replog servers under test.
type cluster struct {
	nodes []*node
	run   runner
	net   network // nil: no network faults
}

func (c *cluster) netCaps() netCaps {
	if c.net == nil {
		return 0
	}
	return c.net.caps()
}

func (c *cluster) start(i int) error   { return c.run.start(i) }
func (c *cluster) kill(i int)          { c.run.kill(i) }
func (c *cluster) pause(i int) error   { return c.run.pause(i) }
func (c *cluster) resume(i int) error  { return c.run.resume(i) }
func (c *cluster) copyLogs(dir string) { c.run.copyLogs(dir) }
func (c *cluster) stopAll()            { c.run.stopAll() }

// waitUp waits (bounded) until node i answers /health.
func (c *cluster) waitUp(ctx context.Context, i int, timeout time.Duration) error {
	nd := c.nodes[i]
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st, how := c.run.state(i); st == stateCrashed {
			return fmt.Errorf("%s exited during start (%s)", nd.name, how)
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

// running reports whether node i is up and not paused.
func (c *cluster) running(i int) bool {
	st, _ := c.run.state(i)
	return st == stateUp
}

func (c *cluster) paused(i int) bool {
	st, _ := c.run.state(i)
	return st == statePaused
}

func (c *cluster) all() []int {
	out := make([]int, len(c.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// exitedOnItsOwn reports whether node i ended without the harness
// stopping it.
func (c *cluster) exitedOnItsOwn(i int) bool {
	st, _ := c.run.state(i)
	return st == stateCrashed
}

// crashed lists the nodes that ended without the harness stopping them.
func (c *cluster) crashed() []string {
	var out []string
	for i, nd := range c.nodes {
		if st, how := c.run.state(i); st == stateCrashed {
			out = append(out, fmt.Sprintf("%s (%s)", nd.name, how))
		}
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
