// Package cluster launches and describes a local refdb cluster: 6 storage nodes (2 per AZ in
// az1..az3), one writer, N readers, the control plane and the endpoints, each a detached
// process (its own session, so `refdb cluster up` can return while they run) logging to
// DIR/<id>.log. The cluster is described by DIR/cluster.json (DESIGN.md §3), which the
// control plane keeps current after failovers and restarts, and which `Down` uses to stop
// exactly the processes recorded there, by PID.
//
// Ports follow the Ports scheme from a base (default 3400). Instances are db1 (the first
// writer, az1), db2, db3, ... placed round-robin over the AZs; the command line of an
// instance is built by InstanceArgs alone.
package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// Config of a local cluster.
type Config struct {
	Dir string // required; created if missing
	// Bin is the refdb binary every process runs (default: this executable).
	Bin      string
	Readers  int // default 2; use NoReaders for none
	PortBase int // default DefaultPortBase
	User     string
	Password string // default: random
	Database string
	Secret   string // default: random
	// Env is added to the environment of every process (and of the processes the control
	// plane restarts, which inherit it from control).
	Env []string
	// ControlFlags are extra flags for `refdb control` (e.g. --heartbeat 50ms).
	ControlFlags []string
	// InstanceFlags are extra flags for every `refdb instance` (e.g. --pprof 127.0.0.1:0 or
	// --cache-mb 64); restarts and promotions keep them (they are part of the command line).
	InstanceFlags []string
	// StorageFlags are extra flags for every `refdb storage` (e.g. --pprof 127.0.0.1:0).
	StorageFlags []string
	// StartTimeout bounds the wait for each process to serve (default 60s).
	StartTimeout time.Duration
	// Unsafe turns on deliberately broken modes (see Unsafe); each reaches the processes that
	// own it through their command lines, so restarts and promotions keep it.
	Unsafe Unsafe
	Log    *slog.Logger
	// Link, when set, maps the address process from dials to reach process to (addr, to's
	// own address) to the address it must dial instead: a per-link proxy that a fault
	// injector owns (chaos/netem). It is asked for every inter-node connection the cluster
	// makes: instance -> storage (the instance's --storage), storage -> storage gossip (the
	// storage node's --peer-addrs) and instance -> instance admin (a reader's --peers, which
	// carry the replica stream). The mapped addresses go into the command lines, which
	// cluster.json keeps, so processes the control plane restarts use them too. The control
	// plane's heartbeats, the endpoints and clients dial directly; and with Link set the
	// instances get no --control (it reports real addresses, which would bypass the links):
	// a reader finds the writer among its --peers. Readers added later through the admin API
	// dial directly.
	Link func(from, to LinkEnd, addr string) (string, error)
}

// LinkEnd is one end of an inter-node connection (see Config.Link).
type LinkEnd struct {
	ID, AZ string
}

// NoReaders asks for a cluster with only the writer.
const NoReaders = -1

// readyFunc waits until a started node serves.
type readyFunc func(ctx context.Context, p *Proc, n Node, logFrom int64) error

// Cluster is a started cluster.
type Cluster struct {
	Dir  string
	File *File
	log  *slog.Logger
}

// InstanceSpec is what an instance's command line says.
type InstanceSpec struct {
	ID, AZ, Role string
	MySQL, Admin string
	Storage      []string // id=addr of every storage node
	Secret       string
	User         string
	Password     string
	// Create bootstraps the volume (the very first writer of a new cluster only).
	Create bool
	// Peers (admin addresses of the cluster's instances) and Control (the control plane's
	// URL) are where a reader looks for the current writer.
	Peers   []string
	Control string
	// Database is created by the writer if missing (the database of cluster.json).
	Database string
	// Unsafe modes an instance owns (the others are ignored here).
	Unsafe Unsafe
	// Extra flags, appended last.
	Extra []string
}

