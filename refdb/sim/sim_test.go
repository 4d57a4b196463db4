package sim

import (
	"flag"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

var (
	seedFlag  = flag.Int64("seed", -1, "replay one simulation seed (with a trace on failure)")
	seedsFlag = flag.Int("seeds", 0, "number of seeds to run (default 2000, 300 with -short)")
	baseFlag  = flag.Int64("seed-base", 0, "first seed of the run")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSimulation(t *testing.T) {
	if *seedFlag >= 0 {
		s := New(Config{Seed: uint64(*seedFlag), Trace: true})
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: %+v", *seedFlag, s.Stats())
		return
	}
	n := *seedsFlag
	if n == 0 {
		n = 2000
		if testing.Short() {
			n = 300
		}
	}
	// The schedules allocate many short-lived messages; trading memory for fewer GC cycles
	// roughly halves the run time.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	var next atomic.Int64
	var mu sync.Mutex
	var failed []error
	var total Stats
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed := next.Add(1) - 1
				if seed >= int64(n) {
					return
				}
				s := New(Config{Seed: uint64(*baseFlag + seed)})
				err := s.Run()
				st := s.Stats()
				mu.Lock()
				if err != nil && len(failed) < 10 {
					failed = append(failed, err)
				}
				total.Events += st.Events
				total.Proposed += st.Proposed
				total.Acked += st.Acked
				total.ReadChecks += st.ReadChecks
				total.Reads += st.Reads
				total.Failovers += st.Failovers
				total.Crashes += st.Crashes
				total.Wipes += st.Wipes
				total.Corruptions += st.Corruptions
				total.Partitions += st.Partitions
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range failed {
		t.Errorf("%v\n(replay: go test ./refdb/sim -run TestSimulation -seed N)", err)
	}
	t.Logf("%d seeds: %+v", n, total)
}

// TestUnsafeModesAreCaught runs unsafe modes over the first seeds until the invariant checks
// fail a schedule: the simulation sees each broken rule. Ack-before-fsync is not here: the
// simulation crashes one node at a time, and a record acknowledged before its fsync is only
// lost when every node holding it crashes together (a correlated power failure).
func TestUnsafeModesAreCaught(t *testing.T) {
	const seeds = 300
	for name, u := range map[string]Unsafe{
		"ack-3of6":         {Ack3of6: true},
		"no-epoch-fencing": {NoEpochFencing: true},
		"no-truncation":    {NoTruncation: true},
	} {
		t.Run(name, func(t *testing.T) {
			for seed := 0; seed < seeds; seed++ {
				err := New(Config{Seed: uint64(seed), Unsafe: u}).Run()
				if err == nil {
					continue
				}
				msg := err.Error()
				if i := strings.IndexByte(msg, '\n'); i > 0 {
					msg = msg[:i]
				}
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				t.Logf("unsafe mode %s caught at seed %d: %s", name, seed, msg)
				return
			}
			t.Fatalf("unsafe mode %s: all %d schedules passed the invariant checks", name, seeds)
		})
	}
}
