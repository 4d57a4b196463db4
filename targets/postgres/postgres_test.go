package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/internal/local"
	"github.com/aurorabench/aurorabench/targets/proc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(proc.IgnoreSpawner))
}

func needBinaries(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// eventually retries f until it succeeds or the time is up; replication is
// asynchronous, so visibility is awaited, never timed.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func hasRow(db *sql.DB, id int) error {
	var v int
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id=$1", id).Scan(&v); err != nil {
		return err
	}
	if v != id*10 {
		return errors.New("wrong value")
	}
	return nil
}

func insert(db *sql.DB, id int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx, "INSERT INTO t (id, v) VALUES ($1, $2)", id, id*10)
	return err
}

func TestClusterFailoverAndRejoin(t *testing.T) {
	needBinaries(t)
	ctx := context.Background()
	began := time.Now()
	// AURORABENCH_TEST_DIR keeps the node folders and logs for a look.
	keep := os.Getenv("AURORABENCH_TEST_DIR")
	tg, err := Start(ctx, targets.Options{Log: t.Logf, Dir: keep})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("startup took %v", time.Since(began))
	c := tg.(*Cluster)
	var pids []int
	defer func() {
		for _, n := range c.nodes {
			if pid := n.PID(); pid != 0 {
				pids = append(pids, pid)
			}
		}
		if err := tg.Close(ctx); err != nil {
			t.Error(err)
		}
		for _, pid := range pids {
			if !local.Gone(pid) {
				t.Errorf("process %d still exists after Close", pid)
			}
		}
		if _, err := os.Stat(c.dir); keep == "" && !os.IsNotExist(err) {
			t.Errorf("temp folder %s not removed", c.dir)
		}
	}()

	nodes := tg.Nodes()
	if len(nodes) != 3 || targets.Writer(tg) != nodes[0] || len(targets.Readers(tg)) != 2 {
		t.Fatalf("unexpected topology")
	}
	for i, n := range nodes {
		if n.PID() == 0 {
			t.Fatalf("%s not running", n.ID())
		}
		if want := []string{"az1", "az2", "az3"}[i]; n.AZ() != want {
			t.Errorf("%s in %s, want %s", n.ID(), n.AZ(), want)
		}
		pids = append(pids, n.PID())
	}

	w := open(t, tg.WriterDSN())
	r := open(t, tg.ReaderDSN())
	if _, err := w.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	if err := insert(w, 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "row 1 on reader", func() error { return hasRow(r, 1) })

	// Replicas are read-only for the bench user.
	rep := open(t, nodes[1].DSN())
	if err := insert(rep, 99); err == nil {
		t.Fatal("write on a replica succeeded")
	}

	// Row 2 reaches only the primary: the standbys stop streaming first,
	// so after the failover the old primary has diverged and needs pg_rewind.
	for _, n := range c.nodes[1:] {
		if err := n.exec(ctx, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "standbys disconnected", func() error {
		var k int
		if err := c.nodes[0].queryRow(ctx, "SELECT count(*) FROM pg_stat_replication", &k); err != nil || k != 0 {
			return fmt.Errorf("%d still streaming (%v)", k, err)
		}
		return nil
	})
	if err := insert(w, 2); err != nil {
		t.Fatal(err)
	}

	old := nodes[0]
	if err := old.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if old.PID() != 0 {
		t.Fatal("killed node still has a pid")
	}
	fo := time.Now()
	if err := tg.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("failover took %v", time.Since(fo))
	nw := targets.Writer(tg)
	if nw == nil || nw == old || old.Role() != targets.RoleReader {
		t.Fatalf("roles after failover: writer %v, old primary %s", nw, old.Role())
	}
	eventually(t, "write after failover", func() error { return insert(w, 3) })
	t.Logf("first write after failover at %v", time.Since(fo))
	eventually(t, "row 3 on reader", func() error { return hasRow(r, 3) })
	if err := hasRow(w, 2); err == nil {
		t.Log("row 2 survived the failover (it reached a replica)")
	}

	// The old primary rejoins as a replica of the new one.
	st := time.Now()
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("old primary rejoined in %v", time.Since(st))
	if old.Role() != targets.RoleReader || old.PID() == 0 {
		t.Fatalf("old primary: role %s pid %d", old.Role(), old.PID())
	}
	pids = append(pids, old.PID())
	direct := open(t, old.DSN())
	if err := insert(w, 4); err != nil {
		t.Fatal(err)
	}
	eventually(t, "row 4 on old primary", func() error { return hasRow(direct, 4) })
	eventually(t, "row 3 on old primary", func() error { return hasRow(direct, 3) })
	if err := hasRow(direct, 2); err == nil {
		t.Error("old primary kept row 2, which the cluster lost")
	}
	var recovering bool
	if err := old.(*Node).queryRow(ctx, "SELECT pg_is_in_recovery()", &recovering); err != nil || !recovering {
		t.Fatalf("old primary is not a standby: %v", err)
	}
	if err := insert(direct, 98); err == nil {
		t.Fatal("write on the rejoined old primary succeeded")
	}

	// A replica killed and started again rejoins without a rebuild.
	rn := targets.Readers(tg)[0]
	if rn == old {
		rn = targets.Readers(tg)[1]
	}
	if err := rn.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := insert(w, 5); err != nil {
		t.Fatal(err)
	}
	if err := rn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, rn.PID())
	eventually(t, "row 5 on restarted replica", func() error { return hasRow(open(t, rn.DSN()), 5) })

	// Rebuild (the fallback when pg_rewind fails) of a killed standby.
	if err := rn.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.rebuild(ctx, rn.(*Node), c.Primary()); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, rn.PID())
	if err := rn.(*Node).waitStreaming(ctx, c.Primary()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "row 5 on rebuilt standby", func() error { return hasRow(open(t, rn.DSN()), 5) })

	// The primary killed and started again without a failover stays
	// the primary.
	wn := targets.Writer(tg)
	if err := wn.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, wn.PID())
	if targets.Writer(tg) != wn {
		t.Fatal("restarted primary lost its role")
	}
	eventually(t, "write after primary restart", func() error { return insert(w, 6) })
	eventually(t, "row 6 on reader", func() error { return hasRow(open(t, rn.DSN()), 6) })

	// Pause/Resume of a reader.
	if err := rn.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rn.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "row 1 via reader after resume", func() error { return hasRow(r, 1) })

	// A node that cannot start (its port taken) is a setup error naming
	// the cause, and leaves no process.
	if err := rn.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", rn.Addr())
	if err != nil {
		t.Fatal(err)
	}
	err = rn.Start(ctx)
	ln.Close()
	if !errors.Is(err, targets.ErrSetup) || !strings.Contains(err.Error(), "in use") || rn.PID() != 0 {
		t.Fatalf("start on a taken port: %v (pid %d)", err, rn.PID())
	}
	if err := rn.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, rn.PID())
}

func TestSetupErrors(t *testing.T) {
	needBinaries(t)
	_, err := Start(context.Background(), targets.Options{Dir: "/proc/nope"})
	if !errors.Is(err, targets.ErrSetup) {
		t.Fatalf("got %v, want a setup error", err)
	}
}

func TestLSN(t *testing.T) {
	if v := parseLSN("16/B374D848"); v != 0x16B374D848 || formatLSN(v) != "16/B374D848" {
		t.Fatalf("%x", v)
	}
	if parseLSN("") != 0 {
		t.Fatal("empty lsn")
	}
}
