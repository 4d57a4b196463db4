package redo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SegMeta is the durable state of a segment other than its records.
type SegMeta struct {
	PG       uint32
	Epoch    uint64 // highest epoch sealed or installed: requests below it are rejected
	History  History
	Base     LSN // records at or below Base may have been garbage-collected
	BaseTail LSN // last record of the PG at or below Base
	Hint     LSN // a VDL the writer reported: everything at or below it is durable on a write quorum
	Active   bool
	Peers    []Peer
}

// Entry kinds in the durable log.
const (
	EntryRecord = 1
	EntryMeta   = 2
	EntryDrop   = 3 // Record.LSN of Record.PG was discarded (garbage-collected or truncated)
)

// Entry is one durable log entry.
type Entry struct {
	Kind   uint8
	Record Record  // EntryRecord, EntryDrop (LSN and PG only)
	Meta   SegMeta // EntryMeta
}

// LogMagic starts every log file; the byte after it is the format version.
var LogMagic = []byte("REFDBLOG")

// LogVersion is the log format version.
const LogVersion = 2

// LogHeader is the header every log file starts with.
func LogHeader() []byte { return append(append([]byte(nil), LogMagic...), LogVersion) }

// CheckLogHeader validates a log file header.
func CheckLogHeader(b []byte) error {
	if len(b) < len(LogMagic)+1 || !bytes.Equal(b[:len(LogMagic)], LogMagic) {
		return fmt.Errorf("%w: not a refdb log file", ErrCorrupt)
	}
	if v := b[len(LogMagic)]; v != LogVersion {
		return fmt.Errorf("%w: log version %d, want %d", ErrCorrupt, v, LogVersion)
	}
	return nil
}

// AppendEntry appends a framed entry: u32 payload length, payload, u32 CRC32C of the payload.
func AppendEntry(dst []byte, e *Entry) []byte {
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	start := len(dst)
	dst = append(dst, e.Kind)
	switch e.Kind {
	case EntryRecord:
		dst = AppendRecord(dst, &e.Record)
	case EntryDrop:
		dst = binary.AppendUvarint(dst, uint64(e.Record.PG))
		dst = binary.AppendUvarint(dst, uint64(e.Record.LSN))
	case EntryMeta:
		m := &Message{PG: e.Meta.PG, Epoch: e.Meta.Epoch, History: e.Meta.History, Base: e.Meta.Base,
			BaseTail: e.Meta.BaseTail, Hint: e.Meta.Hint, Peers: e.Meta.Peers, Type: MsgInstall}
		if e.Meta.Active {
			m.Flags = MFlagCreate
		}
		dst = AppendMessage(dst, m)
	}
	binary.LittleEndian.PutUint32(dst[lenAt:], uint32(len(dst)-start))
	return binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
}

// MaxEntryLen bounds one log entry.
const MaxEntryLen = 64 << 20

// ErrTorn is returned by ReadEntry for an entry cut short by a crash at the end of the log.
var ErrTorn = errors.New("redo: torn entry at end of log")

// ReadEntry decodes the framed entry at the front of b and returns the bytes it used. A frame
// that runs past the end of b is ErrTorn; a complete frame with bad contents wraps ErrCorrupt
// and still reports its size, so a reader can skip it and let peers repair what it held.
func ReadEntry(b []byte) (Entry, int, error) {
	var e Entry
	if len(b) < 4 {
		return e, 0, ErrTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > MaxEntryLen {
		return e, 0, fmt.Errorf("%w: entry length %d", ErrCorrupt, n)
	}
	if uint64(len(b)) < 8+uint64(n) {
		return e, 0, ErrTorn
	}
	size := 8 + int(n)
	payload := b[4 : 4+n]
	if got, want := binary.LittleEndian.Uint32(b[4+n:]), Checksum(payload); got != want {
		return e, size, fmt.Errorf("%w: entry checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	e.Kind = payload[0]
	body := payload[1:]
	switch e.Kind {
	case EntryRecord:
		r, used, err := DecodeRecord(body)
		if err != nil {
			return e, size, err
		}
		if used != len(body) {
			return e, size, fmt.Errorf("%w: trailing bytes after record", ErrCorrupt)
		}
		e.Record = r.Clone()
	case EntryDrop:
		d := decoder{b: body}
		pg, lsn := d.uvarint(), d.uvarint()
		if d.err != nil || pg > 1<<32-1 {
			return e, size, fmt.Errorf("%w: bad drop entry", ErrCorrupt)
		}
		e.Record = Record{PG: uint32(pg), LSN: LSN(lsn)}
	case EntryMeta:
		m, err := DecodeMessage(body)
		if err != nil {
			return e, size, err
		}
		e.Meta = SegMeta{PG: m.PG, Epoch: m.Epoch, History: m.History.Clone(), Base: m.Base, BaseTail: m.BaseTail,
			Hint: m.Hint, Peers: append([]Peer(nil), m.Peers...), Active: m.Flags&MFlagCreate != 0}
	default:
		return e, size, fmt.Errorf("%w: unknown entry kind %d", ErrCorrupt, e.Kind)
	}
	return e, size, nil
}

// WriteFrame writes a length-prefixed frame (u32 big-endian length, payload) to w.
func WriteFrame(w io.Writer, payload []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(append(hdr[:], payload...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// AppendMessageFrame appends m as one frame in WriteFrame's format, encoding it in place
// (no separate payload buffer).
func AppendMessageFrame(dst []byte, m *Message) []byte {
	start := len(dst)
	dst = AppendMessage(append(dst, 0, 0, 0, 0), m)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ReadFrame reads one frame written by WriteFrame, refusing frames above max bytes.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrCorrupt, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return b, nil
}
