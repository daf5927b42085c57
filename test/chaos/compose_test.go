//go:build chaos

package chaos

// The same chaos runs against the docker-compose cluster: the containers
// of docker-compose.yml (docker-compose.five.yml for five nodes), built
// from this checkout's Dockerfile, reached through their published ports,
// with docker kill / start, docker pause / unpause and docker network
// disconnect / connect as the faults.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	composeProject = "replogchaos"
	composePort0   = 18180 // host HTTP ports 18180 … 18184
)

// composeCaps: a disconnected container is cut off from everyone; docker
// alone cannot drop chosen links.
const composeCaps = capIsolate

var composeServices = []string{"master", "sentinel1", "sentinel2", "sentinel3", "sentinel4"}

// composeAvailable reports whether a Docker engine and docker-compose
// answer, or why not.
func composeAvailable() (bool, string) {
	for _, tool := range []string{"docker", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, tool + " is not installed"
		}
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return false, "no Docker engine answers: " + strings.TrimSpace(string(out))
	}
	return true, ""
}

// requireCompose skips t without a Docker engine, or fails it under CI=true.
func requireCompose(t *testing.T) {
	t.Helper()
	if ok, why := composeAvailable(); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true requires the compose chaos run: %s", why)
		}
		t.Skip(why)
	}
}

// composeRunner runs the nodes as the services of a compose project.
type composeRunner struct {
	args     []string // docker-compose -p … -f …
	env      []string
	services []string
	ids      []string // container ids
	logf     func(string, ...any)

	mu     sync.Mutex
	down   []bool // stopped by the harness
	paused []bool
}

var (
	imageOnce sync.Once
	imageErr  error
)

// buildImage makes replog:local from this checkout, once per test process
// (the base image first, from the local Go toolchain when no registry can
// be reached: scripts/docker-base-images.sh).
func buildImage(r *composeRunner) error {
	imageOnce.Do(func() {
		if out, err := r.sh(5*time.Minute, "scripts/docker-base-images.sh"); err != nil {
			imageErr = fmt.Errorf("base image: %v\n%s", err, out)
			return
		}
		if out, err := r.compose(10*time.Minute, "build", "master"); err != nil {
			imageErr = fmt.Errorf("docker-compose build: %v\n%s", err, out)
		}
	})
	return imageErr
}

// newComposeCluster starts a fresh compose project of n nodes (3 or 5):
// the master bootstraps with every sentinel, nothing is slowed.
func newComposeCluster(n int, logf func(string, ...any)) (*cluster, error) {
	if n != 3 && n != 5 {
		return nil, fmt.Errorf("the compose cluster has 3 or 5 nodes, not %d", n)
	}
	if ok, why := composeAvailable(); !ok {
		return nil, fmt.Errorf("compose: %s", why)
	}
	r := &composeRunner{services: composeServices[:n], logf: logf,
		down: make([]bool, n), paused: make([]bool, n)}
	r.args = []string{"-p", composeProject, "-f", "docker-compose.yml"}
	r.env = []string{"SLOW_DELAY=0s", "FSYNC=always", "LOG_LEVEL=info", "SENTINELS=", "COMPOSE_PROFILES=", "COMPOSE_FILE=", "COMPOSE_PROJECT_NAME="}
	if n == 5 {
		r.args = append(r.args, "-f", "docker-compose.five.yml", "--profile", "five")
	}
	for i, svc := range []string{"MASTER", "SENTINEL1", "SENTINEL2", "SENTINEL3", "SENTINEL4"} {
		r.env = append(r.env, fmt.Sprintf("%s_HTTP_PORT=%d", svc, composePort0+i))
	}
	if err := buildImage(r); err != nil {
		return nil, err
	}
	// A crashed earlier run's project must not leak in.
	r.compose(2*time.Minute, "down", "-v", "--remove-orphans")
	for i := 0; i < n; i++ {
		if resp, err := probe.Get(fmt.Sprintf("http://127.0.0.1:%d/", composePort0+i)); err == nil {
			resp.Body.Close()
			return nil, fmt.Errorf("something already answers on 127.0.0.1:%d", composePort0+i)
		}
	}
	if out, err := r.compose(3*time.Minute, append([]string{"up", "-d", "--no-build"}, r.services...)...); err != nil {
		r.stopAll()
		return nil, fmt.Errorf("docker-compose up: %v\n%s", err, out)
	}
	c := &cluster{run: r, net: &dockerNet{r: r, cut: map[int]bool{}}}
	for i, svc := range r.services {
		out, err := r.compose(time.Minute, "ps", "-q", svc)
		id := strings.TrimSpace(out)
		if err != nil || id == "" {
			r.stopAll()
			return nil, fmt.Errorf("no container for %s: %v %s", svc, err, out)
		}
		r.ids = append(r.ids, id)
		c.nodes = append(c.nodes, &node{name: svc,
			base: "http://127.0.0.1:" + strconv.Itoa(composePort0+i), memberID: svc + ":9090"})
	}
	return c, nil
}

