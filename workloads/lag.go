package workloads

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// Lag measures replica visibility lag: writers insert numbered marker rows
// through the writer as fast as it takes them; one poller per replica, on a
// direct connection, keeps asking which markers it can see. The lag of a
// marker on a replica is the time from the writer's acknowledgement to the
// completion of the first poll on that replica that saw it (an upper bound
// by one poll round trip, clamped at zero when the replica saw it first).
type Lag struct {
	ids      counter
	replicas []string // replica ids in worker order (workers 0..len-1 poll)

	mu      sync.Mutex
	acked   []int64               // marker ids the writer acknowledged
	pollers map[string]*lagPoller // kept for the final catch-up polls
}

// lagPollPause spaces a replica's polls: polling flat out on a small
// machine steals the CPU the replica needs to apply changes and would
// inflate the lag it measures. 1 ms bounds the added error.
const lagPollPause = time.Millisecond

// lagPollerNice is the nice value of each poller's OS thread, the priority of the replicas it
// watches (targets.ReplicaNice): a poll that found a marker must not then wait for the CPU
// behind the load generator's own writers, or the lag measured is aurorabench's queueing
// rather than the replica's. Only a privileged process may raise it; otherwise the pollers
// run as they are.
const lagPollerNice = targets.ReplicaNice

// lagCatchUp bounds the final wait for replicas to show every marker.
const lagCatchUp = 60 * time.Second

// NewLag returns the lag workload.
func NewLag() *Lag { return &Lag{} }

func (l *Lag) Name() string { return "lag" }

func (l *Lag) Setup(ctx context.Context, env *Env) error {
	l.replicas = l.replicas[:0]
	for id := range env.Replicas {
		l.replicas = append(l.replicas, id)
	}
	sort.Strings(l.replicas)
	if len(l.replicas) == 0 {
		l.replicas = []string{"reader"}
	}
	if env.Concurrency <= len(l.replicas) {
		return &ConfigError{fmt.Errorf("lag workload needs --concurrency above the number of replicas (%d): one poller per replica plus writers", len(l.replicas))}
	}
	return execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS lag_markers",
		"CREATE TABLE lag_markers (id BIGINT PRIMARY KEY, written_at BIGINT NOT NULL)")
}

func (l *Lag) Next(rng *rand.Rand, w int) history.Op {
	if w < len(l.replicas) {
		return history.Op{F: "poll", Node: l.replicas[w]}
	}
	return history.Op{F: "mark", Value: history.Int(l.ids.next())}
}

func (l *Lag) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	if w >= len(l.replicas) {
		ins, err := env.Writer.PrepareContext(ctx, q(env.Dialect, "INSERT INTO lag_markers (id, written_at) VALUES (?, ?)"))
		if err != nil {
			return nil, fmt.Errorf("prepare the marker insert: %w", err)
		}
		return &lagWriter{l: l, ins: ins}, nil
	}
	id := l.replicas[w]
	db := env.Reader
	owned := false
	if dsn, ok := env.Replicas[id]; ok {
		var err error
		db, err = targets.OpenDB(ctx, env.Dialect, dsn)
		if err != nil {
			return nil, fmt.Errorf("connect to replica %s: %w", id, err)
		}
		db.SetMaxOpenConns(1)
		owned = true
	}
	poll, err := db.PrepareContext(ctx, q(env.Dialect, "SELECT id FROM lag_markers WHERE id > ? ORDER BY id LIMIT 10000"))
	if err != nil {
		if owned {
			_ = db.Close()
		}
		return nil, fmt.Errorf("prepare the poll on replica %s: %w", id, err)
	}
	p := &lagPoller{db: db, owned: owned, poll: poll, seen: map[int64]bool{}}
	l.mu.Lock()
	if l.pollers == nil {
		l.pollers = map[string]*lagPoller{}
	}
	l.pollers[id] = p
	l.mu.Unlock()
	return p, nil
}

// lagWriter inserts markers through a statement prepared once (see prepared): the load is
// the heaviest the writer sustains, not the cost of parsing each insert anew.
type lagWriter struct {
	l   *Lag
	ins *sql.Stmt
}

func (c *lagWriter) Close() error { return c.ins.Close() }

func (c *lagWriter) Invoke(ctx context.Context, op history.Op) history.Op {
	id, _ := strconv.ParseInt(string(op.Value), 10, 64)
	_, err := c.ins.ExecContext(ctx, id, op.Time)
	if err == nil {
		c.l.mu.Lock()
		c.l.acked = append(c.l.acked, id)
		c.l.mu.Unlock()
	}
	return complete(op, err)
}

