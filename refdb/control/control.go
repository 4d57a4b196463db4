// Package control is refdb's control plane: it heartbeats every DB instance's admin API,
// detects a dead writer, fails over to the best reader, restarts dead instances (always as
// readers, except a lone writer, which restarts in place), fences and re-admits a replaced
// writer as a reader, and serves the admin HTTP API and Prometheus metrics.
//
// State lives in the cluster itself: DIR/cluster.json (roles, PIDs, command lines) and the
// instances (each reports its role and epoch). A restarted control plane reloads the file and
// adopts what the instances report: if it died between a promote and writing the file, the
// instance reporting role writer under the highest epoch is the writer. Only one control
// plane runs per folder: DIR/control.lock is held with flock and names the holder's PID.
//
// Failure detection: an instance is down when its process is gone (a local cluster can see
// that at the first failed heartbeat) or after FailAfter heartbeats in a row failed or timed
// out while the process is stopped (SIGSTOP), or for HungAfter while it runs (hung, or only
// slow under load: a busy writer must not be failed over). With the defaults (every 100 ms,
// 3 misses, 250 ms timeout, 2 s) a dead writer is noticed in 100-400 ms, a stopped one in
// about 1 s, a hung one in about 2 s.
//
// Admin API:
//
//	GET    /status[?wait=V&timeout=D]  cluster.Status; with wait, blocks until Version != V
//	POST   /failover[?target=ID]       planned failover; 409 if one runs or the target is dead or lagging;
//	                                   400 for any other parameter or a body
//	POST   /readers                    {"az":"az2","tier":1} adds a reader; answers its node; 400 for
//	                                   an unknown field
//	DELETE /readers/{id}               stops and removes a reader
//	POST   /instances/{id}/start       starts a stopped instance (as a reader unless it is a lone writer)
//	GET    /metrics                    Prometheus
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// Config of the control plane.
type Config struct {
	Dir    string // cluster folder with cluster.json
	Listen string // admin HTTP address (127.0.0.1:3480)
	// Heartbeat is the period of each instance's heartbeat (default 100ms).
	Heartbeat time.Duration
	// HeartbeatTimeout bounds one heartbeat (default 250ms).
	HeartbeatTimeout time.Duration
	// FailAfter is the number of failed heartbeats in a row that mark a live process down
	// (default 3).
	FailAfter int
	// HungAfter is how long a process that is running (not stopped) may go without
	// answering before it is declared down (default 2s): a writer that is merely slow
	// under load must not be failed over, while a stopped (SIGSTOP) or dead one is caught
	// after FailAfter misses or at once.
	HungAfter time.Duration
	// StallAfter is how long a writer that answers its heartbeats may report commits waiting
	// without progress (cut off from a write quorum: a partition, lost storage) before it is
	// failed over, when a healthy reader can take over (default 2s).
	StallAfter time.Duration
	// MaxFailoverLag is the largest lag a planned failover target may have (default 1s).
	MaxFailoverLag time.Duration
	// PromoteTimeout bounds one promote, recovery included (default 60s).
	PromoteTimeout time.Duration
	// RestartBackoff is the least time between two restarts of one instance (default 1s).
	RestartBackoff time.Duration
	Log            *slog.Logger
}

