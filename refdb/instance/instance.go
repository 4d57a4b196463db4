// Package instance runs a refdb DB instance: it opens the shared volume (recovery under a new
// epoch for a writer; read-only at the writer's read point for a reader), the engine over it,
// the MySQL-protocol front end and the admin API (instanceapi). The writer streams every
// durable commit (VDL, ack time, keys written) to its readers on GET /stream of its admin
// address; a reader follows it, keeps a monotonic read point and serves snapshots at it. A
// reader is promoted in place: recovery under a new epoch, then the running MySQL server
// switches to a writable engine.
package instance

import (
	"context"
	"errors"
	"fmt"
	"github.com/HdrHistogram/hdrhistogram-go"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/sqlfront"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Config configures an instance.
type Config struct {
	Role    string // "writer" or "reader"
	ID      string
	AZ      string
	MySQL   string // listen address
	Admin   string // admin API listen address (instanceapi and the replica stream); "" for none
	Storage []redo.Peer
	PGs     int
	Secret  []byte
	// Create bootstraps the volume when no storage node hosts it yet (first start of a cluster).
	Create bool
	// Readers find the writer among these admin addresses (WriterStream first, then Peers,
	// then the writer the control plane at Control reports).
	WriterStream string
	Peers        []string
	Control      string
	// Database is created by a writer when it does not exist yet.
	Database        string
	User, Password  string
	LockWaitTimeout time.Duration
	CacheBytes      int64
	// OpenTimeout bounds recovery (reaching read and write quorums of every PG).
	OpenTimeout time.Duration
	Logger      *slog.Logger
	// Ready is called with the MySQL address once the instance serves.
	Ready func(addr string)
	// CommitTimeout bounds a commit's wait for a write quorum (volume.Config.CommitTimeout).
	CommitTimeout time.Duration
	// Crash carries out ALTER SYSTEM CRASH INSTANCE / NODE; the default kills this process
	// with SIGKILL (no clean shutdown). Tests running instances in-process replace it.
	Crash func(kind sqlfront.CrashKind)
	// Unsafe modes (deliberately broken; see refdb/cluster.Unsafe). UnsafeAck3of6 and
	// UnsafeNoTruncation act when the instance opens the volume as the writer;
	// UnsafeReadAboveVDL makes a writer stream commits as it proposes them and a reader apply
	// them on receipt.
	UnsafeAck3of6      bool
	UnsafeNoTruncation bool
	UnsafeReadAboveVDL bool
	// ReaderNice is the nice value the process runs at while it is a reader (see
	// priority.go), -20..0; 0 leaves its priority alone. A writer runs at 0.
	ReaderNice int
}

// Instance is a running DB instance.
type Instance struct {
	cfg     Config
	log     *slog.Logger
	started time.Time
	adminAt string
	niceMu  sync.Mutex
	nice    int // what setRolePriority last set

	mu   sync.Mutex
	role instanceapi.Role
	vol  *volume.Volume
	eng  *engine.Engine
	// mirror is a reader's in-memory copy of the ranges it scanned (engine.Mirror), fed by
	// the stream; nil on the writer and in the unsafe read-above-vdl mode.
	mirror *engine.Mirror
	fe     *sqlfront.Frontend
	bc     *broadcaster // writer: the replica stream

	// Reader state.
	applyMu    sync.Mutex // orders stream events with engine creation
	followStop context.CancelFunc
	followDone chan struct{}
	firstRP    chan struct{}
	firstOnce  sync.Once
	lag        lagState
}

type lagState struct {
	mu        sync.Mutex
	writerVDL uint64
	lastLag   time.Duration
	caughtUp  bool
	connected bool
	lastMsg   time.Time
	source    string
	// hist holds every commit batch's stream lag (the writer's durable ack to this reader's
	// read point passing it), in microseconds, since the instance started: Aurora's own
	// replica-lag measure, reported beside client-observed lag.
	hist *hdrhistogram.Histogram
}

// Run opens the volume and serves until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Role != string(instanceapi.RoleWriter) && cfg.Role != string(instanceapi.RoleReader) {
		return fmt.Errorf("instance %s: role %q: want writer or reader", cfg.ID, cfg.Role)
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	i := &Instance{cfg: cfg, log: log.With("instance", cfg.ID, "az", cfg.AZ), started: time.Now(),
		role: instanceapi.Role(cfg.Role), firstRP: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if cfg.Admin != "" {
		srv, err := instanceapi.Listen(cfg.Admin, i.Handler())
		if err != nil {
			return fmt.Errorf("instance %s: %w", cfg.ID, err)
		}
		i.adminAt = srv.Addr()
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.Serve(ctx) }()
	}
	defer i.shutdown()
	var err error
	if cfg.Role == string(instanceapi.RoleWriter) {
		err = i.openWriter(ctx, cfg.Create, 0)
	} else {
		err = i.openReader(ctx)
	}
	if err != nil {
		return err
	}
	i.mu.Lock()
	eng, ro := i.eng, i.role == instanceapi.RoleReader
	i.mu.Unlock()
	fe, err := sqlfront.New(sqlfront.Config{Engine: eng, Listen: cfg.MySQL, User: cfg.User, Password: cfg.Password,
		ReadOnly: ro, ServerID: cfg.ID, LockWaitTimeout: cfg.LockWaitTimeout, Logger: i.log, ReplicaStatus: i.replicaRows, System: i})
	if err != nil {
		return fmt.Errorf("instance %s: %w", cfg.ID, err)
	}
	i.mu.Lock()
	i.fe = fe
	i.mu.Unlock()
	serveErr := make(chan error, 1)
	go func() { serveErr <- fe.Serve() }()
	i.log.Info("serving", "role", cfg.Role, "mysql", fe.Addr(), "admin", i.adminAt, "startup", time.Since(i.started).String())
	if cfg.Ready != nil {
		cfg.Ready(fe.Addr())
	}
	select {
	case <-ctx.Done():
		i.log.Info("stopping")
		return fe.Close()
	case err := <-serveErr:
		fe.Close()
		if err != nil {
			return fmt.Errorf("instance %s: serve: %w", cfg.ID, err)
		}
		return nil
	}
}

