package engine

import (
	"context"
	"fmt"
)

// Replica support: an engine over a read-only store (a reader instance) keeps its version
// cache exact from the writer's stream of committed keys instead of its own commits.

// ApplyRemote records that a commit at lsn wrote keys: cached versions of them are dropped and
// storage reads below lsn are no longer installed for their buckets. Call it for every commit
// before the store's read point passes lsn. It reports whether a catalog key was among them
// (the caller then reloads the catalog once the read point has moved).
func (e *Engine) ApplyRemote(keys [][]byte, lsn LSN) (catalog bool) {
	for _, k := range keys {
		if len(k) > 0 && k[0] == catalogByte {
			catalog = true
		}
		e.cache.invalidate(string(k), lsn)
	}
	return catalog
}

// ResetCache forgets every cached version and treats every key as written at at: for a
// reader whose read point jumps to at without the commits in between (a reconnect).
func (e *Engine) ResetCache(at LSN) { e.cache.reset(at) }

// ReloadCatalog reads the catalog again at the store's current read point.
func (e *Engine) ReloadCatalog(ctx context.Context) error {
	e.catMu.Lock()
	defer e.catMu.Unlock()
	e.autoMu.Lock()
	defer e.autoMu.Unlock()
	if err := e.loadCatalog(ctx); err != nil {
		return fmt.Errorf("reload catalog: %w", err)
	}
	return nil
}

// AbortAll rolls back every open transaction (an engine being replaced): their later
// statements fail.
func (e *Engine) AbortAll() {
	e.activeMu.Lock()
	txns := make([]*Txn, 0, len(e.active))
	for t := range e.active {
		txns = append(txns, t)
	}
	e.activeMu.Unlock()
	for _, t := range txns {
		t.Rollback()
	}
}

// invalidate drops key and raises its bucket's last write to lsn.
func (c *versionCache) invalidate(key string, lsn LSN) {
	h := c.hash(key)
	b, bm := c.bucketOf(h)
	s := &c.shards[h%cacheShards]
	bm.Lock()
	b.lastWrite = max(b.lastWrite, lsn)
	s.mu.Lock()
	if el := s.m[key]; el != nil {
		s.remove(el)
	}
	s.mu.Unlock()
	bm.Unlock()
}

// reset raises every bucket's last write to at, then empties the cache.
func (c *versionCache) reset(at LSN) {
	for i := range c.buckets {
		bm := &c.bmu[i%cacheShards]
		bm.Lock()
		if c.buckets[i].lastWrite != poisoned {
			c.buckets[i].lastWrite = max(c.buckets[i].lastWrite, at)
		}
		bm.Unlock()
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for s.lru.Len() > 0 {
			s.remove(s.lru.Back())
		}
		s.mu.Unlock()
	}
}
