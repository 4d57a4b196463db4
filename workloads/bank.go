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

// Bank moves money between accounts in transactions and reads all balances
// in one statement, through the writer and through the reader endpoint. Any
// read whose total differs from the initial total, or that shows a negative
// balance, is an anomaly (a lost or torn transaction, a non-snapshot read).
type Bank struct {
	Accounts int
	Initial  int64 // per account
}

// NewBank returns the bank workload: 8 accounts of 100.
func NewBank() *Bank { return &Bank{Accounts: 8, Initial: 100} }

func (b *Bank) Name() string { return "bank" }

func (b *Bank) Setup(ctx context.Context, env *Env) error {
	if err := execAll(ctx, env.Writer,
		"DROP TABLE IF EXISTS accounts",
		"CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)"); err != nil {
		return err
	}
	vals := make([]string, b.Accounts)
	for i := range vals {
		vals[i] = fmt.Sprintf("(%d, %d)", i, b.Initial)
	}
	return execAll(ctx, env.Writer, "INSERT INTO accounts (id, balance) VALUES "+strings.Join(vals, ", "))
}

// Transfer is the value of a transfer op.
type Transfer struct {
	From   int   `json:"from"`
	To     int   `json:"to"`
	Amount int64 `json:"amount"`
}

func (b *Bank) Next(rng *rand.Rand, w int) history.Op {
	if rng.IntN(2) == 0 {
		node := "writer"
		if rng.IntN(2) == 0 {
			node = "reader"
		}
		return history.Op{F: "read", Node: node}
	}
	from := rng.IntN(b.Accounts)
	to := (from + 1 + rng.IntN(b.Accounts-1)) % b.Accounts
	return history.Op{F: "transfer", Value: history.Marshal(Transfer{From: from, To: to, Amount: 1 + int64(rng.IntN(5))})}
}

type bankClient struct {
	env      *Env
	read     string
	lock     string
	withdraw string
	deposit  string
}

func (b *Bank) NewClient(ctx context.Context, env *Env, w int) (Client, error) {
	return &bankClient{
		env:      env,
		read:     "SELECT id, balance FROM accounts ORDER BY id",
		lock:     q(env.Dialect, "SELECT id, balance FROM accounts WHERE id IN (?, ?) ORDER BY id FOR UPDATE"),
		withdraw: q(env.Dialect, "UPDATE accounts SET balance = balance - ? WHERE id = ?"),
		deposit:  q(env.Dialect, "UPDATE accounts SET balance = balance + ? WHERE id = ?"),
	}, nil
}

func (c *bankClient) Close() error { return nil }

func (c *bankClient) Invoke(ctx context.Context, op history.Op) history.Op {
	switch op.F {
	case "read":
		db := c.env.Writer
		if op.Node == "reader" {
			db = c.env.Reader
		}
		bal, err := readBalances(ctx, db, c.read)
		if err != nil {
			return completeRead(op, err)
		}
		return ok(op, history.Marshal(bal))
	case "transfer":
		var t Transfer
		if err := json.Unmarshal(op.Value, &t); err != nil {
			return failed(op, fmt.Errorf("bad transfer: %w", err))
		}
		return complete(op, c.transfer(ctx, t))
	}
	return failed(op, fmt.Errorf("unknown bank op %q", op.F))
}

// transfer locks both rows in id order (no deadlocks between transfers),
// refuses to overdraw, and moves the amount.
func (c *bankClient) transfer(ctx context.Context, t Transfer) (err error) {
	return inTx(ctx, c.env.Writer, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, c.lock, t.From, t.To)
		if err != nil {
			return err
		}
		var fromBal int64 = -1
		for rows.Next() {
			var id, b int64
			if err := rows.Scan(&id, &b); err != nil {
				rows.Close()
				return err
			}
			if int(id) == t.From {
				fromBal = b
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if fromBal < t.Amount {
			return fmt.Errorf("%w: insufficient funds in account %d", errTxDone, t.From)
		}
		if _, err := tx.ExecContext(ctx, c.withdraw, t.Amount, t.From); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, c.deposit, t.Amount, t.To); err != nil {
			return err
		}
		return nil
	})
}

func (b *Bank) Final(ctx context.Context, env *Env, rec Recorder) error {
	read := func(node string, db *sql.DB) {
		rec(ctx, history.Op{F: "read", Node: node}, func(ctx context.Context) history.Op {
			bal, err := readBalances(ctx, db, "SELECT id, balance FROM accounts ORDER BY id")
			op := history.Op{F: "read", Node: node}
			if err != nil {
				return completeRead(op, err)
			}
			return ok(op, history.Marshal(bal))
		})
	}
	read("writer", env.Writer)
	read("reader", env.Reader)
	return nil
}

func (b *Bank) Checkers() []checker.Checker {
	return []checker.Checker{checker.Bank{Accounts: b.Accounts, Total: int64(b.Accounts) * b.Initial}, checker.Perf{}}
}
