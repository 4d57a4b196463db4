package volume

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// ErrNoVolume means no segment of the volume exists: it was never created.
var ErrNoVolume = errors.New("volume: no segment hosts the volume")

// Recovery is the pure core that opens a volume for a new writer: seal a read quorum of every
// PG at the new epoch (which fences any older writer), compute the VDL from the union of what
// they hold, then install the new epoch with its truncation on a write quorum of every PG,
// re-replicating the records at or below the VDL so each PG holds them on a write quorum.
type Recovery struct {
	id      string
	layout  Layout
	epoch   uint64
	lal     redo.LSN
	create  bool
	phase   int // 0 sealing, 1 installing, 2 done
	err     error
	pgs     []*recPG
	history redo.History
	vdl     redo.LSN
	base    redo.LSN // a VDL some writer reported: durable on a write quorum
	start   redo.LSN
	ticks   int
	seen    uint64 // highest epoch a rejection reported
	// noTruncate is the unsafe no-truncation mode: the new epoch is installed without
	// discarding the older epochs' records above the VDL.
	noTruncate bool
}

type recPG struct {
	segs      []string
	seals     map[string]*redo.Message
	notHosted map[string]bool
	refused   map[string]bool
	acked     map[string]redo.LSN
	tail      redo.LSN
	recs      []redo.Record
}

// Epochs are (round, owner) pairs packed into a uint64: the round in the high bits, a hash of
// the recovering writer's id in the low ownerBits. Two writers therefore never recover at the
// same epoch even when a confused control plane hands them the same round, and the usual
// "higher epoch fences lower" rule settles between them.
const ownerBits = 24

// EpochFor is the epoch writer id uses for recovery round round.
func EpochFor(round uint64, id string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return round<<ownerBits | uint64(h.Sum32())&(1<<ownerBits-1)
}

// EpochRound is the round of an epoch.
func EpochRound(epoch uint64) uint64 { return epoch >> ownerBits }

// NewRecovery starts recovery of an existing volume in the given round (one above the round of
// the highest epoch the caller knows; a newer epoch found while sealing fails recovery with
// ErrFenced so the caller can retry above it). lal is the writers' MaxInflight.
func NewRecovery(id string, layout Layout, round uint64, lal redo.LSN) *Recovery {
	r := &Recovery{id: id, layout: layout, epoch: EpochFor(round, id), lal: lal}
	for i := 0; i < layout.PGs(); i++ {
		r.pgs = append(r.pgs, &recPG{segs: layout.Segments(uint32(i)), seals: map[string]*redo.Message{},
			notHosted: map[string]bool{}, refused: map[string]bool{}, acked: map[string]redo.LSN{}})
	}
	return r
}

// NewCreate bootstraps a new, empty volume at epoch 1: it installs the first epoch on every
// segment with the create flag and finishes once a write quorum of every PG has it.
func NewCreate(id string, layout Layout) *Recovery {
	r := NewRecovery(id, layout, 1, 0)
	r.create = true
	r.phase = 1
	r.history = redo.History{{Epoch: r.epoch, Trunc: 0, Start: 1, Owner: id}}
	r.start = 1
	return r
}

// Epoch is the epoch being installed.
func (r *Recovery) Epoch() uint64 { return r.epoch }

// UnsafeSkipTruncation makes the recovery install its epoch without truncating the records
// above the VDL: they stay on the segments that hold them and become visible once the new
// writer's VDL passes them. It breaks invariant 2 on purpose (the unsafe no-truncation mode).
func (r *Recovery) UnsafeSkipTruncation() { r.noTruncate = true }

// Done reports whether recovery finished, and its error.
func (r *Recovery) Done() (bool, error) { return r.phase == 2 || r.err != nil, r.err }

// Start returns the first messages.
func (r *Recovery) Start() []*redo.Message { return r.resend() }

// Tick resends to segments that have not answered.
func (r *Recovery) Tick() []*redo.Message {
	r.ticks++
	return r.resend()
}

