package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/rpc"
)

// ServerConfig configures a storage node process.
type ServerConfig struct {
	ID     string
	AZ     string
	Dir    string
	Listen string
	Secret []byte
	// Tick is the period of background work (gossip, GC).
	Tick time.Duration
	// GCWindow is how many LSNs below the VDL stay readable.
	GCWindow redo.LSN
	// ScrubEvery is how often the log file is re-read to verify every checksum (default 1m).
	ScrubEvery time.Duration
	// PeerAddrs overrides, per peer node id, the address this node dials to reach that peer
	// (otherwise the address the volume's Install gave). A fault injector uses it to give
	// every storage-to-storage link its own proxy.
	PeerAddrs map[string]string
	Logger    *slog.Logger
	// UnsafeNoEpochFencing: see Config.UnsafeNoEpochFencing.
	UnsafeNoEpochFencing bool
	// UnsafeAckBeforeFsync is the unsafe ack-before-fsync mode: messages (acks) go out as soon
	// as a step produced them, and the log entries are written and fsynced lazily, every
	// LazyFlush, so a killed node loses records it acknowledged. It breaks invariant 1 on purpose.
	UnsafeAckBeforeFsync bool
	// LazyFlush is the write period of UnsafeAckBeforeFsync (default 1s).
	LazyFlush time.Duration
}

// Server drives a Node over TCP with a fsynced WAL: one goroutine per connection feeds the
// core, and one group-commit goroutine makes each batch of outputs durable with a single fsync
// before sending the messages those outputs produced.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	ln   net.Listener
	wal  *WAL
	Load LoadReport

	mu      sync.Mutex
	core    *Node
	pending []Output
	kick    chan struct{}

	routeMu sync.Mutex
	inbound map[string]*rpc.Outbox
	links   map[string]*rpc.Link
	conns   map[net.Conn]bool

	faults  faultSet
	stopped chan struct{} // closed when Run is stopping: cuts injected delays short
}

// NewServer opens the data folder, restores the node from its log and listens.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.ID == "" || cfg.Dir == "" || len(cfg.Secret) == 0 {
		return nil, errors.New("storage server: id, data folder and secret are required")
	}
	if cfg.Tick == 0 {
		cfg.Tick = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ScrubEvery == 0 {
		cfg.ScrubEvery = time.Minute
	}
	if cfg.LazyFlush == 0 {
		cfg.LazyFlush = time.Second
	}
	log := cfg.Logger.With("node", cfg.ID)
	wal, entries, rep, err := OpenWAL(cfg.Dir, log)
	if err != nil {
		return nil, fmt.Errorf("storage server %s: %w", cfg.ID, err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		wal.Close()
		return nil, fmt.Errorf("storage server %s: listen: %w", cfg.ID, err)
	}
	core := Restore(Config{ID: cfg.ID, GCWindow: cfg.GCWindow, UnsafeNoEpochFencing: cfg.UnsafeNoEpochFencing}, entries)
	log.Info("storage node restored", "addr", ln.Addr().String(), "entries", rep.Entries, "corrupt", rep.Corrupt,
		"torn_bytes", rep.TornBytes, "segments", len(core.PGs()), "records", core.LiveRecords())
	if rep.Corrupt > 0 {
		// Drop the bad bytes now; the records they held are holes in the chains that gossip
		// refills from peer segments.
		if err := wal.Rewrite(core.Snapshot()); err != nil {
			ln.Close()
			wal.Close()
			return nil, fmt.Errorf("storage server %s: rewriting a corrupt log: %w", cfg.ID, err)
		}
		log.Warn("corrupt log entries dropped; peers will refill them", "corrupt", rep.Corrupt)
	}
	return &Server{cfg: cfg, log: log, ln: ln, wal: wal, Load: rep, core: core, kick: make(chan struct{}, 1),
		inbound: map[string]*rpc.Outbox{}, links: map[string]*rpc.Link{}, conns: map[net.Conn]bool{}, stopped: make(chan struct{})}, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done or the disk fails, then closes every connection and the log.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(3)
	go func() { defer wg.Done(); s.acceptLoop(ctx, &wg) }()
	go func() {
		defer wg.Done()
		if err := s.syncLoop(ctx); err != nil {
			errc <- err
			cancel()
		}
	}()
	go func() { defer wg.Done(); s.tickLoop(ctx) }()
	<-ctx.Done()
	close(s.stopped)
	s.ln.Close()
	s.routeMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	links := s.links
	s.links = map[string]*rpc.Link{}
	s.routeMu.Unlock()
	for _, l := range links {
		l.Close()
	}
	wg.Wait()
	s.routeMu.Lock()
	for _, o := range s.inbound {
		o.Close()
	}
	s.routeMu.Unlock()
	if err := s.wal.Close(); err != nil {
		s.log.Warn("closing wal", "err", err)
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (s *Server) acceptLoop(ctx context.Context, wg *sync.WaitGroup) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("accept", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			return
		}
		s.routeMu.Lock()
		if ctx.Err() != nil {
			s.routeMu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.routeMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c)
			s.routeMu.Lock()
			delete(s.conns, c)
			s.routeMu.Unlock()
		}()
	}
}

