package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/aurorabench/aurorabench/chaos"
	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	refcluster "github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/runner"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/dsn"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/targets/postgres"
	"github.com/aurorabench/aurorabench/targets/refdb"
	"github.com/aurorabench/aurorabench/workloads"
)

// defaultTarget is an embedded local refdb cluster.
const defaultTarget = "refdb"

type runFlags struct {
	target, workload, nemesis, out string
	duration, opTimeout            time.Duration
	concurrency, replicas          int
	rate                           float64
	seed                           int64
	tables, tableSize, keys        int
	progress                       string
	suite                          string
	netMode, partitionMode         string
	unsafe                         []string // refdb unsafe mode names
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var f runFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.target, "target", defaultTarget, "what to run against: refdb, mariadb, postgres (local clusters started here), or a mysql:// or postgres:// URL")
	addWorkloadFlags(fs, &f)
	fs.StringVar(&f.suite, "suite", "", "run a fixed suite of workload/nemesis cases instead of one run ("+strings.Join(suiteNames(), ", ")+"); --time applies to each case")
	unsafeOn := map[string]*bool{}
	for _, m := range refcluster.UnsafeModes {
		unsafeOn[m.Name] = fs.Bool(m.Flag()[2:], false, "UNSAFE, --target refdb only, to prove the checkers catch bugs: "+m.Breaks)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: aurorabench run [flags]\n\nRuns a workload against a target, checks the history and writes a results folder.\n"+
			"The --unsafe-* flags start refdb with one rule deliberately broken, to prove the checkers catch it\n"+
			"(--target refdb only; the results folder records them).\n\nFlags:\n%s\nNemeses (--nemesis, comma-separated to mix):\n  %s\n", fs.FlagUsages(), strings.Join(chaos.Describe(), "\n  "))
	}
	if code, stop, err := parseFlags(fs, args); stop {
		return code, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usagef("run takes no arguments, got %q", fs.Args())
	}
	wl, params, err := f.validate()
	if err != nil {
		return exitUsage, err
	}
	if _, ok := suites[f.suite]; f.suite != "" && !ok {
		return exitUsage, usagef("unknown suite %q (known: %s)", f.suite, strings.Join(suiteNames(), ", "))
	}
	if err := checkTargetName(f.target); err != nil {
		return exitUsage, err
	}
	for _, m := range refcluster.UnsafeModes {
		if *unsafeOn[m.Name] {
			f.unsafe = append(f.unsafe, m.Name)
		}
	}
	if len(f.unsafe) > 0 && f.target != "refdb" {
		return exitUsage, usagef("--unsafe-* modes break refdb on purpose and need --target refdb, got --target %s", targetLabel(f.target))
	}
	if f.seed == 0 {
		f.seed = time.Now().UnixNano() % 1_000_000_007
	}
	if f.out == "" {
		what := f.workload
		if f.suite != "" {
			what = "suite-" + f.suite
		}
		f.out = filepath.Join("results", fmt.Sprintf("%s-%s-%s", targetLabel(f.target), what, time.Now().Format("20060102-150405")))
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return exitUsage, usagef("results folder: %v", err)
	}

	if len(f.unsafe) > 0 {
		slog.Warn("UNSAFE run: refdb starts with deliberately broken modes; anomalies are expected", "unsafe", strings.Join(f.unsafe, ","))
	}
	cases := suites[f.suite]
	if f.suite == "" {
		cases = []suiteCase{{f.workload, f.nemesis}}
	}
	tgt, stop, err := startTarget(ctx, f.target, f, cases)
	if err != nil {
		return exitUsage, usageError{fmt.Errorf("target %s: %w", targetLabel(f.target), err)}
	}
	defer stop()

	if f.suite != "" {
		return runSuite(ctx, tgt, f.suite, f, params, stdout)
	}
	return runOn(ctx, tgt, wl, f, stdout)
}