func (i *Instance) shutdown() {
	i.stopFollowing()
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.bc != nil {
		i.bc.closeAll()
	}
	if i.vol != nil {
		i.vol.Close()
	}
}

// openWriter recovers the volume under a new epoch (>= minEpoch) and opens the writer engine.
func (i *Instance) openWriter(ctx context.Context, create bool, minEpoch uint64) error {
	start := time.Now()
	openCtx, cancel := context.WithTimeout(ctx, i.cfg.OpenTimeout)
	defer cancel()
	bc := newBroadcaster()
	// The writer mirrors the ranges it scans too (engine.Mirror), fed by its own durable
	// commits: sysbench's range selects then need no storage round trip. It is created once
	// the volume is recovered; commits before that are covered by its starting read point.
	var wmirror atomic.Pointer[engine.Mirror]
	onDurable := func(rp volume.ReadPoint, ds []volume.Durable) {
		bc.publish(rp, ds)
		if m := wmirror.Load(); m != nil {
			m.Apply(durableCommits(ds), rp.VDL)
		}
	}
	vcfg := volume.Config{ID: i.cfg.ID, Nodes: i.cfg.Storage, PGs: i.cfg.PGs, Secret: i.cfg.Secret, Logger: i.log,
		Epoch: minEpoch, OnDurable: onDurable, AfterDurable: bc.flushAll, CommitTimeout: i.cfg.CommitTimeout,
		UnsafeAck3of6: i.cfg.UnsafeAck3of6, UnsafeNoTruncation: i.cfg.UnsafeNoTruncation}
	if i.cfg.UnsafeReadAboveVDL {
		vcfg.OnProposed = bc.publishProposed
	}
	v, err := volume.Open(openCtx, vcfg)
	if errors.Is(err, volume.ErrFenced) && minEpoch != 0 {
		// Someone sealed minEpoch already: take the next epoch above everything seen.
		vcfg.Epoch = 0
		v, err = volume.Open(openCtx, vcfg)
	}
	if errors.Is(err, volume.ErrNoVolume) && create {
		i.log.Info("no volume found: creating it")
		vcfg.Create = true
		v, err = volume.Open(openCtx, vcfg)
	}
	if err != nil {
		return fmt.Errorf("instance %s: open volume: %w", i.cfg.ID, err)
	}
	bc.init(v.ReadPoint())
	i.log.Info("volume recovered", "epoch", v.Epoch(), "vdl", v.VDL(), "took", time.Since(start).String())
	vs, err := engine.NewVolumeStore(v, i.cfg.Storage, i.cfg.PGs)
	if err != nil {
		v.Close()
		return fmt.Errorf("instance %s: %w", i.cfg.ID, err)
	}
	var store engine.Store = vs
	var mirror *engine.Mirror
	if !i.unsafeAny() { // unsafe modes run as they were built and measured, without mirrors
		mirror = engine.NewMirror(v.VDL(), mirrorBytes(i.cfg.CacheBytes))
		wmirror.Store(mirror)
		store = &engine.MirrorStore{Store: vs, M: mirror}
	}
	eng, err := engine.Open(openCtx, engine.Config{Store: store, LockWaitTimeout: i.cfg.LockWaitTimeout, CacheBytes: i.cfg.CacheBytes, Logger: i.log})
	if err != nil {
		v.Close()
		return fmt.Errorf("instance %s: open engine: %w", i.cfg.ID, err)
	}
	if i.cfg.Database != "" {
		if _, ok := eng.Catalog().Database(i.cfg.Database); !ok {
			if err := eng.CreateDatabase(openCtx, engine.DatabaseDef{Name: i.cfg.Database}); err != nil && !errors.Is(err, engine.ErrExists) {
				v.Close()
				return fmt.Errorf("instance %s: create database %s: %w", i.cfg.ID, i.cfg.Database, err)
			}
		}
	}
	i.mu.Lock()
	oldVol, oldEng, fe := i.vol, i.eng, i.fe
	i.vol, i.eng, i.bc, i.role, i.mirror = v, eng, bc, instanceapi.RoleWriter, mirror
	i.mu.Unlock()
	i.setRolePriority(instanceapi.RoleWriter)
	if fe != nil {
		fe.SetEngine(eng)
		fe.SetReadOnly(false)
	}
	if oldEng != nil {
		oldEng.AbortAll()
	}
	if oldVol != nil {
		oldVol.Close()
	}
	return nil
}