func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	c, err := rpc.Accept(nc, s.cfg.Secret)
	if err != nil {
		s.log.Warn("rejected connection", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	out := rpc.NewOutbox(c, 8192, s.log)
	s.routeMu.Lock()
	if old := s.inbound[c.PeerID]; old != nil {
		defer old.Close()
	}
	s.inbound[c.PeerID] = out
	s.routeMu.Unlock()
	defer func() {
		s.routeMu.Lock()
		if s.inbound[c.PeerID] == out {
			delete(s.inbound, c.PeerID)
		}
		s.routeMu.Unlock()
		out.Close()
	}()
	for {
		m, err := c.Recv()
		if err != nil {
			if errors.Is(err, redo.ErrCorrupt) {
				s.log.Warn("bad frame, closing connection", "peer", c.PeerID, "err", err)
			}
			return
		}
		m.From = c.PeerID // the authenticated identity, whatever the frame claims
		if m.Type == redo.MsgFault {
			out.Send(s.handleFault(m))
			continue
		}
		if diskRequest(m.Type) {
			fail, delay := s.faults.decide(m.PG, time.Now())
			if fail {
				if m.Type != redo.MsgGossipResp {
					out.Send(&redo.Message{Type: redo.MsgReject, From: s.cfg.ID, To: m.From, ReqID: m.ReqID, PG: m.PG,
						Code: redo.RejectDiskError, Limit: uint32(m.Type), Err: "injected disk failure"})
				}
				continue
			}
			if delay > 0 {
				// A congested disk serves its queue in order: later requests on this
				// connection wait behind this one.
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.stopped:
					t.Stop()
					return
				}
			}
		}
		if m.Type == redo.MsgRead {
			s.stepRead(m, out)
			continue
		}
		s.step(m)
	}
}

// stepRead answers a read at once instead of after the next group-commit round. A read is
// served from memory at a read point the client's VDL already covers, i.e. from records on a
// write quorum, so its answer does not depend on this node's fsync; waiting for the round
// (up to two fsyncs under write load) only made every storage read as slow as the disk.
func (s *Server) stepRead(m *redo.Message, out *rpc.Outbox) {
	s.mu.Lock()
	o := s.core.Step(m)
	if len(o.Persist) > 0 {
		s.pending = append(s.pending, o)
		s.mu.Unlock()
		s.signal()
		return
	}
	s.mu.Unlock()
	var rest Output
	for _, r := range o.Send {
		if r.To != m.From || !out.Send(r) {
			rest.Send = append(rest.Send, r) // the round routes it (a full or replaced connection)
		}
	}
	if len(rest.Send) > 0 {
		s.mu.Lock()
		s.pending = append(s.pending, rest)
		s.mu.Unlock()
		s.signal()
	}
}

// handleFault applies a fault-injection request and answers with the node's fault state.
// The connection is already authenticated with the cluster secret.
func (s *Server) handleFault(m *redo.Message) *redo.Message {
	r := &redo.Message{Type: redo.MsgFaultResp, From: s.cfg.ID, To: m.From, ReqID: m.ReqID}
	spec, err := redo.DecodeFault(m.Value)
	if err != nil {
		s.log.Warn("bad fault request", "peer", m.From, "err", err)
		return &redo.Message{Type: redo.MsgReject, From: s.cfg.ID, To: m.From, ReqID: m.ReqID, Code: redo.RejectBadRequest,
			Limit: uint32(redo.MsgFault), Err: err.Error()}
	}
	st := s.faults.apply(spec, time.Now())
	if spec.Kind != redo.FaultQuery {
		s.log.Warn("fault injected", "by", m.From, "fault", spec.String(), "active", len(st.Active))
	}
	r.Value = redo.AppendFaultState(nil, &st)
	return r
}

// Faults reports the injected faults still active and the requests they failed or delayed.
func (s *Server) Faults() redo.FaultState { return s.faults.state(time.Now()) }

