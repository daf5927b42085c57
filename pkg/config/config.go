// Package config reads a replog node's configuration from the environment
// (caarlos0/env) and then from command-line flags, which override it. Every
// variable has a flag named after it in lower kebab case: GRPC_PORT is
// --grpc-port.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is a node's configuration. The help tags feed -h.
type Config struct {
	Role     string `env:"ROLE" envDefault:"sentinel" help:"starting role of a bootstrapping node: master or sentinel"`
	Port     int    `env:"PORT" envDefault:"8080" help:"HTTP port"`
	GRPCPort int    `env:"GRPC_PORT" envDefault:"9090" help:"gRPC (node-to-node) port"`
	// Sentinels are gRPC addresses host:port, optionally id@host:port.
	Sentinels     []string `env:"SENTINELS" envSeparator:"," help:"on a fresh master: the sentinels' gRPC addresses, host:port or id@host:port, comma separated"`
	ServerID      string   `env:"SERVER_ID" help:"stable node id (default ADVERTISE_HOST:GRPC_PORT)"`
	Peers         []string `env:"PEERS" envSeparator:"," help:"HTTP addresses (host:port) of running members to join, comma separated"`
	AdvertiseHost string   `env:"ADVERTISE_HOST" help:"the host other nodes reach this one at (default the hostname)"`
	DataDir       string   `env:"DATA_DIR" help:"where the log and the vote live (default ./data/<id>)"`

	HeartbeatInterval   time.Duration `env:"HEARTBEAT_INTERVAL" envDefault:"50ms" help:"how often the master sends heartbeats"`
	ElectionTimeoutMin  time.Duration `env:"ELECTION_TIMEOUT_MIN" envDefault:"300ms" help:"shortest randomized election timeout (at least 2 heartbeat intervals)"`
	ElectionTimeoutMax  time.Duration `env:"ELECTION_TIMEOUT_MAX" envDefault:"600ms" help:"longest randomized election timeout"`
	MaxMissedHeartbeats int           `env:"MAX_MISSED_HEARTBEATS" envDefault:"3" help:"missed heartbeats before a sentinel is marked unhealthy"`

	Fsync            string        `env:"FSYNC" envDefault:"always" help:"always (group commit) or never (tests and demos only)"`
	ReplicationDelay time.Duration `env:"REPLICATION_DELAY" help:"demo knob: a sentinel waits this long before acknowledging new entries"`

	ClusterToken string `env:"CLUSTER_TOKEN" help:"shared secret for node-to-node calls"`
	TLSCert      string `env:"TLS_CERT" help:"PEM certificate file for node-to-node TLS"`
	TLSKey       string `env:"TLS_KEY" help:"PEM key file for TLS_CERT"`
	TLSCA        string `env:"TLS_CA" help:"PEM CA file that signs the nodes' certificates"`

	LogLevel  string `env:"LOG_LEVEL" envDefault:"info" help:"trace, debug, info, warn, error, fatal, panic or disabled"`
	LogFormat string `env:"LOG_FORMAT" help:"json or console (default console on a terminal, else json)"`

	MaxBodyBytes int64 `env:"MAX_BODY_BYTES" envDefault:"1048576" help:"largest POST /insert body, in bytes"`
}

// ErrHelp is returned by Load after -h or --help printed the usage.
var ErrHelp = flag.ErrHelp

// Load reads the configuration: the environment first (environ, or
// os.Environ() when nil), then the flags in args (without the program
// name), which override it. It fills the computed defaults (ADVERTISE_HOST,
// LOG_FORMAT) and validates the result. After -h it prints the usage to
// stderr and returns ErrHelp.
func Load(args []string, environ []string) (Config, error) {
	return load(args, environ, os.Stderr)
}

