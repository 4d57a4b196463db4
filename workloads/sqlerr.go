package workloads

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Definite reports whether err proves the operation did not take effect:
// the server answered with an error (the transaction was rolled back), or
// the client never reached the server. A lost connection or a timeout
// while a statement or COMMIT was in flight proves nothing.
func Definite(err error) bool {
	if err == nil {
		return false
	}
	var ns notSent
	if errors.As(err, &ns) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 40001 serialization failure, 40P01 deadlock, 23xxx constraint,
		// 25006 read-only transaction, 57P01 admin shutdown before commit.
		// Any server error rolls the transaction back in PostgreSQL, except
		// when it is raised by COMMIT itself after the WAL was flushed,
		// which PostgreSQL never does.
		return true
	}
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql only surfaces ErrBadConn when the driver knows it did
		// not send the query; retries are exhausted.
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errTxDone) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return strings.Contains(err.Error(), "connection refused")
}

// errTxDone marks a transaction we rolled back ourselves (a business
// rule, such as insufficient funds), which is a definite failure.
var errTxDone = errors.New("transaction rolled back by the client")

// IsRetryable reports a transient conflict (deadlock, lock wait timeout,
// serialization failure) that a real application would retry.
func IsRetryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// notSent marks an error that happened before the operation could take
// effect: no connection, or a transaction that failed before its COMMIT
// was sent (the server rolls it back).
type notSent struct{ err error }

func (e notSent) Error() string { return e.err.Error() }
func (e notSent) Unwrap() error { return e.err }

func definite(err error) error {
	if err == nil {
		return nil
	}
	return notSent{err}
}

// inTx runs fn in a transaction and commits it. Only COMMIT's own failure
// can leave the outcome unknown; anything earlier is a definite failure.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return definite(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return definite(err)
	}
	return tx.Commit()
}

// execOnce runs one autocommit statement on a connection taken from the
// pool first, so that failing to connect (a dead endpoint backend) is told
// apart from losing the connection after the statement was sent.
func execOnce(ctx context.Context, db *sql.DB, query string, args ...any) (sql.Result, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, definite(err)
	}
	defer conn.Close()
	return conn.ExecContext(ctx, query, args...)
}
