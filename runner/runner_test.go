package runner

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/workloads"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noop is a workload whose operations do nothing: it measures the runner.
// Every fourth op ends in info to exercise process renumbering.
type noop struct{ infoEvery int }

func (noop) Name() string                                { return "noop" }
func (noop) Setup(context.Context, *workloads.Env) error { return nil }
func (noop) Next(rng *rand.Rand, w int) history.Op       { return history.Op{F: "nop", Key: "k"} }
func (noop) Checkers() []checker.Checker                 { return nil }
func (n noop) NewClient(context.Context, *workloads.Env, int) (workloads.Client, error) {
	return &noopClient{every: n.infoEvery}, nil
}
func (noop) Final(ctx context.Context, env *workloads.Env, rec workloads.Recorder) error {
	rec(ctx, history.Op{F: "final"}, func(context.Context) history.Op { return history.Op{Type: history.OK} })
	return nil
}

type noopClient struct{ n, every int }

func (c *noopClient) Close() error { return nil }
func (c *noopClient) Invoke(ctx context.Context, op history.Op) history.Op {
	c.n++
	if c.every > 0 && c.n%c.every == 0 {
		op.Type = history.Info
		return op
	}
	op.Type = history.OK
	return op
}

func runNoop(t testing.TB, cfg Config) ([]history.Op, *Result) {
	path := filepath.Join(t.TempDir(), history.FileName)
	hw, err := history.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.History = hw
	if cfg.Workload == nil {
		cfg.Workload = noop{}
	}
	cfg.Env = &workloads.Env{Concurrency: cfg.Concurrency}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, isBench := t.(*testing.B); isBench {
		return nil, res
	}
	ops, err := history.ReadFile(path)
	if err != nil {
		t.Fatalf("the runner wrote an invalid history: %v", err)
	}
	return ops, res
}

func TestHistoryIsWellFormed(t *testing.T) {
	ops, res := runNoop(t, Config{Workload: noop{infoEvery: 4}, Concurrency: 8, MaxOps: 2000, Duration: time.Minute})
	pairs, _ := history.Pairs(ops)
	if len(pairs) != 2001 { // 2000 ops + the final read
		t.Fatalf("got %d operations, want 2001", len(pairs))
	}
	if res.Info == 0 || res.Ok == 0 {
		t.Fatalf("expected ok and info outcomes, got ok=%d info=%d", res.Ok, res.Info)
	}
	for _, p := range pairs {
		if p.Complete.Time < p.Invoke.Time {
			t.Fatalf("op completes before it starts: %+v", p)
		}
	}
}

func TestOpenLoopSchedulesIntendedStarts(t *testing.T) {
	// 2,000 ops/s for 200 ms: about 400 invocations on a fixed 500µs grid.
	ops, _ := runNoop(t, Config{Concurrency: 4, Rate: 2000, Duration: 200 * time.Millisecond})
	pairs, _ := history.Pairs(ops)
	n := len(pairs) - 1
	if n != 400 {
		t.Fatalf("open loop invoked %d ops, want exactly 400 (rate x duration)", n)
	}
	seen := map[int64]bool{}
	for _, p := range pairs[:n] {
		if p.Invoke.Time%500000 != 0 {
			t.Fatalf("invocation at %dns is off the 500µs schedule", p.Invoke.Time)
		}
		seen[p.Invoke.Time] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct intended starts for %d ops", len(seen), n)
	}
}

// BenchmarkRunnerNoop measures the runner alone (workers, history file
// writes, bookkeeping) against a client that does nothing. Reported as
// ops/s; the target is >= 100k ops/s on a 2-core machine.
func BenchmarkRunnerNoop(b *testing.B) {
	b.ReportAllocs()
	_, res := runNoop(b, Config{Concurrency: 16, MaxOps: int64(b.N), Duration: time.Hour})
	b.ReportMetric(float64(res.Ok)/res.Elapsed.Seconds(), "ops/s")
}