func load(args, environ []string, usageOut io.Writer) (Config, error) {
	if environ == nil {
		environ = os.Environ()
	}
	vars := env.ToMap(environ)
	var c Config
	var envErr error
	if err := env.ParseWithOptions(&c, env.Options{Environment: vars}); err != nil {
		// Reported after the flags, so that -h works on a broken environment.
		envErr = rewriteEnvError(err, vars)
	}

	fs := flag.NewFlagSet("replog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	v := reflect.ValueOf(&c).Elem()
	for _, f := range fields() {
		fv := v.Field(f.index)
		f := f
		fs.Func(f.flag, f.help, func(s string) error {
			if err := setValue(fv, s); err != nil {
				return fmt.Errorf("%s (env %s): %q is not a valid %s", "--"+f.flag, f.env, s, typeName(fv.Type()))
			}
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(usageOut)
			return c, ErrHelp
		}
		return c, errors.Join(envErr, fmt.Errorf("config: %w", err))
	}
	if envErr != nil {
		return c, envErr
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("config: unexpected argument %q; every setting is a --flag or an environment variable", fs.Arg(0))
	}

	c.normalize()
	if c.AdvertiseHost == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.AdvertiseHost = host
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
		if isTerminal(os.Stderr) {
			c.LogFormat = "console"
		}
	}
	return c, c.Validate()
}

// normalize trims list entries and lowercases the enumerations.
func (c *Config) normalize() {
	c.Role = strings.ToLower(strings.TrimSpace(c.Role))
	c.Fsync = strings.ToLower(strings.TrimSpace(c.Fsync))
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.Sentinels = cleanList(c.Sentinels)
	c.Peers = cleanList(c.Peers)
}

func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ID is the node's id: SERVER_ID, or ADVERTISE_HOST:GRPC_PORT when unset,
// which is the address a master lists in SENTINELS.
func (c *Config) ID() string {
	if c.ServerID != "" {
		return c.ServerID
	}
	return net.JoinHostPort(c.AdvertiseHost, strconv.Itoa(c.GRPCPort))
}

// ResolvedDataDir is DATA_DIR, or ./data/<id> with ':' replaced by '_'.
func (c *Config) ResolvedDataDir() string {
	if c.DataDir != "" {
		return c.DataDir
	}
	return filepath.Join(".", "data", strings.ReplaceAll(c.ID(), ":", "_"))
}

// field describes one configuration variable.
type field struct {
	index int
	name  string // Go field name
	env   string
	flag  string
	def   string
	help  string
}

func fields() []field {
	t := reflect.TypeOf(Config{})
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("env"), ",")
		if name == "" {
			continue
		}
		out = append(out, field{
			index: i, name: sf.Name, env: name,
			flag: strings.ToLower(strings.ReplaceAll(name, "_", "-")),
			def:  sf.Tag.Get("envDefault"), help: sf.Tag.Get("help"),
		})
	}
	return out
}

// Usage writes every flag with its environment variable and default.
func Usage(w io.Writer) {
	fmt.Fprintln(w, "usage: replog [flags]")
	fmt.Fprintln(w, "Each flag overrides the environment variable named after it.")
	fmt.Fprintln(w)
	for _, f := range fields() {
		def := f.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  --%s (env %s, default %s)\n      %s\n", f.flag, f.env, def, f.help)
	}
}

// setValue parses s into a field of one of the types Config uses.
func setValue(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case int, int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return err
		}
		if v.OverflowInt(n) {
			return errors.New("out of range")
		}
		v.SetInt(n)
	case string:
		v.SetString(s)
	case []string:
		v.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(time.Duration(0)):
		return "duration (like 50ms, 1s or 2m)"
	case reflect.TypeOf(0), reflect.TypeOf(int64(0)):
		return "integer"
	}
	return t.String()
}

// rewriteEnvError turns the env library's errors, which name Go fields,
// into sentences naming the variable and its bad value.
func rewriteEnvError(err error, vars map[string]string) error {
	var errs []error
	var agg env.AggregateError
	if errors.As(err, &agg) {
		errs = agg.Errors
	} else {
		errs = []error{err}
	}
	byName := map[string]field{}
	for _, f := range fields() {
		byName[f.name] = f
	}
	var out []error
	for _, e := range errs {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := byName[pe.Name]; ok {
				out = append(out, fmt.Errorf("config: %s=%q is not a valid %s", f.env, vars[f.env], typeName(pe.Type)))
				continue
			}
		}
		out = append(out, fmt.Errorf("config: %w", e))
	}
	return errors.Join(out...)
}
