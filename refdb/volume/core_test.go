package volume

import (
	"errors"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

var nodes = []redo.Peer{{ID: "s1", AZ: "az1"}, {ID: "s2", AZ: "az1"}, {ID: "s3", AZ: "az2"}, {ID: "s4", AZ: "az2"}, {ID: "s5", AZ: "az3"}, {ID: "s6", AZ: "az3"}}

func layout(t *testing.T, pgs int) Layout {
	t.Helper()
	l, err := NewLayout(nodes, pgs)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLayoutRouting(t *testing.T) {
	l := layout(t, 4)
	cases := map[string]uint32{"": 0, "\x00": 0, "\x3f": 0, "\x40": 1, "\x80zz": 2, "\xff": 3}
	for k, want := range cases {
		if got := l.PGFor([]byte(k)); got != want {
			t.Errorf("PGFor(%q)=%d want %d", k, got, want)
		}
	}
	if _, err := NewLayout(nodes[:5], 1); err == nil {
		t.Error("5 nodes accepted")
	}
}

func genesisWriter(t *testing.T, inflight redo.LSN) *Writer {
	return NewWriter(WriterConfig{ID: "w", MaxInflight: inflight}, layout(t, 1), RecoveredState{Epoch: 1, History: redo.History{{Epoch: 1, Start: 1}}, Start: 1})
}

func ack(w *Writer, seg string, scl redo.LSN) {
	w.Step(&redo.Message{Type: redo.MsgAppendAck, From: seg, PG: 0, Epoch: w.Epoch(), SCL: scl})
}

func TestWriterQuorumAndVDL(t *testing.T) {
	w := genesisWriter(t, 100)
	c1, err := w.Propose([]Op{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")}})
	if err != nil || c1 != 2 {
		t.Fatalf("propose: %d %v", c1, err)
	}
	c2, _ := w.Propose([]Op{{Key: []byte("a"), Delete: true}})
	msgs := w.Ready()
	if len(msgs) != 6 || len(msgs[0].Records) != 3 || msgs[0].Records[2].PrevLSN != 2 || !msgs[0].Records[1].IsCommit() {
		t.Fatalf("appends: %v", msgs)
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		ack(w, s, c2)
	}
	if w.VDL() != 0 {
		t.Fatalf("VDL %d with 3 acks", w.VDL())
	}
	ack(w, "s4", 1) // record 1 on 4 copies, but its commit (2) is not
	if w.VDL() != 0 || w.VCL() != 1 {
		t.Fatalf("VDL %d VCL %d", w.VDL(), w.VCL())
	}
	ack(w, "s5", c2)
	if w.VDL() != c2 {
		t.Fatalf("VDL %d want %d", w.VDL(), c2)
	}
	// A stale ack from another epoch counts for nothing.
	w.Step(&redo.Message{Type: redo.MsgAppendAck, From: "s6", PG: 0, Epoch: 7, SCL: 1000})
	if w.VCL() != c2 {
		t.Fatalf("VCL moved on a foreign-epoch ack")
	}
}

func TestWriterBackpressureAndFencing(t *testing.T) {
	w := genesisWriter(t, 3)
	w.Propose([]Op{{Key: []byte("a")}, {Key: []byte("b")}})
	if _, err := w.Propose([]Op{{Key: []byte("a")}, {Key: []byte("b")}}); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("want back-pressure, got %v", err)
	}
	w.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectStaleEpoch, From: "s1", PG: 0, Epoch: 2})
	if _, err := w.Propose([]Op{{Key: []byte("a")}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("want fenced, got %v", err)
	}
}

func TestWriterResendsAndInstalls(t *testing.T) {
	w := genesisWriter(t, 100)
	w.Propose([]Op{{Key: []byte("a")}})
	w.Ready()
	w.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectNeedInstall, From: "s3", PG: 0, Epoch: 0})
	msgs := w.Ready()
	if len(msgs) != 1 || msgs[0].Type != redo.MsgInstall || msgs[0].To != "s3" || len(msgs[0].Records) != 1 {
		t.Fatalf("install: %v", msgs)
	}
	var resent int
	for i := 0; i < 3; i++ {
		for _, m := range w.Tick() {
			if m.Type == redo.MsgAppend && len(m.Records) == 1 {
				resent++
			}
		}
	}
	if resent < 6 {
		t.Fatalf("resent to %d segments", resent)
	}
}

