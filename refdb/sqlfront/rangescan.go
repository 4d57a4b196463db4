package sqlfront

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// Range scans: a prepared statement of the form
//
//	SELECT col [, col ...] | * FROM [db.]table
//	WHERE pk BETWEEN ? AND ? | pk op ? [AND pk op ?]     (op one of < <= > >=)
//	[ORDER BY pk [ASC]] [LIMIT n | LIMIT m, n]
//
// on a table whose primary key is that one integer column is executed as one scan of the
// primary key, in key order, without go-mysql-server's planning. Such statements are
// sysbench's simple ranges and the polls of a reader that waits for new rows (aurorabench's
// lag workload): on a reader, planning each poll cost about a millisecond of CPU, several
// times what the scan itself costs. The checks and the fallback are those of point gets
// (pointget.go): the shape is fixed at prepare time, everything else is checked at every
// execution, and anything outside the shape goes to go-mysql-server unchanged.
type rangeScan struct {
	head  selectHead
	key   string // the WHERE column
	lower []rangeBound
	upper []rangeBound
	// offset and limit are LIMIT's literals; limit < 0 = no LIMIT.
	offset, limit int64
	fields        []*querypb.Field
	// Resolved at prepare time against this definition, as for point gets.
	tableVersion
	unsigned bool
	proj     []int
	projSch  sql.Schema
}

// rangeBound is one side of the key range: pk > ?, pk >= ? (lower) or pk < ?, pk <= ? (upper).
type rangeBound struct {
	arg       string // bind variable name (v1, v2, ...)
	inclusive bool
}

// rangeScanBatch is how many rows go to the client per packet batch. Rows are read and sent a
// batch at a time, so memory stays bounded whatever the range holds; an error in the first
// batch is a clean error packet, a later one ends the stream as go-mysql-server's would.
const rangeScanBatch = 128

// rangeScanOf returns the range-scan plan of a statement parseSimpleSelect has parsed, or nil
// when it has another shape (or sel is nil: no simple SELECT).
func rangeScanOf(sel *sqlparser.Select, head selectHead, qualifierOK func(sqlparser.TableName) bool) *rangeScan {
	if sel == nil {
		return nil
	}
	rs := &rangeScan{head: head, limit: -1}
	if !rs.parseWhere(sel.Where.Expr, qualifierOK) || len(rs.lower) > 1 || len(rs.upper) > 1 {
		return nil
	}
	if len(sel.OrderBy) > 0 && head.aliased {
		return nil // ORDER BY id may name a column alias before the table's column
	}
	switch len(sel.OrderBy) {
	case 0:
	case 1:
		o := sel.OrderBy[0]
		c, ok := o.Expr.(*sqlparser.ColName)
		if !ok || o.Direction != sqlparser.AscScr || c.StoredProcVal != nil || !qualifierOK(c.Qualifier) ||
			!strings.EqualFold(c.Name.String(), rs.key) {
			return nil
		}
	default:
		return nil
	}
	if sel.Limit != nil {
		var ok bool
		if rs.limit, ok = limitLiteral(sel.Limit.Rowcount); !ok {
			return nil
		}
		if sel.Limit.Offset != nil {
			if rs.offset, ok = limitLiteral(sel.Limit.Offset); !ok {
				return nil
			}
		}
	}
	return rs
}

