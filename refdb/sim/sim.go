// Package sim runs the volume protocol (6 storage nodes, writers, recovery) in one process
// under a seeded, deterministic scheduler that drops, delays, duplicates and reorders messages,
// partitions AZs, crashes and restarts nodes (losing what was not fsynced), wipes a node, and
// fails writers over, leaving the old writer running as a zombie. It drives the same pure
// cores (storage.Node, volume.Writer, volume.Recovery) as the real servers, and checks the
// volume's invariants after every schedule.
package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/storage"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Config of one simulated schedule.
type Config struct {
	Seed     uint64
	Duration int64 // virtual milliseconds of chaos before healing
	Trace    bool  // keep a trace of events, returned in failures
	// Unsafe turns on one deliberately broken mode, to show the invariant checks catch it.
	// The default schedules never set it.
	Unsafe Unsafe
}

// Unsafe modes of the simulation: the same switches the real processes have
// (refdb/cluster.Unsafe), minus read-above-vdl, which lives in the instance's replica stream.
type Unsafe struct {
	Ack3of6        bool // writers count 3 of 6 segments as a write quorum
	NoEpochFencing bool // storage acknowledges appends of stale epochs
	AckBeforeFsync bool // storage sends its messages before their entries are durable
	NoTruncation   bool // recovery installs its epoch without truncating above the VDL
}

type event struct {
	at   int64
	seq  uint64
	kind int
	msg  *redo.Message
	node int
	w    *writer
}

const (
	evDeliver = iota
	evNodeTick
	evFsync
	evWriterTick
	evPropose
	evRead
	evChaos
)

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type node struct {
	id       string
	az       string
	core     *storage.Node
	durable  [][]redo.Entry // fsynced entries, one chunk per step output
	pending  []storage.Output
	syncing  bool
	up       bool
	wiped    bool
	tickSeq  int
	incarnat int
}

type txn struct {
	commit redo.LSN
	epoch  uint64
	ops    []volume.Op
	writer string
}

type keyWrite struct {
	t  *txn
	op volume.Op
}

type writer struct {
	id       string
	az       string
	round    uint64
	epoch    uint64
	rec      *volume.Recovery
	core     *volume.Writer
	alive    bool
	txns     []*txn // proposed, in commit order
	ackedIdx int
	reads    map[uint64]pendingRead
	created  bool
}

type pendingRead struct {
	key  string
	at   redo.LSN
	hist redo.History
}

// Sim is one schedule.
type Sim struct {
	cfg       Config
	rng       *rand.Rand
	now       int64
	seq       uint64
	q         eventQueue
	nodes     []*node
	byID      map[string]int
	writers   []*writer
	current   *writer
	layout    volume.Layout
	nextEpoch uint64
	nextW     int
	reqID     uint64
	isolated  string // AZ cut off from the others, "" for none
	dropP     float64
	dupP      float64
	healed    bool
	quiesce   bool
	truth     map[redo.LSN]*txn
	byKey     map[string][]keyWrite
	acked     []*txn
	installed []redo.EpochEntry // epochs whose recovery finished, with their truncation
	keys      []string
	valSeq    int
	trace     []string
	errs      []string
	stats     Stats
	storeCfg  storage.Config
	writerCfg volume.WriterConfig
}

// Stats summarizes a run.
type Stats struct {
	Events, Proposed, Acked, Reads, ReadChecks, Failovers, Crashes, Wipes, Corruptions, Partitions int
	FinalVDL                                                                                       redo.LSN
	FinalEpoch                                                                                     uint64
}

const azs = 3

