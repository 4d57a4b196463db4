// Package endpoint is refdb's writer and reader endpoints: TCP proxies that follow the roles
// the control plane publishes, agnostic of the MySQL protocol they carry.
//
// The writer endpoint sends each new connection to the current writer and, when the writer
// changes, drops the connections to the old one so clients reconnect to the new writer. The
// reader endpoint spreads new connections round-robin over healthy readers and falls back to
// the writer when there is none.
//
// Roles come from the control plane's GET /status?wait=VERSION long poll, so a change is seen
// as soon as control publishes it. While control is unreachable the endpoint keeps the last
// roles it learned and retries: the cluster keeps serving.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// Config of the endpoints.
type Config struct {
	WriterListen string // e.g. 127.0.0.1:3406
	ReaderListen string // e.g. 127.0.0.1:3407
	Control      string // control plane URL, e.g. http://127.0.0.1:3480
	Log          *slog.Logger
}

// Endpoint is a started pair of endpoints.
type Endpoint struct {
	cfg            Config
	log            *slog.Logger
	writer, reader *proxy
	hc             *http.Client

	mu      sync.Mutex
	version uint64
	known   bool     // a topology has been learned
	wAddr   string   // current writer's MySQL address
	rAddrs  []string // healthy readers' MySQL addresses
	allR    map[string]bool
	next    int // round-robin position
}

// Listen binds both endpoints; they refuse connections until roles are learned.
func Listen(cfg Config) (*Endpoint, error) {
	if cfg.Control == "" {
		return nil, errors.New("endpoint: control plane URL is required")
	}
	if !strings.Contains(cfg.Control, "://") {
		cfg.Control = "http://" + cfg.Control
	}
	cfg.Control = strings.TrimRight(cfg.Control, "/")
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wl, err := net.Listen("tcp", cfg.WriterListen)
	if err != nil {
		return nil, fmt.Errorf("writer endpoint: %w", err)
	}
	rl, err := net.Listen("tcp", cfg.ReaderListen)
	if err != nil {
		wl.Close()
		return nil, fmt.Errorf("reader endpoint: %w", err)
	}
	e := &Endpoint{cfg: cfg, log: log, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	e.writer = newProxy(wl, e.pickWriter, e.validWriter)
	e.reader = newProxy(rl, e.pickReader, e.validReader)
	return e, nil
}

// WriterAddr and ReaderAddr are the bound addresses.
func (e *Endpoint) WriterAddr() string { return e.writer.ln.Addr().String() }
func (e *Endpoint) ReaderAddr() string { return e.reader.ln.Addr().String() }

// Conns is the number of open connections through the writer and reader endpoints.
func (e *Endpoint) Conns() (writer, reader int) { return e.writer.count(), e.reader.count() }

func (e *Endpoint) pickWriter() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wAddr, e.wAddr != ""
}

func (e *Endpoint) pickReader() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rAddrs) == 0 {
		return e.wAddr, e.wAddr != ""
	}
	a := e.rAddrs[e.next%len(e.rAddrs)]
	e.next++
	return a, true
}

// validWriter and validReader are the rules Apply drops connections by.
func (e *Endpoint) validWriter(addr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return addr == e.wAddr
}

func (e *Endpoint) validReader(addr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.allR[addr] || addr == e.wAddr
}

// Apply installs the roles of a control-plane status and drops connections that no longer
// reach the right instance.
func (e *Endpoint) Apply(st cluster.Status) {
	var w string
	var rs []string
	all := map[string]bool{}
	for _, n := range st.Nodes {
		if n.Kind != cluster.KindInstance || n.MySQL == "" {
			continue
		}
		switch {
		case n.Role == cluster.RoleWriter:
			w = n.MySQL
		case n.Role == cluster.RoleReader && !n.Stale:
			all[n.MySQL] = true
			if n.Healthy == nil || *n.Healthy {
				rs = append(rs, n.MySQL)
			}
		}
	}
	e.mu.Lock()
	oldW := e.wAddr
	changed := !e.known || oldW != w || !equal(e.rAddrs, rs)
	e.version, e.known, e.wAddr, e.rAddrs, e.allR = st.Version, true, w, rs, all
	e.mu.Unlock()
	if !changed {
		return
	}
	e.log.Info("roles", "version", st.Version, "writer", w, "readers", rs)
	// A connection to anything but the current writer must go: after a failover the old
	// writer is fenced and its clients have to reconnect.
	if n := e.writer.dropUnless(e.validWriter); n > 0 {
		e.log.Info("writer changed: dropped connections to the old writer", "old", oldW, "new", w, "dropped", n)
	}
	// Reader connections survive a reader's health flapping; they go when their backend is
	// no longer an instance of the right kind.
	e.reader.dropUnless(e.validReader)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// longPoll is how long control holds a status request open when nothing changes.
const longPoll = 10 * time.Second

// Run follows the control plane until ctx ends, then closes both endpoints.
func (e *Endpoint) Run(ctx context.Context) error {
	defer e.Close()
	var failing bool
	for ctx.Err() == nil {
		e.mu.Lock()
		v, known := e.version, e.known
		e.mu.Unlock()
		url := e.cfg.Control + "/status"
		if known {
			url += fmt.Sprintf("?wait=%d&timeout=%s", v, longPoll)
		}
		rctx, cancel := context.WithTimeout(ctx, longPoll+5*time.Second)
		var st cluster.Status
		err := instanceapi.Do(rctx, e.hc, http.MethodGet, url, nil, &st)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if !failing {
				e.log.Warn("control plane unreachable; keeping the last known roles", "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if failing {
			e.log.Info("control plane reachable again")
			failing = false
		}
		e.Apply(st)
	}
	return nil
}

// Close stops both endpoints and closes every connection.
func (e *Endpoint) Close() {
	e.writer.close()
	e.reader.close()
	e.hc.CloseIdleConnections()
}
