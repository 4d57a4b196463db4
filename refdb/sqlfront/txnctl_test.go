package sqlfront_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestTxnControl checks prepared BEGIN and COMMIT run without go-mysql-server's planning
// (txnctl.go) against its plan. Two connections run the same script over twin tables, one
// with BEGIN / COMMIT as is (the fast path), the other with a leading comment that the fast
// path declines; what a third connection sees after every step, the statements' results,
// ROW_COUNT() and @@autocommit must be the same, and the fast path must have run.
func TestTxnControl(t *testing.T) {
	w, db := benchWriter(t)
	ctx := w.ctx
	for _, tbl := range []string{"tca", "tcb"} {
		mustExec(t, db, "CREATE TABLE "+tbl+" (id INT PRIMARY KEY, v INT)")
	}
	conn := func() *sql.Conn { return w.conn(db) }
	observer := conn()
	// script runs the steps on c over table tbl, with prefix before BEGIN and COMMIT, and
	// returns what happened.
	script := func(c *sql.Conn, tbl, prefix string) string {
		var out strings.Builder
		prep := func(q string) *sql.Stmt {
			st, err := c.PrepareContext(ctx, q)
			if err != nil {
				t.Fatalf("prepare %s: %v", q, err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		begin, commit := prep(prefix+"BEGIN"), prep(prefix+"COMMIT")
		ins := prep("INSERT INTO " + tbl + " VALUES (?, ?)")
		step := func(name string, st *sql.Stmt, args ...any) {
			_, err := st.ExecContext(ctx, args...)
			fmt.Fprintf(&out, "%s: %s rows%s counts%s ac%s | ", name, errString(err),
				queryString(t, observer, "SELECT COUNT(*) FROM "+tbl),
				queryString(t, c, "SELECT ROW_COUNT()"), queryString(t, c, "SELECT @@autocommit"))
		}
		step("commit without a transaction", commit)
		step("begin", begin)
		step("insert 1", ins, 1, 1)
		step("insert 2", ins, 2, 2)
		step("begin again commits", begin)
		step("insert 3", ins, 3, 3)
		step("commit", commit)
		step("autocommit insert 4", ins, 4, 4)
		step("commit again", commit)
		step("begin", begin)
		step("duplicate key", ins, 1, 9)
		step("insert 5", ins, 5, 5)
		step("commit after an error", commit)
		if _, err := c.ExecContext(ctx, "SET autocommit = 0"); err != nil {
			t.Fatal(err)
		}
		step("insert 6 without autocommit", ins, 6, 6)
		step("commit ends it", commit)
		step("insert 7 without autocommit", ins, 7, 7)
		step("begin commits it", begin)
		step("commit", commit)
		if _, err := c.ExecContext(ctx, "SET autocommit = 1"); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	before := w.fe.TxnControls()
	fast := script(conn(), "tca", "")
	if n := w.fe.TxnControls() - before; n != 10 {
		t.Errorf("%d BEGIN / COMMIT executions took the fast path, want 10", n)
	}
	before = w.fe.TxnControls()
	planned := script(conn(), "tcb", "/* plan */ ")
	if n := w.fe.TxnControls() - before; n != 0 {
		t.Errorf("%d commented BEGIN / COMMIT executions took the fast path, want 0", n)
	}
	if fast != planned {
		t.Errorf("fast path and go-mysql-server differ:\nfast:    %s\nplanned: %s", strings.ReplaceAll(fast, "| ", "\n  "),
			strings.ReplaceAll(planned, "| ", "\n  "))
	}
	if !strings.Contains(fast, "duplicate key: error 1062") {
		t.Errorf("the script did not run as meant: %s", fast)
	}
	if l, n := w.fe.Engine().LockedKeys(), w.fe.Engine().ActiveTxns(); l != 0 || n != 0 {
		t.Errorf("%d row locks and %d transactions left", l, n)
	}
}
