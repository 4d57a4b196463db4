package engine

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tidwall/btree"
)

// Mirror is a reader's in-memory copy of the key ranges it has scanned, kept current from the
// writer's commit stream, so that a scan or read inside them needs no storage round trip.
//
// It plays the part of Aurora's reader buffer pool: there, pages a replica has read stay in
// its cache and the redo stream is applied to them; here, a range becomes a span once a
// storage scan has returned all of it, and from then on every streamed commit that writes a
// key inside a span is applied to it. A reader polling for recent rows (the lag workload's
// `id > ?`) then answers from memory, at the read point the stream just moved, instead of
// asking a storage node that is busy with the writer's fsyncs.
//
// Correctness rests on three facts: the stream delivers every commit, in LSN order, with no
// gap, before the reader's read point passes it (Apply runs before the read point moves);
// a storage scan at read point at is exactly the volume's content at at; and the commits
// between a scan's read point and the mirror's current one are replayed from a log of recent
// commits before the span is published (Learn). A read at at is served only when the mirror
// can answer exactly at at: at most upTo, at least the span's floor (the read point it was
// learned at) and at least minAt (no version it could need was trimmed). Anything else goes
// to storage, as it did before.
type Mirror struct {
	mu    sync.RWMutex
	keys  btree.Map[string, []mver] // versions newest first; only keys inside a span
	spans []mspan                   // disjoint, sorted by start
	upTo  LSN                       // every commit at or below it is applied
	minAt LSN                       // a read below it may need a trimmed version

	log      []mlogCommit // recent commits, oldest first, for rolling a scan forward
	logFloor LSN          // the log holds every commit above it
	logBytes int64

	bytes, limit int64

	hits, misses atomic.Uint64 // reads answered from memory, and sent to storage
}

type mver struct {
	lsn LSN // 0: learned from storage, valid since before the span's floor
	val []byte
	del bool
}

type mspan struct {
	start, end string // [start, end); open: to the end of the key space
	open       bool
	floor      LSN // learned at this read point: reads below it are not answerable
}

type mlogCommit struct {
	lsn    LSN
	writes []Write
}

const (
	// mirrorVersions bounds the versions kept per key: enough for statements whose snapshot
	// is a few commits old.
	mirrorVersions = 4
	// mirrorSpans bounds the spans: past it the mirror starts over.
	mirrorSpans = 4096
	// mirrorLogBytes bounds the log of recent commits: a scan slower than the log is long
	// (its read point fell below the log's floor) is simply not learned.
	mirrorLogBytes = 32 << 20
	mverOverhead   = 48
)

// NewMirror returns an empty mirror current at read point at, holding at most limitBytes of
// keys and values.
func NewMirror(at LSN, limitBytes int64) *Mirror {
	return &Mirror{upTo: at, logFloor: at, limit: limitBytes}
}

// Reset forgets everything: the read point jumped to at without the commits in between.
func (m *Mirror) Reset(at LSN) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearLocked()
	m.log, m.logBytes = nil, 0
	m.upTo, m.logFloor, m.minAt = at, at, 0
}

func (m *Mirror) clearLocked() {
	m.keys.Clear()
	m.spans = nil
	m.bytes = 0
}

// Commit is one streamed commit: its LSN and every key it wrote.
type Commit struct {
	LSN    LSN
	Writes []Write
}

// Apply applies commits (in LSN order, every commit after the last one applied) and then
// records that nothing else committed up to vdl. Call it before the read point passes vdl.
func (m *Mirror) Apply(commits []Commit, vdl LSN) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range commits {
		if c.LSN <= m.upTo {
			continue // already applied (a repeated event)
		}
		for _, w := range c.Writes {
			if m.covered(string(w.Key)) {
				m.addVersion(string(w.Key), mver{lsn: c.LSN, val: w.Value, del: w.Delete})
			}
		}
		m.upTo = c.LSN
		m.appendLog(c)
	}
	m.upTo = max(m.upTo, vdl)
	if m.bytes > m.limit {
		m.clearLocked()
	}
}

