package report

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// HlogName is the file name of the latency log of an op function (or
// checker.AllOps): latency-<f>.hlog, with f reduced to [A-Za-z0-9._-].
func HlogName(f string) string { return "latency-" + safeName(f) + ".hlog" }

// safeName keeps a name usable as a file name and as an hlog tag (no
// commas, spaces or line breaks).
func safeName(f string) string {
	b := []byte(f)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

// HlogInterval is the length of each interval histogram in the .hlog files.
const HlogInterval = time.Second

// writeHlogs writes one HdrHistogram interval log per op function, plus
// checker.AllOps: the latency (µs) of ok ops, in 1s intervals by completion
// time, covering the whole run (empty intervals included), tagged with the
// function. It returns the file names written.
//
// The interval lines follow the HdrHistogram log format 1.3 exactly as the
// Java implementation writes them (StartTimestamp and Interval_Length in
// seconds, relative to BaseTime; Interval_Max in ms). hdrhistogram-go's own
// interval writer is not used because it puts the end time where the
// interval length belongs and spells BaseTime "Basetime".
func writeHlogs(dir string, s *Summary, in *checker.Input) ([]string, error) {
	type sample struct {
		interval int
		lat      time.Duration
	}
	fs := checker.Functions(in)
	byF := map[string][]sample{}
	_, last := checker.Span(in)
	n := int(math.Ceil(float64(last) / float64(HlogInterval)))
	if n < 1 {
		n = 1
	}
	for i := range in.Pairs {
		p := &in.Pairs[i]
		if p.Complete.Type != history.OK {
			continue
		}
		iv := min(int(p.Complete.Time/int64(HlogInterval)), n-1)
		sm := sample{iv, time.Duration(p.Latency())}
		byF[p.Invoke.F] = append(byF[p.Invoke.F], sm)
		byF[checker.AllOps] = append(byF[checker.AllOps], sm)
	}
	var start float64 // seconds since the epoch; 0 when unknown
	var startText string
	if t, err := time.Parse(time.RFC3339Nano, s.Started); err == nil {
		start = float64(t.UnixMilli()) / 1000
		startText = t.UTC().Format(time.RFC3339Nano)
	} else {
		startText = time.Unix(0, 0).UTC().Format(time.RFC3339)
	}
	endSec := float64(last) / float64(time.Second)
	h := checker.NewHistogram()
	var names []string
	for _, f := range append(fs, checker.AllOps) {
		samples := byF[f]
		sort.SliceStable(samples, func(a, b int) bool { return samples[a].interval < samples[b].interval })
		name := HlogName(f)
		path := filepath.Join(dir, name)
		file, err := os.Create(path)
		if err != nil {
			return names, fmt.Errorf("write %s: %w", name, err)
		}
		bw := bufio.NewWriter(file)
		lw := hdrhistogram.NewHistogramLogWriter(bw)
		tag := safeName(f)
		_ = lw.OutputLogFormatVersion()
		_ = lw.OutputComment(fmt.Sprintf("[aurorabench: latency of ok %q ops in microseconds (Interval_Max in ms), %s intervals by completion time, tag %s]", f, HlogInterval, tag))
		fmt.Fprintf(bw, "#[StartTime: %.3f (seconds since epoch), %s]\n", start, startText)
		fmt.Fprintf(bw, "#[BaseTime: %.3f (seconds since epoch)]\n", start)
		_ = lw.OutputLegend()
		j := 0
		for iv := 0; iv < n; iv++ {
			h.Reset()
			for ; j < len(samples) && samples[j].interval == iv; j++ {
				checker.Record(h, samples[j].lat)
			}
			ivStart := float64(iv) * HlogInterval.Seconds()
			length := math.Min(HlogInterval.Seconds(), endSec-ivStart)
			if length <= 0 {
				length = HlogInterval.Seconds()
			}
			payload, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
			if err != nil {
				file.Close()
				return names, fmt.Errorf("encode %s: %w", name, err)
			}
			var intervalMax float64
			if h.TotalCount() > 0 {
				intervalMax = float64(h.Max()) / 1000
			}
			fmt.Fprintf(bw, "Tag=%s,%.3f,%.3f,%.3f,%s\n", tag, ivStart, length, intervalMax, payload)
		}
		err = bw.Flush()
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return names, fmt.Errorf("write %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}
