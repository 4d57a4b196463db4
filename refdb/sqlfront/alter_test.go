package sqlfront_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func expectRows(t *testing.T, db *sql.DB, q string, want ...string) {
	t.Helper()
	got := queryStrings(t, db, q)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got  %q\n want %q", q, got, want)
	}
}

// ALTER TABLE column changes through a real server: ADD (end, FIRST, AFTER, NOT NULL with and
// without a default), DROP (plain, indexed, part of a composite index), MODIFY (widen,
// narrow with an out-of-range value, NULL -> NOT NULL with a NULL present), CHANGE/RENAME
// COLUMN (index keeps working), ADD/DROP INDEX; the changes survive a writer restart.
func TestAlterTableColumns(t *testing.T) {
	w, db := benchWriter(t)
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, k INT NOT NULL, c VARCHAR(20), INDEX kx (k))")
	for i := 1; i <= 50; i++ {
		mustExec(t, db, "INSERT INTO t VALUES (?, ?, ?)", i, i%5, fmt.Sprintf("c%d", i))
	}

	// Metadata-only add at the end: old rows read NULL.
	mustExec(t, db, "ALTER TABLE t ADD COLUMN n INT")
	expectRows(t, db, "SELECT id, k, c, n FROM t WHERE id = 3", "3,3,c3,NULL")
	mustExec(t, db, "UPDATE t SET n = 7 WHERE id = 3")
	// Rewrite: NOT NULL with a default, in the middle.
	mustExec(t, db, "ALTER TABLE t ADD COLUMN d INT NOT NULL DEFAULT 42 AFTER k")
	expectRows(t, db, "SELECT * FROM t WHERE id IN (3, 4) ORDER BY id", "3,3,42,c3,7", "4,4,42,c4,NULL")
	// NOT NULL without a default gets the type's zero value; FIRST moves it to the front.
	mustExec(t, db, "ALTER TABLE t ADD COLUMN z VARCHAR(5) NOT NULL FIRST")
	expectRows(t, db, "SELECT * FROM t WHERE id = 4", ",4,4,42,c4,NULL")
	if _, err := db.Exec("ALTER TABLE t ADD COLUMN k INT"); errCode(err) == 0 {
		t.Fatalf("duplicate column: %v", err)
	}
	// The secondary index still answers after the rewrites.
	expectRows(t, db, "SELECT COUNT(*) FROM t WHERE k = 2", "10")
	mustExec(t, db, "INSERT INTO t (z, id, k, c) VALUES ('', 51, 2, 'new')")
	expectRows(t, db, "SELECT z, id, k, d, c, n FROM t WHERE id = 51", ",51,2,42,new,NULL")

	// DROP COLUMN: plain, and the column of an index (the index goes with it).
	mustExec(t, db, "ALTER TABLE t DROP COLUMN z")
	mustExec(t, db, "ALTER TABLE t DROP COLUMN k")
	expectRows(t, db, "SELECT * FROM t WHERE id = 3", "3,42,c3,7")
	for _, q := range []string{"SHOW INDEX FROM t"} {
		for _, r := range queryStrings(t, db, q) {
			if strings.Contains(r, "kx") {
				t.Fatalf("index kx survived its column: %s", r)
			}
		}
	}

	// MODIFY: widen the type, then a narrowing that cannot hold a value fails and changes nothing.
	mustExec(t, db, "ALTER TABLE t MODIFY COLUMN d BIGINT NOT NULL DEFAULT 1")
	mustExec(t, db, "UPDATE t SET d = 100000 WHERE id = 5")
	if _, err := db.Exec("ALTER TABLE t MODIFY COLUMN d TINYINT"); errCode(err) != 1264 {
		t.Fatal("narrowing d to TINYINT with 100000 present succeeded")
	}
	expectRows(t, db, "SELECT d FROM t WHERE id = 5", "100000")
	if _, err := db.Exec("ALTER TABLE t MODIFY COLUMN n INT NOT NULL"); errCode(err) != 1138 {
		t.Fatal("NOT NULL with NULLs present succeeded")
	}
	mustExec(t, db, "UPDATE t SET n = id WHERE n IS NULL")
	mustExec(t, db, "ALTER TABLE t MODIFY COLUMN n INT NOT NULL")
	mustExec(t, db, "ALTER TABLE t MODIFY COLUMN c VARCHAR(40) AFTER id")
	expectRows(t, db, "SELECT * FROM t WHERE id = 3", "3,c3,42,7")

	// ADD INDEX on the modified column, then RENAME / CHANGE COLUMN keep the index usable.
	mustExec(t, db, "ALTER TABLE t ADD INDEX cx (c)")
	mustExec(t, db, "ALTER TABLE t RENAME COLUMN c TO label")
	expectRows(t, db, "SELECT id FROM t WHERE label = 'c9'", "9")
	mustExec(t, db, "ALTER TABLE t CHANGE COLUMN label name VARCHAR(40)")
	expectRows(t, db, "SELECT id FROM t WHERE name = 'c9'", "9")
	mustExec(t, db, "ALTER TABLE t DROP INDEX cx")
	expectRows(t, db, "SELECT COUNT(*), SUM(id) FROM t", "51,1326")

	// A PRIMARY KEY column renamed and widened keeps point lookups and uniqueness.
	mustExec(t, db, "ALTER TABLE t CHANGE COLUMN id rid BIGINT NOT NULL")
	expectRows(t, db, "SELECT name FROM t WHERE rid = 9", "c9")
	if _, err := db.Exec("INSERT INTO t (rid, name, d, n) VALUES (9, 'dup', 1, 1)"); errCode(err) != 1062 {
		t.Fatalf("duplicate primary key after the rewrite: %v", err)
	}

	// Everything survives a restart (recovery reloads the catalog from the volume).
	w.stop()
	w.start(false)
	db = w.db("bench")
	expectRows(t, db, "SELECT rid, name, d, n FROM t WHERE rid IN (3, 5) ORDER BY rid", "3,c3,42,7", "5,c5,100000,5")
	expectRows(t, db, "SELECT COUNT(*) FROM t", "51")
	mustExec(t, db, "INSERT INTO t (rid, name, d, n) VALUES (52, 'after', 1, 1)")
}

