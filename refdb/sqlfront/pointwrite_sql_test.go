package sqlfront_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestPointWrites checks the prepared UPDATE / DELETE fast path (pointwrite.go) against
// go-mysql-server's plan. Every statement runs twice over twin tables with the same rows: as
// is on table pwa (a point write), and with a leading comment on table pwb, which the fast
// path declines, so go-mysql-server plans and executes the same prepared statement with the
// same bound arguments. Results, errors, session state and the final contents (through the
// primary and the secondary indexes) must be the same.
func TestPointWrites(t *testing.T) {
	w, db := benchWriter(t)
	ctx := w.ctx
	for _, tbl := range []string{"pwa", "pwb"} {
		mustExec(t, db, "CREATE TABLE "+tbl+` (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, Name VARCHAR(5) NOT NULL,
			n INT, k INT NOT NULL DEFAULT 0, t TINYINT, d DECIMAL(6,2), s VARCHAR(20),
			KEY k_idx (k), UNIQUE KEY n_u (n))`)
		mustExec(t, db, "INSERT INTO "+tbl+` VALUES (1, 'one', 10, 1, 1, 1.50, 'a'), (2, 'two', NULL, 2, NULL, NULL, NULL),
			(3, 'three', 30, 3, 127, 0, ''), (4, 'four', 40, 4, -128, 9.99, 'x'), (18446744073709551615, 'max', 50, 5, 0, 0, 'm')`)
	}
	conn := func() *sql.Conn { return w.conn(db) }
	tw := newTwins(t, w, db, "pwa", "pwb", func(c *sql.Conn, tbl string) string {
		s := queryString(t, c, "SELECT * FROM "+tbl+" ORDER BY id")
		for k := -5; k <= 12; k++ {
			s += fmt.Sprintf(" k=%d:", k) + queryString(t, c, fmt.Sprintf("SELECT id FROM %s WHERE k = %d ORDER BY id", tbl, k))
		}
		for _, n := range []string{"10", "12", "30", "40", "77"} {
			s += " n=" + n + ":" + queryString(t, c, fmt.Sprintf("SELECT id FROM %s WHERE n = %s", tbl, n))
		}
		return s
	})
	fast, planner, compare, both := tw.fast, tw.planner, tw.compare, tw.both

	t.Run("statements", func(t *testing.T) {
		before := w.fe.PointWrites()
		fastRuns := 0
		for _, c := range []struct {
			q     string
			args  []any
			point bool // expect the fast path
		}{
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"uno", 1}, true},
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"uno", 1}, true}, // matched, unchanged
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"toolong", 1}, true},
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{nil, 1}, true},
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"x", 999}, true}, // no such row
			{"UPDATE %s SET n = ? WHERE id = ?", []any{nil, 2}, true},
			{"UPDATE %s SET n = ? WHERE id = ?", []any{30, 2}, true}, // duplicate in n_u
			{"UPDATE %s SET n = ? WHERE id = ?", []any{"12", 1}, true},
			{"UPDATE %s SET n = ? WHERE id = ?", []any{"abc", 1}, true},
			{"UPDATE %s SET n = ? WHERE id = ?", []any{int64(1) << 40, 1}, true},
			{"UPDATE %s SET t = ? WHERE id = ?", []any{300, 1}, true},
			{"UPDATE %s SET t = t + ? WHERE id = ?", []any{1, 3}, true}, // 127 + 1
			{"UPDATE %s SET t = t - 1 WHERE id = ?", []any{4}, true},    // -128 - 1
			{"UPDATE %s SET t = t + 1 WHERE id = ?", []any{2}, true},    // NULL + 1
			{"UPDATE %s SET k = k + 1 WHERE id = ?", []any{3}, true},
			{"UPDATE %s SET k = k + ? WHERE id = ?", []any{5, 3}, true},
			{"UPDATE %s SET k = k - ? WHERE id = ?", []any{-2, 1}, true},
			{"UPDATE %s SET k = k + ? WHERE id = ?", []any{1.5, 4}, true},
			{"UPDATE %s SET k = n + ? WHERE id = ?", []any{1, 2}, true}, // NULL into NOT NULL
			{"UPDATE %s SET k = ?, n = ? WHERE id = ?", []any{7, 77, 4}, true},
			{"UPDATE %s SET d = ? WHERE id = ?", []any{1.234, 1}, true},
			{"UPDATE %s SET d = ? WHERE id = ?", []any{"12345.678", 1}, true},
			{"UPDATE %s SET s = ? WHERE id = ?", []any{[]byte{0xff, 'z'}, 1}, true},
			{"UPDATE %s SET s = ? WHERE id = ?", []any{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), 3}, true},
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"big", uint64(18446744073709551615)}, true},
			{"UPDATE bench.%s SET k = k + 1 WHERE id = ?", []any{1}, true},
			{"UPDATE %s AS x SET x.k = x.k + 1 WHERE x.id = ?", []any{1}, true},
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"neg", -1}, false},           // out of the key's range
			{"UPDATE %s SET Name = ? WHERE id = ?", []any{"str", "1"}, false},          // a string key
			{"UPDATE %s SET Name = ? WHERE id = ? AND k = ?", []any{"z", 1, 3}, false}, // not a key
			{"UPDATE %s SET id = ? WHERE id = ?", []any{1, 1}, false},                  // a key column
			{"UPDATE %s SET nosuch = ? WHERE id = ?", []any{9, 1}, false},
			{"DELETE FROM %s WHERE id = ?", []any{4}, true},
			{"DELETE FROM %s WHERE id = ?", []any{4}, true}, // gone
			{"DELETE FROM bench.%s WHERE id = ?", []any{uint64(18446744073709551615)}, true},
		} {
			both(c.q, c.args...)
			if c.point {
				fastRuns += 2
			}
			compare(fmt.Sprintf("%s %v", c.q, c.args))
		}
		if n := w.fe.PointWrites() - before; n != uint64(fastRuns) {
			t.Errorf("%d executions ran as point writes, want %d", n, fastRuns)
		}
		// CLIENT_FOUND_ROWS: both paths count rows the same way.
		found, err := sql.Open("mysql", fmt.Sprintf("admin:pw@tcp(%s)/bench?clientFoundRows=true", w.fe.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer found.Close()
		var affected []int64
		for _, q := range []string{"UPDATE pwa SET Name = ? WHERE id = ?", "/* planner */ UPDATE pwb SET Name = ? WHERE id = ?"} {
			res, err := found.Exec(q, "uno", 1)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			affected = append(affected, n)
		}
		if affected[0] != affected[1] {
			t.Errorf("with CLIENT_FOUND_ROWS an unchanged row counts %d on the fast path, %d planned", affected[0], affected[1])
		}
	})

	t.Run("transactions", func(t *testing.T) {
		before := w.fe.PointWrites()
		k1 := queryString(t, fast, "SELECT k FROM pwa WHERE id = 1")
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "BEGIN")
		}
		both("UPDATE %s SET k = k + ? WHERE id = ?", 100, 1)
		if got := queryString(t, fast, "SELECT k FROM pwa WHERE id = 1"); got == k1 {
			t.Errorf("own write not visible in the transaction: k = %s", got)
		}
		both("DELETE FROM %s WHERE id = ?", 2)
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "ROLLBACK")
		}
		compare("after rollback")
		if got := queryString(t, fast, "SELECT k FROM pwa WHERE id = 1"); got != k1 {
			t.Errorf("after rollback k = %s, want %s", got, k1)
		}
		// Inside a transaction a failed statement is undone alone; the rest commits.
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "BEGIN")
		}
		both("UPDATE %s SET k = k + ? WHERE id = ?", 10, 1)
		both("UPDATE %s SET n = ? WHERE id = ?", 30, 1) // duplicate
		both("UPDATE %s SET Name = ? WHERE id = ?", "sixsix", 3)
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "COMMIT")
		}
		compare("after commit")
		// autocommit off: the statement starts the transaction later statements share;
		// others see nothing until COMMIT.
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "SET autocommit = 0")
		}
		both("UPDATE %s SET k = ? WHERE id = ?", 42, 3)
		if got := queryInts(t, db, "SELECT k FROM pwa WHERE id = 3"); fmt.Sprint(got) == "[42]" {
			t.Errorf("uncommitted write visible with autocommit off")
		}
		both("DELETE FROM %s WHERE id = ?", 3)
		for _, c := range []*sql.Conn{fast, planner} {
			mustExecConn(t, c, "COMMIT")
			mustExecConn(t, c, "SET autocommit = 1")
		}
		compare("after autocommit 0")
		if got := queryInts(t, db, "SELECT COUNT(*) FROM pwa WHERE id = 3"); fmt.Sprint(got) != "[0]" {
			t.Errorf("committed delete not visible: %v", got)
		}
		// Each of the 6 statements above ran twice on the fast path.
		if n := w.fe.PointWrites() - before; n != 14 {
			t.Errorf("%d executions ran as point writes, want 14", n)
		}
		if l, n := w.fe.Engine().LockedKeys(), w.fe.Engine().ActiveTxns(); l != 0 || n != 0 {
			t.Errorf("%d row locks and %d transactions left", l, n)
		}
	})

	t.Run("ddl_after_prepare", func(t *testing.T) {
		mustExec(t, db, "CREATE TABLE pwd (id INT PRIMARY KEY, s VARCHAR(5))")
		mustExec(t, db, "INSERT INTO pwd VALUES (1, 'a')")
		st, err := db.Prepare("UPDATE pwd SET s = ? WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		before := w.fe.PointWrites()
		for _, v := range []string{"abcde", "ab"} {
			if _, err := st.Exec(v, 1); err != nil {
				t.Fatal(err)
			}
		}
		mustExec(t, db, "ALTER TABLE pwd MODIFY s VARCHAR(3)")
		// The prepared statement now goes to go-mysql-server, which knows the new width.
		if _, err := st.Exec("abcd", 1); err == nil || !strings.Contains(err.Error(), "too large for column 's'") {
			t.Errorf("after narrowing the column: %v, want too large", err)
		}
		if _, err := st.Exec("abc", 1); err != nil {
			t.Error(err)
		}
		if n := w.fe.PointWrites() - before; n != 2 {
			t.Errorf("%d executions ran as point writes, want 2 (before the DDL)", n)
		}
		if got := queryString(t, fast, "SELECT s FROM pwd WHERE id = 1"); got != ` ["abc"]` {
			t.Errorf("s = %s", got)
		}
		// DDL on a table a transaction wrote: its COMMIT fails, on both paths.
		var commits []string
		for _, c := range []struct {
			conn *sql.Conn
			q    string
		}{{fast, "UPDATE pwa SET k = k + 1 WHERE id = ?"}, {planner, "/* planner */ UPDATE pwb SET k = k + 1 WHERE id = ?"}} {
			mustExecConn(t, c.conn, "BEGIN")
			if _, err := c.conn.ExecContext(ctx, c.q, 1); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "ALTER TABLE "+c.q[strings.Index(c.q, "pw"):][:3]+" ADD COLUMN extra INT DEFAULT 7")
			_, err := c.conn.ExecContext(ctx, "COMMIT")
			commits = append(commits, errString(err))
			mustExecConn(t, c.conn, "ROLLBACK")
		}
		if !strings.Contains(commits[0], "1412") || commits[0] != commits[1] {
			t.Errorf("COMMIT after DDL on a written table: fast %s, planner %s", commits[0], commits[1])
		}
		compare("after DDL in a transaction")
	})

	t.Run("locks", func(t *testing.T) {
		mustExec(t, db, "CREATE TABLE pwl (id INT PRIMARY KEY, v INT NOT NULL)")
		mustExec(t, db, "INSERT INTO pwl VALUES (1, 0), (2, 0)")
		a, b := conn(), conn()
		before := w.fe.PointWrites()
		// A second writer of a locked row waits for the holder, then sees its write.
		mustExecConn(t, a, "BEGIN")
		if _, err := a.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 1); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := b.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 1)
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("second writer did not wait for the row lock: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		mustExecConn(t, a, "COMMIT")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := queryInts(t, db, "SELECT v FROM pwl WHERE id = 1"); fmt.Sprint(got) != "[2]" {
			t.Fatalf("after two increments: %v", got)
		}
		// Lock wait timeout, on both paths.
		mustExecConn(t, b, "SET innodb_lock_wait_timeout = 1")
		mustExecConn(t, a, "BEGIN")
		if _, err := a.ExecContext(ctx, "DELETE FROM pwl WHERE id = ?", 1); err != nil {
			t.Fatal(err)
		}
		_, errFast := b.ExecContext(ctx, "UPDATE pwl SET v = ? WHERE id = ?", 5, 1)
		_, errPlanner := b.ExecContext(ctx, "/* planner */ UPDATE pwl SET v = ? WHERE id = ?", 5, 1)
		if errCode(errFast) != 1205 || errString(errFast) != errString(errPlanner) {
			t.Errorf("lock wait timeout: fast %v, planner %v", errFast, errPlanner)
		}
		mustExecConn(t, a, "ROLLBACK")
		// A deadlock between two point writers: exactly one is the victim.
		mustExecConn(t, b, "SET innodb_lock_wait_timeout = 30")
		mustExecConn(t, a, "BEGIN")
		mustExecConn(t, b, "BEGIN")
		if _, err := a.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 2); err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := a.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 2)
			done <- err
		}()
		_, errB := b.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 1)
		errA := <-done
		if (errCode(errA) == 1213) == (errCode(errB) == 1213) {
			t.Fatalf("want exactly one deadlock victim: a=%v b=%v", errA, errB)
		}
		mustExecConn(t, a, "COMMIT")
		mustExecConn(t, b, "COMMIT")
		// The survivor's two increments committed, the victim's one was rolled back.
		if got := queryInts(t, db, "SELECT SUM(v) FROM pwl"); fmt.Sprint(got) != "[4]" {
			t.Errorf("after the deadlock: sum %v, want 4", got)
		}
		// KILL QUERY reaches a point write waiting for a lock.
		mustExecConn(t, a, "BEGIN")
		if _, err := a.ExecContext(ctx, "UPDATE pwl SET v = v + 1 WHERE id = ?", 1); err != nil {
			t.Fatal(err)
		}
		killWaitingStatement(t, ctx, db, b, "point write", "UPDATE pwl SET v = v + 1 WHERE id = ?", 1)
		mustExecConn(t, a, "ROLLBACK")
		if n := w.fe.PointWrites() - before; n < 9 {
			t.Errorf("%d executions ran as point writes, want at least 9", n)
		}
		a.Close()
		b.Close()
		if l, n := w.fe.Engine().LockedKeys(), w.fe.Engine().ActiveTxns(); l != 0 || n != 0 {
			t.Errorf("%d row locks and %d transactions left", l, n)
		}
	})
}

