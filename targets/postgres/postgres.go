// Package postgres runs a local PostgreSQL primary with streaming standbys
// from the installed binaries, and fails over the way Patroni does: fence
// the old primary, promote the standby that replayed the most WAL, repoint
// the others; the old primary comes back through pg_rewind.
//
// Durability matches refdb's fsync-on-commit: fsync=on and
// synchronous_commit=on (local flush; replication stays asynchronous, like
// the MariaDB peer).
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/endpoint"
	"github.com/aurorabench/aurorabench/targets/internal/local"
	"github.com/aurorabench/aurorabench/targets/proc"
)

// Credentials of the roles the cluster creates. The servers listen on
// 127.0.0.1 only, so fixed passwords are fine.
const (
	Database      = "bench"
	BenchUser     = "bench"
	BenchPassword = "bench"
	replUser      = "repl"
	replPassword  = "repl-pass"
	superuser     = "postgres"
)

const (
	startTimeout     = 90 * time.Second
	queryTimeout     = 5 * time.Second
	replayWait       = 10 * time.Second // failover: bound on waiting for replay to reach receive
	streamingTimeout = 30 * time.Second // rejoin: a standby must stream by then, or it is rebuilt
	stopGrace        = 3 * time.Second
	catchUpTimeout   = 60 * time.Second
	toolTimeout      = 5 * time.Minute // initdb, pg_basebackup, pg_rewind
	pollInterval     = 100 * time.Millisecond
	socketPathLimit  = 107 - len("/.s.PGSQL.65535")
)

type binaries struct {
	dir                                  string
	postgres, initdb, basebackup, rewind string
}

// findBinaries looks for the newest /usr/lib/postgresql/N/bin, then PATH.
func findBinaries() (binaries, error) {
	var dirs []string
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	for _, m := range matches {
		dirs = append(dirs, filepath.Dir(m))
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		b := binaries{dir: d, postgres: filepath.Join(d, "postgres"), initdb: filepath.Join(d, "initdb"),
			basebackup: filepath.Join(d, "pg_basebackup"), rewind: filepath.Join(d, "pg_rewind")}
		ok := true
		for _, p := range []string{b.postgres, b.initdb, b.basebackup, b.rewind} {
			if _, err := os.Stat(p); err != nil {
				ok = false
			}
		}
		if ok {
			return b, nil
		}
	}
	return binaries{}, targets.SetupError("postgres: server binaries (postgres, initdb, pg_basebackup, pg_rewind) not found in /usr/lib/postgresql/*/bin or PATH")
}