// runOn runs workload wl against a started target and checks it.
func runOn(ctx context.Context, tgt targets.Target, wl workloads.Workload, f runFlags, stdout io.Writer) (int, error) {
	env, closeEnv, err := openEnv(ctx, tgt, f)
	if err != nil {
		return exitUsage, usageError{err}
	}
	defer closeEnv()
	slog.Info("setting up workload", "workload", wl.Name())
	if err := setupWithRetry(ctx, wl, env); err != nil {
		return exitUsage, usageError{fmt.Errorf("workload %s setup: %w", wl.Name(), err)}
	}
	if err := workloads.WaitReplicas(ctx, env, 2*time.Minute); err != nil {
		return exitUsage, usageError{err}
	}
	nem, err := newNemesis(f.nemesis, tgt, f.seed)
	if err != nil {
		return exitUsage, usageError{err}
	}

	hw, err := history.Create(filepath.Join(f.out, history.FileName))
	if err != nil {
		return exitUsage, err
	}
	showProgress := f.progress == "always" || (f.progress == "auto" && isTerminal(stdout))
	cfg := runner.Config{
		Workload: wl, Env: env, Concurrency: f.concurrency, Duration: f.duration, Rate: f.rate,
		Seed: f.seed, OpTimeout: f.opTimeout, History: hw, Nemesis: nem,
	}
	if showProgress {
		cfg.Progress = func(p runner.Progress) { printProgress(stdout, p) }
	} else {
		cfg.Progress = logProgress()
	}
	slog.Info("running", "workload", wl.Name(), "target", tgt.Name(), "time", f.duration, "concurrency", f.concurrency, "rate", f.rate, "seed", f.seed, "out", f.out)
	res, runErr := runner.Run(ctx, cfg)
	if showProgress {
		fmt.Fprintln(stdout)
	}
	if err := hw.Close(); err != nil && runErr == nil {
		runErr = err
	}
	copyLogs(tgt, f.out)
	if runErr != nil {
		return exitUsage, fmt.Errorf("run: %w (partial history in %s)", runErr, f.out)
	}
	if res.NemesisErr != nil {
		slog.Warn("nemesis reported an error", "err", res.NemesisErr)
	}

	sum := &report.Summary{
		Target: tgt.Name(), Workload: wl.Name(), Nemesis: f.nemesis,
		Started: res.Start.Format(time.RFC3339), Duration: res.Elapsed.Seconds(),
		Config: map[string]any{
			"time":        f.duration.String(),
			"concurrency": f.concurrency, "rate": f.rate, "seed": f.seed, "op_timeout": f.opTimeout.String(),
			"replicas": f.replicas, "tables": f.tables, "table_size": f.tableSize, "keys": f.keys,
		},
	}
	if len(f.unsafe) > 0 {
		sum.Config["unsafe"] = strings.Join(f.unsafe, ",")
	}
	sum.TargetLag = reportedLag(ctx, tgt)
	return checkAndReport(ctx, f.out, sum, wl.Checkers(), stdout)
}

// checkAndReport reads the history back from disk (what `check` does too),
// runs the checkers, writes summary.json and report.html, and prints the
// one-line summary last.
func checkAndReport(ctx context.Context, dir string, sum *report.Summary, checks []checker.Checker, stdout io.Writer) (int, error) {
	ops, err := history.ReadFile(filepath.Join(dir, history.FileName))
	if err != nil {
		return exitUsage, err
	}
	in := checker.NewInput(ops, dir)
	if err := writeNemesisLog(dir, in.Nemesis); err != nil {
		return exitUsage, err
	}
	if sum.Duration == 0 { // a bare history without summary.json
		first, last := checker.Span(in)
		sum.Duration = float64(last-first) / 1e9
	}
	sum.Checks = map[string]checker.Result{}
	sum.Valid = true
	for _, c := range append(checks, checker.Faults{}) {
		r := c.Check(ctx, in)
		sum.Checks[c.Name()] = r
		if !r.Valid {
			sum.Valid = false
		}
	}
	sum.Line = summaryLine(sum, in, dir)
	if err := report.Write(dir, sum, in); err != nil {
		return exitUsage, fmt.Errorf("write report: %w", err)
	}
	printChecks(stdout, sum)
	printTargetLag(stdout, sum.TargetLag)
	fmt.Fprintln(stdout, sum.Line)
	if !sum.Valid {
		return exitInvalid, nil
	}
	return exitValid, nil
}

