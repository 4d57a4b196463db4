package sqlfront_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPointInserts checks the prepared INSERT fast path (pointinsert.go) against
// go-mysql-server's plan, over twin tables (see twins): results, errors and warnings, ROW_COUNT()
// and LAST_INSERT_ID(), the OK packet's insert id, the rows through the primary and the
// secondary indexes, and the tables' AUTO_INCREMENT counters must be the same.
func TestPointInserts(t *testing.T) {
	w, db := benchWriter(t)
	for _, tbl := range []string{"pia", "pib"} {
		mustExec(t, db, "CREATE TABLE "+tbl+` (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, Name VARCHAR(5) NOT NULL,
			n INT, k INT NOT NULL DEFAULT 0, t TINYINT, d DECIMAL(6,2), s VARCHAR(20), u INT UNSIGNED,
			KEY k_idx (k), UNIQUE KEY n_u (n))`)
		mustExec(t, db, "INSERT INTO "+tbl+" VALUES (1, 'one', 10, 1, 1, 1.50, 'a', 1), (2, 'two', NULL, 2, NULL, NULL, NULL, NULL)")
		mustExec(t, db, "CREATE TABLE "+tbl+"_plain (a INT NOT NULL, b VARCHAR(3), PRIMARY KEY (a))")
		mustExec(t, db, "CREATE TABLE "+tbl+"_tiny (id TINYINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT)")
		mustExec(t, db, "CREATE TABLE "+tbl+"_nokey (a INT, b VARCHAR(3), UNIQUE KEY a_u (a))")
	}
	tw := newTwins(t, w, db, "pia", "pib", func(c *sql.Conn, tbl string) string {
		s := queryString(t, c, "SELECT * FROM "+tbl+" ORDER BY id")
		for k := -2; k <= 9; k++ {
			s += fmt.Sprintf(" k=%d:", k) + queryString(t, c, fmt.Sprintf("SELECT id FROM %s WHERE k = %d ORDER BY id", tbl, k))
		}
		for _, n := range []string{"10", "12", "30", "77"} {
			s += " n=" + n + ":" + queryString(t, c, fmt.Sprintf("SELECT id FROM %s WHERE n = %s", tbl, n))
		}
		s += " plain:" + queryString(t, c, "SELECT * FROM "+tbl+"_plain ORDER BY a")
		s += " tiny:" + queryString(t, c, "SELECT * FROM "+tbl+"_tiny ORDER BY id")
		s += " nokey:" + queryString(t, c, "SELECT * FROM "+tbl+"_nokey ORDER BY a, b")
		return s + " next:" + queryString(t, c, "SELECT AUTO_INCREMENT FROM information_schema.tables WHERE table_name = '"+tbl+"'")
	})
	const all = "INSERT INTO %s (id, Name, n, k, t, d, s, u) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

	t.Run("statements", func(t *testing.T) {
		before := w.fe.PointInserts()
		fastRuns := 0
		for _, c := range []struct {
			q     string
			args  []any
			point bool // expect the fast path (on both of run's executions)
		}{
			{all, []any{3, "three", 30, 3, 3, 3.5, "c", 3}, true},
			{all, []any{3, "dup", 31, 3, 3, 3.5, "c", 3}, true},              // duplicate key
			{all, []any{4, "dupn", 30, 3, 3, 3.5, "c", 3}, true},             // duplicate in n_u
			{all, []any{5, "toolong", 50, 5, 5, 5, "e", 5}, true},            // VARCHAR(5)
			{all, []any{5, nil, 50, 5, 5, 5, "e", 5}, true},                  // NULL into NOT NULL
			{all, []any{5, "five", 50, 5, 300, 5, "e", 5}, true},             // TINYINT range
			{all, []any{5, "five", 50, 5, 5, 5, "e", -1}, true},              // UNSIGNED range
			{all, []any{5, "five", "12", "5", 5, "12345.678", "e", 5}, true}, // numeric strings
			{all, []any{6, "six", "abc", 6, 6, 6, "f", 6}, true},             // not a number
			{all, []any{7, "seven", nil, 7, nil, 1.234, []byte{0xff, 'z'}, nil}, true},
			{all, []any{8, "eight", 80, 8, 8, 8, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), 8}, true},
			{all, []any{nil, "gen", 90, 9, 9, 9, "g", 9}, true},   // generated id
			{all, []any{0, "zero", 91, 9, 9, 9, "g", 9}, true},    // 0 generates too
			{all, []any{"0", "szero", 92, 9, 9, 9, "g", 9}, true}, // a string 0 generates, without LAST_INSERT_ID
			{all, []any{100, "big", 93, 9, 9, 9, "g", 9}, true},   // moves the counter
			{all, []any{nil, "after", 94, 9, 9, 9, "g", 9}, true},
			{all, []any{-5, "neg", 95, 9, 9, 9, "g", 9}, true},
			{all, []any{1.5, "frac", 96, 9, 9, 9, "g", 9}, true},
			{"INSERT INTO %s (k, Name, id, n, t, d, s, u) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{2, "order", 200, 97, 1, 1, "o", 1}, true},
			{"INSERT INTO %s VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{201, "nocol", 98, 2, 1, 1, "o", 1}, true},
			{"INSERT INTO bench.%s VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{202, "qual", 99, 2, 1, 1, "o", 1}, true},
			{"INSERT INTO %s VALUES (?, 'lit', ?, 4, NULL, 2.5, 'x', ?)", []any{203, 100, 4}, true},
			{"INSERT INTO %s VALUES (NULL, 'litg', -7, 4, NULL, ?, 'x', 0)", []any{2.5}, true},
			{"INSERT INTO %s VALUES (?, 'lit', ?, 4, NULL, 2.5, 'x', 99999999999)", []any{204, 101}, true},
			{"INSERT INTO %s_plain VALUES (?, ?)", []any{1, "ab"}, true},
			{"INSERT INTO %s_plain VALUES (?, ?)", []any{1, "cd"}, true},
			{"INSERT INTO %s_plain (b, a) VALUES (?, ?)", []any{"abcd", 2}, true},
			{"INSERT INTO %s_plain VALUES (?, ?)", []any{nil, "x"}, true},
			{"INSERT INTO %s_tiny VALUES (?, ?)", []any{"300", 1}, true}, // out of range as a string too
			{"INSERT INTO %s_tiny VALUES (?, ?)", []any{300, 1}, true},
			{"INSERT INTO %s_tiny VALUES (?, ?)", []any{"126", 1}, true},
			{"INSERT INTO %s_tiny VALUES (?, ?)", []any{nil, 2}, true},
			{"INSERT INTO %s_tiny VALUES (?, ?)", []any{nil, 3}, true}, // past the type's end
			{"INSERT INTO %s_nokey VALUES (?, ?)", []any{1, "a"}, true},
			{"INSERT INTO %s_nokey VALUES (?, ?)", []any{nil, "b"}, true},
			{"INSERT INTO %s_nokey VALUES (?, ?)", []any{nil, "b"}, true},          // NULLs never collide
			{"INSERT INTO %s_nokey VALUES (?, ?)", []any{1, "c"}, true},            // duplicate in a_u
			{"INSERT INTO %s (id, Name) VALUES (?, ?)", []any{300, "dflt"}, false}, // defaults
			{"INSERT IGNORE INTO %s (id, Name, n, k, t, d, s, u) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{3, "ign", 1, 1, 1, 1, "i", 1}, false},
			{all + " ON DUPLICATE KEY UPDATE k = k + 1", []any{3, "odku", 1, 1, 1, 1, "i", 1}, false},
			{"INSERT INTO %s VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)", []any{301, "r1", 301, 1, 1, 1, "r", 1, 302, "r2", 302, 1, 1, 1, "r", 1}, false},
			{"INSERT INTO %s VALUES (?, ?, ?, DEFAULT, ?, ?, ?, ?)", []any{303, "def", 303, 1, 1, "r", 1}, false},
			{"INSERT INTO %s VALUES (?, ?, ? + 1, ?, ?, ?, ?, ?)", []any{304, "expr", 304, 1, 1, 1, "r", 1}, false},
			{"REPLACE INTO %s VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{3, "repl", 305, 1, 1, 1, "r", 1}, false},
			{"INSERT INTO %s (id, Name, Name, n, k, t, d, s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", []any{306, "a", "b", 1, 1, 1, 1, "r"}, false},
		} {
			n0 := w.fe.PointInserts()
			tw.both(c.q, c.args...)
			if c.point {
				fastRuns += 2
			}
			if got := w.fe.PointInserts() - n0; (got == 2) != c.point {
				t.Errorf("%s %v: %d executions ran as point inserts", c.q, c.args, got)
			}
			tw.compare(fmt.Sprintf("%s %v", c.q, c.args))
		}
		if n := w.fe.PointInserts() - before; n != uint64(fastRuns) {
			t.Errorf("%d executions ran as point inserts, want %d", n, fastRuns)
		}
	})

	t.Run("sql_mode", func(t *testing.T) {
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
		}
		tw.both(all, 0, "zero", 400, 4, 4, 4, "z", 4)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "SET SESSION sql_mode = ''")
		}
		tw.both(all, 401, "nonstrict", 401, 4, 300, 4, "loooooooooooooooooooooooong", 4)
		tw.both(all, 402, "toolong", 402, 4, 4, 4, "z", 4)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "SET SESSION sql_mode = DEFAULT")
		}
		tw.compare("sql modes")
	})

	t.Run("read_only", func(t *testing.T) {
		before := w.fe.PointInserts()
		w.fe.SetReadOnly(true)
		tw.both(all, 600, "ro", 600, 6, 6, 6, "r", 6)
		w.fe.SetReadOnly(false)
		if n := w.fe.PointInserts() - before; n != 0 {
			t.Errorf("%d executions ran as point inserts in read-only mode, want 0", n)
		}
		tw.compare("read-only")
	})

	t.Run("autocommit_off", func(t *testing.T) {
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "SET autocommit = 0")
		}
		tw.both(all, 700, "ac0", 700, 7, 7, 7, "a", 7)
		if got := queryInts(t, db, "SELECT COUNT(*) FROM pia WHERE id = 700"); fmt.Sprint(got) != "[0]" {
			t.Errorf("uncommitted insert visible with autocommit off: %v", got)
		}
		tw.both(all, 701, "ac0b", 701, 7, 7, 7, "a", 7)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "ROLLBACK")
		}
		tw.both(all, 702, "ac0c", 702, 7, 7, 7, "a", 7)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "COMMIT")
			mustExecConn(t, c, "SET autocommit = 1")
		}
		tw.compare("autocommit off")
		if got := queryInts(t, db, "SELECT id FROM pia WHERE id >= 700 ORDER BY id"); fmt.Sprint(got) != "[702]" {
			t.Errorf("after rollback and commit with autocommit off: %v, want [702]", got)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		before := w.fe.PointInserts()
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "BEGIN")
		}
		tw.both(all, 500, "t1", 500, 5, 5, 5, "t", 5)
		if got := queryString(t, tw.fast, "SELECT Name FROM pia WHERE id = 500"); got != ` ["t1"]` {
			t.Errorf("own insert not visible in the transaction: %s", got)
		}
		if got := queryInts(t, db, "SELECT COUNT(*) FROM pia WHERE id = 500"); fmt.Sprint(got) != "[0]" {
			t.Errorf("uncommitted insert visible to others: %v", got)
		}
		tw.both(all, 500, "t1dup", 501, 5, 5, 5, "t", 5) // fails alone
		tw.both(all, 502, "t2", 502, 5, 5, 5, "t", 5)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "COMMIT")
		}
		tw.compare("after commit")
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "BEGIN")
		}
		tw.both(all, 503, "t3", 503, 5, 5, 5, "t", 5)
		tw.both(all, nil, "t4", 504, 5, 5, 5, "t", 5)
		for _, c := range []*sql.Conn{tw.fast, tw.planner} {
			mustExecConn(t, c, "ROLLBACK")
		}
		tw.compare("after rollback")
		if got := queryInts(t, db, "SELECT COUNT(*) FROM pia WHERE id = 503"); fmt.Sprint(got) != "[0]" {
			t.Errorf("rolled-back insert visible: %v", got)
		}
		if n := w.fe.PointInserts() - before; n != 10 {
			t.Errorf("%d executions ran as point inserts, want 10", n)
		}
		if l, n := w.fe.Engine().LockedKeys(), w.fe.Engine().ActiveTxns(); l != 0 || n != 0 {
			t.Errorf("%d row locks and %d transactions left", l, n)
		}
	})

	t.Run("ddl_after_prepare", func(t *testing.T) {
		mustExec(t, db, "CREATE TABLE pid (id INT PRIMARY KEY, s VARCHAR(5))")
		st, err := db.Prepare("INSERT INTO pid VALUES (?, ?)")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		before := w.fe.PointInserts()
		if _, err := st.Exec(1, "abc"); err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "ALTER TABLE pid MODIFY s VARCHAR(3)")
		if _, err := st.Exec(2, "abcd"); err == nil || !strings.Contains(err.Error(), "too large for column 's'") {
			t.Errorf("after narrowing the column: %v, want too large", err)
		}
		mustExec(t, db, "ALTER TABLE pid ADD COLUMN extra INT")
		if _, err := st.Exec(3, "abc"); err == nil || !strings.Contains(err.Error(), "number of values does not match") {
			t.Errorf("after adding a column: %v, want a column count mismatch", err)
		}
		if n := w.fe.PointInserts() - before; n != 1 {
			t.Errorf("%d executions ran as point inserts, want 1 (before the DDL)", n)
		}
	})

	t.Run("lock_wait", func(t *testing.T) {
		a, b := w.conn(db), w.conn(db)
		defer a.Close()
		defer b.Close()
		before := w.fe.PointInserts()
		// A second insert of a key another transaction inserted waits for it, then fails as a
		// duplicate once it commits.
		mustExecConn(t, a, "BEGIN")
		if _, err := a.ExecContext(w.ctx, "INSERT INTO pia_plain VALUES (?, ?)", 50, "a"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := b.ExecContext(w.ctx, "INSERT INTO pia_plain VALUES (?, ?)", 50, "b")
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("second insert did not wait for the row lock: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		mustExecConn(t, a, "COMMIT")
		if err := <-done; errCode(err) != 1062 {
			t.Fatalf("second insert of a committed key: %v, want error 1062", err)
		}
		// KILL QUERY reaches a point insert waiting for a lock.
		mustExecConn(t, a, "BEGIN")
		if _, err := a.ExecContext(w.ctx, "INSERT INTO pia_plain VALUES (?, ?)", 51, "a"); err != nil {
			t.Fatal(err)
		}
		killWaitingStatement(t, w.ctx, db, b, "point insert", "INSERT INTO pia_plain VALUES (?, ?)", 51, "b")
		mustExecConn(t, a, "ROLLBACK")
		if got := queryInts(t, db, "SELECT COUNT(*) FROM pia_plain WHERE a = 51"); fmt.Sprint(got) != "[0]" {
			t.Errorf("after the kill and the rollback: %v rows with a = 51, want none", got)
		}
		if n := w.fe.PointInserts() - before; n != 4 {
			t.Errorf("%d executions ran as point inserts, want 4", n)
		}
		if l, n := w.fe.Engine().LockedKeys(), w.fe.Engine().ActiveTxns(); l != 0 || n != 0 {
			t.Errorf("%d row locks and %d transactions left", l, n)
		}
	})
}
