package sqlfront

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/shopspring/decimal"

	"github.com/aurorabench/aurorabench/refdb/engine"
)

// kind is how a column's values are stored.
type kind uint8

const (
	kInt kind = iota + 1
	kUint
	kFloat
	kDecimal
	kString
	kBytes
	kTime
	kJSON
)

// colCodec converts one column's values between go-mysql-server and storage.
type colCodec struct {
	typ    sql.Type
	qt     query.Type
	kind   kind
	foldCI bool // case-insensitive collation: keys compare lower-cased
}

func newCodec(typ sql.Type) (colCodec, error) {
	c := colCodec{typ: typ, qt: typ.Type()}
	switch c.qt {
	case query.Type_INT8, query.Type_INT16, query.Type_INT24, query.Type_INT32, query.Type_INT64, query.Type_YEAR, query.Type_TIME:
		c.kind = kInt
	case query.Type_UINT8, query.Type_UINT16, query.Type_UINT24, query.Type_UINT32, query.Type_UINT64, query.Type_ENUM, query.Type_SET, query.Type_BIT:
		c.kind = kUint
	case query.Type_FLOAT32, query.Type_FLOAT64:
		c.kind = kFloat
	case query.Type_DECIMAL:
		c.kind = kDecimal
	case query.Type_CHAR, query.Type_VARCHAR, query.Type_TEXT:
		c.kind = kString
		if st, ok := typ.(sql.StringType); ok && strings.HasSuffix(st.Collation().Name(), "_ci") {
			c.foldCI = true
		}
	case query.Type_BINARY, query.Type_VARBINARY, query.Type_BLOB:
		c.kind = kBytes
	case query.Type_DATE, query.Type_DATETIME, query.Type_TIMESTAMP:
		c.kind = kTime
	case query.Type_JSON:
		c.kind = kJSON
	default:
		return c, fmt.Errorf("column type %s is not supported by refdb", typ)
	}
	return c, nil
}

