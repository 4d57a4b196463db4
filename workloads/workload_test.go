package workloads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

func TestPlaceholders(t *testing.T) {
	if got := q(targets.Postgres, "UPDATE t SET a = ? WHERE id = ? AND b = ?"); got != "UPDATE t SET a = $1 WHERE id = $2 AND b = $3" {
		t.Fatalf("postgres: %q", got)
	}
	if got := q(targets.MySQL, "SELECT ?"); got != "SELECT ?" {
		t.Fatalf("mysql: %q", got)
	}
}

// Definite decides between fail (did not happen) and info (may have
// happened): getting it wrong either hides lost writes or reports false
// ones, so every branch is pinned here.
func TestDefinite(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1213, Message: "Deadlock"}, true},
		{fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1290}), true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), true},
		{fmt.Errorf("%w: insufficient funds", errTxDone), true},
		{mysql.ErrInvalidConn, false},
		{context.DeadlineExceeded, false},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
		{errors.New("unexpected EOF"), false},
	}
	for _, c := range cases {
		if got := Definite(c.err); got != c.want {
			t.Errorf("Definite(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRegisterKeysRotate(t *testing.T) {
	r := NewRegister()
	rng := rand.New(rand.NewPCG(1, 2))
	perKey := map[string]int{}
	for i := 0; i < 10000; i++ {
		op := r.Next(rng, 0)
		perKey[op.Key]++
		if op.F == "cas" {
			var old, nv int64
			if _, err := fmt.Sscanf(string(op.Value), "[%d,%d]", &old, &nv); err != nil || old == nv {
				t.Fatalf("cas value %s: old must differ from new", op.Value)
			}
		}
	}
	for k, n := range perKey {
		if n > int(r.opsPerKey)*2 {
			t.Fatalf("key %s got %d ops: per-key histories must stay small for Porcupine", k, n)
		}
	}
	if len(perKey) < 10000/int(r.opsPerKey)/2 {
		t.Fatalf("only %d keys used", len(perKey))
	}
}

func TestNewRejectsUnknown(t *testing.T) {
	if _, err := New("nope", Params{}); err == nil {
		t.Fatal("unknown workload accepted")
	}
	for _, n := range Names() {
		w, err := New(n, Params{})
		if err != nil || w.Name() != n || len(w.Checkers()) == 0 {
			t.Fatalf("workload %s: %v", n, err)
		}
	}
	_ = history.Op{}
}

// TestSetScanners: every eighth worker reads a range that ends at most scanRange past its
// start, on the writer or the reader endpoint; the others insert new elements.
func TestSetScanners(t *testing.T) {
	s := NewSet()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		for w := 0; w < 16; w++ {
			op := s.Next(rng, w)
			if !scanner(w) {
				if op.F != "add" {
					t.Fatalf("worker %d: %s, want add", w, op.F)
				}
				continue
			}
			var r [2]int64
			if err := json.Unmarshal(op.Value, &r); err != nil || op.F != "scan" || r[0] < 1 || r[1]-r[0] != scanRange ||
				(op.Node != "writer" && op.Node != "reader") {
				t.Fatalf("worker %d: %s %s on %q (%v), want a scan of %d elements", w, op.F, op.Value, op.Node, err, scanRange)
			}
		}
	}
}
