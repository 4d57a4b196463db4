package instance

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// The replica stream: a reader GETs /stream on the writer's admin address, authenticated with
// an HMAC of the cluster secret, and receives binary events (streamcodec.go) until the
// connection closes. The first event (Reset) carries the writer's current read point only;
// every later event carries the commits the VDL passed since the previous one, in LSN order
// with no gap, and the read point after them. Heartbeats repeat the last read point sent with
// the writer's current VDL, so a reader knows it is caught up. A reader that falls too far
// behind is dropped and reconnects.

const (
	streamPath     = "/stream"
	authHeader     = "X-Refdb-Auth"
	readerHeader   = "X-Refdb-Reader"
	heartbeatEvery = 200 * time.Millisecond
	streamIdle     = 3 * time.Second // a reader reconnects after this long without an event
	authSkew       = 5 * time.Minute
)

type wireCommit struct {
	LSN  uint64
	Keys [][]byte
	// Values: Vals[i] is what Keys[i] was set to, and Dels lists the indexes of keys deleted.
	// A reader keeps the ranges it scanned current from them (engine.Mirror). HasVals tells
	// them apart from a writer that sends keys only.
	Vals    [][]byte
	Dels    []int
	HasVals bool
}

func newWireCommit(d volume.Durable) wireCommit {
	c := wireCommit{LSN: uint64(d.LSN), Keys: d.Keys}
	if len(d.Ops) != len(d.Keys) {
		return c
	}
	c.HasVals = true
	c.Vals = make([][]byte, len(d.Ops))
	for j, op := range d.Ops {
		if op.Delete {
			c.Dels = append(c.Dels, j)
			continue
		}
		c.Vals[j] = op.Value
	}
	return c
}

// writes returns the commit's writes, ok=false when it came without values.
func (c wireCommit) writes() ([]engine.Write, bool) {
	if !c.HasVals || len(c.Vals) != len(c.Keys) {
		return nil, false
	}
	ws := make([]engine.Write, len(c.Keys))
	for j, k := range c.Keys {
		ws[j] = engine.Write{Key: k, Value: c.Vals[j]}
	}
	for _, j := range c.Dels {
		if j < 0 || j >= len(ws) {
			return nil, false
		}
		ws[j].Value, ws[j].Delete = nil, true
	}
	return ws, true
}

type event struct {
	RP        volume.ReadPoint
	Ack       int64 // unix ns when the VDL passed these commits
	Commits   []wireCommit
	Reset     bool
	Heartbeat bool
	WriterVDL uint64
	// Proposed marks a commit sent before it is durable (its read point is above the VDL).
	// Only a writer in the unsafe read-above-vdl mode sends them; a safe reader ignores them.
	Proposed bool
	// frame is the event's encoding, shared by every subscriber it was published to, so that
	// a writer with several readers encodes each event once.
	frame *eventFrame
}

type eventFrame struct {
	once sync.Once
	b    []byte
}

// encoded returns the event as one stream frame (encoded once if it was published).
func (e *event) encoded() []byte {
	if e.frame == nil {
		return appendEventFrame(nil, e)
	}
	e.frame.once.Do(func() { e.frame.b = appendEventFrame(nil, e) })
	return e.frame.b
}

func streamAuth(secret []byte, reader string, ts int64) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "refdb-stream\x00%s\x00%d", reader, ts)
	return strconv.FormatInt(ts, 10) + "." + hex.EncodeToString(m.Sum(nil))
}

func checkStreamAuth(secret []byte, reader, h string) bool {
	tsStr, _, ok := strings.Cut(h, ".")
	if !ok {
		return false
	}
	ts, err := strconv.ParseInt(tsStr, 10, 64)
	if err != nil {
		return false
	}
	if d := time.Since(time.Unix(0, ts)); d > authSkew || d < -authSkew {
		return false
	}
	return hmac.Equal([]byte(streamAuth(secret, reader, ts)), []byte(h))
}

