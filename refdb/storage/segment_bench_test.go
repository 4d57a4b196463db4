package storage

import (
	"encoding/binary"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// BenchmarkSegmentAdd is a storage node's per-record work on the write path: records of one
// PG arriving in LSN order into a segment already holding 200,000, a third of them new keys
// (secondary index entries) and the rest new versions of existing keys (sysbench write_only's
// mix). The oldest records are dropped a thousand at a time, as garbage collection does, so the
// segment stays at its size.
func BenchmarkSegmentAdd(b *testing.B) {
	cfg := &Config{}
	s := newSegment(cfg, redo.SegMeta{PG: 0, Epoch: 1, History: redo.History{{Epoch: 1}}, Active: true})
	value := make([]byte, 190)
	var lsn, prev redo.LSN
	next := func(i int) *redo.Record {
		lsn++
		key := binary.BigEndian.AppendUint64([]byte("t\x00\x01"), uint64(i%10000))
		if i%3 == 0 {
			key = binary.BigEndian.AppendUint64([]byte("i\x00\x02"), uint64(i))
		}
		r := &redo.Record{LSN: lsn, Epoch: 1, PG: 0, PrevLSN: prev, CommitLSN: lsn, Flags: redo.FlagCommit, Key: key, Value: value}
		prev = lsn
		return r
	}
	for i := 0; i < 200000; i++ {
		s.add(next(i))
	}
	s.walk()
	recs := make([]*redo.Record, b.N)
	for i := range recs {
		recs[i] = next(200000 + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i, r := range recs {
		if s.add(r) == nil {
			b.Fatal("record not added")
		}
		s.walk()
		if i%1000 == 999 {
			s.removeAll(append([]redo.LSN(nil), s.order[:1000]...))
		}
	}
}
