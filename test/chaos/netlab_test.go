//go:build chaos

package chaos

// The network lab: one network namespace per node, all joined by a bridge
// that lives in a "switch" namespace of its own (DESIGN.md §7: Docker sets
// the root namespace's FORWARD policy to DROP, so a bridge there would drop
// node-to-node traffic), plus one veth from the root namespace to the switch
// so that the test process reaches every node. Addresses are 10.77.0.0/24
// and exist only inside namespaces this file creates. Every object's name
// starts with labPrefix, so a crashed earlier run's leftovers are found and
// deleted before a new lab is built.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

const (
	labPrefix = "rlchaos"       // namespaces: rlchaos-sw, rlchaos-n1 …
	linkPfx   = "rlcv"          // switch-side veths: rlcv1 …; the root veth is rlcv0
	subnet    = "10.77.0"       // node i (0-based) is 10.77.0.(i+1); the root end is .254
	rootIP    = subnet + ".254" // the test process's address on the lab network
	lockPath  = "/tmp/rlchaos.lock"
)

// netlab is a built lab for n nodes.
type netlab struct {
	n int

	mu     sync.Mutex
	ipRule map[int]bool // nodes with iptables rules installed
}

func run(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func output(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

var (
	labOnce   sync.Once
	labReason string // why the lab is unavailable ("" when it is)
	labLock   *os.File
)

// labAvailable reports whether network namespaces can be used here (root,
// `ip netns` and iptables work); otherwise why not. Tried once per process.
func labAvailable() (bool, string) {
	labOnce.Do(func() {
		if *netMode == "off" {
			labReason = "-net=off"
			return
		}
		if os.Geteuid() != 0 {
			labReason = "not running as root"
			return
		}
		for _, tool := range []string{"ip", "iptables"} {
			if _, err := exec.LookPath(tool); err != nil {
				labReason = tool + " not found"
				return
			}
		}
		// One lab per machine at a time: the names are fixed so that stale
		// ones can be found.
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		}
		if err != nil {
			labReason = "another chaos run holds " + lockPath
			return
		}
		labLock = f
		cleanupStale()
		probe := labPrefix + "-probe"
		if err := run("ip", "netns", "add", probe); err != nil {
			labReason = "ip netns add failed: " + err.Error()
			return
		}
		err = run("ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-s", subnet+".99", "-j", "DROP")
		run("ip", "netns", "del", probe)
		if err != nil {
			labReason = "iptables inside a namespace failed: " + err.Error()
		}
	})
	return labReason == "", labReason
}

// cleanupStale deletes every namespace and root-namespace link whose name
// carries our prefixes (left by a run that crashed).
func cleanupStale() {
	if out, err := output("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], labPrefix+"-") {
				run("ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := output("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(f[1], ":")
			name, _, _ = strings.Cut(name, "@")
			if strings.HasPrefix(name, linkPfx) {
				run("ip", "link", "del", name)
			}
		}
	}
}

func swNS() string         { return labPrefix + "-sw" }
func nodeNS(i int) string  { return fmt.Sprintf("%s-n%d", labPrefix, i+1) }
func nodeIP(i int) string  { return fmt.Sprintf("%s.%d", subnet, i+1) }
func swLink(i int) string  { return fmt.Sprintf("%s%d", linkPfx, i+1) }
func rootLink() string     { return linkPfx + "0" }
func rootPeerLink() string { return linkPfx + "0s" }

// newNetlab builds the switch and n node namespaces. On error everything
// built so far is removed.
func newNetlab(n int) (*netlab, error) {
	cleanupStale()
	l := &netlab{n: n, ipRule: map[int]bool{}}
	steps := [][]string{
		{"ip", "netns", "add", swNS()},
		{"ip", "-n", swNS(), "link", "set", "lo", "up"},
		{"ip", "-n", swNS(), "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", swNS(), "link", "set", "br0", "up"},
		{"ip", "link", "add", rootLink(), "type", "veth", "peer", "name", rootPeerLink()},
		{"ip", "link", "set", rootPeerLink(), "netns", swNS()},
		{"ip", "-n", swNS(), "link", "set", rootPeerLink(), "master", "br0", "up"},
		{"ip", "addr", "add", rootIP + "/24", "dev", rootLink()},
		{"ip", "link", "set", rootLink(), "up"},
	}
	for i := 0; i < n; i++ {
		ns := nodeNS(i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", swLink(i), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", swLink(i), "netns", swNS()},
			[]string{"ip", "-n", swNS(), "link", "set", swLink(i), "master", "br0", "up"},
			[]string{"ip", "-n", ns, "addr", "add", nodeIP(i) + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			l.teardown()
			return nil, err
		}
	}
	return l, nil
}

// teardown deletes everything the lab made (processes inside must be gone).
func (l *netlab) teardown() {
	for i := 0; i < l.n; i++ {
		run("ip", "netns", "del", nodeNS(i))
	}
	run("ip", "link", "del", rootLink())
	run("ip", "netns", "del", swNS())
	cleanupStale()
}

// command runs argv inside node i's namespace.
func (l *netlab) command(i int, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nodeNS(i)}, argv...)...)
}

func (l *netlab) caps() netCaps { return capIsolate | capFilter }

func (l *netlab) isolate(i int) error { return l.setLink(i, false) }

// setLink takes node i's cable out of the switch (up=false) or puts it back.
func (l *netlab) setLink(i int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run("ip", "-n", swNS(), "link", "set", swLink(i), state)
}

// drop makes node i drop packets from (and, if both, to) the given nodes.
// The test process (rootIP) is never blocked.
func (l *netlab) drop(i int, peers []int, both bool) error {
	l.mu.Lock()
	l.ipRule[i] = true
	l.mu.Unlock()
	for _, p := range peers {
		if err := run("ip", "netns", "exec", nodeNS(i), "iptables", "-I", "INPUT", "-s", nodeIP(p), "-j", "DROP"); err != nil {
			return err
		}
		if both {
			if err := run("ip", "netns", "exec", nodeNS(i), "iptables", "-I", "OUTPUT", "-d", nodeIP(p), "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// healAll removes every iptables rule and brings every cable up.
func (l *netlab) healAll() error {
	var first error
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < l.n; i++ {
		if l.ipRule[i] {
			for _, chain := range []string{"INPUT", "OUTPUT"} {
				if err := run("ip", "netns", "exec", nodeNS(i), "iptables", "-F", chain); err != nil && first == nil {
					first = err
				}
			}
			delete(l.ipRule, i)
		}
		if err := l.setLink(i, true); err != nil && first == nil {
			first = err
		}
	}
	return first
}
