// Command refdb runs the processes of the refdb reference cluster. This build has the storage
// node: `refdb storage --id s1 --az az1 --data DIR --listen 127.0.0.1:PORT --secret S`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	refcluster "github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/storage"
)

const usage = `usage: refdb <command> [flags]

commands:
  storage   run a storage node hosting segments of protection groups
  instance  run a MySQL-protocol DB instance (writer) on the shared volume
  control   run the control plane (heartbeats, failover, admin API, /metrics)
  endpoint  run the writer and reader endpoints (TCP proxies following roles)
  cluster   up|down|status a local cluster (refdb cluster up --dir D)
  failover  planned failover through the control plane (refdb failover --dir D)

Unsafe modes, for proving that checkers catch bugs only: --unsafe-ack-3of6,
--unsafe-read-above-vdl, --unsafe-no-truncation (instance), --unsafe-no-epoch-fencing,
--unsafe-ack-before-fsync (storage); all five on cluster up. Off by default; logged at WARN.
`

// nodeCommands are the long-running processes of a cluster.
var nodeCommands = map[string]bool{"storage": true, "control": true, "endpoint": true, "instance": true}

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

// reexecOK allows a command to re-execute the program (withTimerSlack); only main sets it,
// so tests that call run in-process never replace the test binary.
var reexecOK bool

