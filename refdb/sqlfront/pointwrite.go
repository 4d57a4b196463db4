package sqlfront

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/expression"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// Point writes: prepared statements of the exact forms
//
//	UPDATE [db.]table SET col = expr [, col = expr ...] WHERE pk1 = ? [AND pk2 = ? ...]
//	DELETE FROM [db.]table WHERE pk1 = ? [AND pk2 = ? ...]
//
// where expr is ?, or column + / - (? or an integer literal), on a table whose primary key is
// those integer columns, are executed by one locking key read and the table's own row editor,
// as pointget.go does for point selects: go-mysql-server binds, analyzes and builds every
// execution of a prepared statement from scratch, which was well over half of the writer's CPU
// on sysbench's write statements.
//
// The result must be what go-mysql-server's plan would do, step by step, so each step calls
// the code that plan runs: the bound arguments become literals through the planner's own
// ConvertVal, assignments are its SetField / Arithmetic expressions, rows are compared with
// sql.Row.Equals, written through the table's editor (StatementBegin, Update / Delete,
// DiscardChanges on error) after the same locking read (Txn.GetForUpdate) the plan's row
// iterator does, and the transaction is begun and committed as Engine.QueryWithBindings and
// TransactionCommittingIter do. Anything that could make the plan differ — another database,
// DDL on the table since prepare (tableVersion), an argument of another type, an
// out-of-range key (the planner turns it into a locking scan), generated or ON UPDATE columns,
// read-only mode — sends the execution to go-mysql-server unchanged. refdb tables have no
// triggers, foreign keys or check constraints (sqlfront stores none), so none can apply.
type pointWrite struct {
	delete    bool
	db, table string // db "" = the session's current database
	keyCols   []string
	keyArgs   []string
	sets      []setClause

	// Resolved against this table definition at prepare time.
	tableVersion
	args     []string // the bind variable of each primary-key column, in key order
	unsigned []bool
	assigns  []assignment
}

// setClause is one parsed assignment: col = ? (src "", arg set), or col = src op (arg | lit).
type setClause struct {
	col, src, op string
	arg          string            // bind variable name, or ""
	lit          *sqlparser.SQLVal // an integer literal when arg is ""
}

// assignment is a setClause resolved to column ordinals.
type assignment struct {
	col int
	src int // -1: the value is the argument itself
	setClause
}

