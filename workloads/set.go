package workloads

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// Set inserts unique elements and, at the end, reads them all: every
// acknowledged insert must be there (no lost write), nothing that was never
// attempted may be (no phantom).
type Set struct{ next counter }

// NewSet returns the set workload.
func NewSet() *Set { return &Set{} }

func (s *Set) Name() string { return "set" }

func (s *Set) Setup(ctx context.Context, env *Env) error {
	return execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS set_elems",
		"CREATE TABLE set_elems (v BIGINT PRIMARY KEY)")
}

func (s *Set) Next(rng *rand.Rand, w int) history.Op {
	return history.Op{F: "add", Value: history.Int(s.next.next())}
}

type setClient struct {
	db  *sql.DB
	ins string
}

func (s *Set) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	return &setClient{db: env.Writer, ins: q(env.Dialect, "INSERT INTO set_elems (v) VALUES (?)")}, nil
}

func (c *setClient) Close() error { return nil }

func (c *setClient) Invoke(ctx context.Context, op history.Op) history.Op {
	if op.F != "add" {
		return failed(op, fmt.Errorf("unknown set op %q", op.F))
	}
	v, err := strconv.ParseInt(string(op.Value), 10, 64)
	if err != nil {
		return failed(op, fmt.Errorf("bad element: %w", err))
	}
	_, err = execOnce(ctx, c.db, c.ins, v)
	return complete(op, err)
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