// New prepares a schedule.
func New(cfg Config) *Sim {
	if cfg.Duration == 0 {
		cfg.Duration = 600
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), byID: map[string]int{}, truth: map[redo.LSN]*txn{}, byKey: map[string][]keyWrite{}, nextEpoch: 2}
	var peers []redo.Peer
	for i := 0; i < volume.Copies; i++ {
		n := &node{id: fmt.Sprintf("s%d", i+1), az: fmt.Sprintf("az%d", i/2+1), up: true}
		s.byID[n.id] = i
		s.nodes = append(s.nodes, n)
		peers = append(peers, redo.Peer{ID: n.id, AZ: n.az, Addr: n.id})
	}
	pgs := 1 + s.rng.IntN(3)
	s.layout, _ = volume.NewLayout(peers, pgs)
	s.storeCfg = storage.Config{GCWindow: redo.LSN(20 + s.rng.IntN(200)), GossipBatch: 16 + s.rng.IntN(64), GossipEvery: 5, GCEvery: 7, HintPersistEvery: redo.LSN(1 + s.rng.IntN(50))}
	s.writerCfg = volume.WriterConfig{MaxInflight: redo.LSN(8 + s.rng.IntN(64)), MaxBatch: 1 + s.rng.IntN(16), RetryTicks: 2}
	s.storeCfg.UnsafeNoEpochFencing = cfg.Unsafe.NoEpochFencing
	if cfg.Unsafe.Ack3of6 {
		s.writerCfg.WriteQuorum = 3
	}
	for i, n := range s.nodes {
		c := s.storeCfg
		c.ID = n.id
		n.core = storage.NewNode(c)
		s.schedule(int64(s.rng.IntN(10)), &event{kind: evNodeTick, node: i})
	}
	nk := 3 + s.rng.IntN(10)
	for i := 0; i < nk; i++ {
		s.keys = append(s.keys, fmt.Sprintf("%c-k%d", byte(s.rng.IntN(256)), i))
	}
	s.dropP = []float64{0, 0.01, 0.05, 0.2}[s.rng.IntN(4)]
	s.dupP = []float64{0, 0.02, 0.1}[s.rng.IntN(3)]
	return s
}

func (s *Sim) logf(format string, args ...any) {
	if s.cfg.Trace {
		s.trace = append(s.trace, fmt.Sprintf("%6d ", s.now)+fmt.Sprintf(format, args...))
	}
}

func (s *Sim) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.logf("FAIL %s", msg)
	if len(s.errs) < 20 {
		s.errs = append(s.errs, msg)
	}
}

func (s *Sim) schedule(after int64, e *event) {
	e.at = s.now + after
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *Sim) azOf(id string) string {
	if i, ok := s.byID[id]; ok {
		return s.nodes[i].az
	}
	for _, w := range s.writers {
		if w.id == id {
			return w.az
		}
	}
	return ""
}

// send puts a message on the network, which may drop, duplicate and delay it.
func (s *Sim) send(m *redo.Message) {
	if s.isolated != "" && (s.azOf(m.From) == s.isolated) != (s.azOf(m.To) == s.isolated) {
		return
	}
	if s.rng.Float64() < s.dropP {
		return
	}
	copies := 1
	if s.rng.Float64() < s.dupP {
		copies = 2
	}
	// Messages are immutable once sent (every receiver copies what it keeps), so a duplicate
	// can share the original.
	for i := 0; i < copies; i++ {
		s.schedule(1+int64(s.rng.IntN(8)), &event{kind: evDeliver, msg: m})
	}
}

// nodeOutput queues a node's output until its next fsync, which makes the entries durable and
// only then releases the messages.
func (s *Sim) nodeOutput(i int, out storage.Output) {
	if out.Empty() {
		return
	}
	n := s.nodes[i]
	if s.cfg.Unsafe.AckBeforeFsync {
		// Unsafe: the messages leave now; the entries wait for the next fsync.
		for _, m := range out.Send {
			s.send(m)
		}
		out.Send = nil
	}
	n.pending = append(n.pending, out)
	if !n.syncing {
		n.syncing = true
		s.schedule(int64(s.rng.IntN(3)), &event{kind: evFsync, node: i})
	}
}

