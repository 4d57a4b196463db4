package checker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aurorabench/aurorabench/history"
)

// h builds a history from compact events: process, type, f, key, value, time.
type ev struct {
	p     int
	t     history.Type
	f     string
	key   string
	value string
	time  int64
}

func build(evs ...ev) *Input {
	ops := make([]history.Op, len(evs))
	for i, e := range evs {
		ops[i] = history.Op{Index: int64(i), Process: e.p, Type: e.t, F: e.f, Key: e.key, Time: e.time}
		if e.value != "" {
			ops[i].Value = []byte(e.value)
		}
	}
	return NewInput(ops, "")
}

const (
	inv  = history.Invoke
	okT  = history.OK
	fail = history.Fail
	info = history.Info
)

func TestLinearizableAcceptsConcurrentReads(t *testing.T) {
	in := build(
		ev{0, inv, "write", "1", "1", 0},
		ev{1, inv, "read", "1", "", 1},
		ev{1, okT, "read", "1", "null", 2}, // concurrent with the write: may see nothing
		ev{0, okT, "write", "1", "1", 3},
		ev{1, inv, "read", "1", "", 4},
		ev{1, okT, "read", "1", "1", 5},
		ev{2, inv, "cas", "1", "[1,2]", 6},
		ev{2, okT, "cas", "1", "[1,2]", 7},
		ev{2, inv, "cas", "1", "[1,3]", 8},
		ev{2, fail, "cas", "1", "false", 9},
	)
	r := Linearizable{}.Check(context.Background(), in)
	if !r.Valid {
		t.Fatalf("valid history judged invalid: %v", r.Anomalies)
	}
}

func TestLinearizableCatchesStaleRead(t *testing.T) {
	dir := t.TempDir()
	in := build(
		ev{0, inv, "write", "7", "1", 0},
		ev{0, okT, "write", "7", "1", 1},
		ev{0, inv, "write", "7", "2", 2},
		ev{0, okT, "write", "7", "2", 3},
		ev{1, inv, "read", "7", "", 4},
		ev{1, okT, "read", "7", "1", 5},
	)
	in.Dir = dir
	r := Linearizable{}.Check(context.Background(), in)
	if r.Valid {
		t.Fatal("stale read not detected")
	}
	if len(r.Artifacts) != 1 {
		t.Fatalf("expected one visualization, got %v", r.Artifacts)
	}
	if _, err := os.Stat(filepath.Join(dir, r.Artifacts[0])); err != nil {
		t.Fatal(err)
	}
}

func TestLinearizableInfoWriteMayApplyLaterOrNever(t *testing.T) {
	// An indeterminate write may show up long after it "ended"...
	later := build(
		ev{0, inv, "write", "1", "5", 0},
		ev{0, info, "write", "1", "", 1},
		ev{1, inv, "read", "1", "", 10},
		ev{1, okT, "read", "1", "null", 11},
		ev{1, inv, "read", "1", "", 12},
		ev{1, okT, "read", "1", "5", 13},
	)
	if r := (Linearizable{}).Check(context.Background(), later); !r.Valid {
		t.Fatalf("late-applying info write judged invalid: %v", r.Anomalies)
	}
	// ...but once seen it cannot un-happen.
	flip := build(
		ev{0, inv, "write", "1", "5", 0},
		ev{0, info, "write", "1", "", 1},
		ev{1, inv, "read", "1", "", 10},
		ev{1, okT, "read", "1", "5", 11},
		ev{1, inv, "read", "1", "", 12},
		ev{1, okT, "read", "1", "null", 13},
	)
	if r := (Linearizable{}).Check(context.Background(), flip); r.Valid {
		t.Fatal("value that disappeared was accepted")
	}
}

func TestLinearizableFailedWriteDidNotHappen(t *testing.T) {
	in := build(
		ev{0, inv, "write", "1", "5", 0},
		ev{0, fail, "write", "1", "", 1},
		ev{1, inv, "read", "1", "", 2},
		ev{1, okT, "read", "1", "5", 3},
	)
	if r := (Linearizable{}).Check(context.Background(), in); r.Valid {
		t.Fatal("a read saw a write that definitely failed, and it was accepted")
	}
}

func TestBank(t *testing.T) {
	good := build(
		ev{0, inv, "read", "", "", 0},
		ev{0, okT, "read", "", "[50,150]", 1},
	)
	if r := (Bank{Accounts: 2, Total: 200}).Check(context.Background(), good); !r.Valid {
		t.Fatalf("conserved total judged invalid: %v", r.Anomalies)
	}
	for _, bad := range []string{"[50,100]", "[-1,201]", "[200]"} {
		in := build(ev{0, inv, "read", "", "", 0}, ev{0, okT, "read", "", bad, 1})
		if r := (Bank{Accounts: 2, Total: 200}).Check(context.Background(), in); r.Valid {
			t.Fatalf("bad read %s accepted", bad)
		}
	}
}

