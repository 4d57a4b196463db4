package storage

import (
	"sort"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// Config tunes a node's core.
type Config struct {
	ID string
	// GCWindow is how many LSNs below the writer's VDL stay readable (the Backtrack window).
	// Older versions that a newer version supersedes are collected.
	GCWindow redo.LSN
	// GossipBatch bounds the records of one gossip answer.
	GossipBatch int
	// RebuildVotes is how many active peers a segment created empty must hear from before it
	// acknowledges anything: 4 of the 5 peers, so that it learns any epoch sealed on a read quorum
	// and a fenced writer cannot use it to reach a write quorum.
	RebuildVotes int
	// GossipEvery is how many ticks pass between gossip rounds of a segment with no known hole.
	GossipEvery int
	// GCEvery is how many ticks pass between garbage collections.
	GCEvery int
	// HintPersistEvery is how far the writer's VDL hint may run ahead of its persisted copy.
	HintPersistEvery redo.LSN
	// UnsafeNoEpochFencing is the unsafe no-epoch-fencing mode: appends of a stale epoch are
	// not rejected but acknowledged at their own epoch, so a replaced writer keeps committing.
	// It breaks invariant 3 on purpose.
	UnsafeNoEpochFencing bool
}

func (c *Config) fill() {
	if c.GCWindow == 0 {
		c.GCWindow = 1 << 20
	}
	if c.GossipBatch == 0 {
		c.GossipBatch = 1024
	}
	if c.RebuildVotes == 0 {
		c.RebuildVotes = 4
	}
	if c.GossipEvery == 0 {
		c.GossipEvery = 10
	}
	if c.GCEvery == 0 {
		c.GCEvery = 20
	}
	if c.HintPersistEvery == 0 {
		c.HintPersistEvery = 4096
	}
}

// Node is the pure core of a storage node: every hosted segment, keyed by PG.
type Node struct {
	cfg   Config
	segs  map[uint32]*Segment
	pgs   []uint32 // sorted, for deterministic iteration
	ticks int
}

// NewNode returns an empty node (a new or wiped data folder).
func NewNode(cfg Config) *Node {
	cfg.fill()
	return &Node{cfg: cfg, segs: map[uint32]*Segment{}}
}

// Restore rebuilds a node from the entries of its durable log, in log order.
func Restore(cfg Config, entries []redo.Entry) *Node {
	n := NewNode(cfg)
	for i := range entries {
		e := &entries[i]
		switch e.Kind {
		case redo.EntryMeta:
			s := n.segs[e.Meta.PG]
			if s == nil {
				s = n.create(e.Meta)
			}
			s.meta = e.Meta
			s.meta.History = e.Meta.History.Clone()
			s.hintPersist = e.Meta.Hint
		case redo.EntryRecord:
			if s := n.segs[e.Record.PG]; s != nil {
				// Filtering by history happens once at the end: a record may precede the meta
				// entry that installs its epoch only if both were in one batch.
				if _, ok := s.recs[e.Record.LSN]; !ok {
					c := e.Record.Clone()
					s.recs[c.LSN] = &c
				}
			}
		case redo.EntryDrop:
			if s := n.segs[e.Record.PG]; s != nil {
				delete(s.recs, e.Record.LSN)
			}
		}
	}
	for _, pg := range n.pgs {
		s := n.segs[pg]
		recs := s.recs
		s.recs = map[redo.LSN]*redo.Record{}
		lsns := make([]redo.LSN, 0, len(recs))
		for l := range recs {
			lsns = append(lsns, l)
		}
		sort.Slice(lsns, func(i, j int) bool { return lsns[i] < lsns[j] })
		for _, l := range lsns {
			s.add(recs[l])
		}
		s.tail = s.meta.BaseTail
		s.rewalk()
	}
	return n
}

func (n *Node) create(meta redo.SegMeta) *Segment {
	s := newSegment(&n.cfg, meta)
	n.segs[meta.PG] = s
	i := sort.Search(len(n.pgs), func(i int) bool { return n.pgs[i] >= meta.PG })
	n.pgs = append(n.pgs, 0)
	copy(n.pgs[i+1:], n.pgs[i:])
	n.pgs[i] = meta.PG
	return s
}

// Segment returns the hosted segment of pg, or nil.
func (n *Node) Segment(pg uint32) *Segment { return n.segs[pg] }

// PGs lists the hosted protection groups in order.
func (n *Node) PGs() []uint32 { return append([]uint32(nil), n.pgs...) }

// ID is the node's identity.
func (n *Node) ID() string { return n.cfg.ID }

func (n *Node) reply(m *redo.Message, t redo.MsgType) *redo.Message {
	return &redo.Message{Type: t, From: n.cfg.ID, To: m.From, ReqID: m.ReqID, PG: m.PG}
}

func (n *Node) reject(m *redo.Message, code redo.RejectCode, epoch uint64, why string) Output {
	r := n.reply(m, redo.MsgReject)
	r.Code, r.Epoch, r.Err = code, epoch, why
	r.Limit = uint32(m.Type) // which request was refused
	return Output{Send: []*redo.Message{r}}
}

// Step handles one message.
func (n *Node) Step(m *redo.Message) Output {
	if m.Type == redo.MsgStatus {
		r := n.reply(m, redo.MsgStatusResp)
		for _, pg := range n.pgs {
			s := n.segs[pg]
			r.Status = append(r.Status, redo.SegStatus{PG: pg, Epoch: s.meta.Epoch, SCL: s.SCL(), Active: s.meta.Active, Records: uint64(len(s.order))})
		}
		return Output{Send: []*redo.Message{r}}
	}
	s := n.segs[m.PG]
	if s == nil {
		if m.Type == redo.MsgInstall {
			return n.install(nil, m)
		}
		switch m.Type {
		case redo.MsgAppend, redo.MsgRead:
			return n.reject(m, redo.RejectNeedInstall, 0, "PG not hosted")
		case redo.MsgSeal:
			return n.reject(m, redo.RejectNotHosted, 0, "PG not hosted")
		}
		return Output{} // gossip for a PG this node does not host: nothing to say
	}
	switch m.Type {
	case redo.MsgAppend:
		return n.append(s, m)
	case redo.MsgSeal:
		return n.seal(s, m)
	case redo.MsgInstall:
		return n.install(s, m)
	case redo.MsgGossipReq:
		return n.gossipReq(s, m)
	case redo.MsgGossipResp:
		return n.gossipResp(s, m)
	case redo.MsgRead:
		return n.read(s, m)
	}
	return n.reject(m, redo.RejectBadRequest, s.meta.Epoch, "unexpected "+m.Type.String())
}

// checkEpoch applies the epoch rules of writes: older epochs are fenced; an epoch the segment
// has not had installed needs an Install first.
func (n *Node) checkEpoch(s *Segment, m *redo.Message) (Output, bool) {
	if !s.meta.Active {
		return n.reject(m, redo.RejectRebuilding, s.meta.Epoch, "segment rebuilding from peers"), false
	}
	if m.Epoch < s.meta.Epoch {
		return n.reject(m, redo.RejectStaleEpoch, s.meta.Epoch, "stale epoch"), false
	}
	if m.Epoch > s.meta.History.Latest() {
		return n.reject(m, redo.RejectNeedInstall, s.meta.Epoch, "epoch not installed"), false
	}
	return Output{}, true
}

func (n *Node) append(s *Segment, m *redo.Message) Output {
	stale := n.cfg.UnsafeNoEpochFencing && s.meta.Active && m.Epoch < s.meta.Epoch
	if out, ok := n.checkEpoch(s, m); !ok && !stale {
		return out
	}
	// One entry per record, plus room for a metadata entry: Entry is large, and growing the
	// slice record by record was a sixth of a storage node's CPU under write load.
	out := Output{Persist: make([]redo.Entry, 0, len(m.Records)+1)}
	for i := range m.Records {
		r := &m.Records[i]
		if r.Epoch != m.Epoch {
			continue
		}
		if c := s.add(r); c != nil {
			out.Persist = append(out.Persist, redo.Entry{Kind: redo.EntryRecord, Record: *c})
		}
	}
	s.walk()
	n.noteHint(s, m.Hint, &out)
	s.minRead = m.Floor
	ack := n.reply(m, redo.MsgAppendAck)
	ack.Epoch, ack.SCL = s.meta.Epoch, s.SCL()
	if stale {
		// Unsafe: answer the stale writer as if its epoch were current and everything it sent
		// were held (a truncation may already have discarded it).
		ack.Epoch = m.Epoch
		if k := len(m.Records); k > 0 {
			ack.SCL = max(ack.SCL, m.Records[k-1].LSN)
		}
	}
	out.Send = append(out.Send, ack)
	return out
}

func (n *Node) noteHint(s *Segment, hint redo.LSN, out *Output) {
	if hint <= s.meta.Hint {
		return
	}
	s.meta.Hint = hint
	if hint-s.hintPersist >= n.cfg.HintPersistEvery {
		s.hintPersist = hint
		out.Persist = append(out.Persist, s.metaEntry())
	}
}

func (n *Node) seal(s *Segment, m *redo.Message) Output {
	if !s.meta.Active {
		return n.reject(m, redo.RejectRebuilding, s.meta.Epoch, "segment rebuilding from peers")
	}
	if m.Epoch < s.meta.Epoch || (m.Epoch == s.meta.Epoch && s.sealer != m.From) {
		// An epoch is sealed by one recovery only: a second recoverer at the same epoch would
		// install a different history under the same number.
		return n.reject(m, redo.RejectStaleEpoch, s.meta.Epoch, "stale epoch")
	}
	var out Output
	if m.Epoch > s.meta.Epoch {
		s.meta.Epoch = m.Epoch
		out.Persist = append(out.Persist, s.metaEntry())
	}
	s.sealer = m.From
	r := n.reply(m, redo.MsgSealResp)
	floor := max(s.meta.Base, min(s.meta.Hint, s.SCL()))
	r.Epoch, r.History, r.Hint, r.SCL, r.Floor = s.meta.Epoch, s.meta.History.Clone(), s.meta.Hint, s.SCL(), floor
	r.Tail = s.tailAt(floor)
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i] > floor })
	for _, l := range s.order[i:] {
		r.Records = append(r.Records, s.recs[l].Clone())
	}
	out.Send = append(out.Send, r)
	return out
}

