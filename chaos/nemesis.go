// Package chaos injects faults into a running target: it kills, pauses and
// restarts nodes on a schedule and records each fault's start and end into
// the history, so checkers and reports can line anomalies and latency up
// with what the cluster was going through.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// Kinds of fault, by --nemesis name.
var kinds = map[string]string{
	"kill-writer":  "SIGKILL the writer, fail over to the most advanced replica, restart the old writer as a replica",
	"pause-writer": "SIGSTOP the writer for the fault duration, then SIGCONT (no failover)",
	"kill-replica": "SIGKILL a random replica, restart it after the fault duration",
	"failover":     "planned failover: promote the most advanced replica while the writer is healthy",
}

// Names lists the nemeses ("none" included).
func Names() []string {
	ns := []string{"none"}
	for k := range kinds {
		ns = append(ns, k)
	}
	sort.Strings(ns[1:])
	return ns
}

// Describe explains a nemesis.
func Describe(name string) string { return kinds[name] }

// Schedule says when faults happen.
type Schedule struct {
	Interval time.Duration // between the end of one fault and the start of the next
	Duration time.Duration // how long a fault lasts
	Seed     int64
}

// Periodic injects one kind of fault on a schedule. It implements
// runner.Nemesis.
type Periodic struct {
	Kind     string
	Target   targets.Target
	Schedule Schedule
	rng      *rand.Rand
}

// New returns the nemesis called name, or nil for "none". With a nil
// target it only validates the name.
func New(name string, t targets.Target, s Schedule) (*Periodic, error) {
	if name == "none" || name == "" {
		return nil, nil
	}
	if _, ok := kinds[name]; !ok {
		return nil, fmt.Errorf("unknown nemesis %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if s.Interval <= 0 || s.Duration <= 0 {
		return nil, fmt.Errorf("nemesis interval and duration must be positive")
	}
	if t != nil && len(t.Nodes()) == 0 {
		return nil, fmt.Errorf("nemesis %s needs a local target with processes to act on (%s has none)", name, t.Name())
	}
	return &Periodic{Kind: name, Target: t, Schedule: s, rng: rand.New(rand.NewPCG(uint64(s.Seed), 99))}, nil
}

// Run injects faults until ctx ends, then heals and returns.
func (p *Periodic) Run(ctx context.Context, clock func() int64, rec func(history.Op)) error {
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for {
		if !sleep(ctx, p.Schedule.Interval) {
			return firstErr
		}
		note(p.inject(ctx, clock, rec))
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// heal runs the end of a fault even when the run is over: a fault is
// always healed before the final reads.
func healCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

func (p *Periodic) inject(ctx context.Context, clock func() int64, rec func(history.Op)) error {
	event := func(f string, node targets.Node, v any, err error) {
		op := history.Op{F: f, Type: history.Info, Time: clock()}
		if node != nil {
			op.Node = node.ID()
		}
		if v != nil {
			op.Value = history.Marshal(v)
		}
		if err != nil {
			op.Error = err.Error()
		}
		rec(op)
	}
	switch p.Kind {
	case "kill-writer":
		w := targets.Writer(p.Target)
		if w == nil {
			return fmt.Errorf("kill-writer: no writer")
		}
		err := w.Kill(ctx)
		event("start-kill", w, map[string]string{"fault": "kill", "node": w.ID(), "role": "writer"}, err)
		if err != nil {
			return fmt.Errorf("kill %s: %w", w.ID(), err)
		}
		t0 := time.Now()
		ferr := p.Target.Failover(ctx)
		event("failover", nil, map[string]any{"seconds": time.Since(t0).Seconds()}, ferr)
		sleep(ctx, p.Schedule.Duration)
		hctx, cancel := healCtx()
		defer cancel()
		serr := w.Start(hctx)
		event("stop-kill", w, nil, serr)
		if ferr != nil {
			return fmt.Errorf("failover: %w", ferr)
		}
		return serr
	case "pause-writer":
		w := targets.Writer(p.Target)
		if w == nil {
			return fmt.Errorf("pause-writer: no writer")
		}
		err := w.Pause(ctx)
		event("start-pause", w, map[string]string{"fault": "pause", "node": w.ID(), "role": "writer"}, err)
		if err != nil {
			return err
		}
		sleep(ctx, p.Schedule.Duration)
		hctx, cancel := healCtx()
		defer cancel()
		err = w.Resume(hctx)
		event("stop-pause", w, nil, err)
		return err
	case "kill-replica":
		rs := targets.Readers(p.Target)
		if len(rs) == 0 {
			return fmt.Errorf("kill-replica: no replica")
		}
		n := rs[p.rng.IntN(len(rs))]
		err := n.Kill(ctx)
		event("start-kill", n, map[string]string{"fault": "kill", "node": n.ID(), "role": "reader"}, err)
		if err != nil {
			return err
		}
		sleep(ctx, p.Schedule.Duration)
		hctx, cancel := healCtx()
		defer cancel()
		err = n.Start(hctx)
		event("stop-kill", n, nil, err)
		return err
	case "failover":
		t0 := time.Now()
		event("start-failover", nil, map[string]string{"fault": "planned failover"}, nil)
		err := p.Target.Failover(ctx)
		event("stop-failover", nil, map[string]any{"seconds": time.Since(t0).Seconds()}, err)
		return err
	}
	return fmt.Errorf("unknown nemesis %q", p.Kind)
}