// compose runs docker-compose with the project's files and environment,
// from the module root.
func (r *composeRunner) compose(timeout time.Duration, args ...string) (string, error) {
	return r.sh(timeout, "docker-compose", append(append([]string{}, r.args...), args...)...)
}

func (r *composeRunner) docker(args ...string) (string, error) {
	return r.sh(time.Minute, "docker", args...)
}

func (r *composeRunner) sh(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), err
}

func (r *composeRunner) start(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down[i] {
		if st, _ := r.inspect(i); st == "running" || st == "paused" {
			return nil
		}
	}
	if out, err := r.docker("start", r.ids[i]); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	r.down[i], r.paused[i] = false, false
	return nil
}

// kill is docker kill (SIGKILL, a paused container too), then docker wait
// until the container has stopped.
func (r *composeRunner) kill(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[i], r.paused[i] = true, false
	if out, err := r.docker("kill", r.ids[i]); err != nil && !strings.Contains(out, "is not running") {
		r.logf("docker kill %s: %v: %s", r.services[i], err, strings.TrimSpace(out))
	}
	r.docker("wait", r.ids[i])
}

func (r *composeRunner) pause(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, err := r.docker("pause", r.ids[i]); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	r.paused[i] = true
	return nil
}

func (r *composeRunner) resume(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, err := r.docker("unpause", r.ids[i]); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	r.paused[i] = false
	return nil
}

// inspect is the container's status (running, paused, exited, …) and exit
// code.
func (r *composeRunner) inspect(i int) (string, string) {
	out, err := r.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", r.ids[i])
	if err != nil {
		return "unknown", strings.TrimSpace(out)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return "unknown", out
	}
	return f[0], f[1]
}

func (r *composeRunner) state(i int) (nodeState, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down[i] {
		return stateDown, ""
	}
	switch st, code := r.inspect(i); st {
	case "running":
		return stateUp, ""
	case "paused":
		return statePaused, ""
	default:
		return stateCrashed, fmt.Sprintf("container %s, exit code %s", st, code)
	}
}

// copyLogs writes each container's output (docker logs) into dir.
func (r *composeRunner) copyLogs(dir string) {
	os.MkdirAll(dir, 0o755)
	for i, svc := range r.services {
		if i < len(r.ids) {
			out, _ := r.docker("logs", r.ids[i])
			os.WriteFile(filepath.Join(dir, svc+".log"), []byte(out), 0o644)
		}
	}
}

// stopAll removes the project: containers, network and volumes.
func (r *composeRunner) stopAll() {
	if out, err := r.compose(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "1"); err != nil {
		r.logf("docker-compose down: %v: %s", err, out)
	}
}

// dockerNet cuts containers off the project's network with docker network
// disconnect, and puts them back (with their service name as DNS alias,
// which is how the other nodes reach them).
type dockerNet struct {
	r   *composeRunner
	mu  sync.Mutex
	cut map[int]bool
}

func (d *dockerNet) network() string { return composeProject + "_default" }

func (d *dockerNet) caps() netCaps { return composeCaps }

func (d *dockerNet) isolate(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if out, err := d.r.docker("network", "disconnect", "-f", d.network(), d.r.ids[i]); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	d.cut[i] = true
	return nil
}

func (d *dockerNet) drop(i int, peers []int, both bool) error {
	return fmt.Errorf("docker networks cannot drop chosen links")
}

func (d *dockerNet) healAll() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	for i := range d.cut {
		out, err := d.r.docker("network", "connect", "--alias", d.r.services[i], d.network(), d.r.ids[i])
		if err != nil && !strings.Contains(out, "already exists") {
			if first == nil {
				first = fmt.Errorf("%v: %s", err, out)
			}
			continue
		}
		delete(d.cut, i)
	}
	return first
}

// TestChaosCompose is the bounded pass against the compose cluster: the
// five-node profile (docker-compose.five.yml; the three-node file is what
// scripts/compose-test.sh runs), built from this checkout, every fault
// docker can make twice.
func TestChaosCompose(t *testing.T) {
	requireCompose(t)
	seed := baseSeed()
	spec := runSpec{nodes: 5, seed: seed, compose: true, label: "compose-n5"}
	kinds, _ := availableFaults(spec, composeCaps)
	spec.faults = 2 * len(kinds)
	t.Logf("seed %d (replay with -seed %d -nodes 5 -compose)", seed, seed)
	report(t, runChaos(t, spec))
}
