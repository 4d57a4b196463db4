package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t   *testing.T
	c   *localvol.Cluster
	s   *engine.VolumeStore
	e   *engine.Engine
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := localvol.Start(t.TempDir(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	en := &env{t: t, c: c, ctx: ctx}
	t.Cleanup(func() {
		if en.s != nil {
			en.s.V.Close()
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	en.open(true)
	return en
}

func (en *env) open(create bool) {
	en.t.Helper()
	if en.s != nil {
		en.s.V.Close()
	}
	s, err := en.c.OpenStore(en.ctx, create)
	if err != nil {
		en.t.Fatal(err)
	}
	en.s = s
	e, err := engine.Open(en.ctx, engine.Config{Store: s, LockWaitTimeout: 5 * time.Second, Logger: localvol.Quiet()})
	if err != nil {
		en.t.Fatal(err)
	}
	en.e = e
}

func key(i int) []byte { return append(engine.IndexPrefix(7, 0), engine.AppendInt(nil, int64(i))...) }

func (en *env) put(kvs map[int]string) {
	en.t.Helper()
	txn := en.e.Begin(engine.TxnOptions{})
	for k, v := range kvs {
		if err := txn.Put(en.ctx, key(k), []byte(v)); err != nil {
			en.t.Fatal(err)
		}
	}
	if _, err := txn.Commit(en.ctx); err != nil {
		en.t.Fatal(err)
	}
}

func (en *env) get(txn *engine.Txn, k int) string {
	en.t.Helper()
	v, ok, err := txn.Get(en.ctx, key(k))
	if err != nil {
		en.t.Fatal(err)
	}
	if !ok {
		return "<none>"
	}
	return string(v)
}

func TestSnapshotIsolationAndOwnWrites(t *testing.T) {
	en := newEnv(t)
	en.put(map[int]string{1: "a", 2: "b"})
	reader := en.e.Begin(engine.TxnOptions{})
	if got := en.get(reader, 1); got != "a" {
		t.Fatalf("got %q", got)
	}
	en.put(map[int]string{1: "a2", 3: "c"})
	// The reader keeps its snapshot, for point reads and scans.
	if got := en.get(reader, 1); got != "a" {
		t.Fatalf("snapshot read saw a later commit: %q", got)
	}
	if got := en.get(reader, 3); got != "<none>" {
		t.Fatalf("snapshot read saw a later insert: %q", got)
	}
	// Locking reads see the latest committed version.
	v, _, err := reader.GetForUpdate(en.ctx, key(1))
	if err != nil || string(v) != "a2" {
		t.Fatalf("locking read: %q %v", v, err)
	}
	// Own writes are visible to point reads and merged into scans; deletes hide keys.
	if err := reader.Put(en.ctx, key(5), []byte("e")); err != nil {
		t.Fatal(err)
	}
	if err := reader.Delete(en.ctx, key(2)); err != nil {
		t.Fatal(err)
	}
	prefix := engine.IndexPrefix(7, 0)
	it := reader.Scan(en.ctx, prefix, engine.PrefixEnd(prefix), false)
	var got []string
	for kv, ok := it.Next(); ok; kv, ok = it.Next() {
		got = append(got, string(kv.Value))
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	if fmt.Sprint(got) != "[a e]" {
		t.Fatalf("scan at snapshot with own writes: %v", got)
	}
	if _, err := reader.Commit(en.ctx); err != nil {
		t.Fatal(err)
	}
	after := en.e.Begin(engine.TxnOptions{})
	defer after.Rollback()
	for k, want := range map[int]string{1: "a2", 2: "<none>", 3: "c", 5: "e"} {
		if got := en.get(after, k); got != want {
			t.Errorf("key %d = %q, want %q", k, got, want)
		}
	}
	if n := en.e.LockedKeys(); n != 0 {
		t.Fatalf("%d locks left after commit", n)
	}
}

func TestSavepointRollback(t *testing.T) {
	en := newEnv(t)
	txn := en.e.Begin(engine.TxnOptions{})
	txn.Put(en.ctx, key(1), []byte("x"))
	sp := txn.Savepoint()
	txn.Put(en.ctx, key(1), []byte("y"))
	txn.Put(en.ctx, key(2), []byte("z"))
	txn.RollbackTo(sp)
	if got := en.get(txn, 1); got != "x" {
		t.Fatalf("after rollback to savepoint: %q", got)
	}
	if got := en.get(txn, 2); got != "<none>" {
		t.Fatalf("after rollback to savepoint: %q", got)
	}
	txn.Rollback()
	if n := en.e.LockedKeys(); n != 0 {
		t.Fatalf("%d locks left after rollback", n)
	}
}

func TestLockWaitAndTimeout(t *testing.T) {
	en := newEnv(t)
	en.put(map[int]string{1: "0"})
	holder := en.e.Begin(engine.TxnOptions{})
	if err := holder.Put(en.ctx, key(1), []byte("1")); err != nil {
		t.Fatal(err)
	}
	// A short wait times out with 1205 and leaves the waiter usable.
	waiter := en.e.Begin(engine.TxnOptions{LockWaitTimeout: 50 * time.Millisecond})
	if _, _, err := waiter.GetForUpdate(en.ctx, key(1)); !errors.Is(err, engine.ErrLockWaitTimeout) {
		t.Fatalf("want lock wait timeout, got %v", err)
	}
	if waiter.Done() {
		t.Fatal("a lock wait timeout rolled back the whole transaction")
	}
	// A longer wait is granted when the holder commits, and reads the holder's write.
	waiter.SetLockWaitTimeout(30 * time.Second)
	got := make(chan string, 1)
	go func() {
		v, _, err := waiter.GetForUpdate(en.ctx, key(1))
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(v)
	}()
	if _, err := holder.Commit(en.ctx); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "1" {
		t.Fatalf("waiter read %q after the holder committed, want 1", v)
	}
	waiter.Rollback()
}

func TestDeadlockDetected(t *testing.T) {
	en := newEnv(t)
	a := en.e.Begin(engine.TxnOptions{})
	b := en.e.Begin(engine.TxnOptions{})
	if err := a.Put(en.ctx, key(1), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(en.ctx, key(2), []byte("b")); err != nil {
		t.Fatal(err)
	}
	// Each now wants the other's lock: whichever closes the cycle is the victim (1213), is
	// rolled back, and the other gets the lock.
	aDone, bDone := make(chan error, 1), make(chan error, 1)
	go func() { aDone <- a.Put(en.ctx, key(2), []byte("a")) }()
	go func() { bDone <- b.Put(en.ctx, key(1), []byte("b")) }()
	errA, errB := <-aDone, <-bDone
	var victim, survivor *engine.Txn
	switch {
	case errors.Is(errA, engine.ErrDeadlock) && errB == nil:
		victim, survivor = a, b
	case errors.Is(errB, engine.ErrDeadlock) && errA == nil:
		victim, survivor = b, a
	default:
		t.Fatalf("want one deadlock victim and one survivor, got %v and %v", errA, errB)
	}
	if !victim.Done() {
		t.Fatal("the deadlock victim was not rolled back")
	}
	if _, err := survivor.Commit(en.ctx); err != nil {
		t.Fatal(err)
	}
	if n := en.e.LockedKeys(); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// Concurrent read-modify-write increments through locking reads must not lose updates.
func TestConcurrentIncrements(t *testing.T) {
	en := newEnv(t)
	en.put(map[int]string{1: "0", 2: "0"})
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; {
				txn := en.e.Begin(engine.TxnOptions{})
				// Lock in opposite orders on alternate workers to provoke deadlocks.
				ks := []int{1, 2}
				if w%2 == 1 {
					ks = []int{2, 1}
				}
				var err error
				for _, k := range ks {
					var v []byte
					v, _, err = txn.GetForUpdate(en.ctx, key(k))
					if err != nil {
						break
					}
					n, _ := strconv.Atoi(string(v))
					if err = txn.Put(en.ctx, key(k), []byte(strconv.Itoa(n+1))); err != nil {
						break
					}
				}
				if errors.Is(err, engine.ErrDeadlock) {
					continue // rolled back: retry
				}
				if err != nil {
					txn.Rollback()
					errs <- err
					return
				}
				if _, err := txn.Commit(en.ctx); err != nil {
					errs <- err
					return
				}
				i++
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	txn := en.e.Begin(engine.TxnOptions{})
	defer txn.Rollback()
	for _, k := range []int{1, 2} {
		if got := en.get(txn, k); got != strconv.Itoa(workers*each) {
			t.Fatalf("key %d = %s after %d increments", k, got, workers*each)
		}
	}
}

func TestCatalogAndDataSurviveRestart(t *testing.T) {
	en := newEnv(t)
	if err := en.e.CreateDatabase(en.ctx, engine.DatabaseDef{Name: "bench"}); err != nil {
		t.Fatal(err)
	}
	def, err := en.e.CreateTable(en.ctx, &engine.TableDef{DB: "bench", Name: "t1",
		Columns: []engine.ColumnDef{{Name: "id", Type: "int"}, {Name: "v", Type: "varchar(10)", Nullable: true}},
		PK:      []string{"id"}, Indexes: []engine.IndexDef{{Name: "v_idx", Columns: []string{"v"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := en.e.NextAutoIncrement(en.ctx, def.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	pk := append(engine.IndexPrefix(def.DataID, 0), engine.AppendInt(nil, 42)...)
	txn := en.e.Begin(engine.TxnOptions{})
	txn.Put(en.ctx, pk, []byte("row"))
	if _, err := txn.Commit(en.ctx); err != nil {
		t.Fatal(err)
	}
	en.open(false) // a new writer: recovery under a new epoch, catalog reloaded from the log
	got, ok := en.e.Catalog().Table("BENCH", "T1")
	if !ok || got.ID != def.ID || len(got.Indexes) != 1 || got.Indexes[0].Name != "v_idx" {
		t.Fatalf("catalog after restart: %+v", got)
	}
	if n, err := en.e.NextAutoIncrement(en.ctx, def.ID, 0); err != nil || n <= 3 {
		t.Fatalf("auto-increment after restart: %d %v (must be above every value handed out)", n, err)
	}
	txn = en.e.Begin(engine.TxnOptions{})
	defer txn.Rollback()
	v, ok, err := txn.Get(en.ctx, pk)
	if err != nil || !ok || !bytes.Equal(v, []byte("row")) {
		t.Fatalf("row after restart: %q %v %v", v, ok, err)
	}
	if err := en.e.DropTable(en.ctx, "bench", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := en.e.Catalog().Table("bench", "t1"); ok {
		t.Fatal("table still there after drop")
	}
}

func TestTupleOrder(t *testing.T) {
	ints := []int64{-1 << 62, -5, -1, 0, 1, 7, 1 << 40}
	for i := 1; i < len(ints); i++ {
		if bytes.Compare(engine.AppendInt(nil, ints[i-1]), engine.AppendInt(nil, ints[i])) >= 0 {
			t.Fatalf("int order broken at %d", ints[i])
		}
	}
	floats := []float64{-1e9, -1.5, 0, 1e-9, 2.5, 1e300}
	for i := 1; i < len(floats); i++ {
		if bytes.Compare(engine.AppendFloat(nil, floats[i-1]), engine.AppendFloat(nil, floats[i])) >= 0 {
			t.Fatalf("float order broken at %v", floats[i])
		}
	}
	strs := []string{"", "\x00", "\x00\x00", "a", "a\x00b", "ab", "b"}
	for i := 1; i < len(strs); i++ {
		a, b := engine.AppendString(nil, strs[i-1]), engine.AppendString(nil, strs[i])
		if bytes.Compare(a, b) >= 0 {
			t.Fatalf("string order broken: %q !< %q", strs[i-1], strs[i])
		}
		if n, err := engine.SkipElement(b, -1); err != nil || n != len(b) {
			t.Fatalf("skip %q: %d %v", strs[i], n, err)
		}
	}
	// NULL sorts before every value, and a tuple prefix bounds its extensions.
	if bytes.Compare(engine.AppendNull(nil), engine.AppendInt(nil, -1<<63)) >= 0 {
		t.Fatal("NULL does not sort first")
	}
	p := engine.AppendString(nil, "ab")
	ext := engine.AppendInt(append([]byte(nil), p...), 5)
	if bytes.Compare(ext, engine.PrefixEnd(p)) >= 0 || bytes.Compare(ext, p) <= 0 {
		t.Fatal("prefix range does not contain its extension")
	}
}