func (n *Node) install(s *Segment, m *redo.Message) Output {
	var out Output
	if s == nil {
		create := m.Flags&redo.MFlagCreate != 0
		s = n.create(redo.SegMeta{PG: m.PG, Active: create, Peers: append([]redo.Peer(nil), m.Peers...)})
		if create {
			s.meta.Epoch = m.Epoch
			s.meta.History = m.History.Clone()
		}
		out.Persist = append(out.Persist, s.metaEntry())
	}
	if m.Flags&redo.MFlagCreate != 0 && (s.meta.History.Latest() != m.History.Latest() || s.meta.Base > 0 || len(s.order) > 0) {
		out.merge(n.reject(m, redo.RejectBadRequest, s.meta.Epoch, "create: the segment already exists with data or a later epoch"))
		return out
	}
	if m.Epoch < s.meta.Epoch || (m.History.Latest() == s.meta.History.Latest() && !sameHistory(m.History, s.meta.History)) {
		out.merge(n.reject(m, redo.RejectStaleEpoch, s.meta.Epoch, "stale epoch"))
		return out
	}
	changed := s.adopt(m.History)
	if m.Epoch > s.meta.Epoch {
		s.meta.Epoch, changed = m.Epoch, true
	}
	if len(m.Peers) > 0 && !samePeers(s.meta.Peers, m.Peers) {
		s.meta.Peers, changed = append([]redo.Peer(nil), m.Peers...), true
	}
	if changed {
		out.Persist = append(out.Persist, s.metaEntry())
	}
	for i := range m.Records {
		if c := s.add(&m.Records[i]); c != nil {
			out.Persist = append(out.Persist, redo.Entry{Kind: redo.EntryRecord, Record: *c})
		}
	}
	s.walk()
	n.noteHint(s, m.Hint, &out)
	if !s.meta.Active {
		out.merge(n.reject(m, redo.RejectRebuilding, s.meta.Epoch, "segment rebuilding from peers"))
		out.Send = append(out.Send, n.gossipAll(s)...)
		return out
	}
	ack := n.reply(m, redo.MsgInstallAck)
	ack.Epoch, ack.SCL = s.meta.Epoch, s.SCL()
	out.Send = append(out.Send, ack)
	return out
}

