package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/aurorabench/aurorabench/refdb/volume"
)

var benchConc = flag.Int("bench-conc", 32, "concurrent committers in the durable-commit benchmarks")

// runCommitters runs b.N commits over *benchConc goroutines and reports commits/s and latency.
func runCommitters(b *testing.B, commit func(ctx context.Context, i int) error) {
	ctx := context.Background()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < *benchConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := commit(cctx, i)
				cancel()
				if err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkDurableCommits measures single-write transactions committed through refdb/volume on
// 6 fsyncing `refdb storage` processes (4/6 write quorum, 2 per AZ, all on this machine).
func BenchmarkDurableCommits(b *testing.B) {
	c := startCluster(b)
	v := c.open(context.Background(), "bench-writer", true)
	defer v.Close()
	runCommitters(b, func(ctx context.Context, i int) error {
		key := []byte(fmt.Sprintf("%c-row-%d", byte(i*131%256), i))
		_, err := v.Commit(ctx, []volume.Op{{Key: key, Value: []byte("payload-of-a-single-row-insert")}})
		return err
	})
}

// BenchmarkMariaDBDurableInserts measures autocommit single-row INSERTs on a local MariaDB with
// innodb_flush_log_at_trx_commit=1 and sync_binlog=1, for comparison on the same machine.
func BenchmarkMariaDBDurableInserts(b *testing.B) {
	mariadbd, err1 := exec.LookPath("mariadbd")
	installDB, err2 := exec.LookPath("mariadb-install-db")
	if err1 != nil || err2 != nil {
		b.Skip("mariadbd / mariadb-install-db not installed")
	}
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(installDB, "--no-defaults", "--datadir="+data, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		b.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "sock")
	logf, err := os.Create(filepath.Join(dir, "mariadbd.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(mariadbd, "--no-defaults", "--datadir="+data, "--socket="+sock, "--skip-networking", "--user=root",
		"--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1", "--log-bin="+filepath.Join(dir, "binlog"), "--server-id=1",
		"--max-connections=1000")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // only the mariadbd this benchmark started, by its PID
		_ = cmd.Wait()
	}()
	db, err := sql.Open("mysql", "root@unix("+sock+")/")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(*benchConc)
	db.SetMaxIdleConns(*benchConc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if err := db.PingContext(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			b.Fatalf("mariadbd did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, q := range []string{"CREATE DATABASE bench", "CREATE TABLE bench.t (k VARBINARY(64) PRIMARY KEY, v VARBINARY(255)) ENGINE=InnoDB"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	runCommitters(b, func(ctx context.Context, i int) error {
		_, err := db.ExecContext(ctx, "INSERT INTO bench.t VALUES (?, ?)", fmt.Sprintf("row-%d", i), "payload-of-a-single-row-insert")
		return err
	})
}