func sealResp(from string, pg uint32, epoch uint64, h redo.History, hint, scl, tail redo.LSN, recs ...redo.Record) *redo.Message {
	return &redo.Message{Type: redo.MsgSealResp, From: from, PG: pg, Epoch: epoch, History: h, Hint: hint, SCL: scl, Floor: hint, Tail: tail, Records: recs}
}

func rec(lsn, prev, commit redo.LSN, pg uint32) redo.Record {
	r := redo.Record{LSN: lsn, Epoch: 1, PG: pg, PrevLSN: prev, CommitLSN: commit, Key: []byte{byte(pg * 128)}}
	if lsn == commit {
		r.Flags = redo.FlagCommit
	}
	return r
}

func TestRecoveryComputesVDLAtFirstMissingLSN(t *testing.T) {
	l := layout(t, 2)
	r := NewRecovery("w2", l, 2, 50)
	h := redo.History{{Epoch: 1, Start: 1}}
	// PG 0 holds 11, 12, 14(commit 14), 17; PG 1 holds 13(commit), 15, 16(commit 16).
	// LSN 14's transaction is complete; 15-16 complete; 17 is alone, 18 never seen:
	// VCL 17, VDL 16.
	pg0 := []redo.Record{rec(11, 10, 11, 0), rec(12, 11, 12, 0), rec(14, 12, 14, 0), rec(17, 14, 18, 0)}
	pg1 := []redo.Record{rec(13, 9, 13, 1), rec(15, 13, 16, 1), rec(16, 15, 16, 1)}
	out := r.Start()
	e := r.Epoch()
	if len(out) != 12 || out[0].Type != redo.MsgSeal || out[0].Epoch != e || EpochRound(e) != 2 {
		t.Fatalf("start: %v", out)
	}
	for _, s := range []string{"s1", "s3", "s5"} {
		r.Step(sealResp(s, 0, e, h, 10, 14, 10, pg0...))
		out = r.Step(sealResp(s, 1, e, h, 10, 16, 9, pg1...))
	}
	if len(out) != 12 || out[0].Type != redo.MsgInstall {
		t.Fatalf("install phase: %v", out)
	}
	hist := out[0].History
	last := hist[len(hist)-1]
	if last.Epoch != e || last.Trunc != 16 || last.Start != 67 || last.Owner != "w2" {
		t.Fatalf("new epoch entry %+v", last)
	}
	for _, m := range out {
		for _, rr := range m.Records {
			if rr.LSN > 16 {
				t.Fatalf("install re-replicates %d above the VDL", rr.LSN)
			}
		}
	}
	for _, s := range []string{"s1", "s2", "s3", "s4"} {
		r.Step(&redo.Message{Type: redo.MsgInstallAck, From: s, PG: 0, Epoch: e, SCL: 14})
		r.Step(&redo.Message{Type: redo.MsgInstallAck, From: s, PG: 1, Epoch: e, SCL: 16})
	}
	if done, err := r.Done(); !done || err != nil {
		t.Fatalf("done=%v err=%v", done, err)
	}
	st := r.State()
	if st.VDL != 16 || st.Start != 67 || st.Tails[0] != 14 || st.Tails[1] != 16 {
		t.Fatalf("state %+v", st)
	}
}

func TestEpochsEmbedTheirOwner(t *testing.T) {
	a, b := EpochFor(5, "writer-a"), EpochFor(5, "writer-b")
	if a == b || EpochRound(a) != 5 || EpochRound(b) != 5 || EpochFor(6, "writer-a") <= max(a, b) {
		t.Fatalf("epochs %d %d", a, b)
	}
}

