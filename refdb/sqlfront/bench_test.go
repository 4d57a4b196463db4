package sqlfront_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// sysbench-shaped table: the same columns and secondary index as sysbench's oltp tables.
const benchRows = 10000

func benchTable(b *testing.B) *writer {
	b.Helper()
	w := startWriter(b)
	mustExec(b, w.db(""), "CREATE DATABASE sbtest")
	db := w.db("sbtest")
	mustExec(b, db, "CREATE TABLE sbtest1 (id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY k_1 (k))")
	for i := 0; i < benchRows; i += 500 {
		q := "INSERT INTO sbtest1 (id, k, c, pad) VALUES "
		for j := i; j < i+500; j++ {
			if j > i {
				q += ","
			}
			q += fmt.Sprintf("(%d, %d, '%0120d', '%060d')", j+1, rand.IntN(benchRows), j, j)
		}
		mustExec(b, db, q)
	}
	return w
}

// benchPrepared runs op on a prepared statement from 8 clients over the sysbench table.
func benchPrepared(b *testing.B, query string, op func(*sql.Stmt) error) {
	benchStmts(b, []string{query}, func(_ int, st []*sql.Stmt) error { return op(st[0]) })
}

// benchStmts runs op on prepared statements from 8 clients over the sysbench table; worker
// numbers the client (0, 1, ...), for operations that must not collide on a row.
func benchStmts(b *testing.B, queries []string, op func(worker int, st []*sql.Stmt) error) {
	w := benchTable(b)
	db := w.db("sbtest")
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	var stmts []*sql.Stmt
	for _, q := range queries {
		st, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		stmts = append(stmts, st)
	}
	var workers atomic.Int32
	b.SetParallelism(4) // 2 cores x 4 = 8 clients
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		worker := int(workers.Add(1)) - 1
		for pb.Next() {
			if err := op(worker, stmts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPointSelect is sysbench oltp_point_select through the MySQL protocol and the
// binary prepared-statement path: one primary-key lookup per operation, 8 clients.
func BenchmarkPointSelect(b *testing.B) {
	benchPrepared(b, "SELECT c FROM sbtest1 WHERE id=?", func(st *sql.Stmt) error {
		var c string
		return st.QueryRow(rand.IntN(benchRows) + 1).Scan(&c)
	})
}

// BenchmarkIndexUpdate is sysbench's index update: UPDATE ... SET k=k+1 WHERE id=?, an
// autocommit write through the volume.
func BenchmarkIndexUpdate(b *testing.B) {
	benchPrepared(b, "UPDATE sbtest1 SET k=k+1 WHERE id=?", func(st *sql.Stmt) error {
		_, err := st.Exec(rand.IntN(benchRows) + 1)
		return err
	})
}

// BenchmarkNonIndexUpdate is sysbench's non-index update: UPDATE ... SET c=? WHERE id=?.
func BenchmarkNonIndexUpdate(b *testing.B) {
	benchPrepared(b, "UPDATE sbtest1 SET c=? WHERE id=?", func(st *sql.Stmt) error {
		_, err := st.Exec(fmt.Sprintf("%0120d", rand.Int64()), rand.IntN(benchRows)+1)
		return err
	})
}

// BenchmarkDeleteInsert is sysbench's delete/insert pair: DELETE ... WHERE id=? and the
// INSERT of the same id, each autocommit. Each client works on its own ids (id-1 = worker
// mod 16), so clients never delete each other's rows between the two statements.
func BenchmarkDeleteInsert(b *testing.B) {
	benchStmts(b, []string{"DELETE FROM sbtest1 WHERE id=?", "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)"},
		func(worker int, st []*sql.Stmt) error {
			if worker >= 16 {
				return fmt.Errorf("worker %d: ids are striped for 16 clients", worker)
			}
			id := rand.IntN(benchRows/16)*16 + worker + 1
			if _, err := st[0].Exec(id); err != nil {
				return err
			}
			_, err := st[1].Exec(id, rand.IntN(benchRows), fmt.Sprintf("%0120d", id), fmt.Sprintf("%060d", id))
			return err
		})
}
