package sqlfront

import (
	"math"
	"math/big"
	"strings"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/analyzer"
	"github.com/dolthub/go-mysql-server/sql/expression"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/transform"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/shopspring/decimal"
)

// Comparisons of an integer column with a constant outside the column's range.
// go-mysql-server v0.20 turns such a condition into an index range by converting the constant
// to the column's type and ignoring the "out of range" the conversion reports: the constant is
// wrapped or clamped, and the range reads the wrong rows. On an INT UNSIGNED key `id > -1`
// read only the row 4294967295 (-1 wrapped), `id = -1` read that row too, and on a BIGINT key
// `id < 9223372036854775808` (2^63, clamped to 2^63-1) missed the row 2^63-1. MySQL answers
// by the values' true order. The rule below rewrites each such comparison into one with a
// constant inside the range that is true, false or NULL for exactly the same rows, before
// go-mysql-server picks an index, so its conversion has nothing to clamp.

// clampRangeRule is the id of the rule; it is outside go-mysql-server's own ids (see
// strictUpdateRule).
const clampRangeRule analyzer.RuleId = 1<<20 + 1

// The rule runs in go-mysql-server's AlwaysBeforeDefault batch: the batch every statement's
// analysis runs before it chooses indexes, full analyses and the short ones of single-table
// UPDATE, DELETE and INSERT alike (see enableRules).

// clampRanges rewrites the filter conditions of n (see the comment above).
func clampRanges(_ *sql.Context, _ *analyzer.Analyzer, n sql.Node, _ *plan.Scope, _ analyzer.RuleSelector, _ *sql.QueryFlags) (sql.Node, transform.TreeIdentity, error) {
	return transform.Node(n, func(n sql.Node) (sql.Node, transform.TreeIdentity, error) {
		f, ok := n.(*plan.Filter)
		if !ok {
			return n, transform.SameTree, nil
		}
		cond, same, err := transform.Expr(f.Expression, clampComparison)
		if err != nil || same == transform.SameTree {
			return n, transform.SameTree, err
		}
		return plan.NewFilter(cond, f.Child), transform.NewTree, nil
	})
}

// clampComparison rewrites one comparison of an integer column with an out-of-range
// constant. Each rewrite keeps the comparison's value, NULL included, for every value the
// column can hold, so it is safe under NOT and OR as well.
func clampComparison(e sql.Expression) (sql.Expression, transform.TreeIdentity, error) {
	switch c := e.(type) {
	case *expression.GreaterThan, *expression.GreaterThanOrEqual, *expression.LessThan,
		*expression.LessThanOrEqual, *expression.Equals:
		cmp := c.(expression.Comparer)
		col, lit, flipped := columnAndConstant(cmp.Left(), cmp.Right())
		if col == nil {
			return e, transform.SameTree, nil
		}
		side := intRangeSide(col.Type(), lit.Value())
		if side == 0 {
			return e, transform.SameTree, nil
		}
		op := comparisonOp(c, flipped)
		return clampedComparison(col, op, side), transform.NewTree, nil
	case *expression.Between:
		col, ok := c.Val.(*expression.GetField)
		if !ok || !types.IsInteger(col.Type()) {
			return e, transform.SameTree, nil
		}
		lower, upper := c.Lower, c.Upper
		changed := false
		if lit, ok := lower.(*expression.Literal); ok {
			if side := intRangeSide(col.Type(), lit.Value()); side != 0 {
				// col >= lit, as a comparison with an in-range constant: BETWEEN with it.
				lower, changed = boundLiteral(col.Type(), opGE, side), true
			}
		}
		if lit, ok := upper.(*expression.Literal); ok {
			if side := intRangeSide(col.Type(), lit.Value()); side != 0 {
				upper, changed = boundLiteral(col.Type(), opLE, side), true
			}
		}
		if !changed {
			return e, transform.SameTree, nil
		}
		if lower == nil || upper == nil {
			// One bound excludes every value: BETWEEN is false (NULL for a NULL column).
			return impossible(col), transform.NewTree, nil
		}
		return expression.NewBetween(col, lower, upper), transform.NewTree, nil
	case *expression.InTuple:
		col, ok := c.Left().(*expression.GetField)
		tuple, ok2 := c.Right().(expression.Tuple)
		if !ok || !ok2 || !types.IsInteger(col.Type()) {
			return e, transform.SameTree, nil
		}
		kept := make([]sql.Expression, 0, len(tuple))
		for _, el := range tuple {
			if lit, ok := el.(*expression.Literal); ok && intRangeSide(col.Type(), lit.Value()) != 0 {
				continue // no value of the column equals it
			}
			kept = append(kept, el)
		}
		switch {
		case len(kept) == len(tuple):
			return e, transform.SameTree, nil
		case len(kept) == 0:
			return impossible(col), transform.NewTree, nil
		}
		return expression.NewInTuple(col, expression.NewTuple(kept...)), transform.NewTree, nil
	}
	return e, transform.SameTree, nil
}

