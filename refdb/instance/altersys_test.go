package instance_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
	"github.com/aurorabench/aurorabench/refdb/instance"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/sqlfront"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

func sqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// faultProbe asks storage nodes for their injected-fault state over its own authenticated
// connections (a read-only volume handle: no recovery, no epoch).
type faultProbe struct{ v *volume.Volume }

func newProbe(t *testing.T, c *localvol.Cluster) *faultProbe {
	t.Helper()
	v, err := volume.Open(context.Background(), volume.Config{ID: "fault-probe", Nodes: c.Peers, PGs: c.PGs, Secret: c.Secret,
		ReadOnly: true, Logger: localvol.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return &faultProbe{v: v}
}

func (p *faultProbe) state(t *testing.T, node string) redo.FaultState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.v.InjectFault(ctx, node, redo.FaultSpec{Kind: redo.FaultQuery})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// ALTER SYSTEM SIMULATE … DISK FAILURE and … DISK CONGESTION act on the storage nodes: two
// failed nodes leave a write quorum, failing every node makes writes fail with a MySQL error
// (not a hang), and the nodes expire the fault by themselves, after which writes succeed
// again. Malformed statements get 1064, out-of-range indexes 1210, a reader 1290.
func TestAlterSystemDiskFaults(t *testing.T) {
	defer instanceapi.CloseIdle()
	c := startStorage(t, 2)
	wAdmin, rAdmin := freeAddr(t), freeAddr(t)
	w := startInstance(t, c, instance.Config{Role: "writer", ID: "db1", AZ: "az1", Admin: wAdmin, Create: true, CommitTimeout: 2 * time.Second})
	defer w.stop(t)
	db := open(t, w.mysql)
	defer db.Close()
	seedBench(t, db)
	probe := newProbe(t, c)

	// Syntax and range errors.
	for q, want := range map[string]uint16{
		"ALTER SYSTEM CRASH SOMETHING":                                                   1064,
		"ALTER SYSTEM SIMULATE 200 PERCENT DISK FAILURE FOR INTERVAL 1 SECOND":           1064,
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE IN NODE 6 FOR INTERVAL 1 SECOND":  1210,
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE IN DISK 12 FOR INTERVAL 1 SECOND": 1210,
	} {
		if _, err := db.Exec(q); sqlErrNo(err) != want {
			t.Errorf("%s: %v, want error %d", q, err, want)
		}
	}
	// The connection is still usable after those errors.
	mustExec(t, db, "INSERT INTO bench.t VALUES (2, 2)")

	// 100% failure on two nodes: 4 of 6 segments still take writes.
	mustExec(t, db, "ALTER SYSTEM SIMULATE 100 PERCENT DISK FAILURE IN NODE 0 FOR INTERVAL 1 HOUR")
	mustExec(t, db, "ALTER SYSTEM SIMULATE 100 PERCENT DISK FAILURE NODE 1 FOR INTERVAL 1 HOUR")
	for i := 10; i < 20; i++ {
		mustExec(t, db, fmt.Sprintf("INSERT INTO bench.t VALUES (%d, %d)", i, i))
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM bench.t").Scan(&n); err != nil || n != 12 {
		t.Fatalf("with two failed nodes: %d rows, %v", n, err)
	}
	for k, node := range []string{"s1", "s2"} {
		st := probe.state(t, node)
		if len(st.Active) != 1 || st.Active[0].Spec.Kind != redo.FaultDiskFailure || !st.Active[0].Spec.AllPGs || st.Failed == 0 {
			t.Fatalf("NODE %d (%s) fault state %+v", k, node, st)
		}
	}
	if st := probe.state(t, "s3"); len(st.Active) != 0 || st.Failed != 0 {
		t.Fatalf("s3 has faults: %+v", st)
	}
	// Clear them (through the volume; SQL has no clear statement, faults expire by themselves).
	for _, node := range []string{"s1", "s2"} {
		if _, err := probe.v.InjectFault(context.Background(), node, redo.FaultSpec{Kind: redo.FaultClear}); err != nil {
			t.Fatal(err)
		}
	}

	// 100% failure everywhere for a few seconds: a read that needs storage fails with a
	// MySQL error; a write fails within the commit timeout, with a MySQL error if it needed
	// storage to read, else (it read from memory and its commit cannot reach a quorum) with
	// the connection closed, as its outcome is unknown; then the nodes expire the fault and
	// writes succeed again.
	mustExec(t, db, "CREATE TABLE bench.unread (id INT PRIMARY KEY, v INT)")
	mustExec(t, db, "ALTER SYSTEM SIMULATE 100 PERCENT DISK FAILURE FOR INTERVAL 4 SECOND")
	var v int
	err := db.QueryRow("SELECT v FROM bench.unread WHERE id = 1").Scan(&v)
	if no := sqlErrNo(err); no != 1030 {
		t.Fatalf("read from storage with every disk failing: %v, want error 1030", err)
	}
	_, err = db.Exec("INSERT INTO bench.t VALUES (100, 100)")
	if no := sqlErrNo(err); no != 1180 && no != 1030 && !errors.Is(err, mysql.ErrInvalidConn) {
		t.Fatalf("write with every disk failing: %v, want error 1180 or 1030 or a closed connection", err)
	}
	t.Logf("write during the failure: %v", err)
	waitFor(t, func() bool {
		for _, p := range c.Peers {
			if len(probe.state(t, p.ID).Active) != 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, func() bool {
		_, err := db.Exec("INSERT INTO bench.t VALUES (101, 101)")
		return err == nil || sqlErrNo(err) == 1062
	})
	if err := db.QueryRow("SELECT v FROM bench.t WHERE id = 101").Scan(&n); err != nil || n != 101 {
		t.Fatalf("after the failure interval: %d, %v", n, err)
	}

	// Congestion: writes still succeed; the nodes report the fault and the requests they delayed.
	mustExec(t, db, "ALTER SYSTEM SIMULATE 100 PERCENT DISK CONGESTION BETWEEN 5 AND 20 MILLISECONDS IN DISK 2 FOR INTERVAL 1 HOUR")
	mustExec(t, db, "ALTER SYSTEM SIMULATE 100 PERCENT DISK CONGESTION BETWEEN 5 AND 20 MILLISECONDS IN DISK 9 FOR INTERVAL 1 HOUR")
	for i := 200; i < 220; i++ {
		mustExec(t, db, fmt.Sprintf("INSERT INTO bench.t VALUES (%d, %d)", i, i))
	}
	// DISK 2 = PG 0 on s3; DISK 9 = PG 1 on s4. The table's rows are in PG 0 (keys below
	// 0x80), so only s3 has delayed requests for sure.
	for node, pg := range map[string]uint32{"s3": 0, "s4": 1} {
		st := probe.state(t, node)
		if len(st.Active) != 1 || st.Active[0].Spec.Kind != redo.FaultDiskCongestion || st.Active[0].Spec.AllPGs ||
			st.Active[0].Spec.PG != pg || (pg == 0 && st.Delayed == 0) {
			t.Fatalf("%s congestion state %+v", node, st)
		}
	}

	// A reader refuses ALTER SYSTEM with 1290.
	r := startInstance(t, c, instance.Config{Role: "reader", ID: "db2", AZ: "az2", Admin: rAdmin, Peers: []string{wAdmin, rAdmin}})
	defer r.stop(t)
	rdb := open(t, r.mysql)
	defer rdb.Close()
	if _, err := rdb.Exec("ALTER SYSTEM CRASH INSTANCE"); sqlErrNo(err) != 1290 {
		t.Fatalf("ALTER SYSTEM on a reader: %v, want 1290", err)
	}
}

// ALTER SYSTEM CRASH DISPATCHER drops the storage connections and every client connection;
// the instance keeps serving with its data. CRASH INSTANCE / NODE call the crash hook (in a
// real process: SIGKILL, see TestAlterSystemCrashInstanceProcess).
func TestAlterSystemCrashDispatcher(t *testing.T) {
	defer instanceapi.CloseIdle()
	c := startStorage(t, 1)
	crashed := make(chan sqlfront.CrashKind, 2)
	w := startInstance(t, c, instance.Config{Role: "writer", ID: "db1", AZ: "az1", Create: true,
		Crash: func(k sqlfront.CrashKind) { crashed <- k }})
	defer w.stop(t)
	db := open(t, w.mysql)
	defer db.Close()
	seedBench(t, db)
	ctx := context.Background()
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "UPDATE bench.t SET v = 99 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER SYSTEM CRASH DISPATCHER"); err == nil {
		t.Log("CRASH DISPATCHER answered before its connection dropped")
	}
	conn.Close()
	// The open transaction's connection is gone and its change rolled back (its lock too).
	if _, err := other.ExecContext(ctx, "COMMIT"); err == nil {
		t.Fatal("COMMIT on a connection the dispatcher crash dropped succeeded")
	}
	var v int
	waitFor(t, func() bool { return db.QueryRow("SELECT v FROM bench.t WHERE id = 1").Scan(&v) == nil })
	if v != 1 {
		t.Fatalf("uncommitted update visible after the dispatcher crash: v = %d", v)
	}
	mustExec(t, db, "UPDATE bench.t SET v = 2 WHERE id = 1")
	mustExec(t, db, "INSERT INTO bench.t VALUES (2, 2)")
	for _, q := range []string{"ALTER SYSTEM CRASH NODE", "ALTER SYSTEM CRASH"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s with a test crash hook: %v", q, err)
		}
	}
	if a, b := <-crashed, <-crashed; a != sqlfront.CrashNode || b != sqlfront.CrashInstance {
		t.Fatalf("crash hook got %s, %s", a, b)
	}
}

// ALTER SYSTEM CRASH INSTANCE kills the writer process at once (the client's connection
// drops, the process dies of SIGKILL); a restart (what the control plane does) recovers every
// acknowledged commit.
func TestAlterSystemCrashInstanceProcess(t *testing.T) {
	c := startStorage(t, 2)
	w := startChild(t, c, "db1")
	db, err := sql.Open("mysql", "admin:pw@tcp("+w.addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "CREATE DATABASE bench")
	mustExec(t, db, "CREATE TABLE bench.t (id INT PRIMARY KEY, v INT)")
	for i := 0; i < 50; i++ {
		mustExec(t, db, fmt.Sprintf("INSERT INTO bench.t VALUES (%d, %d)", i, i))
	}
	_, err = db.Exec("ALTER SYSTEM CRASH INSTANCE")
	if err == nil {
		t.Fatal("ALTER SYSTEM CRASH INSTANCE answered OK: the process should have died first")
	}
	db.Close()
	werr := w.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) {
		t.Fatalf("writer exit: %v", werr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer exit %v: want death by SIGKILL", werr)
	}
	t.Logf("client saw %v; writer %v", err, werr)

	w2 := startChild(t, c, "db2")
	db2, err := sql.Open("mysql", "admin:pw@tcp("+w2.addr+")/bench")
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n, sum int
	if err := db2.QueryRow("SELECT COUNT(*), SUM(v) FROM t").Scan(&n, &sum); err != nil || n != 50 || sum != 49*50/2 {
		t.Fatalf("after the crash and restart: %d rows, sum %d, %v", n, sum, err)
	}
	if _, err := db2.Exec("INSERT INTO t VALUES (50, 50)"); err != nil {
		t.Fatal(err)
	}
}
