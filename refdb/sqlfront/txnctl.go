package sqlfront

import (
	"context"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
)

// Prepared BEGIN and COMMIT (sysbench prepares both and runs them around every transaction)
// are executed here, as the plan go-mysql-server builds for them would, without binding,
// analyzing and building that plan on every execution. For BEGIN go-mysql-server also opened
// a transaction before planning, only for the plan to commit it (empty) and open another.
//
// BEGIN: commit the open transaction if any (an implicit commit, as in MySQL), start a
// read-write one and stop autocommit from ending it (rowexec buildStartTransaction).
// COMMIT: commit the open transaction if any and let autocommit resume (buildCommit). A
// failed commit leaves the session as go-mysql-server would: the transaction still set.
// Every other spelling (START TRANSACTION, WORK, READ ONLY, CHAIN...) goes to go-mysql-server.

type txnControl int

const (
	notTxnControl txnControl = iota
	txnBegin
	txnCommit
)

func parseTxnControl(query string) txnControl {
	q := strings.TrimSpace(query)
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	switch {
	case strings.EqualFold(q, "BEGIN"):
		return txnBegin
	case strings.EqualFold(q, "COMMIT"):
		return txnCommit
	}
	return notTxnControl
}

func (f *Frontend) execTxnControl(ctx context.Context, c *mysql.Conn, kind txnControl, prep *mysql.PrepareData,
	callback func(*sqltypes.Result) error) (handled bool, err error) {
	if len(prep.BindVars) > 0 {
		return false, nil // go-mysql-server reports the unused arguments
	}
	sqlCtx, sess, ok := f.statementSession(ctx, c, prep.PrepareStmt)
	if !ok {
		return false, nil
	}
	switch sqlCtx.GetTransaction().(type) {
	case nil, *Transaction:
	default:
		return false, nil
	}
	sqlCtx, end, err := beginStatement(sqlCtx, sess, prep.PrepareStmt, &f.txnCtlRun)
	if err != nil {
		return true, err
	}
	defer end()
	if cur := sqlCtx.GetTransaction(); cur != nil {
		if err := sess.CommitTransaction(sqlCtx, cur); err != nil {
			return true, sql.CastSQLError(err)
		}
		sqlCtx.SetTransaction(nil)
	}
	if kind == txnBegin {
		tx, err := sess.StartTransaction(sqlCtx, sql.ReadWrite)
		if err != nil {
			return true, sql.CastSQLError(err)
		}
		sqlCtx.SetTransaction(tx)
		sqlCtx.SetIgnoreAutoCommit(true)
	} else {
		sqlCtx.SetIgnoreAutoCommit(false)
	}
	// go-mysql-server tracks these statements as row-returning ones (ROW_COUNT() -1 after).
	sqlCtx.SetLastQueryInfoInt(sql.RowCount, -1)
	autocommit, err := plan.IsSessionAutocommit(sqlCtx)
	if err != nil {
		return true, err
	}
	setStatusFlags(c, autocommit, sqlCtx.GetTransaction() != nil)
	return true, callback(&sqltypes.Result{})
}
