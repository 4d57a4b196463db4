package sqlfront

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sync"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/analyzer"
	"github.com/dolthub/go-mysql-server/sql/expression"
	"github.com/dolthub/go-mysql-server/sql/plan"
	"github.com/dolthub/go-mysql-server/sql/transform"
	"github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/shopspring/decimal"
)

// Strict UPDATE assignments. go-mysql-server v0.20's SetField converts the assigned value to
// the column's type and ignores the "out of range" the conversion reports, so
// `UPDATE t SET u = -1` on an INT UNSIGNED column stored 4294967295, and a TINYINT set to 300
// stored 127, without an error. MySQL and MariaDB in their default strict mode
// (STRICT_TRANS_TABLES, which refdb reports too) refuse the statement with error 1264. Its
// INSERT path already checks the range. UPDATE IGNORE keeps the clamping, as MySQL does.

// strictSetField is a SetField that fails on a value out of its column's range.
type strictSetField struct {
	*expression.SetField
}

func strictSet(e sql.Expression) sql.Expression {
	if sf, ok := e.(*expression.SetField); ok {
		return &strictSetField{SetField: sf}
	}
	return e
}

// Eval is SetField.Eval with the range check it leaves out.
func (s *strictSetField) Eval(ctx *sql.Context, row sql.Row) (any, error) {
	gf, ok := s.LeftChild.(*expression.GetField)
	if !ok {
		return s.SetField.Eval(ctx, row)
	}
	val, err := s.RightChild.Eval(ctx, row)
	if err != nil {
		return nil, err
	}
	if val != nil {
		_, inRange, err := gf.Type().Convert(ctx, val)
		if err == nil && (inRange == sql.OutOfRange || outOfIntRange(gf.Type(), val)) {
			return nil, sqlErr(1264, "22003", fmt.Sprintf("Out of range value for column '%s' at row 1", gf.Name())) // ER_WARN_DATA_OUT_OF_RANGE
		}
	}
	// In range: SetField converts and assigns the value already computed, so the right side
	// (RAND(), say) is evaluated once and what is checked is what is stored.
	return expression.NewSetField(gf, expression.NewLiteral(val, s.RightChild.Type())).Eval(ctx, row)
}

func (s *strictSetField) WithChildren(children ...sql.Expression) (sql.Expression, error) {
	e, err := s.SetField.WithChildren(children...)
	if err != nil {
		return nil, err
	}
	return strictSet(e), nil
}

// strictUpdateRule is the id of the analyzer rule that makes UPDATE assignments strict; it is
// outside go-mysql-server's own ids.
const strictUpdateRule analyzer.RuleId = 1 << 20

var rulesOnce sync.Once

// enableRules adds refdb's analyzer rules to go-mysql-server's package-level batches:
// strictUpdates to the once-after-all rules, the one batch every UPDATE goes through (a
// single-table UPDATE runs a fixed list of batches, analyzer.getBatchesForNode, that skips
// rules added to an analyzer's builder but reads the package's lists each time),
// clampRanges (rangeclamp.go) to the always-before-default rules and before pushFilters, and
// refuseAccounts (accounts.go) to the always-before-default rules. It
// must run before the first analyzer is built, which copies those lists for full analyses.
func enableRules() {
	rulesOnce.Do(func() {
		analyzer.OnceAfterAll = append(analyzer.OnceAfterAll, analyzer.Rule{Id: strictUpdateRule, Apply: strictUpdates})
		clamp := analyzer.Rule{Id: clampRangeRule, Apply: clampRanges}
		analyzer.AlwaysBeforeDefault = append(analyzer.AlwaysBeforeDefault, clamp,
			analyzer.Rule{Id: refuseAccountsRule, Apply: refuseAccounts})
		// Again just before pushFilters of a full analysis, which is where a JOIN's ON
		// conditions and an unnested IN (SELECT ...) have become Filters too.
		at := slices.IndexFunc(analyzer.OnceAfterDefault, func(r analyzer.Rule) bool { return r.Id.String() == "pushFilters" })
		if at < 0 {
			at = 0
		}
		analyzer.OnceAfterDefault = slices.Insert(analyzer.OnceAfterDefault, at, clamp)
	})
}

// strictUpdates is an analyzer rule: every assignment of an UPDATE without IGNORE becomes a
// strictSetField, and an INSERT without IGNORE has its literal values range-checked.
func strictUpdates(ctx *sql.Context, _ *analyzer.Analyzer, n sql.Node, _ *plan.Scope, _ analyzer.RuleSelector, _ *sql.QueryFlags) (sql.Node, transform.TreeIdentity, error) {
	return transform.Node(n, func(n sql.Node) (sql.Node, transform.TreeIdentity, error) {
		if ins, ok := n.(*plan.InsertInto); ok {
			return n, transform.SameTree, checkInsertLiterals(ctx, ins)
		}
		us, ok := n.(*plan.UpdateSource)
		if !ok || us.Ignore {
			return n, transform.SameTree, nil
		}
		changed := false
		exprs := make([]sql.Expression, len(us.UpdateExprs))
		for i, e := range us.UpdateExprs {
			exprs[i] = strictSet(e)
			changed = changed || exprs[i] != e
		}
		if !changed {
			return n, transform.SameTree, nil
		}
		out, err := us.WithExpressions(exprs...)
		if err != nil {
			return nil, transform.SameTree, err
		}
		return out, transform.NewTree, nil
	})
}

