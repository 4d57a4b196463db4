package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

var peers = []redo.Peer{{ID: "s1", AZ: "az1"}, {ID: "s2", AZ: "az1"}, {ID: "s3", AZ: "az2"}, {ID: "s4", AZ: "az2"}, {ID: "s5", AZ: "az3"}, {ID: "s6", AZ: "az3"}}

var genesis = redo.History{{Epoch: 1, Trunc: 0, Start: 1}}

func created(t *testing.T, id string) *Node {
	t.Helper()
	n := NewNode(Config{ID: id, GCWindow: 10})
	out := n.Step(&redo.Message{Type: redo.MsgInstall, From: "w", PG: 0, Epoch: 1, History: genesis, Peers: peers, Flags: redo.MFlagCreate})
	if len(out.Send) != 1 || out.Send[0].Type != redo.MsgInstallAck {
		t.Fatalf("create: %v", out.Send)
	}
	return n
}

// chain builds n records of PG 0 at LSNs from..from+n-1, each its own transaction.
func chain(epoch uint64, prev redo.LSN, from redo.LSN, n int) []redo.Record {
	var rs []redo.Record
	for i := 0; i < n; i++ {
		l := from + redo.LSN(i)
		rs = append(rs, redo.Record{LSN: l, Epoch: epoch, PG: 0, PrevLSN: prev, CommitLSN: l, Flags: redo.FlagCommit,
			Key: []byte(fmt.Sprintf("k%d", l%3)), Value: []byte(fmt.Sprintf("v%d", l))})
		prev = l
	}
	return rs
}

func appendMsg(epoch uint64, recs ...redo.Record) *redo.Message {
	return &redo.Message{Type: redo.MsgAppend, From: "w", PG: 0, Epoch: epoch, Records: recs}
}

func only(t *testing.T, out Output, typ redo.MsgType) *redo.Message {
	t.Helper()
	if len(out.Send) != 1 || out.Send[0].Type != typ {
		t.Fatalf("want one %s, got %v", typ, out.Send)
	}
	return out.Send[0]
}

func TestAppendOutOfOrderAdvancesSCLOverHoles(t *testing.T) {
	n := created(t, "s1")
	rs := chain(1, 0, 1, 5)
	ack := only(t, n.Step(appendMsg(1, rs[0], rs[2], rs[3])), redo.MsgAppendAck)
	if ack.SCL != 1 {
		t.Fatalf("SCL %d with a hole at 2, want 1", ack.SCL)
	}
	out := n.Step(appendMsg(1, rs[1], rs[2]))
	if len(out.Persist) != 1 {
		t.Fatalf("duplicate record persisted again: %d entries", len(out.Persist))
	}
	if ack := only(t, out, redo.MsgAppendAck); ack.SCL != 4 {
		t.Fatalf("SCL %d after the hole filled, want 4", ack.SCL)
	}
}

func TestEpochRules(t *testing.T) {
	n := created(t, "s1")
	if r := only(t, n.Step(appendMsg(2, chain(2, 0, 1, 1)...)), redo.MsgReject); r.Code != redo.RejectNeedInstall {
		t.Fatalf("unknown epoch: %s", r.Code)
	}
	n.Step(appendMsg(1, chain(1, 0, 1, 3)...))
	seal := only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "r", PG: 0, Epoch: 5}), redo.MsgSealResp)
	if seal.Epoch != 5 || seal.SCL != 3 || len(seal.Records) != 3 {
		t.Fatalf("seal response %v", seal)
	}
	if r := only(t, n.Step(appendMsg(1, chain(1, 3, 4, 1)...)), redo.MsgReject); r.Code != redo.RejectStaleEpoch || r.Epoch != 5 {
		t.Fatalf("fenced writer not rejected: %v", r)
	}
	if r := only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "r", PG: 0, Epoch: 4}), redo.MsgReject); r.Code != redo.RejectStaleEpoch {
		t.Fatalf("older seal: %v", r)
	}
	// Installing epoch 5 truncates above 2: record 3 of epoch 1 is discarded.
	h := append(genesis.Clone(), redo.EpochEntry{Epoch: 5, Trunc: 2, Start: 100})
	ack := only(t, n.Step(&redo.Message{Type: redo.MsgInstall, From: "r", PG: 0, Epoch: 5, History: h}), redo.MsgInstallAck)
	if ack.SCL != 2 || n.Segment(0).Len() != 2 {
		t.Fatalf("after truncation SCL %d, %d records", ack.SCL, n.Segment(0).Len())
	}
	if ack := only(t, n.Step(appendMsg(5, chain(5, 2, 100, 2)...)), redo.MsgAppendAck); ack.SCL != 101 {
		t.Fatalf("new epoch append SCL %d", ack.SCL)
	}
	if r := only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "x", PG: 9, Epoch: 9}), redo.MsgReject); r.Code != redo.RejectNotHosted {
		t.Fatalf("seal of a foreign PG: %v", r)
	}
}

