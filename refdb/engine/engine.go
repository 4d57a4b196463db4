package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Config configures an Engine.
type Config struct {
	Store Store
	// LockWaitTimeout is the default wait for a row lock (InnoDB's innodb_lock_wait_timeout).
	LockWaitTimeout time.Duration
	// CacheBytes bounds the version cache.
	CacheBytes int64
	Logger     *slog.Logger
}

// Engine is the transactional KV engine of a writer instance.
type Engine struct {
	cfg   Config
	store Store
	log   *slog.Logger
	locks *lockTable
	cache *versionCache
	seq   atomic.Uint64

	catMu   sync.Mutex // serializes catalog changes (DDL)
	catalog atomic.Pointer[Catalog]
	tblMu   sync.Mutex
	tblLock map[uint32]*sync.RWMutex
	autoMu  sync.Mutex
	autoInc map[uint32]*autoCounter

	stats Stats

	activeMu sync.Mutex
	active   map[*Txn]LSN // open transactions and their snapshots
	pinned   LSN          // read point last pinned in storage
}

// ReadPointPinner is implemented by stores whose garbage collection must keep the versions
// that open transactions may still read.
type ReadPointPinner interface {
	SetMinReadPoint(LSN)
}

// Stats counts engine events.
type Stats struct {
	Commits, Rollbacks, Deadlocks, LockTimeouts, CacheHits, CacheMisses atomic.Int64
}

// Open creates an engine over store and loads the catalog from it.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("engine open: no store")
	}
	if cfg.LockWaitTimeout == 0 {
		cfg.LockWaitTimeout = 50 * time.Second
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 256 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{cfg: cfg, store: cfg.Store, log: cfg.Logger, locks: newLockTable(),
		cache: newVersionCache(cfg.CacheBytes, cfg.Store.VDL()), tblLock: map[uint32]*sync.RWMutex{},
		autoInc: map[uint32]*autoCounter{}, active: map[*Txn]LSN{}}
	if err := e.loadCatalog(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Store is the engine's store.
func (e *Engine) Store() Store { return e.store }

// LockedKeys is the number of row locks currently held (for tests and metrics).
func (e *Engine) LockedKeys() int { return e.locks.size() }

// ActiveTxns is the number of open transactions.
func (e *Engine) ActiveTxns() int {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	return len(e.active)
}

// CachedKeys is the number of keys in the version cache.
func (e *Engine) CachedKeys() int { return e.cache.len() }

// read returns the version of key visible at at, from cache or storage.
func (e *Engine) read(ctx context.Context, key []byte, at LSN) ([]byte, bool, error) {
	k := string(key)
	if v, ok, hit := e.cache.get(k, at); hit {
		e.stats.CacheHits.Add(1)
		return v, ok, nil
	}
	e.stats.CacheMisses.Add(1)
	v, ok, err := e.store.Get(ctx, key, at)
	if err != nil {
		return nil, false, fmt.Errorf("read %x at %d: %w", key, at, err)
	}
	e.cache.fill(k, at, v, ok)
	return v, ok, nil
}

// TxnOptions tune one transaction.
type TxnOptions struct {
	LockWaitTimeout time.Duration // 0: the engine default
	ReadOnly        bool
}

// Begin starts a transaction whose plain reads see the snapshot at the current VDL: every
// transaction acknowledged before Begin, none in flight, nothing not yet durable.
func (e *Engine) Begin(opts TxnOptions) *Txn {
	if opts.LockWaitTimeout == 0 {
		opts.LockWaitTimeout = e.cfg.LockWaitTimeout
	}
	t := &Txn{e: e, id: e.seq.Add(1), opts: opts, writes: map[string]*wsEntry{}, killed: make(chan struct{})}
	e.activeMu.Lock()
	t.snap = e.store.VDL()
	e.active[t] = t.snap
	e.pinLocked()
	e.activeMu.Unlock()
	return t
}

// finished forgets t's snapshot, letting storage collect versions only it could read.
func (e *Engine) finished(t *Txn) {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	if _, ok := e.active[t]; !ok {
		return
	}
	delete(e.active, t)
	e.pinLocked()
}

// pinLocked tells the store the oldest snapshot in use; call with activeMu held.
func (e *Engine) pinLocked() {
	p, ok := e.store.(ReadPointPinner)
	if !ok {
		return
	}
	var oldest LSN
	for _, l := range e.active {
		if oldest == 0 || l < oldest {
			oldest = l
		}
	}
	if oldest != e.pinned {
		e.pinned = oldest
		p.SetMinReadPoint(oldest)
	}
}

// Txn is a transaction. Its methods may be called from several goroutines, one at a time per
// statement (go-mysql-server reads and writes from different goroutines of one query).
type Txn struct {
	e    *Engine
	id   uint64
	snap LSN
	opts TxnOptions

	mu      sync.Mutex
	writes  map[string]*wsEntry
	undo    []undoRec
	sorted  []string // sorted write-set keys, nil when stale
	done    bool
	hooks   []CommitHook
	killed  chan struct{}
	killOne sync.Once

	// Guarded by the engine's lock table mutex.
	held      []string
	waitingOn *lockEntry
}

type wsEntry struct {
	val []byte
	del bool
}

type undoRec struct {
	key  string
	prev *wsEntry // nil: the key was not in the write set
}

// CommitHook runs at commit before the writes are proposed; it may veto the commit, and the
// returned release runs after the commit's outcome is known. sqlfront uses it to hold table
// metadata locks across the storage round trip so DDL cannot interleave with a commit.
type CommitHook func() (release func(), err error)

// ID identifies the transaction.
func (t *Txn) ID() uint64 { return t.id }

// Snapshot is the read point of plain reads.
func (t *Txn) Snapshot() LSN { return t.snap }

// SetLockWaitTimeout changes the lock wait of later lock requests.
func (t *Txn) SetLockWaitTimeout(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d > 0 {
		t.opts.LockWaitTimeout = d
	}
}

// OnCommit adds a hook run at commit.
func (t *Txn) OnCommit(h CommitHook) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hooks = append(t.hooks, h)
}

// Done reports whether the transaction committed or rolled back.
func (t *Txn) Done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

// HasWrites reports whether the transaction wrote anything.
func (t *Txn) HasWrites() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.writes) > 0
}

