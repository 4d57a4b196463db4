package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
)

// ErrUsage marks command-line errors (exit status 2).
var ErrUsage = errors.New("usage")

// Command is `refdb control`: it parses args, prints "listening ADDR" on stdout once the
// admin API is bound, and runs until ctx ends.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("refdb control", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:3480", "admin HTTP address")
	fs.StringVar(&cfg.Dir, "dir", "", "cluster folder holding cluster.json (required)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 100*time.Millisecond, "period of each instance's heartbeat")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 250*time.Millisecond, "timeout of one heartbeat")
	fs.IntVar(&cfg.FailAfter, "fail-after", 3, "failed heartbeats in a row that mark a running instance down")
	fs.DurationVar(&cfg.HungAfter, "hung-after", 2*time.Second, "how long a running (not stopped) instance may go unanswered before it is declared down")
	fs.DurationVar(&cfg.StallAfter, "stall-after", 2*time.Second, "how long a writer may report commits making no progress (cut off from storage) before it is failed over")
	fs.DurationVar(&cfg.MaxFailoverLag, "max-failover-lag", time.Second, "largest lag of a planned failover's target")
	fs.DurationVar(&cfg.PromoteTimeout, "promote-timeout", time.Minute, "bound of one promote (recovery included)")
	fs.DurationVar(&cfg.RestartBackoff, "restart-backoff", time.Second, "least time between two restarts of an instance")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	if cfg.Dir == "" {
		return fmt.Errorf("%w: --dir is required", ErrUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %w", ErrUsage, err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("proc", "control")
	c, err := Open(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening %s\n", c.Addr())
	return c.Run(ctx)
}
