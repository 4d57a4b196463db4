package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the dial to a backend, so a dead backend fails the client's connection
// quickly instead of hanging it.
const dialTimeout = 3 * time.Second

// proxy accepts client connections and pipes each to the backend pick returns at accept time.
type proxy struct {
	ln     net.Listener
	pick   func() (addr string, ok bool)
	ctx    context.Context // ends on close, so dials in progress give up
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
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

func newProxy(ln net.Listener, pick func() (string, bool)) *proxy {
	p := &proxy{ln: ln, pick: pick, conns: map[*pair]struct{}{}}
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

// dropUnless closes the connections whose backend keep rejects.
func (p *proxy) dropUnless(keep func(addr string) bool) int {
	p.mu.Lock()
	var victims []*pair
	for pr := range p.conns {
		if !keep(pr.addr) {
			victims = append(victims, pr)
		}
	}
	p.mu.Unlock()
	for _, pr := range victims {
		pr.close()
	}
	return len(victims)
}

func (p *proxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
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