var errDone = errors.New("engine: transaction already finished")

// ErrOutcomeUnknown marks a commit whose redo batch may have reached storage: the store
// failed (fenced, unavailable, cancelled) after the batch was handed to it, so the commit may
// still be, or become, durable. The client must not be told it failed.
var ErrOutcomeUnknown = errors.New("commit outcome unknown")

// Get reads key at the transaction's snapshot, seeing its own writes.
func (t *Txn) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return nil, false, errDone
	}
	if w, ok := t.writes[string(key)]; ok {
		t.mu.Unlock()
		return w.val, !w.del, nil
	}
	t.mu.Unlock()
	return t.e.read(ctx, key, t.snap)
}

// GetForUpdate locks key and reads its latest committed version (or the transaction's own
// write), as InnoDB's locking reads do.
func (t *Txn) GetForUpdate(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := t.Lock(ctx, key); err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	if w, ok := t.writes[string(key)]; ok {
		t.mu.Unlock()
		return w.val, !w.del, nil
	}
	t.mu.Unlock()
	// The lock is held, so no commit on key is in flight: the VDL now covers its newest version.
	return t.e.read(ctx, key, t.e.store.VDL())
}

// GetLatest reads the latest committed version of key (or the transaction's own write)
// without locking it.
func (t *Txn) GetLatest(ctx context.Context, key []byte) ([]byte, bool, error) {
	t.mu.Lock()
	if w, ok := t.writes[string(key)]; ok {
		t.mu.Unlock()
		return w.val, !w.del, nil
	}
	t.mu.Unlock()
	return t.e.read(ctx, key, t.e.store.VDL())
}

// Lock takes the exclusive row lock on key, waiting behind its holder. A deadlock makes this
// transaction the victim: it is rolled back and ErrDeadlock returned. A timeout fails only the
// request (ErrLockWaitTimeout); the transaction stays usable, as in InnoDB.
func (t *Txn) Lock(ctx context.Context, key []byte) error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return errDone
	}
	timeout := t.opts.LockWaitTimeout
	t.mu.Unlock()
	err := t.e.locks.acquire(ctx, t, string(key), timeout)
	switch {
	case errors.Is(err, ErrDeadlock):
		t.e.stats.Deadlocks.Add(1)
		t.Rollback()
	case errors.Is(err, ErrLockWaitTimeout):
		t.e.stats.LockTimeouts.Add(1)
	}
	return err
}

