package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/workloads"
)

// cmdCompare runs the same cases on several targets, one target after the
// other on this machine (so they never compete for it), and writes
// compare.json and compare.html beside each run's own results folder.
func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var f runFlags
	var targetList, suite string
	fs := pflag.NewFlagSet("compare", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&targetList, "targets", "refdb,mariadb,postgres", "comma-separated targets, each as for run --target; ratios are against the first")
	fs.StringVar(&suite, "suite", "standard", "cases to run on every target ("+strings.Join(suiteNames(), ", ")+"); --workload or --nemesis run that one case instead")
	addWorkloadFlags(fs, &f)
	// A comparison runs every case on every target: shorter cases by default.
	f.duration = 30 * time.Second
	fs.Lookup("time").DefValue = "30s"
	fs.Lookup("time").Usage = "how long each case runs on each target"
	fs.Lookup("out").Usage = "comparison folder (default results/compare-<time>); each run's results go in <target>/<NN-case> under it"
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: aurorabench compare [flags]\n\nRuns the same workloads on several targets, one after the other, and writes a side-by-side\ncomparison (compare.json, compare.html) with each run's own results folder under --out.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if code, stop, err := parseFlags(fs, args); stop {
		return code, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usagef("compare takes no arguments, got %q", fs.Args())
	}
	if _, _, err := f.validate(); err != nil {
		return exitUsage, err
	}
	var cases []suiteCase
	switch {
	case fs.Changed("workload") || fs.Changed("nemesis"):
		cases = []suiteCase{{f.workload, f.nemesis}}
	default:
		cs, ok := suites[suite]
		if !ok {
			return exitUsage, usagef("unknown suite %q (known: %s)", suite, strings.Join(suiteNames(), ", "))
		}
		cases = cs
	}
	var tgts []string
	seen := map[string]bool{}
	for _, t := range strings.Split(targetList, ",") {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			continue
		}
		if err := checkTargetName(t); err != nil {
			return exitUsage, err
		}
		seen[t] = true
		tgts = append(tgts, t)
	}
	if len(tgts) == 0 {
		return exitUsage, usagef("--targets names no target")
	}
	if f.seed == 0 {
		f.seed = time.Now().UnixNano() % 1_000_000_007
	}
	if f.out == "" {
		f.out = filepath.Join("results", "compare-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return exitUsage, usagef("results folder: %v", err)
	}
	labels := make([]string, len(tgts))
	for i, t := range tgts {
		labels[i] = targetLabel(t)
		if i > 0 && labels[i] == labels[i-1] {
			labels[i] = fmt.Sprintf("%s-%d", labels[i], i+1)
		}
	}

	cmp := &report.Comparison{Targets: labels, Started: time.Now().Format(time.RFC3339), Config: map[string]any{
		"time per case": f.duration.String(), "concurrency": f.concurrency, "rate": f.rate, "seed": f.seed,
		"replicas": f.replicas, "nemesis interval": nemesisSchedule.Interval.String(), "nemesis duration": nemesisSchedule.Duration.String(),
	}}
	if !fs.Changed("workload") && !fs.Changed("nemesis") {
		cmp.Suite = suite
	}
	for _, c := range cases {
		cmp.Cases = append(cmp.Cases, report.CaseResult{Workload: c.workload, Nemesis: c.nemesis, Runs: map[string]report.RunFigures{}})
	}
	worst := exitValid
	began := time.Now()
	for ti, t := range tgts {
		if ctx.Err() != nil {
			break
		}
		label := labels[ti]
		fmt.Fprintf(stdout, "== compare: target %d/%d: %s\n", ti+1, len(tgts), label)
		code := compareTarget(ctx, t, label, cases, f, cmp, stdout)
		worst = max(worst, code)
	}
	cmp.Valid = worst == exitValid
	cmp.Line = compareLine(cmp, time.Since(began), f.out)
	if err := report.WriteComparison(f.out, cmp); err != nil {
		return exitUsage, err
	}
	printComparison(stdout, cmp)
	fmt.Fprintln(stdout, cmp.Line)
	if ctx.Err() != nil {
		return exitUsage, fmt.Errorf("interrupted; partial comparison in %s", f.out)
	}
	return worst, nil
}