// reportedLag reads the replica lag the target measured itself, when it measures it and has
// replicas. It is a figure beside the checks, never a verdict: an error is logged and leaves
// it out.
func reportedLag(ctx context.Context, tgt targets.Target) []report.TargetLag {
	r, ok := tgt.(targets.LagReporter)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lags, err := r.ReportedLag(ctx)
	if err != nil {
		slog.Warn("the target's own replica lag is unavailable", "err", err)
		return nil
	}
	out := make([]report.TargetLag, 0, len(lags))
	for _, l := range lags {
		out = append(out, report.TargetLag{Replica: l.Replica, Count: l.Count, P50: l.P50MS, P99: l.P99MS, Max: l.MaxMS})
	}
	return out
}

// printTargetLag prints the target's own replica lag figures, if it gave any.
func printTargetLag(w io.Writer, lags []report.TargetLag) {
	if len(lags) == 0 {
		return
	}
	fmt.Fprintln(w, "replica lag as the target measures it (refdb: writer's durable ack to the reader's read point, per commit batch, since the reader started):")
	for _, l := range lags {
		fmt.Fprintf(w, "    replica %-10s p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%d batches)\n", l.Replica, l.P50, l.P99, l.Max, l.Count)
	}
}

func summaryLine(s *report.Summary, in *checker.Input, dir string) string {
	var okN, failN, infoN int
	for _, p := range in.Pairs {
		switch p.Complete.Type {
		case history.OK:
			okN++
		case history.Fail:
			failN++
		default:
			infoN++
		}
	}
	verdict := "VALID"
	if !s.Valid {
		verdict = "INVALID"
	}
	names := make([]string, 0, len(s.Checks))
	for n := range s.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		v := "valid"
		if !s.Checks[n].Valid {
			v = "INVALID"
		}
		parts = append(parts, n+" "+v)
	}
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(okN) / s.Duration
	}
	target := s.Target
	if u, ok := s.Config["unsafe"].(string); ok && u != "" {
		target += " (UNSAFE: " + u + ")"
	}
	return fmt.Sprintf("%s: %s on %s, nemesis %s: %d ok, %d fail, %d info in %.1fs (%.0f ok/s); %s; results in %s",
		verdict, s.Workload, target, s.Nemesis, okN, failN, infoN, s.Duration, rate, strings.Join(parts, ", "), dir)
}

func checkTargetName(t string) error {
	switch {
	case t == "mariadb", t == "postgres", t == "refdb":
		return nil
	case strings.HasPrefix(t, "mysql://"), strings.HasPrefix(t, "postgres://"), strings.HasPrefix(t, "postgresql://"):
		return nil
	}
	return usagef("unknown target %q (refdb, mariadb, postgres, or a mysql:// / postgres:// URL)", t)
}

// targetLabel is a short, path-safe name of a target (a DSN loses its
// credentials).
func targetLabel(t string) string {
	if i := strings.Index(t, "://"); i > 0 {
		return "dsn-" + t[:i]
	}
	return t
}

// startTarget starts a target for the given cases: with link proxies when any case injects
// network faults (the network outlives the target, whose processes dial it until they stop).
// stop closes the target, then the proxies.
func startTarget(ctx context.Context, name string, f runFlags, cases []suiteCase) (targets.Target, func(), error) {
	slog.Info("starting target", "target", targetLabel(name), "replicas", f.replicas)
	opts := targets.Options{Replicas: f.replicas, Unsafe: f.unsafe, Log: func(format string, a ...any) { slog.Info(fmt.Sprintf(format, a...)) }}
	if slices.ContainsFunc(cases, func(c suiteCase) bool { return chaos.NeedsNetwork(c.nemesis) }) {
		opts.Network = netem.New(slog.Default())
	}
	closeNetwork := func() {
		if opts.Network == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := opts.Network.Close(cctx); err != nil {
			slog.Warn("stopping link proxies", "err", err)
		}
	}
	tgt, err := openTarget(ctx, name, opts)
	if err != nil {
		closeNetwork()
		return nil, nil, err
	}
	return tgt, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := tgt.Close(cctx); err != nil {
			slog.Warn("stopping target", "target", targetLabel(name), "err", err)
		}
		closeNetwork()
	}, nil
}

