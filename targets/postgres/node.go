package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/internal/local"
	"github.com/aurorabench/aurorabench/targets/proc"
)

// Node is one postmaster (with its backends) of the cluster.
type Node struct {
	c       *Cluster
	id, az  string
	port    int
	dir     string // the node's folder (also its socket folder), owned by postgres
	datadir string
	logPath string

	// Guarded by c.mu.
	role      targets.Role
	p         *proc.Process
	healthy   bool  // configured and streaming (or primary)
	following *Node // the primary this standby was last pointed at
}

var _ targets.Node = (*Node)(nil)

func (n *Node) ID() string   { return n.id }
func (n *Node) AZ() string   { return n.az }
func (n *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// DSN connects straight to this node as the bench user.
func (n *Node) DSN() string {
	return targets.PostgresDSN(BenchUser, BenchPassword, n.Addr(), Database)
}

func (n *Node) Role() targets.Role {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.role
}

// PID is the postmaster's process id, 0 when it is not running.
func (n *Node) PID() int {
	p := n.proc()
	if p == nil || p.Exited() {
		return 0
	}
	return p.PID()
}

func (n *Node) proc() *proc.Process {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.p
}

func (n *Node) running() bool {
	p := n.proc()
	return p != nil && !p.Exited()
}

func (n *Node) paused() bool {
	p := n.proc()
	return p != nil && p.Paused()
}

// live: may be given client connections. Caller holds c.mu.
func (n *Node) live() bool {
	return n.healthy && n.p != nil && !n.p.Exited() && !n.p.Paused()
}

func (n *Node) setHealthy(h bool) {
	n.c.mu.Lock()
	n.healthy = h
	n.c.mu.Unlock()
}

func (n *Node) setFollowing(p *Node) {
	n.c.mu.Lock()
	n.following = p
	n.c.mu.Unlock()
}

// slot is the name of this node's physical replication slot on whichever
// node is primary.
func (n *Node) slot() string { return n.id }

// replConnInfo is how standby s reaches this node at port for streaming.
func (n *Node) replConnInfo(s *Node, port int) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s application_name=%s connect_timeout=3",
		port, replUser, replPassword, s.id)
}

// streamConnInfo is standby s's primary_conninfo for this node: through s's link to it
// when the target has a network.
func (n *Node) streamConnInfo(s *Node) string {
	return n.replConnInfo(s, n.c.links.Port(s.id, local.LinkNode{ID: n.id, Port: n.port}))
}

// adminConnInfo reaches this node as the superuser over its socket.
func (n *Node) adminConnInfo() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=3", n.dir, n.port, superuser)
}

// Kill sends SIGKILL to the postmaster's process group (every backend
// dies with it, as in a crash) and waits until it is gone.
func (n *Node) Kill(ctx context.Context) error {
	p := n.proc()
	n.setHealthy(false)
	if p == nil {
		return nil
	}
	return p.Kill()
}

// Pause stops the postmaster and its backends (SIGSTOP to the group).
func (n *Node) Pause(ctx context.Context) error {
	p := n.proc()
	if p == nil || p.Exited() {
		return fmt.Errorf("postgres: %s is not running", n.id)
	}
	return p.Pause()
}

// Resume continues a paused node. A standby that missed a failover while
// paused is repointed at the current primary (the end of Failover does it
// too, for one resumed while the failover ran).
func (n *Node) Resume(ctx context.Context) error {
	p := n.proc()
	if p == nil || p.Exited() {
		return fmt.Errorf("postgres: %s is not running", n.id)
	}
	if err := p.Resume(); err != nil {
		return err
	}
	n.c.mu.Lock()
	stale := n.role == targets.RoleReader && n.following != n.c.primary && n.c.primary != n && !n.c.closed
	n.c.mu.Unlock()
	if stale {
		ctx, cancel := local.Bind(ctx, n.c.life)
		defer cancel()
		n.c.opMu.Lock()
		defer n.c.opMu.Unlock()
		if n.c.isClosed() {
			return errClosed
		}
		if err := n.c.catchUp(ctx, n); err != nil {
			return fmt.Errorf("postgres: repoint %s after resume: %w", n.id, err)
		}
	}
	return nil
}

// Start starts a killed node again: the primary as primary, any other
// node as a standby of the current primary (see Cluster.rejoin). A running
// node is left alone.
func (n *Node) Start(ctx context.Context) error {
	ctx, cancel := local.Bind(ctx, n.c.life)
	defer cancel()
	n.c.opMu.Lock()
	defer n.c.opMu.Unlock()
	if n.c.isClosed() {
		return errClosed
	}
	if n.running() {
		return nil
	}
	began := time.Now()
	if err := n.c.rejoin(ctx, n); err != nil {
		return err
	}
	if p := n.c.Primary(); p != n {
		n.setFollowing(p)
	}
	n.setHealthy(true)
	n.c.log("postgres: %s started as %s in %v", n.id, n.Role(), time.Since(began).Round(time.Millisecond))
	return nil
}

// stop shuts the node down: SIGINT is PostgreSQL's fast shutdown (SIGTERM
// would wait for every client to disconnect).
func (n *Node) stop(ctx context.Context) {
	n.setHealthy(false)
	if p := n.proc(); p != nil {
		p.Stop(ctx, syscall.SIGINT, stopGrace)
	}
}

