package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/workloads"
)

// suiteCase is one run of a suite.
type suiteCase struct {
	workload, nemesis string
}

// suites are fixed lists of runs for CI jobs: each case gets --time, all
// on one target, and the suite fails if any case finds an anomaly.
var suites = map[string][]suiteCase{
	// standard is what `compare` runs by default: throughput and latency,
	// replica lag, and what a writer crash costs (failover time, lost or
	// non-linearizable writes).
	"standard": {
		{"oltp", "none"},
		{"lag", "none"},
		{"register", "kill-writer"},
		{"set", "kill-writer"},
	},
	"ci": {
		{"register", "kill-writer"},
		{"bank", "kill-storage"},
		{"set", "pause-writer"},
		// set, not register: a minority kill can take out a storage quorum, and the
		// register histories it leaves (many ops open until the heal) cost Porcupine minutes.
		{"set", "kill-minority"},
		// A network partition (per-link proxies): the writer's AZ cut off from the rest.
		{"register", "partition-az-az1"},
		{"set", "kill-writer,pause-reader"},
	},
}

func suiteNames() []string {
	var ns []string
	for n := range suites {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// runSuite runs every case of a suite against one started target, each
// into its own subfolder of f.out, and prints one summary line per case
// and one for the suite last.
func runSuite(ctx context.Context, tgt targets.Target, name string, f runFlags, params workloads.Params, stdout io.Writer) (int, error) {
	worst := exitValid
	var lines []string
	start := time.Now()
	for i, c := range suites[name] {
		wl, err := workloads.New(c.workload, params)
		if err != nil {
			return exitUsage, usageError{err}
		}
		cf := f
		cf.workload, cf.nemesis = c.workload, c.nemesis
		cf.out = filepath.Join(f.out, fmt.Sprintf("%02d-%s-%s", i+1, c.workload, strings.ReplaceAll(c.nemesis, ",", "+")))
		if err := os.MkdirAll(cf.out, 0o755); err != nil {
			return exitUsage, fmt.Errorf("results folder: %w", err)
		}
		fmt.Fprintf(stdout, "== suite %s case %d/%d: %s under %s\n", name, i+1, len(suites[name]), c.workload, c.nemesis)
		code, err := runOn(ctx, tgt, wl, cf, stdout)
		if err != nil {
			return exitUsage, fmt.Errorf("suite %s case %d (%s/%s): %w", name, i+1, c.workload, c.nemesis, err)
		}
		verdict := "valid"
		if code != exitValid {
			verdict = "INVALID"
			worst = max(worst, code)
		}
		lines = append(lines, fmt.Sprintf("%s/%s %s", c.workload, c.nemesis, verdict))
	}
	v := "VALID"
	if worst != exitValid {
		v = "INVALID"
	}
	on := tgt.Name()
	if len(f.unsafe) > 0 {
		on += " (UNSAFE: " + strings.Join(f.unsafe, ",") + ")"
	}
	fmt.Fprintf(stdout, "%s: suite %s on %s, %d cases in %.0fs: %s; results in %s\n", v, name, on, len(lines), time.Since(start).Seconds(), strings.Join(lines, ", "), f.out)
	return worst, nil
}
