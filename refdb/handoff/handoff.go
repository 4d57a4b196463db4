// Package handoff passes accepted client TCP connections from refdb's endpoint to the
// instance that serves them, on the same host, so the endpoint routes a connection once and
// then steps out of its path.
//
// Aurora's cluster and reader endpoints are DNS names: a client connects straight to the
// instance they name. A local cluster has no DNS to repoint, so refdb's endpoint accepts the
// connection itself; relaying every byte through it afterwards cost as much CPU as the writer
// spent executing sysbench's point selects, and added a hop to every query. Instead the
// endpoint sends the accepted socket over a Unix socket (SCM_RIGHTS) to the instance, which
// serves it as if it had accepted it.
//
// The endpoint keeps its own descriptor of each handed-off socket, which costs nothing while
// idle and keeps the endpoint's contract: on a role change it shuts the socket down
// (shutdown(2) acts on the socket, so the instance and the client both see the end at once),
// and it learns when the instance closes one, and then closes its copy, from a message the
// instance sends back. If the instance dies, its Unix connection ends and the endpoint shuts
// down every socket it had handed to it, as a proxy would have closed them.
//
// The Unix socket is in Linux's abstract namespace, named after the instance's MySQL address
// (Name), so it needs no file and no new configuration, and disappears with the process. An
// instance accepts descriptors only from processes of its own user, and only TCP sockets.
package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Name is the abstract Unix socket name for the instance serving MySQL at addr.
func Name(addr string) string { return "@refdb-handoff/" + addr }

// idLen is the size of every message on a handoff connection: a connection id, sent with the
// descriptor by the endpoint and sent back by the instance when it closes that connection.
const idLen = 8

// Listener accepts MySQL client connections both from a TCP listener and handed off by
// endpoints through the Unix socket Name(tcp.Addr()).
type Listener struct {
	tcp  net.Listener
	unix *net.UnixListener
	log  *slog.Logger

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	senders map[*net.UnixConn]struct{}
}

// Listen wraps tcp: Accept returns its connections and those handed off to it.
func Listen(tcp net.Listener, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: Name(tcp.Addr().String()), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("handoff: listen %s: %w", Name(tcp.Addr().String()), err)
	}
	l := &Listener{tcp: tcp, unix: ul, log: log, conns: make(chan net.Conn, 64), done: make(chan struct{}),
		senders: map[*net.UnixConn]struct{}{}}
	l.wg.Add(2)
	go l.acceptTCP()
	go l.acceptUnix()
	return l, nil
}

// Addr is the TCP address.
func (l *Listener) Addr() net.Addr { return l.tcp.Addr() }

// Accept returns the next connection, accepted over TCP or handed off.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops both listeners and the endpoints' handoff connections; connections already
// accepted stay open (their owner closes them).
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.tcp.Close()
		l.unix.Close()
		l.mu.Lock()
		for u := range l.senders {
			u.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
		for {
			select {
			case c := <-l.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *Listener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// closing reports whether an accept error means the listener is being closed; any other
// error (EMFILE and the like) is waited out briefly, so the accept loop does not spin on it.
func (l *Listener) closing(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	t := time.NewTimer(10 * time.Millisecond)
	defer t.Stop()
	select {
	case <-l.done:
		return true
	case <-t.C:
		return false
	}
}

func (l *Listener) acceptTCP() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			if l.closing(err) {
				return
			}
			l.log.Warn("accept", "err", err)
			continue
		}
		l.deliver(c)
	}
}

func (l *Listener) acceptUnix() {
	defer l.wg.Done()
	for {
		u, err := l.unix.AcceptUnix()
		if err != nil {
			if l.closing(err) {
				return
			}
			continue
		}
		if err := sameUser(u); err != nil {
			l.log.Warn("handoff: refused a connection", "err", err)
			u.Close()
			continue
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			u.Close()
			return
		default:
		}
		l.senders[u] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.receive(u)
	}
}

// receive takes descriptors from one endpoint until it hangs up.
func (l *Listener) receive(u *net.UnixConn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.senders, u)
		l.mu.Unlock()
		u.Close()
	}()
	back := &replier{u: u}
	buf := make([]byte, idLen)
	oob := make([]byte, syscall.CmsgSpace(4))
	for {
		n, oobn, _, _, err := u.ReadMsgUnix(buf, oob)
		if err != nil || n != idLen {
			return // the endpoint is gone (or spoke nonsense): its handed-off sockets stay ours
		}
		id := binary.BigEndian.Uint64(buf)
		fds, err := parseRights(oob[:oobn])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			l.log.Warn("handoff: message without exactly one descriptor", "err", err)
			back.closed(id)
			continue
		}
		c, err := tcpConn(fds[0])
		if err != nil {
			l.log.Warn("handoff: refused a descriptor", "err", err)
			back.closed(id)
			continue
		}
		l.deliver(&handedConn{Conn: c, id: id, back: back})
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		r, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

// tcpConn turns a received descriptor into a connection, refusing anything but a TCP socket.
func tcpConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "handoff")
	defer f.Close() // FileConn has its own duplicate
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("not a socket: %w", err)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		c.Close()
		return nil, fmt.Errorf("not a TCP socket: %T", c)
	}
	return c, nil
}

// replier writes close notices back to one endpoint.
type replier struct {
	mu sync.Mutex
	u  *net.UnixConn
}

func (r *replier) closed(id uint64) {
	var b [idLen]byte
	binary.BigEndian.PutUint64(b[:], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.u.Write(b[:]) // an endpoint that is gone has closed its copies already
}

// handedConn is a connection an endpoint handed off: closing it tells the endpoint, which
// then closes its own descriptor of the socket (the client sees the end only then).
type handedConn struct {
	net.Conn
	id   uint64
	back *replier
	once sync.Once
}

func (c *handedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.back.closed(c.id) })
	return err
}

// sameUser refuses peers running as another user: a descriptor is only taken from a process
// that could have connected to the instance's port itself with the same rights.
func sameUser(u *net.UnixConn) error {
	rc, err := u.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d is not ours (%d)", cred.Uid, os.Getuid())
	}
	return nil
}
