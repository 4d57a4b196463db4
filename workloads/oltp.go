package workloads

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// OLTP is the shape of sysbench's oltp_read_write: per transaction, 10
// point selects, 4 range queries (simple, sum, order, distinct), an index
// and a non-index update, and a delete followed by an insert of the same
// row, each on a random sbtest table, inside BEGIN ... COMMIT. The schema
// and data distribution match sysbench's so the two measure the same thing.
type OLTP struct {
	tables, size int
}

// NewOLTP returns the oltp workload (4 tables x 10,000 rows by default).
func NewOLTP() *OLTP { return &OLTP{tables: 4, size: 10000} }

func (o *OLTP) Name() string { return "oltp" }

const oltpRange = 100 // sysbench --range_size

func (o *OLTP) Setup(ctx context.Context, env *Env) error {
	rng := rand.New(rand.NewPCG(uint64(env.Seed), 7))
	for t := 1; t <= o.tables; t++ {
		name := fmt.Sprintf("sbtest%d", t)
		create := fmt.Sprintf("CREATE TABLE %s (id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id))", name)
		if env.Dialect == targets.Postgres {
			create = fmt.Sprintf("CREATE TABLE %s (id SERIAL NOT NULL, k INTEGER NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id))", name)
		}
		if err := execAll(ctx, env.Writer, "DROP TABLE IF EXISTS "+name, create); err != nil {
			return err
		}
		const batch = 1000
		for start := 1; start <= o.size; start += batch {
			var b strings.Builder
			fmt.Fprintf(&b, "INSERT INTO %s (id, k, c, pad) VALUES ", name)
			for id := start; id < start+batch && id <= o.size; id++ {
				if id > start {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "(%d,%d,'%s','%s')", id, 1+rng.IntN(o.size), sbString(rng, 10), sbString(rng, 5))
			}
			if err := execAll(ctx, env.Writer, b.String()); err != nil {
				return err
			}
		}
		if err := execAll(ctx, env.Writer, fmt.Sprintf("CREATE INDEX k_%d ON %s (k)", t, name)); err != nil {
			return err
		}
		if env.Dialect == targets.Postgres {
			// Keep SERIAL ahead of the explicit ids, as sysbench's prepare does.
			if err := execAll(ctx, env.Writer, fmt.Sprintf("SELECT setval('%s_id_seq', %d)", name, o.size)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sbString is sysbench's c/pad value: groups of 11 digits joined by '-'.
func sbString(rng *rand.Rand, groups int) string {
	b := make([]byte, 0, groups*12)
	for g := 0; g < groups; g++ {
		if g > 0 {
			b = append(b, '-')
		}
		for i := 0; i < 11; i++ {
			b = append(b, byte('0'+rng.IntN(10)))
		}
	}
	return string(b)
}

// oltpTxn is the pre-generated content of one transaction, kept in the
// history so a run can be replayed and audited.
type oltpTxn struct {
	Points  [10][2]int `json:"points"` // [table, id]
	Ranges  [4][2]int  `json:"ranges"` // [table, start]
	IdxUpd  [2]int     `json:"idx_upd"`
	NonIdx  [2]int     `json:"non_idx"`
	DelIns  [2]int     `json:"del_ins"`
	K       int        `json:"k"`
	Seed    uint64     `json:"seed"` // for c/pad strings
	Version int        `json:"v"`
}

func (o *OLTP) Next(rng *rand.Rand, w int) history.Op {
	var t oltpTxn
	pick := func() [2]int { return [2]int{1 + rng.IntN(o.tables), 1 + rng.IntN(o.size)} }
	for i := range t.Points {
		t.Points[i] = pick()
	}
	for i := range t.Ranges {
		t.Ranges[i] = [2]int{1 + rng.IntN(o.tables), 1 + rng.IntN(max(1, o.size-oltpRange))}
	}
	t.IdxUpd, t.NonIdx, t.DelIns = pick(), pick(), pick()
	t.K = 1 + rng.IntN(o.size)
	t.Seed = rng.Uint64()
	t.Version = 1
	b, _ := json.Marshal(&t)
	return history.Op{F: "txn", Value: b}
}

// oltpClient uses server-side prepared statements, as sysbench does
// (--db-ps-mode=auto), so both parse each statement once per connection.
type oltpClient struct {
	db      *sql.DB
	dialect targets.Dialect
	stmts   map[string][]*sql.Stmt // per kind, per table (index table-1)
}

func (o *OLTP) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	c := &oltpClient{db: env.Writer, dialect: env.Dialect, stmts: map[string][]*sql.Stmt{}}
	kinds := map[string]string{
		"point":    "SELECT c FROM %s WHERE id = ?",
		"simple":   "SELECT c FROM %s WHERE id BETWEEN ? AND ?",
		"sum":      "SELECT SUM(k) FROM %s WHERE id BETWEEN ? AND ?",
		"order":    "SELECT c FROM %s WHERE id BETWEEN ? AND ? ORDER BY c",
		"distinct": "SELECT DISTINCT c FROM %s WHERE id BETWEEN ? AND ? ORDER BY c",
		"idxupd":   "UPDATE %s SET k = k + 1 WHERE id = ?",
		"nonidx":   "UPDATE %s SET c = ? WHERE id = ?",
		"delete":   "DELETE FROM %s WHERE id = ?",
		"insert":   "INSERT INTO %s (id, k, c, pad) VALUES (?, ?, ?, ?)",
	}
	for kind, f := range kinds {
		for t := 1; t <= o.tables; t++ {
			st, err := env.Writer.PrepareContext(ctx, q(env.Dialect, fmt.Sprintf(f, fmt.Sprintf("sbtest%d", t))))
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("prepare %s: %w", kind, err)
			}
			c.stmts[kind] = append(c.stmts[kind], st)
		}
	}
	return c, nil
}

func (c *oltpClient) Close() error {
	for _, sts := range c.stmts {
		for _, st := range sts {
			_ = st.Close()
		}
	}
	return nil
}

func (c *oltpClient) Invoke(ctx context.Context, op history.Op) history.Op {
	var t oltpTxn
	if err := json.Unmarshal(op.Value, &t); err != nil || t.Version != 1 {
		return failed(op, fmt.Errorf("bad oltp transaction: %v", err))
	}
	op.Value = nil // the result carries nothing; keep the history small
	return complete(op, c.run(ctx, &t))
}

func (c *oltpClient) run(ctx context.Context, t *oltpTxn) error {
	return inTx(ctx, c.db, func(tx *sql.Tx) error {
		var s string
		for _, p := range t.Points {
			if err := tx.StmtContext(ctx, c.stmts["point"][p[0]-1]).QueryRowContext(ctx, p[1]).Scan(&s); err != nil && err != sql.ErrNoRows {
				return err
			}
		}
		for i, kind := range []string{"simple", "sum", "order", "distinct"} {
			r := t.Ranges[i]
			rows, err := tx.StmtContext(ctx, c.stmts[kind][r[0]-1]).QueryContext(ctx, r[1], r[1]+oltpRange-1)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		rng := rand.New(rand.NewPCG(t.Seed, 11))
		if _, err := tx.StmtContext(ctx, c.stmts["idxupd"][t.IdxUpd[0]-1]).ExecContext(ctx, t.IdxUpd[1]); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, c.stmts["nonidx"][t.NonIdx[0]-1]).ExecContext(ctx, sbString(rng, 10), t.NonIdx[1]); err != nil {
			return err
		}
		tbl := t.DelIns[0] - 1
		if _, err := tx.StmtContext(ctx, c.stmts["delete"][tbl]).ExecContext(ctx, t.DelIns[1]); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, c.stmts["insert"][tbl]).ExecContext(ctx, t.DelIns[1], t.K, sbString(rng, 10), sbString(rng, 5)); err != nil {
			return err
		}
		return nil
	})
}

func (o *OLTP) Final(ctx context.Context, env *Env, rec Recorder) error { return nil }

func (o *OLTP) Checkers() []checker.Checker { return []checker.Checker{checker.Perf{}} }