// Put buffers a write of key; the key is locked first.
func (t *Txn) Put(ctx context.Context, key, val []byte) error {
	return t.write(ctx, key, val, false)
}

// Delete buffers a delete of key; the key is locked first.
func (t *Txn) Delete(ctx context.Context, key []byte) error {
	return t.write(ctx, key, nil, true)
}

func (t *Txn) write(ctx context.Context, key, val []byte, del bool) error {
	if len(key) == 0 {
		return errors.New("engine: empty key")
	}
	if t.opts.ReadOnly {
		return errors.New("engine: write in a read-only transaction")
	}
	if err := t.Lock(ctx, key); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return errDone
	}
	k := string(key)
	prev, had := t.writes[k]
	if !had {
		prev = nil
		t.sorted = nil
	}
	t.undo = append(t.undo, undoRec{key: k, prev: prev})
	var v []byte
	if !del {
		v = append(make([]byte, 0, len(val)), val...)
	}
	t.writes[k] = &wsEntry{val: v, del: del}
	return nil
}

// PutOwned buffers a write without taking the row lock. Only for DDL that holds the table's
// exclusive metadata lock, under which no other transaction can commit to the table's keys.
func (t *Txn) PutOwned(key, val []byte) { t.writeOwned(key, val, false) }

// DeleteOwned is the delete counterpart of PutOwned.
func (t *Txn) DeleteOwned(key []byte) { t.writeOwned(key, nil, true) }

func (t *Txn) writeOwned(key, val []byte, del bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := string(key)
	prev, had := t.writes[k]
	if !had {
		prev = nil
		t.sorted = nil
	}
	t.undo = append(t.undo, undoRec{key: k, prev: prev})
	if del {
		t.writes[k] = &wsEntry{del: true}
		return
	}
	t.writes[k] = &wsEntry{val: append([]byte{}, val...)}
}

// Savepoint returns a mark that RollbackTo returns the write set to.
func (t *Txn) Savepoint() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.undo)
}

// RollbackTo undoes the writes made after savepoint sp. Locks stay held, as in InnoDB.
func (t *Txn) RollbackTo(sp int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.undo) - 1; i >= sp && i >= 0; i-- {
		u := t.undo[i]
		if u.prev == nil {
			delete(t.writes, u.key)
			t.sorted = nil
		} else {
			t.writes[u.key] = u.prev
		}
	}
	if sp < len(t.undo) {
		t.undo = t.undo[:max(sp, 0)]
	}
}

// Rollback discards the writes and releases every lock. It is safe to call more than once and
// from another goroutine (a waiting lock request then fails).
func (t *Txn) Rollback() {
	t.mu.Lock()
	wasDone := t.done
	t.done = true
	t.writes, t.undo, t.sorted = map[string]*wsEntry{}, nil, nil
	t.mu.Unlock()
	t.killOne.Do(func() { close(t.killed) })
	t.e.locks.releaseAll(t)
	t.e.finished(t)
	if !wasDone {
		t.e.stats.Rollbacks.Add(1)
	}
}

