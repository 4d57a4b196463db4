package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/rpc"
)

// Config opens a volume over the network.
type Config struct {
	ID     string      // this writer's identity on the wire (unique per process)
	Nodes  []redo.Peer // the 6 storage nodes, with addresses
	PGs    int         // protection groups (only used when creating; must match afterwards)
	Secret []byte
	// Create bootstraps a new volume instead of recovering an existing one.
	Create bool
	// Epoch is the recovery round (see EpochFor: the epoch itself also embeds this writer's id);
	// 0 picks the round above the highest epoch found, and retries above any newer one.
	Epoch uint64
	// MaxInflight is the LSN allocation limit. It is a property of the volume: every writer of
	// one volume must use the same value, because recovery starts the next epoch's LSNs above
	// what a fenced writer could have allocated under it.
	MaxInflight redo.LSN
	Tick        time.Duration
	// ReadTimeout bounds one attempt of a read on one segment before trying the next.
	ReadTimeout time.Duration
	// CommitTimeout bounds how long a commit waits for a write quorum (default 10s; negative:
	// only the caller's context). A commit that times out fails with ErrUnavailable; its
	// outcome is unknown (the writer keeps retransmitting it, so it may still become durable).
	CommitTimeout time.Duration
	Logger        *slog.Logger
	// ReadOnly opens the volume for a read replica: no recovery, no epoch installed, no
	// commits. Reads go to storage at the read point set by SetReadPoint (from the writer's
	// stream); until one is set there is nothing to read.
	ReadOnly bool
	// OnDurable, if set (writers only), is called with every batch of commits the VDL passes,
	// in LSN order and with no gap, under the volume's lock: it must not block or call back
	// into the volume. It feeds the replica stream.
	OnDurable func(ReadPoint, []Durable)
	// AfterDurable, if set, is called by the goroutine that made commits durable once it has
	// let the volume's lock go, after OnDurable and before it does anything else: the replica
	// stream writes what OnDurable queued from there, without a goroutine hand-off.
	AfterDurable func()
	// OnProposed, if set (writers only), is called with every commit as it is proposed, before
	// it is durable, under the volume's lock, with a read point at its LSN. Only the unsafe
	// read-above-vdl mode sets it: it lets readers see commits that may yet be lost.
	OnProposed func(ReadPoint, Durable)
	// UnsafeAck3of6 acknowledges commits at 3 of 6 segments instead of the write quorum.
	UnsafeAck3of6 bool
	// UnsafeNoTruncation recovers without truncating the records above the VDL.
	UnsafeNoTruncation bool
}

// ReadPoint is a point a read-only volume may read at: a VDL of the writer, with the writer's
// epoch and, per PG, the LSN a segment must be complete to (its SCL) to serve reads there.
type ReadPoint struct {
	VDL   redo.LSN   `json:"vdl"`
	Epoch uint64     `json:"epoch"`
	Need  []redo.LSN `json:"need"`
}

// Durable is one commit the VDL passed: its commit LSN and the keys it wrote.
type Durable struct {
	LSN  redo.LSN
	Keys [][]byte
	Ops  []Op // the commit's writes (Keys[i] is Ops[i].Key); shared, never modify
}

// ErrUnavailable wraps commit and read failures caused by too few reachable segments.
var ErrUnavailable = errors.New("volume: quorum unavailable")

// Volume is a writer's handle on the volume: the Writer core driven over rpc links.
type Volume struct {
	cfg    Config
	log    *slog.Logger
	layout Layout
	links  map[string]*rpc.Link
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	core     *Writer
	rec      *Recovery
	changed  chan struct{} // closed and replaced whenever VDL moves or the writer is fenced
	reads    map[uint64]chan *redo.Message
	statuses map[uint64]chan *redo.Message
	reqID    uint64
	closed   bool
	flush    chan struct{}
	waiters  []commitWaiter
	// lastRelease is when a waiting commit last became durable (see StalledFor).
	lastRelease time.Time
	rp          ReadPoint // read-only volumes: the current read point
	rpSet       bool
}

