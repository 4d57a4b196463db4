package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// WAL is a node's durable log: one append-only file of checksummed entries, fsynced per group
// commit, rewritten from a snapshot of the live state when it has grown well past it.
type WAL struct {
	dir   string
	f     *os.File
	size  int64 // end of the valid entries: the next append goes here
	alloc int64 // file size: the log is preallocated with zeros past size
	buf   []byte
	log   *slog.Logger
}

// preallocChunk is how far the file grows at a time. Appends then overwrite blocks that are
// already allocated and written, so each group commit needs only fdatasync of data, not a
// journal commit for the file's new size.
const preallocChunk = 16 << 20

const walName = "redo.log"

// LoadReport says what opening a log found.
type LoadReport struct {
	Entries   int
	Corrupt   int   // complete entries with bad contents, skipped (peers repair what they held)
	TornBytes int64 // bytes of an incomplete last entry, cut off
}

// OpenWAL opens (or creates) the log in dir and returns its entries. A torn tail from a crash
// is truncated; a corrupt entry in the middle is skipped and reported, and the segment's chain
// shows the hole so gossip refills it.
func OpenWAL(dir string, log *slog.Logger) (*WAL, []redo.Entry, LoadReport, error) {
	var rep LoadReport
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, rep, fmt.Errorf("open wal: %w", err)
	}
	path := filepath.Join(dir, walName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, rep, fmt.Errorf("open wal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, rep, fmt.Errorf("read wal %s: %w", path, err)
	}
	w := &WAL{dir: dir, f: f, log: log}
	hdr := redo.LogHeader()
	if len(data) < len(hdr) {
		// New (or torn before its header was durable): start over.
		if err := w.reset(hdr); err != nil {
			f.Close()
			return nil, nil, rep, err
		}
		return w, nil, rep, nil
	}
	if err := redo.CheckLogHeader(data); err != nil {
		f.Close()
		return nil, nil, rep, fmt.Errorf("wal %s: %w", path, err)
	}
	var entries []redo.Entry
	off := len(hdr)
	for off < len(data) {
		if len(data)-off >= 4 && binary.LittleEndian.Uint32(data[off:]) == 0 {
			break // the zeroed, preallocated end of the log
		}
		e, n, err := redo.ReadEntry(data[off:])
		switch {
		case err == nil:
			entries = append(entries, e)
			off += n
			continue
		case errors.Is(err, redo.ErrTorn):
		case n > 0 && !allZero(data[off+n:]):
			rep.Corrupt++
			log.Warn("wal: skipping corrupt entry", "offset", off, "err", err)
			off += n
			continue
		case n > 0:
			// A bad last entry followed only by zeros: a write torn by a crash, never acked.
		default:
			log.Error("wal: unreadable entry, dropping the rest of the log", "offset", off, "bytes", len(data)-off, "err", err)
		}
		rep.TornBytes = int64(len(data) - off)
		if zeros := countZeroTail(data[off:]); zeros < len(data)-off {
			rep.TornBytes -= int64(zeros)
		}
		// Zero what follows so a later load never mistakes stale bytes for entries.
		if _, err := f.WriteAt(make([]byte, len(data)-off), int64(off)); err != nil {
			f.Close()
			return nil, nil, rep, fmt.Errorf("clear torn wal tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, rep, fmt.Errorf("clear torn wal tail: %w", err)
		}
		break
	}
	rep.Entries = len(entries)
	w.size, w.alloc = int64(off), int64(len(data))
	return w, entries, rep, nil
}

func (w *WAL) reset(hdr []byte) error {
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("reset wal: %w", err)
	}
	if _, err := w.f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("reset wal: %w", err)
	}
	w.size, w.alloc = int64(len(hdr)), int64(len(hdr))
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync wal: %w", err)
	}
	return syncDir(w.dir)
}

// Append writes entries (not yet durable).
func (w *WAL) Append(entries []redo.Entry) error {
	w.buf = w.buf[:0]
	for i := range entries {
		w.buf = redo.AppendEntry(w.buf, &entries[i])
	}
	if end := w.size + int64(len(w.buf)); end > w.alloc {
		grow := max(preallocChunk, end-w.alloc)
		if _, err := w.f.WriteAt(make([]byte, grow), w.alloc); err != nil {
			return fmt.Errorf("preallocate wal: %w", err)
		}
		// The new size must be durable before fdatasync can be trusted with appends there.
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("preallocate wal: %w", err)
		}
		w.alloc += grow
	}
	n, err := w.f.WriteAt(w.buf, w.size)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("append wal: %w", err)
	}
	return nil
}

// Sync makes everything appended durable. The file's size and blocks are already durable
// (preallocated), so flushing the data is enough.
func (w *WAL) Sync() error {
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync wal: %w", err)
	}
	return nil
}

func allZero(b []byte) bool { return countZeroTail(b) == len(b) }

// countZeroTail counts the zero bytes at the end of b.
func countZeroTail(b []byte) int {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == 0; i-- {
		n++
	}
	return n
}

// Size is the log's size in bytes.
func (w *WAL) Size() int64 { return w.size }

// Rewrite replaces the log with the given snapshot entries, atomically (write, fsync, rename,
// fsync the folder).
func (w *WAL) Rewrite(entries []redo.Entry) error {
	tmp := filepath.Join(w.dir, walName+".tmp")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("rewrite wal: %w", err)
	}
	buf := redo.LogHeader()
	for i := range entries {
		buf = redo.AppendEntry(buf, &entries[i])
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("rewrite wal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("rewrite wal: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, walName)); err != nil {
		f.Close()
		return fmt.Errorf("rewrite wal: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.f.Close()
	w.f = f
	w.size, w.alloc = int64(len(buf)), int64(len(buf))
	return nil
}

// Verify re-reads the whole log and counts entries that fail their checksum.
func (w *WAL) Verify() (int, error) {
	data, err := os.ReadFile(filepath.Join(w.dir, walName))
	if err != nil {
		return 0, fmt.Errorf("verify wal: %w", err)
	}
	if int64(len(data)) > w.size {
		data = data[:w.size]
	}
	if err := redo.CheckLogHeader(data); err != nil {
		return 1, nil
	}
	bad := 0
	for off := len(redo.LogHeader()); off < len(data); {
		_, n, err := redo.ReadEntry(data[off:])
		if err == nil {
			off += n
			continue
		}
		bad++
		if n == 0 {
			break
		}
		off += n
	}
	return bad, nil
}

// Close closes the file.
func (w *WAL) Close() error { return w.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