func (s *Sim) fsync(i int) {
	n := s.nodes[i]
	n.syncing = false
	if !n.up {
		return
	}
	outs := n.pending
	n.pending = nil
	for _, o := range outs {
		if len(o.Persist) > 0 {
			n.durable = append(n.durable, o.Persist)
		}
	}
	for _, o := range outs {
		for _, m := range o.Send {
			s.send(m)
		}
	}
}

func (s *Sim) crash(i int, wipe bool) {
	n := s.nodes[i]
	n.up = false
	n.pending = nil
	n.syncing = false
	if wipe {
		n.durable = nil
		n.wiped = true
		s.stats.Wipes++
	}
	s.stats.Crashes++
	s.logf("crash %s wipe=%v", n.id, wipe)
}

func (s *Sim) restart(i int) {
	n := s.nodes[i]
	if n.up {
		return
	}
	c := s.storeCfg
	c.ID = n.id
	var log []redo.Entry
	for _, chunk := range n.durable {
		log = append(log, chunk...)
	}
	n.core = storage.Restore(c, log)
	n.up = true
	n.incarnat++
	s.logf("restart %s", n.id)
	s.schedule(1, &event{kind: evNodeTick, node: i})
}

func (s *Sim) newWriter(create bool) *writer { return s.startWriter(create, 0) }

func (s *Sim) newWriterAt(round uint64) *writer { return s.startWriter(false, round) }

func (s *Sim) startWriter(create bool, round uint64) *writer {
	s.nextW++
	w := &writer{id: fmt.Sprintf("w%d", s.nextW), az: fmt.Sprintf("az%d", 1+s.rng.IntN(azs)), alive: true, reads: map[uint64]pendingRead{}, created: create}
	switch {
	case create:
		w.round = 1
		w.rec = volume.NewCreate(w.id, s.layout)
	case round != 0:
		w.round = round
		w.rec = volume.NewRecovery(w.id, s.layout, round, s.writerCfg.MaxInflight)
	default:
		w.round = s.nextEpoch
		s.nextEpoch++
		w.rec = volume.NewRecovery(w.id, s.layout, w.round, s.writerCfg.MaxInflight)
	}
	if s.cfg.Unsafe.NoTruncation {
		w.rec.UnsafeSkipTruncation()
	}
	w.epoch = w.rec.Epoch()
	s.writers = append(s.writers, w)
	s.current = w
	s.logf("writer %s az=%s epoch=%d start (create=%v)", w.id, w.az, w.epoch, create)
	for _, m := range w.rec.Start() {
		s.send(m)
	}
	s.schedule(5, &event{kind: evWriterTick, w: w})
	s.schedule(5, &event{kind: evPropose, w: w})
	s.schedule(20, &event{kind: evRead, w: w})
	return w
}

func (s *Sim) writerStepped(w *writer) {
	if w.rec != nil {
		done, err := w.rec.Done()
		if err != nil {
			s.logf("writer %s recovery failed: %v", w.id, err)
			w.alive = false
			if errors.Is(err, volume.ErrNoVolume) {
				s.failf("recovery of %s found no volume", w.id)
			}
			return
		}
		if !done {
			return
		}
		st := w.rec.State()
		s.installed = append(s.installed, st.History[len(st.History)-1])
		w.rec = nil
		c := s.writerCfg
		c.ID = w.id
		w.core = volume.NewWriter(c, s.layout, st)
		s.logf("writer %s epoch=%d recovered vdl=%d start=%d history=%v", w.id, w.epoch, st.VDL, st.Start, st.History)
		for _, t := range s.acked {
			if t.commit > st.VDL && !st.History.Garbage(t.epoch, t.commit) {
				// An acked commit above the recovered VDL would be silently dropped by the
				// truncation that the new epoch installs.
				s.failf("writer %s recovered VDL %d below acked commit %d (epoch %d, %s)", w.id, st.VDL, t.commit, t.epoch, t.writer)
			}
			if st.History.Garbage(t.epoch, t.commit) {
				s.failf("writer %s truncated acked commit %d (epoch %d, %s)", w.id, t.commit, t.epoch, t.writer)
			}
		}
		return
	}
	vdl := w.core.VDL()
	for w.ackedIdx < len(w.txns) && w.txns[w.ackedIdx].commit <= vdl {
		t := w.txns[w.ackedIdx]
		w.ackedIdx++
		for _, e := range s.installed {
			if e.Epoch > t.epoch && t.commit > e.Trunc {
				s.failf("stale-epoch write acknowledged: %s (epoch %d) acked commit %d after epoch %d truncated above %d", w.id, t.epoch, t.commit, e.Epoch, e.Trunc)
			}
		}
		s.acked = append(s.acked, t)
		s.stats.Acked++
		s.logf("ack %s commit=%d epoch=%d", w.id, t.commit, t.epoch)
	}
	for _, m := range w.core.Ready() {
		s.send(m)
	}
}

