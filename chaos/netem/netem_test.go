package netem_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/chaos/netem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is a line echo server that counts the connections it accepted.
type echo struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func newNet(t *testing.T) *netem.Network {
	t.Helper()
	n := netem.New(nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return n
}

var (
	a = netem.NodeRef{ID: "a", AZ: "az1"}
	b = netem.NodeRef{ID: "b", AZ: "az2"}
	c = netem.NodeRef{ID: "c", AZ: "az2"}
)

func all(netem.NodeRef, netem.NodeRef) bool { return true }

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, c: conn, br: bufio.NewReader(conn)}
}

func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := cl.c.Write([]byte(s + "\n")); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// recv reads one line, waiting at most d.
func (cl *client) recv(d time.Duration) (string, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(d))
	s, err := cl.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

func (cl *client) expect(want string) {
	cl.t.Helper()
	got, err := cl.recv(20 * time.Second)
	if err != nil || got != want {
		cl.t.Fatalf("recv = %q, %v; want %q", got, err, want)
	}
}

// silent checks nothing arrives for a while (a cut link delivers nothing however long one
// waits, so this holds on any machine).
func (cl *client) silent() {
	cl.t.Helper()
	got, err := cl.recv(300 * time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		cl.t.Fatalf("expected nothing through a dropping link, got %q, %v", got, err)
	}
}

func TestLinkForwardsAndIsStable(t *testing.T) {
	e := newEcho(t)
	n := newNet(t)
	addr, err := n.Link(a, b, e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.Link(a, b, e.ln.Addr().String())
	if err != nil || again != addr {
		t.Fatalf("second Link = %s, %v; want the same address %s", again, err, addr)
	}
	other, err := n.Link(b, a, e.ln.Addr().String())
	if err != nil || other == addr {
		t.Fatalf("reverse link = %s, %v; want its own proxy", other, err)
	}
	if ls := n.Links(); len(ls) != 2 || ls[0].String() != "a->b" || ls[1].String() != "b->a" {
		t.Fatalf("Links = %v", ls)
	}
	cl := dial(t, addr)
	for i := range 3 {
		cl.send(fmt.Sprint("hello ", i))
		cl.expect(fmt.Sprint("hello ", i))
	}
	// A large transfer goes through whole and in order.
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	big[len(big)-1] = '\n'
	go func() { _, _ = cl.c.Write(big) }()
	got, err := cl.recv(30 * time.Second)
	if err != nil || got != string(big[:len(big)-1]) {
		t.Fatalf("big echo: %d bytes, %v", len(got), err)
	}
}

func TestCutDropStallsAndHealResumes(t *testing.T) {
	e := newEcho(t)
	n := newNet(t)
	ab, _ := n.Link(a, b, e.ln.Addr().String())
	ac, _ := n.Link(a, c, e.ln.Addr().String())
	old := dial(t, ab)
	old.send("before")
	old.expect("before")
	side := dial(t, ac)
	side.send("side")
	side.expect("side")

	cut := n.Cut(func(from, to netem.NodeRef) bool { return to.ID == "b" }, netem.Drop)
	if len(cut) != 1 || cut[0].String() != "a->b" {
		t.Fatalf("Cut selected %v", cut)
	}
	// The existing connection stalls in both directions.
	old.send("during")
	old.silent()
	// A new connection is accepted but never reaches the far side.
	before := e.accepted.Load()
	held := dial(t, ab)
	held.send("held")
	held.silent()
	if e.accepted.Load() != before {
		t.Fatal("a held connection reached the server while the link was cut")
	}
	// The other link is untouched.
	side.send("side2")
	side.expect("side2")

	n.Heal()
	old.expect("during")
	old.send("after")
	old.expect("after")
	held.expect("held")
}

func TestCutResetClosesAndRefuses(t *testing.T) {
	e := newEcho(t)
	n := newNet(t)
	ab, _ := n.Link(a, b, e.ln.Addr().String())
	old := dial(t, ab)
	old.send("before")
	old.expect("before")

	n.Cut(all, netem.Reset)
	if _, err := old.recv(20 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("existing connection after a reset cut: %v, want it closed", err)
	}
	before := e.accepted.Load()
	if conn, err := net.DialTimeout("tcp", ab, 10*time.Second); err == nil { // else reset during the dial
		fresh := &client{t: t, c: conn, br: bufio.NewReader(conn)}
		_, _ = conn.Write([]byte("x\n")) // may fail already: the proxy resets at once
		_, err := fresh.recv(20 * time.Second)
		conn.Close()
		if err == nil || isTimeout(err) {
			t.Fatalf("new connection through a reset link: %v, want it closed", err)
		}
	}
	if e.accepted.Load() != before {
		t.Fatal("a connection reached the server through a reset link")
	}

	n.Heal()
	healed := dial(t, ab)
	healed.send("again")
	healed.expect("again")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSlowDelaysInOrder(t *testing.T) {
	e := newEcho(t)
	n := newNet(t)
	ab, _ := n.Link(a, b, e.ln.Addr().String())
	cl := dial(t, ab)
	const delay = 100 * time.Millisecond
	if got := n.Slow(all, delay, 0); len(got) != 1 {
		t.Fatalf("Slow selected %v", got)
	}
	// The delay is a lower bound (each direction adds it), whatever the machine's speed.
	t0 := time.Now()
	cl.send("slow")
	cl.expect("slow")
	if rtt := time.Since(t0); rtt < 2*delay {
		t.Fatalf("round trip %v through a link delayed by %v each way", rtt, delay)
	}
	// With jitter, bytes still arrive in order.
	n.Slow(all, 5*time.Millisecond, 5*time.Millisecond)
	for i := range 50 {
		cl.send(fmt.Sprint(i))
	}
	for i := range 50 {
		cl.expect(fmt.Sprint(i))
	}
	n.Heal()
	cl.send("healed")
	cl.expect("healed")
}

func TestCloseWhileTransferring(t *testing.T) {
	e := newEcho(t)
	n := netem.New(nil)
	ab, err := n.Link(a, b, e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		conn, err := net.Dial("tcp", ab)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, conn) }()
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
		if i == 3 {
			// One connection is stalled, one held, at the moment of Close.
			n.Cut(all, netem.Drop)
			held, err := net.Dial("tcp", ab)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Link(a, c, e.ln.Addr().String()); !errors.Is(err, netem.ErrClosed) {
		t.Fatalf("Link after Close: %v", err)
	}
	wg.Wait() // every client saw its connection end
}

func TestUpstreamDownRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	n := newNet(t)
	addr, _ := n.Link(a, b, dead)
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return // reset before the dial even returned
	}
	defer conn.Close()
	cl := &client{t: t, c: conn, br: bufio.NewReader(conn)}
	if _, err := cl.recv(20 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("link to a dead upstream: %v, want the connection closed", err)
	}
}
