package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/targets/mariadb"
)

// TestCompareRefdbAndMariaDB runs one short case on refdb and on a local
// MariaDB cluster and checks the comparison folder: compare.json with both
// runs' figures, compare.html, and each run's own results folder.
func TestCompareRefdbAndMariaDB(t *testing.T) {
	needPeer(t, mariadb.Available() == nil, "MariaDB")
	out := t.TempDir()
	code, stdout, stderr := run(t, "compare", "--targets", "refdb,mariadb", "--workload", "lag",
		"--time", "4s", "--concurrency", "6", "--seed", "7", "--out", out)
	if code != exitValid {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "VALID: compare 1 cases on refdb, mariadb") {
		t.Fatalf("last line %q", last)
	}
	b, err := os.ReadFile(filepath.Join(out, report.CompareJSON))
	if err != nil {
		t.Fatal(err)
	}
	var c report.Comparison
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if !c.Valid || len(c.Cases) != 1 || len(c.Cases[0].Runs) != 2 {
		t.Fatalf("comparison %+v", c)
	}
	for _, tgt := range []string{"refdb", "mariadb"} {
		r := c.Cases[0].Runs[tgt]
		if r.Error != "" || !r.Valid || r.OKPerS <= 0 || r.LagP99 <= 0 || r.WritesPerS <= 0 {
			t.Errorf("%s: %+v", tgt, r)
		}
		// Only refdb measures its own replica lag.
		if own := r.OwnLagP99 > 0; own != (tgt == "refdb") {
			t.Errorf("%s: own-measure lag p99 %v", tgt, r.OwnLagP99)
		}
		if _, err := os.Stat(filepath.Join(out, r.Dir, report.HTMLFile)); err != nil {
			t.Errorf("%s run report: %v", tgt, err)
		}
	}
	h, err := os.ReadFile(filepath.Join(out, report.CompareHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replica lag p99", "<svg", "mariadb/01-lag-none/report.html"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("compare.html lacks %q", want)
		}
	}
}

func TestCompareBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"compare", "--targets", "oracle"},
		{"compare", "--targets", ","},
		{"compare", "--suite", "nope"},
		{"compare", "--time", "-1s"},
		{"compare", "--workload", "nope"},
		{"compare", "--progress", "sometimes"},
		{"compare", "extra"},
	} {
		code, _, stderr := run(t, append(args, "--out", t.TempDir())...)
		if code != exitUsage || !strings.Contains(stderr, "aurorabench:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