type compareOp int

const (
	opGT compareOp = iota
	opGE
	opLT
	opLE
	opEQ
)

// comparisonOp is the operator of c read as `column op constant`.
func comparisonOp(c sql.Expression, flipped bool) compareOp {
	var op compareOp
	switch c.(type) {
	case *expression.GreaterThan:
		op = opGT
	case *expression.GreaterThanOrEqual:
		op = opGE
	case *expression.LessThan:
		op = opLT
	case *expression.LessThanOrEqual:
		op = opLE
	default:
		return opEQ
	}
	if flipped { // constant op column
		return [...]compareOp{opGT: opLT, opGE: opLE, opLT: opGT, opLE: opGE}[op]
	}
	return op
}

// columnAndConstant finds an integer column compared with a constant, on either side.
func columnAndConstant(l, r sql.Expression) (*expression.GetField, *expression.Literal, bool) {
	if col, ok := l.(*expression.GetField); ok {
		if lit, ok := r.(*expression.Literal); ok && types.IsInteger(col.Type()) {
			return col, lit, false
		}
	}
	if col, ok := r.(*expression.GetField); ok {
		if lit, ok := l.(*expression.Literal); ok && types.IsInteger(col.Type()) {
			return col, lit, true
		}
	}
	return nil, nil, false
}

// clampedComparison is `col op c` for a constant c beyond the column's range on side (-1
// below, +1 above), as a comparison with the range's own end.
func clampedComparison(col *expression.GetField, op compareOp, side int) sql.Expression {
	lit := boundLiteral(col.Type(), op, side)
	if lit == nil {
		return impossible(col)
	}
	switch op {
	case opGT, opGE:
		return expression.NewGreaterThanOrEqual(col, lit) // col >= min: every value
	default: // opLT, opLE
		return expression.NewLessThanOrEqual(col, lit) // col <= max: every value
	}
}

// boundLiteral is the end of the column's range that `col op c` amounts to for a constant c
// beyond that range on side, or nil when no value satisfies it: col > above, col < below and
// col = either.
func boundLiteral(typ sql.Type, op compareOp, side int) sql.Expression {
	b := intBounds[typ.Type()]
	switch {
	case op == opEQ:
		return nil
	case (op == opGT || op == opGE) && side < 0:
		if types.IsUnsigned(typ) {
			return expression.NewLiteral(uint64(0), types.Uint64)
		}
		return expression.NewLiteral(b.min, types.Int64)
	case (op == opLT || op == opLE) && side > 0:
		if types.IsUnsigned(typ) {
			return expression.NewLiteral(b.max, types.Uint64)
		}
		return expression.NewLiteral(int64(b.max), types.Int64)
	}
	return nil
}

// impossible is false for every value of col and NULL for NULL, as any comparison of it is.
func impossible(col *expression.GetField) sql.Expression {
	b := intBounds[col.Type().Type()]
	if types.IsUnsigned(col.Type()) {
		return expression.NewLessThan(col, expression.NewLiteral(uint64(0), types.Uint64))
	}
	return expression.NewLessThan(col, expression.NewLiteral(b.min, types.Int64))
}

// intRangeSide reports whether the constant v lies below (-1) or above (+1) every value of
// integer column type typ, or within its range (0; also for NULL and for strings that are not
// plain numbers, which the rule leaves alone). The comparison is exact: -0.4 is below an
// unsigned column (and `u > -0.4` holds for every row), 4294967295.4 above an INT UNSIGNED.
// A string constant compares as the number it spells, as in MySQL.
func intRangeSide(typ sql.Type, v any) int {
	b, ok := intBounds[typ.Type()]
	if !ok || v == nil {
		return 0
	}
	if n, _, unsigned, ok := intOf(v); ok {
		switch {
		case !outOfIntRange(typ, v):
			return 0
		case !unsigned && n < 0:
			return -1
		}
		return 1
	}
	var d decimal.Decimal
	switch n := v.(type) {
	case float32:
		if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
			return infSide(float64(n))
		}
		d = decimal.NewFromFloat32(n)
	case float64:
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return infSide(n)
		}
		d = decimal.NewFromFloat(n)
	case decimal.Decimal:
		d = n
	case string:
		var err error
		if d, err = decimal.NewFromString(strings.TrimSpace(n)); err != nil {
			return 0
		}
	default:
		return 0
	}
	switch {
	case d.LessThan(decimal.NewFromInt(b.min)):
		return -1
	case d.GreaterThan(decimal.NewFromBigInt(new(big.Int).SetUint64(b.max), 0)):
		return 1
	}
	return 0
}

// infSide places an infinity beyond the range on its side; NaN is left alone.
func infSide(f float64) int {
	switch {
	case math.IsInf(f, 1):
		return 1
	case math.IsInf(f, -1):
		return -1
	}
	return 0
}
