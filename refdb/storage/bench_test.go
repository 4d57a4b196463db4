package storage_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/volume"
)

// BenchmarkInProcessCommits drives 6 in-process storage servers (real fsyncs, real TCP) through
// the volume with 32 committers; the profile of one process shows the protocol's CPU cost.
func BenchmarkInProcessCommits(b *testing.B) {
	nodes, peers := startNodes(b)
	defer func() {
		for _, n := range nodes {
			n.stop(b)
		}
	}()
	ctx := context.Background()
	v, err := volume.Open(ctx, volume.Config{ID: "w1", Nodes: peers, PGs: 4, Secret: secret, Create: true, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if _, err := v.Commit(ctx, []volume.Op{{Key: []byte(fmt.Sprintf("%c-%d", byte(i*131), i)), Value: []byte("payload-of-a-single-row-insert")}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