// Open connects to the storage nodes and creates or recovers the volume; it returns once the
// writer may commit.
func Open(ctx context.Context, cfg Config) (*Volume, error) {
	if cfg.ID == "" || len(cfg.Secret) == 0 {
		return nil, errors.New("volume open: id and secret are required")
	}
	if cfg.Tick == 0 {
		cfg.Tick = 20 * time.Millisecond
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = time.Second
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 1 << 16
	}
	if cfg.CommitTimeout == 0 {
		cfg.CommitTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PGs == 0 {
		cfg.PGs = 1
	}
	layout, err := NewLayout(cfg.Nodes, cfg.PGs)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	v := &Volume{cfg: cfg, log: cfg.Logger.With("volume_writer", cfg.ID), layout: layout, links: map[string]*rpc.Link{},
		cancel: cancel, changed: make(chan struct{}), reads: map[uint64]chan *redo.Message{}, statuses: map[uint64]chan *redo.Message{}, flush: make(chan struct{}, 1)}
	for _, n := range cfg.Nodes {
		v.links[n.ID] = rpc.NewLink(bg, n.Addr, cfg.ID, cfg.Secret, v.onMessage, v.log)
	}
	v.wg.Add(2)
	go v.tickLoop(bg)
	go v.flushLoop(bg)
	if cfg.ReadOnly {
		return v, nil
	}
	if err := v.recover(ctx); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (v *Volume) recover(ctx context.Context) error {
	epoch := v.cfg.Epoch
	for attempt := 0; ; attempt++ {
		v.mu.Lock()
		if v.cfg.Create {
			v.rec = NewCreate(v.cfg.ID, v.layout)
		} else {
			if epoch == 0 {
				epoch = 2
			}
			v.rec = NewRecovery(v.cfg.ID, v.layout, epoch, v.cfg.MaxInflight)
			if v.cfg.UnsafeNoTruncation {
				v.rec.UnsafeSkipTruncation()
			}
		}
		msgs := v.rec.Start()
		wait := v.changed
		v.mu.Unlock()
		v.send(msgs)
		for {
			v.mu.Lock()
			done, err := v.rec.Done()
			rec := v.rec
			if done && err == nil {
				c := WriterConfig{ID: v.cfg.ID, MaxInflight: v.cfg.MaxInflight}
				if v.cfg.UnsafeAck3of6 {
					c.WriteQuorum = 3
				}
				v.core = NewWriter(c, v.layout, rec.State())
				v.rec = nil
				v.log.Info("volume open", "epoch", rec.Epoch(), "vdl", v.core.VDL(), "next_lsn", v.core.NextLSN())
			}
			v.mu.Unlock()
			if done && err == nil {
				return nil
			}
			if err != nil {
				if errors.Is(err, ErrFenced) && v.cfg.Epoch == 0 && !v.cfg.Create && attempt < 10 {
					epoch = EpochRound(rec.MaxEpochSeen()) + 1
					break
				}
				return fmt.Errorf("volume open (epoch %d): %w", rec.Epoch(), err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("volume open (epoch %d): waiting for a read quorum then a write quorum of every PG: %w", rec.Epoch(), ctx.Err())
			case <-wait:
				v.mu.Lock()
				wait = v.changed
				v.mu.Unlock()
			}
		}
	}
}

// notify wakes every waiter; call with v.mu held.
func (v *Volume) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

func (v *Volume) onMessage(m *redo.Message) {
	v.mu.Lock()
	var out []*redo.Message
	durable := false
	switch {
	case m.Type == redo.MsgReadResp || (m.Type == redo.MsgReject && redo.MsgType(m.Limit) == redo.MsgRead):
		if ch := v.reads[m.ReqID]; ch != nil {
			delete(v.reads, m.ReqID)
			ch <- m
		}
		if m.Type == redo.MsgReject && m.Code == redo.RejectNeedInstall && v.core != nil {
			v.core.Step(m)
			out = v.core.Ready()
		}
	case m.Type == redo.MsgStatusResp || m.Type == redo.MsgFaultResp || (m.Type == redo.MsgReject && redo.MsgType(m.Limit) == redo.MsgFault):
		if ch := v.statuses[m.ReqID]; ch != nil {
			delete(v.statuses, m.ReqID)
			ch <- m
		}
	case v.rec != nil:
		out = v.rec.Step(m)
		v.notify()
	case v.core != nil:
		vdl, fenced := v.core.VDL(), v.core.Fenced()
		v.core.Step(m)
		out = v.core.Ready()
		if v.core.VDL() != vdl || v.core.Fenced() != fenced {
			v.release()
			v.notify()
			durable = v.core.VDL() != vdl
		}
	}
	v.mu.Unlock()
	if durable && v.cfg.AfterDurable != nil {
		v.cfg.AfterDurable()
	}
	v.send(out)
}

func (v *Volume) send(msgs []*redo.Message) {
	for _, m := range msgs {
		if l := v.links[m.To]; l != nil {
			l.Send(m)
		}
	}
}

func (v *Volume) flushLoop(ctx context.Context) {
	defer v.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-v.flush:
		}
		v.mu.Lock()
		var out []*redo.Message
		if v.core != nil {
			out = v.core.Ready()
		}
		v.mu.Unlock()
		v.send(out)
	}
}

func (v *Volume) tickLoop(ctx context.Context) {
	defer v.wg.Done()
	t := time.NewTicker(v.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v.mu.Lock()
		var out []*redo.Message
		if v.rec != nil {
			out = v.rec.Tick()
		} else if v.core != nil {
			out = v.core.Tick()
		}
		v.mu.Unlock()
		v.send(out)
	}
}

// Commit writes a transaction and returns its commit LSN once the VDL has reached it, i.e. every
// record up to it is on a write quorum of its PG. No lock is held while waiting, so many commits
// are in flight at once and share appends and fsyncs (group commit).
func (v *Volume) Commit(ctx context.Context, ops []Op) (redo.LSN, error) {
	if v.cfg.CommitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.cfg.CommitTimeout)
		defer cancel()
	}
	var lsn redo.LSN
	var done chan struct{}
	for {
		v.mu.Lock()
		if v.closed {
			v.mu.Unlock()
			return 0, errors.New("commit: volume closed")
		}
		if v.core == nil {
			v.mu.Unlock()
			return 0, ErrReadOnly
		}
		var err error
		lsn, err = v.core.Propose(ops)
		wait := v.changed
		if err == nil {
			// LSNs are allocated in order under the lock, so waiters stay sorted.
			done = make(chan struct{})
			v.waiters = append(v.waiters, commitWaiter{lsn: lsn, done: done, ops: ops, at: time.Now()})
			if v.cfg.OnProposed != nil {
				rp := v.readPointLocked()
				rp.VDL = lsn
				d := Durable{LSN: lsn, Keys: make([][]byte, len(ops)), Ops: ops}
				for j, op := range ops {
					d.Keys[j] = op.Key
				}
				v.cfg.OnProposed(rp, d)
			}
			// The flusher sends the appends: commits proposed while it is busy share one
			// append message per segment.
			select {
			case v.flush <- struct{}{}:
			default:
			}
		}
		v.mu.Unlock()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBackpressure) {
			return 0, fmt.Errorf("commit: %w", err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("commit: %w: waiting for in-flight LSNs to drain (%s): %w", ErrUnavailable, v.quorumReport(), ctx.Err())
		case <-wait:
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("commit at LSN %d: %w: %s: %w", lsn, ErrUnavailable, v.quorumReport(), ctx.Err())
	}
	v.mu.Lock()
	vdl, fenced := v.core.VDL(), v.core.Fenced()
	v.mu.Unlock()
	switch {
	case vdl >= lsn:
		return lsn, nil
	case fenced != nil:
		return 0, fmt.Errorf("commit at LSN %d: %w", lsn, fenced)
	}
	return 0, fmt.Errorf("commit at LSN %d: volume closed before it was durable", lsn)
}

