package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aurorabench/aurorabench/history"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestCheckFindsNonLinearizableFixture(t *testing.T) {
	dir := copyDir(t, "testdata/nonlinearizable")
	code, out, errs := run(t, "check", "--workload", "register", dir)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "linearizability-key-1.html")); err != nil {
		t.Fatalf("no Porcupine visualization: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "INVALID") {
		t.Fatalf("last line %q is not the summary", last)
	}
	// The summary now names the workload: re-checking needs no flag.
	if code, _, errs := run(t, "check", dir); code != exitInvalid {
		t.Fatalf("re-check exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, "report", dir); code != exitValid {
		t.Fatalf("report exit %d: %s", code, errs)
	}
}

func TestCheckRejectsCorruptHistory(t *testing.T) {
	dir := copyDir(t, "testdata/nonlinearizable")
	path := filepath.Join(dir, history.FileName)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-40], 0o644); err != nil { // truncate mid-record
		t.Fatal(err)
	}
	code, _, errs := run(t, "check", "--workload", "register", dir)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2; stderr %s", code, errs)
	}
	if !strings.Contains(errs, "corrupt history") || strings.Contains(errs, "goroutine") {
		t.Fatalf("stderr should name the problem in one line: %q", errs)
	}
}

func TestBadInputExitsTwo(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"run", "--workload", "nope"},
		{"run", "--target", "oracle"},
		{"run", "--bogus-flag"},
		{"run", "--concurrency", "0"},
		{"run", "--nemesis", "meteor"},
		{"run", "--nemesis", "partition-everything"},
		{"run", "--nemesis", "partition-halves", "--net", "iptables"},
		{"run", "--nemesis", "partition-halves", "--partition-mode", "sever"},
		{"run", "--nemesis", "latency-all", "--latency", "-1s"},
		{"run", "--time", "-1s"},
		{"run", "--progress", "sometimes"},
		{"run", "--target", "mysql://bench:pw@127.0.0.1:1/bench", "--time", "1s", "--out", t.TempDir()},
		{"run", "--target", "postgres://bench:pw@127.0.0.1:1/bench", "--time", "1s", "--out", t.TempDir()},
		{"check"},
		{"check", "/nonexistent"},
		{"report", "/nonexistent"},
	}
	for _, args := range cases {
		code, _, errs := run(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errs)
		}
		if strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine ") {
			t.Errorf("%q: stack trace in output: %s", args, errs)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []string{"run", "check", "report"} {
		if code, _, errs := run(t, c, "--help"); code != exitValid || !strings.Contains(errs, "Usage: aurorabench "+c) {
			t.Errorf("%s --help: exit %d, %q", c, code, errs)
		}
	}
}

var _ = context.Background
