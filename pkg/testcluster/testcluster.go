// Package testcluster runs replog nodes as local processes for the
// real-process tests (test/e2e), the chaos suite (test/chaos) and the
// failover benchmark: each node's addresses, files and environment, and a
// handle that starts it (again, with the same data), kills, signals and
// watches it. It never calls testing.T: callers judge errors.
package testcluster

import (
	"fmt"
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

// FreePorts reserves n distinct free TCP ports on 127.0.0.1 (free when it
// returns; a test takes them at once).
func FreePorts(n int) ([]int, error) {
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

// Addr is where a node listens and is reached.
type Addr struct {
	Host       string
	HTTP, GRPC int
}

// Node is one replog process: where it is reached, its data directory,
// its log file and its environment, the same at every start.
type Node struct {
	Name    string
	Addr    Addr
	DataDir string
	LogPath string
	Env     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// URL is the node's HTTP base URL.
func (n *Node) URL() string {
	return "http://" + net.JoinHostPort(n.Addr.Host, strconv.Itoa(n.Addr.HTTP))
}

// GRPC is the node's gRPC address, which is also its member id.
func (n *Node) GRPC() string { return net.JoinHostPort(n.Addr.Host, strconv.Itoa(n.Addr.GRPC)) }

// NewNode describes a node named name at a with its files under dir:
// JSON logs at info level, FSYNC=always, plus extra.
func NewNode(dir, name string, a Addr, extra ...string) *Node {
	n := &Node{Name: name, Addr: a, DataDir: filepath.Join(dir, name), LogPath: filepath.Join(dir, name+".log")}
	n.Env = append([]string{
		"PORT=" + strconv.Itoa(a.HTTP),
		"GRPC_PORT=" + strconv.Itoa(a.GRPC),
		"ADVERTISE_HOST=" + a.Host,
		"DATA_DIR=" + n.DataDir,
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
		"FSYNC=always",
	}, extra...)
	return n
}

// Loopback is n addresses on 127.0.0.1 with free ports.
func Loopback(n int) ([]Addr, error) {
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	out := make([]Addr, n)
	for i := range out {
		out[i] = Addr{"127.0.0.1", ports[2*i], ports[2*i+1]}
	}
	return out, nil
}

// Bootstrap describes a cluster at addrs with its files under dir: node0
// starts as master with every other node in SENTINELS, the others as
// sentinels. extra(i), if not nil, adds to node i's environment.
func Bootstrap(dir string, addrs []Addr, extra func(i int) []string) []*Node {
	var sentinels []string
	for _, a := range addrs[1:] {
		sentinels = append(sentinels, net.JoinHostPort(a.Host, strconv.Itoa(a.GRPC)))
	}
	nodes := make([]*Node, len(addrs))
	for i, a := range addrs {
		env := []string{"ROLE=sentinel"}
		if i == 0 {
			env = []string{"ROLE=master", "SENTINELS=" + strings.Join(sentinels, ",")}
		}
		if extra != nil {
			env = append(env, extra(i)...)
		}
		nodes[i] = NewNode(dir, fmt.Sprintf("node%d", i), a, env...)
	}
	return nodes
}

// Start launches the node with cmd (exec.Command(binary), or a wrapper
// such as `ip netns exec NS binary`), its environment added to this
// process's and its output appended to LogPath. A running node is left
// alone.
func (n *Node) Start(cmd *exec.Cmd) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "{\"harness\":\"start %s at %s\"}\n", n.Name, time.Now().Format(time.RFC3339Nano))
	cmd.Env = append(append(os.Environ(), cmd.Env...), n.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.paused = cmd, exited, false
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	return nil
}

// Kill sends SIGKILL (which ends a stopped process too) and returns once
// the process is gone. A node not started is left alone.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd, n.paused = nil, false
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Terminate sends SIGTERM and waits up to timeout for the exit, killing
// the process after that; it returns how long the exit took and whether
// it came by itself.
func (n *Node) Terminate(timeout time.Duration) (time.Duration, bool) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return 0, true
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		n.mu.Lock()
		if n.cmd == cmd {
			n.cmd, n.paused = nil, false
		}
		n.mu.Unlock()
		return time.Since(t0), true
	case <-time.After(timeout):
		n.Kill()
		return time.Since(t0), false
	}
}

// Signal sends sig to the running process (SIGSTOP and SIGCONT are
// remembered: see Paused).
func (n *Node) Signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.Name)
	}
	if err := syscall.Kill(n.cmd.Process.Pid, sig); err != nil {
		return err
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return nil
}

// State tells whether the node was started (and not killed since),
// whether its process has ended (with how), and whether it is paused.
func (n *Node) State() (started, exited bool, how string, paused bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false, false, "", false
	}
	select {
	case <-n.exited:
		return true, true, fmt.Sprintf("exit %v", n.cmd.ProcessState), n.paused
	default:
		return true, false, "", n.paused
	}
}

// Alive reports whether the process runs (paused or not).
func (n *Node) Alive() bool {
	started, exited, _, _ := n.State()
	return started && !exited
}

// WaitHealthy waits until the node answers GET /health, failing early if
// its process ends.
func (n *Node) WaitHealthy(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if started, exited, how, _ := n.State(); !started || exited {
			return fmt.Errorf("%s is not running (%s); see %s", n.Name, how, n.LogPath)
		}
		if resp, err := hc.Get(n.URL() + "/health"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer /health within %v; see %s", n.Name, timeout, n.LogPath)
}

// TailLog is the last max bytes of the node's log.
func (n *Node) TailLog(max int) []byte {
	b, _ := os.ReadFile(n.LogPath)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return b
}
