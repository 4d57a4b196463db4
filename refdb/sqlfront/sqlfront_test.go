package sqlfront_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
	"github.com/aurorabench/aurorabench/refdb/sqlfront"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-mysql-server and its dependencies start these once per process and never stop them.
		goleak.IgnoreTopFunction("github.com/dolthub/go-mysql-server/sql.(*BackgroundThreads).Add.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/dolthub/go-mysql-server/eventscheduler.(*eventExecutor).start"),
	)
}

type writer struct {
	t     testing.TB
	c     *localvol.Cluster
	store *engine.VolumeStore
	fe    *sqlfront.Frontend
	ctx   context.Context
}

func startWriter(t testing.TB) *writer {
	t.Helper()
	c, err := localvol.Start(t.TempDir(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	w := &writer{t: t, c: c, ctx: ctx}
	t.Cleanup(func() {
		w.stop()
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
		cancel()
	})
	w.start(true)
	return w
}

func (w *writer) start(create bool) {
	w.t.Helper()
	s, err := w.c.OpenStore(w.ctx, create)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := engine.Open(w.ctx, engine.Config{Store: s, Logger: localvol.Quiet()})
	if err != nil {
		s.V.Close()
		w.t.Fatal(err)
	}
	fe, err := sqlfront.New(sqlfront.Config{Engine: e, Listen: "127.0.0.1:0", User: "admin", Password: "pw", Logger: localvol.Quiet()})
	if err != nil {
		s.V.Close()
		w.t.Fatal(err)
	}
	go fe.Serve()
	w.store, w.fe = s, fe
}

func (w *writer) stop() {
	if w.fe != nil {
		w.fe.Close()
		w.store.V.Close()
		w.fe, w.store = nil, nil
	}
}

func (w *writer) db(dbname string) *sql.DB {
	w.t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("admin:pw@tcp(%s)/%s?interpolateParams=false", w.fe.Addr(), dbname))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { db.Close() })
	return db
}

