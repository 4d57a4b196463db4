package checker

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/aurorabench/aurorabench/history"
)

// Faults measures what each injected fault cost: for faults on the writer,
// the failover time (from the fault's start to the first successful write
// after it, the figure Aurora, orchestrator and Patroni quote); for every
// fault, the longest window without any successful operation that overlaps
// it. It measures, it does not judge: Valid is always true.
type Faults struct {
	// WriteFs are the op functions that write (default: every workload's).
	WriteFs []string
}

func (Faults) Name() string { return "faults" }

var defaultWriteFs = []string{"write", "cas", "add", "transfer", "order", "mark", "txn"}

// FaultCost is one fault's measurement.
type FaultCost struct {
	Fault string  `json:"fault"`
	Node  string  `json:"node,omitempty"`
	Start float64 `json:"start_s"`
	// FailoverMs is the time to the first successful write after a writer
	// fault; -1 if no write succeeded before the end of the run.
	FailoverMs float64 `json:"failover_ms,omitempty"`
	// UnavailableMs is the longest gap without any successful operation
	// overlapping the fault.
	UnavailableMs float64 `json:"unavailable_ms"`
}

func (f Faults) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: f.Name(), Valid: true, Numbers: map[string]any{}}
	writeFs := f.WriteFs
	if len(writeFs) == 0 {
		writeFs = defaultWriteFs
	}
	isWrite := map[string]bool{}
	for _, w := range writeFs {
		isWrite[w] = true
	}
	// Completion times of successful ops, sorted: all and writes only.
	var okAll, okWrites []int64
	for _, p := range in.Pairs {
		if p.Complete.Type != history.OK {
			continue
		}
		okAll = append(okAll, p.Complete.Time)
		if isWrite[p.Invoke.F] {
			okWrites = append(okWrites, p.Complete.Time)
		}
	}
	sort.Slice(okAll, func(i, j int) bool { return okAll[i] < okAll[j] })
	sort.Slice(okWrites, func(i, j int) bool { return okWrites[i] < okWrites[j] })

	type open struct {
		op  history.Op
		end int64
	}
	var faults []open
	starts := map[string]int{}
	for _, op := range in.Nemesis {
		switch {
		case strings.HasPrefix(op.F, "start-"):
			starts[op.F[6:]+"|"+op.Node] = len(faults)
			faults = append(faults, open{op: op, end: -1})
		case strings.HasPrefix(op.F, "stop-"):
			k := op.F[5:] + "|" + op.Node
			if i, ok := starts[k]; ok {
				faults[i].end = op.Time
				delete(starts, k)
			}
		}
	}
	failover := NewHistogram()
	unavail := NewHistogram()
	var costs []FaultCost
	for _, fl := range faults {
		c := FaultCost{Fault: fl.op.F[6:], Node: fl.op.Node, Start: float64(fl.op.Time) / 1e9}
		end := fl.end
		if end < 0 {
			end = fl.op.Time
		}
		if writerFault(fl.op) {
			i := sort.Search(len(okWrites), func(i int) bool { return okWrites[i] > fl.op.Time })
			if i < len(okWrites) {
				d := okWrites[i] - fl.op.Time
				c.FailoverMs = float64(d) / 1e6
				Record(failover, time.Duration(d))
			} else {
				c.FailoverMs = -1
			}
		}
		gap := longestGap(okAll, fl.op.Time, end)
		c.UnavailableMs = float64(gap) / 1e6
		Record(unavail, time.Duration(gap))
		costs = append(costs, c)
	}
	res.Numbers["faults"] = len(faults)
	if len(costs) > 0 {
		res.Numbers["per_fault"] = costs
		res.Numbers["unavailability"] = PercentilesOf(unavail)
	}
	if failover.TotalCount() > 0 {
		res.Numbers["failover"] = PercentilesOf(failover)
	}
	return res
}

// writerFault reports whether a fault event hit the writer.
func writerFault(op history.Op) bool {
	if strings.Contains(op.F, "failover") {
		return true
	}
	var v map[string]any
	if json.Unmarshal(op.Value, &v) == nil {
		if r, _ := v["role"].(string); r == "writer" {
			return true
		}
	}
	return false
}

// longestGap is the longest interval between consecutive successful
// completions (sorted ts) that overlaps [from, to].
func longestGap(ts []int64, from, to int64) int64 {
	i := sort.Search(len(ts), func(i int) bool { return ts[i] > from })
	prev := from
	if i > 0 {
		prev = ts[i-1]
	}
	var best int64
	for ; i < len(ts); i++ {
		if g := ts[i] - prev; g > best {
			best = g
		}
		if ts[i] > to {
			return best
		}
		prev = ts[i]
	}
	return best
}