func TestRestoreFromLog(t *testing.T) {
	n := created(t, "s1")
	var log []redo.Entry
	log = append(log, redo.Entry{Kind: redo.EntryMeta, Meta: n.Segment(0).Meta()})
	out := n.Step(appendMsg(1, chain(1, 0, 1, 6)...))
	log = append(log, out.Persist...)
	out = n.Step(&redo.Message{Type: redo.MsgSeal, From: "r", PG: 0, Epoch: 3})
	log = append(log, out.Persist...)
	r := Restore(Config{ID: "s1"}, log)
	seg := r.Segment(0)
	if seg.SCL() != 6 || seg.Meta().Epoch != 3 || !seg.Meta().Active {
		t.Fatalf("restored SCL %d epoch %d active %v", seg.SCL(), seg.Meta().Epoch, seg.Meta().Active)
	}
	checkLiveBytes(t, n)
	checkLiveBytes(t, r)
	// Losing a record in the middle of the log leaves a hole that the SCL stops at.
	r = Restore(Config{ID: "s1"}, append(log[:3:3], log[4:]...))
	if scl := r.Segment(0).SCL(); scl != 2 {
		t.Fatalf("SCL %d with record 3 lost, want 2", scl)
	}
}

func TestGossipFillsHole(t *testing.T) {
	a, b := created(t, "s1"), created(t, "s2")
	rs := chain(1, 0, 1, 5)
	a.Step(appendMsg(1, rs...))
	b.Step(appendMsg(1, rs[0], rs[3], rs[4]))
	req := &redo.Message{Type: redo.MsgGossipReq, From: "s2", To: "s1", PG: 0, Epoch: 1, History: genesis, SCL: b.Segment(0).SCL()}
	resp := only(t, a.Step(req), redo.MsgGossipResp)
	b.Step(resp)
	if scl := b.Segment(0).SCL(); scl != 5 {
		t.Fatalf("SCL after gossip %d", scl)
	}
	checkLiveBytes(t, b)
}

