package sqlfront_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestOutOfRangeComparisons: ORDER BY ... DESC over an index comes back descending (see
// Index.Reversible), and an integer key or index compared with a constant beyond the
// column's range answers by the true order of the values (rangeclamp.go), in SELECT, UPDATE
// and DELETE, through the planner (text protocol) and prepared statements alike.
func TestOutOfRangeComparisons(t *testing.T) {
	w := startWriter(t)
	mustExec(t, w.db(""), "CREATE DATABASE bench")
	db := w.db("bench")
	mustExec(t, db, "CREATE TABLE oru (id INT UNSIGNED NOT NULL PRIMARY KEY, k TINYINT, KEY k (k))")
	mustExec(t, db, "INSERT INTO oru VALUES (0, -128), (1, -1), (5, 0), (4294967295, 127), (7, NULL)")
	mustExec(t, db, "CREATE TABLE ors (id BIGINT NOT NULL PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO ors VALUES (-9223372036854775808), (0), (9223372036854775807)")
	text, err := sql.Open("mysql", fmt.Sprintf("admin:pw@tcp(%s)/bench?interpolateParams=true", w.fe.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer text.Close()
	for _, c := range []struct {
		q    string
		arg  any
		want string
	}{
		{"SELECT id FROM oru WHERE id > ? ORDER BY id", -1, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id >= ? ORDER BY id DESC", -1, "[4294967295 7 5 1 0]"},
		{"SELECT id FROM oru WHERE id >= ? ORDER BY id DESC", 0, "[4294967295 7 5 1 0]"},
		{"SELECT id FROM oru WHERE id > ? ORDER BY id DESC", 0, "[4294967295 7 5 1]"},
		{"SELECT id FROM oru WHERE id > ? ORDER BY id DESC LIMIT 2", 0, "[4294967295 7]"},
		{"SELECT id FROM oru WHERE k > ? ORDER BY k DESC", -200, "[4294967295 5 1 0]"},
		{"SELECT id FROM oru WHERE id < ? ORDER BY id", -1, "[]"},
		{"SELECT id FROM oru WHERE id = ?", -1, "[]"},
		{"SELECT id FROM oru WHERE id = ?", int64(1) << 40, "[]"},
		{"SELECT id FROM oru WHERE id < ? ORDER BY id", int64(1) << 40, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE ? < id ORDER BY id", -1, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE NOT (id > ?) ORDER BY id", -1, "[]"},
		{"SELECT id FROM oru WHERE id IN (?, 5, 1) ORDER BY id", -1, "[1 5]"},
		{"SELECT id FROM oru WHERE id IN (?) ORDER BY id", -1, "[]"},
		{"SELECT id FROM oru WHERE id BETWEEN ? AND 6 ORDER BY id", -1, "[0 1 5]"},
		{"SELECT id FROM oru WHERE id BETWEEN 1 AND ? ORDER BY id", int64(1) << 40, "[1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id BETWEEN ? AND 9 ORDER BY id", int64(1) << 40, "[]"},
		// A TINYINT secondary index; NULL stays out of every comparison.
		{"SELECT id FROM oru WHERE k < ? ORDER BY id", 200, "[0 1 5 4294967295]"},
		{"SELECT id FROM oru WHERE k > ? ORDER BY id", -200, "[0 1 5 4294967295]"},
		{"SELECT id FROM oru WHERE k >= ? ORDER BY id", 127.6, "[]"},
		{"SELECT id FROM oru WHERE k <= ? ORDER BY id", -128.7, "[]"},
		{"SELECT id FROM oru WHERE k = ? ORDER BY id", 255, "[]"},
		{"SELECT id FROM oru WHERE NOT (k < ?) ORDER BY id", 200, "[]"},
		{"SELECT id FROM ors WHERE id < ? ORDER BY id", uint64(1) << 63, "[-9223372036854775808 0 9223372036854775807]"},
		{"SELECT id FROM ors WHERE id >= ? ORDER BY id", uint64(1) << 63, "[]"},
		{"SELECT id FROM ors WHERE id = ?", uint64(1) << 63, "[]"},
		// Fractions just outside the range, and numbers written as strings.
		{"SELECT id FROM oru WHERE id > ? ORDER BY id", -0.4, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id >= ? ORDER BY id", -0.4, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id BETWEEN ? AND 6 ORDER BY id", -0.4, "[0 1 5]"},
		{"SELECT id FROM oru WHERE id < ? ORDER BY id", 4294967295.4, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id > ? ORDER BY id", "-1", "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id = ?", "-1", "[]"},
		// Conditions that become filters only later in the analysis.
		{"SELECT a.id FROM oru a JOIN oru b ON a.id = b.id AND a.id > ? ORDER BY a.id", -1, "[0 1 5 7 4294967295]"},
		{"SELECT id FROM oru WHERE id IN (SELECT id FROM oru WHERE id > ?) ORDER BY id", -1, "[0 1 5 7 4294967295]"},
	} {
		for name, conn := range map[string]*sql.DB{"prepared": db, "text": text} {
			if got := fmt.Sprint(queryInts(t, conn, c.q, c.arg)); got != c.want {
				t.Errorf("%s (%v), %s: %s, want %s", c.q, c.arg, name, got, c.want)
			}
		}
	}
	// Indexes whose byte order is not go-mysql-server's comparison order (case-insensitive
	// strings, prefixes) must not stand in for a Sort or feed a merge join, and a lookup on one
	// comes in the comparison order (collatedIter).
	mustExec(t, db, "CREATE TABLE ca (s VARCHAR(5) COLLATE utf8mb4_0900_ai_ci PRIMARY KEY)")
	mustExec(t, db, "CREATE TABLE cc (s VARCHAR(5) COLLATE utf8mb4_0900_ai_ci PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO ca VALUES ('a'), ('b'), ('_'), ('{'), ('~')")
	mustExec(t, db, "INSERT INTO cc VALUES ('{')")
	if got := fmt.Sprint(queryInts(t, db, "SELECT COUNT(*) FROM ca JOIN cc ON ca.s = cc.s")); got != "[1]" {
		t.Errorf("join on case-insensitive keys: %s rows, want [1]", got)
	}
	mustExec(t, db, "CREATE TABLE pa (id INT PRIMARY KEY, s VARCHAR(10), KEY sp (s(2)))")
	mustExec(t, db, "INSERT INTO pa VALUES (1, 'aa'), (2, 'abz'), (3, 'aba'), (4, 'abm')")
	for _, q := range []string{"SELECT id FROM pa ORDER BY s", "SELECT id FROM pa WHERE s > 'a' ORDER BY s", "SELECT id FROM pa WHERE s >= 'ab' ORDER BY s LIMIT 3"} {
		if got := fmt.Sprint(queryInts(t, db, q)); got != "[1 3 4 2]" && !(strings.Contains(q, ">=") && got == "[3 4 2]") {
			t.Errorf("%s: %s, want [1 3 4 2] (or from 3)", q, got)
		}
	}
	if got := fmt.Sprint(queryInts(t, db, "SELECT COUNT(*) FROM ca WHERE s > '' ORDER BY s")); got != "[5]" {
		t.Errorf("a range over a case-insensitive key: %s rows, want [5]", got)
	}
	mustExec(t, db, "CREATE TABLE cs (id INT PRIMARY KEY, s VARCHAR(5) COLLATE utf8mb4_0900_ai_ci, KEY ks (s))")
	mustExec(t, db, "INSERT INTO cs VALUES (1, 'b'), (2, '{'), (3, 'A'), (4, '_')")
	if got := fmt.Sprint(queryInts(t, db, "SELECT id FROM cs WHERE s > '' ORDER BY s")); got != "[4 2 3 1]" {
		t.Errorf("ORDER BY a case-insensitive index after a range on it: %s, want [4 2 3 1]", got)
	}
	// Writes find the rows the same way.
	for name, conn := range map[string]*sql.DB{"prepared": db, "text": text} {
		res, err := conn.Exec("UPDATE oru SET k = 1 WHERE id = ?", -1)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Errorf("UPDATE ... WHERE id = -1, %s: %d rows, want 0", name, n)
		}
		res, err = conn.Exec("DELETE FROM oru WHERE id = ?", -1)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Errorf("DELETE ... WHERE id = -1, %s: %d rows, want 0", name, n)
		}
	}
	if got := fmt.Sprint(queryInts(t, db, "SELECT COUNT(*) FROM oru")); got != "[5]" {
		t.Errorf("rows left: %s, want [5]", got)
	}
}