// InstanceArgs is the one place the `refdb instance` command line is built (the launcher and
// the control plane's restarts and added readers all use it).
func InstanceArgs(bin string, s InstanceSpec) []string {
	args := append([]string(nil), bin, "instance", "--role", s.Role, "--id", s.ID, "--az", s.AZ, "--mysql", s.MySQL,
		"--admin", s.Admin, "--storage", strings.Join(s.Storage, ","), "--secret", s.Secret,
		"--user", s.User, "--password", s.Password)
	if s.Create {
		args = append(args, "--create")
	}
	if len(s.Peers) > 0 {
		args = append(args, "--peers", strings.Join(s.Peers, ","))
	}
	if s.Control != "" {
		args = append(args, "--control", s.Control)
	}
	if s.Database != "" {
		args = append(args, "--database", s.Database)
	}
	args = append(args, s.Unsafe.InstanceFlags()...)
	return append(args, s.Extra...)
}

// WithRole returns an instance command line with --role replaced.
func WithRole(args []string, role string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "--role" {
			out[i+1] = role
			return out
		}
	}
	return append(out, "--role", role)
}

// StorageArgs is the `refdb storage` command line, with the unsafe modes storage owns and
// extra flags last.
// peerAddrs (id=addr, may be empty) overrides how the node dials each peer (otherwise as the
// volume's Install told it).
func StorageArgs(bin, id, az, dataDir, listen, secretFile string, peerAddrs []string, u Unsafe, extra ...string) []string {
	args := []string{bin, "storage", "--id", id, "--az", az, "--data", dataDir, "--listen", listen, "--secret-file", secretFile}
	if len(peerAddrs) > 0 {
		args = append(args, "--peer-addrs", strings.Join(peerAddrs, ","))
	}
	args = append(args, u.StorageFlags()...)
	return append(args, extra...)
}

// SecretFile is where the cluster secret is kept (mode 0600).
func SecretFile(dir string) string { return filepath.Join(dir, "secret") }

