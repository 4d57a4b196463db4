package report

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

type synthFault struct {
	kind, node string
	value      json.RawMessage
	start, end time.Duration // end < 0: never stopped
}

// synthHistory builds a valid history: `workers` client processes running
// ops back to back (with a think time) for `span`, with latency spikes, fails and info ops
// during faults, and a few ops still open at the end.
func synthHistory(seed uint64, workers int, span, think time.Duration, faults []synthFault) []history.Op {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	type ev struct {
		t   int64
		seq int64
		op  history.Op
	}
	var evs []ev
	seq := int64(0)
	add := func(op history.Op) {
		evs = append(evs, ev{op.Time, seq, op})
		seq++
	}
	inFault := func(t time.Duration) bool {
		for _, f := range faults {
			if t >= f.start && (f.end < 0 || t < f.end) && f.kind == "kill" {
				return true
			}
		}
		return false
	}
	fs := []string{"read", "write", "cas"}
	nextProc := workers
	for w := 0; w < workers; w++ {
		proc := w
		t := time.Duration(rng.IntN(1000)) * time.Microsecond
		for t < span {
			f := fs[rng.IntN(len(fs))]
			lat := time.Duration(math.Exp(rng.NormFloat64()*0.8+math.Log(1.5e6))) * time.Nanosecond
			typ := history.OK
			if inFault(t) {
				switch r := rng.Float64(); {
				case r < 0.5:
					typ = history.Fail
					lat += 10 * time.Millisecond
				case r < 0.6:
					typ = history.Info
					lat = time.Second
				default:
					lat *= 30
				}
			} else if rng.Float64() < 0.01 {
				typ = history.Fail
			}
			add(history.Op{Process: proc, Type: history.Invoke, F: f, Key: "k1", Time: int64(t)})
			if t+lat > span+2*time.Second && rng.Float64() < 0.5 {
				break // still open at the end
			}
			add(history.Op{Process: proc, Type: typ, F: f, Key: "k1", Time: int64(t + lat)})
			t += lat + think + time.Duration(rng.IntN(200))*time.Microsecond
			if typ == history.Info {
				proc = nextProc // an info op's process is never reused
				nextProc++
			}
		}
	}
	// One op that never completes.
	add(history.Op{Process: nextProc, Type: history.Invoke, F: "write", Key: "k2", Time: int64(span / 2)})
	for _, f := range faults {
		add(history.Op{Process: history.NemesisProcess, Type: history.Info, F: "start-" + f.kind, Node: f.node, Value: f.value, Time: int64(f.start)})
		if f.end >= 0 {
			add(history.Op{Process: history.NemesisProcess, Type: history.Info, F: "stop-" + f.kind, Node: f.node, Time: int64(f.end)})
		}
	}
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].t != evs[b].t {
			return evs[a].t < evs[b].t
		}
		return evs[a].seq < evs[b].seq
	})
	ops := make([]history.Op, len(evs))
	for i, e := range evs {
		e.op.Index = int64(i)
		ops[i] = e.op
	}
	return ops
}

var testFaults = []synthFault{
	{kind: "kill", node: "n1", start: 2 * time.Second, end: 3 * time.Second},
	{kind: "partition", value: history.Marshal("isolate az-b <from storage>"), start: 4 * time.Second, end: 5200 * time.Millisecond},
	{kind: "pause", node: "n3", start: 6500 * time.Millisecond, end: -1},
}

// lagShape mirrors what the lag checker publishes (a typed struct in a live
// run; generic maps once read back from summary.json).
type lagShape struct {
	Percentiles checker.Percentiles `json:"percentiles"`
	Histogram   [][2]float64        `json:"histogram"`
	Unseen      int                 `json:"unseen"`
}

