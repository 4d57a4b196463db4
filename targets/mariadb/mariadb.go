// Package mariadb runs a local MariaDB primary with asynchronous GTID
// replicas from the installed server binaries, and fails over the way
// orchestrator does: stop the replicas' IO threads, let each apply its relay
// log, promote the most advanced one and repoint the rest.
//
// Durability matches refdb's fsync-on-commit: innodb_flush_log_at_trx_commit=1
// and sync_binlog=1 on every node. Replicas apply with 8 parallel threads in
// optimistic mode (slave_parallel_mode=optimistic): with serial apply, a
// durable replica on 2 cores falls tens of seconds behind under 8 writers,
// and with 4 threads still seconds behind at ~800 writes/s, which would
// measure the applier rather than replication (8 threads: p50 11 ms); optimistic
// parallel apply keeps commit order, so replicas never expose states the
// primary did not have.
package mariadb

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

// Credentials of the accounts the cluster creates. The servers listen on
// 127.0.0.1 only, so fixed passwords are fine.
const (
	Database      = "bench"
	BenchUser     = "bench"
	BenchPassword = "bench"
	replUser      = "repl"
	replPassword  = "repl-pass"
)

// Timeouts. A node normally starts in well under a second; crash recovery
// after a kill under load takes a few more.
const (
	startTimeout    = 90 * time.Second
	queryTimeout    = 5 * time.Second  // one admin statement on a live node
	applyWait       = 10 * time.Second // failover: relay log apply bound
	stopGrace       = 3 * time.Second
	catchUpTimeout  = 60 * time.Second
	rebuildTimeout  = 5 * time.Minute
	pollInterval    = 100 * time.Millisecond
	socketPathLimit = 107 // sun_path is 108 bytes with the NUL
)

// binaries holds the paths of the MariaDB programs used.
type binaries struct {
	server, installDB, dump, client string
}

func findBinaries() (binaries, error) {
	find := func(names ...string) (string, error) {
		for _, n := range names {
			if filepath.IsAbs(n) {
				if _, err := os.Stat(n); err == nil {
					return n, nil
				}
				continue
			}
			if p, err := exec.LookPath(n); err == nil {
				return p, nil
			}
		}
		return "", targets.SetupError("mariadb: %s not found (install mariadb-server and mariadb-client)", filepath.Base(names[0]))
	}
	var b binaries
	var err error
	if b.server, err = find("/usr/sbin/mariadbd", "mariadbd", "/usr/sbin/mysqld"); err != nil {
		return b, err
	}
	if b.installDB, err = find("/usr/bin/mariadb-install-db", "mariadb-install-db", "mysql_install_db"); err != nil {
		return b, err
	}
	if b.dump, err = find("/usr/bin/mariadb-dump", "mariadb-dump", "mysqldump"); err != nil {
		return b, err
	}
	if b.client, err = find("/usr/bin/mariadb", "mariadb", "mysql"); err != nil {
		return b, err
	}
	return b, nil
}

// Available reports whether the MariaDB binaries are installed (an error
// wrapping targets.ErrSetup if not).
func Available() error {
	_, err := findBinaries()
	return err
}

// Cluster is a running local MariaDB primary with replicas.
type Cluster struct {
	log      func(string, ...any)
	bin      binaries
	dir      string
	tempDir  bool
	template string              // pristine data folder, cloned for new nodes
	cred     *syscall.Credential // the mysql user, when we are root
	nodes    []*Node
	writerEP *endpoint.Proxy
	readerEP *endpoint.Proxy
	// net carries replication (replica -> primary) through per-link proxies; links maps
	// each (replica, primary) pair to the port the replica's CHANGE MASTER uses. Nil net:
	// replicas dial primaries directly.
	net   *netem.Network
	links local.Links

	// life ends on Close; every operation's context is bound to it.
	life    context.Context
	endLife context.CancelFunc
	// prioDone is closed when the goroutine keeping the nodes' priorities by role
	// (local.KeepPriority) has ended; nil until it starts.
	prioDone <-chan struct{}

	// opMu serialises reconfigurations (Failover, a node's Start/Resume
	// rejoining) so they never interleave.
	opMu sync.Mutex

	mu      sync.Mutex // guards primary, rr, closed and every node's role
	primary *Node
	rr      int
	closed  bool
}

