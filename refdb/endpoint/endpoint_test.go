package endpoint_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/endpoint"
	"github.com/aurorabench/aurorabench/refdb/handoff"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend greets each connection with its name and holds it open. With handOff it also
// takes connections handed off by the endpoint, and then greets with name+"*" (a handed-off
// socket's local address is the endpoint's, not the backend's).
func backend(t *testing.T, name string, wg *sync.WaitGroup, handOff bool) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	own := ln.Addr().String()
	if handOff {
		hl, err := handoff.Listen(ln, nil)
		if err != nil {
			t.Fatal(err)
		}
		ln = hl
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				greeting := name
				if c.LocalAddr().String() != own {
					greeting += "*"
				}
				io.WriteString(c, greeting+"\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln
}

func greet(t *testing.T, addr string) (string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting through %s: %v", addr, err)
	}
	return strings.TrimSpace(line), c
}

func topo(version uint64, writer string, readers ...string) cluster.Status {
	st := cluster.Status{Version: version}
	st.Nodes = append(st.Nodes, cluster.Node{ID: "w", Kind: cluster.KindInstance, Role: cluster.RoleWriter, MySQL: writer})
	for _, r := range readers {
		st.Nodes = append(st.Nodes, cluster.Node{ID: r, Kind: cluster.KindInstance, Role: cluster.RoleReader, MySQL: r})
	}
	return st
}

// The same roles and drops whether the endpoint relays bytes or hands connections off.
func TestRolesAndDrops(t *testing.T) {
	t.Run("relay", func(t *testing.T) { testRolesAndDrops(t, false) })
	t.Run("handoff", func(t *testing.T) { testRolesAndDrops(t, true) })
}

func testRolesAndDrops(t *testing.T, handOff bool) {
	var wg sync.WaitGroup
	a, b, c := backend(t, "a", &wg, handOff), backend(t, "b", &wg, handOff), backend(t, "c", &wg, handOff)
	want := func(name string) string {
		if handOff {
			return name + "*"
		}
		return name
	}
	defer func() {
		a.Close()
		b.Close()
		c.Close()
		wg.Wait()
	}()
	e, err := endpoint.Listen(endpoint.Config{WriterListen: "127.0.0.1:0", ReaderListen: "127.0.0.1:0", Control: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	A, B, C := a.Addr().String(), b.Addr().String(), c.Addr().String()

	e.Apply(topo(1, A, B, C))
	g, held := greet(t, e.WriterAddr())
	defer held.Close()
	if g != want("a") {
		t.Fatalf("writer endpoint reached %s, want %s", g, want("a"))
	}
	if w, _ := e.Conns(); w != 1 {
		t.Fatalf("writer endpoint counts %d connections, want 1", w)
	}
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		g, conn := greet(t, e.ReaderAddr())
		conn.Close()
		seen[g] = true
	}
	if !seen[want("b")] || !seen[want("c")] || len(seen) != 2 {
		t.Fatalf("reader endpoint reached %v, want %s and %s round-robin", seen, want("b"), want("c"))
	}

	// Failover to b: the held writer connection is dropped, new ones reach b; with no
	// reader left the reader endpoint falls back to the writer.
	e.Apply(topo(2, B))
	held.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(held); err != nil {
		t.Fatalf("held writer connection: %v, want closed", err)
	}
	if g, conn := greet(t, e.WriterAddr()); g != want("b") {
		t.Fatalf("after failover the writer endpoint reached %s", g)
	} else {
		conn.Close()
	}
	if g, conn := greet(t, e.ReaderAddr()); g != want("b") {
		t.Fatalf("with no readers the reader endpoint reached %s, want the writer", g)
	} else {
		conn.Close()
	}
}

// Run follows a control plane; an unreachable one leaves the last roles in place and Run
// returns when its context ends.
func TestRunWithoutControl(t *testing.T) {
	e, err := endpoint.Listen(endpoint.Config{WriterListen: "127.0.0.1:0", ReaderListen: "127.0.0.1:0", Control: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
