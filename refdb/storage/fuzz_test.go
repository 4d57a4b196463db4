package storage

import (
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// FuzzNodeStep feeds arbitrary (well-framed) messages to a node hosting a segment with data:
// bad input may be refused, never crash the node.
func FuzzNodeStep(f *testing.F) {
	seeds := []*redo.Message{
		appendMsg(1, chain(1, 0, 1, 3)...),
		{Type: redo.MsgSeal, From: "r", PG: 0, Epoch: 2},
		{Type: redo.MsgInstall, From: "r", PG: 0, Epoch: 3, History: redo.History{{Epoch: 1, Start: 1}, {Epoch: 3, Trunc: 1, Start: 9}}},
		{Type: redo.MsgGossipReq, From: "s2", PG: 0, Epoch: 1, History: genesis},
		{Type: redo.MsgGossipResp, From: "s2", PG: 0, Epoch: 1, History: genesis, Flags: redo.MFlagSnapshot | redo.MFlagCreate, Base: 5, BaseTail: 4, Records: chain(1, 0, 1, 4)},
		{Type: redo.MsgRead, From: "c", PG: 0, Epoch: 1, ReadLSN: 2, Need: 2, Key: []byte("k1"), Flags: redo.MFlagScan},
	}
	for _, m := range seeds {
		f.Add(redo.AppendMessage(nil, m), redo.AppendMessage(nil, m))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		n := NewNode(Config{ID: "s1", GCWindow: 2, GCEvery: 1})
		n.Step(&redo.Message{Type: redo.MsgInstall, From: "w", PG: 0, Epoch: 1, History: genesis, Peers: peers, Flags: redo.MFlagCreate})
		n.Step(appendMsg(1, chain(1, 0, 1, 6)...))
		var log []redo.Entry
		for _, raw := range [][]byte{a, b} {
			m, err := redo.DecodeMessage(raw)
			if err != nil {
				continue
			}
			out := n.Step(m)
			log = append(log, out.Persist...)
			out = n.Tick()
			log = append(log, out.Persist...)
		}
		for _, pg := range n.PGs() {
			s := n.Segment(pg)
			if s.SCL() < s.Meta().BaseTail {
				t.Fatalf("SCL %d below base tail %d", s.SCL(), s.Meta().BaseTail)
			}
		}
		Restore(Config{ID: "s1"}, append(n.Snapshot(), log...))
	})
}