func openTarget(ctx context.Context, name string, opts targets.Options) (targets.Target, error) {
	switch name {
	case "mariadb":
		return mariadb.Start(ctx, opts)
	case "postgres":
		return postgres.Start(ctx, opts)
	case "refdb":
		return refdb.Start(ctx, opts)
	}
	return dsn.Open(ctx, name)
}

func openEnv(ctx context.Context, tgt targets.Target, f runFlags) (*workloads.Env, func(), error) {
	w, err := targets.OpenDB(ctx, tgt.Dialect(), tgt.WriterDSN())
	if err != nil {
		return nil, nil, fmt.Errorf("writer: %w", err)
	}
	r, err := targets.OpenDB(ctx, tgt.Dialect(), tgt.ReaderDSN())
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("reader: %w", err)
	}
	for _, db := range []interface{ SetMaxIdleConns(int) }{w, r} {
		db.SetMaxIdleConns(f.concurrency + 4)
	}
	env := &workloads.Env{Dialect: tgt.Dialect(), Writer: w, Reader: r, Replicas: map[string]string{}, Concurrency: f.concurrency, Seed: f.seed}
	for _, n := range targets.Readers(tgt) {
		if n.DSN() != "" {
			env.Replicas[n.ID()] = n.DSN()
		}
	}
	return env, func() { w.Close(); r.Close() }, nil
}

// copyLogs keeps node logs with the results.
func copyLogs(tgt targets.Target, out string) {
	logs := tgt.Logs()
	if len(logs) == 0 {
		return
	}
	dir := filepath.Join(out, "nodes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		slog.Warn("copy node logs", "err", err)
		return
	}
	for id, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if len(b) > 16<<20 {
			b = b[len(b)-16<<20:]
		}
		_ = os.WriteFile(filepath.Join(dir, id+".log"), b, 0o644)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printProgress(w io.Writer, p runner.Progress) {
	fault := p.Fault
	if fault == "" {
		fault = "none"
	}
	fmt.Fprintf(w, "\r\033[K[%5.1fs/%.0fs] %8.0f ops/s  ok %d  fail %d  info %d  fault: %s",
		p.Elapsed.Seconds(), p.Total.Seconds(), p.OpsPerSec, p.Ok, p.Fail, p.Info, fault)
}

// logProgress logs a progress line every 10 s when stdout is not a terminal.
func logProgress() func(runner.Progress) {
	var last time.Duration
	return func(p runner.Progress) {
		if p.Elapsed-last < 10*time.Second {
			return
		}
		last = p.Elapsed
		slog.Info("progress", "elapsed", p.Elapsed.Round(time.Second), "ops_per_s", int(p.OpsPerSec), "ok", p.Ok, "fail", p.Fail, "info", p.Info, "fault", p.Fault)
	}
}

func printChecks(w io.Writer, s *report.Summary) {
	names := make([]string, 0, len(s.Checks))
	for n := range s.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.Checks[n]
		v := "valid"
		if !r.Valid {
			v = "INVALID"
		}
		fmt.Fprintf(w, "%-13s %s\n", n, v)
		for _, a := range r.Anomalies {
			fmt.Fprintf(w, "    %s\n", a)
		}
		printNumbers(w, n, r)
	}
}