func (s *Sim) deliver(m *redo.Message) {
	if i, ok := s.byID[m.To]; ok {
		n := s.nodes[i]
		if !n.up {
			return
		}
		s.nodeOutput(i, n.core.Step(m))
		return
	}
	for _, w := range s.writers {
		if w.id != m.To || !w.alive {
			continue
		}
		switch {
		case w.rec != nil:
			for _, out := range w.rec.Step(m) {
				s.send(out)
			}
		case m.Type == redo.MsgReject:
			s.logf("reject %v: %s", m, m.Err)
			w.core.Step(m)
		case m.Type == redo.MsgReadResp:
			s.checkRead(w, m)
		default:
			w.core.Step(m)
		}
		s.writerStepped(w)
	}
}

func (s *Sim) propose(w *writer) {
	if !w.alive || w.core == nil || w.core.Fenced() != nil {
		return
	}
	ops := make([]volume.Op, 1+s.rng.IntN(3))
	for i := range ops {
		s.valSeq++
		ops[i] = volume.Op{Key: []byte(s.keys[s.rng.IntN(len(s.keys))]), Value: []byte(fmt.Sprintf("v%d", s.valSeq))}
		if s.rng.IntN(8) == 0 {
			ops[i].Delete, ops[i].Value = true, nil
		}
	}
	commit, err := w.core.Propose(ops)
	if err != nil {
		return
	}
	t := &txn{commit: commit, epoch: w.epoch, ops: ops, writer: w.id}
	first := commit - redo.LSN(len(ops)) + 1
	for l := first; l <= commit; l++ {
		if old := s.truth[l]; old != nil {
			s.failf("LSN %d allocated twice: by %s epoch %d and %s epoch %d", l, old.writer, old.epoch, w.id, w.epoch)
		}
		s.truth[l] = t
	}
	for _, op := range ops {
		s.byKey[string(op.Key)] = append(s.byKey[string(op.Key)], keyWrite{t: t, op: op})
	}
	w.txns = append(w.txns, t)
	s.stats.Proposed++
	s.writerStepped(w)
}

// expected returns the value of key visible at read point at, given the reader's history.
func (s *Sim) expected(key string, at redo.LSN, h redo.History) (string, bool) {
	var best *txn
	var bestOp volume.Op
	for _, kw := range s.byKey[key] {
		t := kw.t
		if t.commit > at || (best != nil && t.commit < best.commit) || h.Garbage(t.epoch, t.commit) {
			continue
		}
		best, bestOp = t, kw.op
	}
	if best == nil || bestOp.Delete {
		return "", false
	}
	return string(bestOp.Value), true
}

