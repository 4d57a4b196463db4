package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aurorabench/aurorabench/checker"
)

// Comparison is compare.json: the same cases run on several targets, one
// after the other on the same machine, with the headline figures of each
// run side by side and ratios against the first target.
type Comparison struct {
	Valid   bool           `json:"valid"`
	Targets []string       `json:"targets"`
	Suite   string         `json:"suite,omitempty"`
	Started string         `json:"started,omitempty"`
	Config  map[string]any `json:"config,omitempty"`
	Cases   []CaseResult   `json:"cases"`
	Line    string         `json:"line"`
}

// CaseResult is one workload/nemesis case on every target.
type CaseResult struct {
	Workload string `json:"workload"`
	Nemesis  string `json:"nemesis"`
	// Runs is by target name, in Comparison.Targets order when listed.
	Runs map[string]RunFigures `json:"runs"`
}

// RunFigures are the headline figures of one run, read from its summary.
// A zero figure means "not measured in this run" (no lag workload, no
// writer fault...) and is shown as a dash.
type RunFigures struct {
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"` // the run did not happen or did not finish
	Dir   string `json:"dir,omitempty"`
	// Anomalies is the number of anomalies the checks reported; First is the first.
	Anomalies int     `json:"anomalies"`
	First     string  `json:"first_anomaly,omitempty"`
	OK        int64   `json:"ok"`
	Fail      int64   `json:"fail"`
	Info      int64   `json:"info"`
	OKPerS    float64 `json:"ok_per_s"`
	// Latency of every ok operation, ms.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	// Replica visibility lag of the worst replica (lag workload), ms.
	LagP50     float64 `json:"lag_p50_ms,omitempty"`
	LagP99     float64 `json:"lag_p99_ms,omitempty"`
	LagMax     float64 `json:"lag_max_ms,omitempty"`
	WritesPerS float64 `json:"writes_per_s,omitempty"`
	// OwnLagP99 is the worst replica's p99 lag as the target measures it itself (refdb only).
	OwnLagP99    float64 `json:"own_lag_p99_ms,omitempty"`
	Faults       int     `json:"faults,omitempty"`
	FailoverP50  float64 `json:"failover_p50_ms,omitempty"`
	FailoverP99  float64 `json:"failover_p99_ms,omitempty"`
	FailoverMax  float64 `json:"failover_max_ms,omitempty"`
	UnavailP99   float64 `json:"unavailability_p99_ms,omitempty"`
	UnavailMax   float64 `json:"unavailability_max_ms,omitempty"`
	FailoverRuns int64   `json:"failovers,omitempty"`
}

// FiguresOf extracts a run's headline figures from its summary. It goes
// through JSON, so it reads a summary fresh from a run and one read back
// from summary.json the same way.
func FiguresOf(s *Summary, dir string) RunFigures {
	f := RunFigures{Valid: s.Valid, Dir: dir}
	for _, name := range slices.Sorted(maps.Keys(s.Checks)) {
		r := s.Checks[name]
		f.Anomalies += len(r.Anomalies)
		if f.First == "" && len(r.Anomalies) > 0 {
			f.First = name + ": " + r.Anomalies[0]
		}
		if f.First == "" && !r.Valid {
			f.First = name + ": invalid"
		}
	}
	numbers := func(check string, v any) bool {
		r, ok := s.Checks[check]
		if !ok {
			return false
		}
		b, err := json.Marshal(r.Numbers)
		return err == nil && json.Unmarshal(b, v) == nil
	}
	var perf struct {
		Ops map[string]checker.OpStats `json:"ops"`
	}
	if numbers("perf", &perf) {
		if all, ok := perf.Ops["all"]; ok {
			f.OK, f.Fail, f.Info, f.OKPerS = all.OK, all.Fail, all.Info, all.Throughput
			f.P50, f.P99 = all.Latency.P50, all.Latency.P99
		}
	}
	var lag struct {
		Replicas   map[string]checker.LagReplica `json:"replicas"`
		WritesPerS float64                       `json:"writes_per_s"`
	}
	if numbers("lag", &lag) {
		f.WritesPerS = lag.WritesPerS
		for _, r := range lag.Replicas {
			f.LagP50 = max(f.LagP50, r.Percentiles.P50)
			f.LagP99 = max(f.LagP99, r.Percentiles.P99)
			f.LagMax = max(f.LagMax, r.Percentiles.Max)
		}
	}
	for _, l := range s.TargetLag {
		f.OwnLagP99 = max(f.OwnLagP99, l.P99)
	}
	var faults struct {
		Faults   int                  `json:"faults"`
		Failover *checker.Percentiles `json:"failover"`
		Unavail  *checker.Percentiles `json:"unavailability"`
	}
	if numbers("faults", &faults) {
		f.Faults = faults.Faults
		if p := faults.Failover; p != nil {
			f.FailoverP50, f.FailoverP99, f.FailoverMax, f.FailoverRuns = p.P50, p.P99, p.Max, p.Count
		}
		if p := faults.Unavail; p != nil {
			f.UnavailP99, f.UnavailMax = p.P99, p.Max
		}
	}
	return f
}