var _ targets.Target = (*Cluster)(nil)

// Start initialises and starts a primary and opts.Replicas replicas (2 by
// default) and the writer and reader endpoints. On error nothing is left
// running.
func Start(ctx context.Context, opts targets.Options) (t targets.Target, err error) {
	if len(opts.Unsafe) > 0 {
		return nil, targets.SetupError("%s: unsafe modes are refdb's only, got %v", "mariadb", opts.Unsafe)
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
	cred, err := local.ServerUser("mysql")
	if err != nil {
		return nil, err
	}
	dir, temp, err := local.Dir(opts, "aurorabench-mariadb-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{log: local.Logf(opts), bin: bin, dir: dir, tempDir: temp, cred: cred,
		template: filepath.Join(dir, "template"), net: opts.Network}
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
		n := &Node{c: c, id: fmt.Sprintf("mariadb%d", i+1), az: fmt.Sprintf("az%d", i%3+1),
			serverID: i + 1, port: ports[i], role: targets.RoleReader}
		n.dir = filepath.Join(dir, n.id)
		n.datadir = filepath.Join(n.dir, "data")
		n.sock = filepath.Join(n.dir, "mysqld.sock")
		n.cnf = filepath.Join(n.dir, "my.cnf")
		n.errLog = filepath.Join(n.dir, "error.log")
		if len(n.sock) > socketPathLimit {
			return nil, targets.SetupError("mariadb: socket path %s is too long; use a shorter target folder", n.sock)
		}
		c.nodes = append(c.nodes, n)
	}
	c.primary = c.nodes[0]
	c.nodes[0].role = targets.RoleWriter
	var lns []local.LinkNode
	for _, n := range c.nodes {
		lns = append(lns, local.LinkNode{ID: n.id, AZ: n.az, Port: n.port})
	}
	if c.links, err = local.MakeLinks(c.net, lns); err != nil {
		return nil, targets.SetupError("mariadb: %v", err)
	}

	// The target owns its folder: data from an earlier run goes.
	for _, d := range append([]string{c.template}, nodeDirs(c.nodes)...) {
		os.RemoveAll(d)
	}
	// One mariadb-install-db, then a copy per node: initialising takes
	// seconds, copying a fresh data folder a fraction of one.
	c.log("mariadb: initialising data folder in %s", dir)
	if err := c.installTemplate(ctx); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := local.Mkdir(n.dir, 0o755, cred); err != nil {
			return nil, targets.SetupError("mariadb: %v", err)
		}
		if err := local.CopyTree(c.template, n.datadir, cred); err != nil {
			return nil, targets.SetupError("mariadb: copy data folder: %v", err)
		}
	}

	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Another process can take a port between FreePorts and the bind.
			errs[i] = local.RetryTakenPort(opts.PortBase == 0, n.port, func(p int) { n.port = p },
				func() error { return n.launch(ctx) },
				func(format string, a ...any) { c.log("mariadb: "+n.id+": "+format, a...) })
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	p := c.nodes[0]
	if err := p.exec(ctx, primarySetup()...); err != nil {
		return nil, targets.SetupError("mariadb: set up primary: %v", err)
	}
	for _, n := range c.nodes[1:] {
		if err := n.exec(ctx, c.changeMaster(n, p, "slave_pos")...); err != nil {
			return nil, targets.SetupError("mariadb: set up replica %s: %v", n.id, err)
		}
		n.setFollowing(p)
	}
	for _, n := range c.nodes {
		n.setHealthy(true)
	}
	if c.writerEP, err = endpoint.New(c.pickWriter); err != nil {
		return nil, targets.SetupError("mariadb: writer endpoint: %v", err)
	}
	if c.readerEP, err = endpoint.New(c.pickReader); err != nil {
		return nil, targets.SetupError("mariadb: reader endpoint: %v", err)
	}
	// Replicas must have the database and users before clients come.
	if err := c.waitCaughtUp(ctx, catchUpTimeout); err != nil {
		return nil, targets.SetupError("mariadb: replicas did not catch up: %v", err)
	}
	// Replicas at the priority refdb's readers get (targets.ReplicaNice), the primary at 0,
	// following failovers and restarts until Close.
	c.prioDone = local.KeepPriority(c.life, c.Nodes, c.log)
	c.log("mariadb: primary %s and %d replicas up in %v (writer %s, reader %s)",
		p.Addr(), replicas, time.Since(began).Round(time.Millisecond), c.writerEP.Addr(), c.readerEP.Addr())
	return c, nil
}