func (m *Mirror) appendLog(c Commit) {
	var size int64
	for _, w := range c.Writes {
		size += int64(len(w.Key)+len(w.Value)) + mverOverhead
	}
	m.log = append(m.log, mlogCommit{lsn: c.LSN, writes: c.Writes})
	m.logBytes += size
	drop := 0
	for m.logBytes > mirrorLogBytes && drop < len(m.log)-1 {
		for _, w := range m.log[drop].writes {
			m.logBytes -= int64(len(w.Key)+len(w.Value)) + mverOverhead
		}
		m.logFloor = m.log[drop].lsn
		drop++
	}
	if drop > 0 {
		// Reslice, do not copy: once the log is full every commit drops one, and copying the
		// rest each time (30k entries, a fresh 1 MB slice) made the writer's commits slower
		// the longer it ran (write_only fell from 530 to 250 TPS in its fourth minute, its CPU
		// going to memmove and the collector). append moves the live part when it outgrows
		// the array, so the cost per commit stays constant.
		clear(m.log[:drop]) // the dropped writes can be collected now
		m.log = m.log[drop:]
	}
}

// addVersion puts v in front of key's versions, trimming the oldest past mirrorVersions.
func (m *Mirror) addVersion(key string, v mver) {
	vs, _ := m.keys.Get(key)
	if len(vs) == 0 {
		m.bytes += int64(len(key))
	}
	nv := make([]mver, 0, min(len(vs)+1, mirrorVersions))
	nv = append(nv, v)
	for _, old := range vs {
		if len(nv) == mirrorVersions {
			// A read between old.lsn and the next newer version would need old.
			m.minAt = max(m.minAt, nv[len(nv)-1].lsn)
			m.bytes -= int64(len(old.val)) + mverOverhead
			continue
		}
		nv = append(nv, old)
	}
	m.bytes += int64(len(v.val)) + mverOverhead
	m.keys.Set(key, nv)
}

// spanAt is the index of the span containing key, or -1.
func (m *Mirror) spanAt(key string) int {
	i := sort.Search(len(m.spans), func(i int) bool { return m.spans[i].start > key }) - 1
	if i < 0 {
		return -1
	}
	if s := m.spans[i]; s.open || key < s.end {
		return i
	}
	return -1
}

func (m *Mirror) covered(key string) bool { return m.spanAt(key) >= 0 }

// answerable reports the span that covers [start, end) and can answer a read at at.
func (m *Mirror) answerable(start string, end []byte, at LSN) bool {
	if at > m.upTo || at < m.minAt {
		return false
	}
	i := m.spanAt(start)
	if i < 0 {
		return false
	}
	s := m.spans[i]
	if at < s.floor {
		return false
	}
	if end == nil {
		return s.open
	}
	return s.open || string(end) <= s.end
}

// visible is the newest version of vs at or below at.
func visible(vs []mver, at LSN) (mver, bool) {
	for _, v := range vs {
		if v.lsn <= at {
			return v, true
		}
	}
	return mver{}, false
}

// Scan answers Store.Scan from memory when it can; ok=false means ask storage.
func (m *Mirror) Scan(start, end []byte, at LSN, limit int) (kvs []KV, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.answerable(string(start), end, at) {
		return nil, false
	}
	m.keys.Ascend(string(start), func(k string, vs []mver) bool {
		if end != nil && k >= string(end) {
			return false
		}
		if v, ok := visible(vs, at); ok && !v.del {
			kvs = append(kvs, KV{Key: []byte(k), Value: v.val})
		}
		return limit <= 0 || len(kvs) < limit
	})
	return kvs, true
}

// Get answers Store.Get from memory when it can; ok=false means ask storage.
func (m *Mirror) Get(key []byte, at LSN) (val []byte, found, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if at > m.upTo || at < m.minAt {
		return nil, false, false
	}
	i := m.spanAt(string(key))
	if i < 0 || at < m.spans[i].floor {
		return nil, false, false
	}
	vs, _ := m.keys.Get(string(key))
	v, has := visible(vs, at)
	if !has || v.del {
		return nil, false, true
	}
	return v.val, true, true
}

