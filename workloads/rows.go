package workloads

import (
	"context"
	"database/sql"
)

// querier runs queries: a pool, or a statement prepared once (prepared).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// prepared is a statement prepared once and run many times, as a querier whose query text is
// the statement's own (the text argument is ignored). A client that sends the same statement
// at a high rate holds one, as applications do: the server parses it once, and each call
// sends only the arguments (the MySQL DSNs interpolate arguments into the text otherwise, so
// every call was a new statement to parse and plan).
type prepared struct{ *sql.Stmt }

func (p prepared) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return p.Stmt.QueryContext(ctx, args...)
}

// queryAll runs a query and scans every row into a T: the one row loop behind
// every workload's reads.
func queryAll[T any](ctx context.Context, db querier, query string, scan func(*sql.Rows, *T) error, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// readInts reads a single integer column.
func readInts(ctx context.Context, db querier, query string, args ...any) ([]int64, error) {
	return queryAll(ctx, db, query, func(r *sql.Rows, v *int64) error { return r.Scan(v) }, args...)
}

// readBalances reads (id, balance) rows and keeps the balances, in row order.
func readBalances(ctx context.Context, db *sql.DB, query string) ([]int64, error) {
	var id int64
	bal, err := queryAll(ctx, db, query, func(r *sql.Rows, b *int64) error { return r.Scan(&id, b) })
	if err == nil && bal == nil {
		bal = []int64{} // an empty table reads as [], not null
	}
	return bal, err
}

// readStocks reads (id, stock) rows.
func readStocks(ctx context.Context, db *sql.DB, query string, args ...any) ([][2]int64, error) {
	return queryAll(ctx, db, query, func(r *sql.Rows, v *[2]int64) error { return r.Scan(&v[0], &v[1]) }, args...)
}

// readOrders reads every order as (id, product, qty).
func readOrders(ctx context.Context, db *sql.DB) ([][3]int64, error) {
	return queryAll(ctx, db, "SELECT id, product_id, qty FROM orders ORDER BY id",
		func(r *sql.Rows, v *[3]int64) error { return r.Scan(&v[0], &v[1], &v[2]) })
}