func nodeDirs(ns []*Node) []string {
	var ds []string
	for _, n := range ns {
		ds = append(ds, n.dir)
	}
	return ds
}

func (c *Cluster) installTemplate(ctx context.Context) error {
	args := []string{"--no-defaults", "--datadir=" + c.template,
		"--auth-root-authentication-method=normal", "--skip-test-db"}
	if c.cred != nil {
		// mariadb-install-db runs as root and hands the folder to mysql.
		args = append(args, "--user=mysql")
	}
	logPath := filepath.Join(c.dir, "install-db.log")
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := proc.Run(ictx, proc.Spec{Path: c.bin.installDB, Args: args, LogPath: logPath})
	if err != nil {
		return targets.SetupError("mariadb: mariadb-install-db failed: %v", oneLine(err))
	}
	return nil
}

// primarySetup creates the benchmark database and accounts. bench may read
// replication status but has neither SUPER nor READ_ONLY ADMIN, so
// read_only=ON on a replica really stops it writing.
func primarySetup() []string {
	return []string{
		"SET GLOBAL read_only=OFF",
		"DROP USER IF EXISTS ''@'localhost'",
		"CREATE DATABASE IF NOT EXISTS " + Database,
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", BenchUser, BenchPassword),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO '%s'@'%%'", Database, BenchUser),
		fmt.Sprintf("GRANT SLAVE MONITOR, BINLOG MONITOR, PROCESS ON *.* TO '%s'@'%%'", BenchUser),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", replUser, replPassword),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO '%s'@'%%'", replUser),
	}
}

// changeMaster points node n at primary p, through n's link to p when the
// target has a network. MASTER_CONNECT_RETRY=1 makes a replica reconnect
// within a second when its primary comes back after a kill or a partition
// (the default is a minute).
func (c *Cluster) changeMaster(n, p *Node, useGTID string) []string {
	port := c.links.Port(n.id, local.LinkNode{ID: p.id, Port: p.port})
	return []string{
		"STOP SLAVE",
		"SET GLOBAL read_only=ON",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=%s, MASTER_CONNECT_RETRY=1",
			port, replUser, replPassword, useGTID),
		"START SLAVE",
	}
}

// Name implements targets.Target.
func (c *Cluster) Name() string { return "mariadb" }

// Network implements targets.Networked: nil unless started with one.
func (c *Cluster) Network() *netem.Network { return c.net }

// Dialect implements targets.Target.
func (c *Cluster) Dialect() targets.Dialect { return targets.MySQL }

// WriterDSN implements targets.Target.
func (c *Cluster) WriterDSN() string {
	return targets.MySQLDSN(BenchUser, BenchPassword, c.writerEP.Addr(), Database)
}

// ReaderDSN implements targets.Target.
func (c *Cluster) ReaderDSN() string {
	return targets.MySQLDSN(BenchUser, BenchPassword, c.readerEP.Addr(), Database)
}

// Nodes implements targets.Target: primary first, then replicas, in a
// fixed order (roles change on failover, the order does not).
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

