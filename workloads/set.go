package workloads

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// Set inserts unique elements and, at the end, reads them all: every
// acknowledged insert must be there (no lost write), nothing that was never
// attempted may be (no phantom). Every eighth worker (7, 15, ...) reads
// instead of inserting: a range of up to scanRange elements, the newest or a
// random older one, on the writer or through the reader endpoint. Whatever a
// read returned must also be in the final read: a database that shows a write
// and then loses it (a dirty read of an uncommitted or not yet durable write,
// or a lost write someone already saw) fails the check.
type Set struct{ next counter }

// scanRange bounds one read during the run, so that reads stay cheap and the
// history small however long the run is.
const scanRange = 1000

// scanner reports whether worker w reads rather than inserts.
func scanner(w int) bool { return w%8 == 7 }

// NewSet returns the set workload.
func NewSet() *Set { return &Set{} }

func (s *Set) Name() string { return "set" }

func (s *Set) Setup(ctx context.Context, env *Env) error {
	return execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS set_elems",
		"CREATE TABLE set_elems (v BIGINT PRIMARY KEY)")
}

func (s *Set) Next(rng *rand.Rand, w int) history.Op {
	if !scanner(w) {
		return history.Op{F: "add", Value: history.Int(s.next.next())}
	}
	// Half the reads look at the newest elements (those whose inserts may still be in
	// flight), half at a random older range (what a fault may change long after).
	hi := s.next.n.Load() + 1
	lo := max(1, hi-scanRange)
	if rng.IntN(2) == 0 {
		lo = 1 + rng.Int64N(hi)
	}
	node := "writer"
	if rng.IntN(2) == 0 {
		node = "reader"
	}
	return history.Op{F: "scan", Node: node, Value: history.Marshal([2]int64{lo, lo + scanRange})}
}

type setClient struct {
	db, reader *sql.DB
	ins, scan  string
}

func (s *Set) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	return &setClient{db: env.Writer, reader: env.Reader, ins: q(env.Dialect, "INSERT INTO set_elems (v) VALUES (?)"),
		scan: q(env.Dialect, "SELECT v FROM set_elems WHERE v >= ? AND v < ? ORDER BY v")}, nil
}

func (c *setClient) Close() error { return nil }

func (c *setClient) Invoke(ctx context.Context, op history.Op) history.Op {
	switch op.F {
	case "add":
		v, err := strconv.ParseInt(string(op.Value), 10, 64)
		if err != nil {
			return failed(op, fmt.Errorf("bad element: %w", err))
		}
		_, err = execOnce(ctx, c.db, c.ins, v)
		return complete(op, err)
	case "scan":
		var r [2]int64
		if err := json.Unmarshal(op.Value, &r); err != nil {
			return failed(op, fmt.Errorf("bad scan range: %w", err))
		}
		db := c.db
		if op.Node == "reader" && c.reader != nil {
			db = c.reader
		}
		vs, err := readInts(ctx, db, c.scan, r[0], r[1])
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Ints(vs))
	}
	return failed(op, fmt.Errorf("unknown set op %q", op.F))
}

func (s *Set) Final(ctx context.Context, env *Env, rec Recorder) error {
	op := history.Op{F: "read", Node: "writer"}
	done := rec(ctx, op, func(ctx context.Context) history.Op {
		vs, err := readInts(ctx, env.Writer, "SELECT v FROM set_elems ORDER BY v")
		// A read changes nothing, so one that met a pooled connection the endpoint dropped
		// at a failover just before is simply tried again.
		for try := 1; err != nil && try < 5; try++ {
			select {
			case <-ctx.Done():
				return completeRead(op, err)
			case <-time.After(200 * time.Millisecond):
			}
			vs, err = readInts(ctx, env.Writer, "SELECT v FROM set_elems ORDER BY v")
		}
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Ints(vs))
	})
	if done.Type != history.OK {
		return fmt.Errorf("final read of the set failed: %s", done.Error)
	}
	return nil
}

func (s *Set) Checkers() []checker.Checker {
	return []checker.Checker{checker.Set{}, checker.Perf{}}
}
