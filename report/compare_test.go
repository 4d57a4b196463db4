package report

import (
	"strings"
	"testing"

	"github.com/aurorabench/aurorabench/checker"
)

func TestFiguresOfAndCompareHTML(t *testing.T) {
	sum := &Summary{Valid: false, Checks: map[string]checker.Result{
		"perf": {Valid: true, Numbers: map[string]any{"ops": map[string]checker.OpStats{
			"all": {OK: 100, Fail: 2, Throughput: 50, Latency: checker.Percentiles{P50: 1.5, P99: 9}}}}},
		"faults": {Valid: true, Numbers: map[string]any{"faults": 2,
			"failover": checker.Percentiles{Count: 2, P50: 300, P99: 900, Max: 950}}},
		"set": {Valid: false, Anomalies: []string{"lost 3 acknowledged elements"}},
	}, TargetLag: []TargetLag{{Replica: "r1", Count: 9, P50: 1, P99: 4.5, Max: 6}, {Replica: "r2", Count: 9, P50: 2, P99: 7.25, Max: 8}}}
	f := FiguresOf(sum, "a/01")
	if f.Valid || f.OK != 100 || f.OKPerS != 50 || f.P99 != 9 || f.FailoverP99 != 900 || f.Anomalies != 1 ||
		!strings.Contains(f.First, "lost 3") || f.LagP99 != 0 || f.OwnLagP99 != 7.25 {
		t.Fatalf("%+v", f)
	}
	base := FiguresOf(&Summary{Valid: true, Checks: map[string]checker.Result{
		"perf": {Valid: true, Numbers: map[string]any{"ops": map[string]checker.OpStats{"all": {OK: 10, Throughput: 25}}}},
	}}, "b/01")
	c := &Comparison{Targets: []string{"b", "a"}, Cases: []CaseResult{{Workload: "set", Nemesis: "kill-writer",
		Runs: map[string]RunFigures{"a": f, "b": base, "x": {Error: "never started"}}}}}
	ms := CaseMetrics(c.Cases[0])
	if len(ms) == 0 || ms[0].Name != "throughput" {
		t.Fatalf("metrics %v", ms)
	}
	h, err := CompareHTMLOf("", c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2.00x", "INVALID", "lost 3", "failover p99", "replica lag p99, own measure", "7.25", "<svg", "a/01/report.html"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if Ratio(0, 1) != "" || Ratio(1, 0) != "" || FmtFigure(0) != "-" {
		t.Error("unmeasured figures must show as blanks")
	}
}