type commitWaiter struct {
	at   time.Time // when it was proposed
	lsn  redo.LSN
	done chan struct{}
	ops  []Op
}

// ErrReadOnly is returned by commits on a read-only volume.
var ErrReadOnly = errors.New("volume: opened read-only")

// release wakes the commits the VDL has passed, or all of them once the writer is fenced or
// closed; call with v.mu held.
func (v *Volume) release() {
	all := v.closed || (v.core != nil && v.core.Fenced() != nil)
	i := 0
	for i < len(v.waiters) && (all || v.waiters[i].lsn <= v.core.VDL()) {
		i++
	}
	// OnDurable queues the batch for the replica stream; AfterDurable, once the lock is let go,
	// writes it to the readers before this goroutine does anything else, so a durable commit
	// may be visible on a reader before its client has the ack, as in any database.
	if v.cfg.OnDurable != nil && i > 0 && v.core != nil && v.core.Fenced() == nil {
		vdl := v.core.VDL()
		var ds []Durable
		for _, w := range v.waiters[:i] {
			if w.lsn > vdl {
				break // closed before it was durable
			}
			d := Durable{LSN: w.lsn, Keys: make([][]byte, len(w.ops)), Ops: w.ops}
			for j, op := range w.ops {
				d.Keys[j] = op.Key
			}
			ds = append(ds, d)
		}
		v.cfg.OnDurable(v.readPointLocked(), ds)
	}
	for _, w := range v.waiters[:i] {
		close(w.done)
	}
	if i > 0 {
		v.waiters = append(v.waiters[:0], v.waiters[i:]...)
		v.lastRelease = time.Now()
	}
}

