package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/targets"
)

func TestFreePorts(t *testing.T) {
	ps, err := FreePorts(0, 3)
	if err != nil || len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] {
		t.Fatalf("%v %v", ps, err)
	}
	// Any-port picks stay out of the ephemeral range, where outgoing
	// connections would race the server for the port.
	for _, p := range ps {
		if p >= ephemeralLow() {
			t.Errorf("port %d is in the ephemeral range (from %d)", p, ephemeralLow())
		}
	}
	if !BindFailed(errors.New("mariadb: mariadb2 exited during start: [ERROR] Can't start server: Bind on TCP/IP port: Address already in use")) ||
		BindFailed(errors.New("initdb failed")) || BindFailed(nil) {
		t.Error("BindFailed misclassifies")
	}
	// A busy base port is skipped.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	ps, err = FreePorts(busy, 1)
	if err == nil && ps[0] == busy {
		t.Fatalf("busy port %d returned", busy)
	}
	if err != nil && !errors.Is(err, targets.ErrSetup) {
		t.Fatal(err)
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o700)
	os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("data"), 0o640)
	os.Symlink("b/f", filepath.Join(src, "a", "l"))
	if err := CopyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "a", "l"))
	if err != nil || string(b) != "data" {
		t.Fatalf("%q %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dst, "a", "b", "f"))
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestPollAndBind(t *testing.T) {
	n := 0
	err := Poll(context.Background(), time.Second, time.Millisecond, func(context.Context) (bool, error) {
		n++
		return n == 3, nil
	})
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	err = Poll(context.Background(), 50*time.Millisecond, time.Millisecond, func(context.Context) (bool, error) {
		return false, fmt.Errorf("not yet")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	err = Poll(context.Background(), time.Second, time.Millisecond, func(context.Context) (bool, error) {
		return false, &Permanent{Err: stop}
	})
	if err != stop {
		t.Fatal(err)
	}
	life, end := context.WithCancel(context.Background())
	ctx, cancel := Bind(context.Background(), life)
	defer cancel()
	end()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("bound context not cancelled with its life")
	}
}