func (s *Sim) issueRead(w *writer) {
	if !w.alive || w.core == nil || w.core.VDL() == 0 {
		return
	}
	key := s.keys[s.rng.IntN(len(s.keys))]
	pg := s.layout.PGFor([]byte(key))
	cands := w.core.ReadCandidates(pg, s.rng.IntN(volume.Copies))
	to := cands[0]
	if s.rng.IntN(4) == 0 {
		to = cands[s.rng.IntN(len(cands))]
	}
	s.reqID++
	at := w.core.VDL()
	w.reads[s.reqID] = pendingRead{key: key, at: at, hist: w.core.History()}
	s.stats.Reads++
	s.send(&redo.Message{Type: redo.MsgRead, From: w.id, To: to, ReqID: s.reqID, PG: pg, Epoch: w.epoch, ReadLSN: at, Need: w.core.Need(pg), Key: []byte(key)})
}

func (s *Sim) checkRead(w *writer, m *redo.Message) {
	pr, ok := w.reads[m.ReqID]
	if !ok {
		return
	}
	delete(w.reads, m.ReqID)
	want, wantOK := s.expected(pr.key, pr.at, pr.hist)
	got, gotOK := string(m.Value), m.Flags&redo.MFlagFound != 0
	s.stats.ReadChecks++
	if want != got || wantOK != gotOK {
		s.failf("read %q at %d from %s: got (%q,%v), want (%q,%v)", pr.key, pr.at, m.From, got, gotOK, want, wantOK)
	}
}

// chaos injects one random fault or repair.
func (s *Sim) chaos() {
	down := 0
	for _, n := range s.nodes {
		if !n.up {
			down++
		}
	}
	switch r := s.rng.IntN(100); {
	case r < 30: // crash a node, sometimes beyond an AZ so writes must stall
		if down < 2 || (down < 3 && s.rng.IntN(3) == 0) {
			i := s.rng.IntN(len(s.nodes))
			if s.nodes[i].up {
				s.crash(i, false)
			}
		}
	case r < 55: // restart a node, rarely from a wiped folder
		for _, i := range s.rng.Perm(len(s.nodes)) {
			if !s.nodes[i].up {
				if s.rng.IntN(6) == 0 && s.wipeSafe(i) {
					s.nodes[i].durable = nil
					s.stats.Wipes++
					s.logf("wipe %s", s.nodes[i].id)
				} else if s.rng.IntN(4) == 0 && s.wipeSafe(i) {
					s.corruptRecord(i)
				}
				s.restart(i)
				break
			}
		}
	case r < 65: // partition or heal an AZ
		if s.isolated == "" {
			s.isolated = fmt.Sprintf("az%d", 1+s.rng.IntN(azs))
			s.stats.Partitions++
		} else {
			s.isolated = ""
		}
		s.logf("isolated=%q", s.isolated)
	case r < 72: // fail the writer over; the old one is crashed or left running as a zombie
		if old := s.current; old != nil && (old.core != nil || s.rng.IntN(4) == 0) {
			if s.rng.IntN(2) == 0 {
				old.alive = false
			}
			s.stats.Failovers++
			w := s.newWriter(false)
			if s.rng.IntN(10) == 0 {
				// A confused control plane starts a second writer in the same round: epochs
				// embed the owner, and the seal rules must let at most one of them win.
				s.newWriterAt(w.round)
			}
		}
	}
}

// corruptRecord drops one durable record of node i, as the log loader does with an entry whose
// checksum fails: the node restarts with a hole that gossip must refill.
func (s *Sim) corruptRecord(i int) {
	n := s.nodes[i]
	var at [][2]int
	for c, chunk := range n.durable {
		for j := range chunk {
			if chunk[j].Kind == redo.EntryRecord {
				at = append(at, [2]int{c, j})
			}
		}
	}
	if len(at) == 0 {
		return
	}
	p := at[s.rng.IntN(len(at))]
	chunk := n.durable[p[0]]
	s.logf("corrupt %s record %d", n.id, chunk[p[1]].Record.LSN)
	n.durable[p[0]] = append(append([]redo.Entry(nil), chunk[:p[1]]...), chunk[p[1]+1:]...)
	s.stats.Corruptions++
}

