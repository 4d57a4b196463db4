package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors a transaction gets from locking. They carry the MySQL error numbers clients retry on.
var (
	// ErrDeadlock: the transaction was chosen as the victim of a lock cycle and rolled back
	// (MySQL 1213, SQLSTATE 40001).
	ErrDeadlock = errors.New("Deadlock found when trying to get lock; try restarting transaction")
	// ErrLockWaitTimeout: a row lock was not granted in time; only the statement fails
	// (MySQL 1205, SQLSTATE HY000).
	ErrLockWaitTimeout = errors.New("Lock wait timeout exceeded; try restarting transaction")
)

// maxWaitChain bounds the wait-for walk; a longer chain is treated as a deadlock, as InnoDB does.
const maxWaitChain = 200

// lockEntry is one locked key: its holder and the FIFO queue of waiters.
type lockEntry struct {
	key    string
	holder *Txn
	queue  []*lockWaiter
}

type lockWaiter struct {
	txn     *Txn
	granted chan struct{}
	ok      bool
}

// lockTable holds exclusive row locks. One mutex guards it: lock operations are short and the
// wait-for graph must be walked atomically with the enqueue to detect every cycle. Fields of
// Txn that describe locks (held, waitingOn) are guarded by this mutex too.
type lockTable struct {
	mu    sync.Mutex
	locks map[string]*lockEntry
}

func newLockTable() *lockTable {
	return &lockTable{locks: map[string]*lockEntry{}}
}

// acquire takes the exclusive lock on key for t, waiting up to timeout behind its holder.
func (lt *lockTable) acquire(ctx context.Context, t *Txn, key string, timeout time.Duration) error {
	lt.mu.Lock()
	le := lt.locks[key]
	if le == nil {
		lt.locks[key] = &lockEntry{key: key, holder: t}
		t.held = append(t.held, key)
		lt.mu.Unlock()
		return nil
	}
	if le.holder == t {
		lt.mu.Unlock()
		return nil
	}
	// Would waiting close a cycle? Follow holder -> the lock it waits on -> that lock's holder.
	h, depth := le.holder, 0
	for h != nil {
		if h == t || depth > maxWaitChain {
			lt.mu.Unlock()
			return ErrDeadlock
		}
		if h.waitingOn == nil {
			break
		}
		h = h.waitingOn.holder
		depth++
	}
	w := &lockWaiter{txn: t, granted: make(chan struct{})}
	le.queue = append(le.queue, w)
	t.waitingOn = le
	lt.mu.Unlock()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-w.granted:
		return nil
	case <-timer.C:
		err = ErrLockWaitTimeout
	case <-ctx.Done():
		err = fmt.Errorf("waiting for row lock: %w", ctx.Err())
	case <-t.killed:
		err = ErrDeadlock
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if w.ok { // granted while we were giving up: keep it, the caller holds it now
		return nil
	}
	for i, q := range le.queue {
		if q == w {
			le.queue = append(le.queue[:i], le.queue[i+1:]...)
			break
		}
	}
	t.waitingOn = nil
	return err
}

// releaseAll hands every lock of t to its first waiter, or frees it.
func (lt *lockTable) releaseAll(t *Txn) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for _, key := range t.held {
		le := lt.locks[key]
		if le == nil || le.holder != t {
			continue
		}
		if len(le.queue) == 0 {
			delete(lt.locks, key)
			continue
		}
		w := le.queue[0]
		le.queue = le.queue[1:]
		le.holder = w.txn
		w.txn.waitingOn = nil
		w.txn.held = append(w.txn.held, key)
		w.ok = true
		close(w.granted)
	}
	t.held = nil
}

// holds reports whether t holds the lock on key.
func (lt *lockTable) holds(t *Txn, key string) bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	le := lt.locks[key]
	return le != nil && le.holder == t
}

// size is the number of locked keys (for tests and metrics).
func (lt *lockTable) size() int {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return len(lt.locks)
}