func TestReadsAndGC(t *testing.T) {
	n := created(t, "s1")
	n.Step(appendMsg(1, chain(1, 0, 1, 30)...))
	read := func(key string, at redo.LSN) *redo.Message {
		out := n.Step(&redo.Message{Type: redo.MsgRead, From: "c", PG: 0, Epoch: 1, ReadLSN: at, Need: at, Key: []byte(key)})
		return out.Send[0]
	}
	if m := read("k1", 5); m.Type != redo.MsgReadResp || string(m.Value) != "v4" {
		t.Fatalf("read k1@5: %v %q", m, m.Value)
	}
	if m := read("k1", 40); m.Type != redo.MsgReject || m.Code != redo.RejectIncomplete {
		t.Fatalf("read above SCL: %v", m)
	}
	// The writer reports VDL 30: with a window of 10, versions superseded at or below 20 go.
	n.Step(&redo.Message{Type: redo.MsgAppend, From: "w", PG: 0, Epoch: 1, Hint: 30})
	for i := 0; i < 40; i++ {
		n.Tick()
	}
	if got := n.Segment(0).Len(); got >= 30 {
		t.Fatalf("GC kept %d records", got)
	}
	if m := read("k1", 5); m.Type != redo.MsgReject || m.Code != redo.RejectBelowHorizon {
		t.Fatalf("read below horizon: %v", m)
	}
	if m := read("k1", 25); string(m.Value) != "v25" {
		t.Fatalf("read k1@25 after GC: %q", m.Value)
	}
	if m := read("k2", 21); string(m.Value) != "v20" {
		t.Fatalf("read k2@21 after GC: %q (%v)", m.Value, m)
	}
	scan := n.Step(&redo.Message{Type: redo.MsgRead, From: "c", PG: 0, Epoch: 1, ReadLSN: 30, Need: 30, Flags: redo.MFlagScan, Key: []byte("k"), EndKey: []byte("k2")}).Send[0]
	if len(scan.Records) != 2 || string(scan.Records[0].Key) != "k0" || string(scan.Records[1].Value) != "v28" {
		t.Fatalf("scan: %v", scan.Records)
	}
	// A pinned read point keeps its versions past the window.
	n.Step(&redo.Message{Type: redo.MsgAppend, From: "w", PG: 0, Epoch: 1, Hint: 30, Floor: 22})
	n.Step(appendMsg(1, chain(1, 30, 31, 30)...))
	n.Step(&redo.Message{Type: redo.MsgAppend, From: "w", PG: 0, Epoch: 1, Hint: 60, Floor: 22})
	for i := 0; i < 40; i++ {
		n.Tick()
	}
	if m := read("k1", 22); m.Type != redo.MsgReadResp || string(m.Value) != "v22" {
		t.Fatalf("pinned read k1@22 after GC: %v %q", m, m.Value)
	}
	checkLiveBytes(t, n)
}

// checkLiveBytes: the running estimate the log compaction decides on matches what a
// rewrite from the snapshot would hold.
func checkLiveBytes(t *testing.T, n *Node) {
	t.Helper()
	var want int64
	for _, e := range n.Snapshot() {
		if e.Kind == redo.EntryRecord {
			want += recordLogBytes(&e.Record)
		}
	}
	if got := n.LiveBytes(); got != want {
		t.Fatalf("LiveBytes %d, snapshot holds %d", got, want)
	}
}

func TestWipedSegmentRebuildsFromPeers(t *testing.T) {
	nodes := map[string]*Node{}
	for _, p := range peers[1:] {
		nodes[p.ID] = created(t, p.ID)
		nodes[p.ID].Step(appendMsg(1, chain(1, 0, 1, 8)...))
	}
	wiped := NewNode(Config{ID: "s1"})
	out := wiped.Step(&redo.Message{Type: redo.MsgInstall, From: "w", PG: 0, Epoch: 1, History: genesis, Peers: peers})
	if out.Send[0].Type != redo.MsgReject || out.Send[0].Code != redo.RejectRebuilding {
		t.Fatalf("install of a wiped segment acked before rebuilding: %v", out.Send[0])
	}
	if r := only(t, wiped.Step(appendMsg(1, chain(1, 8, 9, 1)...)), redo.MsgReject); r.Code != redo.RejectRebuilding {
		t.Fatalf("append to rebuilding segment: %v", r)
	}
	var reqs []*redo.Message
	for _, m := range out.Send[1:] {
		reqs = append(reqs, m)
	}
	for i, req := range reqs {
		if i == 3 && wiped.Segment(0).Meta().Active {
			t.Fatalf("active after %d votes", i)
		}
		resp := only(t, nodes[req.To].Step(req), redo.MsgGossipResp)
		wiped.Step(resp)
	}
	seg := wiped.Segment(0)
	if !seg.Meta().Active || seg.SCL() != 8 {
		t.Fatalf("rebuilt segment active=%v SCL=%d", seg.Meta().Active, seg.SCL())
	}
}

