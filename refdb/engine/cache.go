package engine

import (
	"container/list"
	"hash/maphash"
	"sync"
)

// versionCache is the writer's bounded buffer pool of row versions. The writer is the only
// writer of the volume, so it can keep cached versions exact without asking storage:
//
//   - every key belongs to a bucket (a hash of the key); a bucket counts the commits in flight on
//     its keys and remembers the highest commit LSN that touched them (lastWrite);
//   - while a commit on a bucket is in flight, that bucket is not served from cache (the commit
//     may already be below a reader's snapshot without being installed yet);
//   - a storage read at read point at is installed only if, when it returns, nothing is in flight
//     on its bucket and lastWrite <= at: then the value read is still the newest, valid from
//     lastWrite on;
//   - a finished commit installs its versions in front of the cached ones (writes to a key are
//     serialized by its row lock, so cached versions of a key are consecutive).
//
// A version is served to a snapshot at S if it is the newest cached version valid from <= S.
type versionCache struct {
	seed    maphash.Seed
	shards  [cacheShards]cacheShard
	buckets [cacheBuckets]bucket
	bmu     [cacheShards]sync.Mutex // guards buckets whose index % cacheShards == i
}

const (
	cacheShards  = 64
	cacheBuckets = 1 << 16
	// maxVersions bounds the versions kept per key: enough for snapshots a few commits old.
	maxVersions = 4
	// poisoned is lastWrite after a commit of unknown outcome: never install in that bucket.
	poisoned = LSN(1<<63 - 1)
)

type bucket struct {
	inflight  int
	lastWrite LSN
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[string]*list.Element
	lru   list.List // front: most recently used; values are *centry
	bytes int64
	limit int64
}

type centry struct {
	key  string
	vers []cver // newest first
	size int64
}

type cver struct {
	from  LSN // valid from this LSN until the next newer version
	val   []byte
	found bool
}

func newVersionCache(limitBytes int64, openVDL LSN) *versionCache {
	c := &versionCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]*list.Element{}
		c.shards[i].limit = limitBytes / cacheShards
	}
	for i := range c.buckets {
		// Versions written before this engine opened are unknown: assume they changed at openVDL.
		c.buckets[i].lastWrite = openVDL
	}
	return c
}

func (c *versionCache) hash(key string) uint64 { return maphash.String(c.seed, key) }

func (c *versionCache) bucketOf(h uint64) (*bucket, *sync.Mutex) {
	i := h % cacheBuckets
	return &c.buckets[i], &c.bmu[i%cacheShards]
}

// get returns the version of key visible at at, if the cache can prove it.
func (c *versionCache) get(key string, at LSN) (val []byte, found, hit bool) {
	h := c.hash(key)
	b, bm := c.bucketOf(h)
	bm.Lock()
	busy := b.inflight > 0
	bm.Unlock()
	if busy {
		return nil, false, false
	}
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.m[key]
	if el == nil {
		return nil, false, false
	}
	e := el.Value.(*centry)
	for _, v := range e.vers {
		if v.from <= at {
			s.lru.MoveToFront(el)
			return v.val, v.found, true
		}
	}
	return nil, false, false
}

// fill installs the result of a storage read at at, if it is provably the newest version.
func (c *versionCache) fill(key string, at LSN, val []byte, found bool) {
	h := c.hash(key)
	b, bm := c.bucketOf(h)
	s := &c.shards[h%cacheShards]
	bm.Lock()
	defer bm.Unlock()
	if b.inflight > 0 || b.lastWrite > at {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.m[key]; el != nil {
		return // a newer install or commit got there first
	}
	s.insert(key, []cver{{from: b.lastWrite, val: val, found: found}})
}

// beginWrite marks keys as being committed.
func (c *versionCache) beginWrite(keys []string) {
	for _, k := range keys {
		b, bm := c.bucketOf(c.hash(k))
		bm.Lock()
		b.inflight++
		bm.Unlock()
	}
}

// endWrite installs the committed versions (ok) or forgets the keys (a commit of unknown
// outcome may still become durable at an LSN we do not know). keys[i] is writes[i].Key.
func (c *versionCache) endWrite(keys []string, writes []Write, lsn LSN, ok bool) {
	for i, w := range writes {
		k := keys[i]
		h := c.hash(k)
		b, bm := c.bucketOf(h)
		s := &c.shards[h%cacheShards]
		bm.Lock()
		b.inflight--
		s.mu.Lock()
		el := s.m[k]
		if !ok {
			b.lastWrite = poisoned
			if el != nil {
				s.remove(el)
			}
		} else {
			b.lastWrite = max(b.lastWrite, lsn)
			v := cver{from: lsn, val: w.Value, found: !w.Delete}
			if el == nil {
				s.insert(k, []cver{v})
			} else {
				e := el.Value.(*centry)
				vers := append([]cver{v}, e.vers...)
				if len(vers) > maxVersions {
					vers = vers[:maxVersions]
				}
				s.bytes -= e.size
				e.vers = vers
				e.size = entrySize(k, vers)
				s.bytes += e.size
				s.lru.MoveToFront(el)
				s.evict()
			}
		}
		s.mu.Unlock()
		bm.Unlock()
	}
}

func entrySize(key string, vers []cver) int64 {
	n := int64(len(key)) + 64
	for _, v := range vers {
		n += int64(len(v.val)) + 32
	}
	return n
}

func (s *cacheShard) insert(key string, vers []cver) {
	e := &centry{key: key, vers: vers, size: entrySize(key, vers)}
	s.m[key] = s.lru.PushFront(e)
	s.bytes += e.size
	s.evict()
}

func (s *cacheShard) remove(el *list.Element) {
	e := el.Value.(*centry)
	s.lru.Remove(el)
	delete(s.m, e.key)
	s.bytes -= e.size
}

func (s *cacheShard) evict() {
	for s.bytes > s.limit && s.lru.Len() > 0 {
		s.remove(s.lru.Back())
	}
}

// len is the number of cached keys (for tests).
func (c *versionCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}
