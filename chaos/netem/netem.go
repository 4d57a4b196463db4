// Package netem emulates network faults between the processes of a local target without
// root: every inter-node connection goes through a per-link TCP proxy on 127.0.0.1 that a
// Network owns, and faults act on those proxies.
//
// A link is one direction of connection set-up: the process From dials To through the
// link's listen address instead of To's own address (Network.Link hands that address out,
// and the target writes it into From's command line or replication settings). A link is
// stable for the Network's life, so a restarted process dials the same proxy again.
//
// Faults act on the links a predicate selects:
//
//   - Cut(pred, Drop) stalls them, as an iptables DROP rule would: existing connections stop
//     forwarding in both directions (bytes stay queued in the proxy and kernel buffers, so
//     senders block), and new connections are accepted but held without dialing the far
//     side. Heal resumes both: queued bytes are delivered late, held connections are then
//     connected, as TCP retransmission would after the partition ends.
//   - Cut(pred, Reset) resets them, as iptables REJECT --reject-with tcp-reset would:
//     existing connections are closed with RST (SO_LINGER 0) and new ones are reset right
//     after accept, until Heal.
//   - Slow(pred, delay, jitter) delays every chunk of bytes by delay ± jitter (uniform),
//     keeping the byte order (a later chunk is never delivered before an earlier one), in
//     both directions; bandwidth is not limited.
//   - Heal restores every link.
//
// Every connection costs a fixed number of goroutines (five) and at most queueChunks
// buffers per direction; Close ends them all and waits for them.
package netem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"time"
)

// Mode says how a cut link treats connections.
type Mode int

const (
	// Drop stalls existing connections and holds new ones until Heal (iptables DROP).
	Drop Mode = iota + 1
	// Reset closes existing connections with RST and resets new ones until Heal
	// (iptables REJECT with tcp-reset).
	Reset
)

func (m Mode) String() string {
	switch m {
	case Drop:
		return "drop"
	case Reset:
		return "reset"
	}
	return "ok"
}

// ParseMode parses "drop" or "reset".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "drop":
		return Drop, nil
	case "reset":
		return Reset, nil
	}
	return 0, fmt.Errorf("partition mode %q: want drop or reset", s)
}

// DialTimeout bounds a proxy's dial to the far side of a link.
const DialTimeout = 3 * time.Second

const (
	chunkSize   = 32 << 10
	queueChunks = 16
)

// NodeRef names one end of a link.
type NodeRef struct {
	ID, AZ string
}

// LinkInfo describes a link.
type LinkInfo struct {
	From, To NodeRef
	Addr     string // the proxy's listen address, dialed by From
	Upstream string // To's own address
}

// String is "from->to".
func (l LinkInfo) String() string { return l.From.ID + "->" + l.To.ID }

// Pred selects links by their ends.
type Pred func(from, to NodeRef) bool

// Network owns the link proxies of one target run.
type Network struct {
	log    *slog.Logger
	ctx    context.Context // ends on Close: wakes every waiting goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	links  []*link
	byKey  map[string]*link
	closed bool
}

// New returns an empty network. log may be nil.
func New(log *slog.Logger) *Network {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Network{log: log, byKey: map[string]*link{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// ErrClosed is returned by Link after Close.
var ErrClosed = errors.New("netem: network closed")

// Link returns the address From must dial to reach To at upstream through its own proxy,
// starting the proxy on a free 127.0.0.1 port the first time; the same (from, to,
// upstream) always gets the same address.
func (n *Network) Link(from, to NodeRef, upstream string) (string, error) {
	key := from.ID + "\x00" + to.ID + "\x00" + upstream
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", ErrClosed
	}
	if l := n.byKey[key]; l != nil {
		return l.info.Addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("netem: listening for link %s->%s: %w", from.ID, to.ID, err)
	}
	l := &link{net: n, ln: ln, info: LinkInfo{From: from, To: to, Addr: ln.Addr().String(), Upstream: upstream},
		change: make(chan struct{}), conns: map[*pconn]struct{}{}}
	n.links = append(n.links, l)
	n.byKey[key] = l
	n.wg.Add(1)
	go l.accept()
	n.log.Debug("link", "from", from.ID, "to", to.ID, "addr", l.info.Addr, "upstream", upstream)
	return l.info.Addr, nil
}

// Links lists every link, sorted by from and to.
func (n *Network) Links() []LinkInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkInfo, 0, len(n.links))
	for _, l := range n.links {
		out = append(out, l.info)
	}
	sortInfos(out)
	return out
}

