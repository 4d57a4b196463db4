package refdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/refdb"
)

// TestZombieWriterIsFenced freezes the writer (SIGSTOP) until the control
// plane has promoted a reader, keeps a client connected straight to the
// frozen writer (bypassing the endpoint, as a client with a cached address
// would), and resumes it. Invariant 3: a writer with a stale epoch never
// commits again, so every insert it acknowledged must be readable on the new
// writer, and its clients must get errors.
func TestZombieWriterIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := refdb.Binary(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(refdb.BinEnv, bin)
	tgt, err := refdb.Start(ctx, targets.Options{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(context.Background())

	viaEndpoint, err := targets.OpenDB(ctx, tgt.Dialect(), tgt.WriterDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer viaEndpoint.Close()
	if _, err := viaEndpoint.ExecContext(ctx, "CREATE TABLE zombie (id BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	old := targets.Writer(tgt)
	direct, err := targets.OpenDB(ctx, tgt.Dialect(), old.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	direct.SetMaxOpenConns(4)
	if _, err := direct.ExecContext(ctx, "INSERT INTO zombie VALUES (0)"); err != nil {
		t.Fatal(err)
	}

	if err := old.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = old.Resume(context.Background())
		}
	}()
	// Wait for the control plane to promote someone else.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if w := targets.Writer(tgt); w != nil && w.ID() != old.ID() {
			t.Logf("writer %s frozen; %s promoted", old.ID(), w.ID())
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failover within 60s of freezing the writer")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Zombie clients: inserts straight to the frozen writer, which block
	// until it resumes.
	var mu sync.Mutex
	var acked []int64
	errs := 0
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				id := int64(1000*(c+1) + i)
				octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := direct.ExecContext(octx, "INSERT INTO zombie VALUES (?)", id)
				ocancel()
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				} else {
					errs++
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	if err := old.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	resumed = true
	wg.Wait()
	t.Logf("zombie clients: %d inserts acknowledged, %d errors", len(acked), errs)
	if errs == 0 {
		t.Error("no zombie client got an error: the frozen writer kept serving writes")
	}
	present := map[int64]bool{}
	rows, err := queryIDs(ctx, viaEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range rows {
		present[id] = true
	}
	if !present[0] {
		t.Error("the row committed before the freeze is lost")
	}
	for _, id := range acked {
		if !present[id] {
			t.Errorf("insert %d was acknowledged by the zombie writer but is not on the new writer", id)
		}
	}
}

func queryIDs(ctx context.Context, db *sql.DB) ([]int64, error) {
	rows, err := db.QueryContext(ctx, "SELECT id FROM zombie ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
