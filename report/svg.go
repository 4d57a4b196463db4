package report

import (
	"html"
	"math"
	"strconv"
	"unicode/utf8"
)

// A tiny SVG writer: just what the report's plots need. Every piece of text
// that can come from a history or a summary goes through esc; attribute
// strings passed as attrs are constants of this package.

type svgw struct{ b []byte }

func esc(s string) string { return html.EscapeString(s) }

func (w *svgw) s(parts ...string) {
	for _, p := range parts {
		w.b = append(w.b, p...)
	}
}

// n appends a coordinate rounded to 0.1px.
func (w *svgw) n(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	w.b = strconv.AppendFloat(w.b, math.Round(v*10)/10, 'f', -1, 64)
}

func (w *svgw) line(x1, y1, x2, y2 float64, attrs string) {
	w.s(`<line x1="`)
	w.n(x1)
	w.s(`" y1="`)
	w.n(y1)
	w.s(`" x2="`)
	w.n(x2)
	w.s(`" y2="`)
	w.n(y2)
	w.s(`" `, attrs, "/>\n")
}

func (w *svgw) rect(x, y, width, height float64, attrs string) {
	w.s(`<rect x="`)
	w.n(x)
	w.s(`" y="`)
	w.n(y)
	w.s(`" width="`)
	w.n(math.Max(width, 0))
	w.s(`" height="`)
	w.n(math.Max(height, 0))
	w.s(`" `, attrs, "/>\n")
}

// text writes escaped text at (x, y).
func (w *svgw) text(x, y float64, s, attrs string) {
	w.s(`<text x="`)
	w.n(x)
	w.s(`" y="`)
	w.n(y)
	w.s(`" `, attrs, ">", esc(s), "</text>\n")
}

// title adds a hover tooltip to the enclosing element group.
func (w *svgw) title(s string) { w.s("<title>", esc(s), "</title>") }

// textWidth estimates the rendered width of s at a font size in px.
func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * size * 0.6
}

// scale maps a domain onto pixels, linearly or on log10.
type scale struct {
	lo, hi float64 // domain; log10 of it when log
	r0, r1 float64 // pixels
	log    bool
}

func linear(lo, hi, r0, r1 float64) scale {
	if !(hi > lo) {
		hi = lo + 1
	}
	return scale{lo: lo, hi: hi, r0: r0, r1: r1}
}

// logScale spans whole decades [10^lo, 10^hi].
func logScale(loDecade, hiDecade int, r0, r1 float64) scale {
	if hiDecade <= loDecade {
		hiDecade = loDecade + 1
	}
	return scale{lo: float64(loDecade), hi: float64(hiDecade), r0: r0, r1: r1, log: true}
}

func (s scale) px(v float64) float64 {
	if s.log {
		if v <= 0 {
			return s.r0
		}
		v = math.Log10(v)
	}
	t := (v - s.lo) / (s.hi - s.lo)
	return s.r0 + t*(s.r1-s.r0)
}

// niceTicks returns round tick values (1, 2, 5 x 10^k steps) covering
// [lo, hi] with about n intervals, and the step.
func niceTicks(lo, hi float64, n int) ([]float64, float64) {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		step = m * mag
		if step >= raw {
			break
		}
	}
	var ticks []float64
	start := math.Ceil(lo/step-1e-9) * step
	for v := start; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, step
}

// niceMax rounds v up to a tick boundary (at least 1).
func niceMax(v float64, n int) float64 {
	if v < 1 {
		v = 1
	}
	_, step := niceTicks(0, v, n)
	return math.Ceil(v/step-1e-9) * step
}

func fmtTick(v, step float64) string {
	if v == 0 {
		return "0"
	}
	prec := 0
	if step < 1 {
		prec = int(math.Ceil(-math.Log10(step) - 1e-9))
		if prec > 6 {
			prec = 6
		}
	}
	if math.Abs(v) >= 10000 && step >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// fmtDur labels a duration in milliseconds (a log-axis decade).
func fmtDur(ms float64) string {
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', -1, 64) + "s"
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', -1, 64) + "ms"
	default:
		return strconv.FormatFloat(math.Round(ms*1e6)/1e3, 'f', -1, 64) + "µs"
	}
}

// Colours: op functions cycle through a colour-blind-friendly palette;
// outcomes are told apart by marker shape.
var palette = []string{
	"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
	"#edc948", "#9c755f", "#ff9da7", "#e15759", "#bab0ac",
}

func colour(i int) string { return palette[i%len(palette)] }

// Fault kinds have their own hues so bands of the same kind look alike.
var faultHues = map[string]string{
	"kill":      "#d62728",
	"pause":     "#9467bd",
	"partition": "#1f77b4",
	"latency":   "#ff7f0e",
}
var otherHues = []string{"#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"}

const (
	failColour = "#d62728"
	infoColour = "#e69500"
)

// legendItem is one entry: a swatch drawn by mark at (x, centre y) in a
// 14px-wide box, then the label.
type legendItem struct {
	label string
	mark  func(w *svgw, x, y float64)
}

type placed struct {
	x, y float64
	item legendItem
}

const legendFont = 12.0

// layoutLegend flows items left to right, wrapping at width; it returns
// positions relative to the origin and the total height.
func layoutLegend(items []legendItem, width float64) ([]placed, float64) {
	if len(items) == 0 {
		return nil, 0
	}
	const rowH = 18.0
	x, y := 0.0, rowH/2
	var out []placed
	for _, it := range items {
		wd := 20 + textWidth(it.label, legendFont) + 18
		if x > 0 && x+wd > width {
			x = 0
			y += rowH
		}
		out = append(out, placed{x: x, y: y, item: it})
		x += wd
	}
	return out, y + rowH/2
}

func drawLegend(w *svgw, ps []placed, ox, oy float64) {
	for _, p := range ps {
		p.item.mark(w, ox+p.x, oy+p.y)
		w.text(ox+p.x+20, oy+p.y+4, p.item.label, `class="legend"`)
	}
}

func swatchLine(c, dash string, width float64) func(w *svgw, x, y float64) {
	return func(w *svgw, x, y float64) {
		attrs := `stroke="` + c + `" stroke-width="` + strconv.FormatFloat(width, 'f', -1, 64) + `"`
		if dash != "" {
			attrs += ` stroke-dasharray="` + dash + `"`
		}
		w.line(x, y, x+14, y, attrs)
	}
}

func swatchBox(c, opacity string) func(w *svgw, x, y float64) {
	return func(w *svgw, x, y float64) {
		w.rect(x, y-6, 14, 12, `fill="`+c+`" fill-opacity="`+opacity+`" stroke="`+c+`" stroke-opacity="0.6"`)
	}
}
