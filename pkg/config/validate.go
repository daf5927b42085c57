package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// Validate checks the configuration and reports every problem, each in a
// sentence naming the variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}

	if c.Role != "master" && c.Role != "sentinel" {
		bad("ROLE must be \"master\" or \"sentinel\"; got %q", c.Role)
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("PORT must be from 1 to 65535; got %d", c.Port)
	}
	if c.GRPCPort < 1 || c.GRPCPort > 65535 {
		bad("GRPC_PORT must be from 1 to 65535; got %d", c.GRPCPort)
	}
	if c.Port == c.GRPCPort {
		bad("PORT and GRPC_PORT must differ; both are %d", c.Port)
	}
	for i, s := range c.Sentinels {
		if _, _, err := ParseSentinel(s); err != nil {
			bad("SENTINELS entry %d %q: %v", i+1, s, err)
		}
	}
	for i, p := range c.Peers {
		if _, err := PeerURL(p); err != nil {
			bad("PEERS entry %d %q: %v", i+1, p, err)
		}
	}
	if c.ServerID != "" && strings.ContainsAny(c.ServerID, " \t\n,@/\\") {
		bad("SERVER_ID must not contain spaces, ',', '@', '/' or '\\'; got %q", c.ServerID)
	}
	if strings.ContainsAny(c.AdvertiseHost, " \t\n,@/") {
		bad("ADVERTISE_HOST must be a host name or address; got %q", c.AdvertiseHost)
	}

	if c.HeartbeatInterval <= 0 {
		bad("HEARTBEAT_INTERVAL must be positive; got %s", c.HeartbeatInterval)
	}
	if c.ElectionTimeoutMin < 2*c.HeartbeatInterval {
		bad("ELECTION_TIMEOUT_MIN (%s) must be at least twice HEARTBEAT_INTERVAL (%s)", c.ElectionTimeoutMin, c.HeartbeatInterval)
	}
	if c.ElectionTimeoutMin > c.ElectionTimeoutMax {
		bad("ELECTION_TIMEOUT_MIN (%s) must not exceed ELECTION_TIMEOUT_MAX (%s)", c.ElectionTimeoutMin, c.ElectionTimeoutMax)
	}
	if c.MaxMissedHeartbeats < 1 {
		bad("MAX_MISSED_HEARTBEATS must be at least 1; got %d", c.MaxMissedHeartbeats)
	}
	if c.Fsync != "always" && c.Fsync != "never" {
		bad("FSYNC must be \"always\" or \"never\"; got %q", c.Fsync)
	}
	if c.ReplicationDelay < 0 {
		bad("REPLICATION_DELAY must not be negative; got %s", c.ReplicationDelay)
	}

	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TLS_CERT and TLS_KEY must be set together")
	}
	for _, f := range []struct{ name, path string }{{"TLS_CERT", c.TLSCert}, {"TLS_KEY", c.TLSKey}, {"TLS_CA", c.TLSCA}} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			bad("%s %q is not a readable file: %v", f.name, f.path, err)
		}
	}

	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		bad("LOG_LEVEL must be trace, debug, info, warn, error, fatal, panic or disabled; got %q", c.LogLevel)
	}
	if c.LogFormat != "" && c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT must be \"json\" or \"console\"; got %q", c.LogFormat)
	}
	if c.MaxBodyBytes < 1 {
		bad("MAX_BODY_BYTES must be at least 1; got %d", c.MaxBodyBytes)
	}
	return errors.Join(errs...)
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("it is a directory")
	}
	return nil
}

// ParseSentinel splits a SENTINELS entry, host:port or id@host:port, into
// the id ("" when not given) and the address. The port must be a number
// from 1 to 65535.
func ParseSentinel(s string) (id, addr string, err error) {
	addr = s
	if i := strings.LastIndex(s, "@"); i >= 0 {
		id, addr = s[:i], s[i+1:]
		if id == "" {
			return "", "", errors.New("the id before '@' is empty")
		}
	}
	if err := checkHostPort(addr); err != nil {
		return "", "", err
	}
	return id, addr, nil
}

// PeerURL turns a PEERS entry, host:port or http(s)://host:port, into a
// base URL.
func PeerURL(s string) (string, error) {
	rest := s
	scheme := "http://"
	for _, p := range []string{"http://", "https://"} {
		if strings.HasPrefix(rest, p) {
			scheme, rest = p, strings.TrimPrefix(rest, p)
		}
	}
	rest = strings.TrimRight(rest, "/")
	if err := checkHostPort(rest); err != nil {
		return "", err
	}
	return scheme + rest, nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("must be host:port")
	}
	if host == "" {
		return errors.New("the host is empty; must be host:port")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("the port %q must be a number from 1 to 65535", port)
	}
	return nil
}

// CheckDataDir makes sure dir exists (creating it) and is writable, by
// writing and removing a probe file.
func CheckDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("config: DATA_DIR %q cannot be created: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("config: DATA_DIR %q is not writable: %w", dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("replog probe\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("config: DATA_DIR %q is not writable: %w", dir, err)
	}
	return nil
}

// CheckPortFree reports whether a TCP port can be listened on.
func CheckPortFree(port int) error {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("config: port %d is not free: %w", port, err)
	}
	return l.Close()
}
