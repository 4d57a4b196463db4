package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/targets/refdb"
)

// unsafeCase is a run that catches one unsafe refdb mode: the workload, the nemesis and its
// schedule, and the anomaly the checkers must name. caught is false for a mode the current
// workloads and nemeses cannot make visible (the run still goes, and reports what it saw).
type unsafeCase struct {
	mode, workload, nemesis string
	interval, duration, run string
	anomaly                 string
	caught                  bool
}

var unsafeCases = []unsafeCase{
	// Storage acknowledges before writing: a whole-cluster power failure loses the last
	// second of acknowledged inserts on every node at once.
	{mode: "ack-before-fsync", workload: "set", nemesis: "kill-all", interval: "2s", duration: "1s", run: "15s",
		anomaly: "acknowledged inserts lost", caught: true},
	// Storage accepts a stale epoch: a writer frozen just past failover detection resumes
	// while its replacement recovers and keeps acknowledging inserts the new epoch never sees.
	{mode: "no-epoch-fencing", workload: "set", nemesis: "pause-writer", interval: "2s", duration: "850ms", run: "40s",
		anomaly: "acknowledged inserts lost", caught: true},
	// Recovery keeps the records above the VDL: after a crash of every node, a transfer that
	// was never acknowledged comes back on the segments that held it.
	{mode: "no-truncation", workload: "bank", nemesis: "kill-all", interval: "2s", duration: "1s", run: "60s",
		anomaly: "total", caught: false},
	// 3 of 6: a commit acknowledged on 3 segments is lost only when a later recovery reads
	// the other 3, which needs a partition (writer + 3 storage nodes on one side).
	{mode: "ack-3of6", workload: "set", nemesis: "kill-all,kill-minority", interval: "2s", duration: "1s", run: "60s",
		anomaly: "acknowledged inserts lost", caught: false},
	// Readers above the VDL show commits that may later be truncated; the workloads read
	// from readers only in bank, whose single-segment scans see whole transactions.
	{mode: "read-above-vdl", workload: "bank", nemesis: "kill-writer", interval: "2s", duration: "1s", run: "40s",
		anomaly: "total", caught: false},
}

// runUnsafeCase runs c on a fresh refdb cluster (safe when unsafe is false) and returns the
// exit status, the checks' output and how long the whole run took.
func runUnsafeCase(t *testing.T, c unsafeCase, unsafe bool) (int, string, time.Duration) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "results")
	args := []string{"run", "--target", "refdb", "--workload", c.workload, "--nemesis", c.nemesis,
		"--nemesis-interval", c.interval, "--nemesis-duration", c.duration, "--time", c.run,
		"--concurrency", "16", "--progress", "never", "--out", out}
	if unsafe {
		args = append(args, "--unsafe-"+c.mode)
	}
	began := time.Now()
	code, stdout, stderr := run(t, args...)
	took := time.Since(began)
	if code == exitUsage {
		t.Fatalf("aurorabench %s: exit 2\n%s\n%s", strings.Join(args, " "), stdout, stderr)
	}
	s, err := report.ReadSummary(out)
	if err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if got, _ := s.Config["unsafe"].(string); unsafe && got != c.mode {
		t.Errorf("summary.json config unsafe = %q, want %q", got, c.mode)
	}
	return code, stdout, took
}

// anomalyLines are the indented anomaly lines under an INVALID check.
func anomalyLines(out string) string {
	var keep []string
	invalid := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case !strings.HasPrefix(l, " "):
			invalid = strings.Contains(l, "INVALID")
		case invalid && len(keep) < 3:
			if len(l) > 200 {
				l = l[:200] + "..."
			}
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, " | ")
}

func useRefdbBinary(t *testing.T) {
	t.Helper()
	if os.Getenv(refdb.BinEnv) != "" {
		return
	}
	bin, err := refdb.Binary(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(refdb.BinEnv, bin)
}

// TestUnsafeAckBeforeFsyncIsCaught proves the set checker catches storage that acknowledges
// before it writes: a kill of every node loses acknowledged inserts, exit status 1.
func TestUnsafeAckBeforeFsyncIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole refdb cluster")
	}
	useRefdbBinary(t)
	c := unsafeCases[0]
	code, out, took := runUnsafeCase(t, c, true)
	t.Logf("--unsafe-%s, %s under %s: exit %d in %s: %s", c.mode, c.workload, c.nemesis, code, took.Round(time.Second), anomalyLines(out))
	if code != exitInvalid {
		t.Fatalf("exit %d, want %d (anomaly found)\n%s", code, exitInvalid, out)
	}
	if !strings.Contains(out, c.anomaly) {
		t.Fatalf("output does not name the anomaly %q\n%s", c.anomaly, out)
	}
	if !strings.Contains(lastLine(out), "UNSAFE: "+c.mode) {
		t.Errorf("summary line does not say the run was unsafe: %s", lastLine(out))
	}
}

// TestUnsafeModesAll runs every unsafe mode with its catching workload and nemesis, then the
// same run on safe refdb, and reports which were caught and how long each took. It takes
// about ten minutes, so it runs only with AURORABENCH_UNSAFE_ALL=1.
func TestUnsafeModesAll(t *testing.T) {
	if os.Getenv("AURORABENCH_UNSAFE_ALL") == "" {
		t.Skip("set AURORABENCH_UNSAFE_ALL=1 to run every unsafe mode (about ten minutes)")
	}
	useRefdbBinary(t)
	var report []string
	for _, c := range unsafeCases {
		t.Run(c.mode, func(t *testing.T) {
			code, out, took := runUnsafeCase(t, c, true)
			found := code == exitInvalid && strings.Contains(out, c.anomaly)
			line := fmt.Sprintf("--unsafe-%s %s under %s (--time %s): exit %d in %s", c.mode, c.workload, c.nemesis, c.run, code, took.Round(time.Second))
			if found {
				line += ", caught: " + anomalyLines(out)
			} else {
				line += ", NOT caught"
			}
			report = append(report, line)
			t.Log(line)
			if c.caught && !found {
				t.Errorf("not caught (want exit 1 naming %q)\n%s", c.anomaly, out)
			}
			scode, sout, stook := runUnsafeCase(t, c, false)
			t.Logf("same run on safe refdb: exit %d in %s %s", scode, stook.Round(time.Second), anomalyLines(sout))
			if strings.Contains(sout, c.anomaly) {
				t.Errorf("safe refdb shows the anomaly %q too\n%s", c.anomaly, sout)
			} else if scode != exitValid {
				// Not this mode's anomaly, but a finding on safe refdb: report it.
				t.Logf("FINDING: safe refdb is INVALID under this schedule:\n%s", sout)
			}
		})
	}
	t.Logf("unsafe modes:\n%s", strings.Join(report, "\n"))
}

// TestUnsafeNeedsRefdb: an unsafe flag with any other target is a usage error.
func TestUnsafeNeedsRefdb(t *testing.T) {
	for _, target := range []string{"mariadb", "postgres", "mysql://u:p@127.0.0.1:1/db"} {
		code, _, stderr := run(t, "run", "--target", target, "--unsafe-no-truncation", "--time", "1s", "--out", t.TempDir())
		if code != exitUsage || !strings.Contains(stderr, "--target refdb") {
			t.Errorf("--target %s --unsafe-no-truncation: exit %d, want 2 naming --target refdb; stderr:\n%s", target, code, stderr)
		}
	}
}
