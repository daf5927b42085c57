package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartupErrors: bad configuration stops the binary at once with a
// message naming the problem, never a half-started node.
func TestStartupErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	ports := freePorts(t, 2)
	base := t.TempDir()
	roFile := filepath.Join(base, "file")
	os.WriteFile(roFile, []byte("x"), 0o644)
	ok := []string{fmt.Sprintf("PORT=%d", ports[0]), fmt.Sprintf("GRPC_PORT=%d", ports[1]), "ADVERTISE_HOST=127.0.0.1"}
	cases := []struct {
		name    string
		env     []string
		mention string
	}{
		{"unknown role", []string{"ROLE=boss"}, "ROLE"},
		{"malformed duration", []string{"HEARTBEAT_INTERVAL=fast"}, "HEARTBEAT_INTERVAL"},
		{"election below heartbeat", []string{"ELECTION_TIMEOUT_MIN=10ms"}, "ELECTION_TIMEOUT_MIN"},
		{"bad fsync", []string{"FSYNC=sometimes"}, "FSYNC"},
		{"bad sentinel address", []string{"ROLE=master", "SENTINELS=nohostport"}, "SENTINELS"},
		{"http port in use", []string{fmt.Sprintf("PORT=%d", busyPort)}, "in use"},
		{"grpc port in use", []string{fmt.Sprintf("GRPC_PORT=%d", busyPort)}, "in use"},
		{"data dir not a directory", []string{"DATA_DIR=" + roFile}, "DATA_DIR"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary)
			env := append(append([]string{}, ok...), "DATA_DIR="+filepath.Join(base, fmt.Sprint(i)))
			cmd.Env = append(append(os.Environ(), env...), tc.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("#%d %s: the node kept running instead of refusing to start; output:\n%s", i, tc.name, out.String())
			}
			if err == nil {
				t.Fatalf("#%d %s: exit status 0, want failure; output:\n%s", i, tc.name, out.String())
			}
			if !strings.Contains(out.String(), tc.mention) {
				t.Errorf("#%d %s: output does not mention %q:\n%s", i, tc.name, tc.mention, out.String())
			}
		})
	}
}