func version(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// Available reports whether the PostgreSQL binaries are installed (an
// error wrapping targets.ErrSetup if not).
func Available() error {
	_, err := findBinaries()
	return err
}

// Cluster is a running local PostgreSQL primary with standbys.
type Cluster struct {
	log      func(string, ...any)
	bin      binaries
	dir      string
	tempDir  bool
	cred     *syscall.Credential // the postgres user, when we are root
	nodes    []*Node
	writerEP *endpoint.Proxy
	readerEP *endpoint.Proxy
	// net carries streaming replication (standby -> primary) through per-link proxies;
	// links maps each (standby, primary) pair to the port of the standby's
	// primary_conninfo. Nil net: standbys dial primaries directly. The tools the target
	// runs itself (pg_basebackup, pg_rewind) always dial directly.
	net   *netem.Network
	links local.Links

	// life ends on Close; every operation's context is bound to it.
	life    context.Context
	endLife context.CancelFunc
	// prioDone is closed when the goroutine keeping the nodes' priorities by role
	// (local.KeepPriority) has ended; nil until it starts.
	prioDone <-chan struct{}

	// opMu serialises reconfigurations (Failover, a node's Start/Resume).
	opMu sync.Mutex

	mu      sync.Mutex // guards primary, rr, closed and the nodes' state
	primary *Node
	rr      int
	closed  bool
}

var _ targets.Target = (*Cluster)(nil)

// Start initialises and starts a primary, opts.Replicas standbys (2 by
// default) and the writer and reader endpoints. On error nothing is left
// running.
func Start(ctx context.Context, opts targets.Options) (targets.Target, error) {
	if len(opts.Unsafe) > 0 {
		return nil, targets.SetupError("%s: unsafe modes are refdb's only, got %v", "postgres", opts.Unsafe)
	}
	c, err := start(ctx, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func start(ctx context.Context, opts targets.Options) (c *Cluster, err error) {
	began := time.Now()
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	replicas := opts.Replicas
	if replicas <= 0 {
		replicas = 2
	}
	cred, err := local.ServerUser("postgres")
	if err != nil {
		return nil, err
	}
	dir, temp, err := local.Dir(opts, "aurorabench-postgres-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{log: local.Logf(opts), bin: bin, dir: dir, tempDir: temp, cred: cred, net: opts.Network}
	c.life, c.endLife = context.WithCancel(context.Background())
	// c is the named result, which every error return sets to nil: close
	// the cluster through its own reference.
	cl := c
	defer func() {
		if err != nil {
			cl.Close(context.Background())
		}
	}()
	if err := local.Reachable(dir, cred); err != nil {
		return nil, err
	}
	ports, err := local.FreePorts(opts.PortBase, replicas+1)
	if err != nil {
		return nil, err
	}
	for i := 0; i <= replicas; i++ {
		n := &Node{c: c, id: fmt.Sprintf("postgres%d", i+1), az: fmt.Sprintf("az%d", i%3+1),
			port: ports[i], role: targets.RoleReader}
		n.dir = filepath.Join(dir, n.id)
		n.datadir = filepath.Join(n.dir, "data")
		n.logPath = filepath.Join(n.dir, "postgres.log")
		if len(n.dir) > socketPathLimit {
			return nil, targets.SetupError("postgres: socket folder %s is too long; use a shorter target folder", n.dir)
		}
		// The target owns its folder: data from an earlier run goes.
		os.RemoveAll(n.dir)
		if err := local.Mkdir(n.dir, 0o755, cred); err != nil {
			return nil, targets.SetupError("postgres: %v", err)
		}
		c.nodes = append(c.nodes, n)
	}
	p := c.nodes[0]
	c.primary = p
	p.role = targets.RoleWriter
	var lns []local.LinkNode
	for _, n := range c.nodes {
		lns = append(lns, local.LinkNode{ID: n.id, AZ: n.az, Port: n.port})
	}
	if c.links, err = local.MakeLinks(c.net, lns); err != nil {
		return nil, targets.SetupError("postgres: %v", err)
	}

	c.log("postgres: initdb in %s (%s)", dir, bin.dir)
	if err := c.initPrimary(ctx, p); err != nil {
		return nil, err
	}
	if err := c.launchFree(ctx, p, opts.PortBase == 0); err != nil {
		return nil, err
	}
	c.log("postgres: primary up at %v", time.Since(began).Round(time.Millisecond))
	setup := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", BenchUser, BenchPassword),
		fmt.Sprintf("GRANT pg_monitor TO %s", BenchUser),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", Database, BenchUser),
		fmt.Sprintf("CREATE ROLE %s REPLICATION LOGIN PASSWORD '%s'", replUser, replPassword),
	}
	for _, n := range c.nodes[1:] {
		setup = append(setup, fmt.Sprintf("SELECT pg_create_physical_replication_slot('%s', true)", n.slot()))
	}
	if err := p.exec(ctx, setup...); err != nil {
		return nil, targets.SetupError("postgres: set up primary: %v", err)
	}

	// Base backups in parallel, then the standbys.
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.baseBackup(ctx, n, p); err != nil {
				errs[i] = targets.SetupError("postgres: %v", err)
				return
			}
			errs[i] = c.launchFree(ctx, n, opts.PortBase == 0)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.log("postgres: standbys up at %v", time.Since(began).Round(time.Millisecond))
	for _, n := range c.nodes {
		n.setHealthy(true)
		if n != p {
			n.setFollowing(p)
		}
	}
	if c.writerEP, err = endpoint.New(c.pickWriter); err != nil {
		return nil, targets.SetupError("postgres: writer endpoint: %v", err)
	}
	if c.readerEP, err = endpoint.New(c.pickReader); err != nil {
		return nil, targets.SetupError("postgres: reader endpoint: %v", err)
	}
	if err := c.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return nil, targets.SetupError("postgres: standbys did not catch up: %v", err)
	}
	// Replicas at the priority refdb's readers get (targets.ReplicaNice), the primary at 0,
	// following failovers and restarts until Close.
	c.prioDone = local.KeepPriority(c.life, c.Nodes, c.log)
	c.log("postgres: primary %s and %d standbys up in %v (writer %s, reader %s)",
		p.Addr(), replicas, time.Since(began).Round(time.Millisecond), c.writerEP.Addr(), c.readerEP.Addr())
	return c, nil
}

// Settings shared by every node (each node's port, socket folder and name
// are given on its command line, since standbys copy this file).
const postgresqlConf = `
# --- aurorabench ---
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 128MB
# Durable commit, as refdb (fsync on commit); replication is asynchronous.
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
# Slots keep WAL for a standby that is down; wal_keep_size covers a
# standby repointed to a just-promoted primary whose slot for it is new.
wal_keep_size = 256MB
hot_standby = on
# pg_rewind needs hint-bit changes WAL-logged (no data checksums here).
wal_log_hints = on
# A standby retries a lost primary every second (default 5s), as the
# MariaDB replicas do (MASTER_CONNECT_RETRY=1).
wal_retrieve_retry_interval = 1s
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
`

// Only the bench and replication roles may connect over TCP, with
// passwords; the superuser only over our own socket folder.
const pgHBA = `# aurorabench
local   all          all                        trust
host    all          ` + BenchUser + `         127.0.0.1/32   scram-sha-256
host    replication  ` + replUser + `          127.0.0.1/32   scram-sha-256
`

func (c *Cluster) initPrimary(ctx context.Context, n *Node) error {
	if err := local.Mkdir(n.datadir, 0o700, c.cred); err != nil {
		return targets.SetupError("postgres: %v", err)
	}
	ictx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	err := proc.Run(ictx, proc.Spec{Path: c.bin.initdb, Cred: c.cred,
		Args: []string{"-D", n.datadir, "-U", superuser, "-E", "UTF8", "--no-locale",
			"--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions",
			// Not fsyncing the new folder is safe: after any crash,
			// PostgreSQL fsyncs the whole data folder before recovery.
			"--no-sync"},
		LogPath: filepath.Join(n.dir, "initdb.log")})
	if err != nil {
		return targets.SetupError("postgres: initdb failed: %v", oneLine(err))
	}
	f, err := os.OpenFile(filepath.Join(n.datadir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(postgresqlConf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = local.WriteFile(filepath.Join(n.datadir, "pg_hba.conf"), []byte(pgHBA), 0o600, c.cred)
	}
	if err != nil {
		return targets.SetupError("postgres: write config: %v", err)
	}
	return nil
}

// baseBackup clones primary p into n's (new, empty) data folder, streaming
// the WAL written meanwhile, into n's replication slot on p.
func (c *Cluster) baseBackup(ctx context.Context, n, p *Node) error {
	os.RemoveAll(n.datadir)
	if err := local.Mkdir(n.datadir, 0o700, c.cred); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	err := proc.Run(bctx, proc.Spec{Path: c.bin.basebackup, Cred: c.cred,
		Args: []string{"-D", n.datadir, "-d", p.replConnInfo(n, p.port), "-R", "-X", "stream",
			"-S", n.slot(), "--checkpoint=fast", "--no-sync"}, // --no-sync: see initPrimary
		LogPath: filepath.Join(n.dir, "basebackup.log")})
	if err != nil {
		return fmt.Errorf("pg_basebackup for %s: %s", n.id, oneLine(err))
	}
	return n.writeStandbyConf(p)
}

// Name implements targets.Target.
func (c *Cluster) Name() string { return "postgres" }

// Network implements targets.Networked: nil unless started with one.
func (c *Cluster) Network() *netem.Network { return c.net }

// Dialect implements targets.Target.
func (c *Cluster) Dialect() targets.Dialect { return targets.Postgres }

// WriterDSN implements targets.Target.
func (c *Cluster) WriterDSN() string {
	return targets.PostgresDSN(BenchUser, BenchPassword, c.writerEP.Addr(), Database)
}

// ReaderDSN implements targets.Target.
func (c *Cluster) ReaderDSN() string {
	return targets.PostgresDSN(BenchUser, BenchPassword, c.readerEP.Addr(), Database)
}

// Nodes implements targets.Target, in a fixed order.
func (c *Cluster) Nodes() []targets.Node {
	ns := make([]targets.Node, len(c.nodes))
	for i, n := range c.nodes {
		ns[i] = n
	}
	return ns
}

// Primary is the current primary node.
func (c *Cluster) Primary() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary
}

// Logs implements targets.Target: each node's server log.
func (c *Cluster) Logs() map[string]string {
	m := map[string]string{}
	for _, n := range c.nodes {
		m[n.id] = n.logPath
	}
	return m
}

func (c *Cluster) pickWriter() (string, bool) {
	p := c.Primary()
	if p == nil {
		return "", false
	}
	return p.Addr(), true
}

// pickReader spreads reader connections round-robin over the healthy
// standbys, falling back to the primary when there is none.
func (c *Cluster) pickReader() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*Node
	for _, n := range c.nodes {
		if n.role == targets.RoleReader && n.live() {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		if c.primary == nil {
			return "", false
		}
		return c.primary.Addr(), true
	}
	c.rr++
	return live[c.rr%len(live)].Addr(), true
}

// waitCaughtUp waits until every healthy standby has replayed the
// primary's current WAL position.
func (c *Cluster) waitCaughtUp(ctx context.Context, timeout time.Duration) error {
	p := c.Primary()
	var lsn string
	if err := p.queryRow(ctx, "SELECT pg_current_wal_lsn()::text", &lsn); err != nil {
		return err
	}
	target := parseLSN(lsn)
	for _, n := range c.nodes {
		if n == p || !n.running() {
			continue
		}
		err := local.Poll(ctx, timeout, pollInterval, func(ctx context.Context) (bool, error) {
			var replay sql.NullString
			if err := n.queryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text", &replay); err != nil {
				return false, err
			}
			return replay.Valid && parseLSN(replay.String) >= target, nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", n.id, err)
		}
	}
	return nil
}

// Failover promotes the standby that replayed the most WAL, as Patroni
// would.
//
// The old primary is fenced by killing it (we own its process; a real
// failover would fence it with STONITH or by cutting it off): it becomes a
// reader that stays down until its Start, which rewinds it with pg_rewind
// and makes it a standby. Standbys that cannot be reached in time (paused,
// killed) are left out and repointed when resumed or started.
func (c *Cluster) Failover(ctx context.Context) error {
	ctx, cancel := local.Bind(ctx, c.life)
	defer cancel()
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.isClosed() {
		return errClosed
	}
	began := time.Now()
	old := c.Primary()

	type cand struct {
		n      *Node
		replay uint64
	}
	var cands []*cand
	for _, n := range c.nodes {
		if n != old && n.running() && !n.paused() {
			cands = append(cands, &cand{n: n})
		}
	}
	if len(cands) == 0 {
		return errors.New("postgres failover: no running standby to promote")
	}
	// Fence first: once the old primary is gone no more WAL arrives, so
	// each standby's position is final once it has replayed what it got.
	if old != nil {
		if err := old.Kill(ctx); err != nil {
			return fmt.Errorf("postgres failover: fence %s: %w", old.id, err)
		}
	}
	var wg sync.WaitGroup
	for _, cd := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := local.Poll(ctx, replayWait, 20*time.Millisecond, func(ctx context.Context) (bool, error) {
				var recv, replay sql.NullString
				qctx, cancel := context.WithTimeout(ctx, queryTimeout)
				defer cancel()
				if err := cd.n.queryRowN(qctx, "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text", []any{&recv, &replay}); err != nil {
					return false, err
				}
				cd.replay = parseLSN(replay.String)
				return !recv.Valid || cd.replay >= parseLSN(recv.String), nil
			})
			if err != nil {
				c.log("postgres failover: %s: replay did not reach receive: %v", cd.n.id, err)
			}
		}()
	}
	wg.Wait()
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].replay > cands[j].replay })
	if cands[0].replay == 0 {
		return errors.New("postgres failover: no standby answered")
	}
	best := cands[0].n

	var ok bool
	pctx, cancel := context.WithTimeout(ctx, 70*time.Second)
	err := best.queryRow(pctx, "SELECT pg_promote(true, 60)", &ok)
	cancel()
	if err != nil || !ok {
		return fmt.Errorf("postgres failover: promote %s: %v (ok=%v)", best.id, err, ok)
	}
	c.mu.Lock()
	c.primary = best
	best.role = targets.RoleWriter
	best.following = nil
	if old != nil {
		old.role = targets.RoleReader
		old.following = nil // it must be rewound before it can follow anyone
	}
	c.mu.Unlock()
	c.writerEP.DropAll()
	c.readerEP.DropBackend(best.Addr())
	promoted := time.Since(began)

	// Slots for everyone else on the new primary (slots are not
	// replicated), then repoint the live standbys; recovery_target_timeline
	// defaults to latest, so they follow the new timeline.
	sctx, cancel := context.WithTimeout(ctx, queryTimeout)
	err = best.ensureSlots(sctx)
	cancel()
	if err != nil {
		c.log("postgres failover: slots on %s: %v", best.id, err)
	}
	for _, cd := range cands[1:] {
		rctx, cancel := context.WithTimeout(ctx, queryTimeout)
		err := cd.n.repoint(rctx, best)
		cancel()
		if err != nil {
			c.log("postgres failover: repoint %s: %v (retried on its Resume/Start)", cd.n.id, err)
		}
	}
	// Standbys that were paused when the failover began and have been
	// resumed since.
	for _, n := range c.nodes {
		if n == best || n == old || !n.running() || n.paused() {
			continue
		}
		c.mu.Lock()
		stale := n.following != best
		c.mu.Unlock()
		if stale {
			if err := c.catchUp(ctx, n); err != nil {
				c.log("postgres failover: repoint %s: %v", n.id, err)
			}
		}
	}
	c.log("postgres failover: promoted %s (replay %s) in %v, done in %v", best.id, formatLSN(cands[0].replay),
		promoted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	return nil
}