func sameHistory(a, b redo.History) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func samePeers(a, b []redo.Peer) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (n *Node) gossipMsg(s *Segment, to string) *redo.Message {
	return &redo.Message{Type: redo.MsgGossipReq, From: n.cfg.ID, To: to, PG: s.meta.PG, Epoch: s.meta.Epoch,
		History: s.meta.History.Clone(), SCL: s.SCL(), Hint: s.meta.Hint}
}

func (n *Node) gossipAll(s *Segment) []*redo.Message {
	var msgs []*redo.Message
	for _, p := range s.meta.Peers {
		if p.ID != n.cfg.ID && !s.votes[p.ID] {
			msgs = append(msgs, n.gossipMsg(s, p.ID))
		}
	}
	return msgs
}

func (n *Node) gossipReq(s *Segment, m *redo.Message) Output {
	var out Output
	changed := s.adopt(m.History)
	if changed {
		out.Persist = append(out.Persist, s.metaEntry())
	}
	r := n.reply(m, redo.MsgGossipResp)
	r.Epoch, r.History, r.Hint, r.SCL = s.meta.Epoch, s.meta.History.Clone(), s.meta.Hint, s.SCL()
	if s.meta.Active {
		r.Flags |= redo.MFlagCreate // the answer comes from an active segment: it counts as a vote
	}
	from := m.SCL
	if m.SCL < s.meta.Base {
		// The asker needs versions this segment already collected: send everything it holds.
		r.Flags |= redo.MFlagSnapshot
		r.Base, r.BaseTail = s.meta.Base, s.meta.BaseTail
		from = 0
	}
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i] > from })
	for _, l := range s.order[i:] {
		if r.Flags&redo.MFlagSnapshot == 0 && len(r.Records) >= n.cfg.GossipBatch {
			break
		}
		r.Records = append(r.Records, s.recs[l].Clone())
	}
	out.Send = append(out.Send, r)
	return out
}