// writeStandbyConf makes the (stopped) node's data folder a standby of p:
// standby.signal, and primary_conninfo/primary_slot_name in
// postgresql.auto.conf, replacing whatever pg_basebackup or pg_rewind
// copied there from another node.
func (n *Node) writeStandbyConf(p *Node) error {
	cred := n.c.cred
	auto := "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n" +
		fmt.Sprintf("primary_conninfo = '%s'\nprimary_slot_name = '%s'\n", p.streamConnInfo(n), n.slot())
	if err := local.WriteFile(filepath.Join(n.datadir, "postgresql.auto.conf"), []byte(auto), 0o600, cred); err != nil {
		return err
	}
	return local.WriteFile(filepath.Join(n.datadir, "standby.signal"), nil, 0o600, cred)
}

// repoint makes a running standby stream from p (PostgreSQL 13+ restarts
// the WAL receiver when primary_conninfo is reloaded).
func (n *Node) repoint(ctx context.Context, p *Node) error {
	err := n.exec(ctx,
		fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = '%s'", p.streamConnInfo(n)),
		fmt.Sprintf("ALTER SYSTEM SET primary_slot_name = '%s'", n.slot()),
		"SELECT pg_reload_conf()")
	if err != nil {
		return err
	}
	n.setFollowing(p)
	return nil
}

// ensureSlots creates, on this primary, a slot for every other node that
// lacks one.
func (n *Node) ensureSlots(ctx context.Context) error {
	var stmts []string
	for _, o := range n.c.nodes {
		if o == n {
			continue
		}
		stmts = append(stmts, fmt.Sprintf(
			"SELECT pg_create_physical_replication_slot('%[1]s', true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '%[1]s')",
			o.slot()))
	}
	return n.exec(ctx, stmts...)
}

// waitStreaming waits until n's WAL receiver streams from p on p's
// current timeline. A standby that cannot follow p (its WAL went past the
// point where p's timeline forked) keeps streaming the old timeline or
// reconnecting, and never gets there.
func (n *Node) waitStreaming(ctx context.Context, p *Node) error {
	return local.Poll(ctx, streamingTimeout, pollInterval, func(ctx context.Context) (bool, error) {
		if !n.running() {
			return false, &local.Permanent{Err: fmt.Errorf("%s exited", n.id)}
		}
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		var walfile string
		if err := p.queryRow(qctx, "SELECT pg_walfile_name(pg_current_wal_lsn())", &walfile); err != nil {
			return false, err
		}
		tli, err := strconv.ParseUint(walfile[:8], 16, 32)
		if err != nil {
			return false, err
		}
		var k int
		err = n.queryRow(qctx, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming' AND received_tli = $1", &k, int64(tli))
		if err == nil && k == 0 {
			err = fmt.Errorf("not streaming timeline %d", tli)
		}
		return err == nil, err
	})
}

// launch starts the postmaster and waits until it accepts connections
// over its socket and TCP port. The node's identity (port, socket folder,
// name) is on the command line, since data folders are cloned.
func (n *Node) launch(ctx context.Context, timeout time.Duration) error {
	c := n.c
	logFrom := proc.LogSize(n.logPath)
	p, err := proc.Start(proc.Spec{Path: c.bin.postgres, Cred: c.cred, LogPath: n.logPath,
		Args: []string{"-D", n.datadir,
			"-c", fmt.Sprintf("port=%d", n.port),
			"-c", "unix_socket_directories=" + n.dir,
			"-c", "cluster_name=" + n.id}})
	if err != nil {
		return targets.SetupError("postgres: start %s: %v", n.id, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		p.Kill()
		return errClosed
	}
	n.p = p
	c.mu.Unlock()
	err = local.Poll(ctx, timeout, pollInterval, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			line := proc.LastLine(n.logPath, logFrom, "Address already in use", "FATAL", "PANIC")
			if line == "" {
				line = fmt.Sprint(p.Err())
			}
			return false, &local.Permanent{Err: targets.SetupError("postgres: %s exited during start: %s", n.id, line)}
		}
		if !local.PortOpen(ctx, n.Addr()) {
			return false, errors.New("port not open")
		}
		var one int
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := n.queryRow(qctx, "SELECT 1", &one); err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		p.Kill()
		if !errors.Is(err, targets.ErrSetup) {
			err = targets.SetupError("postgres: %s did not start: %v", n.id, oneLine(err))
		}
		return err
	}
	return nil
}

func (n *Node) admin() (*sql.DB, error) {
	db, err := sql.Open("pgx", n.adminConnInfo())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// exec runs statements in order on one superuser connection.
func (n *Node) exec(ctx context.Context, stmts ...string) error {
	db, err := n.admin()
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstWords(s), err)
		}
	}
	return nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 4 {
		f = f[:4]
	}
	return strings.Join(f, " ")
}

func (n *Node) queryRow(ctx context.Context, q string, dest any, args ...any) error {
	return n.queryRowN(ctx, q, []any{dest}, args...)
}

// queryRowN scans one row into several destinations.
func (n *Node) queryRowN(ctx context.Context, q string, dests []any, args ...any) error {
	db, err := n.admin()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(ctx, q, args...).Scan(dests...)
}