// parsePointWrite returns the point-write plan of query, or nil when it has another shape.
func parsePointWrite(query string) *pointWrite {
	// Cheap pre-check: only UPDATE and DELETE statements can qualify.
	if len(query) < 6 || !(strings.EqualFold(query[:6], "update") || strings.EqualFold(query[:6], "delete")) {
		return nil
	}
	stmt, err := sqlparser.Parse(query)
	if err != nil {
		return nil
	}
	var pw *pointWrite
	var where *sqlparser.Where
	var tableExprs sqlparser.TableExprs
	var exprs sqlparser.AssignmentExprs
	switch s := stmt.(type) {
	case *sqlparser.Update:
		if len(s.Comments) > 0 || s.Ignore != "" || s.With != nil || s.OrderBy != nil || s.Limit != nil || s.Returning != nil ||
			len(s.Exprs) == 0 {
			return nil
		}
		pw, where, tableExprs, exprs = &pointWrite{}, s.Where, s.TableExprs, s.Exprs
	case *sqlparser.Delete:
		if len(s.Comments) > 0 || s.Targets != nil || s.With != nil || s.Partitions != nil || s.OrderBy != nil ||
			s.Limit != nil || s.Returning != nil {
			return nil
		}
		pw, where, tableExprs = &pointWrite{delete: true}, s.Where, s.TableExprs
	default:
		return nil
	}
	if where == nil || where.Type != sqlparser.WhereStr || len(tableExprs) != 1 {
		return nil
	}
	from, ok := tableExprs[0].(*sqlparser.AliasedTableExpr)
	if !ok || from.Partitions != nil || from.Hints != nil || from.AsOf != nil || from.Lateral {
		return nil
	}
	tn, ok := from.Expr.(sqlparser.TableName)
	if !ok || !tn.SchemaQualifier.IsEmpty() {
		return nil
	}
	pw.db, pw.table = tn.DbQualifier.String(), tn.Name.String()
	qualifierOK := columnQualifier(pw.db, pw.table, from.As.String())
	colName := func(e sqlparser.Expr) (string, bool) {
		c, ok := e.(*sqlparser.ColName)
		if !ok || c.StoredProcVal != nil || !qualifierOK(c.Qualifier) {
			return "", false
		}
		return c.Name.String(), true
	}
	for _, a := range exprs {
		col, ok := colName(a.Name)
		if !ok {
			return nil
		}
		sc := setClause{col: col}
		switch e := a.Expr.(type) {
		case *sqlparser.SQLVal:
			if e.Type != sqlparser.ValArg {
				return nil
			}
			sc.arg = strings.TrimPrefix(string(e.Val), ":")
		case *sqlparser.BinaryExpr:
			if e.Operator != sqlparser.PlusStr && e.Operator != sqlparser.MinusStr {
				return nil
			}
			if sc.src, ok = colName(e.Left); !ok {
				return nil
			}
			sc.op = e.Operator
			v, ok := e.Right.(*sqlparser.SQLVal)
			switch {
			case ok && v.Type == sqlparser.ValArg:
				sc.arg = strings.TrimPrefix(string(v.Val), ":")
			case ok && v.Type == sqlparser.IntVal:
				sc.lit = v
			default:
				return nil
			}
		default:
			return nil
		}
		pw.sets = append(pw.sets, sc)
	}
	if pw.keyCols, pw.keyArgs, ok = keyEqualities(where.Expr, qualifierOK); !ok {
		return nil
	}
	return pw
}

// resolvePointWrite binds pw to the table definition the statement was just prepared against.
// It reports false when the statement is not a point write on that table after all.
func (f *Frontend) resolvePointWrite(ctx context.Context, c *mysql.Conn, pw *pointWrite, query string) bool {
	def, m, v, ok := f.preparedTable(ctx, c, query, pw.db, pw.table)
	if !ok {
		return false
	}
	if pw.args, pw.unsigned, ok = resolveKeyArgs(m, pw.keyCols, pw.keyArgs); !ok {
		return false
	}
	// Generated and ON UPDATE columns add assignments of their own to go-mysql-server's plan.
	for _, cd := range def.Columns {
		if cd.Generated != nil || cd.OnUpdate != nil {
			return false
		}
	}
	sch := m.sch.Schema
	for _, sc := range pw.sets {
		a := assignment{setClause: sc, col: sch.IndexOfColName(sc.col), src: -1}
		if a.col < 0 || sch[a.col].PrimaryKey {
			return false // an unknown column (go-mysql-server reports it), or a key change
		}
		for _, b := range pw.assigns {
			if b.col == a.col {
				return false
			}
		}
		if sc.src != "" {
			if a.src = sch.IndexOfColName(sc.src); a.src < 0 {
				return false
			}
		}
		pw.assigns = append(pw.assigns, a)
	}
	pw.tableVersion = v
	return true
}