func (n *Node) gossipResp(s *Segment, m *redo.Message) Output {
	var out Output
	changed := s.adopt(m.History)
	if m.Epoch > s.meta.Epoch && !s.meta.Active {
		// A rebuilding segment lost any seal it had: it learns sealed epochs from its peers so a
		// fenced writer cannot use it. Active segments take epochs only from seals and installed
		// histories, so that each epoch is sealed by exactly one recovery.
		s.meta.Epoch, changed = m.Epoch, true
	}
	if m.Flags&redo.MFlagSnapshot != 0 && m.Base > s.SCL() && m.BaseTail <= m.Base {
		for i := range m.Records {
			if m.Records[i].LSN > m.Base {
				continue
			}
			if c := s.add(&m.Records[i]); c != nil {
				out.Persist = append(out.Persist, redo.Entry{Kind: redo.EntryRecord, Record: *c})
			}
		}
		s.meta.Base, s.meta.BaseTail = m.Base, m.BaseTail
		s.meta.Hint = max(s.meta.Hint, m.Hint)
		s.tail = max(s.tail, m.BaseTail)
		changed = true
	}
	for i := range m.Records {
		if c := s.add(&m.Records[i]); c != nil {
			out.Persist = append(out.Persist, redo.Entry{Kind: redo.EntryRecord, Record: *c})
		}
	}
	s.walk()
	if !s.meta.Active && m.Flags&redo.MFlagCreate != 0 {
		s.votes[m.From] = true
		if len(s.votes) >= n.cfg.RebuildVotes {
			s.meta.Active, changed = true, true
		}
	}
	if changed {
		out.Persist = append(out.Persist, s.metaEntry())
	}
	n.noteHint(s, m.Hint, &out)
	return out
}

func (n *Node) read(s *Segment, m *redo.Message) Output {
	if !s.meta.Active {
		return n.reject(m, redo.RejectRebuilding, s.meta.Epoch, "segment rebuilding from peers")
	}
	if m.Epoch > s.meta.History.Latest() {
		return n.reject(m, redo.RejectNeedInstall, s.meta.Epoch, "epoch not installed")
	}
	if s.SCL() < m.Need {
		return n.reject(m, redo.RejectIncomplete, s.meta.Epoch, "segment incomplete at read point")
	}
	if m.ReadLSN < s.meta.Base {
		return n.reject(m, redo.RejectBelowHorizon, s.meta.Epoch, "read point below GC horizon")
	}
	r := n.reply(m, redo.MsgReadResp)
	r.Epoch, r.SCL, r.ReadLSN = s.meta.Epoch, s.SCL(), m.ReadLSN
	if m.Flags&redo.MFlagScan == 0 {
		if rec, ok := s.get(string(m.Key), m.ReadLSN); ok {
			r.Flags |= redo.MFlagFound
			r.Value = append([]byte(nil), rec.Value...)
			r.Tail = rec.LSN
		}
		return Output{Send: []*redo.Message{r}}
	}
	r.Flags |= redo.MFlagScan
	end := string(m.EndKey)
	s.keys.Ascend(string(m.Key), func(k string) bool {
		if len(m.EndKey) > 0 && k >= end {
			return false
		}
		if m.Limit > 0 && uint32(len(r.Records)) >= m.Limit {
			return false
		}
		if rec, ok := s.get(k, m.ReadLSN); ok {
			r.Records = append(r.Records, rec.Clone())
		}
		return true
	})
	return Output{Send: []*redo.Message{r}}
}