// printNumbers prints the headline figures of the perf and lag checks. It
// goes through JSON so it works the same on fresh results and on a
// summary.json read back from disk.
func printNumbers(w io.Writer, name string, r checker.Result) {
	b, err := json.Marshal(r.Numbers)
	if err != nil {
		return
	}
	switch name {
	case "perf":
		var n struct {
			Ops map[string]checker.OpStats `json:"ops"`
		}
		if json.Unmarshal(b, &n) != nil {
			return
		}
		fs := make([]string, 0, len(n.Ops))
		for f := range n.Ops {
			fs = append(fs, f)
		}
		sort.Strings(fs)
		for _, f := range fs {
			s := n.Ops[f]
			fmt.Fprintf(w, "    %-10s ok %-8d fail %-6d info %-5d %9.1f ok/s   latency ms p50 %.2f p90 %.2f p99 %.2f p999 %.2f max %.2f\n",
				f, s.OK, s.Fail, s.Info, s.Throughput, s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.P999, s.Latency.Max)
		}
	case "faults":
		var n struct {
			Faults   int                  `json:"faults"`
			Failover *checker.Percentiles `json:"failover"`
			Unavail  *checker.Percentiles `json:"unavailability"`
		}
		if json.Unmarshal(b, &n) != nil || n.Faults == 0 {
			return
		}
		fmt.Fprintf(w, "    %d faults\n", n.Faults)
		if p := n.Failover; p != nil {
			fmt.Fprintf(w, "    failover time (writer fault -> first successful write) ms p50 %.0f p90 %.0f p99 %.0f max %.0f (%d)\n", p.P50, p.P90, p.P99, p.Max, p.Count)
		}
		if p := n.Unavail; p != nil {
			fmt.Fprintf(w, "    longest unavailability per fault ms p50 %.0f p90 %.0f p99 %.0f max %.0f\n", p.P50, p.P90, p.P99, p.Max)
		}
	case "linearizable":
		var n struct {
			Keys    int `json:"keys"`
			Ops     int `json:"ops"`
			Bad     int `json:"non_linearizable_keys"`
			Unknown int `json:"unknown_keys"`
		}
		if json.Unmarshal(b, &n) != nil || n.Keys == 0 {
			return
		}
		fmt.Fprintf(w, "    %d keys, %d ops: %d linearizable, %d not, %d unknown (not decided within the check's budget: neither proven nor refuted)\n",
			n.Keys, n.Ops, n.Keys-n.Bad-n.Unknown, n.Bad, n.Unknown)
	case "lag":
		var n struct {
			Replicas   map[string]checker.LagReplica `json:"replicas"`
			WritesPerS float64                       `json:"writes_per_s"`
			Acked      int                           `json:"markers_acked"`
		}
		if json.Unmarshal(b, &n) != nil {
			return
		}
		fmt.Fprintf(w, "    %d markers acknowledged, %.0f writes/s\n", n.Acked, n.WritesPerS)
		ids := make([]string, 0, len(n.Replicas))
		for id := range n.Replicas {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			p := n.Replicas[id].Percentiles
			fmt.Fprintf(w, "    replica %-10s visibility lag ms p50 %.2f p90 %.2f p99 %.2f p999 %.2f max %.2f (%d seen, %d never seen)\n",
				id, p.P50, p.P90, p.P99, p.P999, p.Max, p.Count, n.Replicas[id].Unseen)
		}
	default:
		if len(b) > 2 && len(b) < 400 {
			fmt.Fprintf(w, "    %s\n", b)
		}
	}
}

// writeNemesisLog writes the fault events of the history to nemesis.jsonl,
// one per line, for people and tools that only want the fault timeline.
func writeNemesisLog(dir string, events []history.Op) error {
	var b []byte
	for i := range events {
		b = events[i].AppendJSON(b)
	}
	if err := os.WriteFile(filepath.Join(dir, "nemesis.jsonl"), b, 0o644); err != nil {
		return fmt.Errorf("write nemesis.jsonl: %w", err)
	}
	return nil
}

