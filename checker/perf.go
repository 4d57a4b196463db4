package checker

import (
	"context"
	"sort"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/aurorabench/aurorabench/history"
)

// Histogram settings shared by every checker that measures time: values are
// recorded in microseconds, from 1µs to 1h, with 3 significant digits.
const (
	HistogramUnit   = time.Microsecond
	HistogramLowest = 1                                            // 1µs
	HistogramMax    = int64(time.Hour / time.Microsecond)          // 1h in µs
	HistogramDigits = 3                                            // significant digits
	usPerMs         = float64(time.Millisecond / time.Microsecond) // µs -> ms
)

// AllOps is the key under which Perf and Histograms aggregate every op
// function together.
const AllOps = "all"

// NewHistogram returns an empty latency histogram in microseconds (1µs..1h,
// 3 significant digits). Record into it with Record.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(HistogramLowest, HistogramMax, HistogramDigits)
}

// Record adds one duration to a histogram made by NewHistogram, clamping it
// into the trackable range (below 1µs counts as 1µs, above 1h as 1h) so no
// sample is ever dropped.
func Record(h *hdrhistogram.Histogram, d time.Duration) {
	us := int64(d / HistogramUnit)
	if us < HistogramLowest {
		us = HistogramLowest
	}
	if us > HistogramMax {
		us = HistogramMax
	}
	_ = h.RecordValue(us) // in range by construction
}

// PercentilesOf summarises a histogram of microsecond values (as made by
// NewHistogram) in milliseconds. An empty histogram gives all zeros.
func PercentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / usPerMs }
	return Percentiles{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / usPerMs,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// Histograms returns the latency histogram (microseconds) of the ok
// operations of each op function, plus AllOps for all of them together.
// Latency is Complete.Time - Invoke.Time; Invoke.Time is the intended start
// in open loop, so queueing is included. Fail and info ops are excluded.
func Histograms(in *Input) map[string]*hdrhistogram.Histogram {
	hs := map[string]*hdrhistogram.Histogram{AllOps: NewHistogram()}
	for i := range in.Pairs {
		p := &in.Pairs[i]
		if p.Complete.Type != history.OK {
			continue
		}
		h := hs[p.Invoke.F]
		if h == nil {
			h = NewHistogram()
			hs[p.Invoke.F] = h
		}
		d := time.Duration(p.Latency())
		Record(h, d)
		Record(hs[AllOps], d)
	}
	return hs
}

// OpStats are the measurements of one op function (or AllOps).
type OpStats struct {
	OK   int64 `json:"ok"`
	Fail int64 `json:"fail"`
	// Info counts indeterminate ops, including those never completed.
	Info int64 `json:"info"`
	// Latency is of ok ops only.
	Latency Percentiles `json:"latency"`
	// Throughput is ok ops per second over the measured span.
	Throughput float64 `json:"throughput"`
}

// Span is the measured span of a history: from the first client invocation
// to the last client completion, in ns since the run started. Both are 0
// when the history has no client ops.
func Span(in *Input) (first, last int64) {
	first, last = -1, 0
	for i := range in.Pairs {
		p := &in.Pairs[i]
		if first < 0 || p.Invoke.Time < first {
			first = p.Invoke.Time
		}
		if p.Complete.Time > last {
			last = p.Complete.Time
		}
		if p.Invoke.Time > last { // an op never completed still ran
			last = p.Invoke.Time
		}
	}
	if first < 0 {
		return 0, 0
	}
	return first, last
}

// OpStatsOf computes the per-function counts, ok latency and ok throughput,
// with AllOps for everything together. Every function's throughput uses the
// same (whole-run) span, so they add up to AllOps.
func OpStatsOf(in *Input) map[string]OpStats {
	hs := Histograms(in)
	stats := map[string]OpStats{AllOps: {}}
	for i := range in.Pairs {
		p := &in.Pairs[i]
		for _, f := range [2]string{p.Invoke.F, AllOps} {
			s := stats[f]
			switch p.Complete.Type {
			case history.OK:
				s.OK++
			case history.Fail:
				s.Fail++
			default:
				s.Info++
			}
			stats[f] = s
		}
	}
	first, last := Span(in)
	secs := float64(last-first) / float64(time.Second)
	for f, s := range stats {
		s.Latency = PercentilesOf(hs[f])
		if secs > 0 {
			s.Throughput = float64(s.OK) / secs
		}
		stats[f] = s
	}
	return stats
}

// Functions returns the op functions of a history, sorted, without AllOps.
func Functions(in *Input) []string {
	seen := map[string]bool{}
	var fs []string
	for i := range in.Pairs {
		f := in.Pairs[i].Invoke.F
		if !seen[f] {
			seen[f] = true
			fs = append(fs, f)
		}
	}
	sort.Strings(fs)
	return fs
}

// Perf measures latency and throughput. It never judges: Valid is always
// true.
//
// Numbers:
//
//	"ops":             map op function (and "all") -> OpStats
//	"span_s":          measured span in seconds (first invoke to last completion)
//	"first_invoke_s":  start of the span, seconds since the run started
//	"last_complete_s": end of the span, seconds since the run started
type Perf struct{}

// Name is "perf".
func (Perf) Name() string { return "perf" }

// Check computes the numbers.
func (Perf) Check(_ context.Context, in *Input) Result {
	first, last := Span(in)
	sec := func(ns int64) float64 { return float64(ns) / float64(time.Second) }
	return Result{
		Name:  "perf",
		Valid: true,
		Numbers: map[string]any{
			"ops":             OpStatsOf(in),
			"span_s":          sec(last - first),
			"first_invoke_s":  sec(first),
			"last_complete_s": sec(last),
		},
	}
}
