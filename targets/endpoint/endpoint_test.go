package endpoint

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend answers each line with its name and the line.
type backend struct {
	ln   net.Listener
	name string
	wg   sync.WaitGroup
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, name: name}
	var mu sync.Mutex
	var conns []net.Conn
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, b.name+":"+l)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func roundTrip(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	l, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return l[:len(l)-1], nil
}

func TestProxySwitchDropClose(t *testing.T) {
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	var cur atomic.Value
	cur.Store(b1.ln.Addr().String())
	var refuse atomic.Bool
	p, err := New(func() (string, bool) {
		if refuse.Load() {
			return "", false
		}
		return cur.Load().(string), true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	c1, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	r1 := bufio.NewReader(c1)
	if got, err := roundTrip(c1, r1, "x"); err != nil || got != "b1:x" {
		t.Fatalf("got %q %v", got, err)
	}

	// Switch the backend: the open connection keeps its backend until
	// DropAll, new ones go to the new backend.
	cur.Store(b2.ln.Addr().String())
	if got, err := roundTrip(c1, r1, "y"); err != nil || got != "b1:y" {
		t.Fatalf("got %q %v", got, err)
	}
	p.DropAll()
	c1.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r1.ReadString('\n'); err == nil {
		t.Fatal("dropped connection still open")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if got, err := roundTrip(c2, r2, "z"); err != nil || got != "b2:z" {
		t.Fatalf("got %q %v", got, err)
	}
	// The dropped connection leaves the count once both its copy goroutines have ended, which
	// may be after c2's round trip: wait for it (a leak would keep it at 2).
	for deadline := time.Now().Add(5 * time.Second); p.Conns() != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Conns() != 1 {
		t.Fatalf("%d connections, want 1", p.Conns())
	}
	p.DropBackend(b1.ln.Addr().String()) // not c2's backend
	if got, err := roundTrip(c2, r2, "w"); err != nil || got != "b2:w" {
		t.Fatalf("got %q %v", got, err)
	}

	// No backend: the client is closed at once.
	refuse.Store(true)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := roundTrip(c3, bufio.NewReader(c3), "v"); err == nil {
		t.Fatal("refused connection answered")
	}

	// Dead backend: the client is closed too.
	refuse.Store(false)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	cur.Store(dead.Addr().String())
	dead.Close()
	c4, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	if _, err := roundTrip(c4, bufio.NewReader(c4), "u"); err == nil {
		t.Fatal("connection to a dead backend answered")
	}

	// Close ends the open connection too, and the listener.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r2.ReadString('\n'); err == nil {
		t.Fatal("connection open after Close")
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("proxy still accepting after Close")
	}
}