// ReadSecret reads the cluster secret of dir.
func ReadSecret(dir string) (string, error) {
	b, err := os.ReadFile(SecretFile(dir))
	if err != nil {
		return "", fmt.Errorf("reading cluster secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// StorageList is the --storage value of an instance: id=addr of every storage node.
func (f *File) StorageList() []string {
	var out []string
	for _, n := range f.Kind(KindStorage) {
		out = append(out, n.ID+"="+n.Addr)
	}
	return out
}

// AZs are the availability zones of a local cluster.
var AZs = []string{"az1", "az2", "az3"}

// ErrBadConfig is returned by Up, before it starts anything, for a Config out of range.
var ErrBadConfig = errors.New("cluster: bad configuration")

// ErrRunning is returned by Up when the folder already has a live cluster.
var ErrRunning = errors.New("a cluster is already running in this folder")

// Up starts a cluster and returns once every process serves. On error nothing it started is
// left running.
func Up(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("cluster: Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	if cfg.Bin == "" {
		if cfg.Bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding the refdb binary: %w", err)
		}
	}
	switch {
	case cfg.Readers == 0:
		cfg.Readers = 2
	case cfg.Readers == NoReaders:
		cfg.Readers = 0
	case cfg.Readers < 0 || cfg.Readers > MaxReaders:
		return nil, fmt.Errorf("%w: readers must be 0..%d, got %d", ErrBadConfig, MaxReaders, cfg.Readers)
	}
	if cfg.PortBase == 0 {
		cfg.PortBase = DefaultPortBase
	}
	if cfg.PortBase < MinPortBase || cfg.PortBase > MaxPortBase {
		return nil, fmt.Errorf("%w: port base must be %d..%d, got %d", ErrBadConfig, MinPortBase, MaxPortBase, cfg.PortBase)
	}
	cfg.User = or(cfg.User, "admin")
	cfg.Database = or(cfg.Database, "bench")
	cfg.Password = or(cfg.Password, randomHex(8))
	cfg.Secret = or(cfg.Secret, randomHex(16))
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	if names := cfg.Unsafe.Names(); len(names) > 0 {
		log.Warn("UNSAFE cluster: deliberately broken modes are on; acknowledged data may be lost", "unsafe", strings.Join(names, ","))
	}
	if old, err := Read(dir); err == nil {
		for _, n := range old.Nodes {
			if Alive(n.PID, n.PIDStart) {
				return nil, fmt.Errorf("%w: %s (%s pid %d); run `refdb cluster down --dir %s` first", ErrRunning, dir, n.ID, n.PID, dir)
			}
		}
	}
	ports := Ports{cfg.PortBase}
	if err := checkFree(ports.portsOf(1 + cfg.Readers)); err != nil {
		return nil, err
	}
	if err := os.WriteFile(SecretFile(dir), []byte(cfg.Secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing cluster secret: %w", err)
	}

	f := &File{WriterEndpoint: ports.WriterEndpoint(), ReaderEndpoint: ports.ReaderEndpoint(), Admin: "http://" + ports.Control(),
		User: cfg.User, Password: cfg.Password, Database: cfg.Database, PortBase: cfg.PortBase}
	var mu sync.Mutex // guards f.Nodes while starting in parallel
	c = &Cluster{Dir: dir, File: f, log: log}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.stopNodes(sctx, f.Nodes)
			_ = Update(dir, true, func(cur *File) error { *cur = *f; zeroPIDs(cur); return nil })
		}
	}()
	start := func(n Node, ready readyFunc) error {
		n.Log = filepath.Join(dir, n.ID+".log")
		from := fileSize(n.Log)
		p, err := Spawn(n.Args, n.Log, cfg.Env)
		if err != nil {
			return err
		}
		n.PID, n.PIDStart = p.PID, p.Start
		mu.Lock()
		f.Nodes = append(f.Nodes, n)
		mu.Unlock()
		log.Info("started", "id", n.ID, "pid", n.PID, "log", n.Log)
		rctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
		defer cancel()
		if err := ready(rctx, p, n, from); err != nil {
			return fmt.Errorf("%s did not start: %w%s", n.ID, err, lastLine(n.Log, from))
		}
		return nil
	}
	parallel := func(nodes []Node, ready readyFunc) error {
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = start(n, ready)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	listening := func(ctx context.Context, p *Proc, n Node, from int64) error {
		return waitLine(ctx, p, n.Log, "listening ", from)
	}

	// The first writer bootstraps the volume only when no storage node has data yet.
	freshVolume := true
	for i := 0; i < 6; i++ {
		if ents, err := os.ReadDir(filepath.Join(dir, fmt.Sprintf("s%d", i+1))); err == nil && len(ents) > 0 {
			freshVolume = false
		}
	}
	var storage []Node
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("s%d", i+1)
		storage = append(storage, Node{ID: id, Kind: KindStorage, AZ: AZs[i/2], Addr: ports.Storage(i), DataDir: filepath.Join(dir, id)})
	}
	// link maps one inter-node address through cfg.Link (identity without it).
	link := func(fromID, fromAZ string, to Node, addr string) (string, error) {
		if cfg.Link == nil {
			return addr, nil
		}
		a, err := cfg.Link(LinkEnd{ID: fromID, AZ: fromAZ}, LinkEnd{ID: to.ID, AZ: to.AZ}, addr)
		if err != nil {
			return "", fmt.Errorf("link %s->%s: %w", fromID, to.ID, err)
		}
		return a, nil
	}
	for i := range storage {
		s := &storage[i]
		var peerAddrs []string
		if cfg.Link != nil {
			for _, p := range storage {
				if p.ID == s.ID {
					continue
				}
				a, err := link(s.ID, s.AZ, p, p.Addr)
				if err != nil {
					return c, err
				}
				peerAddrs = append(peerAddrs, p.ID+"="+a)
			}
		}
		s.Args = StorageArgs(cfg.Bin, s.ID, s.AZ, s.DataDir, s.Addr, SecretFile(dir), peerAddrs, cfg.Unsafe, cfg.StorageFlags...)
	}
	if err := parallel(storage, listening); err != nil {
		return c, err
	}
	mu.Lock()
	slices.SortFunc(f.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	mu.Unlock()
	var insts []Node // id, AZ and admin address of every instance, for the links between them
	for i := 0; i <= max(cfg.Readers, 0); i++ {
		insts = append(insts, Node{ID: fmt.Sprintf("db%d", i+1), AZ: AZs[i%len(AZs)], Admin: ports.InstanceAdmin(i)})
	}
	instance := func(i int, role string) (Node, error) {
		id, az := insts[i].ID, insts[i].AZ
		stor, peers := f.StorageList(), make([]string, 0, len(insts))
		ctl := "http://" + ports.Control()
		if cfg.Link != nil {
			stor = stor[:0:0]
			for _, s := range storage {
				a, err := link(id, az, s, s.Addr)
				if err != nil {
					return Node{}, err
				}
				stor = append(stor, s.ID+"="+a)
			}
			ctl = ""
		}
		for _, p := range insts {
			a := p.Admin
			if p.ID != id {
				var err error
				if a, err = link(id, az, p, p.Admin); err != nil {
					return Node{}, err
				}
			}
			peers = append(peers, a)
		}
		args := InstanceArgs(cfg.Bin, InstanceSpec{ID: id, AZ: az, Role: role, MySQL: ports.InstanceMySQL(i),
			Admin: ports.InstanceAdmin(i), Storage: stor, Secret: cfg.Secret, User: cfg.User, Password: cfg.Password,
			Create: i == 0 && freshVolume, Peers: peers, Control: ctl, Database: cfg.Database, Unsafe: cfg.Unsafe, Extra: cfg.InstanceFlags})
		return Node{ID: id, Kind: KindInstance, Role: role, AZ: az, MySQL: ports.InstanceMySQL(i), Admin: ports.InstanceAdmin(i),
			Tier: 1, Args: args}, nil
	}
	serving := func(ctx context.Context, p *Proc, n Node, _ int64) error { return WaitServing(ctx, p, n.Admin) }
	w, err := instance(0, RoleWriter)
	if err != nil {
		return c, err
	}
	if err := start(w, serving); err != nil {
		return c, err
	}
	var readers []Node
	for i := 1; i <= cfg.Readers; i++ {
		r, err := instance(i, RoleReader)
		if err != nil {
			return c, err
		}
		readers = append(readers, r)
	}
	errs := make([]error, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = start(r, serving) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := Update(dir, true, func(cur *File) error { *cur = *f; return nil }); err != nil {
		return c, err
	}
	ctl := Node{ID: "control", Kind: KindControl, Addr: ports.Control(),
		Args: append([]string{cfg.Bin, "control", "--listen", ports.Control(), "--dir", dir}, cfg.ControlFlags...)}
	if err := start(ctl, listening); err != nil {
		return c, err
	}
	ep := Node{ID: "endpoint", Kind: KindEndpoint, Addr: ports.WriterEndpoint(),
		Args: []string{cfg.Bin, "endpoint", "--writer-listen", ports.WriterEndpoint(), "--reader-listen", ports.ReaderEndpoint(),
			"--control", "http://" + ports.Control()}}
	if err := start(ep, listening); err != nil {
		return c, err
	}
	// Control has owned the instance entries since it started: add only our two processes.
	mu.Lock()
	extra := f.Nodes[len(f.Nodes)-2:]
	mu.Unlock()
	if err := Update(dir, false, func(cur *File) error {
		cur.Nodes = append(cur.Nodes, extra...)
		*f = *cur
		return nil
	}); err != nil {
		return c, err
	}
	// The endpoint listens before it has learnt the writer from control: "up" means a client
	// of the writer endpoint reaches a MySQL server.
	ectx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	for _, addr := range []string{f.WriterEndpoint, f.ReaderEndpoint} {
		if err := WaitGreeting(ectx, addr); err != nil {
			return c, fmt.Errorf("endpoint %s does not reach a server: %w", addr, err)
		}
	}
	log.Info("cluster up", "dir", dir, "writer_endpoint", f.WriterEndpoint, "reader_endpoint", f.ReaderEndpoint, "admin", f.Admin)
	return c, nil
}

// Down stops the cluster.
func (c *Cluster) Down(ctx context.Context) error { return Down(ctx, c.Dir) }

// Down stops every process recorded in dir/cluster.json, by PID: the endpoint and control
// first (so nothing restarts instances meanwhile), then instances, then storage. Each gets
// SIGTERM, a grace period, then SIGKILL.
func Down(ctx context.Context, dir string) error {
	var errs []error
	for _, kinds := range [][]string{{KindEndpoint, KindControl}, {KindInstance}, {KindStorage}} {
		// Re-read each round: control may have restarted an instance just before it stopped.
		f, err := Read(dir)
		if err != nil {
			return err
		}
		var nodes []Node
		for _, n := range f.Nodes {
			for _, k := range kinds {
				if n.Kind == k {
					nodes = append(nodes, n)
				}
			}
		}
		c := &Cluster{Dir: dir}
		errs = append(errs, c.stopNodes(ctx, nodes))
	}
	errs = append(errs, Update(dir, false, func(f *File) error { zeroPIDs(f); return nil }))
	return errors.Join(errs...)
}

func zeroPIDs(f *File) {
	for i := range f.Nodes {
		if !Alive(f.Nodes[i].PID, f.Nodes[i].PIDStart) {
			f.Nodes[i].PID, f.Nodes[i].PIDStart = 0, 0
		}
	}
}

func (c *Cluster) stopNodes(ctx context.Context, nodes []Node) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Stop(ctx, n.PID, n.PIDStart, 5*time.Second); err != nil {
				errs[i] = fmt.Errorf("stopping %s: %w", n.ID, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitServing polls an instance's admin /status until it answers healthy, the process
// exits (p may be nil) or ctx ends.
func WaitServing(ctx context.Context, p *Proc, admin string) error {
	cl := instanceapi.NewClient(admin)
	var last error
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cl.Status(sctx)
		cancel()
		if err == nil && st.Healthy {
			return nil
		}
		if err == nil {
			err = errors.New("not healthy yet")
		}
		last = err
		if err := pause(ctx, p, 50*time.Millisecond); err != nil {
			return fmt.Errorf("%w (last: %v)", err, last)
		}
	}
}

// waitLine waits for a line starting with prefix in the log, written after offset from.
func waitLine(ctx context.Context, p *Proc, log, prefix string, from int64) error {
	for {
		if found(log, prefix, from) {
			return nil
		}
		if err := pause(ctx, p, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// found reports whether a line starting with prefix is in the file at path past offset.
func found(path, prefix string, from int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return true
		}
	}
	return false
}

func pause(ctx context.Context, p *Proc, d time.Duration) error {
	var done <-chan struct{}
	if p != nil {
		done = p.Done()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return errors.New("process exited")
	case <-time.After(d):
		return nil
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// lastLine is ": <last line of the log after from>", or "" if there is none.
func lastLine(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) <= from {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b[from:])), "\n")
	return ": " + strings.TrimSpace(lines[len(lines)-1])
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// WaitGreeting waits until a TCP connection to addr receives the server's first bytes (a
// MySQL server speaks first, with its greeting): the endpoint there routes to a serving
// instance instead of accepting and closing.
func WaitGreeting(ctx context.Context, addr string) error {
	var last error
	for {
		if last = greeting(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func greeting(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return fmt.Errorf("no greeting: %w", err)
	}
	return nil
}