// Learn records that storage returned kvs as the whole content of [start, end) at read point
// at (end nil: to the end of the key space). The range becomes a span once the commits after
// at are replayed onto it from the log; if the log no longer reaches back to at, or the range
// would not fit, nothing is learned.
func (m *Mirror) Learn(start, end []byte, at LSN, kvs []KV) {
	var size int64
	for _, kv := range kvs {
		size += int64(len(kv.Key)+len(kv.Value)) + mverOverhead
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if at < m.logFloor || at > m.upTo || size > m.limit/4 {
		return
	}
	if m.bytes+size > m.limit || len(m.spans) >= mirrorSpans {
		m.clearLocked()
	}
	ns := mspan{start: string(start), end: string(end), open: end == nil, floor: at}
	inNew := func(k string) bool { return k >= ns.start && (ns.open || k < ns.end) }
	// Keys already inside a span are current; the rest start from what storage returned.
	for _, kv := range kvs {
		if k := string(kv.Key); !m.covered(k) {
			m.addVersion(k, mver{lsn: 0, val: kv.Value})
		}
	}
	// Only the commits after at, found by binary search: on the writer, Apply waits for this
	// under the volume's lock.
	from := sort.Search(len(m.log), func(i int) bool { return m.log[i].lsn > at })
	for _, c := range m.log[from:] {
		for _, w := range c.writes {
			// Keys inside an existing span already have these versions.
			if k := string(w.Key); inNew(k) && !m.covered(k) {
				m.addVersion(k, mver{lsn: c.lsn, val: w.Value, del: w.Delete})
			}
		}
	}
	m.addSpan(ns)
}

// addSpan inserts s, merging it with every span it overlaps or touches. A merged span's floor
// is the highest of theirs: reads below it go to storage.
func (m *Mirror) addSpan(s mspan) {
	out := m.spans[:0:0]
	for _, o := range m.spans {
		if touches(o, s) {
			s.floor = max(s.floor, o.floor)
			if o.start < s.start {
				s.start = o.start
			}
			switch {
			case o.open || s.open:
				s.open, s.end = true, ""
			case o.end > s.end:
				s.end = o.end
			}
			continue
		}
		out = append(out, o)
	}
	i := sort.Search(len(out), func(i int) bool { return out[i].start > s.start })
	out = append(out, mspan{})
	copy(out[i+1:], out[i:])
	out[i] = s
	m.spans = out
}

// touches reports whether two spans overlap or are adjacent.
func touches(a, b mspan) bool {
	if a.start > b.start {
		a, b = b, a
	}
	return a.open || b.start <= a.end
}

// Stats reports the spans, keys and bytes held.
func (m *Mirror) Stats() (spans, keys int, bytes int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.spans), m.keys.Len(), m.bytes
}

// Reads reports how many reads the mirror answered and how many went to storage.
func (m *Mirror) Reads() (hits, misses uint64) { return m.hits.Load(), m.misses.Load() }

// MirrorStore puts a Mirror in front of a reader's Store.
type MirrorStore struct {
	Store
	M *Mirror
}

// Get implements Store.
func (s *MirrorStore) Get(ctx context.Context, key []byte, at LSN) ([]byte, bool, error) {
	if v, found, ok := s.M.Get(key, at); ok {
		s.M.hits.Add(1)
		return v, found, nil
	}
	s.M.misses.Add(1)
	return s.Store.Get(ctx, key, at)
}

// Scan implements Store: from the mirror when it covers the range, else from storage, and
// what storage returned is learned.
func (s *MirrorStore) Scan(ctx context.Context, start, end []byte, at LSN, limit int) ([]KV, error) {
	if kvs, ok := s.M.Scan(start, end, at, limit); ok {
		s.M.hits.Add(1)
		return kvs, nil
	}
	s.M.misses.Add(1)
	kvs, err := s.Store.Scan(ctx, start, end, at, limit)
	if err != nil {
		return nil, err
	}
	covered := end
	if limit > 0 && len(kvs) >= limit {
		// Only up to the last key returned is known complete.
		covered = append(bytes.Clone(kvs[len(kvs)-1].Key), 0)
	}
	s.M.Learn(start, covered, at, kvs)
	return kvs, nil
}

// SetMinReadPoint forwards to the store when it pins read points (ReadPointPinner).
func (s *MirrorStore) SetMinReadPoint(l LSN) {
	if p, ok := s.Store.(ReadPointPinner); ok {
		p.SetMinReadPoint(l)
	}
}
