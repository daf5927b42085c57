//go:build chaos

package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/replog/replog/pkg/testcluster"
)

// procRunner runs the nodes as local processes, on loopback or each in its
// netlab namespace.
type procRunner struct {
	bin   string
	lab   *netlab // nil: loopback
	procs []*testcluster.Node
}

// newProcCluster prepares n processes (node0 bootstraps as master) under
// dir, in the netlab when lab is not nil.
func newProcCluster(bin, dir string, n int, lab *netlab) (*cluster, error) {
	r := &procRunner{bin: bin, lab: lab}
	c := &cluster{run: r}
	addrs := make([]testcluster.Addr, n)
	if lab != nil {
		c.net = lab
		for i := range addrs {
			addrs[i] = testcluster.Addr{Host: nodeIP(i), HTTP: 8080, GRPC: 9090}
		}
	} else {
		var err error
		if addrs, err = testcluster.Loopback(n); err != nil {
			return nil, err
		}
	}
	r.procs = testcluster.Bootstrap(dir, addrs, func(int) []string {
		return []string{"HEARTBEAT_INTERVAL=50ms", "ELECTION_TIMEOUT_MIN=300ms", "ELECTION_TIMEOUT_MAX=600ms"}
	})
	for _, p := range r.procs {
		c.nodes = append(c.nodes, &node{name: p.Name, base: p.URL(), memberID: p.GRPC()})
	}
	return c, nil
}

func (r *procRunner) start(i int) error {
	if r.lab != nil {
		// ip netns exec execs the binary in place: the pid is replog's.
		return r.procs[i].Start(r.lab.command(i, r.bin))
	}
	return r.procs[i].Start(exec.Command(r.bin))
}

func (r *procRunner) kill(i int)         { r.procs[i].Kill() }
func (r *procRunner) pause(i int) error  { return r.procs[i].Signal(syscall.SIGSTOP) }
func (r *procRunner) resume(i int) error { return r.procs[i].Signal(syscall.SIGCONT) }

func (r *procRunner) state(i int) (nodeState, string) {
	switch started, exited, how, paused := r.procs[i].State(); {
	case !started:
		return stateDown, ""
	case exited:
		return stateCrashed, how
	case paused:
		return statePaused, ""
	default:
		return stateUp, ""
	}
}

func (r *procRunner) stopAll() {
	for _, p := range r.procs {
		p.Kill()
	}
}

// copyLogs copies every node's log into dir.
func (r *procRunner) copyLogs(dir string) {
	os.MkdirAll(dir, 0o755)
	for _, p := range r.procs {
		if b, err := os.ReadFile(p.LogPath); err == nil {
			os.WriteFile(filepath.Join(dir, p.Name+".log"), b, 0o644)
		}
	}
}