// CompareJSON and CompareHTML are the files of a comparison folder.
const (
	CompareJSON = "compare.json"
	CompareHTML = "compare.html"
)

// WriteComparison writes dir/compare.json and dir/compare.html.
func WriteComparison(dir string, c *Comparison) error {
	if err := writeJSON(filepath.Join(dir, CompareJSON), "comparison", c); err != nil {
		return err
	}
	h, err := CompareHTMLOf(dir, c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CompareHTML), h, 0o644); err != nil {
		return fmt.Errorf("write comparison report: %w", err)
	}
	return nil
}

// Metric is one figure compared across targets.
type Metric struct {
	Name, Unit string
	// Higher is better (throughput) or lower is (latency, lag, failover).
	Higher bool
	Get    func(RunFigures) float64
}

// Metrics are the figures a comparison shows, in order; a metric no run
// of a case measured is left out of that case.
var Metrics = []Metric{
	{"throughput", "ok/s", true, func(f RunFigures) float64 { return f.OKPerS }},
	{"latency p50", "ms", false, func(f RunFigures) float64 { return f.P50 }},
	{"latency p99", "ms", false, func(f RunFigures) float64 { return f.P99 }},
	{"replica lag p50", "ms", false, func(f RunFigures) float64 { return f.LagP50 }},
	{"replica lag p99", "ms", false, func(f RunFigures) float64 { return f.LagP99 }},
	{"replica lag max", "ms", false, func(f RunFigures) float64 { return f.LagMax }},
	{"replica lag p99, own measure", "ms", false, func(f RunFigures) float64 { return f.OwnLagP99 }},
	{"marker writes", "writes/s", true, func(f RunFigures) float64 { return f.WritesPerS }},
	{"failover p50", "ms", false, func(f RunFigures) float64 { return f.FailoverP50 }},
	{"failover p99", "ms", false, func(f RunFigures) float64 { return f.FailoverP99 }},
	{"unavailability max", "ms", false, func(f RunFigures) float64 { return f.UnavailMax }},
}

