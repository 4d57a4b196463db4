package sqlfront_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
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
	w := benchTable(b)
	db := w.db("sbtest")
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	stmt, err := db.Prepare(query)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.SetParallelism(4) // 2 cores x 4 = 8 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(stmt); err != nil {
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