// compareTarget starts one target, runs every case on it into
// out/<label>/NN-<case>, records each run's figures and stops the target.
func compareTarget(ctx context.Context, t, label string, cases []suiteCase, f runFlags, cmp *report.Comparison, stdout io.Writer) int {
	fail := func(from int, err error) int {
		for i := from; i < len(cases); i++ {
			cmp.Cases[i].Runs[label] = report.RunFigures{Error: err.Error()}
		}
		return exitUsage
	}
	tgt, stop, err := startTarget(ctx, t, f, cases)
	if err != nil {
		slog.Error("target did not start", "target", label, "err", err)
		return fail(0, fmt.Errorf("target %s: %w", label, err))
	}
	defer stop()
	worst := exitValid
	for i, c := range cases {
		if ctx.Err() != nil {
			return max(worst, fail(i, ctx.Err()))
		}
		cf := f
		cf.workload, cf.nemesis = c.workload, c.nemesis
		rel := filepath.Join(label, fmt.Sprintf("%02d-%s-%s", i+1, c.workload, strings.ReplaceAll(c.nemesis, ",", "+")))
		cf.out = filepath.Join(f.out, rel)
		if err := os.MkdirAll(cf.out, 0o755); err != nil {
			return max(worst, fail(i, fmt.Errorf("results folder: %w", err)))
		}
		wl, err := workloads.New(c.workload, workloads.Params{Tables: f.tables, TableSize: f.tableSize, Keys: f.keys})
		if err != nil {
			return max(worst, fail(i, err))
		}
		fmt.Fprintf(stdout, "== %s: case %d/%d: %s under %s\n", label, i+1, len(cases), c.workload, c.nemesis)
		code, err := runOn(ctx, tgt, wl, cf, stdout)
		if err != nil {
			slog.Error("case failed to run", "target", label, "workload", c.workload, "nemesis", c.nemesis, "err", err)
			cmp.Cases[i].Runs[label] = report.RunFigures{Error: err.Error(), Dir: rel}
			worst = max(worst, exitUsage)
			continue
		}
		worst = max(worst, code)
		sum, err := report.ReadSummary(cf.out)
		if err != nil {
			cmp.Cases[i].Runs[label] = report.RunFigures{Error: err.Error(), Dir: rel}
			worst = max(worst, exitUsage)
			continue
		}
		cmp.Cases[i].Runs[label] = report.FiguresOf(sum, rel)
	}
	return worst
}

// printComparison prints, per case, the verdicts and a table of figures
// with ratios against the first target.
func printComparison(w io.Writer, c *report.Comparison) {
	base := c.Targets[0]
	for _, cs := range c.Cases {
		fmt.Fprintf(w, "\n%s under %s\n", cs.Workload, cs.Nemesis)
		fmt.Fprintf(w, "  %-26s", "")
		for _, t := range c.Targets {
			fmt.Fprintf(w, " %22s", t)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  %-26s", "verdict")
		for _, t := range c.Targets {
			r := cs.Runs[t]
			v := "VALID"
			switch {
			case r.Error != "":
				v = "ERROR"
			case !r.Valid:
				v = fmt.Sprintf("INVALID (%d)", r.Anomalies)
			}
			fmt.Fprintf(w, " %22s", v)
		}
		fmt.Fprintln(w)
		for _, m := range report.CaseMetrics(cs) {
			fmt.Fprintf(w, "  %-26s", m.Name+" ("+m.Unit+")")
			b := m.Get(cs.Runs[base])
			for _, t := range c.Targets {
				x := m.Get(cs.Runs[t])
				cell := report.FmtFigure(x)
				if r := report.Ratio(x, b); t != base && r != "" {
					cell += " (" + r + ")"
				}
				fmt.Fprintf(w, " %22s", cell)
			}
			fmt.Fprintln(w)
		}
		for _, t := range c.Targets {
			r := cs.Runs[t]
			switch {
			case r.Error != "":
				fmt.Fprintf(w, "  %s: %s\n", t, r.Error)
			case r.First != "":
				fmt.Fprintf(w, "  %s: %s\n", t, r.First)
			}
		}
	}
	fmt.Fprintln(w)
}

func compareLine(c *report.Comparison, took time.Duration, out string) string {
	var parts []string
	for _, t := range c.Targets {
		valid, invalid, errs := 0, 0, 0
		for _, cs := range c.Cases {
			r, ok := cs.Runs[t]
			switch {
			case !ok || r.Error != "":
				errs++
			case r.Valid:
				valid++
			default:
				invalid++
			}
		}
		p := fmt.Sprintf("%s %d valid", t, valid)
		if invalid > 0 {
			p += fmt.Sprintf(", %d INVALID", invalid)
		}
		if errs > 0 {
			p += fmt.Sprintf(", %d not run", errs)
		}
		parts = append(parts, p)
	}
	v := "VALID"
	for _, cs := range c.Cases {
		for _, t := range c.Targets {
			if r, ok := cs.Runs[t]; !ok || r.Error != "" {
				v = "INCOMPLETE"
			} else if !r.Valid && v == "VALID" {
				v = "INVALID"
			}
		}
	}
	return fmt.Sprintf("%s: compare %d cases on %s in %.0fs: %s; results in %s",
		v, len(c.Cases), strings.Join(c.Targets, ", "), took.Seconds(), strings.Join(parts, "; "), out)
}