// checkInsertLiterals refuses an INSERT (without IGNORE) of a literal value outside its
// integer column's range. go-mysql-server's insert checks the range through the same
// conversion, which calls a truncated uint64 in range: 2^64-1 went into an INT UNSIGNED as
// 4294967295. An AUTO_INCREMENT column's value is converted before that check, by its
// AutoIncrement expression, which drops the conversion's out-of-range report: the string
// '300' went into a TINYINT key as 127. So a value the conversion calls out of range is
// refused there too.
func checkInsertLiterals(ctx *sql.Context, ins *plan.InsertInto) error {
	if ins.Ignore {
		return nil
	}
	var vals *plan.Values
	transform.Inspect(ins.Source, func(n sql.Node) bool {
		if v, ok := n.(*plan.Values); ok && vals == nil {
			vals = v
		}
		return vals == nil
	})
	if vals == nil {
		return nil
	}
	sch := ins.Destination.Schema()
	cols := make([]*sql.Column, 0, len(sch))
	if len(ins.ColumnNames) == 0 {
		cols = append(cols, sch...)
	} else {
		for _, name := range ins.ColumnNames {
			i := sch.IndexOfColName(name)
			if i < 0 {
				return nil // go-mysql-server reports an unknown column itself
			}
			cols = append(cols, sch[i])
		}
	}
	for r, tuple := range vals.ExpressionTuples {
		for i, e := range tuple {
			lit, ok := e.(*expression.Literal)
			if !ok || i >= len(cols) || lit.Value() == nil {
				continue
			}
			out := outOfIntRange(cols[i].Type, lit.Value())
			if !out && cols[i].AutoIncrement {
				_, inRange, err := cols[i].Type.Convert(ctx, lit.Value())
				out = err == nil && inRange == sql.OutOfRange
			}
			if out {
				return sqlErr(1264, "22003", fmt.Sprintf("Out of range value for column '%s' at row %d", cols[i].Name, r+1)) // ER_WARN_DATA_OUT_OF_RANGE
			}
		}
	}
	return nil
}

// intBounds are the integer column types' ranges.
var intBounds = map[query.Type]struct {
	min int64
	max uint64
}{
	query.Type_INT8:   {math.MinInt8, math.MaxInt8},
	query.Type_UINT8:  {0, math.MaxUint8},
	query.Type_INT16:  {math.MinInt16, math.MaxInt16},
	query.Type_UINT16: {0, math.MaxUint16},
	query.Type_INT24:  {-1 << 23, 1<<23 - 1},
	query.Type_UINT24: {0, 1<<24 - 1},
	query.Type_INT32:  {math.MinInt32, math.MaxInt32},
	query.Type_UINT32: {0, math.MaxUint32},
	query.Type_INT64:  {math.MinInt64, math.MaxInt64},
	query.Type_UINT64: {0, math.MaxUint64},
}

// outOfIntRange reports whether numeric v lies outside integer column type typ. The
// conversion's own report is not enough: go-mysql-server v0.20 converts a uint64 to a
// narrower unsigned type by truncating it and calls that in range (1<<40 became 0 in an INT
// UNSIGNED). It runs for every assigned value, so integers compare without allocating.
func outOfIntRange(typ sql.Type, v any) bool {
	b, ok := intBounds[typ.Type()]
	if !ok {
		return false
	}
	if n, u, unsigned, ok := intOf(v); ok {
		if unsigned {
			return u > b.max
		}
		return n < b.min || (n > 0 && uint64(n) > b.max)
	}
	switch n := v.(type) {
	case float32:
		return floatOutOf(float64(n), b.min, b.max)
	case float64:
		return floatOutOf(n, b.min, b.max)
	case decimal.Decimal:
		r := n.Round(0)
		return r.LessThan(decimal.NewFromInt(b.min)) || r.GreaterThan(decimal.NewFromBigInt(new(big.Int).SetUint64(b.max), 0))
	}
	return false // strings and the rest: the conversion reports them
}

// intOf reads a Go integer of any width: a signed one as n, an unsigned one as u. ok is false
// for anything else.
func intOf(v any) (n int64, u uint64, unsigned, ok bool) {
	switch x := v.(type) {
	case int:
		return int64(x), 0, false, true
	case int8:
		return int64(x), 0, false, true
	case int16:
		return int64(x), 0, false, true
	case int32:
		return int64(x), 0, false, true
	case int64:
		return x, 0, false, true
	case uint:
		return 0, uint64(x), true, true
	case uint8:
		return 0, uint64(x), true, true
	case uint16:
		return 0, uint64(x), true, true
	case uint32:
		return 0, uint64(x), true, true
	case uint64:
		return 0, x, true, true
	}
	return 0, 0, false, false
}

// floatOutOf reports whether f, rounded as MySQL rounds it into an integer column, is outside
// [min, max].
func floatOutOf(f float64, min int64, max uint64) bool {
	if math.IsNaN(f) {
		return true
	}
	r, hi := math.Round(f), float64(max)
	if max >= 1<<53 { // hi rounded up to 2^63 or 2^64, itself out of range
		return r < float64(min) || r >= hi
	}
	return r < float64(min) || r > hi
}
