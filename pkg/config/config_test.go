package config

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is an environment that validates, so each row changes one thing.
var base = []string{"ADVERTISE_HOST=node1", "LOG_FORMAT=json"}

func loadEnv(t *testing.T, args []string, vars ...string) (Config, error) {
	t.Helper()
	var out bytes.Buffer
	return load(args, append(append([]string{}, base...), vars...), &out)
}

func TestDefaults(t *testing.T) {
	c, err := loadEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Role: "sentinel", Port: 8080, GRPCPort: 9090, AdvertiseHost: "node1",
		HeartbeatInterval: 50 * time.Millisecond, ElectionTimeoutMin: 300 * time.Millisecond,
		ElectionTimeoutMax: 600 * time.Millisecond, MaxMissedHeartbeats: 3,
		Fsync: "always", LogLevel: "info", LogFormat: "json", MaxBodyBytes: 1 << 20,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.ID() != "node1:9090" {
		t.Errorf("ID = %q", c.ID())
	}
	if got := c.ResolvedDataDir(); got != filepath.Join("data", "node1_9090") {
		t.Errorf("ResolvedDataDir = %q", got)
	}
}

func TestEnvParsing(t *testing.T) {
	tests := []struct {
		vars  []string
		check func(c Config) bool
	}{
		{[]string{"ROLE=master"}, func(c Config) bool { return c.Role == "master" }},
		{[]string{"ROLE= Master "}, func(c Config) bool { return c.Role == "master" }},
		{[]string{"PORT=5555", "GRPC_PORT=6666"}, func(c Config) bool { return c.Port == 5555 && c.GRPCPort == 6666 }},
		{[]string{"SENTINELS=s1:9091, s2:9092,,"}, func(c Config) bool {
			return reflect.DeepEqual(c.Sentinels, []string{"s1:9091", "s2:9092"})
		}},
		{[]string{"SENTINELS=a@s1:9091,b@[::1]:9092"}, func(c Config) bool { return len(c.Sentinels) == 2 }},
		{[]string{"SENTINELS="}, func(c Config) bool { return len(c.Sentinels) == 0 }},
		{[]string{"PEERS=host:5555,http://h2:5556/"}, func(c Config) bool { return len(c.Peers) == 2 }},
		{[]string{"SERVER_ID=server1"}, func(c Config) bool {
			return c.ID() == "server1" && c.ResolvedDataDir() == filepath.Join("data", "server1")
		}},
		{[]string{"DATA_DIR=/var/lib/replog"}, func(c Config) bool { return c.ResolvedDataDir() == "/var/lib/replog" }},
		{[]string{"HEARTBEAT_INTERVAL=10ms", "ELECTION_TIMEOUT_MIN=20ms", "ELECTION_TIMEOUT_MAX=20ms"}, func(c Config) bool {
			return c.HeartbeatInterval == 10*time.Millisecond && c.ElectionTimeoutMax == 20*time.Millisecond
		}},
		{[]string{"FSYNC=never", "REPLICATION_DELAY=2s"}, func(c Config) bool { return c.Fsync == "never" && c.ReplicationDelay == 2*time.Second }},
		{[]string{"LOG_LEVEL=DEBUG", "LOG_FORMAT=console"}, func(c Config) bool { return c.LogLevel == "debug" && c.LogFormat == "console" }},
		{[]string{"MAX_BODY_BYTES=2048", "CLUSTER_TOKEN=s3cret"}, func(c Config) bool { return c.MaxBodyBytes == 2048 && c.ClusterToken == "s3cret" }},
		{[]string{"PORT="}, func(c Config) bool { return c.Port == 8080 }},
	}
	for i, tt := range tests {
		c, err := loadEnv(t, nil, tt.vars...)
		if err != nil {
			t.Errorf("#%d %v: %v", i, tt.vars, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("#%d %v: got %+v", i, tt.vars, c)
		}
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := loadEnv(t, []string{
		"--role", "master", "--port=7000", "--grpc-port", "7001", "--sentinels", "a:1,b@c:2",
		"--server-id", "x", "--peers", "p:1", "--advertise-host", "h", "--data-dir", "/d",
		"--heartbeat-interval", "20ms", "--election-timeout-min", "100ms", "--election-timeout-max=1s",
		"--max-missed-heartbeats", "5", "--fsync", "never", "--replication-delay", "1s",
		"--log-level", "warn", "--log-format", "console", "--max-body-bytes", "4096",
	}, "ROLE=sentinel", "PORT=1", "GRPC_PORT=2", "SENTINELS=z:9", "HEARTBEAT_INTERVAL=1s")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Role: "master", Port: 7000, GRPCPort: 7001, Sentinels: []string{"a:1", "b@c:2"},
		ServerID: "x", Peers: []string{"p:1"}, AdvertiseHost: "h", DataDir: "/d",
		HeartbeatInterval: 20 * time.Millisecond, ElectionTimeoutMin: 100 * time.Millisecond,
		ElectionTimeoutMax: time.Second, MaxMissedHeartbeats: 5, Fsync: "never",
		ReplicationDelay: time.Second, LogLevel: "warn", LogFormat: "console", MaxBodyBytes: 4096,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := load([]string{"-h"}, []string{"PORT=nope"}, &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	for _, want := range []string{"--grpc-port (env GRPC_PORT, default 9090)", "--heartbeat-interval (env HEARTBEAT_INTERVAL, default 50ms)", "--sentinels (env SENTINELS", "--tls-ca (env TLS_CA"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		vars []string
		want []string // substrings of the error
	}{
		{nil, []string{"ROLE=leader"}, []string{"ROLE", `"leader"`}},
		{nil, []string{"PORT=0"}, []string{"PORT must be from 1 to 65535; got 0"}},
		{nil, []string{"PORT=70000"}, []string{"PORT", "70000"}},
		{nil, []string{"GRPC_PORT=-1"}, []string{"GRPC_PORT", "-1"}},
		{nil, []string{"PORT=abc"}, []string{`PORT="abc" is not a valid integer`}},
		{nil, []string{"PORT=9000", "GRPC_PORT=9000"}, []string{"PORT and GRPC_PORT must differ"}},
		{nil, []string{"HEARTBEAT_INTERVAL=fast"}, []string{`HEARTBEAT_INTERVAL="fast" is not a valid duration`}},
		{nil, []string{"ELECTION_TIMEOUT_MAX=10"}, []string{`ELECTION_TIMEOUT_MAX="10"`}},
		{nil, []string{"HEARTBEAT_INTERVAL=0s"}, []string{"HEARTBEAT_INTERVAL must be positive"}},
		{nil, []string{"ELECTION_TIMEOUT_MIN=90ms"}, []string{"ELECTION_TIMEOUT_MIN (90ms) must be at least twice HEARTBEAT_INTERVAL (50ms)"}},
		{nil, []string{"ELECTION_TIMEOUT_MIN=700ms"}, []string{"ELECTION_TIMEOUT_MIN (700ms) must not exceed ELECTION_TIMEOUT_MAX (600ms)"}},
		{nil, []string{"MAX_MISSED_HEARTBEATS=0"}, []string{"MAX_MISSED_HEARTBEATS", "at least 1"}},
		{nil, []string{"FSYNC=sometimes"}, []string{"FSYNC", `"sometimes"`}},
		{nil, []string{"REPLICATION_DELAY=-1s"}, []string{"REPLICATION_DELAY"}},
		{nil, []string{"SENTINELS=s1"}, []string{"SENTINELS entry 1", "host:port"}},
		{nil, []string{"SENTINELS=s1:9091,s2:http"}, []string{"SENTINELS entry 2", `"http"`}},
		{nil, []string{"SENTINELS=:9091"}, []string{"SENTINELS entry 1", "host"}},
		{nil, []string{"SENTINELS=@s1:9091"}, []string{"SENTINELS entry 1", "id"}},
		{nil, []string{"PEERS=host"}, []string{"PEERS entry 1"}},
		{nil, []string{"SERVER_ID=a b"}, []string{"SERVER_ID"}},
		{nil, []string{"LOG_LEVEL=loud"}, []string{"LOG_LEVEL", `"loud"`}},
		{nil, []string{"LOG_FORMAT=xml"}, []string{"LOG_FORMAT", `"xml"`}},
		{nil, []string{"MAX_BODY_BYTES=0"}, []string{"MAX_BODY_BYTES"}},
		{nil, []string{"TLS_CERT=" + cert}, []string{"TLS_CERT and TLS_KEY must be set together"}},
		{nil, []string{"TLS_CERT=" + cert, "TLS_KEY=" + filepath.Join(dir, "missing.pem")}, []string{"TLS_KEY", "not a readable file"}},
		{nil, []string{"TLS_CA=" + dir}, []string{"TLS_CA", "directory"}},
		{[]string{"--port", "x"}, nil, []string{"--port (env PORT)", `"x"`}},
		{[]string{"--heartbeat-interval=soon"}, nil, []string{"HEARTBEAT_INTERVAL", "duration"}},
		{[]string{"--nope"}, nil, []string{"nope"}},
		{[]string{"extra"}, nil, []string{`unexpected argument "extra"`}},
	}
	for i, tt := range tests {
		_, err := loadEnv(t, tt.args, tt.vars...)
		if err == nil {
			t.Errorf("#%d %v %v: no error", i, tt.args, tt.vars)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("#%d %v %v: error %q lacks %q", i, tt.args, tt.vars, err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("#%d: error %q lacks the package prefix", i, err)
		}
	}
}

func TestSeveralErrorsAtOnce(t *testing.T) {
	_, err := loadEnv(t, nil, "ROLE=x", "FSYNC=y")
	if err == nil || !strings.Contains(err.Error(), "ROLE") || !strings.Contains(err.Error(), "FSYNC") {
		t.Errorf("error %v should name ROLE and FSYNC", err)
	}
}

func TestParseSentinel(t *testing.T) {
	tests := []struct {
		in, id, addr string
		ok           bool
	}{
		{"s1:9091", "", "s1:9091", true},
		{"n2@s2:9092", "n2", "s2:9092", true},
		{"[::1]:9090", "", "[::1]:9090", true},
		{"s1", "", "", false},
		{"s1:0", "", "", false},
		{"s1:99999", "", "", false},
	}
	for i, tt := range tests {
		id, addr, err := ParseSentinel(tt.in)
		if (err == nil) != tt.ok || id != tt.id || addr != tt.addr {
			t.Errorf("#%d ParseSentinel(%q) = %q, %q, %v", i, tt.in, id, addr, err)
		}
	}
	if u, err := PeerURL("h:1"); err != nil || u != "http://h:1" {
		t.Errorf("PeerURL = %q, %v", u, err)
	}
}

func TestCheckDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := CheckDataDir(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("probe left behind: %v", entries)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := CheckDataDir(filepath.Join(file, "sub"))
	if err == nil || !strings.Contains(err.Error(), "DATA_DIR") {
		t.Errorf("CheckDataDir under a file: %v", err)
	}
}

func TestCheckPortFree(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := CheckPortFree(port); err == nil || !strings.Contains(err.Error(), "not free") {
		t.Errorf("busy port: %v", err)
	}
	l.Close()
	if err := CheckPortFree(port); err != nil {
		t.Errorf("freed port: %v", err)
	}
}
