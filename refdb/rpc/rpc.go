// Package rpc is the framed, authenticated TCP transport between volume clients and storage
// nodes, and between peer storage nodes. Every connection starts with a challenge-response
// handshake over the cluster secret (HMAC-SHA256), so a client that does not know the secret
// cannot append, truncate or read. Frames are length-prefixed, checksummed redo.Messages; every
// write and the handshake carry deadlines.
package rpc

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

const (
	magic = "REFDB-RPC-1"
	// MaxFrame bounds one message on the wire.
	MaxFrame = 64 << 20
	// HandshakeTimeout bounds the authentication exchange.
	HandshakeTimeout = 5 * time.Second
	// WriteTimeout bounds one write of queued frames.
	WriteTimeout = 10 * time.Second
)

// ErrAuth is returned when the peer does not prove knowledge of the cluster secret.
var ErrAuth = errors.New("rpc: authentication failed")

func mac(secret []byte, role string, nonce []byte, id string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(magic + "|" + role + "|"))
	h.Write(nonce)
	h.Write([]byte("|" + id))
	return h.Sum(nil)
}

// Conn is an authenticated connection.
type Conn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	frame  []byte // write's encoding buffer, reused
	PeerID string
}

// Accept runs the server side of the handshake on c and returns the authenticated peer.
func Accept(c net.Conn, secret []byte) (*Conn, error) {
	_ = c.SetDeadline(time.Now().Add(HandshakeTimeout))
	defer c.SetDeadline(time.Time{})
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("rpc accept: nonce: %w", err)
	}
	if err := redo.WriteFrame(c, append([]byte(magic), nonce...)); err != nil {
		return nil, fmt.Errorf("rpc accept: %w", err)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	b, err := redo.ReadFrame(br, 1024)
	if err != nil {
		return nil, fmt.Errorf("rpc accept: %w", err)
	}
	if len(b) < 33 || int(b[0]) != len(b)-33 {
		_ = redo.WriteFrame(c, []byte("ERR bad hello"))
		return nil, fmt.Errorf("%w: malformed hello from %s", ErrAuth, c.RemoteAddr())
	}
	id := string(b[1 : 1+b[0]])
	if !hmac.Equal(b[1+b[0]:], mac(secret, "client", nonce, id)) {
		_ = redo.WriteFrame(c, []byte("ERR authentication failed"))
		return nil, fmt.Errorf("%w: client %q from %s", ErrAuth, id, c.RemoteAddr())
	}
	if err := redo.WriteFrame(c, []byte("OK")); err != nil {
		return nil, fmt.Errorf("rpc accept: %w", err)
	}
	return &Conn{c: c, br: br, bw: bufio.NewWriterSize(c, 256<<10), PeerID: id}, nil
}

// Dial connects to addr and authenticates as id.
func Dial(ctx context.Context, addr, id string, secret []byte) (*Conn, error) {
	if len(id) > 255 {
		return nil, fmt.Errorf("rpc dial: id of %d bytes", len(id))
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	dl := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.SetDeadline(dl)
	br := bufio.NewReaderSize(c, 64<<10)
	b, err := redo.ReadFrame(br, 1024)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("rpc dial %s: reading challenge: %w", addr, err)
	}
	if len(b) != len(magic)+32 || string(b[:len(magic)]) != magic {
		c.Close()
		return nil, fmt.Errorf("%w: %s sent a malformed challenge", ErrAuth, addr)
	}
	hello := append([]byte{byte(len(id))}, id...)
	hello = append(hello, mac(secret, "client", b[len(magic):], id)...)
	if err := redo.WriteFrame(c, hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	ok, err := redo.ReadFrame(br, 1024)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("rpc dial %s: %w", addr, err)
	}
	if string(ok) != "OK" {
		c.Close()
		return nil, fmt.Errorf("%w: %s answered %q", ErrAuth, addr, ok)
	}
	_ = c.SetDeadline(time.Time{})
	return &Conn{c: c, br: br, bw: bufio.NewWriterSize(c, 256<<10)}, nil
}

// Recv reads the next message. It blocks until one arrives or the connection closes.
func (c *Conn) Recv() (*redo.Message, error) {
	b, err := redo.ReadFrame(c.br, MaxFrame)
	if err != nil {
		return nil, err
	}
	m, err := redo.DecodeMessage(b)
	if err != nil {
		return nil, fmt.Errorf("rpc recv from %s: %w", c.PeerID, err)
	}
	return m, nil
}