// A DOUBLE or FLOAT column holds neither infinity nor NaN (MySQL's range): a write that computes
// one fails with error 1264 on both the planned path and the prepared point-write fast path,
// changes nothing, and the connection keeps working.
func TestFloatOutOfRange(t *testing.T) {
	db := benchDB(t, "CREATE TABLE f (id INT PRIMARY KEY, d DOUBLE, r FLOAT)", "INSERT INTO f VALUES (1, 2.5, 1.5)")
	expectCode(t, db, 1264,
		"INSERT INTO f VALUES (2, 1e308 * 10, 0)",
		"INSERT INTO f VALUES (3, -1e308 * 10, 0)",
		"UPDATE f SET d = d * 1e308 * 1e308 WHERE id = 1")
	// As arguments of prepared statements (go-mysql-server's planner panics on them): the
	// point-write fast path, the planned path and a read; the connection stays usable.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, v := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		for _, q := range []string{"UPDATE f SET d = ? WHERE id = 1", "UPDATE f SET d = ? * 2 WHERE id = 1", "SELECT ? + 1"} {
			if _, err := conn.ExecContext(context.Background(), q, v); errCode(err) != 1264 {
				t.Errorf("%s with %v: %v, want error 1264", q, v, err)
			}
		}
	}
	var one int
	if err := conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM f").Scan(&one); err != nil || one != 1 {
		t.Fatalf("connection after the refused arguments: %d, %v", one, err)
	}
	expectRows(t, db, "SELECT * FROM f ORDER BY id", "1,2.5,1.5")
}

// An error about a huge value reaches the client as an error of at most 512 bytes, as MySQL's
// would: go-mysql-server quotes the whole value, and a 20 MB error packet lost the connection.
func TestHugeValueError(t *testing.T) {
	db := benchDB(t, "CREATE TABLE h (id INT PRIMARY KEY, s VARCHAR(5), b BLOB)")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"INSERT INTO h VALUES (1, REPEAT('x', 20000000), NULL)",
		"INSERT INTO h VALUES (1, NULL, REPEAT('y', 20000000))",
	} {
		_, err := conn.ExecContext(context.Background(), q)
		if errCode(err) == 0 || len(errString(err)) > 600 {
			t.Fatalf("%s: error of %d bytes, want a MySQL error of at most 512: %.200v", q, len(errString(err)), err)
		}
	}
	var n int
	if err := conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM h").Scan(&n); err != nil || n != 0 {
		t.Fatalf("connection after the errors: %d rows, %v", n, err)
	}
}