// openReader opens the volume read-only, follows the writer and opens the engine once the
// first read point arrived.
func (i *Instance) openReader(ctx context.Context) error {
	i.setRolePriority(instanceapi.RoleReader)
	// Its own wire identity: storage routes replies by identity, and a promote opens the
	// writer's volume (under cfg.ID) while this one still serves.
	v, err := volume.Open(ctx, volume.Config{ID: i.cfg.ID + "-ro", Nodes: i.cfg.Storage, PGs: i.cfg.PGs, Secret: i.cfg.Secret,
		Logger: i.log, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("instance %s: open volume read-only: %w", i.cfg.ID, err)
	}
	i.mu.Lock()
	i.vol = v
	i.mu.Unlock()
	i.startFollowing()
	select {
	case <-i.firstRP:
	case <-ctx.Done():
		return fmt.Errorf("instance %s: waiting for the writer's stream: %w", i.cfg.ID, ctx.Err())
	}
	vs, err := engine.NewVolumeStore(v, i.cfg.Storage, i.cfg.PGs)
	if err != nil {
		return fmt.Errorf("instance %s: %w", i.cfg.ID, err)
	}
	i.applyMu.Lock()
	defer i.applyMu.Unlock()
	var store engine.Store = vs
	var mirror *engine.Mirror
	if !i.unsafeAny() { // unsafe modes run as they were built and measured, without mirrors
		// Created under applyMu at the current read point: every later commit reaches it.
		mirror = engine.NewMirror(v.VDL(), mirrorBytes(i.cfg.CacheBytes))
		store = &engine.MirrorStore{Store: vs, M: mirror}
	}
	openCtx, cancel := context.WithTimeout(ctx, i.cfg.OpenTimeout)
	defer cancel()
	eng, err := engine.Open(openCtx, engine.Config{Store: store, LockWaitTimeout: i.cfg.LockWaitTimeout, CacheBytes: i.cfg.CacheBytes, Logger: i.log})
	if err != nil {
		return fmt.Errorf("instance %s: open engine: %w", i.cfg.ID, err)
	}
	i.mu.Lock()
	i.eng, i.mirror = eng, mirror
	i.mu.Unlock()
	i.log.Info("reader open", "read_point", v.VDL(), "epoch", v.Epoch())
	return nil
}

func (i *Instance) startFollowing() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	i.mu.Lock()
	i.followStop, i.followDone = cancel, done
	i.mu.Unlock()
	go func() {
		defer close(done)
		i.followLoop(ctx)
	}()
}