// broadcaster fans the writer volume's durable commits out to subscribed readers.
//
// A commit's way to a reader is on the reader's lag, so it takes no goroutine hand-off when it
// can avoid one: publish (under the volume's lock) only queues the event, and the goroutine
// that made the commits durable then writes the queued frames to each reader's socket itself,
// without blocking (flush, from volume.Config.AfterDurable), once it has let the lock go. Measured
// on 2 cores under the heaviest write load, the time from durable to a sender goroutine writing
// the frame was p50 0.27 ms but p99 2.9 ms: the sender waited behind the writer's other
// goroutines and, at nice 0, behind the storage nodes for a CPU. Only what a socket does not
// take at once (a slow reader) is left to the subscriber's own goroutine, which writes it with a
// blocking write; events are queued and written in one order whoever writes them.
type broadcaster struct {
	mu     sync.Mutex
	last   volume.ReadPoint
	closed bool // closeAll ran: the writer stops, and takes no new readers
	subs   map[*subscriber]struct{}
	list   atomic.Pointer[[]*subscriber] // subs, for flushAll without the lock
	// vdl is last.VDL for heartbeats encoded outside b.mu: the writer's VDL when one is sent.
	vdl atomic.Uint64
}

// A reader further behind than this is dropped; it reconnects and resumes from storage. A
// reader that takes nothing for streamWriteTimeout while the writer has frames for it is cut.
// Variables for the tests.
var (
	streamWriteTimeout  = 5 * time.Second
	subscriberMaxEvents = 4096
	subscriberMaxBytes  = 64 << 20
)

type subscriber struct {
	id        string
	conn      net.Conn
	raw       syscall.RawConn
	writerVDL *atomic.Uint64 // the broadcaster's vdl
	kick      chan struct{}  // cap 1: the sender has bytes to write
	dead      chan struct{}

	mu       sync.Mutex
	gone     bool             // dropped: dead is closed
	broken   bool             // a write failed: the stream may end inside a frame, nothing more is written
	q        []*event         // queued, not yet encoded into pend
	pend     []byte           // encoded frames not yet written, in order
	writing  bool             // the sender is writing bytes it took from pend: flush leaves the socket alone
	inflight int              // how many bytes that is
	qDurable volume.ReadPoint // the last durable read point queued: what heartbeats repeat
	// Stream offsets in bytes: encoded and written so far, and where each durable event's frame
	// ends, so that status follows what has really been written.
	encoded, written int64
	marks            []sentMark
	// What the reader has been sent, for status.
	sentVDL  uint64
	lastLag  time.Duration
	lastSent time.Time
	// Writes to the socket by flush (the volume's goroutine) and by the sender goroutine: the
	// second should be rare, a reader whose socket was full.
	direct, deferred int64
}

type sentMark struct {
	end int64
	vdl uint64
	ack int64
}

// writes returns the counts of the socket writes made by flush and by the sender.
func (s *subscriber) writes() (direct, deferred int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.direct, s.deferred
}

func newBroadcaster() *broadcaster { return &broadcaster{subs: map[*subscriber]struct{}{}} }