// twins runs prepared statements twice over twin tables with the same rows: as is on table a
// (where a fast path may take them), and with a leading comment on table b, which every fast
// path declines, so go-mysql-server plans and executes the same statement with the same bound
// arguments.
type twins struct {
	t             *testing.T
	ctx           context.Context
	a, b          string
	fast, planner *sql.Conn
	contents      func(c *sql.Conn, tbl string) string
}

func newTwins(t *testing.T, w *writer, db *sql.DB, a, b string, contents func(c *sql.Conn, tbl string) string) *twins {
	return &twins{t: t, ctx: w.ctx, a: a, b: b, fast: w.conn(db), planner: w.conn(db), contents: contents}
}

// run executes q as a prepared statement, twice: once reporting its result and warnings, once
// its result and ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID().
func (tw *twins) run(c *sql.Conn, q string, args ...any) string {
	tw.t.Helper()
	var out strings.Builder
	for pass := 0; pass < 2; pass++ {
		res, err := c.ExecContext(tw.ctx, q, args...)
		if err != nil {
			out.WriteString(errString(err))
		} else {
			n, _ := res.RowsAffected()
			id, _ := res.LastInsertId()
			fmt.Fprintf(&out, "affected %d insert_id %d", n, id)
		}
		if pass == 0 {
			out.WriteString(" warnings" + queryString(tw.t, c, "SHOW WARNINGS"))
		} else {
			out.WriteString(" counts" + queryString(tw.t, c, "SELECT ROW_COUNT(), FOUND_ROWS(), LAST_INSERT_ID()"))
		}
		out.WriteString("; ")
	}
	return out.String()
}