func (c *Config) defaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 100 * time.Millisecond
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 250 * time.Millisecond
	}
	if c.FailAfter <= 0 {
		c.FailAfter = 3
	}
	if c.StallAfter <= 0 {
		c.StallAfter = 2 * time.Second
	}
	if c.HungAfter <= 0 {
		c.HungAfter = 2 * time.Second
	}
	if c.MaxFailoverLag <= 0 {
		c.MaxFailoverLag = time.Second
	}
	if c.PromoteTimeout <= 0 {
		c.PromoteTimeout = 60 * time.Second
	}
	if c.RestartBackoff <= 0 {
		c.RestartBackoff = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// ErrAlreadyRunning is returned by Open when another control plane holds the folder.
var ErrAlreadyRunning = errors.New("another refdb control is running for this cluster")

// Errors of the admin API, answered 409.
var (
	ErrFailoverInProgress = errors.New("a failover is already in progress")
	ErrNoCandidate        = errors.New("no reader can be promoted")
)

// restartGrace is how long a restarted instance may take to answer heartbeats before
// missed heartbeats count against it.
const restartGrace = 10 * time.Second

// Control is an opened control plane.
type Control struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	ln   net.Listener
	m    *metrics

	life context.Context // ends when Run returns; bounds background operations
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	file     *cluster.File
	inst     map[string]*instState
	version  uint64
	changed  chan struct{} // closed and replaced on every version bump
	failing  bool          // a failover is running
	lastFail time.Time     // last failover attempt that found nothing to do
}

// instState is what control knows of one instance beyond cluster.json.
type instState struct {
	last       instanceapi.Status
	ok         bool // last heartbeat succeeded
	seen       bool // at least one heartbeat answered since control started
	misses     int
	lastOK     time.Time // last answered heartbeat (or when watching began)
	restarting bool
	restartAt  time.Time // no restart before this
	promotedAt time.Time // when a failover last made it the writer; older heartbeats are stale
	// graceUntil: a just-restarted instance is only declared down if its process is gone,
	// not for missing heartbeats while it recovers.
	graceUntil time.Time
	cancel     context.CancelFunc
	client     *instanceapi.Client
}

// Open takes the folder's lock, loads cluster.json and binds the admin address.
func Open(cfg Config) (*Control, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("control: --dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("control dir: %w", err)
	}
	cfg.Dir = dir
	lock, err := acquire(filepath.Join(dir, "control.lock"))
	if err != nil {
		return nil, err
	}
	f, err := cluster.Read(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("control admin listen: %w", err)
	}
	c := &Control{cfg: cfg, log: cfg.Log, lock: lock, ln: ln, m: newMetrics(), file: f, inst: map[string]*instState{},
		changed: make(chan struct{})}
	c.life, c.stop = context.WithCancel(context.Background())
	// Record ourselves, so `cluster down` stops this process even when it is a restarted one.
	start, _ := cluster.StartTime(os.Getpid())
	err = cluster.Update(dir, false, func(cur *cluster.File) error {
		for i := range cur.Nodes {
			if cur.Nodes[i].Kind == cluster.KindControl {
				cur.Nodes[i].PID, cur.Nodes[i].PIDStart = os.Getpid(), start
			}
		}
		return nil
	})
	if err != nil {
		ln.Close()
		lock.Close()
		return nil, err
	}
	return c, nil
}

// acquire takes an exclusive, non-blocking flock on path and writes our PID into it. The
// kernel releases it when the process dies, so a stale file never blocks a new control.
func acquire(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("control lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (pid %s holds %s)", ErrAlreadyRunning, strings.TrimSpace(string(b)), path)
		}
		return nil, fmt.Errorf("control lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Addr is the admin address.
func (c *Control) Addr() string { return c.ln.Addr().String() }

// Run heartbeats and serves until ctx ends. The instances keep running after it returns.
func (c *Control) Run(ctx context.Context) error {
	defer c.lock.Close()
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(c.ln) }()
	c.mu.Lock()
	for _, n := range c.file.Instances() {
		c.watchLocked(n.ID, n.Admin)
	}
	c.mu.Unlock()
	c.log.Info("control plane running", "admin", c.Addr(), "dir", c.cfg.Dir, "heartbeat", c.cfg.Heartbeat)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("control admin serve: %w", err)
	}
	c.stop()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	cancel()
	if err == nil {
		<-errc
	}
	c.wg.Wait()
	return err
}

