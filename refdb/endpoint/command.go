package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"
)

// ErrUsage marks command-line errors (exit status 2).
var ErrUsage = errors.New("usage")

// Command is `refdb endpoint`: it parses args, binds both endpoints, prints
// "listening WRITER READER" on stdout and follows the control plane until ctx ends.
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("refdb endpoint", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.WriterListen, "writer-listen", "127.0.0.1:3406", "writer endpoint address")
	fs.StringVar(&cfg.ReaderListen, "reader-listen", "127.0.0.1:3407", "reader endpoint address")
	fs.StringVar(&cfg.Control, "control", "http://127.0.0.1:3480", "control plane admin URL")
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level: %w", ErrUsage, err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("proc", "endpoint")
	e, err := Listen(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening %s %s\n", e.WriterAddr(), e.ReaderAddr())
	return e.Run(ctx)
}