func TestOneRecoveryPerEpoch(t *testing.T) {
	n := created(t, "s1")
	n.Step(appendMsg(1, chain(1, 0, 1, 3)...))
	only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "rA", PG: 0, Epoch: 2}), redo.MsgSealResp)
	only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "rA", PG: 0, Epoch: 2}), redo.MsgSealResp) // a duplicate
	if r := only(t, n.Step(&redo.Message{Type: redo.MsgSeal, From: "rB", PG: 0, Epoch: 2}), redo.MsgReject); r.Code != redo.RejectStaleEpoch {
		t.Fatalf("second sealer of epoch 2: %v", r)
	}
	hA := append(genesis.Clone(), redo.EpochEntry{Epoch: 2, Trunc: 3, Start: 50, Owner: "rA"})
	hB := append(genesis.Clone(), redo.EpochEntry{Epoch: 2, Trunc: 3, Start: 50, Owner: "rB"})
	only(t, n.Step(&redo.Message{Type: redo.MsgInstall, From: "rA", PG: 0, Epoch: 2, History: hA}), redo.MsgInstallAck)
	r := only(t, n.Step(&redo.Message{Type: redo.MsgInstall, From: "rB", PG: 0, Epoch: 2, History: hB}), redo.MsgReject)
	if r.Code != redo.RejectStaleEpoch || redo.MsgType(r.Limit) != redo.MsgInstall {
		t.Fatalf("install of another owner's history at the same epoch: %v", r)
	}
	checkLiveBytes(t, n) // the install truncated above 3
	// After a restart the segment no longer knows who sealed: even the same sealer is refused.
	log := n.Snapshot()
	rn := Restore(Config{ID: "s1"}, log)
	if r := only(t, rn.Step(&redo.Message{Type: redo.MsgSeal, From: "rA", PG: 0, Epoch: 2}), redo.MsgReject); r.Code != redo.RejectStaleEpoch {
		t.Fatalf("seal after restart: %v", r)
	}
}

// TestSegmentChainAnyArrivalOrder checks the complete point (SCL) against a model, whatever
// order records arrive in: in order (the write path, where a record that extends the chain
// moves the tail without entering the link map), with holes, duplicates and a restart
// (rewalk) between batches.
func TestSegmentChainAnyArrivalOrder(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := newSegment(&Config{}, redo.SegMeta{PG: 0, Epoch: 1, History: genesis, Active: true})
		recs := chain(1, 0, 1, 60)
		held := map[redo.LSN]bool{}
		// Mostly in order, with some records held back and delivered later, some twice.
		var order []int
		var late []int
		for i := range recs {
			switch r := rng.IntN(10); {
			case r == 0:
				late = append(late, i)
			case r == 1:
				order = append(order, i, i)
			default:
				order = append(order, i)
			}
			if len(late) > 0 && rng.IntN(4) == 0 {
				j := rng.IntN(len(late))
				order = append(order, late[j])
				late = append(late[:j], late[j+1:]...)
			}
		}
		order = append(order, late...)
		for n, i := range order {
			r := recs[i]
			stored := s.add(&r) != nil
			if stored == held[r.LSN] {
				t.Fatalf("seed %d: record %d stored=%v, already held=%v", seed, r.LSN, stored, held[r.LSN])
			}
			held[r.LSN] = true
			if rng.IntN(3) == 0 || n == len(order)-1 {
				s.walk()
				want := redo.LSN(0)
				for held[want+1] {
					want++
				}
				if s.SCL() != want {
					t.Fatalf("seed %d after %d arrivals: SCL %d, want %d", seed, n+1, s.SCL(), want)
				}
			}
			if rng.IntN(40) == 0 {
				s.rewalk()
			}
		}
		if s.SCL() != 60 {
			t.Fatalf("seed %d: final SCL %d, want 60", seed, s.SCL())
		}
	}
}
