package instance

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// tcpPair returns both ends of a loopback TCP connection: the writer's end must be a real
// socket, since flush writes to its descriptor.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	return server, client
}

// subscribedReader returns a broadcaster with one reader subscribed over loopback TCP, and
// the reader's end of the connection; both ends close when the test ends.
func subscribedReader(t *testing.T) (*broadcaster, *subscriber, net.Conn) {
	t.Helper()
	srv, cli := tcpPair(t)
	t.Cleanup(func() { cli.Close(); srv.Close() })
	b := newBroadcaster()
	b.init(volume.ReadPoint{Epoch: 1})
	s, _, err := b.subscribe("r1", srv)
	if err != nil {
		t.Fatal(err)
	}
	return b, s, cli
}

// startStream runs s's sender goroutine; the channel returned closes when it ends.
func startStream(b *broadcaster, s *subscriber, closed <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.stream(s, closed)
	}()
	return done
}

func publishCommit(b *broadcaster, lsn int, val []byte) {
	key := []byte(fmt.Sprintf("k%06d", lsn))
	b.publish(volume.ReadPoint{VDL: redo.LSN(lsn), Epoch: 1},
		[]volume.Durable{{LSN: redo.LSN(lsn), Keys: [][]byte{key}, Ops: []volume.Op{{Key: key, Value: val}}}})
}

// TestStreamOrderAcrossDirectAndSenderWrites: commits published while the reader's socket is
// full are written partly by flush (the volume's goroutines, two of them at once here) and
// partly by the subscriber's sender; the reader still gets the reset, then every commit once,
// in LSN order, each frame whole.
func TestStreamOrderAcrossDirectAndSenderWrites(t *testing.T) {
	b, s, cli := subscribedReader(t)
	closed := make(chan struct{})
	streamDone := startStream(b, s, closed)

	const n = 2000
	val := bytes.Repeat([]byte("v"), 16<<10) // 32 MB in all: far more than the socket buffers
	got := make(chan error, 1)
	startReading := make(chan struct{})
	go func() {
		<-startReading
		br := bufio.NewReader(cli)
		ev, err := readEventFrame(br)
		if err != nil || !ev.Reset {
			got <- fmt.Errorf("first event %+v, %v: want a reset", ev, err)
			return
		}
		next := 1
		for next <= n {
			ev, err := readEventFrame(br)
			if err != nil {
				got <- fmt.Errorf("after commit %d: %w", next-1, err)
				return
			}
			for _, c := range ev.Commits {
				if c.LSN != uint64(next) || len(c.Vals) != 1 || !bytes.Equal(c.Vals[0], val) {
					got <- fmt.Errorf("commit %d (%d bytes) where %d was due", c.LSN, len(c.Vals[0]), next)
					return
				}
				next++
			}
		}
		got <- nil
	}()

	stopFlushing := make(chan struct{})
	var flushers sync.WaitGroup
	flushers.Add(1)
	go func() { // a second storage connection's goroutine making commits durable
		defer flushers.Done()
		for {
			select {
			case <-stopFlushing:
				return
			default:
				b.flushAll()
			}
		}
	}()
	for lsn := 1; lsn <= n; lsn++ {
		publishCommit(b, lsn, val) // in order, as under the volume's lock
		b.flushAll()
		if lsn == n/4 {
			close(startReading) // the socket is full by now
		}
	}
	close(stopFlushing)
	flushers.Wait()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not get every commit")
	}
	direct, deferred := s.writes()
	if direct == 0 || deferred == 0 {
		t.Errorf("writes: %d by flush, %d by the sender: the test did not exercise both", direct, deferred)
	}
	close(closed)
	<-streamDone
	b.unsubscribe(s)
}

// TestStreamDropsReaderTooFarBehind: a reader that reads nothing is dropped once more than
// subscriberMaxBytes wait for it, and its sender ends; the writer's queue stays bounded.
func TestStreamDropsReaderTooFarBehind(t *testing.T) {
	defer func(old int) { subscriberMaxBytes = old }(subscriberMaxBytes)
	subscriberMaxBytes = 1 << 20
	b, s, _ := subscribedReader(t)
	streamDone := startStream(b, s, make(chan struct{}))
	val := bytes.Repeat([]byte("v"), 16<<10)
	for lsn := 1; lsn <= 2000; lsn++ {
		publishCommit(b, lsn, val)
		b.flushAll()
	}
	select {
	case <-s.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("a reader that reads nothing was not dropped")
	}
	select {
	case <-streamDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the dropped reader's sender did not end")
	}
	b.mu.Lock()
	left := len(b.subs)
	b.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d subscribers left after the drop", left)
	}
}