// Tick does the background work: gossip with peers (always while rebuilding or when a hole or
// a lag behind the writer's VDL is known, otherwise every GossipEvery ticks) and GC.
func (n *Node) Tick() Output {
	n.ticks++
	var out Output
	for _, pg := range n.pgs {
		s := n.segs[pg]
		if !s.meta.Active {
			out.Send = append(out.Send, n.gossipAll(s)...)
			continue
		}
		if s.hasHole() || s.meta.Hint > s.SCL() || n.ticks%n.cfg.GossipEvery == 0 {
			var peers []redo.Peer
			for _, p := range s.meta.Peers {
				if p.ID != n.cfg.ID {
					peers = append(peers, p)
				}
			}
			if len(peers) > 0 {
				s.gossipNext++
				out.Send = append(out.Send, n.gossipMsg(s, peers[s.gossipNext%len(peers)].ID))
			}
		}
		if n.ticks%n.cfg.GCEvery == 0 {
			out.merge(n.gc(s))
		}
	}
	return out
}

// gc collects versions superseded at or below the horizon: the writer's VDL minus the window,
// never above the segment's own complete point.
func (n *Node) gc(s *Segment) Output {
	var out Output
	if s.meta.Hint <= n.cfg.GCWindow {
		return out
	}
	horizon := min(s.meta.Hint-n.cfg.GCWindow, s.SCL())
	if s.minRead > 0 {
		horizon = min(horizon, s.minRead)
	}
	if horizon <= s.meta.Base || horizon < s.lastGC+n.cfg.GCWindow/4 {
		return out
	}
	s.lastGC = horizon
	baseTail := s.tailAt(horizon)
	var drop []redo.LSN
	s.keys.Scan(func(k string) bool {
		vs := s.versions[k].lsns
		j := sort.Search(len(vs), func(i int) bool { return vs[i] > horizon })
		if j > 1 {
			drop = append(drop, vs[:j-1]...)
		}
		return true
	})
	s.meta.Base, s.meta.BaseTail = horizon, baseTail
	s.removeAll(drop)
	for _, l := range drop {
		out.Persist = append(out.Persist, redo.Entry{Kind: redo.EntryDrop, Record: redo.Record{PG: s.meta.PG, LSN: l}})
	}
	out.Persist = append(out.Persist, s.metaEntry())
	return out
}

// Snapshot returns entries that restore the node's current state: each segment's metadata and
// its records. The durable log is rewritten from it when it has grown past the live state.
func (n *Node) Snapshot() []redo.Entry {
	var out []redo.Entry
	for _, pg := range n.pgs {
		s := n.segs[pg]
		out = append(out, s.metaEntry())
		for _, l := range s.order {
			out = append(out, redo.Entry{Kind: redo.EntryRecord, Record: *s.recs[l]})
		}
	}
	return out
}

// LiveBytes estimates the size of a log rewritten from Snapshot, without building it.
func (n *Node) LiveBytes() int64 {
	var total int64
	for _, s := range n.segs {
		total += s.bytes
	}
	return total
}

// LiveRecords counts the records held by every segment.
func (n *Node) LiveRecords() int {
	total := 0
	for _, s := range n.segs {
		total += len(s.order)
	}
	return total
}

// PeerAddr returns the address of a peer storage node, as the volume's Install told it.
func (n *Node) PeerAddr(id string) string {
	for _, pg := range n.pgs {
		for _, p := range n.segs[pg].meta.Peers {
			if p.ID == id {
				return p.Addr
			}
		}
	}
	return ""
}