func (r *Recovery) resend() []*redo.Message {
	var out []*redo.Message
	if r.err != nil {
		return nil
	}
	for i, p := range r.pgs {
		for _, s := range p.segs {
			switch r.phase {
			case 0:
				if p.seals[s] == nil && !p.notHosted[s] && !p.refused[s] {
					out = append(out, &redo.Message{Type: redo.MsgSeal, From: r.id, To: s, PG: uint32(i), Epoch: r.epoch})
				}
			case 1:
				if _, ok := p.acked[s]; !ok {
					out = append(out, r.installMsg(uint32(i), s))
				}
			}
		}
	}
	return out
}

func (r *Recovery) installMsg(pg uint32, to string) *redo.Message {
	m := &redo.Message{Type: redo.MsgInstall, From: r.id, To: to, PG: pg, Epoch: r.epoch, History: r.history.Clone(),
		Peers: append([]redo.Peer(nil), r.layout.Nodes...), Hint: r.base}
	if r.create {
		m.Flags |= redo.MFlagCreate
	}
	m.Records = append([]redo.Record(nil), r.pgs[pg].recs...)
	return m
}

// Step handles a segment's answer and returns messages to send.
func (r *Recovery) Step(m *redo.Message) []*redo.Message {
	if r.err != nil || r.phase == 2 || int(m.PG) >= len(r.pgs) {
		return nil
	}
	p := r.pgs[m.PG]
	known := false
	for _, s := range p.segs {
		known = known || s == m.From
	}
	if !known {
		return nil
	}
	if m.Type == redo.MsgReject && m.Code == redo.RejectStaleEpoch && m.Epoch == r.epoch && redo.MsgType(m.Limit) == redo.MsgSeal {
		// Our epoch is sealed there by someone else (or by us before the segment restarted):
		// that copy does not count toward our read quorum. Only an install decides who owns an
		// epoch; if too few copies are left to seal, give way so the caller retries higher.
		p.refused[m.From] = true
		if len(p.segs)-len(p.refused)-len(p.notHosted) < ReadQuorum && len(p.seals) < ReadQuorum {
			r.seen = max(r.seen, m.Epoch)
			r.err = fmt.Errorf("%w: epoch %d is sealed by another recovery on too many segments of PG %d", ErrFenced, r.epoch, m.PG)
		}
		return nil
	}
	if m.Type == redo.MsgReject && m.Code == redo.RejectStaleEpoch &&
		(m.Epoch > r.epoch || m.Epoch == r.epoch && redo.MsgType(m.Limit) == redo.MsgInstall) {
		// A newer epoch, or another recovery's history installed at ours: give way.
		r.seen = max(r.seen, m.Epoch)
		r.err = fmt.Errorf("%w: segment %s of PG %d is at epoch %d, recovery at %d", ErrFenced, m.From, m.PG, m.Epoch, r.epoch)
		return nil
	}
	if r.create && m.Type == redo.MsgReject && m.Code == redo.RejectBadRequest {
		r.err = fmt.Errorf("volume: create on segment %s of PG %d: %s", m.From, m.PG, m.Err)
		return nil
	}
	switch r.phase {
	case 0:
		switch {
		case m.Type == redo.MsgSealResp && m.Epoch == r.epoch:
			p.seals[m.From] = m
		case m.Type == redo.MsgReject && m.Code == redo.RejectNotHosted:
			p.notHosted[m.From] = true
		}
		if r.allNotHosted() {
			r.err = ErrNoVolume
			return nil
		}
		for _, q := range r.pgs {
			if len(q.seals) < ReadQuorum {
				return nil
			}
		}
		r.compute()
		if r.err != nil {
			return nil
		}
		r.phase = 1
		return r.resend()
	case 1:
		if m.Type == redo.MsgInstallAck && m.Epoch == r.epoch && m.SCL >= p.tail {
			p.acked[m.From] = m.SCL
			for _, q := range r.pgs {
				if len(q.acked) < WriteQuorum {
					return nil
				}
			}
			r.phase = 2
		}
	}
	return nil
}

func (r *Recovery) allNotHosted() bool {
	for _, p := range r.pgs {
		if len(p.notHosted) < len(p.segs) {
			return false
		}
	}
	return true
}

