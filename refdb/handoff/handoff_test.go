package handoff

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is an instance (Listener over its own TCP listener) and an endpoint (a front TCP
// listener whose accepted connections go through a Sender).
type rig struct {
	inst   *Listener
	front  net.Listener
	sender *Sender
}

func newRig(t *testing.T) *rig {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := Listen(tcp, nil)
	if err != nil {
		tcp.Close()
		t.Fatal(err)
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Dial(tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{inst: inst, front: front, sender: s}
	t.Cleanup(func() {
		r.sender.Close()
		r.front.Close()
		r.inst.Close()
	})
	return r
}

// connect dials the front as a client and hands the accepted side to the instance; it
// returns the client's end and the instance's end.
func (r *rig) connect(t *testing.T) (client, served net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", r.front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	acc, err := r.front.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sender.Send(acc.(*net.TCPConn)); err != nil {
		acc.Close()
		t.Fatal(err)
	}
	served = accept(t, r.inst)
	t.Cleanup(func() { served.Close() })
	return client, served
}

func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("instance stopped accepting")
		}
		return c
	case <-time.After(30 * time.Second):
		t.Fatal("the handed-off connection never reached the instance")
	}
	return nil
}

func roundTrip(t *testing.T, client, served net.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	client.SetDeadline(deadline)
	served.SetDeadline(deadline)
	if _, err := io.WriteString(client, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(served).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("instance read %q, %v", line, err)
	}
	if _, err := io.WriteString(served, "pong\n"); err != nil {
		t.Fatal(err)
	}
	line, err = bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "pong\n" {
		t.Fatalf("client read %q, %v", line, err)
	}
}

// waitEOF fails unless c reaches end of stream (or a reset) within the deadline.
func waitEOF(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: connection still open", who)
	}
}

func waitCount(t *testing.T, s *Sender, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("sender holds %d connections, want %d", s.Count(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A handed-off connection carries bytes both ways with the endpoint out of the path, and when
// the instance closes it the client sees the end (the endpoint closed its copy on notice).
func TestHandOffThenInstanceCloses(t *testing.T) {
	r := newRig(t)
	client, served := r.connect(t)
	if served.LocalAddr().String() != r.front.Addr().String() {
		t.Fatalf("served connection's local address %s, want the front's %s", served.LocalAddr(), r.front.Addr())
	}
	roundTrip(t, client, served)
	if n := r.sender.Count(); n != 1 {
		t.Fatalf("sender holds %d connections, want 1", n)
	}
	served.Close()
	waitEOF(t, client, "client after the instance closed")
	waitCount(t, r.sender, 0)
}

// Drop (a role change) ends the socket for the client and the instance alike.
func TestDropEndsBothSides(t *testing.T) {
	r := newRig(t)
	client, served := r.connect(t)
	roundTrip(t, client, served)
	if n := r.sender.Drop(); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	waitEOF(t, client, "client after drop")
	waitEOF(t, served, "instance after drop")
}

// An instance that stops (here: its listener closes, which hangs up on the endpoint) makes
// the endpoint shut down what it handed over, as a relay would close its pairs.
func TestInstanceGoneDropsConnections(t *testing.T) {
	r := newRig(t)
	client, served := r.connect(t)
	roundTrip(t, client, served)
	r.inst.Close()
	select {
	case <-r.sender.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("sender did not notice the instance hung up")
	}
	waitEOF(t, client, "client after the instance hung up")
	if _, err := r.sender.Send(mustTCP(t)); err == nil {
		t.Fatal("send after the instance hung up succeeded")
	}
}

func mustTCP(t *testing.T) *net.TCPConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// Bad input on the handoff socket: a descriptor that is not a TCP socket, and a message with
// no descriptor, are refused with a close notice; the listener keeps serving.
func TestRefusesWhatIsNotATCPSocket(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := Listen(tcp, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	u, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: Name(tcp.Addr().String()), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	msg := func(id uint64) []byte {
		var b [idLen]byte
		binary.BigEndian.PutUint64(b[:], id)
		return b[:]
	}
	if _, _, err := u.WriteMsgUnix(msg(7), syscall.UnixRights(int(pw.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(msg(8)); err != nil {
		t.Fatal(err)
	}
	u.SetReadDeadline(time.Now().Add(30 * time.Second))
	for _, want := range []uint64{7, 8} {
		var b [idLen]byte
		if _, err := io.ReadFull(u, b[:]); err != nil {
			t.Fatalf("waiting for the refusal of %d: %v", want, err)
		}
		if got := binary.BigEndian.Uint64(b[:]); got != want {
			t.Fatalf("refusal for %d, want %d", got, want)
		}
	}
	// Still serving: a direct TCP client is accepted.
	c, err := net.Dial("tcp", tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	accept(t, inst).Close()
}

// Dial fails at once when no instance serves the address on this host: the endpoint relays.
func TestDialWithoutInstance(t *testing.T) {
	_, err := Dial("127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "handoff") {
		t.Fatalf("Dial with no instance: %v, want an error", err)
	}
}