func (s *Server) step(m *redo.Message) {
	s.mu.Lock()
	out := s.core.Step(m)
	if !out.Empty() {
		s.pending = append(s.pending, out)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Server) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Server) tickLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		out := s.core.Tick()
		if !out.Empty() {
			s.pending = append(s.pending, out)
		}
		s.mu.Unlock()
		s.signal()
	}
}

// syncLoop is the group commit: everything queued since the last round is written and fsynced
// once, then its messages (acks) go out.
func (s *Server) syncLoop(ctx context.Context) error {
	rounds := 0
	scrub := time.NewTicker(s.cfg.ScrubEvery)
	defer scrub.Stop()
	// Unsafe ack-before-fsync: entries wait here, unwritten, while their acks are already out.
	var lazy []redo.Entry
	var lazyTick <-chan time.Time
	if s.cfg.UnsafeAckBeforeFsync {
		t := time.NewTicker(s.cfg.LazyFlush)
		defer t.Stop()
		lazyTick = t.C
	}
	write := func(entries []redo.Entry) error {
		if len(entries) == 0 {
			return nil
		}
		if err := s.wal.Append(entries); err != nil {
			s.log.Error("disk write failed: stopping so no unsynced record is acknowledged", "err", err)
			return fmt.Errorf("storage server %s: %w", s.cfg.ID, err)
		}
		if err := s.wal.Sync(); err != nil {
			s.log.Error("fsync failed: stopping so no unsynced record is acknowledged", "err", err)
			return fmt.Errorf("storage server %s: %w", s.cfg.ID, err)
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return write(lazy) // a clean stop keeps them; a SIGKILL does not
		case <-scrub.C:
			s.scrub()
			continue
		case <-lazyTick:
			err := write(lazy)
			lazy = nil
			if err != nil {
				return err
			}
			continue
		case <-s.kick:
		}
		s.mu.Lock()
		outs := s.pending
		s.pending = nil
		s.mu.Unlock()
		n := 0
		for _, o := range outs {
			n += len(o.Persist)
		}
		entries := make([]redo.Entry, 0, n)
		for _, o := range outs {
			entries = append(entries, o.Persist...)
		}
		if s.cfg.UnsafeAckBeforeFsync {
			lazy = append(lazy, entries...)
		} else if err := write(entries); err != nil {
			return err
		}
		for _, o := range outs {
			for _, m := range o.Send {
				s.route(ctx, m)
			}
		}
		rounds++
		if rounds%256 == 0 {
			s.maybeCompact()
		}
	}
}

// scrub re-reads the log and verifies every checksum. The node's memory holds every record the
// log held (all verified when loaded or received), so a file that rotted on disk is repaired by
// rewriting it from memory.
func (s *Server) scrub() {
	bad, err := s.wal.Verify()
	if err != nil {
		s.log.Warn("scrub: reading the log", "err", err)
		return
	}
	if bad == 0 {
		return
	}
	s.mu.Lock()
	snap := s.core.Snapshot()
	s.mu.Unlock()
	if err := s.wal.Rewrite(snap); err != nil {
		s.log.Error("scrub: repairing the log", "corrupt", bad, "err", err)
		return
	}
	s.log.Warn("scrub: corrupt log entries found and the log rewritten from memory", "corrupt", bad)
}

// maybeCompact rewrites the log from the live state once the log is mostly dead entries.
func (s *Server) maybeCompact() {
	const minSize = 32 << 20
	if s.wal.Size() < minSize {
		return
	}
	// The check runs every few hundred rounds, so it must not build the snapshot: copying
	// every live record (under the lock Step needs) was a third of a node's CPU under load.
	s.mu.Lock()
	if s.wal.Size() < 3*s.core.LiveBytes() {
		s.mu.Unlock()
		return
	}
	snap := s.core.Snapshot()
	s.mu.Unlock()
	before := s.wal.Size()
	if err := s.wal.Rewrite(snap); err != nil {
		s.log.Warn("log compaction failed", "err", err)
		return
	}
	s.log.Info("log compacted", "before_bytes", before, "after_bytes", s.wal.Size())
}

func (s *Server) route(ctx context.Context, m *redo.Message) {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	if o := s.inbound[m.To]; o != nil && o.Send(m) {
		return
	}
	l := s.links[m.To]
	if l == nil {
		s.mu.Lock()
		addr := s.core.PeerAddr(m.To)
		s.mu.Unlock()
		if a := s.cfg.PeerAddrs[m.To]; a != "" && addr != "" {
			addr = a
		}
		if addr == "" || ctx.Err() != nil {
			return
		}
		l = rpc.NewLink(ctx, addr, s.cfg.ID, s.cfg.Secret, s.step, s.log)
		s.links[m.To] = l
	}
	l.Send(m)
}