// wipeSafe allows wiping node i only when every other segment is up, active and complete at
// the current writer's durable point: the quorum model tolerates losing one copy, not a copy
// while others are still catching up.
func (s *Sim) wipeSafe(i int) bool {
	w := s.current
	if w == nil || w.core == nil {
		return false
	}
	for j, n := range s.nodes {
		if j == i {
			continue
		}
		if !n.up {
			return false
		}
		for pg := 0; pg < s.layout.PGs(); pg++ {
			seg := n.core.Segment(uint32(pg))
			if seg == nil || !seg.Meta().Active || seg.SCL() < w.core.Need(uint32(pg)) || seg.Meta().Epoch != w.epoch {
				return false
			}
		}
	}
	return true
}

func (s *Sim) step(e *event) {
	s.now = e.at
	s.stats.Events++
	switch e.kind {
	case evDeliver:
		s.deliver(e.msg)
	case evFsync:
		s.fsync(e.node)
	case evNodeTick:
		n := s.nodes[e.node]
		if n.up {
			s.nodeOutput(e.node, n.core.Tick())
			s.schedule(10, &event{kind: evNodeTick, node: e.node})
		}
	case evWriterTick:
		w := e.w
		if !w.alive {
			return
		}
		if w.rec != nil {
			for _, m := range w.rec.Tick() {
				s.send(m)
			}
			s.writerStepped(w)
		} else {
			for _, m := range w.core.Tick() {
				s.send(m)
			}
			if err := w.core.Fenced(); err != nil {
				s.logf("writer %s fenced: %v", w.id, err)
			}
		}
		s.schedule(10, &event{kind: evWriterTick, w: w})
	case evPropose:
		if s.quiesce {
			return
		}
		if !s.healed || e.w == s.current {
			s.propose(e.w)
		}
		if e.w.alive && (!s.healed || len(e.w.txns) < 1000) {
			s.schedule(1+int64(s.rng.IntN(8)), &event{kind: evPropose, w: e.w})
		}
	case evRead:
		s.issueRead(e.w)
		if e.w.alive {
			s.schedule(3+int64(s.rng.IntN(10)), &event{kind: evRead, w: e.w})
		}
	case evChaos:
		if !s.healed {
			s.chaos()
			s.schedule(20+int64(s.rng.IntN(80)), &event{kind: evChaos})
		}
	}
}

func (s *Sim) runUntil(t int64, stop func() bool) {
	for len(s.q) > 0 && s.q[0].at <= t {
		if stop != nil && stop() {
			return
		}
		s.step(heap.Pop(&s.q).(*event))
		if s.stats.Events > 2_000_000 {
			s.failf("event budget exhausted at %dms", s.now)
			return
		}
	}
	s.now = max(s.now, t)
}

// Run executes the schedule and its final checks, returning every violation found.
func (s *Sim) Run() error {
	s.newWriter(true)
	s.runUntil(s.now+200, func() bool { return s.current.core != nil })
	if s.current.core == nil {
		s.failf("volume creation did not finish")
		return s.result()
	}
	s.schedule(50, &event{kind: evChaos})
	s.runUntil(s.cfg.Duration, nil)

	// Heal everything, then a final writer must recover, commit, and every copy must converge.
	s.healed = true
	s.isolated = ""
	s.dropP, s.dupP = 0, 0
	for i := range s.nodes {
		s.restart(i)
	}
	for _, w := range s.writers {
		w.alive = false
	}
	fw := s.newWriter(false)
	deadline := s.now + 30_000
	s.runUntil(deadline, func() bool { return fw.core != nil && len(fw.txns) >= 5 && fw.core.VDL() >= fw.txns[4].commit })
	if fw.core == nil {
		s.failf("final recovery did not finish (alive=%v)", fw.alive)
		return s.result()
	}
	if len(fw.txns) < 5 || fw.core.VDL() < fw.txns[4].commit {
		s.failf("final writer could not commit: %s", fw.core.QuorumReport())
		return s.result()
	}
	// Stop proposing, let the in-flight commits settle, then wait for every copy to converge.
	s.quiesce = true
	s.runUntil(s.now+1_000, nil)
	vdl := fw.core.VDL()
	s.runUntil(s.now+30_000, func() bool { return s.converged(fw, vdl) == "" })
	if why := s.converged(fw, vdl); why != "" {
		s.failf("segments did not converge after healing: %s", why)
	}
	s.finalChecks(fw, vdl)
	s.stats.FinalVDL, s.stats.FinalEpoch = vdl, fw.epoch
	return s.result()
}

