package report

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// Figure geometry (SVG user units; the SVG scales to the page width).
const (
	figW      = 1200.0
	marginL   = 76.0
	marginR   = 24.0
	plotR     = figW - marginR
	axisH     = 48.0 // below a plot: tick labels and the axis title
	labelRowH = 15.0 // one row of fault labels

	// MaxScatterPoints bounds the latency scatter; beyond it the plot is
	// downsampled deterministically.
	MaxScatterPoints = 20000
)

// fault is one nemesis fault, a start-X/stop-X pair, or an instant event.
type fault struct {
	Kind, Node, Label, Desc string
	Start, End              float64 // seconds since the run started
	Open                    bool    // never stopped: lasts to the end of the run
	Instant                 bool    // not a start/stop pair (a single event)
}

// timeline is what every time-based plot shares.
type timeline struct {
	end    float64 // x axis spans [0, end] seconds
	faults []fault
	hues   map[string]string // fault kind -> colour
	kinds  []string          // in order of first appearance
	xs     scale
	rows   []int // label row of each fault
	nRows  int
}

func seconds(ns int64) float64 { return float64(ns) / float64(time.Second) }

// describe turns a nemesis event's Value into a short text.
func describe(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// faultsOf pairs start-X with stop-X events (same X and node first, then
// same X), ignoring repeated starts of a fault already active (a nemesis may
// log both its invocation and its completion). Other events are instants.
func faultsOf(nem []history.Op, end float64) []fault {
	var out []fault
	open := map[string][]int{} // kind -> indexes into out, oldest first
	for _, op := range nem {
		t := seconds(op.Time)
		switch {
		case strings.HasPrefix(op.F, "start-"):
			kind := strings.TrimPrefix(op.F, "start-")
			dup := false
			for _, i := range open[kind] {
				if out[i].Node == op.Node {
					dup = true
				}
			}
			if dup {
				continue
			}
			label := kind
			if op.Node != "" {
				label += " " + op.Node
			}
			open[kind] = append(open[kind], len(out))
			out = append(out, fault{Kind: kind, Node: op.Node, Label: label, Desc: describe(op.Value), Start: t, End: end, Open: true})
		case strings.HasPrefix(op.F, "stop-"):
			kind := strings.TrimPrefix(op.F, "stop-")
			idx := open[kind]
			if len(idx) == 0 {
				continue // a stop without a start (or a repeated stop)
			}
			j := 0
			for k, i := range idx {
				if out[i].Node == op.Node {
					j = k
					break
				}
			}
			f := &out[idx[j]]
			f.End, f.Open = t, false
			if d := describe(op.Value); d != "" && f.Desc == "" {
				f.Desc = d
			}
			open[kind] = append(idx[:j:j], idx[j+1:]...)
		default:
			label := op.F
			if op.Node != "" {
				label += " " + op.Node
			}
			out = append(out, fault{Kind: op.F, Node: op.Node, Label: label, Desc: describe(op.Value), Start: t, End: t, Instant: true})
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Start < out[b].Start })
	return out
}

func newTimeline(in *checker.Input) *timeline {
	_, last := checker.Span(in)
	end := seconds(last)
	for _, op := range in.Nemesis {
		end = math.Max(end, seconds(op.Time))
	}
	if end <= 0 {
		end = 1
	}
	tl := &timeline{end: end, hues: map[string]string{}}
	tl.faults = faultsOf(in.Nemesis, end)
	for _, f := range tl.faults {
		if _, ok := tl.hues[f.Kind]; ok {
			continue
		}
		h, ok := faultHues[f.Kind]
		if !ok {
			h = otherHues[len(tl.kinds)%len(otherHues)]
		}
		tl.hues[f.Kind] = h
		tl.kinds = append(tl.kinds, f.Kind)
	}
	tl.xs = linear(0, end, marginL, plotR)
	// Greedy rows for labels so they do not overlap.
	var rowEnd []float64
	for _, f := range tl.faults {
		x := tl.labelX(f)
		wd := textWidth(f.Label, 11) + 6
		row := -1
		for r, e := range rowEnd {
			if e <= x {
				row = r
				break
			}
		}
		if row < 0 {
			if len(rowEnd) < 4 {
				row = len(rowEnd)
				rowEnd = append(rowEnd, 0)
			} else { // all rows busy: the one that frees first
				row = 0
				for r, e := range rowEnd {
					if e < rowEnd[row] {
						row = r
					}
				}
			}
		}
		rowEnd[row] = x + wd
		tl.rows = append(tl.rows, row)
	}
	tl.nRows = len(rowEnd)
	return tl
}

func (tl *timeline) labelX(f fault) float64 {
	x := tl.xs.px(f.Start) + 2
	if wd := textWidth(f.Label, 11); x+wd > plotR {
		x = plotR - wd
	}
	return x
}

// labelsHeight is the strip above a plot that holds the fault labels.
func (tl *timeline) labelsHeight() float64 {
	if tl.nRows == 0 {
		return 0
	}
	return float64(tl.nRows)*labelRowH + 4
}

func (tl *timeline) legendItems() []legendItem {
	var items []legendItem
	for _, k := range tl.kinds {
		items = append(items, legendItem{label: "fault: " + k, mark: swatchBox(tl.hues[k], "0.25")})
	}
	return items
}

// drawBands shades every fault between top and bottom.
func (tl *timeline) drawBands(w *svgw, top, bottom float64) {
	for _, f := range tl.faults {
		c := tl.hues[f.Kind]
		x0, x1 := tl.xs.px(f.Start), tl.xs.px(f.End)
		w.s("<g>")
		w.title(fmt.Sprintf("%s: %.2fs – %.2fs %s", f.Label, f.Start, f.End, f.Desc))
		if f.Instant {
			w.line(x0, top, x0, bottom, `stroke="`+c+`" stroke-width="1.5" stroke-dasharray="4 3"`)
		} else {
			w.rect(x0, top, math.Max(x1-x0, 1), bottom-top, `fill="`+c+`" fill-opacity="0.13"`)
			w.line(x0, top, x0, bottom, `stroke="`+c+`" stroke-opacity="0.55"`)
			if !f.Open {
				w.line(x1, top, x1, bottom, `stroke="`+c+`" stroke-opacity="0.55" stroke-dasharray="3 2"`)
			}
		}
		w.s("</g>\n")
	}
}

// drawLabels writes fault labels in the strip ending at plotTop.
func (tl *timeline) drawLabels(w *svgw, plotTop float64) {
	top := plotTop - tl.labelsHeight()
	for i, f := range tl.faults {
		y := top + float64(tl.rows[i])*labelRowH + 11
		x := tl.xs.px(f.Start)
		w.line(x, y+2, x, plotTop, `stroke="`+tl.hues[f.Kind]+`" stroke-opacity="0.55"`)
		w.text(tl.labelX(f), y, f.Label, `class="flabel" fill="`+tl.hues[f.Kind]+`"`)
	}
}

// frame draws the plot border.
func frameRect(w *svgw, top, bottom float64) {
	w.rect(marginL, top, plotR-marginL, bottom-top, `class="frame"`)
}

// xAxis draws time ticks: grid lines over [top, bottom], labels below
// bottom when labelled.
func (tl *timeline) xAxis(w *svgw, top, bottom float64, labelled bool) {
	ticks, step := niceTicks(0, tl.end, 12)
	for _, v := range ticks {
		x := tl.xs.px(v)
		w.line(x, top, x, bottom, `class="grid"`)
		if labelled {
			w.line(x, bottom, x, bottom+4, `class="axis"`)
			w.text(x, bottom+17, fmtTick(v, step), `class="tick" text-anchor="middle"`)
		}
	}
	if labelled {
		w.text((marginL+plotR)/2, bottom+38, "time since start (s)", `class="atitle" text-anchor="middle"`)
	}
}

// yTitle writes a rotated axis title left of the plot.
func yTitle(w *svgw, top, bottom float64, s string) {
	y := (top + bottom) / 2
	w.s(`<text class="atitle" text-anchor="middle" transform="translate(18 `)
	w.n(y)
	w.s(`) rotate(-90)">`, esc(s), "</text>\n")
}

// yLinear draws a linear y axis with grid lines.
func yLinear(w *svgw, ys scale, vmax float64, n int) {
	ticks, step := niceTicks(0, vmax, n)
	for _, v := range ticks {
		y := ys.px(v)
		w.line(marginL, y, plotR, y, `class="grid"`)
		w.line(marginL-4, y, marginL, y, `class="axis"`)
		w.text(marginL-7, y+4, fmtTick(v, step), `class="tick" text-anchor="end"`)
	}
}

func svgOpen(height float64, label string) *svgw {
	w := &svgw{}
	w.s(`<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 `)
	w.n(figW)
	w.s(" ")
	w.n(height)
	w.s(`" role="img" aria-label="`, esc(label), "\">\n")
	return w
}

// ---------------------------------------------------------------------------
// (a) latency over time

type outcome uint8

const (
	okOutcome outcome = iota
	failOutcome
	infoOutcome
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"ok", "fail", "info"}

func outcomeOf(t history.Type) outcome {
	switch t {
	case history.OK:
		return okOutcome
	case history.Fail:
		return failOutcome
	}
	return infoOutcome
}

// marker appends the path of one marker of an outcome at (x, y).
func marker(w *svgw, o outcome, x, y float64) {
	switch o {
	case okOutcome: // a dot: zero-length segment with round caps
		w.s("M")
		w.n(x)
		w.s(" ")
		w.n(y)
		w.s("h0")
	case failOutcome: // a cross
		w.s("M")
		w.n(x - 2.6)
		w.s(" ")
		w.n(y - 2.6)
		w.s("l5.2 5.2m0-5.2l-5.2 5.2")
	default: // a hollow triangle
		w.s("M")
		w.n(x)
		w.s(" ")
		w.n(y - 3.2)
		w.s("l3 5.2h-6z")
	}
}

func markerAttrs(o outcome, c string) string {
	switch o {
	case okOutcome:
		return `fill="none" stroke="` + c + `" stroke-width="3.2" stroke-linecap="round" stroke-opacity="0.55"`
	case failOutcome:
		return `fill="none" stroke="` + c + `" stroke-width="1.4" stroke-opacity="0.9"`
	}
	return `fill="none" stroke="` + c + `" stroke-width="1.3" stroke-opacity="0.95"`
}

func swatchDot(c string) func(w *svgw, x, y float64) {
	return func(w *svgw, x, y float64) {
		w.s(`<circle cx="`)
		w.n(x + 7)
		w.s(`" cy="`)
		w.n(y)
		w.s(`" r="5" fill="`, c, `"/>`, "\n")
	}
}

func markerSwatch(o outcome, c string) func(w *svgw, x, y float64) {
	return func(w *svgw, x, y float64) {
		w.s(`<path d="`)
		dy := 0.0
		if o == infoOutcome {
			dy = 1 // the triangle's centroid sits below its anchor
		}
		marker(w, o, x+7, y+dy)
		w.s(`" `, markerAttrs(o, c), "/>\n")
	}
}

type point struct {
	x, y float32
	g    int32 // group: function index * nOutcomes + outcome
	keep bool
}

// scatterPoints places every op and thins them to at most limit points,
// deterministically: first one point per 2x2px cell per group (which
// does not change the picture), then, if still too many, the highest point
// of each 2px column per group (the outliers) plus an even stride through
// the rest, fail and info before ok.
func scatterPoints(pairs []history.Pair, fIndex map[string]int, nF int, xs, ys scale, unknownY, top, bottom float64, limit int) (pts []point, total int) {
	const cell = 2.0
	cols := int((plotR-marginL)/cell) + 2
	rows := int((bottom-top)/cell) + 2
	groups := nF * int(nOutcomes)
	seen := make([][]uint64, groups)
	for i := range pairs {
		p := &pairs[i]
		o := outcomeOf(p.Complete.Type)
		g := fIndex[p.Invoke.F]*int(nOutcomes) + int(o)
		x := xs.px(seconds(p.Invoke.Time))
		var y float64
		if p.Complete.Time < 0 {
			y = unknownY
		} else {
			ms := float64(p.Latency()) / 1e6
			y = ys.px(math.Max(ms, 0.001))
		}
		total++
		cx, cy := int((x-marginL)/cell), int((y-top)/cell)
		cx = min(max0(cx), cols-1)
		cy = min(max0(cy), rows-1)
		bit := cy*cols + cx
		if seen[g] == nil {
			seen[g] = make([]uint64, (cols*rows+63)/64)
		}
		if seen[g][bit/64]&(1<<(bit%64)) != 0 {
			continue
		}
		seen[g][bit/64] |= 1 << (bit % 64)
		pts = append(pts, point{x: float32(x), y: float32(y), g: int32(g)})
	}
	if len(pts) <= limit {
		return pts, total
	}
	// Envelope: the highest point per group and column.
	best := make([]int32, groups*cols)
	for i := range best {
		best[i] = -1
	}
	for i, p := range pts {
		k := int(p.g)*cols + min(max0(int((float64(p.x)-marginL)/cell)), cols-1)
		if best[k] < 0 || p.y < pts[best[k]].y {
			best[k] = int32(i)
		}
	}
	kept := 0
	for _, i := range best {
		if i >= 0 {
			pts[i].keep = true
			kept++
		}
	}
	budget := limit - kept
	for _, ok := range []bool{false, true} { // fail/info first, then ok
		var rest []int
		for i, p := range pts {
			if !p.keep && (outcome(int(p.g)%int(nOutcomes)) == okOutcome) == ok {
				rest = append(rest, i)
			}
		}
		take := min(max0(budget), len(rest))
		for j, i := range rest { // even stride: take of len(rest)
			if (j+1)*take/len(rest) > j*take/len(rest) {
				pts[i].keep = true
			}
		}
		budget -= take
	}
	out := pts[:0]
	for _, p := range pts {
		if p.keep {
			out = append(out, p)
		}
	}
	return out, total
}

func max0(v int) int {
	if v < 0 {
		return 0
	}
	return v
}

// latencyPlot draws (a). It returns the SVG and how many ops it shows.
func latencyPlot(in *checker.Input, tl *timeline, fs []string) (string, int, int) {
	fIndex := map[string]int{}
	var items []legendItem
	for i, f := range fs {
		fIndex[f] = i
		items = append(items, legendItem{label: f, mark: swatchDot(colour(i))})
	}
	for o := outcome(0); o < nOutcomes; o++ {
		label := outcomeNames[o]
		if o == infoOutcome {
			label = "info (no reply: top strip)"
		}
		items = append(items, legendItem{label: label, mark: markerSwatch(o, "#555")})
	}
	items = append(items, tl.legendItems()...)
	leg, legH := layoutLegend(items, plotR-marginL)

	top := 8 + legH + 6 + tl.labelsHeight()
	const plotH = 340.0
	bottom := top + plotH
	height := bottom + axisH

	// y: whole decades around the completed latencies.
	lo, hi := math.Inf(1), 0.0
	for i := range in.Pairs {
		p := &in.Pairs[i]
		if p.Complete.Time < 0 {
			continue
		}
		ms := math.Max(float64(p.Latency())/1e6, 0.001)
		lo, hi = math.Min(lo, ms), math.Max(hi, ms)
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	loDec := int(math.Floor(math.Log10(lo)))
	hiDec := int(math.Ceil(math.Log10(hi * 1.15)))
	const strip = 26.0 // the top strip for ops that never completed
	ys := logScale(loDec, hiDec, bottom, top+strip)
	unknownY := top + 10

	w := svgOpen(height, "latency over time")
	drawLegend(w, leg, marginL, 8)
	tl.drawBands(w, top, bottom)
	tl.xAxis(w, top, bottom, true)
	for d := loDec; d <= hiDec; d++ {
		v := math.Pow(10, float64(d))
		y := ys.px(v)
		w.line(marginL, y, plotR, y, `class="grid"`)
		w.line(marginL-4, y, marginL, y, `class="axis"`)
		w.text(marginL-7, y+4, fmtDur(v), `class="tick" text-anchor="end"`)
		if d < hiDec {
			for m := 2; m < 10; m++ {
				ym := ys.px(v * float64(m))
				w.line(marginL, ym, plotR, ym, `class="minor"`)
			}
		}
	}
	w.line(marginL, top+strip, plotR, top+strip, `class="axis" stroke-dasharray="2 2"`)
	w.rect(marginL, top, plotR-marginL, strip, `fill="#f4f4f4" fill-opacity="0.6"`)
	w.text(marginL-7, unknownY+4, "no reply", `class="tick" text-anchor="end"`)
	yTitle(w, top, bottom, "latency (log scale)")

	pts, total := scatterPoints(in.Pairs, fIndex, len(fs), tl.xs, ys, unknownY, top, bottom, MaxScatterPoints)
	// One path per group, ok groups first so rarer outcomes stay on top.
	byGroup := make([][]point, len(fs)*int(nOutcomes))
	for _, p := range pts {
		byGroup[p.g] = append(byGroup[p.g], p)
	}
	for o := outcome(0); o < nOutcomes; o++ {
		for fi := range fs {
			g := byGroup[fi*int(nOutcomes)+int(o)]
			if len(g) == 0 {
				continue
			}
			w.s(`<path d="`)
			for _, p := range g {
				marker(w, o, float64(p.x), float64(p.y))
			}
			w.s(`" `, markerAttrs(o, colour(fi)), "/>\n")
		}
	}
	tl.drawLabels(w, top)
	frameRect(w, top, bottom)
	if total == 0 {
		w.text((marginL+plotR)/2, (top+bottom)/2, "no client operations", `class="empty" text-anchor="middle"`)
	}
	w.s("</svg>")
	return string(w.b), len(pts), total
}

// ---------------------------------------------------------------------------
// (b) throughput over time

func throughputPlot(in *checker.Input, tl *timeline, fs []string) string {
	bucket := 1.0 // seconds
	if tl.end > 3600 {
		bucket = math.Ceil(tl.end / 3600)
	}
	nb := int(math.Ceil(tl.end/bucket - 1e-9))
	if nb < 1 {
		nb = 1
	}
	fIndex := map[string]int{}
	for i, f := range fs {
		fIndex[f] = i
	}
	ok := make([][]float64, len(fs))
	for i := range ok {
		ok[i] = make([]float64, nb)
	}
	all := make([]float64, nb)
	fail := make([]float64, nb)
	info := make([]float64, nb)
	at := func(ns int64) int { return min(max0(int(seconds(ns)/bucket)), nb-1) }
	for i := range in.Pairs {
		p := &in.Pairs[i]
		t := p.Complete.Time
		if t < 0 {
			t = p.Invoke.Time
		}
		b := at(t)
		switch p.Complete.Type {
		case history.OK:
			ok[fIndex[p.Invoke.F]][b]++
			all[b]++
		case history.Fail:
			fail[b]++
		default:
			info[b]++
		}
	}
	// Rates: the last bucket may be partial; drop it if it is a sliver.
	length := func(b int) float64 { return math.Min(bucket, tl.end-float64(b)*bucket) }
	last := nb
	if nb > 1 && length(nb-1) < 0.25*bucket {
		last = nb - 1
	}
	rate := func(v []float64) {
		for b := range v {
			if l := length(b); l > 0 {
				v[b] /= l
			}
		}
	}
	peak, peakBad := 0.0, 0.0
	for i := range ok {
		rate(ok[i])
	}
	rate(all)
	rate(fail)
	rate(info)
	for b := 0; b < last; b++ {
		peak = math.Max(peak, all[b])
		peakBad = math.Max(peakBad, fail[b]+info[b])
	}

	var items []legendItem
	for i, f := range fs {
		items = append(items, legendItem{label: f + " ok/s", mark: swatchLine(colour(i), "", 2)})
	}
	if len(fs) > 1 {
		items = append(items, legendItem{label: "all ok/s", mark: swatchLine("#333", "5 3", 1.6)})
	}
	items = append(items,
		legendItem{label: "fail/s", mark: swatchBox(failColour, "0.75")},
		legendItem{label: "info/s", mark: swatchBox(infoColour, "0.75")})
	items = append(items, tl.legendItems()...)
	leg, legH := layoutLegend(items, plotR-marginL)

	top := 8 + legH + 6 + tl.labelsHeight()
	const upperH, gap, lowerH = 260.0, 14.0, 110.0
	upperB := top + upperH
	lowerT := upperB + gap
	lowerB := lowerT + lowerH
	height := lowerB + axisH

	w := svgOpen(height, "throughput over time")
	drawLegend(w, leg, marginL, 8)

	// Upper panel: ok ops/s per function.
	ymax := niceMax(peak*1.05, 6)
	ys := linear(0, ymax, upperB, top)
	tl.drawBands(w, top, upperB)
	tl.xAxis(w, top, upperB, false)
	yLinear(w, ys, ymax, 6)
	yTitle(w, top, upperB, "ok ops/s")
	xAt := func(b int) float64 { return tl.xs.px((float64(b) + 0.5) * bucket) }
	poly := func(v []float64, attrs string) {
		if last == 0 {
			return
		}
		w.s(`<polyline points="`)
		for b := 0; b < last; b++ {
			if b > 0 {
				w.s(" ")
			}
			w.n(xAt(b))
			w.s(",")
			w.n(ys.px(v[b]))
		}
		w.s(`" fill="none" `, attrs, "/>\n")
	}
	for i := range fs {
		poly(ok[i], `stroke="`+colour(i)+`" stroke-width="1.8" stroke-linejoin="round"`)
	}
	if len(fs) > 1 {
		poly(all, `stroke="#333" stroke-width="1.4" stroke-dasharray="5 3"`)
	}
	tl.drawLabels(w, top)
	frameRect(w, top, upperB)

	// Lower panel: fail and info per second, stacked bars.
	bmax := niceMax(peakBad*1.05, 3)
	yb := linear(0, bmax, lowerB, lowerT)
	tl.drawBands(w, lowerT, lowerB)
	tl.xAxis(w, lowerT, lowerB, true)
	yLinear(w, yb, bmax, 3)
	yTitle(w, lowerT, lowerB, "fail, info /s")
	bw := math.Max(tl.xs.px(bucket)-tl.xs.px(0)-1, 0.6)
	for b := 0; b < last; b++ {
		x := tl.xs.px(float64(b)*bucket) + 0.5
		if fail[b] > 0 {
			w.rect(x, yb.px(fail[b]), bw, lowerB-yb.px(fail[b]), `fill="`+failColour+`" fill-opacity="0.75"`)
		}
		if info[b] > 0 {
			y0 := yb.px(fail[b])
			y1 := yb.px(fail[b] + info[b])
			w.rect(x, y1, bw, y0-y1, `fill="`+infoColour+`" fill-opacity="0.75"`)
		}
	}
	frameRect(w, lowerT, lowerB)
	if len(in.Pairs) == 0 {
		w.text((marginL+plotR)/2, (top+upperB)/2, "no client operations", `class="empty" text-anchor="middle"`)
	}
	w.s("</svg>")
	return string(w.b)
}

// ---------------------------------------------------------------------------
// (c) replica lag

// lagReplica is the shape the lag checker publishes per replica.
type lagReplica struct {
	Percentiles checker.Percentiles `json:"percentiles"`
	Histogram   [][2]float64        `json:"histogram"` // [upper bound ms, count]
	Unseen      *int64              `json:"unseen,omitempty"`
}

// lagReplicas extracts Numbers["replicas"] of the "lag" check, whatever Go
// types it holds (typed structs in a live run, generic maps once read back
// from summary.json). Absent or malformed: nil.
func lagReplicas(s *Summary) (ids []string, reps map[string]lagReplica) {
	res, ok := s.Checks["lag"]
	if !ok || res.Numbers == nil {
		return nil, nil
	}
	raw, ok := res.Numbers["replicas"]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil || json.Unmarshal(b, &reps) != nil || len(reps) == 0 {
		return nil, nil
	}
	for id := range reps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, reps
}

// lagPlot draws the CDF of lag per replica on a log x axis.
func lagPlot(ids []string, reps map[string]lagReplica) string {
	lo, hi := math.Inf(1), 0.0
	for _, id := range ids {
		for _, b := range reps[id].Histogram {
			if b[1] > 0 && b[0] > 0 {
				lo, hi = math.Min(lo, b[0]), math.Max(hi, b[0])
			}
		}
	}
	if hi == 0 {
		lo, hi = 0.01, 10
	}
	loDec := int(math.Floor(math.Log10(lo)))
	hiDec := int(math.Ceil(math.Log10(hi) - 1e-9))
	if hiDec <= loDec {
		hiDec = loDec + 1
	}

	var items []legendItem
	for i, id := range ids {
		p := reps[id].Percentiles
		items = append(items, legendItem{label: fmt.Sprintf("%s (p50 %sms, p99 %sms)", id, fmtMs(p.P50), fmtMs(p.P99)), mark: swatchLine(colour(i), "", 2)})
	}
	leg, legH := layoutLegend(items, plotR-marginL)
	top := 8 + legH + 8
	const plotH = 300.0
	bottom := top + plotH
	height := bottom + axisH
	xs := logScale(loDec, hiDec, marginL, plotR)
	ys := linear(0, 1, bottom, top)

	w := svgOpen(height, "replica lag CDF")
	drawLegend(w, leg, marginL, 8)
	for d := loDec; d <= hiDec; d++ {
		v := math.Pow(10, float64(d))
		x := xs.px(v)
		w.line(x, top, x, bottom, `class="grid"`)
		w.line(x, bottom, x, bottom+4, `class="axis"`)
		w.text(x, bottom+17, fmtDur(v), `class="tick" text-anchor="middle"`)
		if d < hiDec {
			for m := 2; m < 10; m++ {
				xm := xs.px(v * float64(m))
				w.line(xm, top, xm, bottom, `class="minor"`)
			}
		}
	}
	w.text((marginL+plotR)/2, bottom+38, "lag from write acknowledgement to visibility on the replica (log scale)", `class="atitle" text-anchor="middle"`)
	for _, q := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		y := ys.px(q)
		w.line(marginL, y, plotR, y, `class="grid"`)
		w.line(marginL-4, y, marginL, y, `class="axis"`)
		w.text(marginL-7, y+4, strconv.FormatFloat(q, 'f', -1, 64), `class="tick" text-anchor="end"`)
	}
	yTitle(w, top, bottom, "fraction of markers")
	for i, id := range ids {
		hist := append([][2]float64(nil), reps[id].Histogram...)
		sort.SliceStable(hist, func(a, b int) bool { return hist[a][0] < hist[b][0] })
		total := 0.0
		for _, b := range hist {
			total += math.Max(b[1], 0)
		}
		if total == 0 {
			continue
		}
		w.s(`<path d="M`)
		w.n(marginL)
		w.s(" ")
		w.n(bottom)
		cum := 0.0
		for _, b := range hist {
			cum += math.Max(b[1], 0)
			x := math.Max(xs.px(math.Max(b[0], 1e-9)), marginL)
			w.s("H")
			w.n(x)
			w.s("V")
			w.n(ys.px(cum / total))
		}
		w.s("H")
		w.n(plotR)
		w.s(`" fill="none" stroke="`, colour(i), `" stroke-width="2" stroke-linejoin="round"/>`, "\n")
	}
	frameRect(w, top, bottom)
	w.s("</svg>")
	return string(w.b)
}

// fmtMs formats milliseconds with about 3 significant digits.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