// startBatch sets the write deadline for the writes and the flush that follow: once per
// batch rather than per message, as each setting is a runtime timer update.
func (c *Conn) startBatch() { _ = c.c.SetWriteDeadline(time.Now().Add(WriteTimeout)) }

// write buffers one message as a frame, encoded in a buffer the connection reuses; flush
// sends what is buffered.
func (c *Conn) write(m *redo.Message) error {
	c.frame = redo.AppendMessageFrame(c.frame[:0], m)
	_, err := c.bw.Write(c.frame)
	if cap(c.frame) > maxKeptFrame {
		c.frame = nil // one huge message must not pin its buffer for the connection's life
	}
	if err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// maxKeptFrame bounds the encoding buffer a connection keeps between messages.
const maxKeptFrame = 1 << 20

func (c *Conn) flush() error { return c.bw.Flush() }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Outbox is a bounded send queue drained by one goroutine that writes batches and flushes
// when the queue is empty. A full queue drops the message: every sender in this protocol
// retransmits (writers on ticks, gossip by design), so dropping never loses acknowledged data,
// and a slow peer can never block the sender's core.
type Outbox struct {
	ch   chan *redo.Message
	done chan struct{}
}

// NewOutbox starts draining into c; it stops when c fails or Close is called, closing c.
func NewOutbox(c *Conn, size int, log *slog.Logger) *Outbox {
	o := &Outbox{ch: make(chan *redo.Message, size), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		defer c.Close()
		for m := range o.ch {
			if m == nil {
				return
			}
			c.startBatch()
			err := c.write(m)
			for err == nil && len(o.ch) > 0 {
				m = <-o.ch
				if m == nil {
					_ = c.flush()
					return
				}
				err = c.write(m)
			}
			if err == nil {
				err = c.flush()
			}
			if err != nil {
				log.Debug("rpc send failed", "peer", c.PeerID, "err", err)
				return
			}
		}
	}()
	return o
}

// Send queues m, or drops it if the queue is full or the outbox stopped.
func (o *Outbox) Send(m *redo.Message) bool {
	select {
	case <-o.done:
		return false
	default:
	}
	select {
	case o.ch <- m:
		return true
	default:
		return false
	}
}

// Done is closed when the outbox stopped.
func (o *Outbox) Done() <-chan struct{} { return o.done }

// Close stops the outbox after what is queued and waits for it.
func (o *Outbox) Close() {
	select {
	case o.ch <- nil:
	case <-o.done:
	}
	<-o.done
}

// Link is an outbound, self-reconnecting connection: messages to it are queued while it is
// connected and dropped while it is not; every message received is handed to onMsg.
type Link struct {
	addr   string
	id     string
	secret []byte
	onMsg  func(*redo.Message)
	log    *slog.Logger
	mu     sync.Mutex
	out    *Outbox
	conn   *Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewLink starts connecting to addr as id.
func NewLink(ctx context.Context, addr, id string, secret []byte, onMsg func(*redo.Message), log *slog.Logger) *Link {
	ctx, cancel := context.WithCancel(ctx)
	l := &Link{addr: addr, id: id, secret: secret, onMsg: onMsg, log: log, cancel: cancel}
	l.wg.Add(1)
	go l.run(ctx)
	return l
}

func (l *Link) run(ctx context.Context) {
	defer l.wg.Done()
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
		c, err := Dial(dctx, l.addr, l.id, l.secret)
		cancel()
		if err != nil {
			if errors.Is(err, ErrAuth) {
				l.log.Warn("rpc link refused", "addr", l.addr, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 20 * time.Millisecond
		out := NewOutbox(c, 4096, l.log)
		l.mu.Lock()
		l.out, l.conn = out, c
		l.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for {
			m, err := c.Recv()
			if err != nil {
				break
			}
			l.onMsg(m)
		}
		stop()
		c.Close()
		l.mu.Lock()
		l.out, l.conn = nil, nil
		l.mu.Unlock()
		out.Close()
	}
}

// Send queues m if connected.
func (l *Link) Send(m *redo.Message) bool {
	l.mu.Lock()
	out := l.out
	l.mu.Unlock()
	return out != nil && out.Send(m)
}

// Reset drops the current connection, if any, losing what is queued on it; the link then
// reconnects on its own.
func (l *Link) Reset() {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Close stops the link and waits for its goroutines.
func (l *Link) Close() {
	l.cancel()
	l.wg.Wait()
}
