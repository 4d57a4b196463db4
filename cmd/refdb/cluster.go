package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	refcluster "github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

const clusterUsage = `usage: refdb cluster up --dir D [--readers N] [--port-base P] [--unsafe-MODE ...]
       refdb cluster down --dir D
       refdb cluster status --dir D
`

// runCluster is `refdb cluster up|down|status`.
func runCluster(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clusterUsage)
		return fmt.Errorf("%w: missing cluster subcommand", errUsage)
	}
	fs := pflag.NewFlagSet("refdb cluster "+args[0], pflag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "cluster folder (required)")
	var readers, base *int
	var controlFlags, instanceFlags, storageFlags *string
	var unsafe func() refcluster.Unsafe
	if args[0] == "up" {
		unsafe = unsafeFlags(fs, "")
		readers = fs.Int("readers", 2, "number of readers (0..15)")
		base = fs.Int("port-base", refcluster.DefaultPortBase, "first port of the cluster's block of 100 (writer endpoint = base+6)")
		controlFlags = fs.String("control-flags", "", "extra flags for refdb control, space separated (e.g. \"--heartbeat 50ms\")")
		storageFlags = fs.String("storage-flags", "", "extra flags for every refdb storage node, space separated (e.g. \"--pprof 127.0.0.1:0\")")
		instanceFlags = fs.String("instance-flags", "", "extra flags for every refdb instance, space separated (e.g. \"--pprof 127.0.0.1:0\")")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	switch args[0] {
	case "up":
		n := *readers
		// Checked here, not left to Up: the flag's 0 is Config's NoReaders and Config's 0 the
		// default, so a -1 given here would pass Up's check as "no readers".
		if n < 0 || n > refcluster.MaxReaders {
			return fmt.Errorf("%w: --readers must be 0..%d, got %d", errUsage, refcluster.MaxReaders, n)
		}
		if n == 0 {
			n = refcluster.NoReaders
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c, err := refcluster.Up(ctx, refcluster.Config{Dir: *dir, Readers: n, PortBase: *base, ControlFlags: strings.Fields(*controlFlags),
			InstanceFlags: strings.Fields(*instanceFlags), StorageFlags: strings.Fields(*storageFlags), Log: log,
			Unsafe: unsafe()})
		if err != nil {
			if errors.Is(err, refcluster.ErrBadConfig) || errors.Is(err, refcluster.ErrPortInUse) || errors.Is(err, refcluster.ErrRunning) {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			return err
		}
		fmt.Printf("cluster up: writer %s, reader %s, admin %s, user %s, password %s, database %s (%s)\n",
			c.File.WriterEndpoint, c.File.ReaderEndpoint, c.File.Admin, c.File.User, c.File.Password, c.File.Database, c.Dir)
		return nil
	case "down":
		if err := refcluster.Down(ctx, *dir); err != nil {
			return err
		}
		fmt.Println("cluster down")
		return nil
	case "status":
		return printStatus(ctx, *dir)
	}
	fmt.Fprint(stderr, clusterUsage)
	return fmt.Errorf("%w: unknown cluster subcommand %q", errUsage, args[0])
}

// printStatus asks the control plane, or reads cluster.json when control is down.
func printStatus(ctx context.Context, dir string) error {
	f, err := refcluster.Read(dir)
	if err != nil {
		return err
	}
	st := refcluster.Status{File: *f}
	source := "cluster.json (control plane unreachable)"
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := instanceapi.Do(sctx, http.DefaultClient, http.MethodGet, f.Admin+"/status", nil, &st); err == nil {
		source = "control plane " + f.Admin
	}
	cancel()
	fmt.Printf("writer endpoint %s  reader endpoint %s  admin %s  epoch %d  vdl %d  (from %s)\n",
		st.WriterEndpoint, st.ReaderEndpoint, st.Admin, st.Epoch, st.VDL, source)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tROLE\tAZ\tADDR\tPID\tSTATE\tLAG_MS")
	for _, n := range st.Nodes {
		addr := n.Addr
		if n.MySQL != "" {
			addr = n.MySQL
		}
		state := "running"
		switch {
		case !refcluster.Alive(n.PID, n.PIDStart):
			state = "stopped"
		case refcluster.Stopped(n.PID):
			state = "paused"
		case n.Healthy != nil && !*n.Healthy:
			state = "unhealthy"
		}
		lag := "-"
		if n.LagMS != nil && n.Role == refcluster.RoleReader {
			lag = fmt.Sprintf("%.1f", *n.LagMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.Kind, or(n.Role, "-"), or(n.AZ, "-"), addr, n.PID, state, lag)
	}
	return tw.Flush()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runFailover is `refdb failover --dir D [--target ID]`: a planned failover through the
// control plane.
func runFailover(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("refdb failover", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "cluster folder (required)")
	target := fs.String("target", "", "reader to promote (default: the best one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	f, err := refcluster.Read(*dir)
	if err != nil {
		return err
	}
	url := f.Admin + "/failover"
	if *target != "" {
		url += "?target=" + *target
	}
	var out struct {
		Writer string `json:"writer"`
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := instanceapi.Do(fctx, http.DefaultClient, http.MethodPost, url, nil, &out); err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	fmt.Printf("failover done: writer is %s\n", out.Writer)
	return nil
}
