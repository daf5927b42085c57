// Command replog runs one node of a replog cluster (master or sentinel:
// the role is elected; ROLE only says how a brand-new node starts), and
// holds the operator's commands.
//
//	replog                          run a node configured by environment and flags
//	replog healthcheck              exit 0 if the local node answers GET /health
//	replog status [-node URL]       a node's role, term, master and members
//	replog remove-member [-node URL] ID
//	replog force-reconfigure [-node URL] [-members ID,...] -yes
//	                                disaster recovery (docs/operations.md)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/replog/replog/pkg/config"
	"github.com/replog/replog/pkg/node"
)

func main() {
	if len(os.Args) > 1 {
		if cmd, ok := commands[os.Args[1]]; ok {
			os.Exit(cmd(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	cfg, err := config.Load(os.Args[1:], os.Environ())
	if errors.Is(err, config.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replog:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	n, err := node.New(cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		os.Exit(1)
	}
	if err := n.Start(); err != nil {
		log.Error().Err(err).Msg("cannot start")
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info().Str("signal", s.String()).Msg("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		<-sig
		log.Warn().Msg("second signal: stopping at once")
		n.Stop()
		os.Exit(1)
	}()
	n.Shutdown(ctx)
}

func newLogger(cfg config.Config) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if isatty.IsTerminal(os.Stderr.Fd()) {
			format = "console"
		}
	}
	var l zerolog.Logger
	if format == "console" {
		l = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"})
	} else {
		l = zerolog.New(os.Stderr)
	}
	return l.Level(level).With().Timestamp().Logger()
}
