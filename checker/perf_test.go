package checker

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/history"
)

// perfHistory builds a history: process p runs ops back to back.
type opSpec struct {
	f        string
	invoke   time.Duration
	complete time.Duration // < 0: never completes
	typ      history.Type
}

func buildHistory(specs []opSpec) []history.Op {
	type ev struct {
		t  time.Duration
		op history.Op
	}
	var evs []ev
	for i, s := range specs {
		evs = append(evs, ev{s.invoke, history.Op{Process: i, Type: history.Invoke, F: s.f, Time: int64(s.invoke)}})
		if s.complete >= 0 {
			evs = append(evs, ev{s.complete, history.Op{Process: i, Type: s.typ, F: s.f, Time: int64(s.complete)}})
		}
	}
	// stable insertion sort by time (small inputs)
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].t < evs[j-1].t; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	ops := make([]history.Op, len(evs))
	for i, e := range evs {
		e.op.Index = int64(i)
		ops[i] = e.op
	}
	return ops
}

func near(a, b float64) bool { return math.Abs(a-b) <= 0.002*math.Max(math.Abs(a), math.Abs(b))+1e-9 }

func TestPerf(t *testing.T) {
	ms := time.Millisecond
	specs := []opSpec{
		{"read", 0, 1 * ms, history.OK},
		{"read", 100 * ms, 102 * ms, history.OK},
		{"read", 200 * ms, 203 * ms, history.OK},
		{"read", 300 * ms, 304 * ms, history.OK},
		{"read", 400 * ms, 900 * ms, history.Fail},
		{"write", 500 * ms, 510 * ms, history.OK},
		{"write", 600 * ms, 620 * ms, history.Info}, // timed out
		{"write", 700 * ms, -1, history.Info},       // never completed
		{"write", 800 * ms, 2000 * ms, history.OK},  // last completion: span = 2s
		{"cas", 900 * ms, 900*ms + 500, history.OK}, // 0.5µs -> clamped to 1µs
	}
	in := NewInput(buildHistory(specs), "")
	res := Perf{}.Check(context.Background(), in)
	if res.Name != "perf" || !res.Valid {
		t.Fatalf("result %+v", res)
	}
	ops := res.Numbers["ops"].(map[string]OpStats)
	if got := res.Numbers["span_s"].(float64); !near(got, 2) {
		t.Errorf("span %v, want 2", got)
	}

	r := ops["read"]
	if r.OK != 4 || r.Fail != 1 || r.Info != 0 {
		t.Errorf("read counts %+v", r)
	}
	if r.Latency.Count != 4 || !near(r.Latency.Min, 1) || !near(r.Latency.Max, 4) || !near(r.Latency.P50, 2) {
		t.Errorf("read latency %+v", r.Latency)
	}
	if !near(r.Latency.Mean, 2.5) {
		t.Errorf("read mean %v", r.Latency.Mean)
	}
	if !near(r.Throughput, 2) { // 4 ok / 2 s
		t.Errorf("read throughput %v", r.Throughput)
	}
	w := ops["write"]
	if w.OK != 2 || w.Fail != 0 || w.Info != 2 {
		t.Errorf("write counts %+v", w)
	}
	if !near(w.Latency.Max, 1200) || !near(w.Latency.Min, 10) {
		t.Errorf("write latency %+v (info ops must be excluded)", w.Latency)
	}
	c := ops["cas"]
	if c.Latency.Count != 1 || !near(c.Latency.Max, 0.001) {
		t.Errorf("cas latency %+v", c.Latency)
	}
	all := ops[AllOps]
	if all.OK != 7 || all.Fail != 1 || all.Info != 2 || all.Latency.Count != 7 {
		t.Errorf("all %+v", all)
	}
	if !near(all.Throughput, r.Throughput+w.Throughput+c.Throughput) {
		t.Errorf("all throughput %v", all.Throughput)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatalf("numbers must encode: %v", err)
	}

	hs := Histograms(in)
	if len(hs) != 4 || hs["write"].TotalCount() != 2 {
		t.Errorf("histograms %v", hs)
	}
	if fs := Functions(in); len(fs) != 3 || fs[0] != "cas" || fs[2] != "write" {
		t.Errorf("functions %v", fs)
	}
}

func TestPercentilesOf(t *testing.T) {
	if p := PercentilesOf(NewHistogram()); p != (Percentiles{}) {
		t.Errorf("empty histogram gave %+v", p)
	}
	if p := PercentilesOf(nil); p != (Percentiles{}) {
		t.Errorf("nil histogram gave %+v", p)
	}
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		Record(h, time.Duration(i)*time.Millisecond)
	}
	Record(h, 2*time.Hour) // clamped, not dropped
	p := PercentilesOf(h)
	if p.Count != 1001 {
		t.Errorf("count %d", p.Count)
	}
	// 1001 samples: the q-quantile is the ceil(q*1001)-th value, within 0.1%.
	if !near(p.P50, 501) || !near(p.P90, 901) || !near(p.P99, 991) || !near(p.Min, 1) {
		t.Errorf("percentiles %+v", p)
	}
	if !near(p.Max, 3600e3) {
		t.Errorf("max %v, want 1h in ms", p.Max)
	}
	if !(p.P999 >= p.P99 && p.Max >= p.P999) {
		t.Errorf("not monotonic: %+v", p)
	}
}

func TestPerfEmpty(t *testing.T) {
	in := NewInput([]history.Op{{Process: history.NemesisProcess, Type: history.Info, F: "start-kill"}}, "")
	res := Perf{}.Check(context.Background(), in)
	ops := res.Numbers["ops"].(map[string]OpStats)
	if !res.Valid || ops[AllOps].OK != 0 || ops[AllOps].Throughput != 0 {
		t.Errorf("empty %+v", res)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}
