package instance

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// The replica stream: a reader GETs /stream on the writer's admin address, authenticated with
// an HMAC of the cluster secret, and receives newline-delimited JSON events. The first event
// (Reset) carries the writer's current read point only; every later event carries the commits
// the VDL passed since the previous one, in LSN order with no gap, and the read point after
// them. Heartbeats repeat the last read point sent with the writer's current VDL, so a reader
// knows it is caught up. A reader that falls too far behind is dropped and reconnects.

const (
	streamPath      = "/stream"
	authHeader      = "X-Refdb-Auth"
	readerHeader    = "X-Refdb-Reader"
	heartbeatEvery  = 200 * time.Millisecond
	streamIdle      = 3 * time.Second // a reader reconnects after this long without an event
	subscriberQueue = 4096
	authSkew        = 5 * time.Minute
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
type broadcaster struct {
	mu   sync.Mutex
	last volume.ReadPoint
	subs map[*subscriber]struct{}
}

type subscriber struct {
	id        string
	ch        chan event
	dead      chan struct{}
	connected time.Time

	mu       sync.Mutex
	sentVDL  uint64
	lastLag  time.Duration
	lastSent time.Time
}

func newBroadcaster() *broadcaster { return &broadcaster{subs: map[*subscriber]struct{}{}} }

// publish is volume.Config.OnDurable: it runs under the volume's lock and never blocks.
func (b *broadcaster) publish(rp volume.ReadPoint, ds []volume.Durable) {
	ev := event{RP: rp, Ack: time.Now().UnixNano(), Commits: make([]wireCommit, len(ds)), frame: &eventFrame{}}
	for i, d := range ds {
		ev.Commits[i] = newWireCommit(d)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if rp.VDL > b.last.VDL {
		b.last = rp
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default: // too far behind: drop it; it reconnects and jumps to the current VDL
			delete(b.subs, s)
			close(s.dead)
		}
	}
}

// publishProposed is volume.Config.OnProposed in the unsafe read-above-vdl mode: the commit
// goes to readers now, before the VDL passes it. The stream's resume point (b.last) stays the
// durable one.
func (b *broadcaster) publishProposed(rp volume.ReadPoint, d volume.Durable) {
	ev := event{RP: rp, Ack: time.Now().UnixNano(), Commits: []wireCommit{newWireCommit(d)}, Proposed: true, frame: &eventFrame{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			delete(b.subs, s)
			close(s.dead)
		}
	}
}

func (b *broadcaster) init(rp volume.ReadPoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rp.VDL > b.last.VDL || b.last.Need == nil {
		b.last = rp
	}
}

func (b *broadcaster) vdl() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(b.last.VDL)
}

func (b *broadcaster) subscribe(id string) (*subscriber, volume.ReadPoint) {
	s := &subscriber{id: id, ch: make(chan event, subscriberQueue), dead: make(chan struct{}), connected: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s] = struct{}{}
	return s, b.last
}

func (b *broadcaster) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.dead)
	}
}

// closeAll drops every subscriber (the writer stops or is replaced).
func (b *broadcaster) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		delete(b.subs, s)
		close(s.dead)
	}
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
		if len(s.ch) == 0 && time.Since(s.lastSent) > heartbeatEvery {
			lag = 0 // nothing queued: the reader has everything the writer acknowledged
		}
		out = append(out, subStatus{ID: s.id, SentVDL: s.sentVDL, Lag: lag, LastSent: s.lastSent})
		s.mu.Unlock()
	}
	return out
}

// serveStream is GET /stream on the writer.
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
	s, rp := b.subscribe(reader)
	defer b.unsubscribe(s)
	i.log.Info("reader subscribed", "reader", reader, "vdl", rp.VDL)
	defer i.log.Info("reader unsubscribed", "reader", reader)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", streamContentType)
	write := func(ev *event) bool {
		_, err := w.Write(ev.encoded())
		return err == nil
	}
	send := func(ev event) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if !write(&ev) {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
		return true
	}
	last := rp
	note := func(ev event) {
		s.mu.Lock()
		s.sentVDL, s.lastSent = uint64(ev.RP.VDL), time.Now()
		if ev.Ack > 0 {
			s.lastLag = time.Since(time.Unix(0, ev.Ack))
		}
		s.mu.Unlock()
	}
	if !send(event{RP: rp, Reset: true, WriterVDL: uint64(rp.VDL)}) {
		return
	}
	note(event{RP: rp})
	hb := time.NewTicker(heartbeatEvery)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.dead:
			return
		case ev := <-s.ch:
			// Coalesce whatever is queued into one flush.
			n := len(s.ch)
			evs := []event{ev}
			for ; n > 0; n-- {
				evs = append(evs, <-s.ch)
			}
			_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for k := range evs {
				if !write(&evs[k]) {
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
			for _, e := range evs {
				if !e.Proposed { // heartbeats repeat only durable read points
					last = e.RP
				}
			}
			note(evs[len(evs)-1])
		case <-hb.C:
			if !send(event{RP: last, Heartbeat: true, WriterVDL: b.vdl()}) {
				return
			}
		}
	}
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