// execPointWrite runs a point write. handled is false when this execution is not one after
// all: the caller then runs the statement through go-mysql-server.
func (f *Frontend) execPointWrite(ctx context.Context, c *mysql.Conn, pw *pointWrite, prep *mysql.PrepareData,
	callback func(*sqltypes.Result) error) (handled bool, err error) {
	sqlCtx, sess, ok := f.statementSession(ctx, c, prep.PrepareStmt)
	if !ok || f.ReadOnly() {
		return false, nil // read-only: go-mysql-server answers, with its own checks' order
	}
	m, ok := f.sameTable(f.engine(), sqlCtx, pw.db, pw.table, pw.tableVersion)
	if !ok {
		return false, nil
	}
	// Every parameter of the statement is used by the shape; a missing one is go-mysql-server's
	// error to report.
	if len(prep.BindVars) != len(pw.args)+countArgs(pw.sets) {
		return false, nil
	}
	var tuple []byte
	for i, ord := range m.pk {
		bv := prep.BindVars[pw.args[i]]
		if bv == nil {
			return false, nil
		}
		v, inRange, ok := integerArg(bv, pw.unsigned[i])
		if !ok || !inRange {
			return false, nil
		}
		if tuple, err = m.codecs[ord].appendKey(tuple, v, 0); err != nil {
			return false, nil
		}
	}
	exprs, ok := pw.expressions(sqlCtx, m, prep)
	if !ok {
		return false, nil
	}
	tx, autocommit, ok := writeTxn(sqlCtx)
	if !ok {
		return false, nil
	}
	return true, f.runWrite(sqlCtx, sess, c, prep.PrepareStmt, tx, autocommit, &f.writesRun,
		func(sqlCtx *sql.Context, tx *Transaction) (*sqltypes.Result, error) {
			if pw.delete {
				sql.IncrementStatusVariable(sqlCtx, "Com_delete", 1)
				return f.pointDelete(sqlCtx, tx, m, tuple)
			}
			sql.IncrementStatusVariable(sqlCtx, "Com_update", 1)
			return f.pointUpdate(sqlCtx, tx, m, tuple, exprs)
		}, callback)
}

// writeTxn returns the session's transaction for a fast-path write (nil: none yet) and its
// autocommit setting. ok is false when go-mysql-server must run the statement: a read-only
// transaction (its error and checks' order are the planner's) or one of another kind.
func writeTxn(sqlCtx *sql.Context) (tx *Transaction, autocommit, ok bool) {
	switch t := sqlCtx.GetTransaction().(type) {
	case nil:
	case *Transaction:
		if t.readOnly {
			return nil, false, false
		}
		tx = t
	default:
		return nil, false, false
	}
	autocommit, err := plan.IsSessionAutocommit(sqlCtx)
	if err != nil {
		return nil, false, false
	}
	return tx, autocommit, true
}

// runWrite runs a fast-path write statement, do, as Engine.QueryWithBindings runs a planned
// one: it shows in SHOW PROCESSLIST and KILL QUERY and max_execution_time reach its lock waits;
// it runs in the session's transaction or a new one, which autocommit commits after it; and
// the OK packet carries the session's status flags.
func (f *Frontend) runWrite(sqlCtx *sql.Context, sess *Session, c *mysql.Conn, query string, tx *Transaction, autocommit bool,
	runs *atomic.Uint64, do func(*sql.Context, *Transaction) (*sqltypes.Result, error), callback func(*sqltypes.Result) error) error {
	sqlCtx, end, err := beginStatement(sqlCtx, sess, query, runs)
	if err != nil {
		return err
	}
	defer end()
	// As Engine.QueryWithBindings: the session's transaction, else a new one (committed below
	// under autocommit; with autocommit off it stays open for the statements that follow).
	if tx == nil {
		ntx, err := sess.StartTransaction(sqlCtx, sql.ReadWrite)
		if err != nil {
			return sql.CastSQLError(err)
		}
		sqlCtx.SetTransaction(ntx)
		tx = ntx.(*Transaction)
	}
	res, err := do(sqlCtx, tx)
	if err != nil {
		// The transaction stays as the failed statement left it: CommandEnd rolls an
		// autocommit one back, an explicit one lives on without the statement's writes.
		return sql.CastSQLError(err)
	}
	// As TransactionCommittingIter.Close.
	if autocommit && !sqlCtx.GetIgnoreAutoCommit() {
		if err := sess.CommitTransaction(sqlCtx, tx); err != nil {
			return sql.CastSQLError(err)
		}
		sqlCtx.SetTransaction(nil)
	}
	setStatusFlags(c, autocommit, sqlCtx.GetTransaction() != nil)
	return callback(res)
}

