package checker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aurorabench/aurorabench/history"
)

// ShopState is the ecommerce workload's final read.
type ShopState struct {
	Stock  [][2]int64 `json:"stock"`  // [product, stock]
	Orders [][3]int64 `json:"orders"` // [order id, product, qty]
}

// Shop checks the ecommerce workload: no read ever shows negative stock;
// at the end every acknowledged order exists (with its product and
// quantity), no order exists that was never placed or definitely failed,
// and per product, stock + ordered quantity = initial stock.
type Shop struct {
	Products     int
	InitialStock int64
}

func (Shop) Name() string { return "shop" }

type orderVal struct {
	ID      int64 `json:"id"`
	Product int64 `json:"product"`
	Qty     int64 `json:"qty"`
}

func (s Shop) Check(ctx context.Context, in *Input) Result {
	res := Result{Name: s.Name(), Valid: true}
	bad := func(format string, args ...any) {
		res.Valid = false
		if len(res.Anomalies) < 30 {
			res.Anomalies = append(res.Anomalies, fmt.Sprintf(format, args...))
		}
	}
	placed := map[int64]orderVal{}
	outcome := map[int64]history.Type{}
	var final *ShopState
	reads, negReads := 0, 0
	for _, p := range in.Pairs {
		switch p.Invoke.F {
		case "order":
			var o orderVal
			if err := json.Unmarshal(p.Invoke.Value, &o); err != nil {
				bad("op %d: bad order: %v", p.Invoke.Index, err)
				continue
			}
			placed[o.ID] = o
			outcome[o.ID] = p.Complete.Type
		case "browse", "search":
			if p.Complete.Type != history.OK {
				continue
			}
			reads++
			var rows [][2]int64
			if err := json.Unmarshal(p.Complete.Value, &rows); err != nil {
				bad("op %d: bad read: %v", p.Complete.Index, err)
				continue
			}
			for _, r := range rows {
				if r[1] < 0 {
					negReads++
					bad("op %d: %s on %s shows product %d with stock %d", p.Complete.Index, p.Invoke.F, p.Invoke.Node, r[0], r[1])
				}
			}
		case "final":
			if p.Complete.Type == history.OK {
				var st ShopState
				if err := json.Unmarshal(p.Complete.Value, &st); err != nil {
					bad("op %d: bad final read: %v", p.Complete.Index, err)
					continue
				}
				final = &st
			}
		}
	}
	res.Numbers = map[string]any{"reads": reads, "negative_stock_reads": negReads}
	if final == nil {
		bad("no successful final read: orders were not checked")
		return res
	}
	present := map[int64]bool{}
	ordered := map[int64]int64{}
	unexpected := 0
	for _, o := range final.Orders {
		id, prod, qty := o[0], o[1], o[2]
		present[id] = true
		ordered[prod] += qty
		want, ok := placed[id]
		switch {
		case !ok:
			unexpected++
			bad("order %d exists but was never placed", id)
		case outcome[id] == history.Fail:
			unexpected++
			bad("order %d exists but its transaction failed", id)
		case want.Product != prod || want.Qty != qty:
			bad("order %d is for product %d x%d, placed as product %d x%d", id, prod, qty, want.Product, want.Qty)
		}
	}
	lost, acked := 0, 0
	for id, t := range outcome {
		if t != history.OK {
			continue
		}
		acked++
		if !present[id] {
			lost++
			bad("acknowledged order %d is missing", id)
		}
	}
	if len(final.Stock) != s.Products {
		bad("final read shows %d products, expected %d", len(final.Stock), s.Products)
	}
	for _, st := range final.Stock {
		if st[1] < 0 {
			bad("product %d ends with negative stock %d", st[0], st[1])
		}
		if st[1]+ordered[st[0]] != s.InitialStock {
			bad("product %d: stock %d + ordered %d != initial %d (a half-applied order)", st[0], st[1], ordered[st[0]], s.InitialStock)
		}
	}
	res.Numbers["orders_acknowledged"] = acked
	res.Numbers["orders_present"] = len(final.Orders)
	res.Numbers["orders_lost"] = lost
	res.Numbers["orders_unexpected"] = unexpected
	return res
}
