package sqlfront

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Session is a client connection's session. It owns the connection's engine transaction and
// makes sure its locks are released on every path: go-mysql-server commits an autocommit
// transaction only when a statement succeeds and never rolls one back after a failure, so
// CommandEnd rolls back whatever an implicit transaction left behind.
type Session struct {
	*sql.BaseSession
	fe *Frontend

	mu      sync.Mutex
	cur     *Transaction
	orphans []*Transaction // transactions go-mysql-server dropped without ending them
}

// GetSessionVariable answers read_only and super_read_only from the instance's role as it is
// now: go-mysql-server copies even global-only variables into a session when it opens, so a
// connection opened before a promotion would go on showing the old role.
func (s *Session) GetSessionVariable(ctx *sql.Context, name string) (interface{}, error) {
	switch strings.ToLower(name) {
	case "read_only", "super_read_only":
		if s.fe.ReadOnly() {
			return int8(1), nil
		}
		return int8(0), nil
	}
	return s.BaseSession.GetSessionVariable(ctx, name)
}

// SetTransaction notes a transaction being replaced while still open (go-mysql-server drops an
// autocommit transaction after a failed statement without rolling it back); CommandEnd ends
// it unless it was put back meanwhile (CALL swaps the transaction out and restores it).
func (s *Session) SetTransaction(tx sql.Transaction) {
	if old, ok := s.BaseSession.GetTransaction().(*Transaction); ok && sql.Transaction(old) != tx {
		s.mu.Lock()
		s.orphans = append(s.orphans, old)
		s.mu.Unlock()
	}
	s.BaseSession.SetTransaction(tx)
}

func (s *Session) endOrphans() {
	s.mu.Lock()
	orphans := s.orphans
	s.orphans = nil
	s.mu.Unlock()
	cur := s.GetTransaction()
	for _, o := range orphans {
		if sql.Transaction(o) != cur {
			_ = s.Rollback(nil, o)
		}
	}
}

var (
	_ sql.TransactionSession    = (*Session)(nil)
	_ sql.LifecycleAwareSession = (*Session)(nil)
)

// Transaction is go-mysql-server's handle on an engine transaction. The engine transaction is
// replaced when a deadlock rolled it back, as InnoDB starts a new one after error 1213.
type Transaction struct {
	mu         sync.Mutex
	fe         *Frontend
	txn        *engine.Txn
	opts       engine.TxnOptions
	readOnly   bool
	savepoints []savepoint
	hooked     map[uint32]uint64 // tables whose commit hook is installed, by id -> version
}

type savepoint struct {
	name string
	mark int
}

func (t *Transaction) String() string   { return fmt.Sprintf("refdb txn %d", t.engineTxn().ID()) }
func (t *Transaction) IsReadOnly() bool { return t.readOnly }

// engineTxn returns the live engine transaction, starting a new one after a deadlock rollback.
func (t *Transaction) engineTxn() *engine.Txn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.txn.Done() {
		t.txn = t.fe.engine().Begin(t.opts)
		t.savepoints = nil
		t.hooked = map[uint32]uint64{}
	}
	return t.txn
}

// touch makes the commit of this transaction check table tbl's definition version.
func (t *Transaction) touch(txn *engine.Txn, tbl *engine.TableDef) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.hooked[tbl.ID]; ok {
		if v != tbl.Version {
			return sqlErr(erTableDefChanged, "HY000", engine.ErrTableDefChanged.Error())
		}
		return nil
	}
	t.hooked[tbl.ID] = tbl.Version
	txn.OnCommit(t.fe.engine().TableCommitHook(tbl.ID, tbl.Version))
	return nil
}

func (s *Session) lockWait(ctx *sql.Context) time.Duration {
	v, err := s.GetSessionVariable(ctx, "innodb_lock_wait_timeout")
	if err != nil {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return time.Duration(n) * time.Second
	case int32:
		return time.Duration(n) * time.Second
	case int:
		return time.Duration(n) * time.Second
	case uint64:
		return time.Duration(n) * time.Second
	}
	return 0
}

// StartTransaction implements sql.TransactionSession.
func (s *Session) StartTransaction(ctx *sql.Context, c sql.TransactionCharacteristic) (sql.Transaction, error) {
	opts := engine.TxnOptions{LockWaitTimeout: s.lockWait(ctx), ReadOnly: c == sql.ReadOnly}
	t := &Transaction{fe: s.fe, txn: s.fe.engine().Begin(opts), opts: opts, readOnly: c == sql.ReadOnly, hooked: map[uint32]uint64{}}
	s.mu.Lock()
	s.cur = t
	s.mu.Unlock()
	return t, nil
}

// CommitTransaction implements sql.TransactionSession.
func (s *Session) CommitTransaction(ctx *sql.Context, tx sql.Transaction) error {
	t, ok := tx.(*Transaction)
	if !ok {
		return fmt.Errorf("commit: foreign transaction %T", tx)
	}
	t.mu.Lock()
	txn := t.txn
	t.mu.Unlock()
	if txn.Done() {
		return nil // rolled back by a deadlock: nothing left to commit
	}
	if _, err := txn.Commit(ctx); err != nil {
		if errors.Is(err, engine.ErrOutcomeUnknown) {
			// A MySQL error would tell the client the transaction failed, yet the batch may
			// be (or become) durable: a fenced writer's batch can survive the new writer's
			// recovery. Like a server that dies mid-commit, drop the connection after this
			// statement, so the client sees the outcome as unknown.
			s.fe.dropAfterStatement(s.ID())
		}
		if errors.Is(err, volume.ErrUnavailable) {
			// The outcome is unknown: the writer keeps retransmitting the batch.
			return sqlErr(erErrorDuringCommit, "HY000", fmt.Sprintf("Got error 5 - 'storage unavailable, the commit outcome is unknown: %s' during COMMIT", oneLine(err)))
		}
		return toSQLError(err)
	}
	return nil
}

