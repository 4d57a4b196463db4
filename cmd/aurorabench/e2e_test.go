package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/targets/postgres"
	"github.com/aurorabench/aurorabench/targets/refdb"
	"github.com/aurorabench/aurorabench/workloads"
)

// TestWorkloadsOnPeers starts each real peer cluster once and runs every
// workload against it for a few seconds: each must come out valid with a
// complete results folder. The last case runs register with a kill-writer
// nemesis, so failover is exercised on every CI run.
func TestWorkloadsOnPeers(t *testing.T) {
	peers := []struct {
		name  string
		avail func() error
		start func(context.Context, targets.Options) (targets.Target, error)
		// safe: the target promises no lost acknowledged write at failover
		// (refdb); async peers may lose some, which is a finding.
		safe bool
	}{
		{"refdb", func() error { return nil }, refdb.Start, true},
		{"mariadb", mariadb.Available, mariadb.Start, false},
		{"postgres", postgres.Available, postgres.Start, false},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			needPeer(t, p.avail() == nil, p.name)
			ctx := context.Background()
			tgt, err := p.start(ctx, targets.Options{Replicas: 2, Log: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close(context.Background())
			pids := map[string]int{}
			for _, n := range tgt.Nodes() {
				pids[n.ID()] = n.PID()
			}
			for _, w := range []string{"register", "bank", "set", "lag", "ecommerce", "oltp"} {
				runChecked(t, tgt, w, "none", 4*time.Second, true)
			}
			// Async replication may lose acknowledged writes at failover:
			// that is a finding, not a test failure. The run must work
			// (faults recorded, a verdict reached), whatever the verdict.
			runChecked(t, tgt, "set", "kill-writer", 12*time.Second, p.safe)
			if p.safe {
				runChecked(t, tgt, "register", "kill-writer", 12*time.Second, true)
			}
			if err := tgt.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for id, pid := range pids {
				if pid > 0 && processAlive(pid) {
					t.Errorf("node %s (pid %d) still running after Close", id, pid)
				}
			}
		})
	}
}

// runChecked runs a workload with a nemesis on tgt, checks the results folder, and
// returns it.
func runChecked(t *testing.T, tgt targets.Target, workload, nemesis string, d time.Duration, mustBeValid bool) string {
	t.Helper()
	dir := t.TempDir()
	wl, err := workloads.New(workload, workloads.Params{Tables: 2, TableSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	saved := nemesisSchedule
	nemesisSchedule.Interval, nemesisSchedule.Duration = 3*time.Second, 3*time.Second
	defer func() { nemesisSchedule = saved }()
	f := runFlags{target: tgt.Name(), workload: workload, nemesis: nemesis, out: dir, duration: d, opTimeout: 5 * time.Second,
		concurrency: 6, seed: 42, tables: 2, tableSize: 1000, progress: "never"}
	var out strings.Builder
	code, err := runOn(context.Background(), tgt, wl, f, &out)
	if err != nil || code == exitUsage || (mustBeValid && code != exitValid) {
		t.Fatalf("%s/%s on %s: exit %d, err %v\n%s", workload, nemesis, tgt.Name(), code, err, out.String())
	}
	t.Logf("%s", lastLine(out.String()))
	for _, name := range []string{"history.jsonl", "summary.json", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: missing %s", workload, name)
		}
	}
	s, err := report.ReadSummary(dir)
	if err != nil {
		t.Fatalf("%s: summary.json: %v", workload, err)
	}
	if s.Valid != (code == exitValid) {
		t.Fatalf("%s: summary.json valid=%v but exit status %d", workload, s.Valid, code)
	}
	if workload == "lag" {
		lag := s.Checks["lag"].Numbers
		reps, _ := lag["replicas"].(map[string]any)
		if len(reps) != len(targets.Readers(tgt)) {
			t.Errorf("lag measured on %d replicas, target has %d", len(reps), len(targets.Readers(tgt)))
		}
		// refdb also reports its own measure per reader; the peers do not.
		if _, ok := tgt.(targets.LagReporter); ok {
			if len(s.TargetLag) != len(targets.Readers(tgt)) {
				t.Errorf("target's own lag for %d replicas, target has %d: %+v", len(s.TargetLag), len(targets.Readers(tgt)), s.TargetLag)
			}
			for _, l := range s.TargetLag {
				if l.Count == 0 || l.P50 <= 0 || l.Max < l.P99 || l.P99 < l.P50 {
					t.Errorf("target's own lag of %s: %+v", l.Replica, l)
				}
			}
			if !strings.Contains(out.String(), "replica lag as the target measures it") {
				t.Errorf("run output lacks the target's own lag")
			}
		} else if len(s.TargetLag) != 0 {
			t.Errorf("%s reported its own lag: %+v", tgt.Name(), s.TargetLag)
		}
	}
	if nemesis != "none" {
		action, _, _ := strings.Cut(nemesis, "-")
		b, _ := os.ReadFile(filepath.Join(dir, "history.jsonl"))
		if !strings.Contains(string(b), `"start-`+action+`"`) || !strings.Contains(string(b), `"stop-`+action+`"`) {
			t.Errorf("no fault recorded in the history of a %s run", nemesis)
		}
	}
	return dir
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestSuiteCIOnRefdb runs `aurorabench run --suite ci` against an embedded refdb cluster, as
// a CI job would: every case (register, bank and set under writer and storage kills, pauses,
// a minority kill and an AZ partition) must come out valid, exit status 0, with one results
// folder per case and the suite's summary line last.
func TestSuiteCIOnRefdb(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := run(t, "run", "--suite", "ci", "--time", "8s", "--nemesis-interval", "2s",
		"--nemesis-duration", "2s", "--concurrency", "8", "--seed", "17", "--progress", "never", "--out", out)
	if code != exitValid {
		t.Fatalf("exit %d\nstdout: %s\nstderr tail: %s", code, stdout, tail(stderr, 3000))
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "VALID: suite ci on refdb") {
		t.Fatalf("last line %q", last)
	}
	t.Log(last)
	dirs, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(suites["ci"]) {
		t.Fatalf("%d results folders for %d cases", len(dirs), len(suites["ci"]))
	}
	for _, d := range dirs {
		s, err := report.ReadSummary(filepath.Join(out, d.Name()))
		if err != nil || !s.Valid {
			t.Errorf("%s: %v %+v", d.Name(), err, s)
		}
		if n, _ := s.Checks["faults"].Numbers["faults"].(float64); n == 0 && !strings.Contains(d.Name(), "none") {
			t.Errorf("%s: no fault was injected", d.Name())
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