// Logs implements targets.Target: each node's error log.
func (c *Cluster) Logs() map[string]string {
	m := map[string]string{}
	for _, n := range c.nodes {
		m[n.id] = n.errLog
	}
	return m
}

// pickWriter routes writer connections to the current primary, dead or
// not: clients see connection errors until a failover, as with a DNS name.
func (c *Cluster) pickWriter() (string, bool) {
	p := c.Primary()
	if p == nil {
		return "", false
	}
	return p.Addr(), true
}

// pickReader spreads reader connections round-robin over the healthy
// replicas (running, not paused, replicating), falling back to the primary
// when there is none.
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

// waitCaughtUp waits until every healthy replica has applied everything
// the primary has binlogged.
func (c *Cluster) waitCaughtUp(ctx context.Context, timeout time.Duration) error {
	p := c.Primary()
	var pos string
	if err := p.queryRow(ctx, "SELECT @@gtid_binlog_pos", &pos); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if n == p || !n.live() {
			continue
		}
		var r sql.NullInt64
		wctx, cancel := context.WithTimeout(ctx, timeout+queryTimeout)
		err := n.queryRow(wctx, "SELECT MASTER_GTID_WAIT(?, ?)", &r, pos, int(timeout.Seconds()))
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", n.id, err)
		}
		if !r.Valid || r.Int64 != 0 {
			return fmt.Errorf("%s did not reach %s", n.id, pos)
		}
	}
	return nil
}