// compute derives the VDL from the sealed read quorums. Every record on a write quorum is in
// the union (read and write quorums intersect), and LSNs are dense within an epoch, so the
// highest LSN below which every LSN is present (or in a range a truncation left unallocated)
// is the volume complete LSN; the VDL is the last commit at or below it.
func (r *Recovery) compute() {
	var h redo.History
	var base, maxSeen redo.LSN
	for _, p := range r.pgs {
		for _, s := range p.segs {
			if m := p.seals[s]; m != nil && m.History.Newer(h) {
				h = m.History
			}
		}
	}
	union := map[redo.LSN]*redo.Record{}
	for _, p := range r.pgs {
		for _, s := range p.segs {
			m := p.seals[s]
			if m == nil {
				continue
			}
			base = max(base, m.Hint)
			maxSeen = max(maxSeen, m.SCL)
			for i := range m.Records {
				rec := &m.Records[i]
				maxSeen = max(maxSeen, rec.LSN)
				if rec.Epoch > h.Latest() || h.Garbage(rec.Epoch, rec.LSN) {
					continue
				}
				if _, ok := union[rec.LSN]; !ok {
					union[rec.LSN] = rec
				}
			}
		}
	}
	vdl, l := base, base
	for {
		if rec, ok := union[l+1]; ok {
			l++
			if rec.IsCommit() {
				vdl = l
			}
			continue
		}
		if end, ok := h.Gap(l + 1); ok {
			l = end - 1
			continue
		}
		break
	}
	if h.Latest() >= r.epoch {
		// Our epoch is already installed (an earlier run of this same writer recovered at this
		// round and then died: a segment lets the same owner re-seal its own epoch). Installing
		// it again would make a history whose epochs do not increase, which every segment
		// refuses: give way and retry in a round above it.
		r.seen = max(r.seen, h.Latest())
		r.err = fmt.Errorf("%w: epoch %d is already installed (history up to %d); recovering above it", ErrFenced, r.epoch, h.Latest())
		return
	}
	lastStart := redo.LSN(0)
	if len(h) > 0 {
		lastStart = h[len(h)-1].Start
	}
	r.vdl = vdl
	// A writer of any earlier epoch allocates at most MaxInflight LSNs above max(its VDL, its
	// start - 1); its VDL is at most the one computed here once the seal fenced it.
	r.start = max(maxSeen, max(vdl, lastStart-1)+r.lal) + 1
	trunc := vdl
	if r.noTruncate {
		trunc = r.start - 1 // nothing below the new epoch's first LSN is discarded
	}
	r.history = append(h.Clone(), redo.EpochEntry{Epoch: r.epoch, Trunc: trunc, Start: r.start, Owner: r.id})
	for i, p := range r.pgs {
		for _, s := range p.segs {
			if m := p.seals[s]; m != nil {
				p.tail = max(p.tail, m.Tail)
			}
		}
		for _, rec := range union {
			if rec.PG == uint32(i) && rec.LSN <= vdl {
				p.recs = append(p.recs, *rec)
				p.tail = max(p.tail, rec.LSN)
			}
		}
		sort.Slice(p.recs, func(a, b int) bool { return p.recs[a].LSN < p.recs[b].LSN })
	}
}

// State returns the recovered state for the new writer; valid once Done reports success.
func (r *Recovery) State() RecoveredState {
	st := RecoveredState{Epoch: r.epoch, History: r.history.Clone(), Start: r.start, VDL: r.vdl}
	for _, p := range r.pgs {
		st.Tails = append(st.Tails, p.tail)
		scls := make([]redo.LSN, len(p.segs))
		for j, s := range p.segs {
			scls[j] = p.acked[s]
		}
		st.SCLs = append(st.SCLs, scls)
	}
	return st
}

// MaxEpochSeen is the highest epoch any segment reported, for choosing the next attempt's epoch.
func (r *Recovery) MaxEpochSeen() uint64 {
	e := max(r.epoch, r.seen)
	for _, p := range r.pgs {
		for _, m := range p.seals {
			e = max(e, m.Epoch, m.History.Latest())
		}
	}
	return e
}
