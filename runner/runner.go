// Package runner drives a workload: N workers in a closed loop, or an open
// loop at a fixed rate, recording every operation into the history as it
// is invoked and as it completes.
//
// In open-loop mode each operation has an intended start time on a fixed
// schedule and its invocation is recorded at that time, not when a worker
// got round to it, so queueing delay counts as latency and a stalled
// database cannot hide its slowness (no coordinated omission).
package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/workloads"
)

// Recorder is where events go (a *history.Writer in production).
type Recorder interface {
	Append(ops ...history.Op) error
}

// Nemesis injects faults alongside the workload. It records each fault's
// start and end through rec (Process = history.NemesisProcess) and must
// heal everything before returning when ctx ends.
type Nemesis interface {
	Run(ctx context.Context, clock func() int64, rec func(history.Op)) error
}

// Config of a run.
type Config struct {
	Workload    workloads.Workload
	Env         *workloads.Env
	Concurrency int
	Duration    time.Duration
	// Rate is the open-loop rate in ops/s over all workers; 0 = closed loop.
	Rate float64
	// MaxOps stops after this many invocations (0 = no limit).
	MaxOps    int64
	Seed      int64
	OpTimeout time.Duration
	History   Recorder
	Nemesis   Nemesis
	// Progress, if set, is called about once a second while the run goes.
	Progress func(Progress)
}

// Progress is a snapshot for the live display.
type Progress struct {
	Elapsed, Total    time.Duration
	Ok, Fail, Info    int64
	OpsPerSec         float64 // over the last interval
	Fault             string  // current fault, "" when none
	Invoked, Inflight int64
}

// Result of a run.
type Result struct {
	Start          time.Time
	Elapsed        time.Duration
	Ok, Fail, Info int64
	NemesisErr     error
}

// Run executes the workload until Duration passes, MaxOps is reached or ctx
// ends, then performs the workload's final reads (after the nemesis has
// healed). It returns an error only when the run could not be carried out
// (client setup or history write failure); anomalies are the checkers' job.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Concurrency < 1 {
		return nil, fmt.Errorf("concurrency must be at least 1, got %d", cfg.Concurrency)
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	r := &run{cfg: cfg, start: time.Now()}
	r.deadline = r.start.Add(cfg.Duration)
	if cfg.Duration <= 0 {
		r.deadline = r.start.Add(100 * 365 * 24 * time.Hour)
	}
	if cfg.Rate > 0 {
		r.period = float64(time.Second) / cfg.Rate
	}

	clients := make([]workloads.Client, cfg.Concurrency)
	for w := range clients {
		c, err := cfg.Workload.NewClient(ctx, cfg.Env, w)
		if err != nil {
			for _, c := range clients[:w] {
				_ = c.Close()
			}
			return nil, fmt.Errorf("client %d: %w", w, err)
		}
		clients[w] = c
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()

	runCtx, stopRun := context.WithDeadline(ctx, r.deadline)
	defer stopRun()
	// Operations run under their own context so the end of the run lets
	// in-flight operations finish (their outcome is known) instead of
	// cancelling them into indeterminate ones; Ctrl-C still cancels them.
	opCtx := ctx

	var nemWG sync.WaitGroup
	var nemErr error
	nemCtx, stopNem := context.WithCancel(ctx)
	defer stopNem()
	if cfg.Nemesis != nil {
		nemWG.Add(1)
		go func() {
			defer nemWG.Done()
			nemErr = cfg.Nemesis.Run(nemCtx, r.clock, r.recordNemesis)
		}()
	}

	var progWG sync.WaitGroup
	progDone := make(chan struct{})
	if cfg.Progress != nil {
		progWG.Add(1)
		go func() {
			defer progWG.Done()
			r.progressLoop(progDone)
		}()
	}

	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(runCtx, opCtx, w, clients[w])
		}()
	}
	wg.Wait()
	stopNem()
	nemWG.Wait()
	close(progDone)
	progWG.Wait()

	res := &Result{Start: r.start, Elapsed: time.Since(r.start), Ok: r.ok.Load(), Fail: r.fail.Load(), Info: r.info.Load(), NemesisErr: nemErr}
	if err := r.recErr(); err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run interrupted: %w", ctx.Err())
	}
	// Final reads use a process number no worker ever had.
	finalProc := int(r.maxProc.Load()) + 1
	rec := func(ctx context.Context, op history.Op, do func(context.Context) history.Op) history.Op {
		op.Process, op.Type, op.Time = finalProc, history.Invoke, r.clock()
		r.record(op)
		octx, cancel := context.WithTimeout(ctx, 4*cfg.OpTimeout)
		c := do(octx)
		cancel()
		c.Process, c.F, c.Time = finalProc, op.F, r.clock()
		if c.Node == "" {
			c.Node = op.Node
		}
		r.record(c)
		if c.Type == history.Info {
			finalProc++
		}
		return c
	}
	if err := cfg.Workload.Final(ctx, cfg.Env, rec); err != nil {
		return res, fmt.Errorf("final reads: %w", err)
	}
	res.Elapsed = time.Since(r.start)
	return res, r.recErr()
}