// publish is volume.Config.OnDurable: it runs under the volume's lock and never blocks (it may
// wait for a subscriber's lock across one non-blocking write, see flush); the events go out at
// flushAll.
func (b *broadcaster) publish(rp volume.ReadPoint, ds []volume.Durable) {
	ev := &event{RP: rp, Ack: time.Now().UnixNano(), Commits: make([]wireCommit, len(ds)), frame: &eventFrame{}}
	for i, d := range ds {
		ev.Commits[i] = newWireCommit(d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if rp.VDL > b.last.VDL {
		b.last = rp
		b.vdl.Store(uint64(rp.VDL))
	}
	for s := range b.subs {
		if !s.enqueue(ev) {
			b.dropLocked(s)
		}
	}
}

// publishProposed is volume.Config.OnProposed in the unsafe read-above-vdl mode: the commit
// goes to readers now, before the VDL passes it. The stream's resume point (b.last) stays the
// durable one.
func (b *broadcaster) publishProposed(rp volume.ReadPoint, d volume.Durable) {
	ev := &event{RP: rp, Ack: time.Now().UnixNano(), Commits: []wireCommit{newWireCommit(d)}, Proposed: true, frame: &eventFrame{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !s.enqueue(ev) {
			b.dropLocked(s)
		} else {
			s.wake() // no AfterDurable follows a proposal
		}
	}
}

// flushAll is volume.Config.AfterDurable: the goroutine that made commits durable writes what
// publish queued to every reader's socket, as far as each takes it without blocking.
func (b *broadcaster) flushAll() {
	if l := b.list.Load(); l != nil {
		for _, s := range *l {
			s.flush()
		}
	}
}

func (b *broadcaster) init(rp volume.ReadPoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rp.VDL > b.last.VDL || b.last.Need == nil {
		b.last = rp
		b.vdl.Store(uint64(rp.VDL))
	}
}

// errWriterStopping: a reader asked for the stream of a writer that is stopping.
var errWriterStopping = errors.New("the writer is stopping")

// subscribe adds a reader whose stream is conn: its first event is a reset to the current
// read point, queued before any commit published after it.
func (b *broadcaster) subscribe(id string, conn net.Conn) (*subscriber, volume.ReadPoint, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, volume.ReadPoint{}, fmt.Errorf("stream connection %T has no file descriptor", conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, volume.ReadPoint{}, fmt.Errorf("stream connection: %w", err)
	}
	s := &subscriber{id: id, conn: conn, raw: raw, writerVDL: &b.vdl, kick: make(chan struct{}, 1),
		dead: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, volume.ReadPoint{}, errWriterStopping
	}
	rp := b.last
	s.enqueue(&event{RP: rp, Reset: true, WriterVDL: uint64(rp.VDL)})
	b.subs[s] = struct{}{}
	b.relistLocked()
	return s, rp, nil
}

func (b *broadcaster) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		b.dropLocked(s)
	}
}

// dropLocked removes s (too far behind, gone, or the writer stops); its sender ends.
func (b *broadcaster) dropLocked(s *subscriber) {
	delete(b.subs, s)
	b.relistLocked()
	s.mu.Lock()
	if !s.gone {
		s.gone = true
		close(s.dead)
		// A sender blocked writing to a reader that reads nothing returns now rather than at its
		// write deadline, and so does the goroutine reading the connection. (Not Close: it waits
		// for those calls to return, and this may run under the volume's lock.)
		_ = s.conn.SetDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
}

func (b *broadcaster) relistLocked() {
	l := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		l = append(l, s)
	}
	b.list.Store(&l)
}

// closeAll drops every subscriber and refuses new ones (the writer stops or is replaced).
func (b *broadcaster) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.dropLocked(s)
	}
}

// enqueue queues ev for s; false when s is too far behind (or gone) and must be dropped.
func (s *subscriber) enqueue(ev *event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || len(s.q) >= subscriberMaxEvents || len(s.pend)+s.inflight > subscriberMaxBytes {
		return false
	}
	s.q = append(s.q, ev)
	if !ev.Proposed {
		s.qDurable = ev.RP
	}
	return true
}

// busyLocked reports whether s has anything queued or being written.
func (s *subscriber) busyLocked() bool { return len(s.q) > 0 || len(s.pend) > 0 || s.writing }

// wake asks the sender goroutine to write what is queued.
func (s *subscriber) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// flush encodes the queued events and writes as much as the socket takes without blocking;
// what a full socket leaves goes to the sender goroutine. It writes under s.mu: a publish (under
// the volume's lock) may wait for that one non-blocking write, which is the cheaper choice. With
// the write outside the lock, a second flush finding the first one writing had to leave its
// events to it, and the readers' own lag p99 rose from 1.0-1.3 to 1.4-1.8 ms in four alternating
// 20 s lag runs.
func (s *subscriber) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.broken {
		return
	}
	s.encodeLocked()
	if s.writing || len(s.pend) == 0 {
		return // the sender is writing: it writes the rest when it is done
	}
	n := 0
	var werr error
	if err := s.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), s.pend)
		return true // never wait for room: that is the sender's job
	}); err != nil {
		werr = err
	}
	if n > 0 {
		s.direct++
		s.pend = s.pend[n:]
		if len(s.pend) == 0 {
			s.pend = nil
		}
		s.wroteLocked(n)
	}
	if werr != nil && !errors.Is(werr, syscall.EAGAIN) {
		s.broken = true // the sender sees it and ends the stream
		s.wake()
		return
	}
	if len(s.pend) > 0 {
		s.wake() // the socket is full: the sender waits for room
	}
}