func sortInfos(ls []LinkInfo) {
	sort.Slice(ls, func(i, j int) bool {
		if ls[i].From.ID != ls[j].From.ID {
			return ls[i].From.ID < ls[j].From.ID
		}
		if ls[i].To.ID != ls[j].To.ID {
			return ls[i].To.ID < ls[j].To.ID
		}
		return ls[i].Upstream < ls[j].Upstream
	})
}

func (n *Network) matching(pred Pred) []*link {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*link
	for _, l := range n.links {
		if pred(l.info.From, l.info.To) {
			out = append(out, l)
		}
	}
	return out
}

func infos(ls []*link) []LinkInfo {
	out := make([]LinkInfo, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.info)
	}
	sortInfos(out)
	return out
}

// Cut cuts the links pred selects (see Drop and Reset) and returns them.
func (n *Network) Cut(pred Pred, mode Mode) []LinkInfo {
	ls := n.matching(pred)
	for _, l := range ls {
		l.set(func(s *state) { s.mode = mode })
		if mode == Reset {
			l.resetAll()
		}
	}
	return infos(ls)
}

// Slow adds delay ± jitter to every chunk of bytes on the links pred selects and returns
// them.
func (n *Network) Slow(pred Pred, delay, jitter time.Duration) []LinkInfo {
	ls := n.matching(pred)
	for _, l := range ls {
		l.set(func(s *state) { s.delay, s.jitter = delay, jitter })
	}
	return infos(ls)
}

// Heal restores every link: stalled and held connections resume, delays end.
func (n *Network) Heal() {
	for _, l := range n.matching(func(NodeRef, NodeRef) bool { return true }) {
		l.set(func(s *state) { *s = state{} })
	}
}

// Close stops every proxy, closes every connection and waits for the network's goroutines
// until ctx ends.
func (n *Network) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ls := append([]*link(nil), n.links...)
	n.mu.Unlock()
	n.cancel()
	for _, l := range ls {
		l.ln.Close()
		l.closeAll()
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("netem: closing the network: %w", ctx.Err())
	}
}

// state of a link.
type state struct {
	mode          Mode // 0: forwarding
	delay, jitter time.Duration
}

type link struct {
	net  *Network
	info LinkInfo
	ln   net.Listener

	mu     sync.Mutex
	st     state
	change chan struct{} // closed (and replaced) on every state change
	conns  map[*pconn]struct{}
}

func (l *link) set(f func(*state)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.st)
	close(l.change)
	l.change = make(chan struct{})
}

func (l *link) state() (state, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st, l.change
}

// sample is a delay for a chunk read now.
func (s state) sample() time.Duration {
	d := s.delay
	if s.jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*s.jitter)+1)) - s.jitter
	}
	return max(d, 0)
}

