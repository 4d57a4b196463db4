package instance_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
	"github.com/aurorabench/aurorabench/refdb/instance"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

type running struct {
	cancel context.CancelFunc
	done   chan error
	mysql  string
}

func startInstance(t *testing.T, c *localvol.Cluster, cfg instance.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	cfg.Storage, cfg.PGs, cfg.Secret, cfg.User, cfg.Password = c.Peers, c.PGs, c.Secret, "admin", "pw"
	cfg.MySQL, cfg.Logger, cfg.Ready = "127.0.0.1:0", localvol.Quiet(), func(a string) { ready <- a }
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- instance.Run(ctx, cfg) }()
	select {
	case r.mysql = <-ready:
	case err := <-r.done:
		cancel()
		t.Fatalf("instance %s: %v", cfg.ID, err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("instance %s did not start", cfg.ID)
	}
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("instance stop: %v", err)
	}
}

// startStorage starts six in-process storage servers hosting pgs protection groups, stopped
// when the test ends.
func startStorage(t *testing.T, pgs int) *localvol.Cluster {
	t.Helper()
	c, err := localvol.Start(t.TempDir(), pgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// seedBench creates bench.t (id, v) holding the row (1, 1).
func seedBench(t *testing.T, db *sql.DB) {
	t.Helper()
	mustExec(t, db, "CREATE DATABASE bench")
	mustExec(t, db, "CREATE TABLE bench.t (id INT PRIMARY KEY, v INT)")
	mustExec(t, db, "INSERT INTO bench.t VALUES (1, 1)")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	s, err := instanceapi.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Addr()
	s.Serve(canceled())
	return a
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// A writer streams to a reader: rows appear on the reader, its read point only moves forward,
// writes there fail with 1290; after the writer stops, the promoted reader has every
// acknowledged row and accepts writes.
func TestReaderFollowsAndPromotes(t *testing.T) {
	defer instanceapi.CloseIdle()
	c := startStorage(t, 2)
	wAdmin, rAdmin := freeAddr(t), freeAddr(t)
	w := startInstance(t, c, instance.Config{Role: "writer", ID: "db1", AZ: "az1", Admin: wAdmin, Create: true})
	wStopped := false
	defer func() {
		if !wStopped {
			w.stop(t)
		}
	}()
	r := startInstance(t, c, instance.Config{Role: "reader", ID: "db2", AZ: "az2", Admin: rAdmin, Peers: []string{wAdmin, rAdmin}})
	defer r.stop(t)

	wdb := open(t, w.mysql)
	defer wdb.Close()
	rdb := open(t, r.mysql)
	defer rdb.Close()
	ctx := context.Background()
	mustExec(t, wdb, "CREATE DATABASE bench")
	mustExec(t, wdb, "CREATE TABLE bench.t (id INT PRIMARY KEY, v INT)")
	rc := instanceapi.NewClient(rAdmin)
	var lastRP uint64
	checkRP := func() instanceapi.Status {
		t.Helper()
		st, err := rc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ReadPoint < lastRP || st.ReadPoint > st.VDL {
			t.Fatalf("reader read point %d after %d (vdl %d)", st.ReadPoint, lastRP, st.VDL)
		}
		lastRP = st.ReadPoint
		return st
	}
	acked := 0
	for i := 1; i <= 30; i++ {
		mustExec(t, wdb, fmt.Sprintf("INSERT INTO bench.t VALUES (%d, %d)", i, i*10))
		acked = i
		if i%10 == 0 {
			// The row becomes visible on the reader (it polls; the stream is asynchronous).
			waitFor(t, func() bool {
				checkRP()
				var n int
				err := rdb.QueryRow("SELECT COUNT(*) FROM bench.t").Scan(&n)
				return err == nil && n == i
			})
		}
	}
	mustExec(t, wdb, "UPDATE bench.t SET v = 7 WHERE id = 1")
	waitFor(t, func() bool {
		var v int
		return rdb.QueryRow("SELECT v FROM bench.t WHERE id = 1").Scan(&v) == nil && v == 7
	})
	// Prepared writes by primary key (sqlfront's point writes) reach the reader like any commit.
	if _, err := wdb.Exec("UPDATE bench.t SET v = v + ? WHERE id = ?", 5, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := wdb.Exec("DELETE FROM bench.t WHERE id = ?", acked); err != nil {
		t.Fatal(err)
	}
	acked-- // rows acknowledged and not deleted
	waitFor(t, func() bool {
		var v, n int
		return rdb.QueryRow("SELECT v FROM bench.t WHERE id = 2").Scan(&v) == nil && v == 25 &&
			rdb.QueryRow("SELECT COUNT(*) FROM bench.t").Scan(&n) == nil && n == acked
	})
	st := checkRP()
	if st.Role != instanceapi.RoleReader || !st.Healthy {
		t.Fatalf("reader status %+v", st)
	}
	// Every kind of write on the reader answers 1290, those that would first reserve
	// auto-increment values or rewrite the catalog included, and the connection stays usable.
	mustExec(t, wdb, "CREATE TABLE bench.ai (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")
	mustExec(t, wdb, "INSERT INTO bench.ai (v) VALUES (1)")
	waitFor(t, func() bool {
		var n int
		return rdb.QueryRow("SELECT COUNT(*) FROM bench.ai").Scan(&n) == nil && n == 1
	})
	rconn, err := rdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close()
	for _, q := range []string{
		"INSERT INTO bench.t VALUES (1000, 1)",
		"INSERT INTO bench.ai (v) VALUES (2)",
		"INSERT INTO bench.ai (id, v) VALUES (50, 2)",
		"REPLACE INTO bench.ai (v) VALUES (3)",
		"INSERT INTO bench.ai (v) SELECT v FROM bench.t LIMIT 1",
		"UPDATE bench.t SET v = 1 WHERE id = 3",
		"DELETE FROM bench.ai",
		"TRUNCATE TABLE bench.ai",
		"ALTER TABLE bench.ai AUTO_INCREMENT = 1000",
		"CREATE TABLE bench.nope (id INT PRIMARY KEY)",
		"DROP TABLE bench.ai",
	} {
		_, err := rconn.ExecContext(ctx, q)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1290 {
			t.Fatalf("%s on the reader: %v, want error 1290", q, err)
		}
	}
	if err := rconn.PingContext(ctx); err != nil {
		t.Fatalf("the reader closed the connection after refusing writes: %v", err)
	}
	ws, err := instanceapi.NewClient(wAdmin).Status(ctx)
	if err != nil || ws.Role != instanceapi.RoleWriter || ws.ReadPoint != ws.VDL || !ws.Healthy {
		t.Fatalf("writer status %+v %v", ws, err)
	}
	var rows int
	if err := wdb.QueryRow("SELECT COUNT(*) FROM information_schema.replica_host_status").Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("replica_host_status on the writer: %d rows, %v", rows, err)
	}

	wdb.Close()
	w.stop(t)
	wStopped = true
	pst, err := rc.Promote(ctx, instanceapi.PromoteRequest{MinEpoch: ws.Epoch + 1})
	if err != nil {
		t.Fatal(err)
	}
	if pst.Role != instanceapi.RoleWriter || pst.Epoch < ws.Epoch+1 {
		t.Fatalf("promoted status %+v", pst)
	}
	var n, v int
	if err := rdb.QueryRow("SELECT COUNT(*) FROM bench.t").Scan(&n); err != nil || n != acked {
		t.Fatalf("after promote: %d rows (%v), want %d", n, err, acked)
	}
	if err := rdb.QueryRow("SELECT v FROM bench.t WHERE id = 1").Scan(&v); err != nil || v != 7 {
		t.Fatalf("after promote: v = %d (%v)", v, err)
	}
	mustExec(t, rdb, "INSERT INTO bench.t VALUES (1000, 1)")
	mustExec(t, rdb, "UPDATE bench.t SET v = v + 1 WHERE id = 2")
}

func open(t *testing.T, addr string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", "admin:pw@tcp("+addr+")/")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A reader answers repeated scans from its mirror (engine.Mirror), and what it answers is
// exactly the writer's content once its read point passed the writer's last commit: inserts,
// updates, deletes, a secondary index and a range that grows at its end, as the lag
// workload's polls do.
func TestReaderMirrorIsExact(t *testing.T) {
	defer instanceapi.CloseIdle()
	c := startStorage(t, 2)
	wAdmin, rAdmin := freeAddr(t), freeAddr(t)
	w := startInstance(t, c, instance.Config{Role: "writer", ID: "db1", AZ: "az1", Admin: wAdmin, Create: true})
	defer w.stop(t)
	r := startInstance(t, c, instance.Config{Role: "reader", ID: "db2", AZ: "az2", Admin: rAdmin, Peers: []string{wAdmin, rAdmin}})
	defer r.stop(t)
	wdb, rdb := open(t, w.mysql), open(t, r.mysql)
	defer wdb.Close()
	defer rdb.Close()
	ctx := context.Background()
	mustExec(t, wdb, "CREATE DATABASE bench")
	mustExec(t, wdb, "CREATE TABLE bench.t (id INT PRIMARY KEY, v INT, KEY kv (v))")
	wc, rc := instanceapi.NewClient(wAdmin), instanceapi.NewClient(rAdmin)
	dump := func(db *sql.DB, q string) string {
		t.Helper()
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var id, v int
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d=%d ", id, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	queries := []string{
		"SELECT id, v FROM bench.t WHERE id > 0 ORDER BY id",
		"SELECT id, v FROM bench.t WHERE id > 40 ORDER BY id LIMIT 10000",
		"SELECT id, v FROM bench.t WHERE v BETWEEN 100 AND 400 ORDER BY v, id",
		"SELECT id, v FROM bench.t WHERE id = 7",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[int]int{} // what the table must hold, for the first query (both sides mirror)
	modelDump := func() string {
		var b strings.Builder
		for id := 1; id <= 60; id++ {
			if v, ok := model[id]; ok {
				fmt.Fprintf(&b, "%d=%d ", id, v)
			}
		}
		return b.String()
	}
	for step := 0; step < 120; step++ {
		id := 1 + rng.IntN(60)
		switch rng.IntN(4) {
		case 0:
			mustExec(t, wdb, fmt.Sprintf("DELETE FROM bench.t WHERE id = %d", id))
			delete(model, id)
		case 1:
			mustExec(t, wdb, fmt.Sprintf("UPDATE bench.t SET v = v + 7 WHERE id = %d", id))
			if v, ok := model[id]; ok {
				model[id] = v + 7
			}
		default:
			v := rng.IntN(500)
			mustExec(t, wdb, fmt.Sprintf("REPLACE INTO bench.t VALUES (%d, %d)", id, v))
			model[id] = v
		}
		if got := dump(wdb, queries[0]); got != modelDump() {
			t.Fatalf("step %d: writer has %s\nwant %s", step, got, modelDump())
		}
		ws, err := wc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			st, err := rc.Status(ctx)
			return err == nil && st.ReadPoint >= ws.VDL
		})
		for _, q := range queries {
			if got, want := dump(rdb, q), dump(wdb, q); got != want {
				t.Fatalf("step %d: %s\nreader %s\nwriter %s", step, q, got, want)
			}
		}
	}
	if st, err := wc.Status(ctx); err != nil || st.MirrorHits < st.MirrorMisses {
		t.Fatalf("writer answered %d reads from its mirror and sent %d to storage (%v): want most from the mirror", st.MirrorHits, st.MirrorMisses, err)
	}
	st, err := rc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.MirrorHits < st.MirrorMisses {
		t.Fatalf("reader answered %d reads from its mirror and sent %d to storage: want most from the mirror", st.MirrorHits, st.MirrorMisses)
	}
	if st.StreamLag == nil || st.StreamLag.Count == 0 {
		t.Fatalf("reader status has no stream lag: %+v", st.StreamLag)
	}
}
