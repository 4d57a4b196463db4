package workloads

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// Register is a set of independent read/write/compare-and-set registers,
// one row each, checked for linearizability per key by Porcupine. Keys are
// retired after opsPerKey operations so every per-key history stays small
// enough to check exhaustively, Jepsen's "independent keys" technique.
type Register struct {
	ops       counter
	active    int // keys in use at once
	opsPerKey int64
}

// NewRegister returns the register workload.
func NewRegister() *Register { return &Register{active: 4, opsPerKey: 200} }

func (r *Register) Name() string { return "register" }

func (r *Register) Setup(ctx context.Context, env *Env) error {
	return execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS registers",
		"CREATE TABLE registers (id BIGINT PRIMARY KEY, val BIGINT NOT NULL)")
}

// Next picks one of the active keys: read 50%, write 25%, cas 25%, over a
// small value domain so compare-and-set succeeds often.
func (r *Register) Next(rng *rand.Rand, w int) history.Op {
	n := r.ops.next()
	gen := n / (r.opsPerKey * int64(r.active))
	key := strconv.FormatInt(gen*int64(r.active)+int64(rng.IntN(r.active)), 10)
	switch x := rng.IntN(4); {
	case x < 2:
		return history.Op{F: "read", Key: key}
	case x == 2:
		return history.Op{F: "write", Key: key, Value: history.Int(int64(rng.IntN(5)))}
	default:
		old := int64(rng.IntN(5))
		nv := (old + 1 + int64(rng.IntN(4))) % 5 // never equal to old: MySQL reports 0 affected rows for a no-op update
		return history.Op{F: "cas", Key: key, Value: history.Ints([]int64{old, nv})}
	}
}

type registerClient struct {
	db      *sql.DB
	dialect targets.Dialect
	read    string
	write   string
	cas     string
}

func (r *Register) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	c := &registerClient{db: env.Writer, dialect: env.Dialect}
	c.read = q(env.Dialect, "SELECT val FROM registers WHERE id = ?")
	if env.Dialect == targets.Postgres {
		c.write = "INSERT INTO registers (id, val) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET val = EXCLUDED.val"
	} else {
		c.write = "INSERT INTO registers (id, val) VALUES (?, ?) ON DUPLICATE KEY UPDATE val = VALUES(val)"
	}
	c.cas = q(env.Dialect, "UPDATE registers SET val = ? WHERE id = ? AND val = ?")
	return c, nil
}

func (c *registerClient) Close() error { return nil }

func (c *registerClient) Invoke(ctx context.Context, op history.Op) history.Op {
	id, _ := strconv.ParseInt(op.Key, 10, 64)
	switch op.F {
	case "read":
		var v int64
		err := c.db.QueryRowContext(ctx, c.read, id).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return ok(op, history.Null)
		}
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Int(v))
	case "write":
		v, _ := strconv.ParseInt(string(op.Value), 10, 64)
		_, err := execOnce(ctx, c.db, c.write, id, v)
		return complete(op, err)
	case "cas":
		var ov [2]int64
		if err := json.Unmarshal(op.Value, &ov); err != nil {
			return failed(op, fmt.Errorf("bad cas value: %w", err))
		}
		res, err := execOnce(ctx, c.db, c.cas, ov[1], id, ov[0])
		if err != nil {
			return complete(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return complete(op, err)
		}
		if n == 0 {
			// The compare failed: a definite outcome that constrains the
			// register's value, unlike a failure with an error.
			op.Type, op.Value = history.Fail, json.RawMessage("false")
			return op
		}
		return ok(op, op.Value)
	}
	return failed(op, fmt.Errorf("unknown register op %q", op.F))
}

func (r *Register) Final(ctx context.Context, env *Env, rec Recorder) error { return nil }

func (r *Register) Checkers() []checker.Checker {
	return []checker.Checker{checker.Linearizable{}, checker.Perf{}}
}
