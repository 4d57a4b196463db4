// Package refdb is aurorabench's default target: a local refdb cluster launched through
// refdb/cluster in a folder of its own (6 storage nodes in 3 AZs, a writer, readers, the
// control plane and the endpoints). The writer and reader DSNs go through refdb's own
// endpoints; node faults are signals to the PIDs cluster.json records, and failover is the
// control plane's planned failover. The refdb binary is $REFDB_BIN, or built from this
// module's cmd/refdb into the target folder.
package refdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/internal/local"
)

// BinEnv names a prebuilt refdb binary to use instead of building one.
const BinEnv = "REFDB_BIN"

// Target is a running local refdb cluster.
type Target struct {
	dir  string
	temp bool
	c    *cluster.Cluster
	hc   *http.Client
	log  func(string, ...any)
	net  *netem.Network
}

// inheritSessionEnv keeps the cluster's processes in aurorabench's session (cluster.SessionEnv).
const inheritSessionEnv = cluster.SessionEnv + "=inherit"

// Start launches a cluster. Replicas is the number of readers (default 2).
func Start(ctx context.Context, opts targets.Options) (targets.Target, error) {
	logf := local.Logf(opts)
	dir, temp, err := local.Dir(opts, "refdb-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (targets.Target, error) {
		if temp {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	bin, err := Binary(ctx, dir)
	if err != nil {
		return fail(err)
	}
	base := opts.PortBase
	if base == 0 {
		if base, err = cluster.FreePortBase(); err != nil {
			return fail(targets.SetupError("refdb: %v", err))
		}
	}
	readers := opts.Replicas
	if readers == 0 {
		readers = 2
	}
	unsafe, err := cluster.ParseUnsafe(opts.Unsafe)
	if err != nil {
		return fail(targets.SetupError("refdb: %v", err))
	}
	if unsafe.Any() {
		logf("refdb: UNSAFE modes on (deliberately broken, for testing checkers): %s", strings.Join(unsafe.Names(), ", "))
	}
	began := time.Now()
	// The cluster's processes stay in this session, as the MariaDB and PostgreSQL servers
	// aurorabench starts do (see cluster.SessionEnv): the load generator then competes with
	// them for the CPU thread by thread, not as one session against ten.
	cfg := cluster.Config{Dir: filepath.Join(dir, "cluster"), Bin: bin, Readers: readers, PortBase: base, Unsafe: unsafe,
		Env: []string{inheritSessionEnv}}
	if nw := opts.Network; nw != nil {
		cfg.Link = func(from, to cluster.LinkEnd, addr string) (string, error) {
			return nw.Link(netem.NodeRef(from), netem.NodeRef(to), addr)
		}
	}
	c, err := cluster.Up(ctx, cfg)
	if err != nil {
		if errors.Is(err, cluster.ErrPortInUse) || errors.Is(err, cluster.ErrRunning) {
			return fail(targets.SetupError("refdb: %v", err))
		}
		return fail(fmt.Errorf("refdb: %w", err))
	}
	logf("refdb: cluster up in %v (writer %s, reader %s, admin %s)", time.Since(began).Round(time.Millisecond),
		c.File.WriterEndpoint, c.File.ReaderEndpoint, c.File.Admin)
	return &Target{dir: dir, temp: temp, c: c, hc: &http.Client{Transport: &http.Transport{}}, log: logf, net: opts.Network}, nil
}

// Binary returns $REFDB_BIN; else a `refdb` next to the running executable
// or on PATH; else builds cmd/refdb of the module in the working directory
// (located with `go env GOMOD`) into dir.
func Binary(ctx context.Context, dir string) (string, error) {
	if b := os.Getenv(BinEnv); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", targets.SetupError("refdb: %s=%s: %v", BinEnv, b, err)
		}
		return b, nil
	}
	if exe, err := os.Executable(); err == nil {
		if b := filepath.Join(filepath.Dir(exe), "refdb"); isExecutable(b) {
			return b, nil
		}
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		if b, lerr := exec.LookPath("refdb"); lerr == nil {
			return b, nil
		}
		return "", targets.SetupError("refdb: no refdb binary: set %s, put refdb on PATH, or run from the aurorabench module to build it", BinEnv)
	}
	bin := filepath.Join(dir, "refdb")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/refdb")
	cmd.Dir = filepath.Dir(mod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", targets.SetupError("refdb: building cmd/refdb: %v\n%s", err, b)
	}
	return bin, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func (t *Target) Name() string                 { return "refdb" }
func (t *Target) Dialect() targets.Dialect     { return targets.MySQL }
func (t *Target) Dir() string                  { return t.c.Dir }
func (t *Target) Network() *netem.Network      { return t.net }
func (t *Target) file() (*cluster.File, error) { return cluster.Read(t.c.Dir) }

func (t *Target) dsn(addr string) string {
	f := t.c.File
	return targets.MySQLDSN(f.User, f.Password, addr, f.Database)
}

func (t *Target) WriterDSN() string { return t.dsn(t.c.File.WriterEndpoint) }
func (t *Target) ReaderDSN() string { return t.dsn(t.c.File.ReaderEndpoint) }

// Nodes are the storage nodes and the instances, roles as cluster.json has them now.
func (t *Target) Nodes() []targets.Node {
	f, err := t.file()
	if err != nil {
		f = t.c.File
	}
	var out []targets.Node
	for _, n := range f.Nodes {
		if n.Kind == cluster.KindStorage || n.Kind == cluster.KindInstance {
			out = append(out, &Node{t: t, id: n.ID})
		}
	}
	return out
}

// Failover makes sure a healthy writer serves. When the writer is dead the
// control plane fails over by itself (that is the point of refdb), so this
// waits for it; with a healthy writer it asks for a planned failover.
func (t *Target) Failover(ctx context.Context) error {
	st, err := t.status(ctx)
	if err == nil {
		if w := healthyWriter(st); w != nil {
			var out struct{ Writer string }
			if err := instanceapi.Do(ctx, t.hc, http.MethodPost, t.c.File.Admin+"/failover", nil, &out); err != nil {
				return fmt.Errorf("refdb failover: %w", err)
			}
			t.log("refdb: planned failover: writer is %s", out.Writer)
			return nil
		}
	}
	// Automatic failover: wait for control to report a healthy writer.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := t.status(ctx)
		if err == nil {
			if w := healthyWriter(st); w != nil {
				t.log("refdb: writer is %s", w.ID)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("refdb failover: no healthy writer after 60s (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("refdb failover: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// status asks the control plane for the live cluster status.
func (t *Target) status(ctx context.Context) (*cluster.File, error) {
	var f cluster.File
	if err := instanceapi.Do(ctx, t.hc, http.MethodGet, t.c.File.Admin+"/status", nil, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// ReportedLag asks every reader for its own replica lag (instanceapi.Status.StreamLag): the
// time from the writer's durable acknowledgement of a commit batch to the reader's read point
// passing it, Aurora's definition, over every batch since the reader started. A reader that
// does not answer is an error: the figures would silently cover only some replicas.
func (t *Target) ReportedLag(ctx context.Context) ([]targets.ReportedLag, error) {
	st, err := t.status(ctx)
	if err != nil {
		return nil, fmt.Errorf("refdb reported lag: %w", err)
	}
	var out []targets.ReportedLag
	for _, n := range st.Nodes {
		if n.Kind != cluster.KindInstance || n.Role != cluster.RoleReader || n.Admin == "" {
			continue
		}
		var is instanceapi.Status
		if err := instanceapi.Do(ctx, t.hc, http.MethodGet, "http://"+n.Admin+"/status", nil, &is); err != nil {
			return nil, fmt.Errorf("refdb reported lag of %s: %w", n.ID, err)
		}
		r := targets.ReportedLag{Replica: n.ID}
		if l := is.StreamLag; l != nil {
			r.Count, r.P50MS, r.P99MS, r.MaxMS = l.Count, l.P50MS, l.P99MS, l.MaxMS
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Replica < out[j].Replica })
	return out, nil
}

// healthyWriter is the writer the control plane reports healthy whose recorded process
// still runs (a killed writer can look healthy until the next heartbeat), or nil.
func healthyWriter(st *cluster.File) *cluster.Node {
	w := st.Writer()
	if w == nil || w.Healthy == nil || !*w.Healthy || !cluster.Alive(w.PID, w.PIDStart) {
		return nil
	}
	return w
}

// Logs are every process's log file.
func (t *Target) Logs() map[string]string {
	m := map[string]string{}
	if f, err := t.file(); err == nil {
		for _, n := range f.Nodes {
			if n.Log != "" {
				m[n.ID] = n.Log
			}
		}
	}
	return m
}

// Close stops the cluster and removes its folder if the target created it.
func (t *Target) Close(ctx context.Context) error {
	err := t.c.Down(ctx)
	t.hc.CloseIdleConnections()
	if t.temp {
		if rerr := os.RemoveAll(t.dir); err == nil {
			err = rerr
		}
	}
	return err
}

// Node is a storage node or an instance of the cluster.
type Node struct {
	t  *Target
	id string
}

func (n *Node) node() cluster.Node {
	f, err := n.t.file()
	if err != nil {
		f = n.t.c.File
	}
	if x := f.Node(n.id); x != nil {
		return *x
	}
	return cluster.Node{ID: n.id}
}

func (n *Node) ID() string { return n.id }
func (n *Node) AZ() string { return n.node().AZ }

func (n *Node) Role() targets.Role {
	x := n.node()
	switch {
	case x.Kind == cluster.KindStorage:
		return targets.RoleStorage
	case x.Role == cluster.RoleWriter:
		return targets.RoleWriter
	case x.Role == cluster.RoleReader:
		return targets.RoleReader
	}
	return targets.RoleOther
}

func (n *Node) PID() int {
	x := n.node()
	if !cluster.Alive(x.PID, x.PIDStart) {
		return 0
	}
	return x.PID
}

func (n *Node) Addr() string { return n.node().MySQL }

func (n *Node) DSN() string {
	if a := n.Addr(); a != "" {
		return n.t.dsn(a)
	}
	return ""
}

func (n *Node) signal(sig syscall.Signal) error {
	x := n.node()
	if !cluster.Alive(x.PID, x.PIDStart) {
		return fmt.Errorf("refdb: %s is not running", n.id)
	}
	return cluster.Signal(x.PID, x.PIDStart, sig)
}

func (n *Node) Kill(context.Context) error   { return n.signal(syscall.SIGKILL) }
func (n *Node) Pause(context.Context) error  { return n.signal(syscall.SIGSTOP) }
func (n *Node) Resume(context.Context) error { return n.signal(syscall.SIGCONT) }

// Start starts a killed node again. Storage restarts from its recorded command line (its
// data folder survives); an instance is started by the control plane, which restarts dead
// instances by itself anyway and knows whether it must come back as a reader. It returns
// once the node serves.
func (n *Node) Start(ctx context.Context) error {
	x := n.node()
	if x.Kind == cluster.KindStorage {
		if cluster.Alive(x.PID, x.PIDStart) {
			return nil
		}
		p, err := cluster.Spawn(x.Args, x.Log, []string{inheritSessionEnv})
		if err != nil {
			return fmt.Errorf("refdb: starting %s: %w", n.id, err)
		}
		return cluster.Update(n.t.c.Dir, false, func(f *cluster.File) error {
			if y := f.Node(n.id); y != nil {
				y.PID, y.PIDStart = p.PID, p.Start
			}
			return nil
		})
	}
	if err := instanceapi.Do(ctx, n.t.hc, http.MethodPost, n.t.c.File.Admin+"/instances/"+n.id+"/start", nil, nil); err != nil {
		return fmt.Errorf("refdb: starting %s: %w", n.id, err)
	}
	for {
		if y := n.node(); cluster.Alive(y.PID, y.PIDStart) {
			if err := cluster.WaitServing(ctx, nil, y.Admin); err != nil {
				return fmt.Errorf("refdb: %s: %w", n.id, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("refdb: starting %s: %w", n.id, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
