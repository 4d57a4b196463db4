package refdb_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/refdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartKillFailover needs the real `refdb instance` with the admin API (instanceapi);
// it skips while that command is missing.
func TestStartKillFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := refdb.Binary(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	help, _ := exec.CommandContext(ctx, bin, "instance", "--help").CombinedOutput()
	if !strings.Contains(string(help), "--admin") || !strings.Contains(string(help), "reader") {
		t.Skip("refdb instance has no --admin API or reader role yet (being built in refdb/engine, refdb/sqlfront)")
	}
	t.Setenv(refdb.BinEnv, bin)
	tgt, err := refdb.Start(ctx, targets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tgt.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	if tgt.Dialect() != targets.MySQL || len(targets.Readers(tgt)) != 2 || targets.Writer(tgt) == nil {
		t.Fatalf("nodes: %d readers, writer %v", len(targets.Readers(tgt)), targets.Writer(tgt))
	}
	storage := 0
	for _, n := range tgt.Nodes() {
		if n.Role() == targets.RoleStorage {
			storage++
		}
	}
	if storage != 6 {
		t.Fatalf("%d storage nodes, want 6", storage)
	}
	db, err := targets.OpenDB(ctx, tgt.Dialect(), tgt.WriterDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "REPLACE INTO t VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	old := targets.Writer(tgt)
	if err := old.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	// The first successful write after the kill goes to the promoted reader; the
	// acknowledged row is still there.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := db.ExecContext(ctx, "UPDATE t SET v = 2 WHERE id = 1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded after killing the writer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var v int
	if err := db.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != 2 {
		t.Fatalf("after failover: v=%d err=%v", v, err)
	}
	if w := targets.Writer(tgt); w == nil || w.ID() == old.ID() {
		t.Fatalf("writer after failover: %v", w)
	}
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if old.Role() != targets.RoleReader {
		t.Fatalf("old writer rejoined as %s", old.Role())
	}
}