func countArgs(sets []setClause) int {
	n := 0
	for _, sc := range sets {
		if sc.arg != "" {
			n++
		}
	}
	return n
}

// expressions builds the assignments of one execution, as go-mysql-server's planner builds
// them with the arguments bound: SetField(GetField(col), value), value being the argument's
// literal or Plus/Minus(GetField(src), literal). ok is false for an argument the planner
// would not turn into a plain literal.
func (pw *pointWrite) expressions(ctx *sql.Context, m *tableMeta, prep *mysql.PrepareData) (exprs []sql.Expression, ok bool) {
	if pw.delete {
		return nil, true
	}
	b := planbuilder.New(ctx, nil, nil, nil)
	sch := m.sch.Schema
	getField := func(i int) sql.Expression {
		c := sch[i]
		return expression.NewGetFieldWithTable(i, 0, c.Type, c.DatabaseSource, c.Source, c.Name, c.Nullable)
	}
	for _, a := range pw.assigns {
		lit, ok := valueLiteral(b, prep.BindVars, a.arg, a.lit)
		if !ok {
			return nil, false
		}
		val := lit
		switch a.op {
		case sqlparser.PlusStr:
			val = expression.NewPlus(getField(a.src), lit)
		case sqlparser.MinusStr:
			val = expression.NewMinus(getField(a.src), lit)
		}
		exprs = append(exprs, strictSet(expression.NewSetField(getField(a.col), val)))
	}
	return exprs, true
}

// valueLiteral is the literal the planner makes of a value in a statement: bind variable arg
// of binds, or else the constant lit, or else (lit nil) NULL. ok is false for a missing
// argument or one the planner would not turn into a plain literal.
func valueLiteral(b *planbuilder.Builder, binds map[string]*querypb.BindVariable, arg string, lit *sqlparser.SQLVal) (sql.Expression, bool) {
	switch {
	case arg != "":
		bv := binds[arg]
		if bv == nil {
			return nil, false
		}
		return bindLiteral(b, bv)
	case lit != nil:
		return convertVal(b, lit)
	}
	return expression.NewLiteral(nil, types.Null), true
}

// bindLiteral turns a bound argument into the expression go-mysql-server's handler and
// planner make of it (server.bindingsToExprs, then Builder.SetBindings).
func bindLiteral(b *planbuilder.Builder, bv *querypb.BindVariable) (sql.Expression, bool) {
	v, err := sqltypes.BindVariableToValue(bv)
	if err != nil {
		return nil, false
	}
	e, err := sqlparser.ExprFromValue(v)
	if err != nil {
		return nil, false
	}
	switch x := e.(type) {
	case *sqlparser.NullVal:
		return expression.NewLiteral(nil, types.Null), true
	case *sqlparser.SQLVal:
		return convertVal(b, x)
	}
	return nil, false
}

// convertVal is Builder.ConvertVal, which reports errors by panicking (the planner recovers
// them into the statement's error): such a value is left to the planner.
func convertVal(b *planbuilder.Builder, v *sqlparser.SQLVal) (e sql.Expression, ok bool) {
	defer func() {
		if recover() != nil {
			e, ok = nil, false
		}
	}()
	e = b.ConvertVal(v)
	_, isLit := e.(*expression.Literal)
	return e, isLit
}

// table is m as the row editors see it.
func (f *Frontend) table(m *tableMeta) *Table {
	return &Table{db: &Database{fe: f, name: m.def.DB}, m: m}
}