// watchLocked starts the heartbeat loop of an instance.
func (c *Control) watchLocked(id, admin string) {
	ctx, cancel := context.WithCancel(c.life)
	st := &instState{cancel: cancel, client: instanceapi.NewClient(admin), lastOK: time.Now()}
	c.inst[id] = st
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.cfg.Heartbeat)
		defer t.Stop()
		for {
			hctx, hcancel := context.WithTimeout(ctx, c.cfg.HeartbeatTimeout)
			begin := time.Now()
			s, err := st.client.Status(hctx)
			hcancel()
			if ctx.Err() != nil {
				return
			}
			c.observe(id, s, err, begin)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// bumpLocked publishes a change to long-polling readers of /status.
func (c *Control) bumpLocked() {
	c.version++
	close(c.changed)
	c.changed = make(chan struct{})
}

// observe records a heartbeat sent at begin and acts on what it shows.
func (c *Control) observe(id string, s instanceapi.Status, err error, begin time.Time) {
	took := time.Since(begin)
	c.mu.Lock()
	defer c.mu.Unlock()
	st, n := c.inst[id], c.file.Node(id)
	if st == nil || n == nil {
		return
	}
	if err == nil && begin.Before(st.promotedAt) {
		// Asked before a failover promoted it: the answer still shows a reader, and taken
		// as current it would make the new writer look like "a writer running as a reader".
		return
	}
	wasHealthy := st.ok && st.last.Healthy
	if err == nil {
		c.m.heartbeat.WithLabelValues(id).Observe(took.Seconds())
		st.ok, st.seen, st.misses, st.last, st.lastOK = true, true, 0, s, time.Now()
		if s.Role == instanceapi.RoleReader {
			c.m.lag.WithLabelValues(id).Set(s.LagMS)
		}
	} else {
		c.m.heartbeatErr.WithLabelValues(id).Inc()
		st.ok = false
		st.misses++
	}
	healthy := st.ok && st.last.Healthy
	c.m.healthy.WithLabelValues(id, n.Role).Set(b2f(healthy))
	if healthy != wasHealthy {
		c.log.Info("instance health", "id", id, "role", n.Role, "healthy", healthy, "err", err)
		c.bumpLocked()
	}
	if st.ok {
		stalled := time.Duration(s.StalledMS * float64(time.Millisecond))
		if n.Role == cluster.RoleWriter && s.Role == instanceapi.RoleWriter && stalled >= c.cfg.StallAfter && !c.failing &&
			time.Since(c.lastFail) >= c.cfg.RestartBackoff && len(c.candidatesLocked(id)) > 0 {
			// It answers, but cannot commit: a reader that reaches storage recovers the
			// volume under a new epoch, which fences it; it rejoins as a reader (reconcile).
			c.failing = true
			c.bumpLocked()
			c.log.Warn("writer stalled: commits make no progress; failing over", "writer", id, "stalled", stalled)
			c.goBackground(func(ctx context.Context) { _, _ = c.failover(ctx, "automatic", id, "") })
			return
		}
		c.reconcileLocked(n, st)
		return
	}
	gone := !cluster.Alive(n.PID, n.PIDStart)
	unresponsive := st.misses >= c.cfg.FailAfter &&
		(cluster.Stopped(n.PID) || time.Since(st.lastOK) >= c.cfg.HungAfter)
	down := gone || unresponsive && time.Now().After(st.graceUntil)
	if !down {
		return
	}
	switch {
	case n.Role == cluster.RoleWriter && !c.failing:
		if time.Since(c.lastFail) < c.cfg.RestartBackoff {
			return
		}
		c.log.Warn("writer down: failing over", "writer", id, "process_gone", gone, "missed_heartbeats", st.misses)
		c.failWriterLocked(id, "")
	case n.Role == cluster.RoleReader && gone:
		c.restartLocked(n, st, cluster.RoleReader)
	}
}

// failWriterLocked starts an automatic failover away from writer id unless one runs.
func (c *Control) failWriterLocked(id, why string) {
	if c.failing {
		return
	}
	c.failing = true
	c.bumpLocked()
	if why != "" {
		c.log.Warn("failing over", "writer", id, "why", why)
	}
	c.goBackground(func(ctx context.Context) { _, _ = c.failover(ctx, "automatic", id, "") })
}

// reconcileLocked compares what an answering instance says with the recorded roles.
func (c *Control) reconcileLocked(n *cluster.Node, st *instState) {
	s := st.last
	if n.Role == cluster.RoleWriter {
		if s.Role == instanceapi.RoleReader && !st.restarting && time.Since(c.lastFail) >= c.cfg.RestartBackoff &&
			len(c.candidatesLocked(n.ID)) > 0 {
			// The recorded writer runs as a reader (it was restarted as one before its
			// failover happened): nothing commits until another instance is promoted.
			c.failWriterLocked(n.ID, "the recorded writer runs as a reader")
			return
		}
		if s.Role == instanceapi.RoleWriter && s.Fenced != "" && time.Since(c.lastFail) >= c.cfg.RestartBackoff {
			// Storage holds a newer epoch than the writer's (a promote sealed it and then
			// failed, say): every commit fails at once, so it never shows as stalled.
			// Replace it: promote a reader, or restart it in place when none can be.
			c.failWriterLocked(n.ID, "the writer is fenced: "+s.Fenced)
			return
		}
		if s.Role == instanceapi.RoleWriter && s.Epoch >= c.file.Epoch {
			if s.Epoch != c.file.Epoch || s.VDL != c.file.VDL {
				c.file.Epoch, c.file.VDL = s.Epoch, s.VDL
				c.m.epoch.Set(float64(s.Epoch))
				c.m.vdl.Set(float64(s.VDL))
			}
		}
		return
	}
	if s.Role != instanceapi.RoleWriter || c.failing {
		if n.Stale && s.Role == instanceapi.RoleReader {
			n.Stale = false
			c.persistLocked()
			c.bumpLocked()
		}
		return
	}
	// An instance recorded as a reader says it is a writer.
	if s.Epoch > c.file.Epoch {
		// A promote finished that the file does not show (control died in between):
		// the cluster's own state wins.
		c.log.Warn("adopting the writer the instances report", "writer", n.ID, "epoch", s.Epoch)
		for _, o := range c.file.Instances() {
			if o.Role == cluster.RoleWriter {
				o.Role, o.Stale = cluster.RoleReader, true
			}
		}
		n.Role, n.Stale = cluster.RoleWriter, false
		c.file.Epoch = s.Epoch
		c.persistLocked()
		c.bumpLocked()
		return
	}
	// A replaced writer came back (resumed after a pause, or partitioned from control): the
	// new epoch already fences it on storage; restart it as a reader.
	if !st.restarting {
		c.log.Warn("stale writer is back: restarting it as a reader", "id", n.ID, "its_epoch", s.Epoch, "epoch", c.file.Epoch)
		n.Stale = true
		c.restartLocked(n, st, cluster.RoleReader)
	}
}

// goBackground runs fn on a tracked goroutine bound to the control plane's life.
func (c *Control) goBackground(fn func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.life)
	}()
}