// parseWhere reads the conditions on the key column: BETWEEN ? AND ?, or comparisons with a
// parameter joined by AND (parentheses allowed, the parameter on either side).
func (rs *rangeScan) parseWhere(e sqlparser.Expr, qualifierOK func(sqlparser.TableName) bool) bool {
	column := func(e sqlparser.Expr) bool {
		c, ok := e.(*sqlparser.ColName)
		if !ok || c.StoredProcVal != nil || !qualifierOK(c.Qualifier) {
			return false
		}
		if rs.key == "" {
			rs.key = c.Name.String()
		}
		return strings.EqualFold(rs.key, c.Name.String())
	}
	param := func(e sqlparser.Expr) (string, bool) {
		v, ok := e.(*sqlparser.SQLVal)
		if !ok || v.Type != sqlparser.ValArg {
			return "", false
		}
		return strings.TrimPrefix(string(v.Val), ":"), true
	}
	switch x := e.(type) {
	case *sqlparser.AndExpr:
		return rs.parseWhere(x.Left, qualifierOK) && rs.parseWhere(x.Right, qualifierOK)
	case *sqlparser.ParenExpr:
		return rs.parseWhere(x.Expr, qualifierOK)
	case *sqlparser.RangeCond:
		from, ok1 := param(x.From)
		to, ok2 := param(x.To)
		if x.Operator != sqlparser.BetweenStr || !ok1 || !ok2 || !column(x.Left) {
			return false
		}
		rs.lower = append(rs.lower, rangeBound{arg: from, inclusive: true})
		rs.upper = append(rs.upper, rangeBound{arg: to, inclusive: true})
		return true
	case *sqlparser.ComparisonExpr:
		if x.Escape != nil {
			return false
		}
		op := x.Operator
		arg, ok := param(x.Right)
		if ok {
			ok = column(x.Left)
		} else if arg, ok = param(x.Left); ok {
			ok = column(x.Right)
			// ? < pk is pk > ?
			switch op {
			case sqlparser.LessThanStr:
				op = sqlparser.GreaterThanStr
			case sqlparser.LessEqualStr:
				op = sqlparser.GreaterEqualStr
			case sqlparser.GreaterThanStr:
				op = sqlparser.LessThanStr
			case sqlparser.GreaterEqualStr:
				op = sqlparser.LessEqualStr
			}
		}
		if !ok {
			return false
		}
		switch op {
		case sqlparser.GreaterThanStr, sqlparser.GreaterEqualStr:
			rs.lower = append(rs.lower, rangeBound{arg: arg, inclusive: op == sqlparser.GreaterEqualStr})
		case sqlparser.LessThanStr, sqlparser.LessEqualStr:
			rs.upper = append(rs.upper, rangeBound{arg: arg, inclusive: op == sqlparser.LessEqualStr})
		default:
			return false
		}
		return true
	}
	return false
}

// limitLiteral reads a LIMIT count or offset written as a plain non-negative integer.
func limitLiteral(e sqlparser.Expr) (int64, bool) {
	v, ok := e.(*sqlparser.SQLVal)
	if !ok || v.Type != sqlparser.IntVal {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v.Val), 10, 64)
	return n, err == nil && n >= 0
}

// resolveRangeScan binds rs to the table definition the statement was just prepared against:
// the WHERE column must be the whole primary key, of an integer type.
func (f *Frontend) resolveRangeScan(ctx context.Context, c *mysql.Conn, rs *rangeScan, query string) bool {
	_, m, v, ok := f.preparedTable(ctx, c, query, rs.head.db, rs.head.table)
	if !ok {
		return false
	}
	_, unsigned, ok := resolveKeyArgs(m, []string{rs.key}, []string{""}) // one integer key column
	if !ok {
		return false
	}
	rs.unsigned = unsigned[0]
	if rs.proj, rs.projSch, ok = resolveProjection(m, rs.head.cols); !ok {
		return false
	}
	rs.tableVersion = v
	return true
}

