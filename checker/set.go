package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aurorabench/aurorabench/history"
)

// Set checks a set history: "add" ops of unique integers, "scan" reads of
// ranges during the run (on the writer or a replica), then one final "read"
// of all elements. Every acknowledged add must be in the final read (else it
// is lost); every element read must have been attempted (else it is
// unexpected). Indeterminate adds may go either way; those present are
// counted as recovered. Elements are never deleted, so an element a scan
// returned must be in the final read too, acknowledged or not: a database
// that showed it and then lost it served a dirty read (a write that was not
// yet durable and never became so) or lost a write a client had seen.
type Set struct{}

func (Set) Name() string { return "set" }

func (s Set) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: s.Name(), Valid: true}
	attempted := map[int64]history.Type{}
	var final []int64
	haveFinal := false
	seen := map[int64]string{} // element -> node of the first scan that returned it
	scans := 0
	for _, p := range in.Pairs {
		switch p.Invoke.F {
		case "add":
			var v int64
			if err := json.Unmarshal(p.Invoke.Value, &v); err != nil {
				res.Valid = false
				res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: bad element: %v", p.Invoke.Index, err))
				continue
			}
			attempted[v] = p.Complete.Type
		case "scan":
			if p.Complete.Type != history.OK {
				continue
			}
			var vs []int64
			if err := json.Unmarshal(p.Complete.Value, &vs); err != nil {
				res.Valid = false
				res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: bad scan: %v", p.Complete.Index, err))
				continue
			}
			scans++
			node := p.Invoke.Node
			if node == "" {
				node = "writer"
			}
			for _, v := range vs {
				if _, ok := seen[v]; !ok {
					seen[v] = node
				}
			}
		case "read":
			if p.Complete.Type != history.OK {
				continue
			}
			final = final[:0]
			if err := json.Unmarshal(p.Complete.Value, &final); err != nil {
				res.Valid = false
				res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: bad final read: %v", p.Complete.Index, err))
				continue
			}
			haveFinal = true
		}
	}
	if !haveFinal {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, "no successful final read: nothing was checked")
		return res
	}
	present := make(map[int64]bool, len(final))
	var unexpected, lost []int64
	recovered, dup := 0, 0
	for _, v := range final {
		if present[v] {
			dup++
		}
		present[v] = true
		t, ok := attempted[v]
		switch {
		case !ok:
			unexpected = append(unexpected, v)
		case t == history.Info:
			recovered++
		case t == history.Fail:
			unexpected = append(unexpected, v) // a definite failure that took effect
		}
	}
	acked, indeterminate := 0, 0
	for v, t := range attempted {
		switch t {
		case history.OK:
			acked++
			if !present[v] {
				lost = append(lost, v)
			}
		case history.Info:
			indeterminate++
		}
	}
	var vanished []int64
	vanishedOn := map[string]int{}
	for v, node := range seen {
		if !present[v] {
			vanished = append(vanished, v)
			vanishedOn[node]++
		}
	}
	sort.Slice(vanished, func(i, j int) bool { return vanished[i] < vanished[j] })
	sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
	sort.Slice(unexpected, func(i, j int) bool { return unexpected[i] < unexpected[j] })
	if len(lost) > 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("%d acknowledged inserts lost: %s", len(lost), sample(lost)))
	}
	if len(unexpected) > 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("%d unexpected elements (never attempted, or failed but present): %s", len(unexpected), sample(unexpected)))
	}
	if len(vanished) > 0 {
		res.Valid = false
		var on []string
		for _, node := range slices.Sorted(maps.Keys(vanishedOn)) {
			on = append(on, fmt.Sprintf("%d first seen on the %s", vanishedOn[node], node))
		}
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("%d elements read during the run are missing from the final read (dirty read, or a seen write lost; %s): %s",
			len(vanished), strings.Join(on, ", "), sample(vanished)))
	}
	if dup > 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("%d duplicate elements in the final read", dup))
	}
	res.Numbers = map[string]any{
		"attempted": len(attempted), "acknowledged": acked, "indeterminate": indeterminate,
		"recovered": recovered, "final_size": len(final), "lost": len(lost), "unexpected": len(unexpected),
		"scans": scans, "seen_in_scans": len(seen), "seen_then_missing": len(vanished),
	}
	return res
}

func sample(vs []int64) string {
	if len(vs) > 20 {
		return fmt.Sprintf("%v ...", vs[:20])
	}
	return fmt.Sprint(vs)
}
