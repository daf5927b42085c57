//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"time"
)

// Fault is one kind of failure. Inject breaks something (remembering what);
// Heal repairs exactly that. A run calls Inject, waits, then Heal.
type Fault interface {
	Name() string
	// needs is what the fault needs of the cluster's network (0: nothing).
	needs() netCaps
	Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error)
	Heal(ctx context.Context, c *cluster) error
}

// allFaults are the kinds a run draws from, in a fixed order (the seed
// permutes them).
func allFaults() []Fault {
	return []Fault{
		&killRestart{}, &pause{}, &isolate{}, &split{}, &cutLink{}, &restartAll{}, &pauseMajorityKillMaster{},
	}
}

// target picks the master with probability 1/2 (when there is one), else a
// random node.
func target(c *cluster, rng *rand.Rand) int {
	if rng.Intn(2) == 0 {
		if m := c.master(); m >= 0 {
			return m
		}
	}
	return rng.Intn(len(c.nodes))
}

// killRestart: kill -9 (docker kill) one node; Heal starts it again with the same
// environment and data directory.
type killRestart struct{ victim int }

func (f *killRestart) Name() string   { return "kill9-restart" }
func (f *killRestart) needs() netCaps { return 0 }
func (f *killRestart) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	f.victim = target(c, rng)
	c.kill(f.victim)
	return "kill -9 " + c.nodes[f.victim].name, nil
}
func (f *killRestart) Heal(ctx context.Context, c *cluster) error {
	return c.startAndWait(ctx, f.victim)
}

// pause: SIGSTOP (docker pause) one node; Heal sends SIGCONT.
type pause struct{ victim int }

func (f *pause) Name() string   { return "sigstop" }
func (f *pause) needs() netCaps { return 0 }
func (f *pause) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	f.victim = target(c, rng)
	return "SIGSTOP " + c.nodes[f.victim].name, c.pause(f.victim)
}
func (f *pause) Heal(ctx context.Context, c *cluster) error {
	return c.resume(f.victim)
}

// isolate: take one node's cable out of the switch, or disconnect its
// container from the compose network (nobody, the test clients included,
// reaches it).
type isolate struct{ victim int }

func (f *isolate) Name() string   { return "isolate" }
func (f *isolate) needs() netCaps { return capIsolate }
func (f *isolate) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	f.victim = target(c, rng)
	return "isolate " + c.nodes[f.victim].name, c.net.isolate(f.victim)
}
func (f *isolate) Heal(ctx context.Context, c *cluster) error { return c.net.healAll() }

// split: partition the nodes into a minority and a majority (1|2, 2|3);
// the test clients still reach both sides, so the minority side's answers
// are observed too. The master is on the minority side half of the time.
type split struct{}

func (f *split) Name() string   { return "split" }
func (f *split) needs() netCaps { return capFilter }
func (f *split) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	n := len(c.nodes)
	perm := rng.Perm(n)
	if m := c.master(); m >= 0 && rng.Intn(2) == 0 {
		// Put the master first: it lands in the minority.
		for k, v := range perm {
			if v == m {
				perm[0], perm[k] = perm[k], perm[0]
			}
		}
	}
	minority, majority := perm[:(n-1)/2], perm[(n-1)/2:]
	for _, i := range minority {
		if err := c.net.drop(i, majority, true); err != nil {
			return "", err
		}
	}
	for _, i := range majority {
		if err := c.net.drop(i, minority, true); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("split %v | %v", c.names(minority), c.names(majority)), nil
}
func (f *split) Heal(ctx context.Context, c *cluster) error { return c.net.healAll() }

// cutLink: the one-way cut of the link master → one sentinel: the sentinel
// drops every packet from the master's address (iptables INPUT in the
// sentinel's namespace); every other link works. Inject checks that the
// cut is effective: the master must see the sentinel go unhealthy.
type cutLink struct{}

func (f *cutLink) Name() string   { return "cut-master-link" }
func (f *cutLink) needs() netCaps { return capFilter }
func (f *cutLink) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	m := c.master()
	if m < 0 {
		m = rng.Intn(len(c.nodes))
	}
	s := (m + 1 + rng.Intn(len(c.nodes)-1)) % len(c.nodes)
	if err := c.net.drop(s, []int{m}, false); err != nil {
		return "", err
	}
	desc := fmt.Sprintf("drop %s → %s (one way)", c.nodes[m].name, c.nodes[s].name)
	// Verify: within 2 s the master marks the sentinel not healthy (or
	// loses its role).
	sentinelID := c.nodes[s].memberID
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		st, err := getStatus(c.nodes[m].url())
		if err == nil && st.Role != "master" {
			return desc + "; verified (the master stepped down)", nil
		}
		for _, mem := range st.Members {
			if mem.ID == sentinelID && mem.Health != "" && mem.Health != "healthy" {
				return desc + "; verified (master sees " + mem.Health + ")", nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return desc + "; NOT verified: the master still reports the sentinel healthy after 2s", nil
}
func (f *cutLink) Heal(ctx context.Context, c *cluster) error { return c.net.healAll() }

// restartAll: kill -9 every node at once; Heal starts them all.
type restartAll struct{}

func (f *restartAll) Name() string   { return "restart-all" }
func (f *restartAll) needs() netCaps { return 0 }
func (f *restartAll) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	for i := range c.nodes {
		c.kill(i)
	}
	return "kill -9 every node", nil
}
func (f *restartAll) Heal(ctx context.Context, c *cluster) error {
	return c.startAndWait(ctx, c.all()...)
}

// pauseMajorityKillMaster: SIGSTOP a majority of the sentinels, let the
// master take writes it cannot commit for a moment, kill -9 the master,
// then SIGCONT the sentinels (they elect a master among themselves);
// Heal restarts the old master. A correct master acknowledges no majority
// write in that window; a master that counts acks it never got does, and
// loses them.
type pauseMajorityKillMaster struct {
	paused []int
	master int
}

func (f *pauseMajorityKillMaster) Name() string   { return "pause-majority-kill-master" }
func (f *pauseMajorityKillMaster) needs() netCaps { return 0 }
func (f *pauseMajorityKillMaster) Inject(ctx context.Context, c *cluster, rng *rand.Rand) (string, error) {
	f.master, f.paused = c.master(), nil
	if f.master < 0 {
		f.master = rng.Intn(len(c.nodes))
	}
	n := len(c.nodes)
	var others []int
	for _, k := range rng.Perm(n) {
		if k != f.master {
			others = append(others, k)
		}
	}
	f.paused = others[:n-n/2] // the master is left without a majority
	for _, i := range f.paused {
		if err := c.pause(i); err != nil {
			return "", err
		}
	}
	time.Sleep(time.Duration(200+rng.Intn(300)) * time.Millisecond)
	c.kill(f.master)
	for _, i := range f.paused {
		c.resume(i)
	}
	return fmt.Sprintf("SIGSTOP %v, kill -9 master %s, SIGCONT", c.names(f.paused), c.nodes[f.master].name), nil
}
func (f *pauseMajorityKillMaster) Heal(ctx context.Context, c *cluster) error {
	return c.startAndWait(ctx, f.master)
}