// conn is one connection of db, closed when the test ends.
func (w *writer) conn(db *sql.DB) *sql.Conn {
	w.t.Helper()
	c, err := db.Conn(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustExecConn(t testing.TB, c *sql.Conn, q string) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// querier is what queryInts reads through: a pool, a transaction or one connection.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryInts(t *testing.T, db querier, q string, args ...any) []int64 {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scanRaw scans the current row of rows, of n columns, as raw bytes (nil for NULL), valid
// until the next call to rows.Next.
func scanRaw(t *testing.T, rows *sql.Rows, n int) []sql.RawBytes {
	t.Helper()
	vals := make([]sql.RawBytes, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	return vals
}

// resultText renders the columns and rows of a query, or its error code, for comparing two
// ways of running the same statement.
func resultText(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		return "error " + fmt.Sprint(errCode(err))
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := fmt.Sprint(cols)
	for rows.Next() {
		vals := scanRaw(t, rows, len(cols))
		for _, v := range vals {
			if v == nil {
				out += " NULL"
			} else {
				out += fmt.Sprintf(" %q", v)
			}
		}
	}
	if err := rows.Err(); err != nil {
		out += " error " + fmt.Sprint(errCode(err))
	}
	return out
}

func errCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestSQLWriter(t *testing.T) {
	w := startWriter(t)
	root := w.db("")
	mustExec(t, root, "CREATE DATABASE bench")
	db := w.db("bench")
	db.SetMaxOpenConns(16)

	t.Run("auth", func(t *testing.T) {
		bad, _ := sql.Open("mysql", fmt.Sprintf("admin:wrong@tcp(%s)/", w.fe.Addr()))
		defer bad.Close()
		if err := bad.Ping(); errCode(err) != 1045 {
			t.Fatalf("wrong password: %v", err)
		}
		anon, _ := sql.Open("mysql", fmt.Sprintf("nobody@tcp(%s)/", w.fe.Addr()))
		defer anon.Close()
		if err := anon.Ping(); err == nil {
			t.Fatalf("unknown user: %v", err)
		}
	})

	t.Run("variables", func(t *testing.T) {
		var version string
		var ro int
		if err := db.QueryRow("SELECT @@version, @@read_only").Scan(&version, &ro); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(version, "refdb") || ro != 0 {
			t.Fatalf("@@version=%q @@read_only=%d", version, ro)
		}
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.replica_host_status").Scan(&n); err != nil || n != 0 {
			t.Fatalf("replica_host_status: %d %v", n, err)
		}
	})

	mustExec(t, db, `CREATE TABLE items (
		id INT NOT NULL AUTO_INCREMENT,
		k INT DEFAULT '0' NOT NULL,
		name VARCHAR(40) NOT NULL DEFAULT '',
		price DECIMAL(10,2),
		created DATETIME,
		PRIMARY KEY (id),
		UNIQUE KEY name_u (name))`)
	mustExec(t, db, "CREATE INDEX k_idx ON items(k)")

	t.Run("dml_and_indexes", func(t *testing.T) {
		for i := 1; i <= 50; i++ {
			mustExec(t, db, "INSERT INTO items (k, name, price, created) VALUES (?, ?, ?, ?)", i%5, fmt.Sprintf("item-%02d", i), float64(i)+0.5, time.Date(2024, 1, i%28+1, 0, 0, 0, 0, time.UTC))
		}
		if got := queryInts(t, db, "SELECT id FROM items WHERE id = 7"); fmt.Sprint(got) != "[7]" {
			t.Fatalf("pk point: %v", got)
		}
		if got := queryInts(t, db, "SELECT id FROM items WHERE id BETWEEN 10 AND 14 ORDER BY id"); fmt.Sprint(got) != "[10 11 12 13 14]" {
			t.Fatalf("pk range: %v", got)
		}
		if got := queryInts(t, db, "SELECT id FROM items WHERE id > 47 ORDER BY id"); fmt.Sprint(got) != "[48 49 50]" {
			t.Fatalf("pk open range: %v", got)
		}
		if got := queryInts(t, db, "SELECT COUNT(*) FROM items WHERE k = 3"); fmt.Sprint(got) != "[10]" {
			t.Fatalf("secondary point: %v", got)
		}
		if got := queryInts(t, db, "SELECT COUNT(*) FROM items WHERE k >= 1 AND k < 3"); fmt.Sprint(got) != "[20]" {
			t.Fatalf("secondary range: %v", got)
		}
		if got := queryInts(t, db, "SELECT id FROM items WHERE name = 'item-33'"); fmt.Sprint(got) != "[33]" {
			t.Fatalf("unique lookup: %v", got)
		}
		var price string
		if err := db.QueryRow("SELECT price FROM items WHERE id = 3").Scan(&price); err != nil || price != "3.50" {
			t.Fatalf("decimal: %q %v", price, err)
		}
		// Index maintenance on update and delete.
		mustExec(t, db, "UPDATE items SET k = 9 WHERE id = 3")
		if got := queryInts(t, db, "SELECT id FROM items WHERE k = 9"); fmt.Sprint(got) != "[3]" {
			t.Fatalf("after index update: %v", got)
		}
		if got := queryInts(t, db, "SELECT COUNT(*) FROM items WHERE k = 3"); fmt.Sprint(got) != "[9]" {
			t.Fatalf("old index entry left: %v", got)
		}
		mustExec(t, db, "DELETE FROM items WHERE id = 3")
		if got := queryInts(t, db, "SELECT COUNT(*) FROM items WHERE k = 9"); fmt.Sprint(got) != "[0]" {
			t.Fatalf("index entry left after delete: %v", got)
		}
		// Duplicates: primary and unique keys.
		_, err := db.Exec("INSERT INTO items (id, k, name) VALUES (5, 1, 'new')")
		if errCode(err) != 1062 {
			t.Fatalf("duplicate pk: %v", err)
		}
		_, err = db.Exec("INSERT INTO items (k, name) VALUES (1, 'item-05')")
		if errCode(err) != 1062 {
			t.Fatalf("duplicate unique: %v", err)
		}
		mustExec(t, db, "INSERT INTO items (id, k, name) VALUES (5, 1, 'x') ON DUPLICATE KEY UPDATE k = k + 100")
		if got := queryInts(t, db, "SELECT k FROM items WHERE id = 5"); fmt.Sprint(got) != "[100]" {
			t.Fatalf("on duplicate key update: %v", got)
		}
		mustExec(t, db, "REPLACE INTO items (id, k, name) VALUES (6, 7, 'replaced')")
		if got := queryInts(t, db, "SELECT k FROM items WHERE name = 'replaced'"); fmt.Sprint(got) != "[7]" {
			t.Fatalf("replace: %v", got)
		}
		// Auto-increment continues above explicit ids.
		mustExec(t, db, "INSERT INTO items (id, k, name) VALUES (1000, 0, 'big')")
		res, err := db.Exec("INSERT INTO items (k, name) VALUES (0, 'after-big')")
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := res.LastInsertId(); id != 1001 {
			t.Fatalf("auto-increment after explicit 1000: %d", id)
		}
	})

	t.Run("primary_key_points", func(t *testing.T) {
		// Ranges fixing the whole primary key are read as single keys through the cache.
		mustExec(t, db, "CREATE TABLE pts (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b))")
		mustExec(t, db, "INSERT INTO pts VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 20), (3, 'z', 30)")
		for _, c := range []struct{ q, want string }{
			{"SELECT v FROM pts WHERE a = 1 AND b = 'y'", "[11]"},
			{"SELECT v FROM pts WHERE a = 1 AND b = 'q'", "[]"},
			{"SELECT v FROM pts WHERE a = 1 ORDER BY b", "[10 11]"}, // prefix: still a scan
			{"SELECT v FROM pts WHERE (a, b) IN ((1, 'x'), (3, 'z'), (9, 'x')) ORDER BY v", "[10 30]"},
			{"SELECT v FROM pts WHERE a = 2 AND b = 'x' AND v > 25", "[]"},         // the filter stays
			{"SELECT v FROM pts WHERE a = 1.5 AND b = 'x'", "[]"},                  // inexact value
			{"SELECT v FROM pts WHERE a = NULL AND b = 'x'", "[]"},                 // NULL never matches
			{"SELECT COUNT(*) FROM items WHERE id IN (1, 2, 2, 4, 999999)", "[3]"}, // duplicates and misses
			{"SELECT id FROM items WHERE id = 7 OR id = 8 ORDER BY id", "[7 8]"},
		} {
			if got := fmt.Sprint(queryInts(t, db, c.q)); got != c.want && !(got == "[]" && c.want == "[]") {
				t.Errorf("%s = %s, want %s", c.q, got, c.want)
			}
		}
		// Own uncommitted writes and locking reads see the transaction's state.
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "UPDATE pts SET v = 99 WHERE a = 3 AND b = 'z'")
		var v int
		if err := tx.QueryRow("SELECT v FROM pts WHERE a = 3 AND b = 'z'").Scan(&v); err != nil || v != 99 {
			t.Fatalf("own write through a point read: %d %v", v, err)
		}
		if err := tx.QueryRow("SELECT v FROM pts WHERE a = 2 AND b = 'x' FOR UPDATE").Scan(&v); err != nil || v != 20 {
			t.Fatalf("locking point read: %d %v", v, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT v FROM pts WHERE a = 3 AND b = 'z'").Scan(&v); err != nil || v != 30 {
			t.Fatalf("after rollback: %d %v", v, err)
		}
	})

	t.Run("point_get_matches_planner", func(t *testing.T) {
		// The prepared statements below run as point gets; the same text with literals goes
		// through go-mysql-server's planner. Both must answer the same rows and columns.
		mustExec(t, db, "CREATE TABLE pg (id INT UNSIGNED NOT NULL PRIMARY KEY, s VARCHAR(20), n BIGINT, d DECIMAL(6,2), ts DATETIME, b BLOB)")
		mustExec(t, db, "INSERT INTO pg VALUES (1, 'one', -5, 1.25, '2024-01-02 03:04:05', x'00ff'), (2, NULL, NULL, NULL, NULL, NULL), (4294967295, 'max', 9, 0, NULL, '')")
		// interpolateParams: the driver inlines the arguments and uses the text protocol.
		text, err := sql.Open("mysql", fmt.Sprintf("admin:pw@tcp(%s)/bench?interpolateParams=true", w.fe.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer text.Close()
		rowsOf := func(db *sql.DB, q string, args ...any) string {
			t.Helper()
			return resultText(t, db, q, args...)
		}
		before := w.fe.PointGets()
		for _, c := range []struct {
			q    string
			args []any
		}{
			{"SELECT s, n, d, ts, b FROM pg WHERE id = ?", []any{1}},
			{"SELECT * FROM pg WHERE id = ?", []any{2}},
			{"SELECT id, s FROM pg WHERE id = ?", []any{uint64(4294967295)}},
			{"SELECT s FROM pg WHERE id = ?", []any{3}},                  // no such row
			{"SELECT s FROM pg WHERE id = ?", []any{-1}},                 // below an unsigned column
			{"SELECT s FROM pg WHERE id = ?", []any{int64(1) << 40}},     // above its width
			{"SELECT s FROM pg WHERE id = ?", []any{"1"}},                // a string argument: planner
			{"SELECT s AS name FROM bench.pg WHERE pg.id = ?", []any{1}}, // alias and qualifiers
			{"SELECT nosuch FROM pg WHERE id = ?", []any{1}},             // an error either way
			{"SELECT s FROM nosuch WHERE id = ?", []any{1}},
		} {
			got, want := rowsOf(db, c.q, c.args...), rowsOf(text, c.q, c.args...)
			if got != want {
				t.Errorf("%s %v: prepared %s, planner %s", c.q, c.args, got, want)
			}
		}
		if n := w.fe.PointGets() - before; n != 7 {
			t.Errorf("%d executions ran as point gets, want 7", n)
		}
		// After DDL on the table a prepared statement answers with the new columns.
		st, err := db.Prepare("SELECT * FROM pg WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		prev := rowsOf(db, "SELECT * FROM pg WHERE id = ?", 1)
		mustExec(t, db, "ALTER TABLE pg ADD COLUMN extra INT DEFAULT 7")
		rows, err := st.Query(1)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		rows.Close()
		st.Close()
		if len(cols) != 7 {
			t.Errorf("after ADD COLUMN a prepared SELECT * answers %v (before: %s)", cols, prev)
		}
		mustExec(t, db, "ALTER TABLE pg DROP COLUMN extra")

		// In a transaction the point get sees the transaction's snapshot and own writes.
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := tx.QueryRow("SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil || s != "one" {
			t.Fatalf("in txn: %q %v", s, err)
		}
		mustExec(t, db, "UPDATE pg SET s = 'uno' WHERE id = 1") // another session commits
		if err := tx.QueryRow("SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil || s != "one" {
			t.Fatalf("snapshot: %q %v", s, err)
		}
		mustExec(t, tx, "UPDATE pg SET s = 'mine' WHERE id = 2")
		if err := tx.QueryRow("SELECT s FROM pg WHERE id = ?", 2).Scan(&s); err != nil || s != "mine" {
			t.Fatalf("own write: %q %v", s, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil || s != "uno" {
			t.Fatalf("after commit: %q %v", s, err)
		}
		// autocommit off: the first read starts the transaction later reads share.
		conn, err := db.Conn(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		mustExecConn(t, conn, "SET autocommit = 0")
		if err := conn.QueryRowContext(w.ctx, "SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil || s != "uno" {
			t.Fatalf("autocommit 0: %q %v", s, err)
		}
		mustExec(t, db, "UPDATE pg SET s = 'eins' WHERE id = 1")
		if err := conn.QueryRowContext(w.ctx, "SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil || s != "uno" {
			t.Fatalf("autocommit 0, repeatable read: %q %v", s, err)
		}
		mustExecConn(t, conn, "COMMIT")
		mustExecConn(t, conn, "SET autocommit = 1")
		// Session state a SELECT leaves: ROW_COUNT() -1, FOUND_ROWS() its rows; and
		// sql_select_limit applies.
		mustExecConn(t, conn, "UPDATE pg SET n = 1 WHERE id IN (1, 2)")
		var rc, fr int64
		if err := conn.QueryRowContext(w.ctx, "SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(w.ctx, "SELECT ROW_COUNT(), FOUND_ROWS()").Scan(&rc, &fr); err != nil || rc != -1 || fr != 1 {
			t.Errorf("after a point get ROW_COUNT() = %d, FOUND_ROWS() = %d (%v), want -1, 1", rc, fr, err)
		}
		mustExecConn(t, conn, "SET sql_select_limit = 0")
		if err := conn.QueryRowContext(w.ctx, "SELECT s FROM pg WHERE id = ?", 1).Scan(&s); err != sql.ErrNoRows {
			t.Errorf("sql_select_limit 0: %q %v, want no rows", s, err)
		}
		mustExecConn(t, conn, "SET sql_select_limit = DEFAULT")
	})

	t.Run("range_scan_matches_planner", func(t *testing.T) {
		// Prepared primary-key ranges run as range scans (rangescan.go); the same text with
		// literals goes through go-mysql-server's planner. Both must answer the same rows.
		mustExec(t, db, "CREATE TABLE rs_s (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(10))")
		mustExec(t, db, "CREATE TABLE rs_u (id INT UNSIGNED NOT NULL PRIMARY KEY, v INT)")
		mustExec(t, db, "CREATE TABLE rs_t (id TINYINT NOT NULL PRIMARY KEY, v INT)")
		mustExec(t, db, "INSERT INTO rs_s VALUES (-9223372036854775808, 'min'), (-5, 'a'), (0, 'b'), (1, 'c'), (2, NULL), (7, 'd'), (9223372036854775807, 'max')")
		mustExec(t, db, "INSERT INTO rs_u VALUES (0, 1), (1, 2), (5, 3), (4294967295, 4)")
		mustExec(t, db, "INSERT INTO rs_t VALUES (-128, 1), (0, 2), (127, 3)")
		for i := 100; i < 400; i++ { // more rows than one batch (rangeScanBatch)
			mustExec(t, db, fmt.Sprintf("INSERT INTO rs_s VALUES (%d, 'r%d')", i, i))
		}
		text, err := sql.Open("mysql", fmt.Sprintf("admin:pw@tcp(%s)/bench?interpolateParams=true", w.fe.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer text.Close()
		const maxI, minI = int64(math.MaxInt64), int64(math.MinInt64)
		const maxU = uint64(math.MaxUint64)
		cases := []struct {
			q    string
			args []any
			fast bool
		}{
			{"SELECT id, v FROM rs_s WHERE id BETWEEN ? AND ?", []any{-5, 7}, true},
			{"SELECT id, v FROM rs_s WHERE id BETWEEN ? AND ?", []any{7, -5}, true}, // empty
			{"SELECT * FROM rs_s WHERE id > ? ORDER BY id LIMIT 10000", []any{0}, true},
			{"SELECT id FROM rs_s WHERE id > ? ORDER BY id LIMIT 3", []any{minI}, true},
			{"SELECT id FROM rs_s WHERE id >= ? ORDER BY id ASC LIMIT 2, 3", []any{minI}, true},
			{"SELECT id FROM rs_s WHERE id > ? LIMIT 5", []any{maxI}, true},
			{"SELECT id FROM rs_s WHERE id >= ?", []any{maxI}, true},
			{"SELECT id FROM rs_s WHERE id > ?", []any{uint64(1) << 63}, true}, // above a signed column
			{"SELECT id FROM rs_s WHERE id < ?", []any{uint64(1) << 63}, true}, // every row, up to MaxInt64
			{"SELECT id FROM rs_s WHERE id < ?", []any{minI}, true},
			{"SELECT id FROM rs_s WHERE id <= ?", []any{minI}, true},
			{"SELECT id FROM rs_s WHERE id >= ? AND id < ?", []any{-5, 2}, true},
			{"SELECT id FROM rs_s WHERE ? <= id AND ? > id", []any{-5, 2}, true},
			{"SELECT id FROM rs_s WHERE (id > ?) AND (id <= ?) ORDER BY id LIMIT 0", []any{0, 300}, true},
			{"SELECT id FROM rs_s WHERE id > ? AND id <= ?", []any{0, 300}, true}, // several batches
			{"SELECT rs_s.v FROM bench.rs_s WHERE rs_s.id BETWEEN ? AND ?", []any{0, 2}, true},
			{"SELECT id FROM rs_u WHERE id > ?", []any{-1}, true}, // below an unsigned column
			{"SELECT id FROM rs_u WHERE id < ?", []any{-1}, true},
			{"SELECT id FROM rs_u WHERE id <= ?", []any{0}, true},
			{"SELECT id FROM rs_u WHERE id < ?", []any{0}, true},
			{"SELECT id FROM rs_u WHERE id >= ?", []any{maxU}, true},
			{"SELECT id FROM rs_u WHERE id > ?", []any{maxU}, true},
			{"SELECT id FROM rs_u WHERE id BETWEEN ? AND ?", []any{1, maxU}, true},
			{"SELECT id, v FROM rs_t WHERE id BETWEEN ? AND ?", []any{-1000, 1000}, true}, // beyond TINYINT
			{"SELECT id FROM rs_t WHERE id > ?", []any{127}, true},
			// Outside the shape, or arguments that are not integers: the planner.
			{"SELECT id FROM rs_s WHERE id > ? ORDER BY id DESC LIMIT 3", []any{0}, false},
			{"SELECT id FROM rs_s WHERE id > ? AND id > ?", []any{0, 5}, false},
			{"SELECT id FROM rs_s WHERE id BETWEEN ? AND ?", []any{"1", 7}, false},
			{"SELECT id FROM rs_s WHERE id > ?", []any{1.5}, false},
			{"SELECT id FROM rs_s WHERE id > ?", []any{nil}, false},
			{"SELECT id FROM rs_s WHERE v > ?", []any{0}, false},
			{"SELECT v AS id FROM rs_s WHERE id > ? ORDER BY id LIMIT 3", []any{0}, false}, // ORDER BY names the alias
			{"SELECT nosuch FROM rs_s WHERE id > ?", []any{0}, false},
		}
		for _, c := range cases {
			before := w.fe.RangeScans()
			got, want := resultText(t, db, c.q, c.args...), resultText(t, text, c.q, c.args...)
			if got != want {
				t.Errorf("%s %v: prepared %s, planner %s", c.q, c.args, got, want)
			}
			if ran := w.fe.RangeScans() != before; ran != c.fast {
				t.Errorf("%s %v: ran as a range scan %v, want %v", c.q, c.args, ran, c.fast)
			}
		}
		// In a transaction: its snapshot and its own writes, merged in key order.
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		q := "SELECT id FROM rs_s WHERE id > ? AND id < ?"
		if got := fmt.Sprint(queryInts(t, tx, q, -10, 10)); got != "[-5 0 1 2 7]" {
			t.Fatalf("in txn: %s", got)
		}
		mustExec(t, db, "INSERT INTO rs_s VALUES (3, 'other')") // another session commits
		mustExec(t, tx, "INSERT INTO rs_s VALUES (4, 'mine')")
		mustExec(t, tx, "DELETE FROM rs_s WHERE id = 0")
		if got := fmt.Sprint(queryInts(t, tx, q, -10, 10)); got != "[-5 1 2 4 7]" {
			t.Fatalf("snapshot and own writes: %s", got)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(queryInts(t, db, q, -10, 10)); got != "[-5 0 1 2 3 7]" {
			t.Fatalf("after rollback: %s", got)
		}
		// ROW_COUNT() and FOUND_ROWS() as after any SELECT; sql_select_limit applies.
		conn, err := db.Conn(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		rows, err := conn.QueryContext(w.ctx, q, -10, 10)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
		var rc, fr int64
		if err := conn.QueryRowContext(w.ctx, "SELECT ROW_COUNT(), FOUND_ROWS()").Scan(&rc, &fr); err != nil || rc != -1 || fr != 6 {
			t.Errorf("after a range scan ROW_COUNT() = %d, FOUND_ROWS() = %d (%v), want -1, 6", rc, fr, err)
		}
		mustExecConn(t, conn, "SET sql_select_limit = 2")
		if got := fmt.Sprint(queryInts(t, conn, q, -10, 10)); got != "[-5 0]" {
			t.Errorf("sql_select_limit 2: %s", got)
		}
		mustExecConn(t, conn, "SET sql_select_limit = DEFAULT")
	})

	t.Run("prepared", func(t *testing.T) {
		st, err := db.Prepare("SELECT name FROM items WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for _, id := range []int{7, 8, 9} {
			var name string
			if err := st.QueryRow(id).Scan(&name); err != nil || name != fmt.Sprintf("item-%02d", id) {
				t.Fatalf("prepared select %d: %q %v", id, name, err)
			}
		}
		up, err := db.Prepare("UPDATE items SET k = k + ? WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		defer up.Close()
		if _, err := up.Exec(1000, 8); err != nil {
			t.Fatal(err)
		}
		if got := queryInts(t, db, "SELECT k FROM items WHERE id = 8"); fmt.Sprint(got) != "[1003]" {
			t.Fatalf("prepared update: %v", got)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "INSERT INTO items (id, k, name) VALUES (2000, 1, 'rolled-back')")
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if got := queryInts(t, db, "SELECT COUNT(*) FROM items WHERE id = 2000"); fmt.Sprint(got) != "[0]" {
			t.Fatalf("rolled back insert visible: %v", got)
		}
		tx, _ = db.Begin()
		mustExec(t, tx, "INSERT INTO items (id, k, name) VALUES (2001, 1, 'kept')")
		mustExec(t, tx, "SAVEPOINT sp1")
		mustExec(t, tx, "INSERT INTO items (id, k, name) VALUES (2002, 1, 'undone')")
		mustExec(t, tx, "ROLLBACK TO SAVEPOINT sp1")
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := queryInts(t, db, "SELECT id FROM items WHERE id >= 2000 ORDER BY id"); fmt.Sprint(got) != "[2001]" {
			t.Fatalf("savepoint: %v", got)
		}
		// A snapshot does not see later commits; a locking read does.
		tx, _ = db.Begin()
		if got := queryInts(t, db, "SELECT k FROM items WHERE id = 10"); len(got) != 1 {
			t.Fatal(got)
		}
		var before int64
		if err := tx.QueryRow("SELECT k FROM items WHERE id = 10").Scan(&before); err != nil {
			t.Fatal(err)
		}
		mustExec(t, db, "UPDATE items SET k = k + 1 WHERE id = 10")
		var snap, locked int64
		tx.QueryRow("SELECT k FROM items WHERE id = 10").Scan(&snap)
		tx.QueryRow("SELECT k FROM items WHERE id = 10 FOR UPDATE").Scan(&locked)
		tx.Rollback()
		if snap != before || locked != before+1 {
			t.Fatalf("snapshot read %d (want %d), locking read %d (want %d)", snap, before, locked, before+1)
		}
	})

	t.Run("bad_sql_keeps_connection", func(t *testing.T) {
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(context.Background(), "SELEKT * FROM nowhere"); err == nil {
			t.Fatal("malformed SQL accepted")
		}
		if _, err := conn.ExecContext(context.Background(), "INSERT INTO missing_table VALUES (1)"); err == nil {
			t.Fatal("insert into a missing table accepted")
		}
		// A failed autocommit statement must not keep the row locks it took.
		if _, err := conn.ExecContext(context.Background(), "UPDATE items SET name = 'item-12' WHERE id = 11"); errCode(err) != 1062 {
			t.Fatalf("want duplicate key, got %v", err)
		}
		var n int
		if err := conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM items").Scan(&n); err != nil || n == 0 {
			t.Fatalf("connection unusable after errors: %d %v", n, err)
		}
		if l := w.fe.Engine().LockedKeys(); l != 0 {
			t.Fatalf("%d row locks left after failed statements", l)
		}
		conn.Close()
		// No transaction stays open (holding locks, pinning storage GC) after failed
		// autocommit statements.
		if n := w.fe.Engine().ActiveTxns(); n != 0 {
			t.Fatalf("%d transactions left open", n)
		}
	})

	t.Run("lock_timeout_and_deadlock", func(t *testing.T) {
		a, _ := db.Conn(context.Background())
		b, _ := db.Conn(context.Background())
		defer a.Close()
		defer b.Close()
		ctx := context.Background()
		mustExecConn(t, a, "SET innodb_lock_wait_timeout = 1")
		mustExecConn(t, b, "SET innodb_lock_wait_timeout = 1")
		mustExecConn(t, a, "BEGIN")
		mustExecConn(t, a, "UPDATE items SET k = 1 WHERE id = 20")
		if _, err := b.ExecContext(ctx, "UPDATE items SET k = 2 WHERE id = 20"); errCode(err) != 1205 {
			t.Fatalf("want lock wait timeout 1205, got %v", err)
		}
		mustExecConn(t, b, "SET innodb_lock_wait_timeout = 30")
		mustExecConn(t, b, "BEGIN")
		mustExecConn(t, b, "UPDATE items SET k = 2 WHERE id = 21")
		done := make(chan error, 1)
		go func() { _, err := a.ExecContext(ctx, "UPDATE items SET k = 1 WHERE id = 21"); done <- err }()
		// b closes the cycle (or a does, if it queued first): exactly one gets 1213.
		_, errB := b.ExecContext(ctx, "UPDATE items SET k = 2 WHERE id = 20")
		errA := <-done
		if (errCode(errA) == 1213) == (errCode(errB) == 1213) {
			t.Fatalf("want exactly one deadlock victim: a=%v b=%v", errA, errB)
		}
		mustExecConn(t, a, "ROLLBACK")
		mustExecConn(t, b, "ROLLBACK")
		if l := w.fe.Engine().LockedKeys(); l != 0 {
			t.Fatalf("%d row locks left", l)
		}
	})

	t.Run("concurrent_increments", func(t *testing.T) {
		mustExec(t, db, "CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
		mustExec(t, db, "INSERT INTO counters VALUES (1, 0), (2, 0)")
		const workers, each = 8, 20
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for g := 0; g < workers; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if _, err := db.Exec("UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
						errs <- err
						return
					}
					// Read-modify-write through SELECT ... FOR UPDATE in a transaction.
					for {
						err := incr(db)
						if errCode(err) == 1213 {
							continue
						}
						if err != nil {
							errs <- err
							return
						}
						break
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := queryInts(t, db, "SELECT n FROM counters ORDER BY id"); fmt.Sprint(got) != fmt.Sprint([]int64{workers * each, workers * each}) {
			t.Fatalf("lost updates: %v", got)
		}
	})

	t.Run("ddl", func(t *testing.T) {
		mustExec(t, db, "CREATE TABLE tmp (a INT PRIMARY KEY, b VARCHAR(10))")
		mustExec(t, db, "INSERT INTO tmp VALUES (1, 'x'), (2, 'y')")
		mustExec(t, db, "TRUNCATE TABLE tmp")
		if got := queryInts(t, db, "SELECT COUNT(*) FROM tmp"); fmt.Sprint(got) != "[0]" {
			t.Fatalf("truncate: %v", got)
		}
		mustExec(t, db, "INSERT INTO tmp VALUES (3, 'z')")
		mustExec(t, db, "RENAME TABLE tmp TO tmp2")
		if got := queryInts(t, db, "SELECT a FROM tmp2"); fmt.Sprint(got) != "[3]" {
			t.Fatalf("rename: %v", got)
		}
		mustExec(t, db, "DROP TABLE tmp2")
		if _, err := db.Exec("SELECT * FROM tmp2"); err == nil {
			t.Fatal("dropped table still readable")
		}
	})

	// Everything acknowledged survives a writer restart (recovery under a new epoch).
	var before int
	db.QueryRow("SELECT COUNT(*) FROM items").Scan(&before)
	db.Close()
	root.Close()
	w.stop()
	w.start(false)
	db2 := w.db("bench")
	var after int
	if err := db2.QueryRow("SELECT COUNT(*) FROM items").Scan(&after); err != nil || after != before {
		t.Fatalf("after restart: %d rows (%v), before %d", after, err, before)
	}
	if got := queryInts(t, db2, "SELECT COUNT(*) FROM items WHERE k = 4"); len(got) != 1 || got[0] == 0 {
		t.Fatalf("secondary index after restart: %v", got)
	}
	res, err := db2.Exec("INSERT INTO items (k, name) VALUES (0, 'after-restart')")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id <= 1001 {
		t.Fatalf("auto-increment went back after restart: %d", id)
	}
	db2.Close()
}

func incr(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow("SELECT n FROM counters WHERE id = 2 FOR UPDATE").Scan(&n); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.Exec("UPDATE counters SET n = ? WHERE id = 2", n+1); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
