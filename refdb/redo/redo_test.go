package redo

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleRecord() Record {
	return Record{LSN: 42, Epoch: 3, PG: 7, PrevLSN: 40, CommitLSN: 44, Key: []byte("k"), Value: []byte("value")}
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	b := AppendRecord(nil, &r)
	got, n, err := DecodeRecord(append(b, 0xff))
	if err != nil || n != len(b) {
		t.Fatalf("decode: %v (n=%d, want %d)", err, n, len(b))
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("got %v, want %v", &got, &r)
	}
}

func TestRecordCorruptionDetected(t *testing.T) {
	r := sampleRecord()
	b := AppendRecord(nil, &r)
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x10
		if _, _, err := DecodeRecord(c); err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		}
	}
	for i := range b {
		if _, _, err := DecodeRecord(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation at %d: err %v", i, err)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	bad := []Record{
		{LSN: 0, CommitLSN: 1},
		{LSN: 5, PrevLSN: 5, CommitLSN: 5},
		{LSN: 5, CommitLSN: 4},
		{LSN: 5, CommitLSN: 6, Flags: FlagCommit},
		{LSN: 5, CommitLSN: 5, Flags: 0x80},
	}
	for _, r := range bad {
		b := AppendRecord(nil, &r)
		if _, _, err := DecodeRecord(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: err %v", &r, err)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	m := &Message{Type: MsgSealResp, From: "s1", To: "w", ReqID: 9, PG: 3, Epoch: 4, Code: RejectStaleEpoch, Flags: MFlagSnapshot,
		SCL: 10, Hint: 8, Floor: 7, Tail: 6, Base: 5, BaseTail: 4, ReadLSN: 3, Need: 2, Limit: 100,
		Key: []byte("a"), EndKey: []byte("b"), Value: []byte("v"), Err: "boom",
		Records: []Record{sampleRecord(), {LSN: 50, CommitLSN: 50, Flags: FlagCommit | FlagTombstone, Key: []byte("x")}},
		History: History{{Epoch: 1, Trunc: 0, Start: 1}, {Epoch: 2, Trunc: 10, Start: 100}},
		Peers:   []Peer{{ID: "s2", AZ: "az1", Addr: "127.0.0.1:1"}},
		Status:  []SegStatus{{PG: 1, Epoch: 2, SCL: 3, Active: true, Records: 4}},
	}
	b := AppendMessage(nil, m)
	got, err := DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(AppendMessage(nil, got), b) {
		t.Fatalf("re-encoding differs: %v vs %v", got, m)
	}
	if got.Err != "boom" || len(got.Records) != 2 || got.History[1].Start != 100 || got.Status[0].Records != 4 {
		t.Fatalf("bad decode %+v", got)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, err := DecodeMessage(c); err == nil {
			t.Fatalf("flip at %d not detected", i)
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	es := []Entry{
		{Kind: EntryRecord, Record: sampleRecord()},
		{Kind: EntryMeta, Meta: SegMeta{PG: 2, Epoch: 3, History: History{{Epoch: 3, Trunc: 5, Start: 9}}, Base: 4, BaseTail: 3, Hint: 5, Active: true, Peers: []Peer{{ID: "a"}}}},
		{Kind: EntryDrop, Record: Record{PG: 2, LSN: 17}},
	}
	var b []byte
	for i := range es {
		b = AppendEntry(b, &es[i])
	}
	for i := range es {
		e, n, err := ReadEntry(b)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !reflect.DeepEqual(e, es[i]) {
			t.Fatalf("entry %d: got %+v want %+v", i, e, es[i])
		}
		b = b[n:]
	}
	full := AppendEntry(nil, &es[0])
	if _, _, err := ReadEntry(full[:len(full)-1]); !errors.Is(err, ErrTorn) {
		t.Fatalf("torn entry: %v", err)
	}
	full[6] ^= 1
	if _, n, err := ReadEntry(full); !errors.Is(err, ErrCorrupt) || n != len(full) {
		t.Fatalf("corrupt entry: n=%d err=%v", n, err)
	}
}

func TestHistory(t *testing.T) {
	h := History{{Epoch: 1, Trunc: 0, Start: 1}, {Epoch: 2, Trunc: 10, Start: 20}, {Epoch: 4, Trunc: 25, Start: 40}}
	cases := []struct {
		e    uint64
		lsn  LSN
		want bool
	}{{1, 10, false}, {1, 11, true}, {2, 25, false}, {2, 26, true}, {3, 26, true}, {4, 100, false}}
	for _, c := range cases {
		if got := h.Garbage(c.e, c.lsn); got != c.want {
			t.Errorf("Garbage(%d,%d)=%v", c.e, c.lsn, got)
		}
	}
	if s, ok := h.Gap(15); !ok || s != 20 {
		t.Errorf("Gap(15)=%d,%v", s, ok)
	}
	if _, ok := h.Gap(20); ok {
		t.Errorf("Gap(20) should be allocated")
	}
}