// rejoin makes a stopped non-primary node a streaming standby of the
// current primary and starts it.
//
// An old primary (following nil: demoted by Failover) has WAL the new
// primary never had, so it is first rewound with pg_rewind. Any other
// standby is started as it is: one that was down during a failover
// normally follows the new timeline by itself (recovery_target_timeline is
// latest); only if it had received WAL past the fork does it fail to
// stream, and then it is stopped cleanly and rewound. If pg_rewind fails,
// or the node still does not stream, it is rebuilt with pg_basebackup.
func (c *Cluster) rejoin(ctx context.Context, n *Node) error {
	p := c.Primary()
	if p == nil || p == n {
		return n.launch(ctx, startTimeout)
	}
	n.c.mu.Lock()
	wasPrimary := n.following == nil
	n.c.mu.Unlock()
	if !p.running() {
		if wasPrimary {
			return fmt.Errorf("postgres: %s cannot rejoin while primary %s is down (pg_rewind needs it)", n.id, p.id)
		}
		c.log("postgres: primary %s is down; %s starts as its standby anyway", p.id, n.id)
		if err := n.writeStandbyConf(p); err != nil {
			return err
		}
		return n.launch(ctx, startTimeout)
	}
	sctx, cancel := context.WithTimeout(ctx, queryTimeout)
	err := p.ensureSlots(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("postgres: rejoin %s: %w", n.id, err)
	}
	rewound := false
	if wasPrimary {
		if err := c.rewind(ctx, n, p); err != nil {
			c.log("postgres: %v; rebuilding %s with pg_basebackup", err, n.id)
			return c.rebuild(ctx, n, p)
		}
		rewound = true
	}
	err = c.startStandby(ctx, n, p)
	if err != nil && strings.Contains(err.Error(), "Address already in use") {
		return err // not a replication problem: nothing to rewind
	}
	if err != nil && !rewound {
		c.log("postgres: %s does not follow %s (%v); rewinding it", n.id, p.id, err)
		n.stop(ctx)
		if err = c.rewind(ctx, n, p); err == nil {
			err = c.startStandby(ctx, n, p)
		}
	}
	if err != nil {
		c.log("postgres: %s does not stream from %s (%v); rebuilding it", n.id, p.id, err)
		n.Kill(ctx)
		return c.rebuild(ctx, n, p)
	}
	return nil
}