func writeHistory(t testing.TB, dir string, ops []history.Op) {
	t.Helper()
	w, err := history.Create(filepath.Join(dir, history.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ops...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func testSummary(in *checker.Input, withLag bool) *Summary {
	perf := checker.Perf{}.Check(context.Background(), in)
	s := &Summary{
		Valid: false, Target: "refdb", Workload: "register", Nemesis: "kill-writer",
		Config:   map[string]any{"concurrency": 8, "rate": 0, "seed": 42, "time": "8s"},
		Started:  "2025-03-01T10:00:00.250Z",
		Duration: 8,
		Checks: map[string]checker.Result{
			"perf": perf,
			"linearizable": {Name: "linearizable", Valid: false,
				Anomalies: []string{"key 3: history is not linearizable", "<script>alert(1)</script>"},
				Artifacts: []string{"linearizability-key-3.html"}},
		},
		Line: "INVALID refdb register kill-writer: linearizable found 2 anomalies & more",
	}
	if withLag {
		s.Checks["lag"] = checker.Result{Name: "lag", Valid: true, Numbers: map[string]any{
			"replicas": map[string]lagShape{
				"r1": {Percentiles: checker.Percentiles{Count: 100, P50: 2, P90: 5, P99: 9, P999: 12, Max: 12}, Histogram: [][2]float64{{0.5, 5}, {1, 20}, {2, 30}, {5, 35}, {10, 8}, {20, 2}}},
				"r2": {Percentiles: checker.Percentiles{Count: 100, P50: 20, P90: 50, P99: 90, P999: 120, Max: 120}, Histogram: [][2]float64{{5, 5}, {10, 20}, {20, 30}, {50, 35}, {100, 8}, {200, 2}}, Unseen: 3},
			},
		}}
		s.TargetLag = []TargetLag{{Replica: "r1", Count: 4321, P50: 1.25, P99: 7.5, Max: 31}, {Replica: "<r2>", Count: 17, P50: 3, P99: 250, Max: 1234}}
	}
	return s
}

func TestWriteAndRender(t *testing.T) {
	dir := t.TempDir()
	ops := synthHistory(1, 8, 8*time.Second, 5*time.Millisecond, testFaults)
	writeHistory(t, dir, ops)
	if err := os.WriteFile(filepath.Join(dir, "linearizability-key-3.html"), []byte("<html></html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := checker.NewInput(ops, dir)
	s := testSummary(in, true)
	if err := Write(dir, s, in); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SummaryFile, HTMLFile, "latency-read.hlog", "latency-write.hlog", "latency-cas.hlog", "latency-all.hlog"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{
		"<!DOCTYPE html>", "INVALID", `class="verdict invalid"`,
		"linearizable found 2 anomalies &amp; more",
		"key 3: history is not linearizable",
		`href="linearizability-key-3.html"`,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		// legends
		">read</text>", ">write</text>", ">cas</text>", ">ok</text>", ">fail</text>", ">info (no reply: top strip)</text>",
		">read ok/s</text>", ">fail/s</text>", ">info/s</text>", ">fault: kill</text>", ">fault: partition</text>",
		// fault bands
		">kill n1</text>", ">partition</text>", ">pause n3</text>", "isolate az-b &lt;from storage&gt;",
		// plots
		`aria-label="latency over time"`, `aria-label="throughput over time"`, `aria-label="replica lag CDF"`,
		"r1 (p50 2.00ms, p99 9.00ms)", "time since start (s)", "latency (log scale)",
		"concurrency", "p999",
		// the target's own lag figures, escaped like every other text
		"Replica lag as the target measures it", "<td>r1</td><td class=\"num\">4321</td><td class=\"num\">1.25</td><td class=\"num\">7.50</td><td class=\"num\">31.0</td>",
		"<td>&lt;r2&gt;</td><td class=\"num\">17</td>", "1234",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "src=", "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("report.html is not self-contained: contains %q", bad)
		}
	}
	checkWellFormed(t, html, 3)

	// The .hlog files read back with hdrhistogram-go, as a time series.
	stats := checker.OpStatsOf(in)
	_, last := checker.Span(in)
	wantIntervals := int(math.Ceil(float64(last) / float64(time.Second)))
	for _, f := range []string{"read", "write", "cas", checker.AllOps} {
		b, err := os.ReadFile(filepath.Join(dir, HlogName(f)))
		if err != nil {
			t.Fatal(err)
		}
		r := hdrhistogram.NewHistogramLogReader(bytes.NewReader(b))
		var n int
		var count int64
		prev := int64(-1)
		for {
			h, err := r.NextIntervalHistogram()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if h == nil {
				break
			}
			if h.Tag() != f {
				t.Errorf("%s: tag %q", f, h.Tag())
			}
			if h.StartTimeMs() <= prev {
				t.Errorf("%s: interval starts not increasing: %d after %d", f, h.StartTimeMs(), prev)
			}
			prev = h.StartTimeMs()
			n++
			count += h.TotalCount()
		}
		if n != wantIntervals {
			t.Errorf("%s: %d intervals, want %d", f, n, wantIntervals)
		}
		if count != stats[f].OK {
			t.Errorf("%s: %d samples in the log, want %d ok ops", f, count, stats[f].OK)
		}
	}

	// summary.json round-trips.
	back, err := ReadSummary(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Valid || back.Checks["perf"].Name != "perf" || len(back.TargetLag) != 2 || back.TargetLag[0] != s.TargetLag[0] {
		t.Errorf("summary read back: %+v", back)
	}

	// Render reproduces report.html byte for byte.
	if err := os.Remove(filepath.Join(dir, HTMLFile)); err != nil {
		t.Fatal(err)
	}
	if err := Render(dir); err != nil {
		t.Fatal(err)
	}
	again, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, again) {
		i := 0
		for i < len(page) && i < len(again) && page[i] == again[i] {
			i++
		}
		t.Errorf("Render differs from Write at byte %d: %q vs %q", i, snippet(page, i), snippet(again, i))
	}
}

func snippet(b []byte, i int) string {
	lo, hi := max(i-60, 0), min(i+60, len(b))
	return string(b[lo:hi])
}

// checkWellFormed parses every inline SVG as strict XML and checks that
// the page's block elements balance.
func checkWellFormed(t *testing.T, html string, wantSVG int) {
	t.Helper()
	n := 0
	rest := html
	for {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatal("unterminated <svg>")
		}
		svg := rest[i : i+j+len("</svg>")]
		dec := xml.NewDecoder(strings.NewReader(svg))
		dec.Strict = true
		for {
			_, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("svg %d is not well-formed XML: %v", n, err)
			}
		}
		n++
		rest = rest[i+j:]
	}
	if n != wantSVG {
		t.Errorf("%d inline SVG plots, want %d", n, wantSVG)
	}
	for _, tag := range []string{"section", "table", "tr", "td", "th", "ul", "li", "details", "p", "main", "svg", "g"} {
		open := strings.Count(html, "<"+tag+">") + strings.Count(html, "<"+tag+" ")
		closed := strings.Count(html, "</"+tag+">")
		if open != closed {
			t.Errorf("<%s>: %d opened, %d closed", tag, open, closed)
		}
	}
}

func TestNoLagNoFaults(t *testing.T) {
	dir := t.TempDir()
	ops := synthHistory(2, 4, 3*time.Second, 5*time.Millisecond, nil)
	in := checker.NewInput(ops, dir)
	s := testSummary(in, false)
	s.Valid = true
	if err := Write(dir, s, in); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	if strings.Contains(html, "replica lag CDF") || strings.Contains(html, "fault: ") || strings.Contains(html, "as the target measures it") {
		t.Error("lag plot or fault legend drawn without data")
	}
	if !strings.Contains(html, `class="verdict valid">VALID`) || !strings.Contains(html, "No faults were injected") {
		t.Error("verdict or fault note missing")
	}
	checkWellFormed(t, html, 2)
}

func TestEmptyHistory(t *testing.T) {
	dir := t.TempDir()
	ops := []history.Op{{Index: 0, Process: history.NemesisProcess, Type: history.Info, F: "start-kill", Node: "n1"}}
	in := checker.NewInput(ops, dir)
	if err := Write(dir, &Summary{Valid: true}, in); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, HTMLFile))
	if !strings.Contains(string(page), "no client operations") || strings.Contains(string(page), "NaN") {
		t.Error("empty history not handled")
	}
	checkWellFormed(t, string(page), 2)
}