// StalledFor is how long commits have waited without the VDL moving: 0 when nothing waits,
// else the time since the oldest waiting commit was proposed or since a commit last became
// durable, whichever is later. A writer cut off from a write quorum of some PG shows it
// growing while it still answers its heartbeats; the control plane fails over on it.
func (v *Volume) StalledFor() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.waiters) == 0 {
		return 0
	}
	since := v.waiters[0].at
	if v.lastRelease.After(since) {
		since = v.lastRelease
	}
	return time.Since(since)
}

func (v *Volume) quorumReport() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core == nil {
		return "read-only volume"
	}
	return v.core.QuorumReport()
}

// SetMinReadPoint pins versions visible at l (0 unpins): storage GC keeps them even past the
// history window, for readers still at that point. A no-op on a read-only volume.
func (v *Volume) SetMinReadPoint(l redo.LSN) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core != nil {
		v.core.SetMinReadPoint(l)
	}
}

// VDL is the current volume durable LSN (the read point of a read-only volume).
func (v *Volume) VDL() redo.LSN {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core == nil {
		return v.rp.VDL
	}
	return v.core.VDL()
}

// Fenced is the error that stopped the writer once storage showed it a newer epoch, nil
// while it can commit (and always on a read-only volume).
func (v *Volume) Fenced() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core == nil {
		return nil
	}
	return v.core.Fenced()
}

// Epoch is the writer's epoch (the epoch of the read point on a read-only volume).
func (v *Volume) Epoch() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core == nil {
		return v.rp.Epoch
	}
	return v.core.Epoch()
}

// ReadPoint is the writer's current VDL with the per-PG completeness a reader at it needs,
// or the read point of a read-only volume.
func (v *Volume) ReadPoint() ReadPoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.readPointLocked()
}

func (v *Volume) readPointLocked() ReadPoint {
	if v.core == nil {
		return v.rp
	}
	rp := ReadPoint{VDL: v.core.VDL(), Epoch: v.core.Epoch(), Need: make([]redo.LSN, v.layout.PGs())}
	for pg := range rp.Need {
		rp.Need[pg] = v.core.Need(uint32(pg))
	}
	return rp
}

// SetReadPoint moves a read-only volume's read point forward; it never goes back (a lower
// or equal VDL is ignored) and reports whether it moved.
func (v *Volume) SetReadPoint(rp ReadPoint) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.core != nil || (v.rpSet && rp.VDL <= v.rp.VDL) || len(rp.Need) != v.layout.PGs() {
		return false
	}
	v.rpSet = true
	v.rp = ReadPoint{VDL: rp.VDL, Epoch: max(rp.Epoch, v.rp.Epoch), Need: append([]redo.LSN(nil), rp.Need...)}
	return true
}