// startStandby starts stopped node n as a standby of p and waits until it
// streams p's timeline.
func (c *Cluster) startStandby(ctx context.Context, n, p *Node) error {
	if err := n.writeStandbyConf(p); err != nil {
		return err
	}
	// Slots this node had as a primary would pin WAL on it forever as a
	// standby; the primary has its own.
	clearDir(filepath.Join(n.datadir, "pg_replslot"))
	// A standby that cannot stream may never become consistent, so the
	// start is bounded by the streaming timeout too.
	if err := n.launch(ctx, streamingTimeout); err != nil {
		return err
	}
	return n.waitStreaming(ctx, p)
}

// catchUp repoints a running standby that missed a failover at the current
// primary. If it cannot follow (it had WAL the new primary never got), it
// is stopped and rejoins like an old primary, through pg_rewind.
func (c *Cluster) catchUp(ctx context.Context, n *Node) error {
	p := c.Primary()
	rctx, cancel := context.WithTimeout(ctx, queryTimeout)
	err := p.ensureSlots(rctx)
	if err == nil {
		err = n.repoint(rctx, p)
	}
	cancel()
	if err != nil {
		return err
	}
	if err := n.waitStreaming(ctx, p); err != nil {
		c.log("postgres: %s does not follow %s (%v); rewinding it", n.id, p.id, err)
		n.stop(ctx)
		n.setFollowing(nil)
		if err := c.rejoin(ctx, n); err != nil {
			return err
		}
		n.setFollowing(p)
		n.setHealthy(true)
	}
	return nil
}