// waitOpen blocks while the link is cut in Drop mode. It returns the link's mode once it is
// not (0 or Reset), or an error when the network closes.
func (l *link) waitOpen(ctx context.Context) (Mode, error) {
	for {
		st, ch := l.state()
		if st.mode != Drop {
			return st.mode, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (l *link) accept() {
	defer l.net.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A temporary error (EMFILE): back off briefly.
			select {
			case <-l.net.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		pc := &pconn{client: c}
		l.mu.Lock()
		l.net.mu.Lock()
		closed := l.net.closed
		l.net.mu.Unlock()
		if closed {
			l.mu.Unlock()
			reset(c)
			continue
		}
		l.conns[pc] = struct{}{}
		l.mu.Unlock()
		l.net.wg.Add(1)
		go l.serve(pc)
	}
}

func (l *link) resetAll() { l.closeConns(true) }

func (l *link) closeAll() { l.closeConns(false) }

// closeConns closes every connection through the link, with a TCP reset when reset is set.
func (l *link) closeConns(reset bool) {
	l.mu.Lock()
	victims := make([]*pconn, 0, len(l.conns))
	for pc := range l.conns {
		victims = append(victims, pc)
	}
	l.mu.Unlock()
	for _, pc := range victims {
		pc.close(reset)
	}
}

// pconn is one proxied connection.
type pconn struct {
	client net.Conn
	mu     sync.Mutex
	up     net.Conn // nil until dialed
	closed bool
}

// setUp records the dialed far side; false if the connection was closed meanwhile.
func (pc *pconn) setUp(up net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return false
	}
	pc.up = up
	return true
}

// close closes both sides, with RST when rst is set. Blocked reads and writes return.
func (pc *pconn) close(rst bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return
	}
	pc.closed = true
	for _, c := range []net.Conn{pc.client, pc.up} {
		if c == nil {
			continue
		}
		if rst {
			reset(c)
		} else {
			c.Close()
		}
	}
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (l *link) serve(pc *pconn) {
	defer l.net.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, pc)
		l.mu.Unlock()
	}()
	ctx := l.net.ctx
	// A new connection on a dropping link is held, undialed, until the link heals.
	mode, err := l.waitOpen(ctx)
	if err != nil || mode == Reset {
		pc.close(true)
		return
	}
	d := net.Dialer{Timeout: DialTimeout}
	up, err := d.DialContext(ctx, "tcp", l.info.Upstream)
	if err != nil {
		// The far side refuses: so does the proxy.
		pc.close(true)
		return
	}
	if !pc.setUp(up) {
		up.Close()
		return
	}
	// Either direction ending (EOF, error, a reset) ends the connection: SQL protocols and
	// the refdb RPC never half-close.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(ctx, pc, pc.client, up); pc.close(false) }()
	go func() { defer wg.Done(); l.pipe(ctx, pc, up, pc.client); pc.close(false) }()
	wg.Wait()
}

type chunk struct {
	buf *[]byte // from bufs; the bytes are (*buf)[:n]
	n   int
	due time.Time
}

// bufs recycles chunk buffers: every read would otherwise allocate one.
var bufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pipe copies src to dst through a delay line: a reader goroutine stamps each chunk with
// its delivery time and queues it (bounded); this goroutine delivers it once due and the
// link is not dropping. It returns when src ends, a write fails, the connection is reset
// or the network closes; the reader goroutine has ended by then.
func (l *link) pipe(ctx context.Context, pc *pconn, src, dst net.Conn) {
	q := make(chan chunk, queueChunks)
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		defer close(q)
		var last time.Time
		for {
			buf := bufs.Get().(*[]byte)
			k, err := src.Read(*buf)
			if k == 0 {
				bufs.Put(buf)
			}
			if k > 0 {
				st, _ := l.state()
				due := time.Now().Add(st.sample())
				if due.Before(last) {
					due = last
				}
				last = due
				select {
				case q <- chunk{buf: buf, n: k, due: due}:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		// The reader may be blocked in Read: closing the connection ends it.
		pc.close(false)
		rwg.Wait()
	}()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		mode, err := l.waitOpen(ctx)
		if err != nil {
			return
		}
		if mode == Reset {
			pc.close(true)
			return
		}
		_, err = dst.Write((*c.buf)[:c.n])
		bufs.Put(c.buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				l.net.log.Debug("link write", "link", l.info.String(), "err", err)
			}
			return
		}
	}
}