// wroteLocked records n more bytes of the stream written, and notes for status the last
// durable event whose frame is now wholly written.
func (s *subscriber) wroteLocked(n int) {
	s.written += int64(n)
	k := 0
	for k < len(s.marks) && s.marks[k].end <= s.written {
		k++
	}
	if k > 0 {
		m := s.marks[k-1]
		s.sentVDL, s.lastSent = m.vdl, time.Now()
		if m.ack > 0 {
			s.lastLag = time.Since(time.Unix(0, m.ack))
		}
		s.marks = append(s.marks[:0], s.marks[k:]...)
	}
}

// encodeLocked moves the queued events into pend as frames. A heartbeat carries the writer's
// VDL as it is now, not when it was queued, so a reader behind does not take itself for
// caught up.
func (s *subscriber) encodeLocked() {
	for i, ev := range s.q {
		before := len(s.pend)
		if ev.Heartbeat {
			hb := *ev
			hb.WriterVDL = max(hb.WriterVDL, s.writerVDL.Load())
			s.pend = appendEventFrame(s.pend, &hb)
		} else {
			s.pend = append(s.pend, ev.encoded()...)
		}
		s.encoded += int64(len(s.pend) - before)
		if !ev.Heartbeat && !ev.Proposed {
			s.marks = append(s.marks, sentMark{end: s.encoded, vdl: uint64(ev.RP.VDL), ack: ev.Ack})
		}
		s.q[i] = nil
	}
	s.q = s.q[:0]
}

// sendPending is the sender goroutine's blocking write of what flush left. An error ends the
// stream: the reader may have part of a frame, so nothing may follow it.
func (s *subscriber) sendPending() error {
	s.mu.Lock()
	if s.gone || s.broken {
		s.mu.Unlock()
		return errors.New("stream dropped or broken")
	}
	s.encodeLocked()
	if s.writing || len(s.pend) == 0 {
		s.mu.Unlock()
		return nil // flush is writing: it finishes, or wakes us again
	}
	buf := s.pend
	s.pend = nil
	s.writing, s.inflight = true, len(buf)
	s.mu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	n, err := s.conn.Write(buf)
	// The non-blocking writes of flush must not meet a deadline that has passed.
	_ = s.conn.SetWriteDeadline(time.Time{})
	s.mu.Lock()
	s.writing, s.inflight = false, 0
	s.wroteLocked(n)
	if err != nil {
		s.broken = true
		s.mu.Unlock()
		return err
	}
	s.deferred++
	more := s.busyLocked()
	s.mu.Unlock()
	if more {
		s.wake()
	}
	return nil
}

type subStatus struct {
	ID       string
	SentVDL  uint64
	Lag      time.Duration
	LastSent time.Time
}

func (b *broadcaster) status() []subStatus {
	b.mu.Lock()
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	out := make([]subStatus, 0, len(subs))
	for _, s := range subs {
		s.mu.Lock()
		lag := s.lastLag
		if !s.busyLocked() && time.Since(s.lastSent) > heartbeatEvery {
			lag = 0 // nothing queued: the reader has everything the writer acknowledged
		}
		out = append(out, subStatus{ID: s.id, SentVDL: s.sentVDL, Lag: lag, LastSent: s.lastSent})
		s.mu.Unlock()
	}
	return out
}

// streamResponseHeader opens the stream: the body runs until the connection closes (no
// chunking, which would cost a write per chunk header), so the reader's client reads it as is.
const streamResponseHeader = "HTTP/1.1 200 OK\r\nContent-Type: " + streamContentType + "\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"