// TestStreamStopsAfterFailedWrite: once a blocking write to a reader fails (here its deadline
// passes while the reader reads nothing), part of a frame may be on the wire, so nothing more
// may follow it: later commits are not written after the cut, and the sender ends.
func TestStreamStopsAfterFailedWrite(t *testing.T) {
	defer func(old time.Duration) { streamWriteTimeout = old }(streamWriteTimeout)
	streamWriteTimeout = 200 * time.Millisecond
	b, s, cli := subscribedReader(t)
	streamDone := startStream(b, s, make(chan struct{}))
	val := bytes.Repeat([]byte("v"), 16<<10)
	lsn := 0
	for {
		lsn++
		publishCommit(b, lsn, val)
		b.flushAll()
		s.mu.Lock()
		broken, writing := s.broken, s.writing
		s.mu.Unlock()
		if broken {
			break
		}
		if writing || lsn%64 == 0 {
			time.Sleep(10 * time.Millisecond) // let the sender's write reach its deadline
		}
		if lsn > 3000 {
			t.Fatal("the sender's write never failed")
		}
	}
	s.mu.Lock()
	cut := s.written
	s.mu.Unlock()
	for k := 1; k <= 50; k++ {
		publishCommit(b, lsn+k, val)
		b.flushAll()
	}
	select {
	case <-streamDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender did not end after its write failed")
	}
	s.mu.Lock()
	after := s.written
	s.mu.Unlock()
	if after != cut {
		t.Fatalf("%d bytes written after the failed write (at %d)", after-cut, cut)
	}
	// The reader gets exactly what was written: whole frames in order, then at most one cut.
	b.unsubscribe(s)
	_ = s.conn.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(cli); err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	if int64(got.Len()) != cut {
		t.Fatalf("reader got %d bytes, writer wrote %d", got.Len(), cut)
	}
	br := bufio.NewReader(&got)
	if ev, err := readEventFrame(br); err != nil || !ev.Reset {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	for next := 1; ; next++ {
		ev, err := readEventFrame(br)
		if err != nil {
			break // the cut
		}
		if len(ev.Commits) != 1 || ev.Commits[0].LSN != uint64(next) {
			t.Fatalf("event %+v where commit %d was due", ev.RP, next)
		}
	}
}

// TestStreamHeartbeats: a heartbeat is queued only when nothing else is on its way, repeats
// the last durable read point queued, and carries the writer's VDL as it is when it is
// written, so a reader behind does not take itself for caught up.
func TestStreamHeartbeats(t *testing.T) {
	b, s, cli := subscribedReader(t)
	br := bufio.NewReader(cli)
	s.flush() // the reset
	if ev, err := readEventFrame(br); err != nil || !ev.Reset {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	publishCommit(b, 1, []byte("a"))
	if !b.heartbeat(s) {
		t.Fatal("heartbeat dropped the reader")
	}
	s.mu.Lock()
	queued := len(s.q)
	s.mu.Unlock()
	if queued != 1 {
		t.Fatalf("%d events queued, want the commit alone (no heartbeat while it waits)", queued)
	}
	s.flush()
	if ev, err := readEventFrame(br); err != nil || len(ev.Commits) != 1 {
		t.Fatalf("got %+v, %v, want commit 1", ev, err)
	}
	if !b.heartbeat(s) { // idle now: queued
		t.Fatal("heartbeat dropped the reader")
	}
	publishCommit(b, 2, []byte("b")) // after the heartbeat, before it is written
	s.flush()
	hb, err := readEventFrame(br)
	if err != nil || !hb.Heartbeat || hb.RP.VDL != 1 || hb.WriterVDL != 2 {
		t.Fatalf("heartbeat %+v, %v: want read point 1 and writer VDL 2", hb, err)
	}
	if ev, err := readEventFrame(br); err != nil || len(ev.Commits) != 1 || ev.Commits[0].LSN != 2 {
		t.Fatalf("got %+v, %v, want commit 2", ev, err)
	}
	// A writer that stops refuses new readers.
	b.closeAll()
	srv2, cli2 := tcpPair(t)
	defer srv2.Close()
	defer cli2.Close()
	if _, _, err := b.subscribe("r2", srv2); err != errWriterStopping {
		t.Fatalf("subscribe after closeAll: %v, want errWriterStopping", err)
	}
}