// Get reads key at read point at (0: the current VDL) from one segment whose SCL covers it,
// trying the others on rejection or timeout.
func (v *Volume) Get(ctx context.Context, key []byte, at redo.LSN) ([]byte, bool, error) {
	m, err := v.read(ctx, &redo.Message{Type: redo.MsgRead, Key: key}, v.layout.PGFor(key), at)
	if err != nil {
		return nil, false, err
	}
	return m.Value, m.Flags&redo.MFlagFound != 0, nil
}

// Scan returns live versions of keys in [start, end) of one PG at read point at.
func (v *Volume) Scan(ctx context.Context, start, end []byte, at redo.LSN, limit int) ([]redo.Record, error) {
	m, err := v.read(ctx, &redo.Message{Type: redo.MsgRead, Flags: redo.MFlagScan, Key: start, EndKey: end, Limit: uint32(limit)}, v.layout.PGFor(start), at)
	if err != nil {
		return nil, err
	}
	return m.Records, nil
}

// readConnectWait bounds how long a read waits for any link to a segment to come up.
const readConnectWait = 10 * time.Second

func (v *Volume) read(ctx context.Context, req *redo.Message, pg uint32, at redo.LSN) (*redo.Message, error) {
	v.mu.Lock()
	var cands []string
	if v.core == nil {
		// Read-only: any segment complete to what the read point needs of this PG.
		if !v.rpSet {
			v.mu.Unlock()
			return nil, fmt.Errorf("read: %w: read-only volume has no read point yet", ErrUnavailable)
		}
		if at == 0 || at > v.rp.VDL {
			at = v.rp.VDL
		}
		req.PG, req.Epoch, req.ReadLSN, req.Need, req.From = pg, v.rp.Epoch, at, v.rp.Need[pg], v.cfg.ID
		v.reqID++
		segs := v.layout.Segments(pg)
		k := int(v.reqID % uint64(len(segs)))
		cands = append(append(cands, segs[k:]...), segs[:k]...)
	} else {
		if at == 0 || at > v.core.VDL() {
			at = v.core.VDL()
		}
		req.PG, req.Epoch, req.ReadLSN, req.Need, req.From = pg, v.core.Epoch(), at, v.core.Need(pg), v.cfg.ID
		v.reqID++
		cands = v.core.ReadCandidates(pg, int(v.reqID))
	}
	v.mu.Unlock()
	// Links connect in the background: right after Open (or while storage nodes restart)
	// none may be up yet. A read that could not even be sent anywhere waits for a link
	// and tries again, within readConnectWait, instead of failing at once.
	var errs []error
	waitUntil := time.Now().Add(readConnectWait)
	for {
		anySent := false
		errs = errs[:0]
		for _, seg := range cands {
			v.mu.Lock()
			v.reqID++
			id := v.reqID
			ch := make(chan *redo.Message, 1)
			v.reads[id] = ch
			v.mu.Unlock()
			m := *req
			m.To, m.ReqID = seg, id
			sent := v.links[seg].Send(&m)
			anySent = anySent || sent
			var resp *redo.Message
			if sent {
				t := time.NewTimer(v.cfg.ReadTimeout)
				select {
				case resp = <-ch:
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			}
			v.mu.Lock()
			delete(v.reads, id)
			v.mu.Unlock()
			switch {
			case ctx.Err() != nil:
				return nil, fmt.Errorf("read at %d: %w", at, ctx.Err())
			case !sent:
				errs = append(errs, fmt.Errorf("%s: not connected", seg))
			case resp == nil:
				errs = append(errs, fmt.Errorf("%s: timed out", seg))
			case resp.Type == redo.MsgReject:
				errs = append(errs, fmt.Errorf("%s: %s", seg, resp.Code))
			default:
				return resp, nil
			}
		}
		if anySent || time.Now().After(waitUntil) {
			break
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("read at %d: %w", at, ctx.Err())
		}
	}
	return nil, fmt.Errorf("read at %d from PG %d: %w: %w", at, pg, ErrUnavailable, errors.Join(errs...))
}

// statusRequest registers a request whose answer comes back by ReqID on the status path
// (node status, fault injection); done unregisters it.
func (v *Volume) statusRequest() (uint64, chan *redo.Message, func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reqID++
	id := v.reqID
	ch := make(chan *redo.Message, 1)
	v.statuses[id] = ch
	return id, ch, func() {
		v.mu.Lock()
		delete(v.statuses, id)
		v.mu.Unlock()
	}
}

// NodeStatus asks one storage node for the state of its segments.
func (v *Volume) NodeStatus(ctx context.Context, node string) ([]redo.SegStatus, error) {
	l := v.links[node]
	if l == nil {
		return nil, fmt.Errorf("node status: unknown node %q", node)
	}
	id, ch, done := v.statusRequest()
	defer done()
	if !l.Send(&redo.Message{Type: redo.MsgStatus, From: v.cfg.ID, To: node, ReqID: id}) {
		return nil, fmt.Errorf("node status %s: %w: not connected", node, ErrUnavailable)
	}
	select {
	case m := <-ch:
		return m.Status, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("node status %s: %w", node, ctx.Err())
	}
}

// InjectFault sends a fault-injection request to one storage node (by id) and returns the
// node's fault state after applying it (redo.FaultQuery only reports).
func (v *Volume) InjectFault(ctx context.Context, node string, spec redo.FaultSpec) (redo.FaultState, error) {
	if err := spec.Validate(); err != nil {
		return redo.FaultState{}, fmt.Errorf("inject fault on %s: %w", node, err)
	}
	l := v.links[node]
	if l == nil {
		return redo.FaultState{}, fmt.Errorf("inject fault: unknown node %q", node)
	}
	id, ch, done := v.statusRequest()
	defer done()
	m := &redo.Message{Type: redo.MsgFault, From: v.cfg.ID, To: node, ReqID: id, Value: redo.AppendFault(nil, &spec)}
	for !l.Send(m) {
		// Links connect in the background (right after Open, or after a node restart).
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return redo.FaultState{}, fmt.Errorf("inject fault on %s: %w: not connected: %w", node, ErrUnavailable, ctx.Err())
		}
	}
	select {
	case r := <-ch:
		if r.Type == redo.MsgReject {
			return redo.FaultState{}, fmt.Errorf("inject fault on %s: refused: %s", node, r.Err)
		}
		st, err := redo.DecodeFaultState(r.Value)
		if err != nil {
			return redo.FaultState{}, fmt.Errorf("inject fault on %s: %w", node, err)
		}
		return st, nil
	case <-ctx.Done():
		return redo.FaultState{}, fmt.Errorf("inject fault on %s: %w", node, ctx.Err())
	}
}

// Nodes lists the volume's storage nodes in layout order (NODE index i of ALTER SYSTEM is
// Nodes()[i]).
func (v *Volume) Nodes() []redo.Peer { return append([]redo.Peer(nil), v.cfg.Nodes...) }

// PGs is the number of protection groups.
func (v *Volume) PGs() int { return v.layout.PGs() }

// ResetLinks drops every connection to the storage nodes and lets them reconnect, losing
// whatever was queued or in flight on them (Aurora's ALTER SYSTEM CRASH DISPATCHER): the
// writer retransmits, so no acknowledged commit is lost and in-flight commits complete late.
func (v *Volume) ResetLinks() {
	for _, l := range v.links {
		l.Reset()
	}
}

// Close stops the volume's goroutines and connections. Commits still waiting fail.
func (v *Volume) Close() {
	v.mu.Lock()
	if !v.closed {
		v.closed = true
		v.release()
		v.notify()
	}
	v.mu.Unlock()
	v.cancel()
	for _, l := range v.links {
		l.Close()
	}
	v.wg.Wait()
}