// addWorkloadFlags registers the flags run and compare share: what runs,
// for how long, how hard, and the faults.
func addWorkloadFlags(fs *pflag.FlagSet, f *runFlags) {
	fs.StringVar(&f.workload, "workload", "register", "workload: "+strings.Join(workloads.Names(), ", "))
	fs.StringVar(&f.nemesis, "nemesis", "none", "faults to inject: "+strings.Join(nemesisNames(), ", "))
	fs.DurationVar(&f.duration, "time", 60*time.Second, "how long the workload runs")
	fs.IntVar(&f.concurrency, "concurrency", 16, "client workers")
	fs.Float64Var(&f.rate, "rate", 0, "open-loop rate in ops/s over all workers (0 = closed loop)")
	fs.Int64Var(&f.seed, "seed", 0, "random seed (0 = derive from the clock; the seed used is printed and saved)")
	fs.StringVar(&f.out, "out", "", "results folder (default results/<target>-<workload>-<time>)")
	fs.DurationVar(&f.opTimeout, "op-timeout", 10*time.Second, "per-operation timeout; a timed-out write is recorded as indeterminate (info)")
	fs.IntVar(&f.replicas, "replicas", 2, "replicas of a local target")
	fs.IntVar(&f.tables, "tables", 4, "oltp: sbtest tables (as sysbench --tables)")
	fs.IntVar(&f.tableSize, "table-size", 10000, "oltp: rows per table (as sysbench --table-size)")
	fs.IntVar(&f.keys, "keys", 0, "register: keys in use at once (default 4); bank: accounts (default 8)")
	fs.DurationVar(&nemesisSchedule.Interval, "nemesis-interval", nemesisSchedule.Interval, "time between faults")
	fs.DurationVar(&nemesisSchedule.Duration, "nemesis-duration", nemesisSchedule.Duration, "how long each fault lasts")
	fs.DurationVar(&nemesisSchedule.Latency, "latency", chaos.DefaultLatency, "latency nemeses: delay added to each link, each way")
	fs.DurationVar(&nemesisSchedule.Jitter, "jitter", chaos.DefaultJitter, "latency nemeses: the delay varies uniformly by ± this much")
	fs.StringVar(&f.partitionMode, "partition-mode", "drop", "partition nemeses: drop (connections on a cut link stall, new ones hang, as with iptables DROP) or reset (they are reset, as with REJECT tcp-reset)")
	fs.StringVar(&f.progress, "progress", "auto", "live progress line: auto (when stdout is a terminal), always, never")
	fs.StringVar(&f.netMode, "net", "proxy", "how network faults are made: proxy (per-link TCP proxies on 127.0.0.1, no root needed; set up only when a network nemesis is asked for)")
}

// validate checks the shared flags and builds the workload.
func (f *runFlags) validate() (workloads.Workload, workloads.Params, error) {
	params := workloads.Params{Tables: f.tables, TableSize: f.tableSize, Keys: f.keys}
	wl, err := workloads.New(f.workload, params)
	if err != nil {
		return nil, params, usageError{err}
	}
	if f.concurrency < 1 || f.concurrency > 4096 {
		return nil, params, usagef("--concurrency must be between 1 and 4096, got %d", f.concurrency)
	}
	if f.duration <= 0 {
		return nil, params, usagef("--time must be positive, got %s", f.duration)
	}
	if f.progress != "auto" && f.progress != "always" && f.progress != "never" {
		return nil, params, usagef("--progress must be auto, always or never, got %q", f.progress)
	}
	if f.rate < 0 {
		return nil, params, usagef("--rate must not be negative, got %g", f.rate)
	}
	if f.replicas < 0 || f.replicas > 15 {
		return nil, params, usagef("--replicas must be between 0 and 15, got %d", f.replicas)
	}
	switch f.netMode {
	case "proxy":
	case "iptables":
		return nil, params, usagef("--net iptables is not implemented; use --net proxy (per-link TCP proxies, no root needed)")
	default:
		return nil, params, usagef("--net must be proxy, got %q", f.netMode)
	}
	if nemesisSchedule.PartitionMode, err = netem.ParseMode(f.partitionMode); err != nil {
		return nil, params, usagef("--partition-mode: %v", err)
	}
	if nemesisSchedule.Latency < 0 || nemesisSchedule.Jitter < 0 {
		return nil, params, usagef("--latency and --jitter must not be negative")
	}
	if _, err := newNemesis(f.nemesis, nil, 0); err != nil {
		return nil, params, usageError{err}
	}
	return wl, params, nil
}

// setupRetryFor bounds how long a workload's setup is retried: the target may still be
// recovering from the previous case's faults (a failover finishing, a fenced writer's DDL
// refused), and setup only drops and creates its own tables, so running it again is safe.
const setupRetryFor = 60 * time.Second

func setupWithRetry(ctx context.Context, wl workloads.Workload, env *workloads.Env) error {
	deadline := time.Now().Add(setupRetryFor)
	for attempt := 1; ; attempt++ {
		err := wl.Setup(ctx, env)
		var cfgErr *workloads.ConfigError
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) || errors.As(err, &cfgErr) {
			return err
		}
		slog.Warn("workload setup failed; retrying", "workload", wl.Name(), "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}
