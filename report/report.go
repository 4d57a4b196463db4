package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// HTMLFile is the name of the report inside a results folder.
const HTMLFile = "report.html"

// Write writes a run's results into dir: summary.json, one latency-<f>.hlog
// per op function (and latency-all.hlog), then report.html. The history
// itself (history.jsonl) is the runner's to write.
func Write(dir string, s *Summary, in *checker.Input) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results folder: %w", err)
	}
	if err := WriteSummary(dir, s); err != nil {
		return err
	}
	if _, err := writeHlogs(dir, s, in); err != nil {
		return err
	}
	return writeHTML(dir, s, in)
}

// Render re-renders dir/report.html from dir/summary.json and
// dir/history.jsonl (`aurorabench report DIR`).
func Render(dir string) error {
	s, err := ReadSummary(dir)
	if err != nil {
		return err
	}
	ops, err := history.ReadFile(filepath.Join(dir, history.FileName))
	if err != nil {
		return err
	}
	return writeHTML(dir, s, checker.NewInput(ops, dir))
}

func writeHTML(dir string, s *Summary, in *checker.Input) error {
	b, err := HTML(dir, s, in)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+HTMLFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, HTMLFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// HTML renders the report. dir is the results folder, used only to list
// the files it holds and to make artifact links relative to it. The output
// is a pure function of the summary's JSON form, the history and the folder
// listing, so Render reproduces what Write wrote.
func HTML(dir string, s *Summary, in *checker.Input) ([]byte, error) {
	// Work from the summary as it reads back from summary.json, so a live run
	// and a re-render show the very same numbers.
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	var sum Summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		return nil, fmt.Errorf("decode summary: %w", err)
	}
	pg := buildPage(dir, &sum, in)
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pg); err != nil {
		return nil, fmt.Errorf("render report: %w", err)
	}
	return buf.Bytes(), nil
}

type kv struct{ K, V string }

type link struct{ Href, Name string }

type checkView struct {
	Name      string
	Valid     bool
	Anomalies []string
	More      int // anomalies not shown
	Artifacts []link
	Numbers   string
}

type opRow struct {
	F                                 string
	All                               bool
	OK, Fail, Info                    int64
	Rate                              string
	Mean, P50, P90, P99, P999, Max, N string
}

type faultRow struct {
	Label, Kind, Node, Start, End, Duration, Desc, Colour string
}

type lagRow struct {
	Replica, Count, P50, P90, P99, P999, Max, Unseen string
}

type page struct {
	Title                     string
	Target, Workload, Nemesis string
	Valid                     bool
	Line                      string
	Config                    []kv
	Checks                    []checkView
	Ops                       []opRow
	HistoryNote               string
	Faults                    []faultRow
	Latency, Throughput, Lag  template.HTML
	LatencyNote               string
	LagRows                   []lagRow
	TargetLag                 []lagRow // the target's own measure (only Replica, Count, P50, P99, Max)
	Files                     []link
}

const (
	maxAnomaliesShown = 100
	maxNumbersJSON    = 64 << 10
)