// normalize turns a value from the engine into the Go type this column stores.
func (c colCodec) normalize(ctx context.Context, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if w, ok := v.(sql.AnyWrapper); ok {
		u, err := w.UnwrapAny(ctx)
		if err != nil {
			return nil, err
		}
		v = u
	}
	switch c.kind {
	case kInt:
		switch x := v.(type) {
		case int8:
			return int64(x), nil
		case int16:
			return int64(x), nil
		case int32:
			return int64(x), nil
		case int64:
			return x, nil
		case int:
			return int64(x), nil
		case types.Timespan:
			return int64(x), nil
		}
	case kUint:
		switch x := v.(type) {
		case uint8:
			return uint64(x), nil
		case uint16:
			return uint64(x), nil
		case uint32:
			return uint64(x), nil
		case uint64:
			return x, nil
		case uint:
			return uint64(x), nil
		}
	case kFloat:
		if f, ok := floatOf(v); ok {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				// MySQL columns hold neither; decodeRow treats them as corruption.
				return nil, sqlErr(1264, "22003", fmt.Sprintf("Out of range value %v for a %s column", f, c.typ)) // ER_WARN_DATA_OUT_OF_RANGE
			}
			return f, nil
		}
	case kDecimal:
		if d, ok := v.(decimal.Decimal); ok {
			return d, nil
		}
	case kString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kTime:
		if t, ok := v.(time.Time); ok {
			return t, nil
		}
	case kJSON:
		if j, ok := v.(sql.JSONWrapper); ok {
			s, err := types.JsonToMySqlString(j)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	conv, _, err := c.typ.Convert(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("convert %v (%T) to %s: %w", v, v, c.typ, err)
	}
	if conv == nil {
		return nil, nil
	}
	if _, same := conv.(sql.AnyWrapper); !same && fmt.Sprintf("%T", conv) != fmt.Sprintf("%T", v) {
		return c.normalize(ctx, conv)
	}
	return nil, fmt.Errorf("value %v (%T) not storable as %s", v, v, c.typ)
}

// floatOf is v as a float64 when it is a float32 or float64.
func floatOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// toSQL turns a stored (normalized) value into the Go type go-mysql-server expects.
func (c colCodec) toSQL(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.qt {
	case query.Type_INT8:
		return int8(v.(int64)), nil
	case query.Type_INT16, query.Type_YEAR:
		return int16(v.(int64)), nil
	case query.Type_INT24, query.Type_INT32:
		return int32(v.(int64)), nil
	case query.Type_INT64:
		return v.(int64), nil
	case query.Type_TIME:
		return types.Timespan(v.(int64)), nil
	case query.Type_UINT8:
		return uint8(v.(uint64)), nil
	case query.Type_UINT16, query.Type_ENUM:
		return uint16(v.(uint64)), nil
	case query.Type_UINT24, query.Type_UINT32:
		return uint32(v.(uint64)), nil
	case query.Type_FLOAT32:
		return float32(v.(float64)), nil
	case query.Type_JSON:
		doc, _, err := types.JSON.Convert(context.Background(), v.(string))
		return doc, err
	}
	return v, nil
}

// Row value encoding: a version byte, then per column a tag and a payload.
const (
	rowVersion = 1
	tNull      = 0
	tInt       = 1
	tUint      = 2
	tFloat     = 3
	tBytes     = 4
	tTime      = 5
)

var errBadRow = errors.New("sqlfront: corrupt row encoding")

func encodeRow(ctx context.Context, codecs []colCodec, row sql.Row) ([]byte, sql.Row, error) {
	if len(row) != len(codecs) {
		return nil, nil, fmt.Errorf("row has %d values, table has %d columns", len(row), len(codecs))
	}
	norm := make(sql.Row, len(row))
	b := make([]byte, 0, 64)
	b = append(b, rowVersion)
	for i, c := range codecs {
		v, err := c.normalize(ctx, row[i])
		if err != nil {
			return nil, nil, err
		}
		norm[i] = v
		switch x := v.(type) {
		case nil:
			b = append(b, tNull)
		case int64:
			b = binary.AppendVarint(append(b, tInt), x)
		case uint64:
			b = binary.AppendUvarint(append(b, tUint), x)
		case float64:
			b = binary.LittleEndian.AppendUint64(append(b, tFloat), math.Float64bits(x))
		case decimal.Decimal:
			s := x.String()
			b = append(binary.AppendUvarint(append(b, tBytes), uint64(len(s))), s...)
		case string:
			b = append(binary.AppendUvarint(append(b, tBytes), uint64(len(x))), x...)
		case []byte:
			b = append(binary.AppendUvarint(append(b, tBytes), uint64(len(x))), x...)
		case time.Time:
			b = binary.AppendVarint(append(b, tTime), x.UTC().UnixMicro())
		default:
			return nil, nil, fmt.Errorf("cannot store %T", v)
		}
	}
	return b, norm, nil
}

func decodeRow(codecs []colCodec, b []byte) (sql.Row, error) {
	if len(b) == 0 || b[0] != rowVersion {
		return nil, errBadRow
	}
	row := make(sql.Row, len(codecs))
	off := 1
	for i, c := range codecs {
		if off >= len(b) {
			// A row written before a column was added: the column is NULL.
			break
		}
		tag := b[off]
		off++
		if !c.stores(tag) {
			// A tag of another kind (corruption, or bytes of another table) would make toSQL
			// assert the wrong Go type and panic.
			return nil, fmt.Errorf("%w: column %d (%s) holds a value of tag %d", errBadRow, i, c.typ, tag)
		}
		var v any
		switch tag {
		case tNull:
		case tInt:
			x, n := binary.Varint(b[off:])
			if n <= 0 {
				return nil, errBadRow
			}
			off += n
			v = x
		case tUint:
			x, n := binary.Uvarint(b[off:])
			if n <= 0 {
				return nil, errBadRow
			}
			off += n
			v = x
		case tFloat:
			if off+8 > len(b) {
				return nil, errBadRow
			}
			f := math.Float64frombits(binary.LittleEndian.Uint64(b[off:]))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%w: column %d holds %v", errBadRow, i, f)
			}
			v = f
			off += 8
		case tBytes:
			l, n := binary.Uvarint(b[off:])
			if n <= 0 || uint64(len(b)-off-n) < l {
				return nil, errBadRow
			}
			off += n
			raw := b[off : off+int(l)]
			off += int(l)
			switch c.kind {
			case kDecimal:
				d, err := decimal.NewFromString(string(raw))
				if err != nil {
					return nil, fmt.Errorf("%w: decimal: %w", errBadRow, err)
				}
				v = d
			case kBytes:
				v = append([]byte(nil), raw...)
			default:
				v = string(raw)
			}
		case tTime:
			x, n := binary.Varint(b[off:])
			if n <= 0 {
				return nil, errBadRow
			}
			off += n
			v = time.UnixMicro(x).UTC()
		default:
			return nil, errBadRow
		}
		sv, err := c.toSQL(v)
		if err != nil {
			return nil, err
		}
		row[i] = sv
	}
	return row, nil
}

// stores reports whether a row value of tag can belong to this column: NULL, or the tag
// encodeRow writes for the column's kind.
func (c colCodec) stores(tag byte) bool {
	switch tag {
	case tNull:
		return true
	case tInt:
		return c.kind == kInt
	case tUint:
		return c.kind == kUint
	case tFloat:
		return c.kind == kFloat
	case tBytes:
		return c.kind == kDecimal || c.kind == kString || c.kind == kBytes || c.kind == kJSON
	case tTime:
		return c.kind == kTime
	}
	return false
}

// appendKey appends the order-preserving encoding of a normalized value. prefix > 0 keeps only
// the first prefix characters (index prefix lengths).
func (c colCodec) appendKey(b []byte, v any, prefix uint16) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return engine.AppendNull(b), nil
	case int64:
		return engine.AppendInt(b, x), nil
	case uint64:
		return engine.AppendUint(b, x), nil
	case float64:
		return engine.AppendFloat(b, x), nil
	case decimal.Decimal:
		// Ordered by its float64 value, ties broken by the exact digits.
		f, _ := x.Float64()
		return engine.AppendString(engine.AppendFloat(b, f), x.String()), nil
	case string:
		if prefix > 0 && len([]rune(x)) > int(prefix) {
			x = string([]rune(x)[:prefix])
		}
		if c.foldCI {
			x = strings.ToLower(x)
		}
		return engine.AppendString(b, x), nil
	case []byte:
		if prefix > 0 && len(x) > int(prefix) {
			x = x[:prefix]
		}
		return engine.AppendBytes(b, x), nil
	case time.Time:
		return engine.AppendInt(b, x.UTC().UnixMicro()), nil
	}
	return nil, fmt.Errorf("cannot index a value of type %T", v)
}
