package workloads

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/aurorabench/aurorabench/checker"
	"github.com/aurorabench/aurorabench/history"
)

// Ecommerce is the notes' example shop: customers browse a category and
// search product names through the reader endpoint, and place orders that
// decrement stock through the writer endpoint. Stock must never be
// negative, every acknowledged order must exist at the end, and each
// product's stock plus its ordered quantity must equal its initial stock.
type Ecommerce struct {
	Products   int
	Categories int
	Stock      int64
	orders     counter
}

// NewEcommerce returns the ecommerce workload: 100 products in 10
// categories, 2,000 units each.
func NewEcommerce() *Ecommerce { return &Ecommerce{Products: 100, Categories: 10, Stock: 2000} }

func (e *Ecommerce) Name() string { return "ecommerce" }

var productWords = []string{"red", "blue", "green", "steel", "oak", "wool", "lamp", "chair", "desk", "mug", "pen", "bag"}

func productName(id int) string {
	return fmt.Sprintf("%s %s %d", productWords[id%len(productWords)], productWords[(id/len(productWords))%len(productWords)], id)
}

func (e *Ecommerce) Setup(ctx context.Context, env *Env) error {
	if err := execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS orders",
		"DROP TABLE IF EXISTS products",
		"CREATE TABLE products (id BIGINT PRIMARY KEY, category INTEGER NOT NULL, name VARCHAR(64) NOT NULL, price BIGINT NOT NULL, stock BIGINT NOT NULL)",
		"CREATE INDEX products_category ON products (category, price)",
		"CREATE TABLE orders (id BIGINT PRIMARY KEY, product_id BIGINT NOT NULL, qty INTEGER NOT NULL)"); err != nil {
		return err
	}
	vals := make([]string, e.Products)
	for i := range vals {
		vals[i] = fmt.Sprintf("(%d, %d, '%s', %d, %d)", i, i%e.Categories, productName(i), 100+(i*37)%900, e.Stock)
	}
	return execAll(ctx, env.Writer, "INSERT INTO products (id, category, name, price, stock) VALUES "+strings.Join(vals, ", "))
}

// Order is the value of an order op.
type Order struct {
	ID      int64 `json:"id"`
	Product int   `json:"product"`
	Qty     int64 `json:"qty"`
}

func (e *Ecommerce) Next(rng *rand.Rand, w int) history.Op {
	switch x := rng.IntN(20); {
	case x < 9:
		return history.Op{F: "browse", Node: "reader", Key: fmt.Sprint(rng.IntN(e.Categories))}
	case x < 14:
		return history.Op{F: "search", Node: "reader", Key: productWords[rng.IntN(len(productWords))]}
	default:
		return history.Op{F: "order", Node: "writer", Value: history.Marshal(Order{ID: e.orders.next(), Product: rng.IntN(e.Products), Qty: 1 + int64(rng.IntN(3))})}
	}
}

type ecomClient struct {
	env                            *Env
	browse, search, lock, dec, ins string
}

func (e *Ecommerce) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	return &ecomClient{
		env:    env,
		browse: q(env.Dialect, "SELECT id, stock FROM products WHERE category = ? ORDER BY price LIMIT 10"),
		search: q(env.Dialect, "SELECT id, stock FROM products WHERE name LIKE ? LIMIT 20"),
		lock:   q(env.Dialect, "SELECT stock FROM products WHERE id = ? FOR UPDATE"),
		dec:    q(env.Dialect, "UPDATE products SET stock = stock - ? WHERE id = ?"),
		ins:    q(env.Dialect, "INSERT INTO orders (id, product_id, qty) VALUES (?, ?, ?)"),
	}, nil
}

func (c *ecomClient) Close() error { return nil }

func (c *ecomClient) Invoke(ctx context.Context, op history.Op) history.Op {
	switch op.F {
	case "browse", "search":
		query, arg := c.browse, any(op.Key)
		if op.F == "search" {
			query, arg = c.search, "%"+op.Key+"%"
		}
		stocks, err := readStocks(ctx, c.env.Reader, query, arg)
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Marshal(stocks))
	case "order":
		var o Order
		if err := json.Unmarshal(op.Value, &o); err != nil {
			return failed(op, fmt.Errorf("bad order: %w", err))
		}
		return complete(op, c.order(ctx, o))
	}
	return failed(op, fmt.Errorf("unknown ecommerce op %q", op.F))
}

func (c *ecomClient) order(ctx context.Context, o Order) error {
	return inTx(ctx, c.env.Writer, func(tx *sql.Tx) error {
		var stock int64
		if err := tx.QueryRowContext(ctx, c.lock, o.Product).Scan(&stock); err != nil {
			return err
		}
		if stock < o.Qty {
			return fmt.Errorf("%w: product %d has %d in stock, %d ordered", errTxDone, o.Product, stock, o.Qty)
		}
		if _, err := tx.ExecContext(ctx, c.dec, o.Qty, o.Product); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, c.ins, o.ID, o.Product, o.Qty); err != nil {
			return err
		}
		return nil
	})
}

func (e *Ecommerce) Final(ctx context.Context, env *Env, rec Recorder) error {
	op := history.Op{F: "final", Node: "writer"}
	done := rec(ctx, op, func(ctx context.Context) history.Op {
		stocks, err := readStocks(ctx, env.Writer, "SELECT id, stock FROM products ORDER BY id")
		if err != nil {
			return completeRead(op, err)
		}
		orders, err := readOrders(ctx, env.Writer)
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Marshal(checker.ShopState{Stock: stocks, Orders: orders}))
	})
	if done.Type != history.OK {
		return fmt.Errorf("final read of the shop failed: %s", done.Error)
	}
	return nil
}

func (e *Ecommerce) Checkers() []checker.Checker {
	return []checker.Checker{checker.Shop{Products: e.Products, InitialStock: e.Stock}, checker.Perf{}}
}