// lagReorderWindow is how far apart concurrently committed markers may
// become visible out of id order.
const lagReorderWindow = 5000

// lagPoller remembers what it has seen: the watermark below which every id
// was seen, and the ids seen above it, so each poll reports only new ids.
type lagPoller struct {
	db        *sql.DB
	owned     bool
	poll      *sql.Stmt
	watermark int64
	seen      map[int64]bool
	pinned    bool // Invoke's goroutine holds its own OS thread, at lagPollerNice
}

// Close is deferred to Final, which still needs the connection.
func (c *lagPoller) Close() error { return nil }

func (c *lagPoller) close() error {
	err := c.poll.Close()
	if c.owned {
		return errors.Join(err, c.db.Close())
	}
	return err
}

// has reports whether the poller has seen id.
func (c *lagPoller) has(id int64) bool { return id <= c.watermark || c.seen[id] }

// Invoke is a worker's poll. The runner calls a client from one goroutine, the worker's, for
// the whole run: its first poll gives it an OS thread of its own at lagPollerNice, which dies
// with the goroutine, so the nice value never reaches other goroutines.
func (c *lagPoller) Invoke(ctx context.Context, op history.Op) history.Op {
	if !c.pinned {
		c.pinned = true
		if err := pinPollerThread(); err != nil {
			pollerPriorityOnce.Do(func() {
				slog.Info("lag pollers run at the default priority", "nice", lagPollerNice, "err", err)
			})
		}
	}
	return c.invoke(ctx, op)
}

var pollerPriorityOnce sync.Once

// pinPollerThread locks the calling goroutine to its OS thread and sets that thread's nice
// value to lagPollerNice. Go ends a thread whose goroutine exits locked, except the process's
// main thread, which it parks for good: there the nice value would outlive the poller and show
// as the whole process's. So a goroutine the scheduler put on the main thread steps off it
// (a short sleep puts it back on whichever thread runs next) and tries again.
func pinPollerThread() error {
	for try := 0; try < 20; try++ {
		runtime.LockOSThread()
		tid := syscall.Gettid()
		if tid != syscall.Getpid() {
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, lagPollerNice); err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			return nil
		}
		runtime.UnlockOSThread()
		time.Sleep(time.Millisecond)
	}
	return errors.New("the scheduler kept the poller on the main thread")
}

// invoke polls once (after lagPollPause, but for the first poll).
func (c *lagPoller) invoke(ctx context.Context, op history.Op) history.Op {
	if op.Time > 0 { // not the first poll: pause (see lagPollPause)
		t := time.NewTimer(lagPollPause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	ids, err := readInts(ctx, prepared{c.poll}, "", c.watermark)
	if err != nil {
		return completeRead(op, err)
	}
	var fresh []int64
	for _, id := range ids {
		if !c.seen[id] {
			c.seen[id] = true
			fresh = append(fresh, id)
		}
	}
	for c.seen[c.watermark+1] {
		delete(c.seen, c.watermark+1)
		c.watermark++
	}
	// A marker whose insert failed leaves a hole that never fills: past a
	// window of out-of-order commits, give up on it so polls stay small.
	if n := len(ids); n > 0 && ids[n-1]-c.watermark > lagReorderWindow {
		c.watermark = ids[n-1] - lagReorderWindow
		for id := range c.seen {
			if id <= c.watermark {
				delete(c.seen, id)
			}
		}
	}
	return ok(op, history.Ints(fresh))
}

// Final keeps polling every replica until it shows every acknowledged
// marker (or lagCatchUp passes), so the slowest markers, the tail of the
// distribution, are measured rather than dropped at the end of the run.
func (l *Lag) Final(ctx context.Context, env *Env, rec Recorder) error {
	l.mu.Lock()
	acked := append([]int64(nil), l.acked...)
	pollers := l.pollers
	l.pollers = nil
	l.mu.Unlock()
	defer func() {
		for _, p := range pollers {
			_ = p.close()
		}
	}()
	deadline := time.Now().Add(lagCatchUp)
	ids := make([]string, 0, len(pollers))
	for id := range pollers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := pollers[id]
		missing := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			missing = 0
			for _, a := range acked {
				if !p.has(a) {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			op := history.Op{F: "poll", Node: id, Time: 1}
			// From the caller's goroutine, which must keep its thread and priority.
			rec(ctx, op, func(ctx context.Context) history.Op { return p.invoke(ctx, op) })
		}
	}
	return nil
}

func (l *Lag) Checkers() []checker.Checker {
	return []checker.Checker{checker.Lag{}, checker.Perf{}}
}