// UPDATE refuses a value out of its column's range with 1264, as MySQL and MariaDB do in
// their default strict mode; go-mysql-server alone stored -1 in an INT UNSIGNED as
// 4294967295 and 300 in a TINYINT as 127. Text and prepared statements (the point-write fast
// path included) agree; UPDATE IGNORE still clamps, as in MySQL.
func TestUpdateOutOfRange(t *testing.T) {
	db := benchDB(t, "CREATE TABLE r (id INT PRIMARY KEY, u INT UNSIGNED, k INT NOT NULL, t TINYINT, f FLOAT)",
		"INSERT INTO r VALUES (1, 5, 10, 1, 1.5)")
	expectCode(t, db, 1264,
		"UPDATE r SET u = -1 WHERE id = 1",
		"UPDATE r SET k = k + 2147483648 WHERE id = 1",
		"UPDATE r SET t = 300 WHERE id = 1",
		"UPDATE r SET t = t + 200 WHERE id = 1",
		"UPDATE r SET t = 2, u = -5 WHERE id = 1",
		"UPDATE r SET f = 1e300 WHERE id = 1",
		"UPDATE r SET u = u - 6")
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"UPDATE r SET u = ? WHERE id = ?", []any{-1, 1}},
		{"UPDATE r SET k = k + ? WHERE id = ?", []any{int64(1) << 40, 1}},
		{"UPDATE r SET t = ? WHERE id = ?", []any{300, 1}},
		{"UPDATE r SET t = t * ? WHERE id = ?", []any{1000, 1}},
		{"UPDATE r SET u = ? WHERE id = ?", []any{uint64(1) << 40, 1}},
		{"UPDATE r SET u = ? WHERE id = ?", []any{uint64(math.MaxUint64), 1}},
	} {
		if _, err := db.Exec(c.q, c.args...); errCode(err) != 1264 {
			t.Errorf("%s %v: %v, want error 1264", c.q, c.args, err)
		}
	}
	// INSERT checks the range itself, except for a uint64 it truncates.
	for _, v := range []any{uint64(math.MaxUint64), uint64(1) << 40, int64(-1)} {
		if _, err := db.Exec("INSERT INTO r (id, u, k) VALUES (?, ?, 1)", 2, v); errCode(err) == 0 {
			t.Errorf("INSERT of %v into INT UNSIGNED succeeded", v)
		}
	}
	expectCode(t, db, 1264, "INSERT INTO r (id, u, k) VALUES (3, 18446744073709551615, 1)")
	mustExec(t, db, "INSERT IGNORE INTO r (id, u, k) VALUES (4, 18446744073709551615, 1)")
	mustExec(t, db, "DELETE FROM r WHERE id = 4")
	expectRows(t, db, "SELECT * FROM r", "1,5,10,1,1.5")
	mustExec(t, db, "UPDATE r SET t = 127, u = 4294967295 WHERE id = 1")
	mustExec(t, db, "UPDATE IGNORE r SET k = 3000000000 WHERE id = 1")
	expectRows(t, db, "SELECT * FROM r", "1,4294967295,2147483647,127,1.5")
}

// benchWriter starts a writer with database bench and runs setup statements in it.
func benchWriter(t *testing.T, setup ...string) (*writer, *sql.DB) {
	t.Helper()
	w := startWriter(t)
	mustExec(t, w.db(""), "CREATE DATABASE bench")
	db := w.db("bench")
	for _, q := range setup {
		mustExec(t, db, q)
	}
	return w, db
}

// benchDB is benchWriter for a test that needs only the database.
func benchDB(t *testing.T, setup ...string) *sql.DB {
	t.Helper()
	_, db := benchWriter(t, setup...)
	return db
}

// expectCode runs each text statement and expects MySQL error code.
func expectCode(t *testing.T, db *sql.DB, code uint16, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if _, err := db.Exec(q); errCode(err) != code {
			t.Errorf("%s: %v, want error %d", q, err, code)
		}
	}
}

// A CALL that names no database, on a connection that has none, answers 1046 as MySQL's does
// (go-mysql-server panicked on it, and the client lost its connection), by text and prepared;
// the connection stays usable, and a CALL with a database still gets its own error.
func TestCallWithoutDatabase(t *testing.T) {
	w, _ := benchWriter(t)
	conn, err := w.db("").Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	for _, q := range []string{"CALL nothing()", "call nothing", "/* c */ CALL nothing(1, 'a')", "CALL nothing(); SELECT 1"} {
		if _, err := conn.ExecContext(ctx, q); errCode(err) != 1046 {
			t.Errorf("%s: %v, want error 1046", q, err)
		}
	}
	if _, err := conn.PrepareContext(ctx, "CALL nothing(?)"); errCode(err) != 1046 {
		t.Errorf("prepare CALL: %v, want error 1046", err)
	}
	if _, err := conn.ExecContext(ctx, "CALL bench.nothing()"); err == nil || errCode(err) == 1046 {
		t.Errorf("CALL bench.nothing(): %v, want a missing-procedure error", err)
	}
	var one int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("connection after the refused CALLs: %d, %v", one, err)
	}
}