func TestFaultPairing(t *testing.T) {
	sec := int64(time.Second)
	nem := []history.Op{
		{Process: -1, F: "start-kill", Node: "n1", Time: 1 * sec},
		{Process: -1, F: "start-kill", Node: "n1", Time: 1*sec + 5}, // completion of the same start
		{Process: -1, F: "start-kill", Node: "n2", Time: 2 * sec},
		{Process: -1, F: "stop-kill", Node: "n2", Time: 3 * sec},
		{Process: -1, F: "stop-kill", Time: 4 * sec}, // no node: the oldest open kill
		{Process: -1, F: "stop-kill", Time: 5 * sec}, // nothing open: ignored
		{Process: -1, F: "failover", Value: history.Marshal("n2 promoted"), Time: 6 * sec},
		{Process: -1, F: "start-latency", Time: 7 * sec},
	}
	fs := faultsOf(nem, 10)
	if len(fs) != 4 {
		t.Fatalf("faults %+v", fs)
	}
	want := []fault{
		{Kind: "kill", Node: "n1", Label: "kill n1", Start: 1, End: 4},
		{Kind: "kill", Node: "n2", Label: "kill n2", Start: 2, End: 3},
		{Kind: "failover", Label: "failover", Desc: "n2 promoted", Start: 6, End: 6, Instant: true},
		{Kind: "latency", Label: "latency", Start: 7, End: 10, Open: true},
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Errorf("fault %d: %+v, want %+v", i, fs[i], want[i])
		}
	}
}