// Failover promotes the most advanced replica, as orchestrator would.
//
// The old primary is fenced by killing it (we own its process; a real
// failover would fence it with STONITH or by cutting it off): it becomes a
// reader that stays down until its Start, which makes it rejoin as a
// replica. Replicas that cannot be reached in time (paused, killed) are
// left out and repointed when they are resumed or started.
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

	// 1. Stop every reachable replica's IO thread: nothing more arrives,
	// so each one's position is final once it has applied its relay log.
	type cand struct {
		n     *Node
		ioPos string
		seq   uint64
	}
	var cands []*cand
	for _, n := range c.nodes {
		if n == old || !n.running() || n.paused() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		err := n.exec(qctx, "STOP SLAVE IO_THREAD")
		var st map[string]string
		if err == nil {
			st, err = n.slaveStatus(qctx)
		}
		cancel()
		if err != nil {
			c.log("mariadb failover: skipping %s: %v", n.id, err)
			continue
		}
		cands = append(cands, &cand{n: n, ioPos: st["Gtid_IO_Pos"]})
	}
	if len(cands) == 0 {
		return errors.New("mariadb failover: no reachable replica to promote")
	}

	// 2. Fence the old primary.
	if old != nil {
		if err := old.Kill(ctx); err != nil {
			return fmt.Errorf("mariadb failover: fence %s: %w", old.id, err)
		}
	}

	// 3. Let each candidate apply what it received (bounded), then read
	// how far it got.
	var wg sync.WaitGroup
	for _, cd := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cd.ioPos != "" {
				var r sql.NullInt64
				wctx, cancel := context.WithTimeout(ctx, applyWait+queryTimeout)
				err := cd.n.queryRow(wctx, "SELECT MASTER_GTID_WAIT(?, ?)", &r, cd.ioPos, applyWait.Seconds())
				cancel()
				if err != nil || !r.Valid || r.Int64 != 0 {
					c.log("mariadb failover: %s did not apply its relay log in %v", cd.n.id, applyWait)
				}
			}
			qctx, cancel := context.WithTimeout(ctx, queryTimeout)
			var pos string
			if err := cd.n.queryRow(qctx, "SELECT @@gtid_slave_pos", &pos); err == nil {
				cd.seq = gtidSeq(pos, 0)
			}
			cancel()
		}()
	}
	wg.Wait()
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].seq > cands[j].seq })
	best := cands[0].n

	// 4. Promote it.
	pctx, cancel := context.WithTimeout(ctx, queryTimeout)
	err := best.exec(pctx, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only=OFF")
	cancel()
	if err != nil {
		return fmt.Errorf("mariadb failover: promote %s: %w", best.id, err)
	}
	c.mu.Lock()
	c.primary = best
	best.role = targets.RoleWriter
	if old != nil {
		old.role = targets.RoleReader
	}
	c.mu.Unlock()
	best.setFollowing(nil)
	c.writerEP.DropAll()
	c.readerEP.DropBackend(best.Addr())
	promoted := time.Since(began)

	// 5. Repoint the other replicas; slave_pos is their applied position,
	// which the new primary's binlog (log_slave_updates) continues.
	for _, cd := range cands[1:] {
		rctx, cancel := context.WithTimeout(ctx, queryTimeout)
		err := cd.n.exec(rctx, c.changeMaster(cd.n, best, "slave_pos")...)
		cancel()
		if err != nil {
			c.log("mariadb failover: repoint %s: %v (retried on its Resume/Start)", cd.n.id, err)
			continue
		}
		cd.n.setFollowing(best)
	}
	// Replicas that were paused when the failover began and have been
	// resumed since.
	for _, n := range c.nodes {
		if n == best || n == old || !n.running() || n.paused() {
			continue
		}
		c.mu.Lock()
		stale := n.following != best
		c.mu.Unlock()
		if stale {
			if err := c.rejoin(ctx, n); err != nil {
				c.log("mariadb failover: repoint %s: %v", n.id, err)
				continue
			}
			n.setHealthy(true)
		}
	}
	c.log("mariadb failover: promoted %s (seq %d) in %v, done in %v", best.id, cands[0].seq,
		promoted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	return nil
}

// gtidSeq returns the sequence number for domain in a GTID list such as
// "0-1-100,1-2-5" (0 if absent).
func gtidSeq(list string, domain uint64) uint64 {
	for _, g := range parseGTIDs(list) {
		if g.domain == domain {
			return g.seq
		}
	}
	return 0
}

type gtid struct{ domain, server, seq uint64 }

func parseGTIDs(list string) []gtid {
	var gs []gtid
	for _, part := range strings.Split(list, ",") {
		f := strings.Split(strings.TrimSpace(part), "-")
		if len(f) != 3 {
			continue
		}
		d, e1 := strconv.ParseUint(f[0], 10, 64)
		s, e2 := strconv.ParseUint(f[1], 10, 64)
		q, e3 := strconv.ParseUint(f[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			continue
		}
		gs = append(gs, gtid{d, s, q})
	}
	return gs
}

// diverged reports whether a node whose GTID position is pos holds
// transactions the primary never had: for each domain, the primary's
// binlog state must contain the node's last GTID (same server id, at least
// that sequence number). This is what happens to an old primary whose last
// writes never reached the replica that was promoted.
func diverged(pos, primaryState string) bool {
	state := parseGTIDs(primaryState)
	for _, g := range parseGTIDs(pos) {
		found := false
		for _, s := range state {
			if s.domain == g.domain && s.server == g.server && s.seq >= g.seq {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// rejoin makes a started non-primary node replicate from the current
// primary. A node that diverged (an old primary with writes the promoted
// replica never got) is rebuilt from a dump of the primary: MariaDB cannot
// roll those transactions back, and keeping them would leave the node with
// rows the cluster lost, breaking replication at the first key conflict.
// Otherwise it resumes from MASTER_USE_GTID=current_pos, which for an old
// primary is its own last binlogged GTID and for a replica its applied
// position.
func (c *Cluster) rejoin(ctx context.Context, n *Node) error {
	p := c.Primary()
	if p == nil || p == n {
		return nil
	}
	if p.running() {
		var pos, state string
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		err := n.queryRow(qctx, "SELECT @@gtid_current_pos", &pos)
		if err == nil {
			err = p.queryRow(qctx, "SELECT @@gtid_binlog_state", &state)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("mariadb: rejoin %s: %w", n.id, err)
		}
		if diverged(pos, state) {
			c.log("mariadb: %s diverged (at %s, primary has %s): rebuilding it from %s", n.id, pos, state, p.id)
			if err := c.rebuild(ctx, n, p); err != nil {
				return err
			}
		}
	} else {
		c.log("mariadb: primary %s is down; %s will replicate from it when it is back", p.id, n.id)
	}
	rctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := n.exec(rctx, c.changeMaster(n, p, "current_pos")...); err != nil {
		return fmt.Errorf("mariadb: rejoin %s: %w", n.id, err)
	}
	n.setFollowing(p)
	return nil
}

// gtidPosMarker precedes the dump's GTID position; --master-data=2 writes
// it as a comment, which we execute ourselves after loading.
const gtidPosMarker = `gtid_slave_pos='`

// rebuild replaces n's data with a consistent dump of primary p's user
// databases and sets its replication position to the dump's GTID.
func (c *Cluster) rebuild(ctx context.Context, n *Node, p *Node) error {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, rebuildTimeout)
	defer cancel()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("mariadb: rebuild %s: %s", n.id, fmt.Sprintf(format, args...))
	}
	dbs, err := p.query(ctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ('mysql','information_schema','performance_schema','sys')")
	if err != nil {
		return fail("%v", err)
	}

	n.Kill(ctx)
	if err := os.RemoveAll(n.datadir); err != nil {
		return fail("%v", err)
	}
	if err := local.CopyTree(c.template, n.datadir, c.cred); err != nil {
		return fail("copy data folder: %v", err)
	}
	if err := n.launch(ctx); err != nil {
		return err
	}
	// Accounts exist only in the mysql schema, which is not dumped: create
	// them locally without binlogging, as replication created them on the
	// other nodes.
	setup := []string{"SET sql_log_bin=0"}
	for _, s := range primarySetup() {
		if !strings.HasPrefix(s, "SET GLOBAL read_only") {
			setup = append(setup, s)
		}
	}
	if err := n.exec(ctx, setup...); err != nil {
		return fail("accounts: %v", err)
	}
	if len(dbs) > 0 {
		dump := filepath.Join(n.dir, "rebuild.sql")
		defer os.Remove(dump)
		args := append([]string{"--no-defaults", "--socket=" + p.sock, "--user=root",
			"--single-transaction", "--gtid", "--master-data=2", "--routines", "--events", "--triggers",
			"--databases"}, dbs...)
		if err := proc.Run(ctx, proc.Spec{Path: c.bin.dump, Args: args, StdoutPath: dump,
			LogPath: filepath.Join(n.dir, "rebuild.log")}); err != nil {
			return fail("dump: %v", oneLine(err))
		}
		b, err := os.ReadFile(dump)
		if err != nil {
			return fail("%v", err)
		}
		s := string(b)
		i := strings.Index(s, gtidPosMarker)
		if i < 0 {
			return fail("dump has no GTID position")
		}
		s = s[i+len(gtidPosMarker):]
		pos := s[:strings.IndexByte(s, '\'')]
		if err := proc.Run(ctx, proc.Spec{Path: c.bin.client,
			Args: []string{"--no-defaults", "--socket=" + n.sock, "--user=root",
				"--init-command=SET sql_log_bin=0"},
			StdinPath: dump, LogPath: filepath.Join(n.dir, "rebuild.log")}); err != nil {
			return fail("load: %v", oneLine(err))
		}
		if err := n.exec(ctx, "RESET MASTER", fmt.Sprintf("SET GLOBAL gtid_slave_pos='%s'", pos)); err != nil {
			return fail("%v", err)
		}
		c.log("mariadb: rebuilt %s from %s at %s in %v", n.id, p.id, pos, time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// Close stops every node (SIGTERM, SIGKILL after a short grace), closes the
// endpoints and removes the folder if it is a temp folder.
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

var errClosed = errors.New("mariadb: cluster is closed")

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