func TestSet(t *testing.T) {
	base := []ev{
		{0, inv, "add", "", "1", 0}, {0, okT, "add", "", "1", 1},
		{0, inv, "add", "", "2", 2}, {0, info, "add", "", "", 3},
		{1, inv, "add", "", "3", 4}, {1, fail, "add", "", "", 5},
		{2, inv, "read", "", "", 6},
	}
	cases := map[string]bool{"[1]": true, "[1,2]": true, "[2]": false, "[1,3]": false, "[1,9]": false}
	for final, want := range cases {
		in := build(append(append([]ev{}, base...), ev{2, okT, "read", "", final, 7})...)
		r := Set{}.Check(context.Background(), in)
		if r.Valid != want {
			t.Errorf("final %s: valid=%v, want %v (%v)", final, r.Valid, want, r.Anomalies)
		}
	}
}

// TestSetScans: whatever a scan returned during the run must be in the final read, whether
// its insert was acknowledged, indeterminate or never answered; failed scans count for nothing.
func TestSetScans(t *testing.T) {
	base := []ev{
		{0, inv, "add", "", "1", 0}, {0, okT, "add", "", "1", 1},
		{0, inv, "add", "", "2", 2}, {0, info, "add", "", "", 3},
		{1, inv, "scan", "", "[1,1001]", 4}, {1, okT, "scan", "", "[1,2]", 5},
		{1, inv, "scan", "", "[1,1001]", 6}, {1, fail, "scan", "", "", 7},
		{2, inv, "read", "", "", 8},
	}
	cases := map[string]bool{"[1,2]": true, "[1]": false}
	for final, want := range cases {
		in := build(append(append([]ev{}, base...), ev{2, okT, "read", "", final, 9})...)
		for i := range in.Pairs {
			if in.Pairs[i].Invoke.F == "scan" {
				in.Pairs[i].Invoke.Node = "reader"
			}
		}
		r := Set{}.Check(context.Background(), in)
		if r.Valid != want {
			t.Errorf("scan saw [1,2], final %s: valid=%v, want %v (%v)", final, r.Valid, want, r.Anomalies)
		}
		if !want && (len(r.Anomalies) != 1 || !strings.Contains(r.Anomalies[0], "1 elements read during the run are missing from the final read") ||
			!strings.Contains(r.Anomalies[0], "first seen on the reader")) {
			t.Errorf("final %s: anomalies %q, want one naming the element the reader showed", final, r.Anomalies)
		}
	}
}

func TestLag(t *testing.T) {
	in := build(
		ev{0, inv, "mark", "", "1", 0}, ev{0, okT, "mark", "", "1", 1_000_000},
		ev{0, inv, "mark", "", "2", 1_000_000}, ev{0, okT, "mark", "", "2", 2_000_000},
		ev{1, inv, "poll", "", "", 2_500_000}, ev{1, okT, "poll", "", "[1]", 3_000_000},
		ev{1, inv, "poll", "", "", 3_000_000}, ev{1, okT, "poll", "", "[2]", 7_000_000},
	)
	for i := range in.Pairs {
		if in.Pairs[i].Invoke.F == "poll" {
			in.Pairs[i].Invoke.Node = "r1"
		}
	}
	r := Lag{}.Check(context.Background(), in)
	reps := r.Numbers["replicas"].(map[string]LagReplica)
	p := reps["r1"].Percentiles
	if p.Count != 2 || p.Max < 4.9 || p.Max > 5.1 || p.P50 < 1.9 || p.P50 > 2.1 {
		t.Fatalf("lag percentiles %+v, want 2 samples of 2ms and 5ms", p)
	}
}

func TestFaultsFailoverTime(t *testing.T) {
	ops := []history.Op{
		{Process: 0, Type: inv, F: "write", Time: 0}, {Process: 0, Type: okT, F: "write", Time: 1e6},
		{Process: -1, Type: info, F: "start-kill", Node: "db1", Value: []byte(`{"role":"writer"}`), Time: 2e6},
		{Process: 1, Type: inv, F: "read", Time: 3e6}, {Process: 1, Type: okT, F: "read", Time: 5e6},
		{Process: 0, Type: inv, F: "write", Time: 3e6}, {Process: 0, Type: okT, F: "write", Time: 502e6},
		{Process: -1, Type: info, F: "stop-kill", Node: "db1", Time: 600e6},
	}
	for i := range ops {
		ops[i].Index = int64(i)
	}
	r := Faults{}.Check(context.Background(), NewInput(ops, ""))
	p, ok := r.Numbers["failover"].(Percentiles)
	if !ok || p.Count != 1 || p.Max < 499 || p.Max > 501 {
		t.Fatalf("failover %+v, want one sample of 500ms", r.Numbers["failover"])
	}
	u := r.Numbers["unavailability"].(Percentiles)
	if u.Max < 496 || u.Max > 498 { // 5ms (read) -> 502ms (write)
		t.Fatalf("unavailability %+v, want 497ms", u)
	}
}
