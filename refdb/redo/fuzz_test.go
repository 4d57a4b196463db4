package redo

import (
	"bytes"
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	r := sampleRecord()
	f.Add(AppendRecord(nil, &r))
	f.Add([]byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := DecodeRecord(b)
		if err != nil {
			return
		}
		again := AppendRecord(nil, &rec)
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding of a decoded record differs")
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	r := sampleRecord()
	f.Add(AppendMessage(nil, &Message{Type: MsgAppend, From: "w", Records: []Record{r}, History: History{{Epoch: 1, Start: 1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if _, err := DecodeMessage(AppendMessage(nil, m)); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

func FuzzReadEntry(f *testing.F) {
	r := sampleRecord()
	f.Add(AppendEntry(nil, &Entry{Kind: EntryRecord, Record: r}))
	f.Add(AppendEntry(nil, &Entry{Kind: EntryMeta, Meta: SegMeta{PG: 1, History: History{{Epoch: 1, Start: 1}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, n, err := ReadEntry(b)
		if n > len(b) {
			t.Fatalf("used %d of %d bytes (err %v)", n, len(b), err)
		}
	})
}
