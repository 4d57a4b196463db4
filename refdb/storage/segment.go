// Package storage is the storage node: it hosts segments of protection groups, persists redo
// records and acknowledges them with its segment complete LSN (SCL), fills holes by gossip with
// peer segments, serves versioned reads and garbage-collects old versions.
//
// Node and Segment are pure state machines: they take messages and ticks and return an Output
// (entries to persist, then messages to send). The TCP server and the deterministic simulator
// are two drivers of the same core.
package storage

import (
	"sort"

	"github.com/tidwall/btree"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// Output is what one step asks its driver to do: make Persist durable (fsync), then send Send.
// A driver may batch the Persist of many steps into one fsync (group commit) as long as no
// message is sent before the entries of its own and every earlier step are durable.
type Output struct {
	Persist []redo.Entry
	Send    []*redo.Message
}

func (o *Output) merge(p Output) {
	o.Persist = append(o.Persist, p.Persist...)
	o.Send = append(o.Send, p.Send...)
}

// Empty reports whether there is nothing to do.
func (o *Output) Empty() bool { return len(o.Persist) == 0 && len(o.Send) == 0 }

// Segment is one protection group's copy on one node.
type Segment struct {
	cfg  *Config
	meta redo.SegMeta

	recs map[redo.LSN]*redo.Record
	// next maps a back-link to the record that claims it, for walking the chain forward. Only
	// links at or above the tail are needed; a record that extends a chain with nothing held
	// beyond it moves the tail at once and never enters the map (the common case, and two map
	// operations fewer per record on the write path).
	next     map[redo.LSN]redo.LSN
	order    []redo.LSN              // every held LSN, ascending
	versions map[string]*keyVersions // key -> its held versions
	keys     btree.Set[string]       // every key held, ordered for scans (a sorted slice cost O(n) per new key)
	tail     redo.LSN                // last record of the complete chain
	bytes    int64                   // log bytes the held records take (recordLogBytes), kept as they come and go

	votes       map[string]bool // rebuilding: active peers that answered
	gossipNext  int
	hintPersist redo.LSN
	lastGC      redo.LSN
	minRead     redo.LSN // oldest read point in use, as the writer last reported (0: none)
	sealer      string   // who sealed meta.Epoch in this process's lifetime ("" after a restart)
}

func newSegment(cfg *Config, meta redo.SegMeta) *Segment {
	s := &Segment{cfg: cfg, meta: meta, recs: map[redo.LSN]*redo.Record{}, next: map[redo.LSN]redo.LSN{},
		versions: map[string]*keyVersions{}, votes: map[string]bool{}}
	s.tail = meta.BaseTail
	s.hintPersist = meta.Hint
	return s
}

// SCL is the segment complete LSN: the segment holds every record of its PG at or below it.
func (s *Segment) SCL() redo.LSN { return max(s.tail, s.meta.Base) }

// Meta returns a copy of the segment's durable metadata.
func (s *Segment) Meta() redo.SegMeta {
	m := s.meta
	m.History = m.History.Clone()
	m.Peers = append([]redo.Peer(nil), m.Peers...)
	return m
}

// Len is the number of records held.
func (s *Segment) Len() int { return len(s.order) }

// Records returns copies of the records held at or below upTo, ascending.
func (s *Segment) Records(upTo redo.LSN) []redo.Record {
	var out []redo.Record
	for _, l := range s.order {
		if l > upTo {
			break
		}
		out = append(out, s.recs[l].Clone())
	}
	return out
}

func (s *Segment) metaEntry() redo.Entry {
	return redo.Entry{Kind: redo.EntryMeta, Meta: s.Meta()}
}

// keyVersions is one key's held versions. It is a pointer in the map so that a new version of
// a known key costs one map lookup.
type keyVersions struct {
	lsns []redo.LSN // ascending
}

// newest is the key's newest held version (0: none).
func (kv *keyVersions) newest() redo.LSN {
	if kv == nil || len(kv.lsns) == 0 {
		return 0
	}
	return kv.lsns[len(kv.lsns)-1]
}

// lastHeld is the highest LSN held (0: none).
func (s *Segment) lastHeld() redo.LSN {
	if n := len(s.order); n > 0 {
		return s.order[n-1]
	}
	return 0
}

// add stores a copy of a record if it is new and valid under the current history, and returns
// the stored copy (nil: not stored).
func (s *Segment) add(r *redo.Record) *redo.Record {
	if r.PG != s.meta.PG || r.Validate() != nil {
		return nil
	}
	last := s.lastHeld()
	above := r.LSN > last // the write path's case: nothing to look up, it cannot be held
	if !above {
		if _, ok := s.recs[r.LSN]; ok {
			return nil
		}
	}
	if r.Epoch > s.meta.History.Latest() || s.meta.History.Garbage(r.Epoch, r.LSN) {
		return nil
	}
	if r.LSN <= s.meta.Base {
		// Below the GC horizon only the newest version of a key survives; an older one coming
		// back by gossip would resurrect a collected version.
		if s.versions[string(r.Key)].newest() > r.LSN {
			return nil
		}
	}
	c := new(redo.Record)
	*c = r.Clone()
	s.recs[c.LSN] = c
	s.bytes += recordLogBytes(c)
	switch {
	case above && last <= s.tail && c.PrevLSN == s.tail:
		// It extends the complete chain and nothing is held beyond the chain, so no other
		// record claims this link: walk would take it next.
		s.tail = c.LSN
	default:
		if old, ok := s.next[c.PrevLSN]; !ok || s.recs[old] == nil || s.recs[old].Epoch < c.Epoch {
			s.next[c.PrevLSN] = c.LSN
		}
	}
	if above {
		s.order = append(s.order, c.LSN)
	} else {
		s.order = insertLSN(s.order, c.LSN)
	}
	kv := s.versions[string(c.Key)]
	if kv == nil {
		k := string(c.Key)
		kv = &keyVersions{}
		s.versions[k] = kv
		s.keys.Insert(k)
	}
	kv.lsns = insertLSN(kv.lsns, c.LSN)
	return c
}

// recordLogBytes estimates what a record takes in the log: its key and value plus the fixed
// fields and framing.
func recordLogBytes(r *redo.Record) int64 { return int64(len(r.Key)+len(r.Value)) + 48 }

// removeAll removes many records with one pass over the LSN order instead of one per record
// (GC drops thousands at a time).
func (s *Segment) removeAll(ls []redo.LSN) {
	gone := make(map[redo.LSN]bool, len(ls))
	for _, l := range ls {
		if s.forget(l) {
			gone[l] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	kept := s.order[:0]
	for _, l := range s.order {
		if !gone[l] {
			kept = append(kept, l)
		}
	}
	s.order = kept
}

// forget removes record l from everything but the LSN order; it reports whether l was held.
func (s *Segment) forget(l redo.LSN) bool {
	r, ok := s.recs[l]
	if !ok {
		return false
	}
	delete(s.recs, l)
	s.bytes -= recordLogBytes(r)
	if s.next[r.PrevLSN] == l {
		delete(s.next, r.PrevLSN)
	}
	if kv := s.versions[string(r.Key)]; kv != nil {
		if kv.lsns = removeLSN(kv.lsns, l); len(kv.lsns) == 0 {
			k := string(r.Key)
			delete(s.versions, k)
			s.keys.Delete(k)
		}
	}
	return true
}

// walk advances the complete chain as far as the held records allow.
func (s *Segment) walk() {
	for {
		n, ok := s.next[s.tail]
		if !ok {
			return
		}
		if _, held := s.recs[n]; !held {
			return
		}
		s.tail = n
	}
}

// rewalk recomputes the chain from the base after records were removed.
func (s *Segment) rewalk() {
	s.next = make(map[redo.LSN]redo.LSN, len(s.recs))
	for _, l := range s.order {
		r := s.recs[l]
		s.next[r.PrevLSN] = l
	}
	s.tail = s.meta.BaseTail
	s.walk()
	// Links below the tail are never walked again.
	for p := range s.next {
		if p < s.tail {
			delete(s.next, p)
		}
	}
}

// adopt replaces the history with a newer one, discarding what it truncated.
func (s *Segment) adopt(h redo.History) bool {
	if !h.Newer(s.meta.History) {
		return false
	}
	s.meta.History = h.Clone()
	s.meta.Epoch = max(s.meta.Epoch, h.Latest())
	var drop []redo.LSN
	for _, l := range s.order {
		if r := s.recs[l]; h.Garbage(r.Epoch, l) {
			drop = append(drop, l)
		}
	}
	s.removeAll(drop)
	s.rewalk()
	return true
}

// tailAt is the last held record at or below l (the chain is complete there when l <= SCL).
func (s *Segment) tailAt(l redo.LSN) redo.LSN {
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i] > l })
	if i == 0 {
		return s.meta.BaseTail
	}
	return max(s.order[i-1], min(s.meta.BaseTail, l))
}

// hasHole reports whether records are held beyond the complete chain.
func (s *Segment) hasHole() bool {
	return len(s.order) > 0 && s.order[len(s.order)-1] > s.tail
}

// get returns the newest version of key visible at read point at.
func (s *Segment) get(key string, at redo.LSN) (*redo.Record, bool) {
	kv := s.versions[key]
	if kv == nil {
		return nil, false
	}
	vs := kv.lsns
	for i := len(vs) - 1; i >= 0; i-- {
		r := s.recs[vs[i]]
		if r.LSN <= at && r.CommitLSN <= at {
			return r, !r.Tombstone()
		}
	}
	return nil, false
}

func insertLSN(s []redo.LSN, l redo.LSN) []redo.LSN {
	if n := len(s); n == 0 || s[n-1] < l {
		return append(s, l)
	}
	i := sort.Search(len(s), func(i int) bool { return s[i] >= l })
	if i < len(s) && s[i] == l {
		return s
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = l
	return s
}

func removeLSN(s []redo.LSN, l redo.LSN) []redo.LSN {
	i := sort.Search(len(s), func(i int) bool { return s[i] >= l })
	if i < len(s) && s[i] == l {
		return append(s[:i], s[i+1:]...)
	}
	return s
}