// Commit makes the writes durable as one redo batch and returns its LSN (0 for a transaction
// that wrote nothing). It returns only once the batch is durable (VDL >= LSN); no engine-wide
// lock is held meanwhile, so commits of other transactions proceed concurrently. Locks are
// released whatever the outcome. An error leaves the outcome unknown to the caller only if it
// wraps a store error; hook errors abort before anything is written.
func (t *Txn) Commit(ctx context.Context) (LSN, error) {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return 0, errDone
	}
	t.done = true
	// In key order (the order the store and the cache take them), from the cached sorted
	// write set, so the keys need no conversion back to strings.
	keys := t.sortedWrites()
	writes := make([]Write, len(keys))
	for i, k := range keys {
		w := t.writes[k]
		writes[i] = Write{Key: []byte(k), Value: w.val, Delete: w.del}
	}
	hooks := t.hooks
	t.mu.Unlock()
	defer func() {
		t.killOne.Do(func() { close(t.killed) })
		t.e.locks.releaseAll(t)
		t.e.finished(t)
	}()
	if len(writes) == 0 {
		t.e.stats.Commits.Add(1)
		return 0, nil
	}
	releases := make([]func(), 0, len(hooks))
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	for _, h := range hooks {
		rel, err := h()
		if err != nil {
			t.e.stats.Rollbacks.Add(1)
			return 0, err
		}
		if rel != nil {
			releases = append(releases, rel)
		}
	}
	t.e.cache.beginWrite(keys)
	lsn, err := t.e.store.Commit(ctx, writes)
	t.e.cache.endWrite(keys, writes, lsn, err == nil)
	if errors.Is(err, volume.ErrReadOnly) {
		// Refused before anything was proposed: a definite failure.
		t.e.stats.Rollbacks.Add(1)
		return 0, fmt.Errorf("commit of %d writes: %w", len(writes), err)
	}
	if err != nil {
		return 0, fmt.Errorf("commit of %d writes: %w: %w", len(writes), ErrOutcomeUnknown, err)
	}
	t.e.stats.Commits.Add(1)
	return lsn, nil
}

// sortedWrites returns the write-set keys in order; call with t.mu held.
func (t *Txn) sortedWrites() []string {
	if t.sorted == nil {
		t.sorted = make([]string, 0, len(t.writes))
		for k := range t.writes {
			t.sorted = append(t.sorted, k)
		}
		sort.Strings(t.sorted)
	}
	return t.sorted
}

// Iterator walks live keys of a range in order: the store's versions at a read point merged
// with the transaction's own writes.
type Iterator struct {
	t      *Txn
	ctx    context.Context
	end    []byte
	at     LSN
	cur    []byte // next store key to fetch from
	done   bool   // the store has nothing past the current page
	err    error
	merged []KV
	mi     int
}

// Scan iterates [start, end) at the snapshot (latest=false) or at the current VDL (latest=true,
// for locking reads, which then lock each row through GetForUpdate).
func (t *Txn) Scan(ctx context.Context, start, end []byte, latest bool) *Iterator {
	at := t.snap
	if latest {
		at = t.e.store.VDL()
	}
	return &Iterator{t: t, ctx: ctx, end: end, at: at, cur: start}
}

// Next returns the next live key and value, or ok=false at the end or on error (see Err).
func (it *Iterator) Next() (KV, bool) {
	for it.mi >= len(it.merged) {
		if it.done || it.err != nil {
			return KV{}, false
		}
		it.fill()
	}
	kv := it.merged[it.mi]
	it.mi++
	return kv, true
}

// Err is the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.err }

const iterPage = 256

func (it *Iterator) fill() {
	kvs, err := it.t.e.store.Scan(it.ctx, it.cur, it.end, it.at, iterPage)
	if err != nil {
		it.err = err
		return
	}
	// The store answered for [cur, coveredEnd).
	coveredEnd := it.end
	if len(kvs) >= iterPage {
		coveredEnd = append(append([]byte(nil), kvs[len(kvs)-1].Key...), 0)
	} else {
		it.done = true
	}
	t := it.t
	t.mu.Lock()
	keys := t.sortedWrites()
	i := sort.SearchStrings(keys, string(it.cur))
	var own []string
	var ownW []*wsEntry
	for ; i < len(keys); i++ {
		k := keys[i]
		if coveredEnd != nil && k >= string(coveredEnd) {
			break
		}
		own = append(own, k)
		ownW = append(ownW, t.writes[k])
	}
	t.mu.Unlock()
	merged := make([]KV, 0, len(kvs)+len(own))
	a, b := 0, 0
	for a < len(kvs) || b < len(own) {
		switch {
		case b >= len(own) || (a < len(kvs) && string(kvs[a].Key) < own[b]):
			merged = append(merged, kvs[a])
			a++
		case a >= len(kvs) || own[b] < string(kvs[a].Key):
			if !ownW[b].del {
				merged = append(merged, KV{Key: []byte(own[b]), Value: ownW[b].val})
			}
			b++
		default: // same key: the own write wins
			if !ownW[b].del {
				merged = append(merged, KV{Key: []byte(own[b]), Value: ownW[b].val})
			}
			a++
			b++
		}
	}
	it.merged, it.mi = merged, 0
	it.cur = coveredEnd
}