func main() {
	reexecOK = true
	tuneGC()
	// A node may run in its starter's session (cluster.SessionEnv): a hangup of that
	// session's terminal, or of an orphaned process group, must not end it. Stop it with
	// SIGTERM or SIGINT. Interactive commands keep the default.
	if len(os.Args) > 1 && nodeCommands[os.Args[1]] {
		signal.Ignore(syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "refdb:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// tuneGC trades memory for CPU unless GOGC or GOMEMLIMIT say otherwise: a cluster runs ten
// refdb processes on a few cores, and with Go's default (collect when the heap doubles) the
// writer spent a fifth of its CPU collecting a small, fast-churning heap. Collecting at 4x the
// live heap (GOGC=300), with a 2 GiB soft limit per process (near it the collector works
// harder instead of the heap growing further), cuts that to a few percent.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(2 << 30)
	}
}

// oneProc runs a storage node or the control plane on one OS thread at a time unless
// GOMAXPROCS says otherwise. A local cluster puts ten refdb processes on a few cores; a storage
// node's work is short bursts (decode, append, fsync, ack) where a second P only adds
// cross-thread wake-ups and idle spinning in every process. Measured on 2 cores with sysbench
// through a local cluster: write_only 258 -> 296 TPS, read_write 90 -> 107 TPS, and storage
// CPU per write_only transaction 3.4 -> 2.6 ms. The writer and readers keep every core: their
// SQL work is CPU-bound and parallel (one P there cost point_select two thirds of its QPS).
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: missing command", errUsage)
	}
	switch args[0] {
	case "storage":
		oneProc()
		return runStorage(ctx, args[1:], stderr)
	case "control":
		oneProc()
		return runControl(ctx, args[1:], stderr)
	case "endpoint":
		return runEndpoint(ctx, args[1:], stderr)
	case "cluster":
		return runCluster(ctx, args[1:], stderr)
	case "failover":
		return runFailover(ctx, args[1:], stderr)
	case "instance":
		return runInstance(ctx, args[1:], stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func runStorage(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("refdb storage", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "node id (unique in the cluster), e.g. s1")
	az := fs.String("az", "", "availability zone of the node, e.g. az1")
	data := fs.String("data", "", "data folder for the node's durable log")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	secret := fs.String("secret", "", "cluster secret (or set REFDB_SECRET, or use --secret-file)")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret")
	tick := fs.Duration("tick", 0, "period of background work: gossip, GC (default 50ms)")
	gcWindow := fs.Uint64("gc-window", 1<<20, "LSNs below the VDL whose versions stay readable (Backtrack window)")
	peerAddrs := fs.String("peer-addrs", "", "how this node dials its peers, overriding the addresses the volume gives: id=host:port, comma-separated (per-link proxies)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pprofAddr := fs.String("pprof", "", "serve Go's net/http/pprof profiles on this address (e.g. 127.0.0.1:0; the address is logged)")
	timerSlack := fs.Duration("timer-slack", 5*time.Millisecond, "how late the kernel may wake this node's threads from timed sleeps, so it can batch them (Linux; 0 = the system default); see timerslack_linux.go")
	unsafe := unsafeFlags(fs, "storage")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *timerSlack < 0 {
		return fmt.Errorf("%w: --timer-slack must not be negative", errUsage)
	}
	if reexecOK {
		// Before anything is opened: on success this does not return.
		if err := withTimerSlack(*timerSlack); err != nil {
			fmt.Fprintln(stderr, "refdb storage: running without the timer slack:", err)
		}
	}
	sec, err := resolveSecret(*secret, *secretFile)
	if err != nil {
		return err
	}
	peers, err := parsePeerAddrs(*peerAddrs)
	switch {
	case err != nil:
		return fmt.Errorf("%w: --peer-addrs: %w", errUsage, err)
	case *id == "":
		return fmt.Errorf("%w: --id is required", errUsage)
	case *data == "":
		return fmt.Errorf("%w: --data is required", errUsage)
	case sec == "":
		return fmt.Errorf("%w: a cluster secret is required (--secret, --secret-file or REFDB_SECRET)", errUsage)
	}
	u := unsafe()
	log, err := processLogger(stderr, *logLevel, u, "az", *az)
	if err != nil {
		return err
	}
	stopPprof, err := servePprof(*pprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()
	srv, err := storage.NewServer(storage.ServerConfig{ID: *id, AZ: *az, Dir: *data, Listen: *listen, Secret: []byte(sec),
		Tick: *tick, GCWindow: redo.LSN(*gcWindow), PeerAddrs: peers, Logger: log,
		UnsafeNoEpochFencing: u.NoEpochFencing, UnsafeAckBeforeFsync: u.AckBeforeFsync})
	if err != nil {
		return err
	}
	// The first line on stdout is the address, so a launcher using port 0 learns it.
	fmt.Printf("listening %s\n", srv.Addr())
	if err := srv.Run(ctx); err != nil {
		return err
	}
	log.Info("storage node stopped")
	return nil
}

// unsafeFlags defines the --unsafe-* flags of the modes process owns ("" for all of them)
// and returns a function that reads them after parsing.
func unsafeFlags(fs *pflag.FlagSet, process string) func() refcluster.Unsafe {
	var set []func(*refcluster.Unsafe)
	for _, m := range refcluster.UnsafeModes {
		if process != "" && m.Process != process {
			continue
		}
		on := fs.Bool(m.Flag()[2:], false, "UNSAFE, for testing checkers only: "+m.Breaks)
		set = append(set, func(u *refcluster.Unsafe) {
			if *on {
				m.Set(u)
			}
		})
	}
	return func() refcluster.Unsafe {
		var u refcluster.Unsafe
		for _, f := range set {
			f(&u)
		}
		return u
	}
}

// warnUnsafe logs, loudly, every unsafe mode a process runs with.
// processLogger is the logger of a long-running refdb process at --log-level, with attrs on
// every line; it first warns loudly about any unsafe mode the process runs with.
func processLogger(stderr io.Writer, level string, u refcluster.Unsafe, attrs ...any) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: %w", errUsage, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})).With(attrs...)
	warnUnsafe(log, u)
	return log, nil
}

func warnUnsafe(log *slog.Logger, u refcluster.Unsafe) {
	for _, m := range refcluster.UnsafeModes {
		if m.On(u) {
			log.Warn("UNSAFE MODE ON: this process deliberately breaks the protocol; acknowledged data may be lost",
				"mode", m.Flag(), "breaks", m.Breaks)
		}
	}
}

// resolveSecret picks the cluster secret from --secret, else --secret-file, else
// $REFDB_SECRET, the same way for every subcommand.
func resolveSecret(secret, secretFile string) (string, error) {
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return "", fmt.Errorf("%w: reading --secret-file: %w", errUsage, err)
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		secret = os.Getenv("REFDB_SECRET")
	}
	return secret, nil
}

// parsePeerAddrs parses "s2=127.0.0.1:7002,s3=127.0.0.1:7003" ("" is none).
func parsePeerAddrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("%q: want id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %w", part, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%s given twice", id)
		}
		out[id] = addr
	}
	return out, nil
}
