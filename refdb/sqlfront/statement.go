package sqlfront

import (
	"context"
	"sync/atomic"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
)

// What the fast paths (point gets, point writes, BEGIN / COMMIT) share with go-mysql-server's
// handler around running a statement.

// statementSession is the go-mysql-server context for query on connection c and the refdb
// session behind it; ok=false leaves the statement to go-mysql-server.
func (f *Frontend) statementSession(ctx context.Context, c *mysql.Conn, query string) (*sql.Context, *Session, bool) {
	sqlCtx, err := f.srv.SessionManager().NewContextWithQuery(ctx, c, query)
	if err != nil {
		return nil, nil, false
	}
	sess, ok := sqlCtx.Session.(*Session)
	return sqlCtx, sess, ok
}

// beginStatement makes the statement ours as the handler would: it shows in SHOW
// PROCESSLIST, KILL QUERY and max_execution_time reach it, the session's command lifecycle
// runs around it, it starts with no warnings, and it counts in Questions and in runs. Call
// end once it is done.
func beginStatement(sqlCtx *sql.Context, sess *Session, query string, runs *atomic.Uint64) (_ *sql.Context, end func(), err error) {
	sqlCtx, err = sqlCtx.ProcessList.BeginQuery(sqlCtx, query)
	if err != nil {
		return nil, nil, err
	}
	if err := sql.SessionCommandBegin(sess); err != nil {
		sqlCtx.ProcessList.EndQuery(sqlCtx)
		return nil, nil, err
	}
	sqlCtx.ClearWarnings()
	runs.Add(1)
	sql.IncrementStatusVariable(sqlCtx, "Questions", 1)
	return sqlCtx, func() {
		sql.SessionCommandEnd(sess)
		sqlCtx.ProcessList.EndQuery(sqlCtx)
	}, nil
}