// pointUpdate is go-mysql-server's UPDATE plan on one primary key: the locking read of the
// row, the assignments, and the update through the table's editor when the row changed.
func (f *Frontend) pointUpdate(ctx *sql.Context, tx *Transaction, m *tableMeta, tuple []byte, exprs []sql.Expression) (*sqltypes.Result, error) {
	ed := f.table(m).editor(ctx)
	ed.StatementBegin(ctx)
	matched, changed, err := func() (matched, changed int, err error) {
		val, found, err := tx.engineTxn().GetForUpdate(ctx, m.pkKey(tuple))
		if err != nil || !found {
			return 0, 0, toSQLError(err)
		}
		old, err := decodeRow(m.codecs, val)
		if err != nil {
			return 0, 0, fmt.Errorf("table %s key %x: %w", m.def.Name, tuple, err)
		}
		row := old
		for _, e := range exprs {
			v, err := e.Eval(ctx, row)
			if err != nil {
				return 1, 0, err
			}
			var ok bool
			if row, ok = v.(sql.Row); !ok {
				return 1, 0, plan.ErrUpdateUnexpectedSetResult.New(v)
			}
		}
		equal, err := old.Equals(ctx, row, m.sch.Schema)
		if err != nil || equal {
			return 1, 0, err
		}
		// As updateIter.validateNullability.
		for i, col := range m.sch.Schema {
			if !col.Nullable && row[i] == nil {
				return 1, 0, sql.ErrInsertIntoNonNullableProvidedNull.New(col.Name)
			}
		}
		return 1, 1, ed.Update(ctx, old, row)
	}()
	if err != nil {
		_ = ed.DiscardChanges(ctx, err)
		return nil, err
	}
	if err := ed.StatementComplete(ctx); err != nil {
		return nil, err
	}
	// As the update accumulator: FOUND_ROWS() is the rows matched, ROW_COUNT() the rows
	// affected, which CLIENT_FOUND_ROWS makes the matched ones too.
	affected := changed
	if ctx.Client().Capabilities&mysql.CapabilityClientFoundRows != 0 {
		affected = matched
	}
	ctx.SetLastQueryInfoInt(sql.FoundRows, int64(matched))
	ctx.SetLastQueryInfoInt(sql.RowCount, int64(affected))
	info := plan.UpdateInfo{Matched: matched, Updated: changed}
	return &sqltypes.Result{RowsAffected: uint64(affected), Info: info.String()}, nil
}

// pointDelete is go-mysql-server's DELETE plan on one primary key: the locking read of the
// row and its delete through the table's editor.
func (f *Frontend) pointDelete(ctx *sql.Context, tx *Transaction, m *tableMeta, tuple []byte) (*sqltypes.Result, error) {
	ed := f.table(m).editor(ctx)
	ed.StatementBegin(ctx)
	deleted, err := func() (int, error) {
		val, found, err := tx.engineTxn().GetForUpdate(ctx, m.pkKey(tuple))
		if err != nil || !found {
			return 0, toSQLError(err)
		}
		old, err := decodeRow(m.codecs, val)
		if err != nil {
			return 0, fmt.Errorf("table %s key %x: %w", m.def.Name, tuple, err)
		}
		return 1, ed.Delete(ctx, old)
	}()
	if err != nil {
		_ = ed.DiscardChanges(ctx, err)
		return nil, err
	}
	if err := ed.StatementComplete(ctx); err != nil {
		return nil, err
	}
	ctx.SetLastQueryInfoInt(sql.RowCount, int64(deleted))
	return &sqltypes.Result{RowsAffected: uint64(deleted)}, nil
}

// setStatusFlags sets the connection's autocommit and in-transaction status flags for the OK
// packet, as go-mysql-server's handler does after every statement.
func setStatusFlags(c *mysql.Conn, autocommit, inTxn bool) {
	if autocommit {
		c.StatusFlags |= uint16(mysql.ServerStatusAutocommit)
	} else {
		c.StatusFlags &^= uint16(mysql.ServerStatusAutocommit)
	}
	if inTxn {
		c.StatusFlags |= uint16(mysql.ServerInTransaction)
	} else {
		c.StatusFlags &^= uint16(mysql.ServerInTransaction)
	}
}
