package sqlfront

import (
	"context"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// Point gets: a prepared statement of the exact form
//
//	SELECT col [, col ...] | * FROM [db.]table WHERE pk1 = ? [AND pk2 = ? ...]
//
// on a table whose primary key is those integer columns is executed by one key read, the way
// TiDB's PointGet plan or MySQL's const access does. go-mysql-server plans every execution of a
// prepared statement from scratch (bind, analyze, build): for sysbench's point selects that was
// half of the writer's CPU, for a read that is a single cache lookup. The shape is checked
// once at prepare time; everything that may change (the current database, the table's
// definition, the bound values' types, autocommit) is checked at every execution, and anything
// outside the shape goes to go-mysql-server unchanged. The result columns are the ones
// go-mysql-server computed when it prepared the statement.
type pointGet struct {
	db, table string   // db "" = the session's current database
	cols      []string // projected columns in order; nil = every column
	keyCols   []string // the WHERE columns, in the order of their parameters
	keyArgs   []string // their bind variable names (v1, v2, ...)
	fields    []*querypb.Field
	// The table definition the plan was resolved against: after any DDL on the table the
	// statement goes back to go-mysql-server, which answers with the new columns. Under that
	// definition the plan below never changes, so it is resolved once, at prepare time.
	tableVersion
	args     []string   // the bind variable of each primary-key column, in key order
	unsigned []bool     // whether that column is unsigned
	proj     []int      // ordinals of the projected columns
	projSch  sql.Schema // their schema
}

// preparedPlans remembers the plans of prepared statements (point gets, point writes).
// Entries are keyed by the connection's PrepareData through weak pointers and dropped when
// the statement is gone (COM_STMT_CLOSE or the connection's end), so the map never outlives
// what it describes.
type preparedPlans[T any] struct {
	mu sync.Mutex
	m  map[weak.Pointer[mysql.PrepareData]]*T
}

func (p *preparedPlans[T]) add(prep *mysql.PrepareData, plan *T) {
	k := weak.Make(prep)
	p.mu.Lock()
	if p.m == nil {
		p.m = map[weak.Pointer[mysql.PrepareData]]*T{}
	}
	p.m[k] = plan
	p.mu.Unlock()
	runtime.AddCleanup(prep, func(k weak.Pointer[mysql.PrepareData]) {
		p.mu.Lock()
		delete(p.m, k)
		p.mu.Unlock()
	}, k)
}

func (p *preparedPlans[T]) get(prep *mysql.PrepareData) *T {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[weak.Make(prep)]
}

// pointGetOf returns the point-get plan of a statement parseSimpleSelect has parsed, or nil
// when it has another shape (or sel is nil: no simple SELECT).
func pointGetOf(sel *sqlparser.Select, head selectHead, qualifierOK func(sqlparser.TableName) bool) *pointGet {
	if sel == nil || sel.OrderBy != nil || sel.Limit != nil {
		return nil
	}
	pg := &pointGet{db: head.db, table: head.table, cols: head.cols}
	var ok bool
	if pg.keyCols, pg.keyArgs, ok = keyEqualities(sel.Where.Expr, qualifierOK); !ok {
		return nil
	}
	return pg
}

// selectHead is what a fast-path SELECT reads: [db.]table and the projected columns.
type selectHead struct {
	db, table string   // db "" = the session's current database
	cols      []string // projected columns in order; nil = every column (*)
	aliased   bool     // a column has an alias (AS name), which ORDER BY would refer to first
}

// parseSimpleSelect parses query when it is a SELECT of plain columns (or *) from one table
// with a WHERE clause and nothing else but, possibly, ORDER BY and LIMIT, which the caller
// checks. It returns the statement, its head and the check that a column qualifier names that
// table; sel is nil for any other statement.
func parseSimpleSelect(query string) (sel *sqlparser.Select, head selectHead, qualifierOK func(sqlparser.TableName) bool) {
	// Cheap pre-check: most statements are not SELECTs with a WHERE.
	if len(query) < 6 || !strings.EqualFold(query[:6], "select") {
		return nil, head, nil
	}
	stmt, err := sqlparser.Parse(query)
	if err != nil {
		return nil, head, nil
	}
	sel, ok := stmt.(*sqlparser.Select)
	if !ok || sel.With != nil || sel.GroupBy != nil || sel.Having != nil || sel.Window != nil ||
		sel.Lock != "" || sel.Into != nil || sel.Where == nil || sel.Where.Type != sqlparser.WhereStr ||
		sel.QueryOpts != (sqlparser.QueryOpts{}) || len(sel.From) != 1 {
		return nil, head, nil
	}
	from, ok := sel.From[0].(*sqlparser.AliasedTableExpr)
	if !ok || from.Partitions != nil || from.Hints != nil || from.AsOf != nil || from.Lateral {
		return nil, head, nil
	}
	tn, ok := from.Expr.(sqlparser.TableName)
	if !ok || !tn.SchemaQualifier.IsEmpty() {
		return nil, head, nil
	}
	head = selectHead{db: tn.DbQualifier.String(), table: tn.Name.String()}
	qualifierOK = columnQualifier(head.db, head.table, from.As.String())
	for _, se := range sel.SelectExprs {
		switch e := se.(type) {
		case *sqlparser.StarExpr:
			if len(sel.SelectExprs) != 1 || !e.TableName.IsEmpty() {
				return nil, head, nil
			}
		case *sqlparser.AliasedExpr:
			c, ok := e.Expr.(*sqlparser.ColName)
			if !ok || c.StoredProcVal != nil || !qualifierOK(c.Qualifier) {
				return nil, head, nil
			}
			head.cols = append(head.cols, c.Name.String())
			head.aliased = head.aliased || !e.As.IsEmpty()
		default:
			return nil, head, nil
		}
	}
	return sel, head, qualifierOK
}

// columnQualifier returns the check that a column's qualifier names the statement's one
// table [db.]table (or its alias): anything else is left to go-mysql-server.
func columnQualifier(db, table, alias string) func(sqlparser.TableName) bool {
	return func(q sqlparser.TableName) bool {
		switch {
		case q.IsEmpty():
			return true
		case !q.SchemaQualifier.IsEmpty():
			return false
		case alias != "":
			return q.DbQualifier.IsEmpty() && strings.EqualFold(q.Name.String(), alias)
		case !q.DbQualifier.IsEmpty() && !strings.EqualFold(q.DbQualifier.String(), db):
			return false
		}
		return strings.EqualFold(q.Name.String(), table)
	}
}

// keyEqualities parses a WHERE clause of the form col = ? [AND col = ? ...] (either side,
// parentheses allowed, each column once) into its columns and their bind variable names.
func keyEqualities(where sqlparser.Expr, qualifierOK func(sqlparser.TableName) bool) (cols, args []string, ok bool) {
	var conds []*sqlparser.ComparisonExpr
	var split func(e sqlparser.Expr) bool
	split = func(e sqlparser.Expr) bool {
		switch x := e.(type) {
		case *sqlparser.AndExpr:
			return split(x.Left) && split(x.Right)
		case *sqlparser.ParenExpr:
			return split(x.Expr)
		case *sqlparser.ComparisonExpr:
			conds = append(conds, x)
			return true
		}
		return false
	}
	if !split(where) {
		return nil, nil, false
	}
	for _, cmp := range conds {
		if cmp.Operator != sqlparser.EqualStr || cmp.Escape != nil {
			return nil, nil, false
		}
		c, ok1 := cmp.Left.(*sqlparser.ColName)
		v, ok2 := cmp.Right.(*sqlparser.SQLVal)
		if !ok1 || !ok2 {
			c, ok1 = cmp.Right.(*sqlparser.ColName)
			v, ok2 = cmp.Left.(*sqlparser.SQLVal)
		}
		if !ok1 || !ok2 || v.Type != sqlparser.ValArg || c.StoredProcVal != nil || !qualifierOK(c.Qualifier) {
			return nil, nil, false
		}
		for _, k := range cols {
			if strings.EqualFold(k, c.Name.String()) {
				return nil, nil, false // the same column twice: leave it to the planner
			}
		}
		cols = append(cols, c.Name.String())
		args = append(args, strings.TrimPrefix(string(v.Val), ":"))
	}
	return cols, args, true
}

// resolveKeyArgs matches the WHERE columns of a statement with the primary key of m: the bind
// variable of each key column in key order, and whether the column is unsigned. It reports
// false unless the columns are exactly the primary key and all of integer type.
func resolveKeyArgs(m *tableMeta, keyCols, keyArgs []string) (args []string, unsigned []bool, ok bool) {
	if len(m.pk) != len(keyCols) {
		return nil, nil, false
	}
	for _, ord := range m.pk {
		col := m.sch.Schema[ord]
		j := slices.IndexFunc(keyCols, func(k string) bool { return strings.EqualFold(k, col.Name) })
		if j < 0 || !types.IsInteger(col.Type) {
			return nil, nil, false
		}
		args = append(args, keyArgs[j])
		unsigned = append(unsigned, types.IsUnsigned(col.Type))
	}
	return args, unsigned, true
}

// tableVersion is the table definition a prepared fast path was resolved against. Each
// execution looks the table up by name again (sameTable), and one that finds it dropped,
// replaced or altered since goes to go-mysql-server, which knows the new definition.
type tableVersion struct {
	defID      uint32
	defVersion uint64
}

// preparedTable is statementTable for a statement being prepared on c, with the version its
// plan holds to.
func (f *Frontend) preparedTable(ctx context.Context, c *mysql.Conn, query, db, table string) (*engine.TableDef, *tableMeta, tableVersion, bool) {
	sqlCtx, err := f.srv.SessionManager().NewContextWithQuery(ctx, c, query)
	if err != nil {
		return nil, nil, tableVersion{}, false
	}
	def, m, ok := f.statementTable(f.engine(), sqlCtx, db, table)
	if !ok {
		return nil, nil, tableVersion{}, false
	}
	return def, m, tableVersion{def.ID, def.Version}, true
}

// sameTable is statementTable for an execution of a statement prepared against v: ok is false
// when the table is gone or has another definition now.
func (f *Frontend) sameTable(eng *engine.Engine, sqlCtx *sql.Context, db, table string, v tableVersion) (*tableMeta, bool) {
	def, m, ok := f.statementTable(eng, sqlCtx, db, table)
	if !ok || def.ID != v.defID || def.Version != v.defVersion {
		return nil, false
	}
	return m, true
}

// statementTable finds the table a point get or write names (db "" = the session's current
// database) and its metadata.
func (f *Frontend) statementTable(eng *engine.Engine, sqlCtx *sql.Context, db, table string) (*engine.TableDef, *tableMeta, bool) {
	if db == "" {
		db = sqlCtx.GetCurrentDatabase()
	}
	if db == "" {
		return nil, nil, false
	}
	def, ok := eng.Catalog().Table(db, table)
	if !ok {
		return nil, nil, false
	}
	m, err := f.meta(def)
	if err != nil {
		return nil, nil, false
	}
	return def, m, true
}

// resolvePointGet binds pg to the table definition the statement was just prepared against
// and resolves its plan there: which argument feeds each primary-key column, and the
// projection. It reports false when the statement is not a point get on that table after all
// (another key, a non-integer key column, an unknown column).
func (f *Frontend) resolvePointGet(ctx context.Context, c *mysql.Conn, pg *pointGet, query string) bool {
	_, m, v, ok := f.preparedTable(ctx, c, query, pg.db, pg.table)
	if !ok {
		return false
	}
	if pg.args, pg.unsigned, ok = resolveKeyArgs(m, pg.keyCols, pg.keyArgs); !ok {
		return false
	}
	if pg.proj, pg.projSch, ok = resolveProjection(m, pg.cols); !ok {
		return false
	}
	pg.tableVersion = v
	return true
}

// resolveProjection returns the ordinals and schema of the columns cols of m (nil = every
// column); ok is false for a column m does not have.
func resolveProjection(m *tableMeta, cols []string) (proj []int, projSch sql.Schema, ok bool) {
	sch := m.sch.Schema
	if cols == nil {
		for i := range sch {
			proj = append(proj, i)
		}
	} else {
		for _, name := range cols {
			i := sch.IndexOfColName(name)
			if i < 0 {
				return nil, nil, false
			}
			proj = append(proj, i)
		}
	}
	for _, i := range proj {
		projSch = append(projSch, sch[i])
	}
	return proj, projSch, true
}

// execPointGet runs a point get. handled is false when this execution is not one after all
// (another database, a changed table, a non-integer argument, no autocommit...): the caller
// then runs the statement through go-mysql-server.
func (f *Frontend) execPointGet(ctx context.Context, c *mysql.Conn, pg *pointGet, prep *mysql.PrepareData,
	callback func(*sqltypes.Result) error) (handled bool, err error) {
	sqlCtx, sess, ok := f.statementSession(ctx, c, prep.PrepareStmt)
	if !ok {
		return false, nil
	}
	eng := f.engine()
	m, ok := f.sameTable(eng, sqlCtx, pg.db, pg.table, pg.tableVersion)
	if !ok || len(pg.proj) != len(pg.fields) {
		return false, nil // go-mysql-server reports a missing table, or answers a changed one
	}
	// The key: every primary-key column bound to an integer argument.
	var tuple []byte
	empty := false
	for i, ord := range m.pk {
		bv := prep.BindVars[pg.args[i]]
		if bv == nil {
			return false, nil
		}
		v, inRange, ok := integerArg(bv, pg.unsigned[i])
		if !ok {
			return false, nil
		}
		if !inRange {
			empty = true // no row can have it
			continue
		}
		if tuple, err = m.codecs[ord].appendKey(tuple, v, 0); err != nil {
			return false, nil
		}
	}
	txn, done, ok := readTxn(sqlCtx, sess, eng)
	if !ok {
		return false, nil
	}
	defer done()
	// From here on the statement is ours: it shows in SHOW PROCESSLIST and KILL QUERY and
	// max_execution_time reach its storage read, as for any query.
	sqlCtx, end, err := beginStatement(sqlCtx, sess, prep.PrepareStmt, &f.pointsRun)
	if err != nil {
		return true, err
	}
	defer end()
	sql.IncrementStatusVariable(sqlCtx, "Com_select", 1)
	if empty {
		return true, f.sendPointRow(sqlCtx, callback, pg, nil)
	}
	val, found, err := txn.Get(sqlCtx, m.pkKey(tuple))
	if err != nil {
		return true, toSQLError(err)
	}
	if !found {
		return true, f.sendPointRow(sqlCtx, callback, pg, nil)
	}
	row, err := decodeRow(m.codecs, val)
	if err != nil {
		return true, err
	}
	return true, f.sendPointRow(sqlCtx, callback, pg, project(row, pg.proj))
}

// project returns the columns proj of row, in that order.
func project(row sql.Row, proj []int) sql.Row {
	out := make(sql.Row, len(proj))
	for i, p := range proj {
		out[i] = row[p]
	}
	return out
}

// readTxn is the transaction a fast-path read runs in: the session's open one, else
// (autocommit) a read-only snapshot of its own, which done ends. ok=false leaves the statement
// to go-mysql-server: with autocommit off and none open, it starts the transaction later
// statements must share, and it applies SET sql_select_limit, which would cut the answer.
func readTxn(sqlCtx *sql.Context, sess *Session, eng *engine.Engine) (txn *engine.Txn, done func(), ok bool) {
	if isDefault, _ := sql.HasDefaultValue(sqlCtx, sess, "sql_select_limit"); !isDefault {
		return nil, nil, false
	}
	if t, ok := sqlCtx.GetTransaction().(*Transaction); ok {
		return t.engineTxn(), func() {}, true
	}
	if sqlCtx.GetTransaction() != nil {
		return nil, nil, false
	}
	if auto, err := plan.IsSessionAutocommit(sqlCtx); err != nil || !auto {
		return nil, nil, false
	}
	txn = eng.Begin(engine.TxnOptions{ReadOnly: true, LockWaitTimeout: sess.lockWait(sqlCtx)})
	return txn, txn.Rollback, true
}

func (f *Frontend) sendPointRow(ctx *sql.Context, callback func(*sqltypes.Result) error, pg *pointGet, row sql.Row) error {
	// What ROW_COUNT() and FOUND_ROWS() report after a SELECT, as go-mysql-server sets them.
	ctx.SetLastQueryInfoInt(sql.RowCount, -1)
	found := int64(0)
	if row != nil {
		found = 1
	}
	ctx.SetLastQueryInfoInt(sql.FoundRows, found)
	res := &sqltypes.Result{Fields: pg.fields}
	if row != nil {
		// Not a pooled buffer: with a server-side cursor the callback returns before the
		// client has fetched the row.
		vals, err := server.RowToSQL(ctx, pg.projSch, row, nil, sql.NewByteBuffer(256))
		if err != nil {
			return err
		}
		res.Rows = [][]sqltypes.Value{vals}
		res.RowsAffected = 1
	}
	return callback(res)
}

// integerArg reads an integer bind variable as the key codec wants it (int64, or uint64 for
// an unsigned column). inRange is false for a value no such column can hold (no row
// matches); ok is false for an argument that is not an integer at all.
func integerArg(bv *querypb.BindVariable, unsigned bool) (v any, inRange, ok bool) {
	switch {
	case sqltypes.IsSigned(bv.Type):
		n, err := strconv.ParseInt(string(bv.Value), 10, 64)
		if err != nil {
			return nil, false, false
		}
		if unsigned {
			if n < 0 {
				return nil, false, true
			}
			return uint64(n), true, true
		}
		return n, true, true
	case sqltypes.IsUnsigned(bv.Type):
		n, err := strconv.ParseUint(string(bv.Value), 10, 64)
		if err != nil {
			return nil, false, false
		}
		if !unsigned {
			if n > math.MaxInt64 {
				return nil, false, true
			}
			return int64(n), true, true
		}
		return n, true, true
	}
	return nil, false, false
}
