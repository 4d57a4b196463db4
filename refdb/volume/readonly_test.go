package volume_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine/localvol"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// A read-only volume runs no recovery, reads at the read points the writer's OnDurable hands
// out, never moves back, and refuses commits.
func TestReadOnlyVolume(t *testing.T) {
	c, err := localvol.Start(t.TempDir(), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var points []volume.ReadPoint
	var durable []volume.Durable
	w, err := volume.Open(ctx, volume.Config{ID: "w", Nodes: c.Peers, PGs: 2, Secret: c.Secret, Create: true, Logger: c.Logger,
		OnDurable: func(rp volume.ReadPoint, ds []volume.Durable) {
			mu.Lock()
			defer mu.Unlock()
			points = append(points, rp)
			durable = append(durable, ds...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := volume.Open(ctx, volume.Config{ID: "r", Nodes: c.Peers, PGs: 2, Secret: c.Secret, ReadOnly: true, Logger: c.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, err := r.Get(ctx, []byte("a"), 0); !errors.Is(err, volume.ErrUnavailable) {
		t.Fatalf("read before any read point: %v", err)
	}
	if _, err := r.Commit(ctx, []volume.Op{{Key: []byte("a"), Value: []byte("x")}}); !errors.Is(err, volume.ErrReadOnly) {
		t.Fatalf("commit on a read-only volume: %v", err)
	}
	l1, err := w.Commit(ctx, []volume.Op{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("z"), Value: []byte("z")}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	rp1 := points[len(points)-1]
	if len(durable) != 1 || durable[0].LSN != l1 || len(durable[0].Keys) != 2 || rp1.VDL < l1 {
		t.Fatalf("durable %+v at %+v, commit %d", durable, rp1, l1)
	}
	mu.Unlock()
	if !r.SetReadPoint(rp1) || r.VDL() != rp1.VDL {
		t.Fatalf("read point not set: %d", r.VDL())
	}
	if _, err := w.Commit(ctx, []volume.Op{{Key: []byte("a"), Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	get := func(want string) {
		t.Helper()
		v, ok, err := r.Get(ctx, []byte("a"), 0)
		if err != nil || !ok || string(v) != want {
			t.Fatalf("reader Get a = %q %v %v, want %q", v, ok, err, want)
		}
	}
	get("1") // the reader stays at its read point
	rp2 := w.ReadPoint()
	if !r.SetReadPoint(rp2) {
		t.Fatal("read point did not move forward")
	}
	get("2")
	if r.SetReadPoint(rp1) || r.VDL() != rp2.VDL {
		t.Fatalf("read point moved back to %d", r.VDL())
	}
	if recs, err := r.Scan(ctx, []byte("a"), nil, rp1.VDL, 0); err != nil || len(recs) == 0 || string(recs[0].Value) != "1" {
		t.Fatalf("scan at the old point: %v %v", recs, err)
	}
}
