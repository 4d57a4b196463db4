package checker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aurorabench/aurorabench/history"
)

// Bank checks that every successful read of all balances shows the
// conserved total, no negative balance and every account.
type Bank struct {
	Accounts int
	Total    int64
}

func (Bank) Name() string { return "bank" }

func (b Bank) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: b.Name(), Valid: true}
	reads, bad, transfers := 0, 0, 0
	byNode := map[string]int{}
	for _, p := range in.Pairs {
		switch p.Invoke.F {
		case "transfer":
			if p.Complete.Type == history.OK {
				transfers++
			}
		case "read":
			if p.Complete.Type != history.OK {
				continue
			}
			reads++
			byNode[p.Invoke.Node]++
			var bal []int64
			if err := json.Unmarshal(p.Complete.Value, &bal); err != nil {
				res.Valid = false
				res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: unreadable balances: %v", p.Complete.Index, err))
				continue
			}
			var sum int64
			neg := false
			for _, v := range bal {
				sum += v
				if v < 0 {
					neg = true
				}
			}
			var why string
			switch {
			case len(bal) != b.Accounts:
				why = fmt.Sprintf("%d accounts, expected %d", len(bal), b.Accounts)
			case sum != b.Total:
				why = fmt.Sprintf("total %d, expected %d", sum, b.Total)
			case neg:
				why = "negative balance"
			}
			if why != "" {
				bad++
				res.Valid = false
				if bad <= 20 {
					res.Anomalies = append(res.Anomalies, fmt.Sprintf("op %d: read on %s at %.3fs: %s: %v", p.Complete.Index, p.Invoke.Node, float64(p.Complete.Time)/1e9, why, bal))
				}
			}
		}
	}
	if bad > 20 {
		res.Anomalies = append(res.Anomalies, fmt.Sprintf("... and %d more bad reads", bad-20))
	}
	if reads == 0 {
		res.Valid = false
		res.Anomalies = append(res.Anomalies, "no successful read: nothing was checked")
	}
	res.Numbers = map[string]any{"reads": reads, "bad_reads": bad, "reads_by_node": byNode, "transfers_ok": transfers, "expected_total": b.Total}
	return res
}
