package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/workloads"
)

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	wname := fs.String("workload", "", "workload of the history (default: from DIR/summary.json)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: aurorabench check DIR [flags]\n\nRe-checks DIR/history.jsonl with the workload's checkers, rewrites DIR/summary.json and DIR/report.html.\nExit 0 valid, 1 anomaly found, 2 unreadable or corrupt input.\n\nFlags:\n%s", fs.FlagUsages())
	}
	if code, stop, err := parseFlags(fs, args); stop {
		return code, err
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("check takes one results folder, got %d arguments", fs.NArg())
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return exitUsage, usagef("%s is not a results folder", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, history.FileName)); err != nil {
		return exitUsage, usagef("%s has no %s", dir, history.FileName)
	}
	sum, err := report.ReadSummary(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return exitUsage, usageError{err}
		}
		sum = &report.Summary{Target: "unknown", Nemesis: "unknown"}
	}
	if *wname != "" {
		sum.Workload = *wname
	}
	if sum.Workload == "" {
		return exitUsage, usagef("%s has no summary.json naming its workload: pass --workload", dir)
	}
	wl, err := workloads.New(sum.Workload, paramsFromConfig(sum.Config))
	if err != nil {
		return exitUsage, usageError{err}
	}
	code, err := checkAndReport(ctx, dir, sum, wl.Checkers(), stdout)
	if err != nil && errors.Is(err, history.ErrCorrupt) {
		return exitUsage, usageError{err}
	}
	return code, err
}

func paramsFromConfig(cfg map[string]any) workloads.Params {
	num := func(k string) int {
		if v, ok := cfg[k].(float64); ok {
			return int(v)
		}
		if v, ok := cfg[k].(int); ok {
			return v
		}
		return 0
	}
	return workloads.Params{Tables: num("tables"), TableSize: num("table_size"), Keys: num("keys")}
}

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: aurorabench report DIR\n\nRe-renders DIR/report.html from DIR/summary.json and DIR/history.jsonl.\n")
	}
	if code, stop, err := parseFlags(fs, args); stop {
		return code, err
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("report takes one results folder, got %d arguments", fs.NArg())
	}
	dir := fs.Arg(0)
	if err := report.Render(dir); err != nil {
		return exitUsage, usageError{err}
	}
	fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(dir, "report.html"))
	return exitValid, nil
}