// restartLocked (re)starts an instance's process with role, after stopping the recorded one
// if it still runs. The spawn happens in the background.
func (c *Control) restartLocked(n *cluster.Node, st *instState, role string) {
	if st.restarting || time.Now().Before(st.restartAt) {
		return
	}
	st.restarting = true
	st.restartAt = time.Now().Add(c.cfg.RestartBackoff)
	id, pid, start := n.ID, n.PID, n.PIDStart
	args := cluster.WithRole(n.Args, role)
	logPath := n.Log
	if logPath == "" {
		logPath = filepath.Join(c.cfg.Dir, id+".log")
	}
	c.goBackground(func(ctx context.Context) {
		err := c.respawn(ctx, id, pid, start, args, logPath, role)
		c.mu.Lock()
		st.restarting = false
		c.mu.Unlock()
		if err != nil {
			c.log.Error("restart failed", "id", id, "err", err)
		}
	})
}

func (c *Control) respawn(ctx context.Context, id string, pid int, start uint64, args []string, logPath, role string) error {
	if err := cluster.Stop(ctx, pid, start, 3*time.Second); err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	p, err := cluster.Spawn(args, logPath, nil)
	if err != nil {
		return err
	}
	c.m.restarts.WithLabelValues(role).Inc()
	c.log.Info("restarted instance", "id", id, "role", role, "pid", p.PID)
	c.mu.Lock()
	if n := c.file.Node(id); n != nil {
		n.PID, n.PIDStart, n.Args, n.Log = p.PID, p.Start, args, logPath
		c.persistLocked()
	}
	if st := c.inst[id]; st != nil {
		st.misses, st.graceUntil = 0, time.Now().Add(restartGrace)
	}
	c.mu.Unlock()
	return nil
}

