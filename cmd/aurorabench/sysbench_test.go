package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aurorabench/aurorabench/report"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/workloads"
)

// needPeer skips when a peer is missing, except under CI=true where a
// missing peer is a failure.
func needPeer(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: a missing peer is a failure)", what)
	}
	t.Skipf("%s is not installed", what)
}

var tpsRE = regexp.MustCompile(`transactions:\s+\d+\s+\(([0-9.]+) per sec\.\)`)

// TestOLTPMatchesSysbench runs sysbench oltp_read_write and aurorabench's
// oltp workload against the same MariaDB primary, through the same writer
// endpoint, with the same tables, rows and threads, one after the other, and
// reports both throughputs: the load generator must not be the bottleneck.
// AURORABENCH_OLTP_SECONDS sets the length of each run (default 5; the
// acceptance figure uses 30). No timing assertion: it logs the ratio.
func TestOLTPMatchesSysbench(t *testing.T) {
	_, err := exec.LookPath("sysbench")
	needPeer(t, err == nil, "sysbench")
	needPeer(t, mariadb.Available() == nil, "MariaDB")
	secs := 5
	if s, err := strconv.Atoi(os.Getenv("AURORABENCH_OLTP_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	const threads, tables, size = 8, 4, 10000
	ctx := context.Background()
	tgt, err := mariadb.Start(ctx, targets.Options{Replicas: 1, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(context.Background())
	cfg, err := mysql.ParseDSN(tgt.WriterDSN())
	if err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, cfg.Addr)
	sb := func(cmd string, extra ...string) string {
		args := append([]string{"oltp_read_write", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
			"--mysql-user=" + cfg.User, "--mysql-password=" + cfg.Passwd, "--mysql-db=" + cfg.DBName,
			fmt.Sprintf("--tables=%d", tables), fmt.Sprintf("--table-size=%d", size), fmt.Sprintf("--threads=%d", threads)}, extra...)
		args = append(args, cmd)
		out, err := exec.CommandContext(ctx, "sysbench", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sysbench %s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	sb("prepare")
	out := sb("run", fmt.Sprintf("--time=%d", secs), "--report-interval=0")
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no TPS in sysbench output:\n%s", out)
	}
	sysbenchTPS, _ := strconv.ParseFloat(m[1], 64)
	sb("cleanup")

	dir := t.TempDir()
	wl, err := workloads.New("oltp", workloads.Params{Tables: tables, TableSize: size})
	if err != nil {
		t.Fatal(err)
	}
	f := runFlags{workload: "oltp", nemesis: "none", out: dir, duration: time.Duration(secs) * time.Second,
		opTimeout: 10 * time.Second, concurrency: threads, seed: 1, tables: tables, tableSize: size, progress: "never"}
	code, err := runOn(ctx, tgt, wl, f, &testWriter{t})
	if err != nil || code != exitValid {
		t.Fatalf("aurorabench oltp: exit %d, %v", code, err)
	}
	sum, err := report.ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	ours := okThroughput(t, sum, "txn")
	ratio := ours / sysbenchTPS
	t.Logf("oltp_read_write on MariaDB, %d threads, %d x %d rows, %ds each: sysbench %.1f TPS, aurorabench %.1f TPS, ratio %.2f",
		threads, tables, size, secs, sysbenchTPS, ours, ratio)
	if sysbenchTPS <= 0 || ours <= 0 {
		t.Fatal("a side measured no throughput")
	}
	_ = filepath.Join
}

func okThroughput(t *testing.T, s *report.Summary, f string) float64 {
	t.Helper()
	perf, ok := s.Checks["perf"]
	if !ok {
		t.Fatal("no perf check in summary")
	}
	ops, _ := perf.Numbers["ops"].(map[string]any)
	st, _ := ops[f].(map[string]any)
	v, _ := st["throughput"].(float64)
	return v
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	t.Fatalf("bad address %q", addr)
	return "", ""
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}