// converged reports why the copies do not yet agree at vdl ("" when they do).
func (s *Sim) converged(fw *writer, vdl redo.LSN) string {
	for _, n := range s.nodes {
		for pg := 0; pg < s.layout.PGs(); pg++ {
			seg := n.core.Segment(uint32(pg))
			switch {
			case seg == nil:
				return fmt.Sprintf("%s hosts no PG %d", n.id, pg)
			case !seg.Meta().Active:
				return fmt.Sprintf("%s PG %d still rebuilding", n.id, pg)
			case seg.Meta().History.Latest() != fw.epoch:
				return fmt.Sprintf("%s PG %d at epoch %d, want %d", n.id, pg, seg.Meta().History.Latest(), fw.epoch)
			case seg.SCL() < fw.core.Need(uint32(pg)):
				return fmt.Sprintf("%s PG %d SCL %d below %d", n.id, pg, seg.SCL(), fw.core.Need(uint32(pg)))
			}
		}
	}
	return ""
}

func (s *Sim) finalChecks(fw *writer, vdl redo.LSN) {
	h := fw.core.History()
	for _, t := range s.acked {
		if t.commit > vdl || h.Garbage(t.epoch, t.commit) {
			s.failf("acked commit %d (epoch %d, %s) lost: final VDL %d, history %v", t.commit, t.epoch, t.writer, vdl, h)
		}
	}
	// Every copy shows exactly the committed prefix at the final VDL, and a few older points.
	points := []redo.LSN{vdl}
	for i := 0; i < 3; i++ {
		if len(s.acked) > 0 {
			points = append(points, s.acked[s.rng.IntN(len(s.acked))].commit)
		}
	}
	for _, at := range points {
		for _, key := range s.keys {
			want, wantOK := s.expected(key, at, h)
			pg := s.layout.PGFor([]byte(key))
			for _, n := range s.nodes {
				out := n.core.Step(&redo.Message{Type: redo.MsgRead, From: "check", To: n.id, PG: pg, Epoch: fw.epoch, ReadLSN: at, Need: fw.core.Need(pg), Key: []byte(key)})
				if len(out.Send) != 1 {
					s.failf("read on %s gave %d messages", n.id, len(out.Send))
					continue
				}
				m := out.Send[0]
				if m.Type == redo.MsgReject {
					if m.Code == redo.RejectBelowHorizon && at < vdl {
						continue
					}
					s.failf("final read %q at %d on %s rejected: %s", key, at, n.id, m.Err)
					continue
				}
				got, gotOK := string(m.Value), m.Flags&redo.MFlagFound != 0
				s.stats.ReadChecks++
				if got != want || gotOK != wantOK {
					s.failf("final read %q at %d on %s: got (%q,%v), want (%q,%v)", key, at, n.id, got, gotOK, want, wantOK)
				}
			}
		}
	}
}

func (s *Sim) result() error {
	if len(s.errs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("seed %d: %s", s.cfg.Seed, strings.Join(s.errs, "; "))
	if s.cfg.Trace {
		tail := s.trace
		if len(tail) > 400 {
			tail = tail[len(tail)-400:]
		}
		msg += "\ntrace:\n" + strings.Join(tail, "\n")
	}
	return errors.New(msg)
}

// Stats returns the run's counters.
func (s *Sim) Stats() Stats { return s.stats }