// rewind runs pg_rewind on n's data folder against primary p. pg_rewind
// first runs crash recovery itself when n was killed. standby.signal must
// not be there then (single-user mode cannot be a standby).
func (c *Cluster) rewind(ctx context.Context, n, p *Node) error {
	began := time.Now()
	os.Remove(filepath.Join(n.datadir, "standby.signal"))
	rctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	// A just-promoted primary records its new timeline in pg_control only
	// at its first checkpoint; before that pg_rewind sees both on the same
	// timeline and wrongly decides no rewind is needed.
	if err := p.exec(rctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint on %s before pg_rewind: %w", p.id, err)
	}
	err := proc.Run(rctx, proc.Spec{Path: c.bin.rewind, Cred: c.cred,
		Args:    []string{"-D", n.datadir, "--source-server=" + p.adminConnInfo()},
		LogPath: filepath.Join(n.dir, "rewind.log")})
	if err != nil {
		return fmt.Errorf("pg_rewind of %s: %s", n.id, oneLine(err))
	}
	c.log("postgres: rewound %s against %s in %v", n.id, p.id, time.Since(began).Round(time.Millisecond))
	return nil
}

// rebuild replaces n's data with a fresh base backup of p and starts it.
func (c *Cluster) rebuild(ctx context.Context, n, p *Node) error {
	began := time.Now()
	if err := c.baseBackup(ctx, n, p); err != nil {
		return fmt.Errorf("postgres: rebuild %s: %w", n.id, err)
	}
	if err := n.launch(ctx, startTimeout); err != nil {
		return err
	}
	c.log("postgres: rebuilt %s from %s in %v", n.id, p.id, time.Since(began).Round(time.Millisecond))
	return nil
}

