// Command aurorabench runs generated workloads against a database cluster
// while injecting faults, checks the history (linearizability, bank and set
// invariants, lost writes), measures latency, throughput and replica lag, and
// writes a results folder with an HTML report.
//
// Exit status: 0 every check valid; 1 a check found an anomaly; 2 usage or
// setup error. The last line printed is a one-line summary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

const (
	exitValid   = 0
	exitInvalid = 1
	exitUsage   = 2
)

// usageError is a bad flag, argument or setup problem: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

const topUsage = `aurorabench: benchmark and chaos-test replicated databases.

Usage:
  aurorabench run     [flags]   run a workload against a target and check it
  aurorabench compare [flags]   run the same workloads on several targets, side by side
  aurorabench check   DIR       re-check a stored history
  aurorabench report  DIR       re-render DIR/report.html
  aurorabench help    COMMAND   show a command's flags

Exit status: 0 all checks valid, 1 an anomaly was found, 2 usage or setup error.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	var err error
	switch args[0] {
	case "run":
		code, err = cmdRun(ctx, args[1:], stdout, stderr)
	case "compare":
		code, err = cmdCompare(ctx, args[1:], stdout, stderr)
	case "check":
		code, err = cmdCheck(ctx, args[1:], stdout, stderr)
	case "report":
		code, err = cmdReport(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 {
			return realMain([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, topUsage)
		return exitValid
	default:
		err = usagef("unknown command %q (run, compare, check, report)", args[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "aurorabench: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			return exitUsage
		}
		if code == 0 {
			code = exitUsage
		}
	}
	return code
}

// parseFlags parses a subcommand's flags: --help stops with exit 0, a bad flag with a usage
// error (exit 2).
func parseFlags(fs *pflag.FlagSet, args []string) (code int, stop bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitValid, true, nil
		}
		return exitUsage, true, usageError{err}
	}
	return 0, false, nil
}
