package sqlfront

import (
	"context"
	"fmt"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/expression"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/planbuilder"
	"github.com/dolthub/go-mysql-server/sql/rowexec"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	"github.com/dolthub/vitess/go/vt/sqlparser"
)

// Point inserts: prepared statements of the form
//
//	INSERT INTO [db.]table [(col, ...)] VALUES (v, ...)
//
// one row, every column of the table given, each value a ? or a constant, skip go-mysql-server's
// planner: binding and analyzing such an INSERT on every execution was a fifth of the writer's
// CPU under sysbench's write_only.
//
// Only the planning is skipped. The plan is the one go-mysql-server's analyzer makes of this
// shape (resolveInsertRows / wrapRowSource): an InsertInto over a Project that puts the values
// in the table's column order and wraps the AUTO_INCREMENT column in its AutoIncrement
// expression, over a Values row of the bound literals (bindLiteral, as the planner binds them).
// go-mysql-server's own executor runs it, so conversion, range and length checks, nullability,
// auto-increment, duplicate keys, the statement's undo on error, ROW_COUNT(), LAST_INSERT_ID()
// and the OK packet's insert id all come from the code a planned INSERT runs. What the analyzer
// would add for other shapes is declined at prepare or execution time: IGNORE, REPLACE, ON
// DUPLICATE KEY UPDATE, RETURNING, several rows, a column left to its default, generated
// columns, DDL on the table since prepare, read-only mode. refdb tables have no triggers,
// foreign keys or check constraints (sqlfront stores none), so none can apply.
type pointInsert struct {
	db, table string // db "" = the session's current database
	cols      []string
	vals      []insertValue

	// Resolved against this table definition at prepare time.
	tableVersion
	order   []int // order[i]: the position in vals of the table's column i
	autoInc int   // the table's AUTO_INCREMENT column, or -1
	args    int   // how many values are bind variables
}

// insertValue is one value of the row: a bind variable, a constant, or NULL (neither).
type insertValue struct {
	arg string            // bind variable name, or ""
	lit *sqlparser.SQLVal // a constant when arg is ""; nil with it: NULL
}

// parsePointInsert returns the point-insert plan of query, or nil when it has another shape.
func parsePointInsert(query string) *pointInsert {
	if len(query) < 6 || !strings.EqualFold(query[:6], "insert") {
		return nil
	}
	stmt, err := sqlparser.Parse(query)
	if err != nil {
		return nil
	}
	ins, ok := stmt.(*sqlparser.Insert)
	if !ok || ins.Action != sqlparser.InsertStr || len(ins.Comments) > 0 || ins.Ignore != "" || ins.With != nil ||
		ins.Partitions != nil || ins.Returning != nil || len(ins.OnDup) > 0 || !ins.Table.SchemaQualifier.IsEmpty() {
		return nil
	}
	rows, ok := ins.Rows.(*sqlparser.AliasedValues)
	if !ok || !rows.As.IsEmpty() || len(rows.Columns) > 0 || len(rows.Values) != 1 || len(rows.Values[0]) == 0 {
		return nil
	}
	pi := &pointInsert{db: ins.Table.DbQualifier.String(), table: ins.Table.Name.String()}
	for _, c := range ins.Columns {
		pi.cols = append(pi.cols, c.String())
	}
	for _, e := range rows.Values[0] {
		switch v := e.(type) {
		case *sqlparser.SQLVal:
			if v.Type == sqlparser.ValArg {
				pi.vals = append(pi.vals, insertValue{arg: strings.TrimPrefix(string(v.Val), ":")})
				pi.args++
			} else {
				pi.vals = append(pi.vals, insertValue{lit: v})
			}
		case *sqlparser.NullVal:
			pi.vals = append(pi.vals, insertValue{})
		default:
			return nil // DEFAULT, expressions, functions: the planner's
		}
	}
	return pi
}

// resolvePointInsert binds pi to the table definition the statement was just prepared
// against. It reports false when the statement is not a point insert on that table after all.
func (f *Frontend) resolvePointInsert(ctx context.Context, c *mysql.Conn, pi *pointInsert, query string) bool {
	def, m, v, ok := f.preparedTable(ctx, c, query, pi.db, pi.table)
	if !ok {
		return false
	}
	for _, cd := range def.Columns {
		if cd.Generated != nil {
			return false
		}
	}
	sch := m.sch.Schema
	cols := pi.cols
	if len(cols) == 0 {
		for _, col := range sch {
			cols = append(cols, col.Name)
		}
	}
	// Every column given once, each with a value: no defaults to fill in, nothing for the
	// planner to report.
	if len(cols) != len(sch) || len(pi.vals) != len(sch) {
		return false
	}
	pi.order = make([]int, len(sch))
	for i := range pi.order {
		pi.order[i] = -1
	}
	for j, name := range cols {
		i := sch.IndexOfColName(name)
		if i < 0 || pi.order[i] >= 0 {
			return false
		}
		pi.order[i] = j
	}
	pi.autoInc = -1
	for i, col := range sch {
		if col.AutoIncrement {
			pi.autoInc = i
			break
		}
	}
	pi.tableVersion = v
	return true
}

