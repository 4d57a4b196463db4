package volume

import (
	"errors"
	"fmt"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// Errors of the writer core.
var (
	ErrFenced       = errors.New("volume: writer fenced by a newer epoch")
	ErrBackpressure = errors.New("volume: too many LSNs in flight")
)

// Op is one write of a transaction.
type Op struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// WriterConfig tunes the writer core.
type WriterConfig struct {
	ID string // the writer's address for replies
	// MaxInflight bounds LSNs allocated above VDL (Aurora's LSN allocation limit). Recovery relies
	// on it: a new epoch starts its LSNs above every LSN a fenced writer could have allocated.
	MaxInflight redo.LSN
	// MaxBatch bounds the records of one append message.
	MaxBatch int
	// RetryTicks is how many ticks without an ack pass before records are resent to a segment.
	RetryTicks int
	// HeartbeatTicks is how often every segment of every PG is probed, busy or not.
	HeartbeatTicks int
	// WriteQuorum is how many segments of a PG must hold a record before it counts as durable.
	// 0 means the volume's WriteQuorum; anything lower is the unsafe ack-3of6 mode (a commit
	// acknowledged there need not intersect a later recovery's read quorum).
	WriteQuorum int
}

func (c *WriterConfig) fill() {
	if c.MaxInflight == 0 {
		c.MaxInflight = 1 << 16
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 512
	}
	if c.RetryTicks == 0 {
		c.RetryTicks = 2
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 25
	}
	if c.WriteQuorum == 0 {
		c.WriteQuorum = WriteQuorum
	}
}

type pgState struct {
	id       uint32
	segs     []string
	scl      []redo.LSN // last SCL each segment acknowledged in this epoch
	sent     []redo.LSN // highest LSN sent to each segment
	lastAck  []int      // tick of each segment's last ack
	install  []bool     // an Install was sent to the segment this tick
	last     redo.LSN   // last LSN allocated in this PG (the next record's back-link)
	durable  redo.LSN   // last LSN of this PG on a write quorum (PGCL)
	buf      []redo.Record
	dirty    bool
	segIndex map[string]int
}

type pendingLSN struct {
	lsn    redo.LSN
	pg     uint32
	commit bool
}

// Writer is the pure core of a volume writer in one epoch.
type Writer struct {
	cfg     WriterConfig
	layout  Layout
	epoch   uint64
	history redo.History
	next    redo.LSN
	floor   redo.LSN // Start-1: the in-flight bound counts from here until VDL passes it
	vcl     redo.LSN
	vdl     redo.LSN
	pending []pendingLSN
	pgs     []*pgState
	fenced  error
	ticks   int
	out     []*redo.Message
	minRead redo.LSN
}

// RecoveredState is what recovery hands to the writer of the new epoch.
type RecoveredState struct {
	Epoch   uint64
	History redo.History
	Start   redo.LSN   // first LSN the new writer allocates
	VDL     redo.LSN   // the recovered durable point
	Tails   []redo.LSN // per PG: last record at or below VDL
	SCLs    [][]redo.LSN
}

// NewWriter returns the core of a writer that starts from a recovered (or freshly created) state.
func NewWriter(cfg WriterConfig, layout Layout, st RecoveredState) *Writer {
	cfg.fill()
	w := &Writer{cfg: cfg, layout: layout, epoch: st.Epoch, history: st.History.Clone(), next: st.Start, floor: st.Start - 1, vcl: st.VDL, vdl: st.VDL}
	for i := 0; i < layout.PGs(); i++ {
		segs := layout.Segments(uint32(i))
		p := &pgState{id: uint32(i), segs: segs, scl: make([]redo.LSN, len(segs)), sent: make([]redo.LSN, len(segs)),
			lastAck: make([]int, len(segs)), install: make([]bool, len(segs)), segIndex: map[string]int{}}
		for j, s := range segs {
			p.segIndex[s] = j
		}
		if i < len(st.Tails) {
			p.last, p.durable = st.Tails[i], st.Tails[i]
		}
		if i < len(st.SCLs) {
			copy(p.scl, st.SCLs[i])
		}
		for j := range p.sent {
			p.sent[j] = max(p.scl[j], p.durable)
		}
		w.pgs = append(w.pgs, p)
	}
	return w
}

// Epoch is the writer's epoch.
func (w *Writer) Epoch() uint64 { return w.epoch }

// History is the epoch history the writer installed.
func (w *Writer) History() redo.History { return w.history.Clone() }

// VDL is the volume durable LSN: every commit at or below it is acknowledged-safe.
func (w *Writer) VDL() redo.LSN { return w.vdl }

// VCL is the volume complete LSN.
func (w *Writer) VCL() redo.LSN { return w.vcl }

// NextLSN is the next LSN the writer will allocate.
func (w *Writer) NextLSN() redo.LSN { return w.next }

// Fenced returns the error that stopped the writer, if a newer epoch fenced it.
func (w *Writer) Fenced() error { return w.fenced }

// Propose allocates consecutive LSNs for a transaction's writes and queues them for sending.
// It returns the commit LSN: the transaction is durable once VDL reaches it.
func (w *Writer) Propose(ops []Op) (redo.LSN, error) {
	if w.fenced != nil {
		return 0, w.fenced
	}
	if len(ops) == 0 {
		return 0, errors.New("volume: empty transaction")
	}
	for _, op := range ops {
		if len(op.Key) == 0 || len(op.Key) > redo.MaxKeyLen || len(op.Value) > redo.MaxValueLen {
			return 0, fmt.Errorf("volume: key of %d bytes or value of %d bytes out of bounds", len(op.Key), len(op.Value))
		}
	}
	if w.next-1+redo.LSN(len(ops))-max(w.vdl, w.floor) > w.cfg.MaxInflight {
		if len(ops) > int(w.cfg.MaxInflight) {
			return 0, fmt.Errorf("volume: transaction of %d writes exceeds the in-flight limit %d", len(ops), w.cfg.MaxInflight)
		}
		return 0, ErrBackpressure
	}
	commit := w.next + redo.LSN(len(ops)) - 1
	for _, op := range ops {
		p := w.pgs[w.layout.PGFor(op.Key)]
		r := redo.Record{LSN: w.next, Epoch: w.epoch, PG: p.id, PrevLSN: p.last, CommitLSN: commit,
			Key: append([]byte(nil), op.Key...)}
		if op.Delete {
			r.Flags |= redo.FlagTombstone
		} else {
			r.Value = append([]byte{}, op.Value...)
		}
		if r.LSN == commit {
			r.Flags |= redo.FlagCommit
		}
		p.last = r.LSN
		p.buf = append(p.buf, r)
		p.dirty = true
		w.pending = append(w.pending, pendingLSN{lsn: r.LSN, pg: p.id, commit: r.LSN == commit})
		w.next++
	}
	return commit, nil
}

// Ready returns the messages to send now: appends of records not yet sent to each segment.
func (w *Writer) Ready() []*redo.Message {
	for _, p := range w.pgs {
		if p.dirty {
			w.flush(p)
		}
	}
	out := w.out
	w.out = nil
	return out
}

func (w *Writer) flush(p *pgState) {
	p.dirty = false
	for j, seg := range p.segs {
		i := 0
		for i < len(p.buf) && p.buf[i].LSN <= p.sent[j] {
			i++
		}
		for i < len(p.buf) {
			end := min(len(p.buf), i+w.cfg.MaxBatch)
			m := &redo.Message{Type: redo.MsgAppend, From: w.cfg.ID, To: seg, PG: p.id, Epoch: w.epoch, Hint: w.vdl, Floor: w.minRead}
			m.Records = append([]redo.Record(nil), p.buf[i:end]...)
			w.out = append(w.out, m)
			p.sent[j] = p.buf[end-1].LSN
			i = end
		}
	}
}

// Step handles a message from a segment.
func (w *Writer) Step(m *redo.Message) {
	if int(m.PG) >= len(w.pgs) {
		return
	}
	p := w.pgs[m.PG]
	j, ok := p.segIndex[m.From]
	if !ok {
		return
	}
	switch m.Type {
	case redo.MsgAppendAck, redo.MsgInstallAck:
		if m.Epoch != w.epoch {
			return
		}
		p.lastAck[j] = w.ticks
		if m.SCL > p.scl[j] {
			p.scl[j] = m.SCL
			p.sent[j] = max(p.sent[j], m.SCL)
			w.advance()
		}
	case redo.MsgReject:
		switch m.Code {
		case redo.RejectStaleEpoch:
			if m.Epoch > w.epoch && w.fenced == nil {
				w.fenced = fmt.Errorf("%w: segment %s of PG %d is at epoch %d, writer at %d", ErrFenced, m.From, m.PG, m.Epoch, w.epoch)
			}
		case redo.RejectNeedInstall:
			if !p.install[j] && w.fenced == nil {
				p.install[j] = true
				im := &redo.Message{Type: redo.MsgInstall, From: w.cfg.ID, To: m.From, PG: p.id, Epoch: w.epoch,
					History: w.history.Clone(), Peers: append([]redo.Peer(nil), w.layout.Nodes...), Hint: w.vdl}
				im.Records = append([]redo.Record(nil), p.buf...)
				w.out = append(w.out, im)
			}
		}
	}
}

// advance moves VCL over every pending LSN that a write quorum of its PG holds, and VDL to the
// last commit passed.
func (w *Writer) advance() {
	i := 0
	for ; i < len(w.pending); i++ {
		pl := w.pending[i]
		p := w.pgs[pl.pg]
		n := 0
		for _, s := range p.scl {
			if s >= pl.lsn {
				n++
			}
		}
		if n < w.cfg.WriteQuorum {
			break
		}
		w.vcl = pl.lsn
		p.durable = pl.lsn
		if pl.commit {
			w.vdl = pl.lsn
		}
	}
	if i == 0 {
		return
	}
	w.pending = append(w.pending[:0], w.pending[i:]...)
	for _, p := range w.pgs {
		k := 0
		for k < len(p.buf) && p.buf[k].LSN <= p.durable {
			k++
		}
		if k > 0 {
			p.buf = append(p.buf[:0], p.buf[k:]...)
		}
	}
}

// Tick resends records to segments that have not acknowledged for RetryTicks ticks, and probes
// segments that lag so they report their SCL and learn the VDL (which starts their gossip).
func (w *Writer) Tick() []*redo.Message {
	w.ticks++
	heartbeat := w.ticks%w.cfg.HeartbeatTicks == 0
	for _, p := range w.pgs {
		for j := range p.segs {
			p.install[j] = false
			if heartbeat {
				// Even an idle PG hears from its writer now and then: a wiped node learns it
				// must host the segment, a lagging one learns the VDL.
				w.out = append(w.out, &redo.Message{Type: redo.MsgAppend, From: w.cfg.ID, To: p.segs[j], PG: p.id, Epoch: w.epoch, Hint: w.vdl, Floor: w.minRead})
				continue
			}
			if w.ticks-p.lastAck[j] < w.cfg.RetryTicks {
				continue
			}
			if p.scl[j] < p.last {
				p.sent[j] = p.scl[j]
				p.dirty = true
				if len(p.buf) == 0 || p.buf[len(p.buf)-1].LSN <= p.scl[j] {
					// Nothing left to resend: an empty append reports the segment's SCL back and
					// tells it the VDL, so it gossips for what it misses.
					w.out = append(w.out, &redo.Message{Type: redo.MsgAppend, From: w.cfg.ID, To: p.segs[j], PG: p.id, Epoch: w.epoch, Hint: w.vdl, Floor: w.minRead})
				}
			}
		}
	}
	return w.Ready()
}

// SetMinReadPoint tells storage the oldest read point still in use (0: none), so GC keeps every
// version it can see even beyond the history window. It travels with every append.
func (w *Writer) SetMinReadPoint(l redo.LSN) { w.minRead = l }

// Need is the SCL a segment of pg must have to serve a read at the writer's VDL.
func (w *Writer) Need(pg uint32) redo.LSN { return w.pgs[pg].durable }

// ReadCandidates lists pg's segments known to be complete at Need(pg), then the others. The
// complete ones are rotated by spread so that reads share the load.
func (w *Writer) ReadCandidates(pg uint32, spread int) []string {
	p := w.pgs[pg]
	var good, rest []string
	for j, s := range p.segs {
		if p.scl[j] >= p.durable {
			good = append(good, s)
		} else {
			rest = append(rest, s)
		}
	}
	if n := len(good); n > 1 {
		k := spread % n
		if k < 0 {
			k += n
		}
		good = append(good[k:], good[:k]...)
	}
	return append(good, rest...)
}

// QuorumReport describes, per PG with records waiting, how many segments hold the oldest one:
// the reason a commit cannot complete.
func (w *Writer) QuorumReport() string {
	if len(w.pending) == 0 {
		return "no records waiting"
	}
	pl := w.pending[0]
	p := w.pgs[pl.pg]
	n := 0
	for _, s := range p.scl {
		if s >= pl.lsn {
			n++
		}
	}
	return fmt.Sprintf("LSN %d of PG %d is on %d of %d segments, write quorum is %d", pl.lsn, pl.pg, n, len(p.segs), w.cfg.WriteQuorum)
}
