package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/targets/refdb"
)

var qpsRE = regexp.MustCompile(`queries:\s+\d+\s+\(([0-9.]+) per sec\.\)`)

// TestSysbenchRefdbVersusMariaDB runs sysbench oltp_point_select,
// oltp_read_write and oltp_write_only (8 threads, 4 x 10,000 rows) against
// a local refdb cluster and a local MariaDB primary (durable settings) in
// the same run, through each one's writer endpoint, and logs the ratios.
// It is long, so it runs only with AURORABENCH_SYSBENCH_SECONDS set (the
// seconds per test, e.g. 30). It asserts that every run completes, never
// a speed.
func TestSysbenchRefdbVersusMariaDB(t *testing.T) {
	secs, err := strconv.Atoi(os.Getenv("AURORABENCH_SYSBENCH_SECONDS"))
	if err != nil || secs <= 0 {
		t.Skip("set AURORABENCH_SYSBENCH_SECONDS to run the sysbench comparison")
	}
	_, err = exec.LookPath("sysbench")
	needPeer(t, err == nil, "sysbench")
	needPeer(t, mariadb.Available() == nil, "MariaDB")
	ctx := context.Background()
	tests := []string{"oltp_point_select", "oltp_read_write", "oltp_write_only"}
	results := map[string]map[string][2]float64{} // target -> test -> {tps, qps}
	for _, name := range []string{"refdb", "mariadb"} {
		var tgt targets.Target
		if name == "refdb" {
			tgt, err = refdb.Start(ctx, targets.Options{Replicas: 1, Log: t.Logf})
		} else {
			tgt, err = mariadb.Start(ctx, targets.Options{Replicas: 1, Log: t.Logf})
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name] = map[string][2]float64{}
		cfg, err := mysql.ParseDSN(tgt.WriterDSN())
		if err != nil {
			t.Fatal(err)
		}
		host, port := splitHostPort(t, cfg.Addr)
		sb := func(test, cmd string, extra ...string) string {
			args := append([]string{test, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
				"--mysql-user=" + cfg.User, "--mysql-password=" + cfg.Passwd, "--mysql-db=" + cfg.DBName,
				"--tables=4", "--table-size=10000", "--threads=8"}, extra...)
			args = append(args, cmd)
			cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+10*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(cctx, "sysbench", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: sysbench %s %s: %v\n%s", name, test, cmd, err, out)
			}
			return string(out)
		}
		sb("oltp_read_write", "prepare")
		for _, test := range tests {
			out := sb(test, "run", fmt.Sprintf("--time=%d", secs), "--report-interval=0")
			var tps, qps float64
			if m := tpsRE.FindStringSubmatch(out); m != nil {
				tps, _ = strconv.ParseFloat(m[1], 64)
			}
			if m := qpsRE.FindStringSubmatch(out); m != nil {
				qps, _ = strconv.ParseFloat(m[1], 64)
			}
			if tps <= 0 {
				t.Fatalf("%s %s: no throughput in\n%s", name, test, out)
			}
			results[name][test] = [2]float64{tps, qps}
			t.Logf("%s %s: %.1f TPS, %.1f QPS", name, test, tps, qps)
		}
		sb("oltp_read_write", "cleanup")
		_ = tgt.Close(ctx)
	}
	for _, test := range tests {
		r, m := results["refdb"][test], results["mariadb"][test]
		t.Logf("%-18s refdb %8.1f TPS  mariadb %8.1f TPS  ratio %.2f", test, r[0], m[0], r[0]/m[0])
	}
}