// Close stops every node (fast shutdown, SIGKILL after a short grace),
// closes the endpoints and removes the folder if it is a temp folder.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	// Cancel operations in progress and wait for them to unwind, so none
	// starts a process after the nodes are stopped below.
	c.endLife()
	if c.prioDone != nil {
		<-c.prioDone
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.writerEP != nil {
		c.writerEP.Close()
	}
	if c.readerEP != nil {
		c.readerEP.Close()
	}
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.stop(ctx)
		}()
	}
	wg.Wait()
	if c.tempDir {
		if err := os.RemoveAll(c.dir); err != nil {
			return err
		}
	}
	return nil
}

// clearDir removes the contents of dir.
func clearDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// parseLSN parses "16/B374D848" (0 if invalid).
func parseLSN(s string) uint64 {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return h<<32 | l
}

func formatLSN(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, v&0xffffffff) }

var errClosed = errors.New("postgres: cluster is closed")

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// launchFree starts a node for the first time, on another port if its own was taken between
// FreePorts and the bind (and the ports were not asked for).
func (c *Cluster) launchFree(ctx context.Context, n *Node, repick bool) error {
	return local.RetryTakenPort(repick, n.port, func(p int) { n.port = p },
		func() error { return n.launch(ctx, startTimeout) },
		func(format string, a ...any) { c.log("postgres: "+n.id+": "+format, a...) })
}
