// Package redo defines the redo record, the only thing a writer sends to storage, and the
// binary encodings shared by the durable log and the wire protocol.
//
// Every encoding is versioned and checksummed with CRC32C so that a torn write, a flipped bit
// or a frame from a different protocol version is detected and reported, never applied.
package redo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// LSN is a volume-wide log sequence number. The writer allocates LSNs densely (every LSN of an
// epoch's range is used by exactly one record), which is what lets recovery detect a missing
// record of any protection group from the union of the others.
type LSN uint64

// RecordVersion is the encoding version written in front of every record.
const RecordVersion = 1

// Flags of a record.
const (
	FlagTombstone = 1 << 0 // the key is deleted at this LSN
	FlagCommit    = 1 << 1 // this record is the commit point of its transaction
	knownFlags    = FlagTombstone | FlagCommit
)

// MaxKeyLen and MaxValueLen bound what a decoder accepts so a corrupt length cannot make it
// allocate gigabytes.
const (
	MaxKeyLen   = 64 << 10
	MaxValueLen = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is CRC32C, used by every encoding of this package.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ErrCorrupt is wrapped by every decoding error caused by bad bytes.
var ErrCorrupt = errors.New("redo: corrupt encoding")

// Record is one redo record. All records of a transaction carry the transaction's commit LSN;
// the last one has FlagCommit and LSN == CommitLSN.
type Record struct {
	LSN       LSN
	Epoch     uint64 // epoch of the writer that produced it
	PG        uint32 // protection group
	PrevLSN   LSN    // previous record of the same protection group (0: none)
	CommitLSN LSN    // commit point of the record's transaction
	Flags     uint8
	Key       []byte
	Value     []byte
}

// Tombstone reports whether the record deletes its key.
func (r *Record) Tombstone() bool { return r.Flags&FlagTombstone != 0 }

// IsCommit reports whether the record is its transaction's commit point.
func (r *Record) IsCommit() bool { return r.Flags&FlagCommit != 0 }

// Clone returns a deep copy, so a record handed across a boundary cannot be mutated later.
func (r Record) Clone() Record {
	r.Key = append([]byte(nil), r.Key...)
	if r.Value != nil {
		r.Value = append([]byte(nil), r.Value...)
	}
	return r
}

func (r *Record) String() string {
	return fmt.Sprintf("rec{lsn=%d e=%d pg=%d prev=%d commit=%d flags=%d key=%q}", r.LSN, r.Epoch, r.PG, r.PrevLSN, r.CommitLSN, r.Flags, r.Key)
}

// Validate checks the record's internal consistency.
func (r *Record) Validate() error {
	switch {
	case r.LSN == 0:
		return fmt.Errorf("%w: record with LSN 0", ErrCorrupt)
	case r.PrevLSN >= r.LSN:
		return fmt.Errorf("%w: record %d back-link %d not below it", ErrCorrupt, r.LSN, r.PrevLSN)
	case r.CommitLSN < r.LSN:
		return fmt.Errorf("%w: record %d commit LSN %d below it", ErrCorrupt, r.LSN, r.CommitLSN)
	case r.IsCommit() && r.CommitLSN != r.LSN:
		return fmt.Errorf("%w: commit record %d with commit LSN %d", ErrCorrupt, r.LSN, r.CommitLSN)
	case r.Flags&^knownFlags != 0:
		return fmt.Errorf("%w: unknown record flags %#x", ErrCorrupt, r.Flags)
	case len(r.Key) > MaxKeyLen:
		return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(r.Key))
	case len(r.Value) > MaxValueLen:
		return fmt.Errorf("%w: value of %d bytes", ErrCorrupt, len(r.Value))
	}
	return nil
}

// AppendRecord appends the encoding of r to dst: version, flags, varint fields, key, value and
// a CRC32C of everything before it.
func AppendRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	dst = append(dst, RecordVersion, r.Flags)
	dst = binary.AppendUvarint(dst, uint64(r.LSN))
	dst = binary.AppendUvarint(dst, r.Epoch)
	dst = binary.AppendUvarint(dst, uint64(r.PG))
	dst = binary.AppendUvarint(dst, uint64(r.PrevLSN))
	dst = binary.AppendUvarint(dst, uint64(r.CommitLSN))
	dst = binary.AppendUvarint(dst, uint64(len(r.Key)))
	dst = append(dst, r.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Value)))
	dst = append(dst, r.Value...)
	return binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
}

// DecodeRecord decodes one record from the front of b and returns it with the number of bytes
// used. Key and Value alias b.
func DecodeRecord(b []byte) (Record, int, error) {
	var r Record
	d := decoder{b: b}
	ver := d.byte()
	if d.err == nil && ver != RecordVersion {
		return r, 0, fmt.Errorf("%w: record version %d, want %d", ErrCorrupt, ver, RecordVersion)
	}
	r.Flags = d.byte()
	r.LSN = LSN(d.uvarint())
	r.Epoch = d.uvarint()
	pg := d.uvarint()
	r.PrevLSN = LSN(d.uvarint())
	r.CommitLSN = LSN(d.uvarint())
	r.Key = d.bytes(MaxKeyLen)
	r.Value = d.bytes(MaxValueLen)
	if d.err != nil {
		return Record{}, 0, fmt.Errorf("decode record: %w", d.err)
	}
	if pg > 1<<32-1 {
		return Record{}, 0, fmt.Errorf("%w: PG %d out of range", ErrCorrupt, pg)
	}
	r.PG = uint32(pg)
	n := d.off
	if len(b) < n+4 {
		return Record{}, 0, fmt.Errorf("%w: record truncated before checksum", ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(b[n:]), Checksum(b[:n]); got != want {
		return Record{}, 0, fmt.Errorf("%w: record checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if err := r.Validate(); err != nil {
		return Record{}, 0, err
	}
	return r, n + 4, nil
}

// decoder reads varint-encoded fields, remembering the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated at byte %d", d.off)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint at byte %d", d.off)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)-d.off) {
		d.fail("length %d at byte %d exceeds limit or input", n, d.off)
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) string(max int) string { return string(d.bytes(max)) }

// Decoder reads the fields of this package's encodings (a byte, a uvarint, a
// length-prefixed byte string) for encodings built from them elsewhere, such as the
// writer-to-reader stream. The first error, wrapping ErrCorrupt, sticks: later reads return
// zero values.
type Decoder struct{ d decoder }

// NewDecoder reads b.
func NewDecoder(b []byte) *Decoder { return &Decoder{d: decoder{b: b}} }

// Byte reads one byte.
func (d *Decoder) Byte() byte { return d.d.byte() }

// Uvarint reads one uvarint.
func (d *Decoder) Uvarint() uint64 { return d.d.uvarint() }

// Bytes reads a length-prefixed byte string of at most max bytes. It aliases the input.
func (d *Decoder) Bytes(max int) []byte { return d.d.bytes(max) }

// Fail records an error (the first one sticks).
func (d *Decoder) Fail(format string, args ...any) { d.d.fail(format, args...) }

// Err is the first error.
func (d *Decoder) Err() error { return d.d.err }

// Left is the number of bytes not read yet.
func (d *Decoder) Left() int { return len(d.d.b) - d.d.off }
