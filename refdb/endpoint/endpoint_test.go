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
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend greets each connection with its name and holds it open.
func backend(t *testing.T, name string, wg *sync.WaitGroup) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
				io.WriteString(c, name+"\n")
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

func TestRolesAndDrops(t *testing.T) {
	var wg sync.WaitGroup
	a, b, c := backend(t, "a", &wg), backend(t, "b", &wg), backend(t, "c", &wg)
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
	if g != "a" {
		t.Fatalf("writer endpoint reached %s, want a", g)
	}
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		g, conn := greet(t, e.ReaderAddr())
		conn.Close()
		seen[g] = true
	}
	if !seen["b"] || !seen["c"] || seen["a"] {
		t.Fatalf("reader endpoint reached %v, want b and c round-robin", seen)
	}

	// Failover to b: the held writer connection is dropped, new ones reach b; with no
	// reader left the reader endpoint falls back to the writer.
	e.Apply(topo(2, B))
	held.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(held); err != nil {
		t.Fatalf("held writer connection: %v, want closed", err)
	}
	if g, conn := greet(t, e.WriterAddr()); g != "b" {
		t.Fatalf("after failover the writer endpoint reached %s", g)
	} else {
		conn.Close()
	}
	if g, conn := greet(t, e.ReaderAddr()); g != "b" {
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
