// Package workloads holds the generated read/write workloads aurorabench runs:
// register, bank, set, oltp, ecommerce and lag. A workload knows its schema,
// how to generate and perform operations in both SQL dialects, its final
// reads, and which checkers judge its history; it knows nothing of targets'
// internals, nemeses or the runner.
package workloads

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// ConfigError is a Setup failure that no retry can mend: the workload cannot run with the
// settings it was given against this target (too few workers for its replicas, say).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Env is what a workload may use: connection pools to the writer and the
// reader endpoint, and direct DSNs of every replica.
type Env struct {
	Dialect targets.Dialect
	Writer  *sql.DB
	Reader  *sql.DB
	// Replicas maps replica node id -> DSN (direct, not through the
	// endpoint). Empty for targets without separate replicas.
	Replicas    map[string]string
	Concurrency int
	Seed        int64
}

// Params are optional workload settings, given at construction so that a
// stored run's checkers can be rebuilt from its summary.
type Params struct {
	Tables    int // oltp: number of sbtest tables (sysbench --tables)
	TableSize int // oltp: rows per table (sysbench --table-size)
	Keys      int // register: keys in use at once; bank: accounts
}

// Client performs operations for one worker.
type Client interface {
	// Invoke performs op (an invocation with F, Key and Value set) and
	// returns its completion with Type OK, Fail or Info and any result
	// Value. Time, Process and Index are filled by the runner.
	Invoke(ctx context.Context, op history.Op) history.Op
	Close() error
}

// Workload is one kind of test.
type Workload interface {
	Name() string
	// Setup creates the schema and initial data through env.Writer.
	Setup(ctx context.Context, env *Env) error
	// NewClient returns the client for worker w (0 <= w < Concurrency).
	NewClient(ctx context.Context, env *Env, w int) (Client, error)
	// Next generates worker w's next invocation. It must be cheap and safe
	// for concurrent use by different workers (each has its own rng).
	Next(rng *rand.Rand, w int) history.Op
	// Final performs the final reads after the run (faults healed),
	// recording them through rec as ordinary invoke/complete pairs.
	Final(ctx context.Context, env *Env, rec Recorder) error
	// Checkers judge the history.
	Checkers() []checker.Checker
}

// Recorder records one operation around its execution.
type Recorder func(ctx context.Context, op history.Op, do func(context.Context) history.Op) history.Op

// Names lists the workloads, for --help and errors.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var registry = map[string]func(Params) Workload{
	"register": func(p Params) Workload {
		r := NewRegister()
		if p.Keys > 0 {
			r.active = p.Keys
		}
		return r
	},
	"bank": func(p Params) Workload {
		b := NewBank()
		if p.Keys > 1 {
			b.Accounts = p.Keys
		}
		return b
	},
	"set": func(Params) Workload { return NewSet() },
	"oltp": func(p Params) Workload {
		o := NewOLTP()
		if p.Tables > 0 {
			o.tables = p.Tables
		}
		if p.TableSize > 0 {
			o.size = p.TableSize
		}
		return o
	},
	"ecommerce": func(Params) Workload { return NewEcommerce() },
	"lag":       func(Params) Workload { return NewLag() },
}

// New returns the named workload configured by p. The same name and
// params give the same checkers, which is how `aurorabench check` re-judges
// a stored history.
func New(name string, p Params) (Workload, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown workload %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return f(p), nil
}

// counter hands out unique values across workers.
type counter struct{ n atomic.Int64 }

func (c *counter) next() int64 { return c.n.Add(1) }

// ph renders the i-th (1-based) placeholder of a dialect.
func ph(d targets.Dialect, i int) string {
	if d == targets.Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// q rewrites a query written with ? placeholders into the dialect's form.
func q(d targets.Dialect, s string) string {
	if d != targets.Postgres {
		return s
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// execAll runs DDL/DML statements in order.
func execAll(ctx context.Context, db *sql.DB, stmts ...string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstWords(s), err)
		}
	}
	return nil
}

func firstWords(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// ok, fail and info build completions.
func ok(op history.Op, v []byte) history.Op {
	op.Type, op.Value = history.OK, v
	return op
}

func failed(op history.Op, err error) history.Op {
	op.Type, op.Value = history.Fail, nil
	if err != nil {
		op.Error = err.Error()
	}
	return op
}

// complete classifies err for an operation that may have written: a
// definite server rejection is Fail, anything that may have reached the
// commit point is Info.
func complete(op history.Op, err error) history.Op {
	if err == nil {
		return ok(op, op.Value)
	}
	if Definite(err) {
		return failed(op, err)
	}
	op.Type, op.Value = history.Info, nil
	op.Error = err.Error()
	return op
}

// completeRead classifies a read's error: reads change nothing, so any
// error is a Fail.
func completeRead(op history.Op, err error) history.Op {
	return failed(op, err)
}
