package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aurorabench/aurorabench/history"
)

// Linearizable checks register histories (ops read / write / cas on
// independent keys) with Porcupine, one key at a time.
//
// Indeterminate (info) writes and compare-and-sets are given a return time
// after the end of the history: they may have taken effect at any moment
// after their invocation, or never (linearized last, where nothing observes
// them). Failed reads and writes that failed with an error are dropped: they
// did not happen. A compare-and-set that failed its comparison is kept: it
// proves the register did not hold the expected value at some point.
type Linearizable struct {
	// PerKeyTimeout bounds Porcupine on one key (0 = 20s). A key that times
	// out is reported as unknown, not as a violation.
	PerKeyTimeout time.Duration
	// Budget bounds the whole check (0 = 5 minutes): keys not checked when it
	// runs out are unknown. Most keys take microseconds, but a key whose
	// history holds many indeterminate operations (a fault hit it) can make
	// the search exponential; a 10-minute run under faults had thousands of
	// keys and would otherwise take hours.
	Budget time.Duration
}

func (Linearizable) Name() string { return "linearizable" }

// absent is the register state of a key never written.
const absent = int64(-1)

type regInput struct {
	f        string // read, write, cas
	v        int64  // write value, or read result
	old, new int64  // cas
}

type regOutput struct {
	known bool // false: info, outcome unknown
	ok    bool // cas: compare succeeded
	read  int64
}

// RegisterModel is the sequential specification of one register.
var RegisterModel = porcupine.Model{
	Init: func() interface{} { return absent },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s := state.(int64)
		in := input.(regInput)
		out := output.(regOutput)
		switch in.f {
		case "read":
			return out.read == s, s
		case "write":
			return true, in.v
		case "cas":
			if !out.known {
				if s == in.old {
					return true, in.new
				}
				return true, s
			}
			if out.ok {
				return s == in.old, in.new
			}
			return s != in.old, s
		}
		return false, s
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regInput)
		out := output.(regOutput)
		switch in.f {
		case "read":
			return "read() -> " + describeVal(out.read)
		case "write":
			if !out.known {
				return "write(" + describeVal(in.v) + ") ?"
			}
			return "write(" + describeVal(in.v) + ")"
		default:
			res := "?"
			if out.known {
				res = strconv.FormatBool(out.ok)
			}
			return fmt.Sprintf("cas(%d, %d) -> %s", in.old, in.new, res)
		}
	},
	DescribeState: func(state interface{}) string { return describeVal(state.(int64)) },
}

func describeVal(v int64) string {
	if v == absent {
		return "nil"
	}
	return strconv.FormatInt(v, 10)
}

// registerOps converts a history's register ops into Porcupine operations,
// grouped by key.
func registerOps(pairs []history.Pair) (map[string][]porcupine.Operation, error) {
	var end int64
	for _, p := range pairs {
		if p.Complete.Time > end {
			end = p.Complete.Time
		}
	}
	forever := end + int64(time.Hour)
	byKey := map[string][]porcupine.Operation{}
	for _, p := range pairs {
		inv, c := p.Invoke, p.Complete
		var in regInput
		out := regOutput{known: c.Type != history.Info}
		in.f = inv.F
		switch inv.F {
		case "read":
			if c.Type != history.OK {
				continue
			}
			v, err := decodeReg(c.Value)
			if err != nil {
				return nil, fmt.Errorf("op %d: read result: %w", c.Index, err)
			}
			out.read = v
		case "write":
			if c.Type == history.Fail {
				continue
			}
			v, err := decodeReg(inv.Value)
			if err != nil {
				return nil, fmt.Errorf("op %d: write value: %w", inv.Index, err)
			}
			in.v = v
		case "cas":
			var ov [2]int64
			if err := json.Unmarshal(inv.Value, &ov); err != nil {
				return nil, fmt.Errorf("op %d: cas value: %w", inv.Index, err)
			}
			in.old, in.new = ov[0], ov[1]
			switch c.Type {
			case history.OK:
				out.ok = true
			case history.Fail:
				if string(c.Value) != "false" {
					continue // failed with an error: did not happen
				}
			}
		default:
			return nil, fmt.Errorf("op %d: unknown register op %q", inv.Index, inv.F)
		}
		ret := c.Time
		if !out.known || ret < 0 {
			ret = forever
		}
		byKey[inv.Key] = append(byKey[inv.Key], porcupine.Operation{
			ClientId: inv.Process, Input: in, Output: out, Call: inv.Time, Return: ret,
		})
	}
	return byKey, nil
}

func decodeReg(v json.RawMessage) (int64, error) {
	if len(v) == 0 || string(v) == "null" {
		return absent, nil
	}
	return strconv.ParseInt(string(v), 10, 64)
}

func (l Linearizable) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: l.Name(), Valid: true, Numbers: map[string]any{}}
	byKey, err := registerOps(in.Pairs)
	if err != nil {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, "history is not a register history: "+err.Error())
		return res
	}
	timeout := l.PerKeyTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	budget := l.Budget
	if budget == 0 {
		budget = 5 * time.Minute
	}
	deadline := time.Now().Add(budget)
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, ea := strconv.ParseInt(keys[i], 10, 64)
		b, eb := strconv.ParseInt(keys[j], 10, 64)
		if ea == nil && eb == nil {
			return a < b
		}
		return keys[i] < keys[j]
	})
	type verdict struct {
		key    string
		result porcupine.CheckResult
		info   porcupine.LinearizationInfo
	}
	verdicts := make([]verdict, len(keys))
	for i, k := range keys {
		verdicts[i] = verdict{key: k, result: porcupine.Unknown}
	}
	// Two passes: every key with a short timeout first, so the many easy keys are all
	// checked even when a few pathological ones would eat the budget; then the keys that
	// timed out, with the full per-key timeout, while the budget lasts.
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, pass := range []time.Duration{min(time.Second, timeout), timeout} {
		var wg sync.WaitGroup
		for i := range verdicts {
			if verdicts[i].result != porcupine.Unknown {
				continue
			}
			sem <- struct{}{}
			left := min(pass, time.Until(deadline))
			if ctx.Err() != nil || left <= 0 {
				<-sem
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r, info := porcupine.CheckOperationsVerbose(RegisterModel, byKey[verdicts[i].key], left)
				verdicts[i].result, verdicts[i].info = r, info
			}()
		}
		wg.Wait()
		if pass == timeout {
			break
		}
	}
	var bad, unknown []string
	total := 0
	for _, v := range verdicts {
		total += len(byKey[v.key])
		switch v.result {
		case porcupine.Illegal:
			bad = append(bad, v.key)
			res.Valid = false
			if len(bad) <= 3 && in.Dir != "" {
				name := "linearizability-key-" + v.key + ".html"
				if err := porcupine.VisualizePath(RegisterModel, v.info, filepath.Join(in.Dir, name)); err == nil {
					res.Artifacts = append(res.Artifacts, name)
				} else {
					res.Anomalies = append(res.Anomalies, "could not write visualization: "+err.Error())
				}
			}
		case porcupine.Unknown:
			unknown = append(unknown, v.key)
		}
	}
	for _, k := range bad {
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("key %s: history is not linearizable", k))
	}
	res.Numbers["keys"] = len(keys)
	res.Numbers["ops"] = total
	res.Numbers["non_linearizable_keys"] = len(bad)
	res.Numbers["unknown_keys"] = len(unknown)
	if len(unknown) > 0 {
		res.Numbers["unknown_key_list"] = unknown[:min(len(unknown), 100)] // the first 100
	}
	return res
}