// execPointInsert runs a point insert. handled is false when this execution is not one after
// all: the caller then runs the statement through go-mysql-server.
func (f *Frontend) execPointInsert(ctx context.Context, c *mysql.Conn, pi *pointInsert, prep *mysql.PrepareData,
	callback func(*sqltypes.Result) error) (handled bool, err error) {
	sqlCtx, sess, ok := f.statementSession(ctx, c, prep.PrepareStmt)
	if !ok || f.ReadOnly() {
		return false, nil
	}
	m, ok := f.sameTable(f.engine(), sqlCtx, pi.db, pi.table, pi.tableVersion)
	if !ok {
		return false, nil
	}
	if len(prep.BindVars) != pi.args {
		return false, nil // a missing argument is go-mysql-server's error to report
	}
	// The Values row, as the planner binds it.
	b := planbuilder.New(sqlCtx, nil, nil, nil)
	tuple := make([]sql.Expression, len(pi.vals))
	for j, v := range pi.vals {
		if tuple[j], ok = valueLiteral(b, prep.BindVars, v.arg, v.lit); !ok {
			return false, nil
		}
	}
	tx, autocommit, ok := writeTxn(sqlCtx)
	if !ok {
		return false, nil
	}
	return true, f.runWrite(sqlCtx, sess, c, prep.PrepareStmt, tx, autocommit, &f.insertsRun,
		func(sqlCtx *sql.Context, _ *Transaction) (*sqltypes.Result, error) {
			sql.IncrementStatusVariable(sqlCtx, "Com_insert", 1)
			return f.runInsert(sqlCtx, m, pi, tuple)
		}, callback)
}

// runInsert builds the analyzed plan of the INSERT (see pointInsert) and runs it with
// go-mysql-server's executor and its row-count accumulator.
func (f *Frontend) runInsert(ctx *sql.Context, m *tableMeta, pi *pointInsert, tuple []sql.Expression) (*sqltypes.Result, error) {
	tbl := f.table(m)
	sch := m.sch.Schema
	// As wrapRowSource.
	proj := make([]sql.Expression, len(sch))
	firstGenerated := -1
	for i, col := range sch {
		j := pi.order[i]
		proj[i] = expression.NewGetField(j, col.Type, col.Name, col.Nullable)
		if i != pi.autoInc {
			continue
		}
		ai, err := expression.NewAutoIncrement(ctx, tbl, proj[i])
		if err != nil {
			return nil, err
		}
		proj[i] = ai
		// LAST_INSERT_ID() changes when the row's value is generated: NULL, or 0 unless
		// NO_AUTO_VALUE_ON_ZERO.
		if lit, ok := tuple[j].(*expression.Literal); ok && (types.Null.Equals(lit.Type()) ||
			(!sql.LoadSqlMode(ctx).ModeEnabled(sql.NoAutoValueOnZero) && isZeroLiteral(ctx, lit))) {
			firstGenerated = 0
		}
	}
	dest := plan.NewInsertDestination(sch, plan.NewResolvedTable(tbl, tbl.db, nil))
	src := plan.NewProject(proj, plan.NewValues([][]sql.Expression{tuple}))
	node := plan.NewInsertInto(tbl.db, dest, src, false, pi.cols, nil, false).
		WithAutoIncrementIdx(firstGenerated).
		WithDeferredDefaults(sql.NewFastIntSet())
	// refdb's own analyzer rule for planned INSERTs (strictset.go).
	if err := checkInsertLiterals(ctx, node); err != nil {
		return nil, err
	}
	iter, err := rowexec.DefaultBuilder.Build(ctx, node, nil)
	if err != nil {
		return nil, err
	}
	iter, _ = rowexec.AddAccumulatorIter(ctx, iter)
	// The accumulator closes the insert (undoing the statement's writes on error) before it
	// returns its one row.
	row, err := iter.Next(ctx)
	if cerr := iter.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	var res types.OkResult
	ok := len(row) == 1
	if ok {
		res, ok = row[0].(types.OkResult)
	}
	if !ok {
		return nil, fmt.Errorf("insert into %s: the executor returned %v, not its row count", m.def.Name, row)
	}
	info := ""
	if res.Info != nil {
		info = res.Info.String()
	}
	return &sqltypes.Result{RowsAffected: res.RowsAffected, InsertID: res.InsertID, Info: info}, nil
}

// isZeroLiteral is the analyzer's isZero: a numeric literal equal to 0.
func isZeroLiteral(ctx *sql.Context, lit *expression.Literal) bool {
	if !types.IsNumber(lit.Type()) {
		return false
	}
	v, inRange, err := types.Int8.Convert(ctx, lit.Value())
	return err == nil && bool(inRange) && v == int8(0)
}