// CaseMetrics are the metrics measured by at least one run of the case.
func CaseMetrics(c CaseResult) []Metric {
	var out []Metric
	for _, m := range Metrics {
		for _, r := range c.Runs {
			if r.Error == "" && m.Get(r) > 0 {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// Ratio is v over the base's value, "" when either was not measured.
func Ratio(v, base float64) string {
	if v <= 0 || base <= 0 || math.IsInf(v/base, 0) {
		return ""
	}
	return fmt.Sprintf("%.2fx", v/base)
}

// FmtFigure prints a figure with sensible precision, "-" for not measured.
func FmtFigure(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

type cmpCell struct {
	Value, Ratio string
	Best         bool
}

type cmpRow struct {
	Metric string
	Cells  []cmpCell
}

type cmpRunView struct {
	Target, Verdict, First, Href, Error string
	Valid                               bool
	OK, Fail, Info                      int64
}

type cmpCaseView struct {
	Title string
	Runs  []cmpRunView
	Rows  []cmpRow
	Plot  template.HTML
}

type cmpPage struct {
	Title   string
	Valid   bool
	Line    string
	Targets []string
	Base    string
	Config  []kv
	Cases   []cmpCaseView
}

// CompareHTMLOf renders compare.html: per case, the verdicts, a table of
// figures with ratios against the first target, and bar charts.
func CompareHTMLOf(dir string, c *Comparison) ([]byte, error) {
	pg := cmpPage{Title: "aurorabench compare: " + strings.Join(c.Targets, " vs "), Valid: c.Valid, Line: c.Line, Targets: c.Targets}
	if len(c.Targets) > 0 {
		pg.Base = c.Targets[0]
	}
	for _, k := range slices.Sorted(maps.Keys(c.Config)) {
		pg.Config = append(pg.Config, kv{k, fmtAny(c.Config[k])})
	}
	for _, cs := range c.Cases {
		v := cmpCaseView{Title: cs.Workload + " under " + cs.Nemesis}
		for _, t := range c.Targets {
			r, ok := cs.Runs[t]
			if !ok {
				continue
			}
			rv := cmpRunView{Target: t, Valid: r.Valid && r.Error == "", First: r.First, Error: r.Error, OK: r.OK, Fail: r.Fail, Info: r.Info}
			switch {
			case r.Error != "":
				rv.Verdict = "ERROR"
			case r.Valid:
				rv.Verdict = "VALID"
			default:
				rv.Verdict = "INVALID"
			}
			if r.Dir != "" {
				rv.Href = relLink(dir, filepath.Join(r.Dir, HTMLFile)) // Dir is relative to the comparison folder
			}
			v.Runs = append(v.Runs, rv)
		}
		metrics := CaseMetrics(cs)
		for _, m := range metrics {
			row := cmpRow{Metric: m.Name + " (" + m.Unit + ")"}
			base := m.Get(cs.Runs[pg.Base])
			best := -1.0
			for _, t := range c.Targets {
				if x := m.Get(cs.Runs[t]); x > 0 && (best < 0 || (m.Higher && x > best) || (!m.Higher && x < best)) {
					best = x
				}
			}
			for _, t := range c.Targets {
				x := m.Get(cs.Runs[t])
				cell := cmpCell{Value: FmtFigure(x), Best: x > 0 && x == best && len(c.Targets) > 1}
				if t != pg.Base {
					cell.Ratio = Ratio(x, base)
				}
				row.Cells = append(row.Cells, cell)
			}
			v.Rows = append(v.Rows, row)
		}
		v.Plot = template.HTML(compareBars(c.Targets, cs, metrics))
		pg.Cases = append(pg.Cases, v)
	}
	var buf bytes.Buffer
	if err := compareTemplate.Execute(&buf, pg); err != nil {
		return nil, fmt.Errorf("render comparison: %w", err)
	}
	return buf.Bytes(), nil
}

// targetColours are fixed per position so a target keeps its colour in
// every chart of the page.
var targetColours = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"}

// compareBars draws one small horizontal bar group per metric: a bar per
// target, scaled to the largest value of that metric.
func compareBars(tgts []string, cs CaseResult, metrics []Metric) string {
	if len(metrics) == 0 {
		return ""
	}
	const (
		width, left, right  = 1000.0, 190.0, 90.0
		barH, gap, groupGap = 14.0, 3.0, 16.0
	)
	groupH := float64(len(tgts))*(barH+gap) + groupGap
	height := 30 + float64(len(metrics))*groupH
	w := svgOpen(height, "figures of "+cs.Workload+" under "+cs.Nemesis+" per target")
	// Legend.
	x := left
	for i, t := range tgts {
		col := targetColours[i%len(targetColours)]
		w.rect(x, 8, 12, 12, `fill="`+col+`"`)
		w.text(x+16, 18, t, `font-size="12"`)
		x += 24 + textWidth(t, 12)
	}
	y := 30.0
	for _, m := range metrics {
		vmax := 0.0
		for _, t := range tgts {
			vmax = max(vmax, m.Get(cs.Runs[t]))
		}
		better := "lower is better"
		if m.Higher {
			better = "higher is better"
		}
		w.text(0, y+barH, m.Name, `font-size="12" font-weight="600"`)
		w.text(0, y+barH+14, m.Unit+", "+better, `font-size="11" fill="#666"`)
		for i, t := range tgts {
			v := m.Get(cs.Runs[t])
			by := y + float64(i)*(barH+gap)
			col := targetColours[i%len(targetColours)]
			bw := 0.0
			if vmax > 0 && v > 0 {
				bw = (width - left - right) * v / vmax
			}
			w.rect(left, by, math.Max(bw, 1), barH, `fill="`+col+`"`)
			w.title(t + ": " + FmtFigure(v) + " " + m.Unit)
			w.text(left+math.Max(bw, 1)+6, by+barH-3, FmtFigure(v), `font-size="11"`)
		}
		y += groupH
	}
	w.s("</svg>")
	return string(w.b)
}

var compareTemplate = template.Must(template.New("compare").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222; background: #f6f7f9; margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 4px 0 10px; }
h2 { font-size: 17px; margin: 0 0 8px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.verdict { display: inline-block; font-weight: 700; font-size: 20px; letter-spacing: .06em; padding: 4px 14px; border-radius: 4px; color: #fff; }
.valid { background: #2e7d32; } .invalid { background: #c62828; }
.badge { font-weight: 700; font-size: 12px; padding: 1px 8px; border-radius: 3px; color: #fff; }
.line { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; background: #f0f2f4; padding: 6px 10px; border-radius: 4px; margin: 10px 0 0; white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid #eceef0; vertical-align: top; }
th { font-weight: 600; color: #444; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 14px; }
td.best { font-weight: 700; }
.ratio { color: #666; font-size: 12px; margin-left: 6px; }
.anom { color: #b71c1c; }
table.kv { width: auto; } table.kv th { padding-right: 28px; font-weight: 500; color: #555; }
svg.plot { width: 100%; height: auto; display: block; margin-top: 10px; }
svg.plot text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.note { color: #666; font-size: 13px; }
</style></head><body><main>
<h1>{{.Title}}</h1>
<span class="verdict {{if .Valid}}valid{{else}}invalid{{end}}">{{if .Valid}}ALL VALID{{else}}ANOMALIES FOUND{{end}}</span>
<p class="line">{{.Line}}</p>
<section><h2>Setup</h2>
<p class="note">Targets ran one after the other on the same machine with the same workload settings. Ratios are against {{.Base}}; the best figure of each row is bold.</p>
<table class="kv">{{range .Config}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</table></section>
{{range .Cases}}<section><h2>{{.Title}}</h2>
<table><tr><th>target</th><th>verdict</th><th class="num">ok</th><th class="num">fail</th><th class="num">info</th><th>first anomaly / error</th><th>report</th></tr>
{{range .Runs}}<tr><td>{{.Target}}</td><td><span class="badge {{if .Valid}}valid{{else}}invalid{{end}}">{{.Verdict}}</span></td>
<td class="num">{{.OK}}</td><td class="num">{{.Fail}}</td><td class="num">{{.Info}}</td>
<td class="anom">{{if .Error}}{{.Error}}{{else}}{{.First}}{{end}}</td><td>{{if .Href}}<a href="{{.Href}}">report</a>{{end}}</td></tr>{{end}}
</table>
{{if .Rows}}<table style="margin-top:12px"><tr><th>figure</th>{{range $.Targets}}<th class="num">{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Metric}}</td>{{range .Cells}}<td class="num{{if .Best}} best{{end}}">{{.Value}}{{if .Ratio}}<span class="ratio">{{.Ratio}}</span>{{end}}</td>{{end}}</tr>{{end}}
</table>{{.Plot}}{{end}}
</section>{{end}}
</main></body></html>
`))
