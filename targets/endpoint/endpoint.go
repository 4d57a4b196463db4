// Package endpoint is the in-process TCP proxy behind a local target's
// writer and reader DSNs. It stands in for the DNS name or load balancer a
// managed cluster gives its clients: the backend is chosen per connection,
// so after a failover new connections reach the new writer, and DropAll
// forces clients holding old connections to reconnect.
package endpoint

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds the dial to a backend; a dead backend then fails the
// client's connection quickly instead of hanging it.
const DialTimeout = 3 * time.Second

// Proxy accepts client connections on 127.0.0.1 and pipes each to the
// backend that pick returns at accept time.
type Proxy struct {
	ln   net.Listener
	pick func() (addr string, ok bool)
	// ctx ends on Close so that dials in progress give up at once.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
}

// pair is one proxied connection.
type pair struct {
	client, backend net.Conn
	addr            string // backend address
	once            sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.client.Close()
		p.backend.Close()
	})
}

// New listens on 127.0.0.1:0 and starts proxying. pick returns the backend
// for a new connection; ok=false refuses it (the client sees the connection
// closed at once, like a load balancer with no healthy target).
func New(pick func() (addr string, ok bool)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, pick: pick, conns: map[*pair]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary accept errors (EMFILE): back off briefly.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	addr, ok := p.pick()
	if !ok {
		c.Close()
		return
	}
	d := net.Dialer{Timeout: DialTimeout}
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

	// Pipe both ways; when either side ends, close both, so a backend that
	// dies or a dropped connection is seen by the client at once. SQL
	// protocols never half-close, so no half-close handling is needed.
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); pr.close(); done <- struct{}{} }()
	go func() { io.Copy(c, b); pr.close(); done <- struct{}{} }()
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// DropAll closes every proxied connection; clients reconnect through pick.
func (p *Proxy) DropAll() { p.drop(func(*pair) bool { return true }) }

// DropBackend closes the proxied connections to backend addr.
func (p *Proxy) DropBackend(addr string) { p.drop(func(pr *pair) bool { return pr.addr == addr }) }

func (p *Proxy) drop(match func(*pair) bool) {
	p.mu.Lock()
	var victims []*pair
	for pr := range p.conns {
		if match(pr) {
			victims = append(victims, pr)
		}
	}
	p.mu.Unlock()
	for _, pr := range victims {
		pr.close()
	}
}

// Conns is the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, closes every connection and waits for all the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.cancel()
	p.DropAll()
	p.wg.Wait()
	return err
}
