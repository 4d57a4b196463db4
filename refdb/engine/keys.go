package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Key layout. Every key of the volume starts with one byte that places it in a protection group
// (the volume splits PGs by first byte). The catalog lives under 0x00; a table's rows and index
// entries live under a byte derived from its id, so tables spread over the PGs while each
// index stays contiguous (one PG, one round trip per scan page).
//
//	catalog:        0x00 kind ...
//	table index:    spread(tid) tid(4) iid(2) tuple...
//
// Index 0 is the primary key: tuple = PK columns, value = the encoded row. A secondary index
// entry is tuple = index columns then PK columns, value empty.
const catalogByte = 0x00

func spread(tid uint32) byte { return byte(1 + (tid*67)%254) }

// TablePrefix is the prefix of every key of table tid.
func TablePrefix(tid uint32) []byte {
	b := make([]byte, 0, 16)
	b = append(b, spread(tid))
	return binary.BigEndian.AppendUint32(b, tid)
}

// IndexPrefix is the prefix of every key of index iid of table tid.
func IndexPrefix(tid uint32, iid uint16) []byte {
	return binary.BigEndian.AppendUint16(TablePrefix(tid), iid)
}

// PrefixEnd returns the smallest key greater than every key starting with p, or nil if there is
// none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Tuple encoding: each element starts with a tag so NULL sorts first; the payloads are
// order-preserving and self-delimiting, so the byte order of two tuples is the order of their
// elements compared left to right, and any encoded prefix of elements is a key-range prefix.
const (
	tagNull  = 0x01
	tagValue = 0x02
)

// AppendNull appends a NULL element.
func AppendNull(b []byte) []byte { return append(b, tagNull) }

// AppendInt appends a signed integer.
func AppendInt(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, tagValue), uint64(v)^(1<<63))
}

// AppendUint appends an unsigned integer.
func AppendUint(b []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, tagValue), v)
}

// AppendFloat appends a float64; -0 and +0 encode alike, NaN sorts last.
func AppendFloat(b []byte, f float64) []byte {
	if f == 0 {
		f = 0
	}
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		u = ^u
	} else {
		u |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(append(b, tagValue), u)
}

// AppendBytes appends a byte string: 0x00 is escaped as 0x00 0xff and the string ends with
// 0x00 0x01, which keeps the order of strings and lets a shorter string sort first.
func AppendBytes(b []byte, s []byte) []byte {
	b = append(b, tagValue)
	for _, c := range s {
		if c == 0 {
			b = append(b, 0, 0xff)
			continue
		}
		b = append(b, c)
	}
	return append(b, 0, 1)
}

// AppendString appends a string (binary collation order).
func AppendString(b []byte, s string) []byte { return AppendBytes(b, []byte(s)) }

// ErrBadTuple reports a malformed encoded tuple.
var ErrBadTuple = errors.New("engine: malformed tuple")

// SkipElement returns the length of the first element of b, which must have been written by
// one of the Append functions with the given fixed payload size (8 for numbers, -1 for
// strings and bytes).
func SkipElement(b []byte, fixed int) (int, error) {
	if len(b) == 0 {
		return 0, ErrBadTuple
	}
	if b[0] == tagNull {
		return 1, nil
	}
	if fixed >= 0 {
		if len(b) < 1+fixed {
			return 0, ErrBadTuple
		}
		return 1 + fixed, nil
	}
	for i := 1; i+1 < len(b); i++ {
		if b[i] == 0 {
			if b[i+1] == 1 {
				return i + 2, nil
			}
			if b[i+1] != 0xff {
				return 0, fmt.Errorf("%w: bad escape", ErrBadTuple)
			}
			i++
		}
	}
	return 0, fmt.Errorf("%w: unterminated string", ErrBadTuple)
}
