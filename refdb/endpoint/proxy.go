package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/handoff"
)

// dialTimeout bounds the dial to a backend, so a dead backend fails the client's connection
// quickly instead of hanging it.
const dialTimeout = 3 * time.Second

// handoffRetry is how long a backend that refused a handoff is relayed to before trying again.
const handoffRetry = time.Second

// proxy accepts client connections and sends each to the backend pick returns at accept time:
// handed off to it (package handoff) when the backend is a refdb instance on this host, else
// relayed byte by byte.
type proxy struct {
	ln   net.Listener
	pick func() (addr string, ok bool)
	// valid reports whether addr is still a right backend: a connection routed just before
	// a role change is dropped once registered, as dropUnless would have dropped it.
	valid  func(addr string) bool
	ctx    context.Context // ends on close, so dials in progress give up
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[*pair]struct{}
	senders map[string]*handoff.Sender // backend address -> its handoff connection
	refused map[string]time.Time       // backend address -> when a handoff to it last failed
	closed  bool
	wg      sync.WaitGroup
}

type pair struct {
	client, backend net.Conn
	addr            string
	once            sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.client.Close()
		p.backend.Close()
	})
}

func newProxy(ln net.Listener, pick func() (string, bool), valid func(string) bool) *proxy {
	p := &proxy{ln: ln, pick: pick, valid: valid, conns: map[*pair]struct{}{}, senders: map[string]*handoff.Sender{},
		refused: map[string]time.Time{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: back off
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) serve(c net.Conn) {
	defer p.wg.Done()
	addr, ok := p.pick()
	if !ok {
		c.Close()
		return
	}
	if tc, isTCP := c.(*net.TCPConn); isTCP && p.handOff(addr, tc) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	b, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		c.Close()
		return
	}
	pr := &pair{client: c, backend: b, addr: addr}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.close()
		return
	}
	p.conns[pr] = struct{}{}
	p.mu.Unlock()
	if !p.valid(addr) {
		pr.close() // the roles changed while it was being set up
	}
	// When either side ends, close both: SQL protocols never half-close, and a client must
	// see a dead or dropped backend at once.
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); pr.close(); done <- struct{}{} }()
	go func() { io.Copy(c, b); pr.close(); done <- struct{}{} }()
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// handOff passes c to the instance at addr and reports whether it did; if not, c is still
// the caller's to relay.
func (p *proxy) handOff(addr string, c *net.TCPConn) bool {
	s := p.sender(addr)
	if s == nil {
		return false
	}
	id, err := s.Send(c)
	if err != nil {
		select {
		case <-s.Done(): // the instance hung up (its connections are shut down already)
			p.mu.Lock()
			if p.senders[addr] == s {
				delete(p.senders, addr)
				p.refused[addr] = time.Now()
			}
			p.mu.Unlock()
			s.Close()
		default:
			// A failure of this one connection (out of descriptors, a full socket buffer):
			// relay it, and leave the others handed off.
		}
		return false
	}
	if !p.valid(addr) {
		s.DropOne(id) // the roles changed while it was being handed off
	}
	return true
}

// sender returns the handoff connection to addr, dialing it if needed; nil means relay.
func (p *proxy) sender(addr string) *handoff.Sender {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if s := p.senders[addr]; s != nil {
		select {
		case <-s.Done(): // the instance hung up; a restarted one listens again
			delete(p.senders, addr)
			s.Close()
		default:
			return s
		}
	}
	if t, ok := p.refused[addr]; ok && time.Since(t) < handoffRetry {
		return nil
	}
	s, err := handoff.Dial(addr) // an abstract Unix socket: fails at once if absent
	if err != nil {
		p.refused[addr] = time.Now()
		return nil
	}
	delete(p.refused, addr)
	p.senders[addr] = s
	return s
}

// dropUnless closes the connections whose backend keep rejects.
func (p *proxy) dropUnless(keep func(addr string) bool) int {
	p.mu.Lock()
	var victims []*pair
	for pr := range p.conns {
		if !keep(pr.addr) {
			victims = append(victims, pr)
		}
	}
	var senders []*handoff.Sender
	for addr, s := range p.senders {
		if !keep(addr) {
			senders = append(senders, s)
			delete(p.senders, addr)
		}
	}
	p.mu.Unlock()
	for _, pr := range victims {
		pr.close()
	}
	n := len(victims)
	for _, s := range senders {
		n += s.Drop()
		s.Close()
	}
	return n
}

func (p *proxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for _, s := range p.senders {
		n += s.Count()
	}
	return n
}

func (p *proxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.cancel()
	p.dropUnless(func(string) bool { return false })
	p.wg.Wait()
}