func buildPage(dir string, s *Summary, in *checker.Input) *page {
	pg := &page{
		Title:    fmt.Sprintf("aurorabench: %s / %s / %s", or(s.Target, "?"), or(s.Workload, "?"), or(s.Nemesis, "none")),
		Target:   or(s.Target, "?"),
		Workload: or(s.Workload, "?"),
		Nemesis:  or(s.Nemesis, "none"),
		Valid:    s.Valid,
		Line:     s.Line,
	}
	pg.Config = append(pg.Config,
		kv{"target", s.Target}, kv{"workload", s.Workload}, kv{"nemesis", s.Nemesis})
	if s.Started != "" {
		pg.Config = append(pg.Config, kv{"started", s.Started})
	}
	pg.Config = append(pg.Config, kv{"duration", strconv.FormatFloat(s.Duration, 'f', 1, 64) + " s"})
	keys := make([]string, 0, len(s.Config))
	for k := range s.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pg.Config = append(pg.Config, kv{k, fmtAny(s.Config[k])})
	}

	names := make([]string, 0, len(s.Checks))
	for n := range s.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.Checks[n]
		cv := checkView{Name: n, Valid: r.Valid}
		cv.Anomalies = r.Anomalies
		if len(cv.Anomalies) > maxAnomaliesShown {
			cv.More = len(cv.Anomalies) - maxAnomaliesShown
			cv.Anomalies = cv.Anomalies[:maxAnomaliesShown]
		}
		for _, a := range r.Artifacts {
			cv.Artifacts = append(cv.Artifacts, link{Href: relLink(dir, a), Name: filepath.Base(a)})
		}
		if len(r.Numbers) > 0 {
			if b, err := json.MarshalIndent(r.Numbers, "", "  "); err == nil {
				if len(b) > maxNumbersJSON {
					b = append(b[:maxNumbersJSON], "\n… (truncated; see summary.json)"...)
				}
				cv.Numbers = string(b)
			}
		}
		pg.Checks = append(pg.Checks, cv)
	}

	fs := checker.Functions(in)
	stats := checker.OpStatsOf(in)
	for _, f := range append(fs, checker.AllOps) {
		st := stats[f]
		l := st.Latency
		pg.Ops = append(pg.Ops, opRow{
			F: f, All: f == checker.AllOps,
			OK: st.OK, Fail: st.Fail, Info: st.Info,
			Rate: strconv.FormatFloat(st.Throughput, 'f', 1, 64),
			N:    strconv.FormatInt(l.Count, 10),
			Mean: fmtMs(l.Mean), P50: fmtMs(l.P50), P90: fmtMs(l.P90), P99: fmtMs(l.P99), P999: fmtMs(l.P999), Max: fmtMs(l.Max),
		})
	}
	first, last := checker.Span(in)
	pg.HistoryNote = fmt.Sprintf("%d history events: %d client operations over %.2f s (first invocation at %.3f s, last completion at %.3f s), %d fault events.",
		len(in.Ops), len(in.Pairs), seconds(last-first), seconds(first), seconds(last), len(in.Nemesis))

	tl := newTimeline(in)
	for _, f := range tl.faults {
		row := faultRow{Label: f.Label, Kind: f.Kind, Node: f.Node, Desc: f.Desc, Colour: tl.hues[f.Kind],
			Start: strconv.FormatFloat(f.Start, 'f', 3, 64)}
		switch {
		case f.Instant:
			row.End, row.Duration = "—", "instant"
		case f.Open:
			row.End, row.Duration = "not stopped", strconv.FormatFloat(f.End-f.Start, 'f', 3, 64)+"+ s"
		default:
			row.End = strconv.FormatFloat(f.End, 'f', 3, 64)
			row.Duration = strconv.FormatFloat(f.End-f.Start, 'f', 3, 64) + " s"
		}
		pg.Faults = append(pg.Faults, row)
	}

	svg, shown, total := latencyPlot(in, tl, fs)
	pg.Latency = template.HTML(svg) // built by this package; every text escaped
	if shown < total {
		pg.LatencyNote = fmt.Sprintf("Showing %d of %d operations: overlapping markers merged, then thinned deterministically (the slowest op per 2px column is always kept).", shown, total)
	} else {
		pg.LatencyNote = fmt.Sprintf("%d operations (overlapping markers merged).", total)
	}
	pg.Throughput = template.HTML(throughputPlot(in, tl, fs))

	if ids, reps := lagReplicas(s); len(ids) > 0 {
		pg.Lag = template.HTML(lagPlot(ids, reps))
		for _, id := range ids {
			p := reps[id].Percentiles
			row := lagRow{Replica: id, Count: strconv.FormatInt(p.Count, 10),
				P50: fmtMs(p.P50), P90: fmtMs(p.P90), P99: fmtMs(p.P99), P999: fmtMs(p.P999), Max: fmtMs(p.Max), Unseen: "—"}
			if u := reps[id].Unseen; u != nil {
				row.Unseen = strconv.FormatInt(*u, 10)
			}
			pg.LagRows = append(pg.LagRows, row)
		}
	}

	for _, l := range s.TargetLag {
		pg.TargetLag = append(pg.TargetLag, lagRow{Replica: l.Replica, Count: strconv.FormatInt(l.Count, 10),
			P50: fmtMs(l.P50), P99: fmtMs(l.P99), Max: fmtMs(l.Max)})
	}

	if entries, err := os.ReadDir(dir); err == nil && dir != "" {
		for _, e := range entries {
			n := e.Name()
			if n == HTMLFile || strings.HasPrefix(n, ".") {
				continue
			}
			if e.IsDir() {
				n += "/"
			}
			pg.Files = append(pg.Files, link{Href: n, Name: n})
		}
	}
	return pg
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// relLink makes an artifact path a link relative to the results folder.
func relLink(dir, a string) string {
	if filepath.IsAbs(a) && dir != "" {
		if absDir, err := filepath.Abs(dir); err == nil {
			if r, err := filepath.Rel(absDir, a); err == nil && !strings.HasPrefix(r, "..") {
				a = r
			}
		}
	}
	return filepath.ToSlash(a)
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222; background: #f6f7f9; margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 4px 0 10px; }
h1 .sub { color: #666; font-weight: normal; }
h2 { font-size: 17px; margin: 0 0 8px; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.verdict { display: inline-block; font-weight: 700; font-size: 20px; letter-spacing: .06em; padding: 4px 14px; border-radius: 4px; color: #fff; }
.verdict.valid { background: #2e7d32; }
.verdict.invalid { background: #c62828; }
.line { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; background: #f0f2f4; padding: 6px 10px; border-radius: 4px; margin: 10px 0 0; white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid #eceef0; vertical-align: top; }
th { font-weight: 600; color: #444; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 14px; }
tr.all td { font-weight: 600; border-top: 2px solid #ccc; }
table.kv { width: auto; }
table.kv th { padding-right: 28px; font-weight: 500; color: #555; }
.badge { font-weight: 700; font-size: 12px; padding: 1px 8px; border-radius: 3px; color: #fff; }
.badge.valid { background: #2e7d32; }
.badge.invalid { background: #c62828; }
ul.anom { margin: 0; padding-left: 18px; color: #b71c1c; }
details summary { cursor: pointer; color: #555; }
pre { font-size: 12px; background: #f6f8fa; padding: 8px; overflow: auto; max-height: 360px; }
.note { color: #666; font-size: 13px; margin: 4px 0 8px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
svg.plot { width: 100%; height: auto; display: block; }
svg.plot text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
svg .grid { stroke: #e3e6ea; stroke-width: 1; }
svg .minor { stroke: #f1f3f5; stroke-width: 1; }
svg .axis { stroke: #777; stroke-width: 1; }
svg .frame { fill: none; stroke: #999; stroke-width: 1; }
svg .tick { font-size: 11px; fill: #555; }
svg .atitle { font-size: 12px; fill: #333; }
svg .legend { font-size: 12px; fill: #333; }
svg .flabel { font-size: 11px; font-weight: 600; }
svg .empty { font-size: 16px; fill: #999; }
a { color: #1565c0; }
footer { color: #888; font-size: 12px; text-align: center; }
</style>
</head>
<body>
<main>
<h1>aurorabench <span class="sub">{{.Target}} · {{.Workload}} · nemesis {{.Nemesis}}</span></h1>
<div class="verdict {{if .Valid}}valid{{else}}invalid{{end}}">{{if .Valid}}VALID{{else}}INVALID{{end}}</div>
{{if .Line}}<p class="line">{{.Line}}</p>{{end}}

<section>
<h2>Configuration</h2>
<table class="kv">
{{range .Config}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>
{{end}}</table>
</section>

<section>
<h2>Checks</h2>
<table>
<tr><th>check</th><th>verdict</th><th>anomalies and numbers</th><th>artifacts</th></tr>
{{range .Checks}}<tr>
<td>{{.Name}}</td>
<td>{{if .Valid}}<span class="badge valid">valid</span>{{else}}<span class="badge invalid">INVALID</span>{{end}}</td>
<td>{{if .Anomalies}}<ul class="anom">{{range .Anomalies}}<li>{{.}}</li>{{end}}{{if .More}}<li>… and {{.More}} more (see summary.json)</li>{{end}}</ul>{{else}}none{{end}}
{{if .Numbers}}<details><summary>numbers</summary><pre>{{.Numbers}}</pre></details>{{end}}</td>
<td>{{range .Artifacts}}<a href="{{.Href}}">{{.Name}}</a><br>{{else}}—{{end}}</td>
</tr>
{{else}}<tr><td colspan="4">no checks ran</td></tr>
{{end}}</table>
</section>

<section>
<h2>Operations</h2>
<p class="note">{{.HistoryNote}} Latency of ok operations, in milliseconds, measured from the intended start (open loop) to completion.</p>
<table>
<tr><th>f</th><th class="num">ok</th><th class="num">fail</th><th class="num">info</th><th class="num">ok/s</th><th class="num">mean</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">p999</th><th class="num">max</th></tr>
{{range .Ops}}<tr{{if .All}} class="all"{{end}}><td>{{.F}}</td><td class="num">{{.OK}}</td><td class="num">{{.Fail}}</td><td class="num">{{.Info}}</td><td class="num">{{.Rate}}</td><td class="num">{{.Mean}}</td><td class="num">{{.P50}}</td><td class="num">{{.P90}}</td><td class="num">{{.P99}}</td><td class="num">{{.P999}}</td><td class="num">{{.Max}}</td></tr>
{{end}}</table>
</section>

<section>
<h2>Faults</h2>
{{if .Faults}}<table>
<tr><th>fault</th><th class="num">start (s)</th><th class="num">end (s)</th><th class="num">duration</th><th>description</th></tr>
{{range .Faults}}<tr><td><span class="swatch" style="background: {{.Colour}}"></span>{{.Label}}</td><td class="num">{{.Start}}</td><td class="num">{{.End}}</td><td class="num">{{.Duration}}</td><td>{{.Desc}}</td></tr>
{{end}}</table>{{else}}<p class="note">No faults were injected.</p>{{end}}
</section>

<section>
<h2>Latency over time</h2>
<p class="note">Each operation at its invocation time; colour = operation, marker = outcome (● ok, ✕ fail, △ info). Info operations that never completed sit in the top strip. {{.LatencyNote}}</p>
{{.Latency}}
</section>

<section>
<h2>Throughput over time</h2>
<p class="note">Completed operations per second, in 1 s buckets by completion time: ok per operation above, failed and indeterminate (info) below.</p>
{{.Throughput}}
</section>

{{if .Lag}}<section>
<h2>Replica lag</h2>
<p class="note">Cumulative distribution of the time from a write's acknowledgement to its visibility on each replica.</p>
{{.Lag}}
<table>
<tr><th>replica</th><th class="num">markers</th><th class="num">p50 ms</th><th class="num">p90 ms</th><th class="num">p99 ms</th><th class="num">p999 ms</th><th class="num">max ms</th><th class="num">never seen</th></tr>
{{range .LagRows}}<tr><td>{{.Replica}}</td><td class="num">{{.Count}}</td><td class="num">{{.P50}}</td><td class="num">{{.P90}}</td><td class="num">{{.P99}}</td><td class="num">{{.P999}}</td><td class="num">{{.Max}}</td><td class="num">{{.Unseen}}</td></tr>
{{end}}</table>
</section>
{{end}}
{{if .TargetLag}}<section>
<h2>Replica lag as the target measures it</h2>
<p class="note">The target's own figure, read from it at the end of the run: for refdb, Aurora's definition, the time from the writer's durable acknowledgement of a commit batch to the reader's read point passing it, over every batch since the reader started. The table above is what clients observe.</p>
<table>
<tr><th>replica</th><th class="num">batches</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">max ms</th></tr>
{{range .TargetLag}}<tr><td>{{.Replica}}</td><td class="num">{{.Count}}</td><td class="num">{{.P50}}</td><td class="num">{{.P99}}</td><td class="num">{{.Max}}</td></tr>
{{end}}</table>
</section>
{{end}}
{{if .Files}}<section>
<h2>Files</h2>
<p class="note">{{range $i, $f := .Files}}{{if $i}} · {{end}}<a href="{{$f.Href}}">{{$f.Name}}</a>{{end}}</p>
</section>{{end}}
<footer>aurorabench report · self-contained: no scripts, no external resources</footer>
</main>
</body>
</html>
`))