// persistLocked writes the instance entries and the epoch into cluster.json, keeping the
// other entries as they are on disk (the launcher and aurorabench update those).
func (c *Control) persistLocked() {
	err := cluster.Update(c.cfg.Dir, false, func(cur *cluster.File) error {
		var nodes []cluster.Node
		for _, n := range cur.Nodes {
			if n.Kind != cluster.KindInstance {
				nodes = append(nodes, n)
			}
		}
		for _, n := range c.file.Instances() {
			v := *n
			v.Healthy, v.LagMS, v.ReadPoint, v.Epoch = nil, nil, 0, 0
			nodes = append(nodes, v)
		}
		cur.Nodes = nodes
		cur.Epoch, cur.VDL = c.file.Epoch, c.file.VDL
		// Keep our copy of the other entries current too, for /status.
		others := cur.Nodes[:0:0]
		for _, n := range cur.Nodes {
			if n.Kind != cluster.KindInstance {
				others = append(others, n)
			}
		}
		for _, n := range c.file.Instances() {
			others = append(others, *n)
		}
		c.file.Nodes = others
		return nil
	})
	if err != nil {
		c.log.Error("persisting cluster.json", "err", err)
	}
}

// candidates orders the readers that can be promoted: lowest tier, then highest read point.
func (c *Control) candidatesLocked(exclude string) []*cluster.Node {
	var out []*cluster.Node
	for _, n := range c.file.Instances() {
		st := c.inst[n.ID]
		if n.ID == exclude || n.Role != cluster.RoleReader || n.Stale || st == nil || !st.ok || !st.last.Healthy {
			continue
		}
		out = append(out, n)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && better(out[j], c.inst[out[j].ID], out[j-1], c.inst[out[j-1].ID]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func better(a *cluster.Node, as *instState, b *cluster.Node, bs *instState) bool {
	if a.Tier != b.Tier {
		return a.Tier < b.Tier
	}
	return as.last.ReadPoint > bs.last.ReadPoint
}

// failover replaces writer oldID: it promotes target (or the best candidate), trying the next
// candidates if a promote fails, and with no candidate restarts the writer in place when its
// process is gone. c.failing must already be set; failover clears it.
func (c *Control) failover(ctx context.Context, kind, oldID, target string) (string, error) {
	begin := time.Now()
	defer func() {
		c.mu.Lock()
		c.failing = false
		c.bumpLocked()
		c.mu.Unlock()
	}()
	c.mu.Lock()
	cands := c.candidatesLocked(oldID)
	if target != "" {
		for i, n := range cands {
			if n.ID == target {
				cands[0], cands[i] = cands[i], cands[0]
			}
		}
	}
	minEpoch := c.file.Epoch + 1
	for _, n := range c.file.Instances() {
		if st := c.inst[n.ID]; st != nil && st.last.Epoch >= minEpoch {
			minEpoch = st.last.Epoch + 1
		}
	}
	type cand struct{ id, admin string }
	var list []cand
	for _, n := range cands {
		list = append(list, cand{n.ID, n.Admin})
	}
	c.mu.Unlock()

	var errs []error
	for _, cd := range list {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.PromoteTimeout)
		st, err := instanceapi.NewClient(cd.admin).Promote(pctx, instanceapi.PromoteRequest{MinEpoch: minEpoch})
		cancel()
		if err != nil {
			c.log.Error("promote failed", "candidate", cd.id, "err", err)
			errs = append(errs, fmt.Errorf("promoting %s: %w", cd.id, err))
			continue
		}
		c.mu.Lock()
		for _, n := range c.file.Instances() {
			switch {
			case n.ID == cd.id:
				n.Role, n.Stale = cluster.RoleWriter, false
			case n.Role == cluster.RoleWriter:
				n.Role, n.Stale = cluster.RoleReader, true
			}
		}
		c.file.Epoch, c.file.VDL = st.Epoch, st.VDL
		c.m.epoch.Set(float64(st.Epoch))
		if s := c.inst[cd.id]; s != nil {
			s.last, s.promotedAt = st, time.Now()
		}
		c.persistLocked()
		c.bumpLocked()
		// The old writer rejoins as a reader: now if its process is gone; if it still runs
		// (paused, hung), when it answers again (reconcile).
		if old, s := c.file.Node(oldID), c.inst[oldID]; old != nil && s != nil && !cluster.Alive(old.PID, old.PIDStart) {
			s.restartAt = time.Time{}
			c.restartLocked(old, s, cluster.RoleReader)
		}
		c.mu.Unlock()
		d := time.Since(begin)
		c.m.failovers.WithLabelValues(kind, "ok").Inc()
		c.m.failoverDur.WithLabelValues(kind).Observe(d.Seconds())
		c.log.Info("failover done", "kind", kind, "old", oldID, "new", cd.id, "epoch", st.Epoch, "took", d)
		return cd.id, nil
	}

	// Nobody could be promoted: restart the writer in place if its process is gone.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastFail = time.Now()
	old, s := c.file.Node(oldID), c.inst[oldID]
	if old == nil || s == nil {
		return "", errors.Join(append(errs, ErrNoCandidate)...)
	}
	fenced := s.ok && s.last.Role == instanceapi.RoleWriter && s.last.Fenced != ""
	if cluster.Alive(old.PID, old.PIDStart) && !fenced {
		c.m.failovers.WithLabelValues(kind, "error").Inc()
		return "", errors.Join(append(errs, fmt.Errorf("%w and writer %s is unresponsive but running", ErrNoCandidate, oldID))...)
	}
	// Its process is gone, or it runs fenced and can never commit again: a new process
	// recovers the volume under an epoch above every one storage holds.
	c.log.Warn("no reader to promote: restarting the writer in place", "writer", oldID, "fenced", fenced)
	s.restartAt = time.Time{}
	c.restartLocked(old, s, cluster.RoleWriter)
	c.m.failovers.WithLabelValues(kind, "restart").Inc()
	return oldID, nil
}

// Status is the current cluster status with live fields.
func (c *Control) Status() cluster.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

func (c *Control) statusLocked() cluster.Status {
	f := *c.file
	f.Nodes = nil
	for _, n := range c.file.Nodes {
		v := n
		if st := c.inst[n.ID]; st != nil && n.Kind == cluster.KindInstance {
			h := st.ok && st.last.Healthy
			v.Healthy = &h
			if st.seen {
				lag := st.last.LagMS
				v.LagMS, v.ReadPoint, v.Epoch = &lag, st.last.ReadPoint, st.last.Epoch
			}
		}
		if n.Kind == cluster.KindControl {
			v.PID = os.Getpid()
		}
		f.Nodes = append(f.Nodes, v)
	}
	return cluster.Status{File: f, Version: c.version, FailoverInProgress: c.failing}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