// keyOrder maps an integer argument onto the order of the key encoding (engine.AppendInt and
// AppendUint both write a tag and 8 bytes of an unsigned order value): pos is -1 or +1 for a
// value below or above every value of the column, 0 with its order value otherwise. ok is false
// for an argument that is not an integer.
func keyOrder(bv *querypb.BindVariable, unsigned bool) (order uint64, pos int, ok bool) {
	switch {
	case sqltypes.IsSigned(bv.Type):
		n, err := strconv.ParseInt(string(bv.Value), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if !unsigned {
			return uint64(n) ^ (1 << 63), 0, true
		}
		if n < 0 {
			return 0, -1, true
		}
		return uint64(n), 0, true
	case sqltypes.IsUnsigned(bv.Type):
		n, err := strconv.ParseUint(string(bv.Value), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if unsigned {
			return n, 0, true
		}
		if n > math.MaxInt64 {
			return 0, 1, true
		}
		return n ^ (1 << 63), 0, true
	}
	return 0, 0, false
}

// keyBounds turns the bound arguments into the closed range [lo, hi] of order values;
// empty is true when no value fits. ok is false when an argument is not an integer.
func (rs *rangeScan) keyBounds(binds map[string]*querypb.BindVariable) (lo, hi uint64, empty, ok bool) {
	lo, hi = 0, math.MaxUint64
	for side, bs := range [2][]rangeBound{rs.lower, rs.upper} {
		lower := side == 0
		for _, b := range bs {
			v, bounds, none, ok := rs.boundOrder(binds, b, lower)
			switch {
			case !ok:
				return 0, 0, false, false
			case bounds && lower:
				lo = max(lo, v)
			case bounds:
				hi = min(hi, v)
			}
			empty = empty || none
		}
	}
	return lo, hi, empty || lo > hi, true
}

// boundOrder reads one bound: the closed order value it sets (v, when bounds), or that it
// excludes every value (none). A lower bound below the column's values, or an upper one
// above them, bounds nothing.
func (rs *rangeScan) boundOrder(binds map[string]*querypb.BindVariable, b rangeBound, lower bool) (v uint64, bounds, none, ok bool) {
	bv := binds[b.arg]
	if bv == nil {
		return 0, false, false, false
	}
	v, pos, ok := keyOrder(bv, rs.unsigned)
	if !ok {
		return 0, false, false, false
	}
	beyond, edge, step := 1, uint64(math.MaxUint64), uint64(1) // lower: pk > ?, pk >= ?
	if !lower {
		beyond, edge, step = -1, 0, math.MaxUint64 // upper: pk < ?, pk <= ?; step wraps to -1
	}
	switch {
	case pos == -beyond:
		return 0, false, false, true
	case pos == beyond || (!b.inclusive && v == edge):
		return 0, false, true, true
	case !b.inclusive:
		v += step
	}
	return v, true, false, true
}

// execRangeScan runs a range scan. handled is false when this execution is not one after all
// (see execPointGet); the caller then runs the statement through go-mysql-server.
func (f *Frontend) execRangeScan(ctx context.Context, c *mysql.Conn, rs *rangeScan, prep *mysql.PrepareData,
	callback func(*sqltypes.Result) error) (handled bool, err error) {
	sqlCtx, sess, ok := f.statementSession(ctx, c, prep.PrepareStmt)
	if !ok {
		return false, nil
	}
	eng := f.engine()
	m, ok := f.sameTable(eng, sqlCtx, rs.head.db, rs.head.table, rs.tableVersion)
	if !ok || len(rs.proj) != len(rs.fields) {
		return false, nil
	}
	lo, hi, empty, ok := rs.keyBounds(prep.BindVars)
	if !ok {
		return false, nil
	}
	txn, done, ok := readTxn(sqlCtx, sess, eng)
	if !ok {
		return false, nil
	}
	defer done()
	sqlCtx, end, err := beginStatement(sqlCtx, sess, prep.PrepareStmt, &f.rangesRun)
	if err != nil {
		return true, err
	}
	defer end()
	sql.IncrementStatusVariable(sqlCtx, "Com_select", 1)
	sqlCtx.SetLastQueryInfoInt(sql.RowCount, -1)

	// The rows' encoded values live in buf, a new one per batch and never a pooled one: with a
	// server-side cursor the callback returns before the client has fetched the batch.
	buf := sql.NewByteBuffer(1024)
	res := &sqltypes.Result{Fields: rs.fields}
	var sent, found int64
	flush := func() error {
		sent += int64(len(res.Rows))
		err := callback(res)
		res = &sqltypes.Result{Fields: rs.fields}
		buf = sql.NewByteBuffer(1024)
		return err
	}
	if !empty && rs.limit != 0 {
		prefix := engine.IndexPrefix(m.def.DataID, 0)
		// A key is the prefix, then a tag and the 8 bytes of the order value (keyOrder).
		start := engine.AppendUint(append([]byte(nil), prefix...), lo)
		stop := engine.PrefixEnd(prefix)
		if hi < math.MaxUint64 {
			stop = engine.AppendUint(append([]byte(nil), prefix...), hi+1)
		}
		it := txn.Scan(sqlCtx, start, stop, false)
		skip := rs.offset
		for rs.limit < 0 || found < rs.limit {
			kv, more := it.Next()
			if !more {
				break
			}
			if skip > 0 {
				skip--
				continue
			}
			row, err := decodeRow(m.codecs, kv.Value)
			if err != nil {
				return true, err
			}
			vals, err := server.RowToSQL(sqlCtx, rs.projSch, project(row, rs.proj), nil, buf)
			if err != nil {
				return true, err
			}
			res.Rows = append(res.Rows, vals)
			res.RowsAffected++
			found++
			if len(res.Rows) == rangeScanBatch {
				if err := sqlCtx.Err(); err != nil {
					return true, err
				}
				if err := flush(); err != nil {
					return true, err
				}
			}
		}
		if err := it.Err(); err != nil {
			return true, toSQLError(err)
		}
	}
	sqlCtx.SetLastQueryInfoInt(sql.FoundRows, found)
	if len(res.Rows) > 0 || sent == 0 {
		return true, flush()
	}
	return true, nil
}