// both runs q (with %[1]s for the table) on both twins and reports any difference.
func (tw *twins) both(q string, args ...any) (fastOut string) {
	tw.t.Helper()
	a := tw.run(tw.fast, fmt.Sprintf(q, tw.a), args...)
	b := tw.run(tw.planner, "/* planner */ "+fmt.Sprintf(q, tw.b), args...)
	if a != b {
		tw.t.Errorf("%s %v:\n fast:    %s\n planner: %s", q, args, a, b)
	}
	tw.t.Logf("%s %v: %s", q, args, a)
	return a
}

// compare fails the test when the twins' contents differ.
func (tw *twins) compare(what string) {
	tw.t.Helper()
	if a, b := tw.contents(tw.fast, tw.a), tw.contents(tw.planner, tw.b); a != b {
		tw.t.Fatalf("%s: contents differ\n fast:    %s\n planner: %s", what, a, b)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("error %d %s", me.Number, me.Message)
	}
	return "error " + err.Error()
}

// queryString renders the rows of q (or its error) as text.
func queryString(t *testing.T, c interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string) string {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), q)
	if err != nil {
		return " " + errString(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out strings.Builder
	for rows.Next() {
		vals := scanRaw(t, rows, len(cols))
		out.WriteString(" [")
		for i, v := range vals {
			if i > 0 {
				out.WriteString(" ")
			}
			if v == nil {
				out.WriteString("NULL")
			} else {
				fmt.Fprintf(&out, "%q", v)
			}
		}
		out.WriteString("]")
	}
	if err := rows.Err(); err != nil {
		return " " + errString(err)
	}
	return out.String()
}

// killWaitingStatement runs query on conn, where it waits for a row lock another connection
// holds, then KILL QUERY from db must make it fail, within 10 s.
func killWaitingStatement(t *testing.T, ctx context.Context, db *sql.DB, conn *sql.Conn, what, query string, args ...any) {
	t.Helper()
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, query, args...)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("killed %s succeeded", what)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("KILL QUERY did not stop a %s waiting for a lock", what)
	}
}