func TestRecoveryFencedByNewerEpoch(t *testing.T) {
	r := NewRecovery("w2", layout(t, 1), 2, 50)
	r.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectStaleEpoch, From: "s1", PG: 0, Epoch: r.Epoch() + 1})
	if _, err := r.Done(); !errors.Is(err, ErrFenced) {
		t.Fatalf("err %v", err)
	}
	// Our epoch sealed by another recovery: those copies do not count; with 4 of 6 refused no
	// read quorum is left and recovery gives way.
	r = NewRecovery("w2", layout(t, 1), 2, 50)
	for i, s := range []string{"s1", "s2", "s3", "s4"} {
		r.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectStaleEpoch, From: s, PG: 0, Epoch: r.Epoch(), Limit: uint32(redo.MsgSeal)})
		if _, err := r.Done(); (err != nil) != (i == 3) {
			t.Fatalf("after %d refusals: err %v", i+1, err)
		}
	}
	r = NewRecovery("w2", layout(t, 1), 2, 50)
	for _, n := range nodes {
		r.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectNotHosted, From: n.ID, PG: 0})
	}
	if _, err := r.Done(); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("err %v", err)
	}
}

func TestRecoveryGivesWayWhenItsInstallIsRefused(t *testing.T) {
	r := NewRecovery("w2", layout(t, 1), 2, 50)
	h := redo.History{{Epoch: 1, Start: 1}}
	for _, s := range []string{"s1", "s2", "s3"} {
		r.Step(sealResp(s, 0, r.Epoch(), h, 0, 0, 0))
	}
	// A late duplicate of our own seal refused after a restart is harmless now...
	r.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectStaleEpoch, From: "s1", PG: 0, Epoch: r.Epoch(), Limit: uint32(redo.MsgSeal)})
	if _, err := r.Done(); err != nil {
		t.Fatalf("late seal refusal failed recovery: %v", err)
	}
	// ...but a refused install means another recovery owns epoch 2.
	r.Step(&redo.Message{Type: redo.MsgReject, Code: redo.RejectStaleEpoch, From: "s4", PG: 0, Epoch: r.Epoch(), Limit: uint32(redo.MsgInstall)})
	if _, err := r.Done(); !errors.Is(err, ErrFenced) {
		t.Fatalf("err %v", err)
	}
}

// A writer that recovered at round 2, died, and restarts under the same id recovers at round
// 2 again: the segments let it re-seal its own epoch, and their history already holds that
// epoch. Recovery must give way and go above it rather than install a history whose epochs
// do not increase (every segment refuses that, and the writer would resend it forever).
func TestRecoveryGivesWayWhenItsEpochIsAlreadyInstalled(t *testing.T) {
	r := NewRecovery("w2", layout(t, 1), 2, 50)
	h := redo.History{{Epoch: 1, Start: 1}, {Epoch: r.Epoch(), Trunc: 5, Start: 56, Owner: "w2"}}
	var out []*redo.Message
	for _, s := range []string{"s1", "s2", "s3"} {
		out = r.Step(sealResp(s, 0, r.Epoch(), h, 0, 0, 0))
	}
	if _, err := r.Done(); !errors.Is(err, ErrFenced) {
		t.Fatalf("err %v, want ErrFenced", err)
	}
	for _, m := range out {
		if m.Type == redo.MsgInstall {
			t.Fatalf("sent an install with history %+v", m.History)
		}
	}
	next := NewRecovery("w2", layout(t, 1), EpochRound(r.MaxEpochSeen())+1, 50)
	if next.Epoch() <= h.Latest() {
		t.Fatalf("next epoch %d not above %d", next.Epoch(), h.Latest())
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		out = next.Step(sealResp(s, 0, next.Epoch(), h, 0, 0, 0))
	}
	installs := 0
	for _, m := range out {
		if m.Type == redo.MsgInstall {
			installs++
			if err := m.History.Validate(); err != nil {
				t.Fatalf("install history: %v", err)
			}
		}
	}
	if installs == 0 {
		t.Fatal("no install sent above the installed epoch")
	}
}