func TestScatterDownsampling(t *testing.T) {
	ops := synthHistory(3, 10, 10*time.Second, 0, testFaults)
	in := checker.NewInput(ops, "")
	fs := checker.Functions(in)
	tl := newTimeline(in)
	a, shownA, total := latencyPlot(in, tl, fs)
	b, shownB, _ := latencyPlot(in, tl, fs)
	if a != b || shownA != shownB {
		t.Error("downsampling is not deterministic")
	}
	if total != len(in.Pairs) || shownA > MaxScatterPoints || shownA == 0 {
		t.Errorf("shown %d of %d (pairs %d)", shownA, total, len(in.Pairs))
	}
	// The slowest completed op must survive thinning: find its marker's y.
	fIndex := map[string]int{}
	for i, f := range fs {
		fIndex[f] = i
	}
	ys := logScale(-1, 4, 400, 16)
	pts, _ := scatterPoints(in.Pairs, fIndex, len(fs), tl.xs, ys, 8, 0, 400, 500)
	if len(pts) > 500+len(fs)*3*600 {
		t.Errorf("%d points kept", len(pts))
	}
	slowest := 0.0
	for i := range in.Pairs {
		if p := in.Pairs[i]; p.Complete.Time >= 0 {
			slowest = math.Max(slowest, float64(p.Latency())/1e6)
		}
	}
	top := float32(ys.px(slowest))
	found := false
	for _, p := range pts {
		if math.Abs(float64(p.y-top)) < 0.01 {
			found = true
		}
	}
	if !found {
		t.Error("the slowest op was thinned away")
	}
}

func BenchmarkWrite200k(b *testing.B) {
	ops := synthHistory(4, 7, 60*time.Second, 0, testFaults)
	in := checker.NewInput(ops, "")
	b.Logf("%d client ops", len(in.Pairs))
	dir := b.TempDir()
	s := testSummary(in, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Write(dir, s, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRender200k(b *testing.B) {
	ops := synthHistory(4, 7, 60*time.Second, 0, testFaults)
	dir := b.TempDir()
	writeHistory(b, dir, ops)
	in := checker.NewInput(ops, dir)
	b.Logf("%d client ops", len(in.Pairs))
	if err := WriteSummary(dir, testSummary(in, true)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Render(dir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTML200k(b *testing.B) {
	ops := synthHistory(4, 7, 60*time.Second, 0, testFaults)
	in := checker.NewInput(ops, "")
	b.Logf("%d client ops", len(in.Pairs))
	s := testSummary(in, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := HTML("", s, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadHistory200k(b *testing.B) {
	ops := synthHistory(4, 7, 60*time.Second, 0, testFaults)
	dir := b.TempDir()
	writeHistory(b, dir, ops)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ops, err := history.ReadFile(filepath.Join(dir, history.FileName))
		if err != nil {
			b.Fatal(err)
		}
		checker.NewInput(ops, dir)
	}
}

// TestSample writes a sample results folder for looking at the report in a
// browser: AURORABENCH_REPORT_SAMPLE=/tmp/sample go test ./report -run Sample
func TestSample(t *testing.T) {
	dir := os.Getenv("AURORABENCH_REPORT_SAMPLE")
	if dir == "" {
		t.Skip("AURORABENCH_REPORT_SAMPLE not set")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ops := synthHistory(1, 8, 8*time.Second, 5*time.Millisecond, testFaults)
	writeHistory(t, dir, ops)
	in := checker.NewInput(ops, dir)
	if err := Write(dir, testSummary(in, true), in); err != nil {
		t.Fatal(err)
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		n      int
		want   string
	}{
		{0, 8, 12, "0 1 2 3 4 5 6 7 8"},
		{0, 60, 12, "0 5 10 15 20 25 30 35 40 45 50 55 60"},
		{0, 1.3, 6, "0 0.5 1.0"},
		{0, 45000, 6, "0 10k 20k 30k 40k"},
	} {
		ticks, step := niceTicks(c.lo, c.hi, c.n)
		var got []string
		for _, v := range ticks {
			got = append(got, fmtTick(v, step))
		}
		if s := strings.Join(got, " "); s != c.want {
			t.Errorf("ticks(%v, %v, %d) = %q, want %q", c.lo, c.hi, c.n, s, c.want)
		}
	}
	if got := fmtDur(0.01) + " " + fmtDur(1) + " " + fmtDur(1000); got != "10µs 1ms 1s" {
		t.Errorf("fmtDur: %q", got)
	}
}
