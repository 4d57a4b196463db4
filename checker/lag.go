package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/aurorabench/aurorabench/history"
)

// Lag measures replica visibility lag from a lag-workload history: "mark"
// ops insert marker ids on the writer; "poll" ops on each replica (Node)
// return the ids newly visible there. The lag of a marker on a replica is
// the completion of the first poll that saw it minus the mark's
// acknowledgement, clamped at zero.
type Lag struct{}

func (Lag) Name() string { return "lag" }

// LagReplica is the per-replica part of the lag check's numbers.
type LagReplica struct {
	Percentiles Percentiles `json:"percentiles"`
	// Histogram is [[upper bound ms, count], ...] for plotting.
	Histogram [][2]float64 `json:"histogram"`
	// Unseen counts acknowledged markers this replica never showed.
	Unseen int `json:"unseen"`
}

func (l Lag) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: l.Name(), Valid: true}
	acked := map[int64]int64{}
	var first, last int64 = -1, 0
	for _, p := range in.Pairs {
		if p.Invoke.F != "mark" || p.Complete.Type != history.OK {
			continue
		}
		var id int64
		if err := json.Unmarshal(p.Invoke.Value, &id); err != nil {
			res.Valid = false
			res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: bad marker: %v", p.Invoke.Index, err))
			continue
		}
		acked[id] = p.Complete.Time
		if first < 0 || p.Complete.Time < first {
			first = p.Complete.Time
		}
		if p.Complete.Time > last {
			last = p.Complete.Time
		}
	}
	seen := map[string]map[int64]int64{}
	for _, p := range in.Pairs {
		if p.Invoke.F != "poll" || p.Complete.Type != history.OK {
			continue
		}
		var ids []int64
		if err := json.Unmarshal(p.Complete.Value, &ids); err != nil {
			res.Valid = false
			res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: bad poll result: %v", p.Complete.Index, err))
			continue
		}
		m := seen[p.Invoke.Node]
		if m == nil {
			m = map[int64]int64{}
			seen[p.Invoke.Node] = m
		}
		for _, id := range ids {
			if _, ok := m[id]; !ok {
				m[id] = p.Complete.Time
			}
		}
	}
	replicas := map[string]LagReplica{}
	all := NewHistogram()
	names := make([]string, 0, len(seen))
	for r := range seen {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		h := NewHistogram()
		unseen := 0
		for id, ack := range acked {
			t, ok := seen[r][id]
			if !ok {
				unseen++
				continue
			}
			lag := t - ack
			if lag < 0 {
				lag = 0
			}
			Record(h, time.Duration(lag))
			Record(all, time.Duration(lag))
		}
		replicas[r] = LagReplica{Percentiles: PercentilesOf(h), Histogram: histogramBuckets(h), Unseen: unseen}
	}
	res.Numbers = map[string]any{
		"markers_acked": len(acked),
		"replicas":      replicas,
		"all":           PercentilesOf(all),
	}
	if last > first && first >= 0 {
		res.Numbers["writes_per_s"] = float64(len(acked)) / (float64(last-first) / 1e9)
	}
	if len(acked) == 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, "no marker was acknowledged: nothing was measured")
	}
	if len(seen) == 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, "no successful poll on any replica: nothing was measured")
	}
	return res
}

// histogramBuckets folds an HDR histogram (µs) into about 40 log-spaced
// buckets in milliseconds, enough to plot and small enough for summary.json.
func histogramBuckets(h *hdrhistogram.Histogram) [][2]float64 {
	if h.TotalCount() == 0 {
		return nil
	}
	// Bounds grow by 2^(1/4) from 10µs.
	var out [][2]float64
	bound := 10.0
	var count float64
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		for float64(bar.To) > bound {
			if count > 0 {
				out = append(out, [2]float64{bound / 1000, count})
				count = 0
			}
			bound *= math.Pow(2, 0.25)
		}
		count += float64(bar.Count)
	}
	if count > 0 {
		out = append(out, [2]float64{bound / 1000, count})
	}
	return out
}
