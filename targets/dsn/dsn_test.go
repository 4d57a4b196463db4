package dsn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/targets/postgres"
	"github.com/aurorabench/aurorabench/targets/proc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(proc.IgnoreSpawner))
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		url, dialect, dsn string
	}{
		{"mysql://u:p@127.0.0.1:3307/db", "mysql", "u:p@tcp(127.0.0.1:3307)/db?interpolateParams=true"},
		{"mysql://u:p@localhost/db", "mysql", "u:p@tcp(localhost:3306)/db?"},
		{"postgres://u:p@127.0.0.1:5433/db", "postgres", "postgres://u:p@127.0.0.1:5433/db?connect_timeout=5&sslmode=prefer"},
		{"postgresql://u:p@127.0.0.1/db?sslmode=disable", "postgres", "postgresql://u:p@127.0.0.1/db?connect_timeout=5&sslmode=disable"},
	} {
		d, dsn, err := Parse(tc.url)
		if err != nil || string(d) != tc.dialect || !strings.HasPrefix(dsn, tc.dsn) {
			t.Errorf("%s: got %s %s %v", tc.url, d, dsn, err)
		}
	}
	for _, bad := range []string{"refdb", "http://x", "mysql://u:secret@[::1"} {
		_, _, err := Parse(bad)
		if !errors.Is(err, targets.ErrSetup) {
			t.Errorf("%s: got %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("password in error: %v", err)
		}
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, scheme := range []string{"mysql", "postgres"} {
		_, err := Open(context.Background(), fmt.Sprintf("%s://u:secret@%s/db", scheme, addr))
		if !errors.Is(err, targets.ErrSetup) {
			t.Fatalf("%s: got %v", scheme, err)
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error shows the password or spans lines: %v", scheme, err)
		}
	}
}

// TestOpenRealServers points dsn targets at local clusters.
func TestOpenRealServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		avail func() error
		start func(context.Context, targets.Options) (targets.Target, error)
		url   func(addr string) string
	}{
		{"mysql", mariadb.Available, mariadb.Start, func(a string) string { return "mysql://bench:bench@" + a + "/bench" }},
		{"postgres", postgres.Available, postgres.Start, func(a string) string { return "postgres://bench:bench@" + a + "/bench?sslmode=disable" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.avail(); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatal(err)
				}
				t.Skip(err)
			}
			ctx := context.Background()
			peer, err := tc.start(ctx, targets.Options{Replicas: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close(ctx)
			tg, err := Open(ctx, tc.url(targets.Writer(peer).Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close(ctx)
			if tg.Name() != tc.name || len(tg.Nodes()) != 0 || tg.WriterDSN() != tg.ReaderDSN() {
				t.Fatalf("unexpected target %s", tg.Name())
			}
			if !errors.Is(tg.Failover(ctx), targets.ErrNoFailover) {
				t.Fatal("failover should be refused")
			}
			db, err := sql.Open(targets.DriverName(tg.Dialect()), tg.WriterDSN())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var one int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("query: %v", err)
			}
		})
	}
}
