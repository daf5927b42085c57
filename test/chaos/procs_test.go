//go:build chaos

package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one replog process: its configuration and, while it runs, the
// process.
type proc struct {
	name    string
	env     []string
	dataDir string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// procRunner runs the nodes as local processes, on loopback or each in its
// netlab namespace.
type procRunner struct {
	bin   string
	lab   *netlab // nil: loopback
	procs []*proc
}

// newProcCluster prepares n processes (node0 bootstraps as master) under
// dir, in the netlab when lab is not nil.
func newProcCluster(bin, dir string, n int, lab *netlab, logf func(string, ...any)) (*cluster, error) {
	r := &procRunner{bin: bin, lab: lab}
	c := &cluster{run: r, logf: logf}
	if lab != nil {
		c.net = lab
	}
	var ports []int
	if lab == nil {
		var err error
		if ports, err = freePorts(2 * n); err != nil {
			return nil, err
		}
	}
	type addr struct {
		host       string
		http, grpc int
	}
	addrs := make([]addr, n)
	for i := range addrs {
		if lab != nil {
			addrs[i] = addr{nodeIP(i), 8080, 9090}
		} else {
			addrs[i] = addr{"127.0.0.1", ports[2*i], ports[2*i+1]}
		}
	}
	grpcOf := func(a addr) string { return net.JoinHostPort(a.host, strconv.Itoa(a.grpc)) }
	var sentinels []string
	for _, a := range addrs[1:] {
		sentinels = append(sentinels, grpcOf(a))
	}
	for i, a := range addrs {
		name := fmt.Sprintf("node%d", i)
		c.nodes = append(c.nodes, &node{idx: i, name: name,
			base: "http://" + net.JoinHostPort(a.host, strconv.Itoa(a.http)), memberID: grpcOf(a)})
		p := &proc{name: name, dataDir: filepath.Join(dir, name), logPath: filepath.Join(dir, name+".log")}
		p.env = []string{
			"PORT=" + strconv.Itoa(a.http),
			"GRPC_PORT=" + strconv.Itoa(a.grpc),
			"ADVERTISE_HOST=" + a.host,
			"DATA_DIR=" + p.dataDir,
			"LOG_FORMAT=json",
			"LOG_LEVEL=info",
			"FSYNC=always",
			"HEARTBEAT_INTERVAL=50ms",
			"ELECTION_TIMEOUT_MIN=300ms",
			"ELECTION_TIMEOUT_MAX=600ms",
		}
		if i == 0 {
			p.env = append(p.env, "ROLE=master", "SENTINELS="+strings.Join(sentinels, ","))
		} else {
			p.env = append(p.env, "ROLE=sentinel")
		}
		r.procs = append(r.procs, p)
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

func (r *procRunner) start(i int) error {
	p := r.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "{\"chaos\":\"start %s at %s\"}\n", p.name, time.Now().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if r.lab != nil {
		// ip netns exec execs the binary in place: the pid is replog's.
		cmd = r.lab.command(i, r.bin)
	} else {
		cmd = exec.Command(r.bin)
	}
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.paused = cmd, false
	exited := make(chan struct{})
	p.exited = exited
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	return nil
}

// kill sends SIGKILL (which ends a stopped process too) and waits for the
// process to be gone.
func (r *procRunner) kill(i int) {
	p := r.procs[i]
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd, p.paused = nil, false
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func (r *procRunner) pause(i int) error  { return r.signal(i, syscall.SIGSTOP) }
func (r *procRunner) resume(i int) error { return r.signal(i, syscall.SIGCONT) }

func (r *procRunner) signal(i int, sig syscall.Signal) error {
	p := r.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		return err
	}
	p.paused = sig == syscall.SIGSTOP
	return nil
}

func (r *procRunner) state(i int) (nodeState, string) {
	p := r.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return stateDown, ""
	}
	select {
	case <-p.exited:
		return stateCrashed, fmt.Sprintf("exit %v", p.cmd.ProcessState)
	default:
	}
	if p.paused {
		return statePaused, ""
	}
	return stateUp, ""
}

func (r *procRunner) stopAll() {
	for i := range r.procs {
		r.kill(i)
	}
}

// copyLogs copies every node's log into dir.
func (r *procRunner) copyLogs(dir string) {
	os.MkdirAll(dir, 0o755)
	for _, p := range r.procs {
		if b, err := os.ReadFile(p.logPath); err == nil {
			os.WriteFile(filepath.Join(dir, p.name+".log"), b, 0o644)
		}
	}
}