// errorBackoff is how long a worker waits after an operation that failed
// with an error (not after a definite "no", such as a failed compare).
const errorBackoff = 20 * time.Millisecond

type run struct {
	cfg      Config
	start    time.Time
	deadline time.Time
	period   float64 // ns between intended starts, open loop
	next     atomic.Int64
	invoked  atomic.Int64
	ok       atomic.Int64
	fail     atomic.Int64
	info     atomic.Int64
	maxProc  atomic.Int64
	fault    atomic.Value // string
	errMu    sync.Mutex
	err      error
}

func (r *run) clock() int64 { return int64(time.Since(r.start)) }

func (r *run) record(op history.Op) {
	if err := r.cfg.History.Append(op); err != nil {
		r.errMu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.errMu.Unlock()
	}
}

func (r *run) recErr() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

func (r *run) recordNemesis(op history.Op) {
	op.Process = history.NemesisProcess
	if op.Time == 0 {
		op.Time = r.clock()
	}
	if op.Type == 0 {
		op.Type = history.Info
	}
	switch {
	case len(op.F) > 6 && op.F[:6] == "start-":
		r.fault.Store(op.F[6:])
	case len(op.F) > 5 && op.F[:5] == "stop-":
		r.fault.Store("")
	}
	r.record(op)
}

func (r *run) worker(runCtx, opCtx context.Context, w int, client workloads.Client) {
	rng := rand.New(rand.NewPCG(uint64(r.cfg.Seed), uint64(w)+1))
	proc := w
	r.bumpProc(proc)
	// An open loop invokes every intended start before the deadline, even one whose timer
	// fires (or whose worker gets the CPU) just after it: the schedule, not the scheduler,
	// decides how many operations a run has. Only a cancellation stops it early.
	stopped := func() bool {
		err := runCtx.Err()
		return err != nil && (r.period == 0 || !errors.Is(err, context.DeadlineExceeded))
	}
	for !stopped() {
		if r.cfg.MaxOps > 0 && r.invoked.Add(1) > r.cfg.MaxOps {
			return
		}
		var invokeAt time.Time
		if r.period > 0 {
			i := r.next.Add(1) - 1
			invokeAt = r.start.Add(time.Duration(float64(i) * r.period))
			if !invokeAt.Before(r.deadline) {
				return
			}
			if d := time.Until(invokeAt); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-runCtx.Done():
					t.Stop()
					if stopped() {
						return
					}
				}
			}
		} else {
			invokeAt = time.Now()
			if !invokeAt.Before(r.deadline) {
				return
			}
		}
		op := r.cfg.Workload.Next(rng, w)
		op.Process, op.Type, op.Time = proc, history.Invoke, int64(invokeAt.Sub(r.start))
		r.record(op)
		octx, cancel := context.WithTimeout(opCtx, r.cfg.OpTimeout)
		c := client.Invoke(octx, op)
		cancel()
		c.Process, c.F, c.Key, c.Time = proc, op.F, op.Key, r.clock()
		if c.Node == "" {
			c.Node = op.Node
		}
		if c.Type != history.OK && c.Type != history.Fail && c.Type != history.Info {
			c.Type, c.Error = history.Info, "client returned no outcome"
		}
		r.record(c)
		if c.Error != "" {
			// Back off briefly after an error, as a real client would:
			// hot-looping against a dead node floods the history with
			// failures (and indeterminate ops Porcupine must keep open).
			t := time.NewTimer(errorBackoff)
			select {
			case <-t.C:
			case <-runCtx.Done():
				t.Stop()
			}
		}
		switch c.Type {
		case history.OK:
			r.ok.Add(1)
		case history.Fail:
			r.fail.Add(1)
		default:
			r.info.Add(1)
			// The process's state is unknown: continue as a new process,
			// so checkers never pair its next op with the unfinished one.
			proc += r.cfg.Concurrency
			r.bumpProc(proc)
		}
	}
}

func (r *run) bumpProc(p int) {
	for {
		cur := r.maxProc.Load()
		if int64(p) <= cur || r.maxProc.CompareAndSwap(cur, int64(p)) {
			return
		}
	}
}

func (r *run) progressLoop(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			okN, failN, infoN := r.ok.Load(), r.fail.Load(), r.info.Load()
			total := okN + failN + infoN
			rate := float64(total-last) / now.Sub(lastAt).Seconds()
			last, lastAt = total, now
			fault, _ := r.fault.Load().(string)
			r.cfg.Progress(Progress{
				Elapsed: now.Sub(r.start), Total: r.cfg.Duration,
				Ok: okN, Fail: failN, Info: infoN, OpsPerSec: rate, Fault: fault,
			})
		}
	}
}
