//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var (
	seedFlag    = flag.Int64("seed", 0, "base seed (0: from the clock); printed by every run")
	nodesFlag   = flag.Int("nodes", 3, "TestChaosReplay: cluster size")
	faultsFlag  = flag.Int("faults", 0, "TestChaosReplay: number of faults (0: one of each kind)")
	duration    = flag.Duration("duration", 0, "TestChaosLong: how long to keep running seeds (e.g. 30m); 0 skips it")
	binFlag     = flag.String("bin", "", "a prebuilt replog binary (default: build ./cmd/replog)")
	composeFlag = flag.Bool("compose", false, "TestChaosReplay: replay a run against the docker-compose cluster")
	netMode     = flag.String("net", "auto", "auto: network namespaces when root and `ip netns` work; off: loopback only")
	linTimeout  = flag.Duration("lin-timeout", 60*time.Second, "time limit of one porcupine check")
)

// binary is the replog binary under test.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	binary = *binFlag
	var dir string
	if binary == "" {
		var err error
		dir, err = os.MkdirTemp("", "replog-chaos-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binary = filepath.Join(dir, "replog")
		build := exec.Command("go", "build", "-o", binary, "../../cmd/replog")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build replog:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	if labLock != nil {
		cleanupStale()
		labLock.Close()
	}
	os.Exit(code)
}

// baseSeed is -seed, or the clock.
func baseSeed() int64 {
	if *seedFlag != 0 {
		return *seedFlag
	}
	return time.Now().UnixNano() % 1_000_000_000
}

// outDir is where a failed run leaves its artifacts: $CHAOS_OUT, or a
// fresh temporary directory (printed).
func outDir(name string) string {
	base := os.Getenv("CHAOS_OUT")
	if base == "" {
		var err error
		if base, err = os.MkdirTemp("", "replog-chaos-out-"); err != nil {
			base = os.TempDir()
		}
	}
	return filepath.Join(base, name)
}