// Rollback implements sql.TransactionSession.
func (s *Session) Rollback(ctx *sql.Context, tx sql.Transaction) error {
	if t, ok := tx.(*Transaction); ok {
		t.mu.Lock()
		t.txn.Rollback()
		t.mu.Unlock()
	}
	return nil
}

// CreateSavepoint implements sql.TransactionSession.
func (s *Session) CreateSavepoint(ctx *sql.Context, tx sql.Transaction, name string) error {
	t := tx.(*Transaction)
	txn := t.engineTxn()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropSavepoint(name)
	t.savepoints = append(t.savepoints, savepoint{name: name, mark: txn.Savepoint()})
	return nil
}

func (t *Transaction) dropSavepoint(name string) int {
	for i, sp := range t.savepoints {
		if strings.EqualFold(sp.name, name) {
			t.savepoints = append(t.savepoints[:i], t.savepoints[i+1:]...)
			return i
		}
	}
	return -1
}

// RollbackToSavepoint implements sql.TransactionSession.
func (s *Session) RollbackToSavepoint(ctx *sql.Context, tx sql.Transaction, name string) error {
	t := tx.(*Transaction)
	txn := t.engineTxn()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, sp := range t.savepoints {
		if strings.EqualFold(sp.name, name) {
			txn.RollbackTo(sp.mark)
			t.savepoints = t.savepoints[:i+1] // later savepoints are gone, this one stays
			return nil
		}
	}
	return sql.ErrSavepointDoesNotExist.New(name)
}

// ReleaseSavepoint implements sql.TransactionSession.
func (s *Session) ReleaseSavepoint(ctx *sql.Context, tx sql.Transaction, name string) error {
	t := tx.(*Transaction)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropSavepoint(name) < 0 {
		return sql.ErrSavepointDoesNotExist.New(name)
	}
	return nil
}

// CommandBegin implements sql.LifecycleAwareSession.
func (s *Session) CommandBegin() error { return nil }

// CommandEnd implements sql.LifecycleAwareSession: an implicit (autocommit) transaction still
// open when a command ends belongs to a statement that failed; roll it back so its locks go.
func (s *Session) CommandEnd() {
	defer s.endOrphans()
	tx := s.GetTransaction()
	if tx == nil || s.GetIgnoreAutoCommit() {
		return
	}
	ctx := sql.NewContext(context.Background(), sql.WithSession(s))
	v, err := s.GetSessionVariable(ctx, sql.AutoCommitSessionVar)
	if err != nil {
		return
	}
	if on, _ := sql.ConvertToBool(ctx, v); !on {
		return
	}
	_ = s.Rollback(ctx, tx)
	s.SetTransaction(nil)
}

// SessionEnd implements sql.LifecycleAwareSession: a closed connection rolls back its
// transaction.
func (s *Session) SessionEnd() {
	if tx := s.GetTransaction(); tx != nil {
		_ = s.Rollback(nil, tx)
		s.SetTransaction(nil)
	}
	s.endOrphans()
}

// current returns the session's transaction, starting one if go-mysql-server has not (some
// internal paths read tables without one).
func current(ctx *sql.Context) (*Transaction, error) {
	tx := ctx.GetTransaction()
	if t, ok := tx.(*Transaction); ok {
		return t, nil
	}
	s, ok := ctx.Session.(*Session)
	if !ok {
		return nil, fmt.Errorf("refdb: session %T is not a refdb session", ctx.Session)
	}
	ntx, err := s.StartTransaction(ctx, sql.ReadWrite)
	if err != nil {
		return nil, err
	}
	ctx.SetTransaction(ntx)
	return ntx.(*Transaction), nil
}

func sqlErr(code int, state, msg string) *mysql.SQLError {
	return mysql.NewSQLError(code, state, "%s", msg)
}

// toSQLError maps engine errors to the MySQL errors clients know how to handle.
func toSQLError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrDeadlock):
		return sqlErr(mysql.ERLockDeadlock, "40001", engine.ErrDeadlock.Error())
	case errors.Is(err, engine.ErrLockWaitTimeout):
		return sqlErr(mysql.ERLockWaitTimeout, "HY000", engine.ErrLockWaitTimeout.Error())
	case errors.Is(err, engine.ErrTableDefChanged):
		return sqlErr(erTableDefChanged, "HY000", engine.ErrTableDefChanged.Error())
	case errors.Is(err, volume.ErrReadOnly):
		// A write that reached the volume of a reader (a path that did not check first).
		return errReadOnly()
	case errors.Is(err, volume.ErrUnavailable):
		return sqlErr(erGetErrno, "HY000", fmt.Sprintf("Got error 5 - 'storage unavailable: %s' from storage engine", oneLine(err)))
	}
	var se *mysql.SQLError
	if errors.As(err, &se) {
		return se
	}
	return err
}

// erTableDefChanged is MySQL's ER_TABLE_DEF_CHANGED.
const erTableDefChanged = 1412

// oneLine renders err on one line (joined errors are separated by newlines).
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