// read_only and super_read_only follow the instance's role only: a client's SET GLOBAL of either
// is refused with 1227 and changes nothing, on a writer and in read-only mode alike.
func TestReadOnlyVariablesFollowRole(t *testing.T) {
	w, db := benchWriter(t)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	check := func(want string) {
		t.Helper()
		for _, q := range []string{"SET GLOBAL read_only = 0", "SET GLOBAL read_only = 1", "SET @@global.super_read_only = ON", "SET GLOBAL super_read_only = 0"} {
			if _, err := conn.ExecContext(ctx, q); errCode(err) != 1227 {
				t.Errorf("%s: %v, want error 1227", q, err)
			}
		}
		// The session opened before the switch: what it shows is the role now.
		var ro, sro, gro string
		if err := conn.QueryRowContext(ctx, "SELECT @@read_only, @@super_read_only, @@global.read_only").Scan(&ro, &sro, &gro); err != nil || ro != want || sro != want || gro != want {
			t.Fatalf("read_only %s, super_read_only %s, global read_only %s, %v: want %s", ro, sro, gro, err, want)
		}
	}
	check("0")
	w.fe.SetReadOnly(true)
	defer w.fe.SetReadOnly(false)
	check("1")
	if _, err := conn.ExecContext(ctx, "CREATE TABLE x (id INT PRIMARY KEY)"); errCode(err) != 1290 {
		t.Errorf("DDL in read-only mode: %v, want 1290", err)
	}
}

// refdb reads and writes no server files for clients (Aurora uses S3): LOAD DATA INFILE and
// SELECT ... INTO OUTFILE / DUMPFILE answer 1290 as MySQL does with secure_file_priv = NULL,
// by text and prepared, LOAD_FILE answers NULL, and no file is created.
func TestNoServerFiles(t *testing.T) {
	db := benchDB(t, "CREATE TABLE f (id INT PRIMARY KEY, s TEXT)", "INSERT INTO f VALUES (1, 'a')")
	dir := t.TempDir()
	secret := dir + "/secret.txt"
	if err := os.WriteFile(secret, []byte("1\tsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := dir + "/out.txt"
	refused := []string{
		"LOAD DATA INFILE '" + secret + "' INTO TABLE f",
		"/* x */ load data infile '" + secret + "' replace into table f",
		"SELECT * FROM f INTO OUTFILE '" + out + "'",
		"SELECT s FROM f WHERE id = 1 INTO DUMPFILE '" + out + "'",
		"SELECT * INTO OUTFILE '" + out + "' FROM f",
		"SELECT id FROM f UNION SELECT id FROM f INTO OUTFILE '" + out + "'",
	}
	expectCode(t, db, 1290, refused...)
	// Prepared too, but for LOAD DATA: vitess's prepare step fails on it before any handler
	// runs and drops the connection (MySQL cannot prepare it either: 1295).
	for _, q := range refused[2:] {
		if _, err := db.Prepare(q); errCode(err) != 1290 {
			t.Errorf("prepare %s: %v, want 1290", q, err)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s was written: %v", out, err)
	}
	var got sql.NullString
	if err := db.QueryRow("SELECT LOAD_FILE('" + secret + "')").Scan(&got); err != nil || got.Valid {
		t.Errorf("LOAD_FILE: %q, %v, want NULL", got.String, err)
	}
	// Text that only mentions the words is not refused.
	mustExec(t, db, "INSERT INTO f VALUES (2, 'INTO OUTFILE x; LOAD DATA')")
	expectRows(t, db, "SELECT COUNT(*) FROM f", "2")
}

// SERIALIZABLE is refused with 1235, by every way of setting it, and changes nothing: refdb runs
// transactions as REPEATABLE READ, which covers the weaker levels (they are accepted).
func TestSerializableRefused(t *testing.T) {
	db := benchDB(t)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	for _, q := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE",
		"SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE",
		"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
		"SET transaction_isolation = 'SERIALIZABLE'",
		"SET @@session.tx_isolation = 'serializable'",
	} {
		if _, err := conn.ExecContext(ctx, q); errCode(err) != 1235 {
			t.Errorf("%s: %v, want error 1235", q, err)
		}
	}
	var level string
	if err := conn.QueryRowContext(ctx, "SELECT @@transaction_isolation").Scan(&level); err != nil || level != "REPEATABLE-READ" {
		t.Fatalf("isolation after the refusals: %q, %v", level, err)
	}
	for _, q := range []string{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET transaction_isolation = 'READ-UNCOMMITTED'", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}
