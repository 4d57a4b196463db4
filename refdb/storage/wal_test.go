package storage

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

func TestWALTornTailAndCorruptEntry(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, entries, _, err := OpenWAL(dir, log)
	if err != nil || len(entries) != 0 {
		t.Fatalf("open new: %v %d", err, len(entries))
	}
	var es []redo.Entry
	for i := 1; i <= 5; i++ {
		es = append(es, redo.Entry{Kind: redo.EntryRecord, Record: redo.Record{LSN: redo.LSN(i), PrevLSN: redo.LSN(i - 1), CommitLSN: redo.LSN(i), Flags: redo.FlagCommit, Key: []byte("key"), Value: []byte("value")}})
	}
	if err := w.Append(es); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if bad, err := w.Verify(); bad != 0 || err != nil {
		t.Fatalf("verify clean log: %d %v", bad, err)
	}
	w.Close()
	path := filepath.Join(dir, walName)
	data, _ := os.ReadFile(path)
	one := len(redo.AppendEntry(nil, &es[0]))
	hdr := len(redo.LogHeader())
	data[hdr+one+12] ^= 0x55          // inside entry 2's payload
	end := hdr + 5*one                // the log is preallocated with zeros after this
	copy(data[end:], data[hdr:hdr+7]) // a torn partial entry at the end
	os.WriteFile(path, data, 0o644)

	w, entries, rep, err := OpenWAL(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(entries) != 4 || rep.Corrupt != 1 || rep.TornBytes == 0 {
		t.Fatalf("entries %d report %+v", len(entries), rep)
	}
	if w.Size() != int64(end) {
		t.Fatalf("next append at %d, want %d", w.Size(), end)
	}
	// Appending after recovery continues a valid log.
	if err := w.Append(es[:1]); err != nil {
		t.Fatal(err)
	}
	if bad, _ := w.Verify(); bad != 1 {
		t.Fatalf("verify found %d corrupt entries, want 1", bad)
	}
	if err := w.Rewrite(entries); err != nil {
		t.Fatal(err)
	}
	if bad, _ := w.Verify(); bad != 0 {
		t.Fatalf("after rewrite %d corrupt", bad)
	}
	os.WriteFile(path, []byte("NOTALOG!!"), 0o644)
	if _, _, _, err := OpenWAL(dir, log); err == nil {
		t.Fatal("foreign file accepted as a log")
	}
}