// serveStream is GET /stream on the writer. It takes the connection over from the HTTP server,
// so that the volume's goroutine can write frames to its socket directly (flush).
func (i *Instance) serveStream(w http.ResponseWriter, r *http.Request) {
	reader := r.Header.Get(readerHeader)
	if !checkStreamAuth(i.cfg.Secret, reader, r.Header.Get(authHeader)) {
		http.Error(w, "stream: authentication failed", http.StatusUnauthorized)
		return
	}
	i.mu.Lock()
	b := i.bc
	i.mu.Unlock()
	if b == nil {
		http.Error(w, "stream: this instance is not the writer", http.StatusServiceUnavailable)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "stream: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, streamResponseHeader); err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s, rp, err := b.subscribe(reader, conn)
	if errors.Is(err, errWriterStopping) {
		return // the reader sees the stream end and looks for the next writer
	}
	if err != nil {
		i.log.Error("reader stream", "reader", reader, "err", err)
		return
	}
	i.log.Info("reader subscribed", "reader", reader, "vdl", rp.VDL)
	// The reader sends nothing after its request: a read that returns means it went away.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn)
	}()
	defer func() {
		b.unsubscribe(s)
		_ = conn.Close() // ends the reading goroutine
		<-closed
		direct, deferred := s.writes()
		i.log.Info("reader unsubscribed", "reader", reader, "direct_writes", direct, "sender_writes", deferred)
	}()
	b.stream(s, closed)
}

// stream is a subscriber's own goroutine: it sends the reset queued at subscribe, heartbeats,
// and whatever flush left unwritten, until the reader goes (closed), s is dropped, or a write
// fails.
func (b *broadcaster) stream(s *subscriber, closed <-chan struct{}) {
	s.flush()
	hb := time.NewTicker(heartbeatEvery)
	defer hb.Stop()
	for {
		select {
		case <-closed:
			return
		case <-s.dead:
			return
		case <-s.kick:
			if s.sendPending() != nil {
				return
			}
		case <-hb.C:
			if !b.heartbeat(s) {
				return
			}
			s.flush()
		}
	}
}

// heartbeat queues a heartbeat for s: the last durable read point queued to it, with the
// writer's VDL, so an idle reader knows it has everything. Under b.mu, so that no commit is
// queued between reading the read point and queueing the heartbeat.
func (b *broadcaster) heartbeat(s *subscriber) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; !ok {
		return false
	}
	s.mu.Lock()
	rp, busy := s.qDurable, s.busyLocked()
	s.mu.Unlock()
	if busy {
		return true // commits are on their way: they say more than a heartbeat would
	}
	if !s.enqueue(&event{RP: rp, Heartbeat: true, WriterVDL: uint64(b.last.VDL)}) {
		b.dropLocked(s)
		return false
	}
	return true
}

// errNotWriter: the instance asked for the stream is not (or no longer) the writer.
var errNotWriter = errors.New("not the writer")

// follow streams from the writer at admin until the stream breaks or ctx ends.
func (i *Instance) follow(ctx context.Context, admin string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+streamPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set(readerHeader, i.cfg.ID)
	req.Header.Set(authHeader, streamAuth(i.cfg.Secret, i.cfg.ID, time.Now().UnixNano()))
	resp, err := streamClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream from %s: %s: %w", admin, resp.Status, errNotWriter)
	}
	if ct := resp.Header.Get("Content-Type"); ct != streamContentType {
		return fmt.Errorf("stream from %s: content type %q, want %q (a writer of another refdb version?)", admin, ct, streamContentType)
	}
	idle := time.AfterFunc(streamIdle, cancel)
	defer idle.Stop()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for first := true; ; first = false {
		ev, err := readEventFrame(br)
		if err != nil {
			if ctx.Err() != nil && !idle.Stop() {
				return fmt.Errorf("stream from %s: no event for %s", admin, streamIdle)
			}
			return fmt.Errorf("stream from %s: %w", admin, err)
		}
		idle.Reset(streamIdle)
		if first && !ev.Reset {
			return fmt.Errorf("stream from %s: first event is not a reset", admin)
		}
		i.apply(ctx, ev, admin)
	}
}

var streamClient = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 5 * time.Second, DisableKeepAlives: true}}
