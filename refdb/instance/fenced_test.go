package instance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/refdb/instance"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// A recovery by someone else (a promote that sealed a newer epoch and then failed) fences the
// writer: its commits fail at once, and its status says so and turns unhealthy, which is
// what the control plane replaces it on. Its commits never stall, so only this shows it.
func TestFencedWriterReportsIt(t *testing.T) {
	defer instanceapi.CloseIdle()
	c := startStorage(t, 2)
	wAdmin := freeAddr(t)
	w := startInstance(t, c, instance.Config{Role: "writer", ID: "db1", AZ: "az1", Admin: wAdmin, Create: true})
	defer w.stop(t)
	db := open(t, w.mysql)
	defer db.Close()
	seedBench(t, db)
	ctx := context.Background()
	wc := instanceapi.NewClient(wAdmin)
	st, err := wc.Status(ctx)
	if err != nil || !st.Healthy || st.Fenced != "" {
		t.Fatalf("writer status before: %+v %v", st, err)
	}

	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	other, err := c.OpenVolume(octx, false)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()

	if _, err := db.Exec("INSERT INTO bench.t VALUES (2, 2)"); err == nil {
		t.Fatal("a fenced writer acknowledged a commit")
	}
	waitFor(t, func() bool {
		st, err = wc.Status(ctx)
		return err == nil && st.Fenced != ""
	})
	if st.Healthy || !strings.Contains(st.Fenced, "epoch") || st.StalledMS != 0 {
		t.Fatalf("fenced writer status %+v", st)
	}
}