func (i *Instance) stopFollowing() {
	i.mu.Lock()
	stop, done := i.followStop, i.followDone
	i.followStop, i.followDone = nil, nil
	i.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// followLoop finds the writer and follows its stream, reconnecting whenever it breaks.
func (i *Instance) followLoop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if w := i.discover(ctx); w != "" {
			err := i.follow(ctx, w)
			i.lag.mu.Lock()
			i.lag.connected = false
			i.lag.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			i.log.Warn("replica stream broke; reconnecting", "writer", w, "err", err)
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// discover returns the admin address of the instance that reports being the writer with
// the highest epoch, or "".
func (i *Instance) discover(ctx context.Context) string {
	var cands []string
	if i.cfg.WriterStream != "" {
		cands = append(cands, i.cfg.WriterStream)
	}
	cands = append(cands, i.cfg.Peers...)
	if i.cfg.Control != "" {
		cands = append(cands, controlWriters(ctx, i.cfg.Control)...)
	}
	best, bestEpoch := "", uint64(0)
	seen := map[string]bool{}
	for _, c := range cands {
		if c == "" || seen[c] || c == i.adminAt || c == i.cfg.Admin {
			continue
		}
		seen[c] = true
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := instanceapi.NewClient(c).Status(sctx)
		cancel()
		if err == nil && st.Role == instanceapi.RoleWriter && st.Healthy && (best == "" || st.Epoch > bestEpoch) {
			best, bestEpoch = c, st.Epoch
		}
	}
	return best
}

// controlWriters asks the control plane's GET /status for the writer's admin address.
func controlWriters(ctx context.Context, control string) []string {
	base := control
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	var st struct {
		Nodes []struct {
			Kind  string `json:"kind"`
			Role  string `json:"role"`
			Admin string `json:"admin"`
		} `json:"nodes"`
	}
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := instanceapi.Do(sctx, http.DefaultClient, http.MethodGet, strings.TrimRight(base, "/")+"/status", nil, &st); err != nil {
		return nil
	}
	var out []string
	for _, n := range st.Nodes {
		if n.Role == string(instanceapi.RoleWriter) && n.Admin != "" {
			out = append(out, n.Admin)
		}
	}
	return out
}

// apply handles one stream event: invalidate the cache for every written key, then move the
// read point (never back), then reload the catalog if a catalog key changed.
func (i *Instance) apply(ctx context.Context, ev event, from string) {
	i.applyMu.Lock()
	defer i.applyMu.Unlock()
	i.mu.Lock()
	v, eng, role, mirror := i.vol, i.eng, i.role, i.mirror
	i.mu.Unlock()
	if role != instanceapi.RoleReader || v == nil || (ev.Proposed && !i.cfg.UnsafeReadAboveVDL) {
		return
	}
	catalog := false
	if ev.Reset {
		// The commits between our read point and this one were not streamed to us.
		if eng != nil {
			eng.ResetCache(ev.RP.VDL)
		}
		catalog = true
	}
	for _, c := range ev.Commits {
		if eng != nil && eng.ApplyRemote(c.Keys, redo.LSN(c.LSN)) {
			catalog = true
		}
	}
	if mirror != nil {
		i.feedMirror(mirror, ev)
	}
	moved := v.SetReadPoint(ev.RP)
	now := time.Now()
	i.lag.mu.Lock()
	i.lag.connected, i.lag.lastMsg, i.lag.source = true, now, from
	i.lag.writerVDL = max(i.lag.writerVDL, ev.WriterVDL, uint64(ev.RP.VDL))
	if moved && ev.Ack > 0 {
		i.lag.lastLag = now.Sub(time.Unix(0, ev.Ack))
		if len(ev.Commits) > 0 {
			if i.lag.hist == nil {
				i.lag.hist = hdrhistogram.New(1, 600_000_000, 3)
			}
			_ = i.lag.hist.RecordValue(max(i.lag.lastLag.Microseconds(), 1)) // above 10 min: dropped
		}
	}
	i.lag.caughtUp = uint64(v.VDL()) >= i.lag.writerVDL && (ev.Heartbeat || ev.Reset)
	i.lag.mu.Unlock()
	if moved {
		i.firstOnce.Do(func() { close(i.firstRP) })
	}
	// Unsafe read-above-vdl: a proposed DDL may have been read before storage held it, so
	// the durable copy of the same commit reloads the catalog again.
	if eng != nil && catalog && (moved || ev.Reset || (i.cfg.UnsafeReadAboveVDL && !ev.Proposed)) {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := eng.ReloadCatalog(rctx); err != nil {
			i.log.Error("reloading the catalog", "err", err)
		}
		cancel()
	}
}

// feedMirror applies an event's commits to the mirror before the read point passes them; a
// reset, or a commit that came without values, makes it start over.
func (i *Instance) feedMirror(m *engine.Mirror, ev event) {
	if ev.Reset {
		m.Reset(ev.RP.VDL)
		return
	}
	cs := make([]engine.Commit, 0, len(ev.Commits))
	for _, c := range ev.Commits {
		ws, ok := c.writes()
		if !ok {
			m.Reset(ev.RP.VDL)
			return
		}
		cs = append(cs, engine.Commit{LSN: redo.LSN(c.LSN), Writes: ws})
	}
	m.Apply(cs, ev.RP.VDL)
}

// unsafeAny reports whether one of the instance's deliberately broken modes is on.
func (i *Instance) unsafeAny() bool {
	return i.cfg.UnsafeAck3of6 || i.cfg.UnsafeNoTruncation || i.cfg.UnsafeReadAboveVDL
}

// durableCommits turns the volume's durable commits into the mirror's.
func durableCommits(ds []volume.Durable) []engine.Commit {
	cs := make([]engine.Commit, len(ds))
	for j, d := range ds {
		ws := make([]engine.Write, len(d.Ops))
		for k, op := range d.Ops {
			ws[k] = engine.Write{Key: op.Key, Value: op.Value, Delete: op.Delete}
		}
		cs[j] = engine.Commit{LSN: d.LSN, Writes: ws}
	}
	return cs
}

// mirrorBytes bounds a reader's mirror: as much as its version cache, 64 MiB at least.
func mirrorBytes(cacheBytes int64) int64 { return max(cacheBytes, 64<<20) }

// lagNow is the reader's replica lag: 0 when caught up with the writer, else the delay of
// the last commit applied, or the time since the stream broke.
func (i *Instance) lagNow() time.Duration {
	i.lag.mu.Lock()
	defer i.lag.mu.Unlock()
	switch {
	case !i.lag.connected && !i.lag.lastMsg.IsZero():
		return time.Since(i.lag.lastMsg)
	case i.lag.caughtUp:
		return 0
	}
	return i.lag.lastLag
}

// Status is the instance's admin status.
func (i *Instance) Status() instanceapi.Status {
	i.mu.Lock()
	role, v, fe, eng, mirror := i.role, i.vol, i.fe, i.eng, i.mirror
	i.mu.Unlock()
	st := instanceapi.Status{ID: i.cfg.ID, Role: role, AZ: i.cfg.AZ, PID: os.Getpid(), Started: i.started}
	if fe != nil {
		st.MySQL = fe.Addr()
	}
	if v != nil {
		st.Epoch, st.ReadPoint = v.Epoch(), uint64(v.VDL())
		st.VDL = st.ReadPoint
	}
	if role == instanceapi.RoleWriter && v != nil {
		st.StalledMS = float64(v.StalledFor().Microseconds()) / 1000
		if err := v.Fenced(); err != nil {
			st.Fenced = err.Error()
		}
	}
	if role == instanceapi.RoleReader {
		i.lag.mu.Lock()
		st.VDL = max(st.VDL, i.lag.writerVDL)
		i.lag.mu.Unlock()
		st.LagMS = float64(i.lagNow().Microseconds()) / 1000
	}
	i.lag.mu.Lock()
	if h := i.lag.hist; h != nil && role == instanceapi.RoleReader {
		st.StreamLag = &instanceapi.LagPercentiles{Count: h.TotalCount(), P50MS: float64(h.ValueAtQuantile(50)) / 1000,
			P99MS: float64(h.ValueAtQuantile(99)) / 1000, MaxMS: float64(h.Max()) / 1000}
	}
	i.lag.mu.Unlock()
	if m := mirror; m != nil {
		st.MirrorHits, st.MirrorMisses = m.Reads()
	}
	st.Healthy = fe != nil && eng != nil && v != nil && st.Fenced == ""
	return st
}

// Promote turns a reader into the writer: recovery under an epoch >= minEpoch, a writable
// engine, and the running MySQL server switched to it. On failure it stays a reader.
func (i *Instance) Promote(ctx context.Context, minEpoch uint64) error {
	i.mu.Lock()
	role := i.role
	i.mu.Unlock()
	if role == instanceapi.RoleWriter {
		return nil
	}
	start := time.Now()
	i.log.Info("promoting to writer", "min_epoch", minEpoch)
	i.stopFollowing()
	if err := i.openWriter(ctx, false, minEpoch); err != nil {
		i.startFollowing()
		return err
	}
	i.log.Info("promoted: serving as the writer", "epoch", i.Status().Epoch, "took", time.Since(start).String())
	return nil
}

// Handler is the admin API: instanceapi's status and promote, plus the replica stream.
func (i *Instance) Handler() http.Handler {
	api := instanceapi.Handler(
		func(context.Context) (instanceapi.Status, error) { return i.Status(), nil },
		func(ctx context.Context, req instanceapi.PromoteRequest) (instanceapi.Status, error) {
			if err := i.Promote(ctx, req.MinEpoch); err != nil {
				return instanceapi.Status{}, err
			}
			return i.Status(), nil
		})
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+streamPath, i.serveStream)
	mux.Handle("/", api)
	return mux
}

// replicaRows is information_schema.replica_host_status: this instance, and on the writer
// every reader it streams to.
func (i *Instance) replicaRows() []sqlfront.ReplicaStatus {
	st := i.Status()
	self := sqlfront.ReplicaStatus{ServerID: i.cfg.ID, SessionID: string(st.Role), DurableLSN: st.ReadPoint,
		HighestLSN: st.VDL, LagMillis: st.LagMS, LastUpdate: time.Now().UTC()}
	if st.Role == instanceapi.RoleWriter {
		self.SessionID = "MASTER_SESSION_ID"
	}
	rows := []sqlfront.ReplicaStatus{self}
	i.mu.Lock()
	b := i.bc
	i.mu.Unlock()
	if b != nil {
		for _, s := range b.status() {
			rows = append(rows, sqlfront.ReplicaStatus{ServerID: s.ID, SessionID: "stream", DurableLSN: s.SentVDL,
				HighestLSN: s.SentVDL, LagMillis: float64(s.Lag.Microseconds()) / 1000, LastUpdate: s.LastSent.UTC()})
		}
	}
	return rows
}
