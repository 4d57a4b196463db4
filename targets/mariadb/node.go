package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/internal/local"
	"github.com/aurorabench/aurorabench/targets/proc"
)

// Node is one mariadbd of the cluster.
type Node struct {
	c        *Cluster
	id, az   string
	serverID int
	port     int
	dir      string // the node's folder, owned by the server user
	datadir  string
	sock     string
	cnf      string
	errLog   string

	// Guarded by c.mu, like the cluster's primary pointer, so that roles
	// and process state are read consistently by the endpoints.
	role      targets.Role
	p         *proc.Process
	healthy   bool  // configured and replicating (or primary)
	following *Node // the primary this replica was last pointed at
}

var _ targets.Node = (*Node)(nil)

func (n *Node) ID() string   { return n.id }
func (n *Node) AZ() string   { return n.az }
func (n *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// DSN connects straight to this node as the bench user.
func (n *Node) DSN() string { return targets.MySQLDSN(BenchUser, BenchPassword, n.Addr(), Database) }

func (n *Node) Role() targets.Role {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.role
}

// PID is the mariadbd process id, 0 when it is not running.
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

// Kill sends SIGKILL to mariadbd and waits until it is gone.
func (n *Node) Kill(ctx context.Context) error {
	p := n.proc()
	n.setHealthy(false)
	if p == nil {
		return nil
	}
	return p.Kill()
}

// Pause stops mariadbd (SIGSTOP): connections hang, nothing is refused.
func (n *Node) Pause(ctx context.Context) error {
	p := n.proc()
	if p == nil || p.Exited() {
		return fmt.Errorf("mariadb: %s is not running", n.id)
	}
	return p.Pause()
}

// Resume continues a paused mariadbd. A replica that missed a failover
// while paused is repointed at the current primary (the end of Failover
// does it too, for one resumed while the failover ran).
func (n *Node) Resume(ctx context.Context) error {
	p := n.proc()
	if p == nil || p.Exited() {
		return fmt.Errorf("mariadb: %s is not running", n.id)
	}
	if err := p.Resume(); err != nil {
		return err
	}
	n.c.mu.Lock()
	stale := n.role == targets.RoleReader && n.following != n.c.primary && n.c.primary != n
	closed := n.c.closed
	n.c.mu.Unlock()
	if stale && !closed {
		ctx, cancel := local.Bind(ctx, n.c.life)
		defer cancel()
		n.c.opMu.Lock()
		defer n.c.opMu.Unlock()
		if n.c.isClosed() {
			return errClosed
		}
		// rejoin, as on Start: rebuilt if it got ahead of the new primary.
		if err := n.c.rejoin(ctx, n); err != nil {
			return fmt.Errorf("mariadb: repoint %s after resume: %w", n.id, err)
		}
		n.setHealthy(true)
	}
	return nil
}

// Start starts a killed node again. The primary restarts as primary; any
// other node rejoins as a replica of the current primary (rebuilt first if
// it diverged, see Cluster.rejoin). A running node is left alone.
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
	if err := n.launch(ctx); err != nil {
		return err
	}
	if n.c.Primary() == n {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		if err := n.exec(qctx, "SET GLOBAL read_only=OFF"); err != nil {
			return fmt.Errorf("mariadb: %s: %w", n.id, err)
		}
	} else if err := n.c.rejoin(ctx, n); err != nil {
		return err
	}
	n.setHealthy(true)
	n.c.log("mariadb: %s started as %s in %v", n.id, n.Role(), time.Since(began).Round(time.Millisecond))
	return nil
}

// stop shuts mariadbd down cleanly if it can within stopGrace.
func (n *Node) stop(ctx context.Context) {
	n.setHealthy(false)
	if p := n.proc(); p != nil {
		p.Stop(ctx, syscall.SIGTERM, stopGrace)
	}
}

func (n *Node) config() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("[mariadbd]")
	w("datadir=%s", n.datadir)
	w("socket=%s", n.sock)
	w("pid-file=%s", filepath.Join(n.dir, "mariadbd.pid"))
	w("port=%d", n.port)
	w("bind-address=127.0.0.1")
	w("skip-name-resolve")
	w("log-error=%s", n.errLog)
	w("server-id=%d", n.serverID)
	w("report-host=127.0.0.1")
	w("report-port=%d", n.port)
	w("# GTID replication, row-based, every node binlogs what it applies so")
	w("# that any replica can become the primary.")
	w("log-bin=mysql-bin")
	w("relay-log=relay-bin")
	w("binlog_format=ROW")
	w("log_slave_updates=ON")
	w("gtid_strict_mode=ON")
	w("# Durable commit, as refdb (fsync on commit).")
	w("innodb_flush_log_at_trx_commit=1")
	w("sync_binlog=1")
	w("# Parallel apply, optimistic mode (in-order commit): see package doc.")
	w("slave_parallel_threads=8")
	w("slave_parallel_mode=optimistic")
	w("# Every node starts read-only and without replicating; the cluster")
	w("# then makes it the primary or points it at the current primary, so a")
	w("# restarted node never takes writes or follows a stale primary.")
	w("read_only=ON")
	w("skip-slave-start")
	w("performance_schema=OFF")
	w("innodb_buffer_pool_size=128M")
	w("max_connections=200")
	w("character-set-server=utf8mb4")
	w("collation-server=utf8mb4_general_ci")
	return b.String()
}

// launch writes the config, starts mariadbd and waits until it answers
// over its socket and TCP port.
func (n *Node) launch(ctx context.Context) error {
	c := n.c
	if err := local.WriteFile(n.cnf, []byte(n.config()), 0o644, c.cred); err != nil {
		return targets.SetupError("mariadb: %v", err)
	}
	// --defaults-file must be first, or /etc/mysql/my.cnf is read too.
	args := []string{"--defaults-file=" + n.cnf}
	if c.cred != nil {
		// We already run it as mysql (setuid in the child, so Pdeathsig
		// holds); --user=mysql then only confirms it and never lets it run
		// as root.
		args = append(args, "--user=mysql")
	}
	logFrom, outFrom := proc.LogSize(n.errLog), proc.LogSize(filepath.Join(n.dir, "mariadbd.out"))
	p, err := proc.Start(proc.Spec{Path: c.bin.server, Args: args, Cred: c.cred,
		LogPath: filepath.Join(n.dir, "mariadbd.out")})
	if err != nil {
		return targets.SetupError("mariadb: start %s: %v", n.id, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		p.Kill()
		return errClosed
	}
	n.p = p
	c.mu.Unlock()
	err = local.Poll(ctx, startTimeout, pollInterval, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, &local.Permanent{Err: n.startError(p, logFrom, outFrom)}
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
		var se error = err
		if !errors.Is(err, targets.ErrSetup) {
			se = targets.SetupError("mariadb: %s did not start: %v", n.id, oneLine(err))
		}
		return se
	}
	return nil
}

// startError explains why mariadbd exited during start, from its log.
func (n *Node) startError(p *proc.Process, logFrom, outFrom int64) error {
	line := proc.LastLine(n.errLog, logFrom, "Bind on TCP/IP port", "[ERROR]")
	if line == "" {
		line = proc.LastLine(filepath.Join(n.dir, "mariadbd.out"), outFrom)
	}
	if line == "" {
		line = fmt.Sprint(p.Err())
	}
	return targets.SetupError("mariadb: %s exited during start: %s", n.id, line)
}

// admin opens a one-connection pool to the node as root over its socket.
// One connection, so session settings (sql_log_bin) hold across exec's
// statements.
func (n *Node) admin() (*sql.DB, error) {
	if _, err := os.Stat(n.sock); err != nil {
		return nil, fmt.Errorf("%s: no socket", n.id)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("root@unix(%s)/?timeout=3s&readTimeout=60s&writeTimeout=30s&interpolateParams=true", n.sock))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// exec runs statements in order on one admin connection.
func (n *Node) exec(ctx context.Context, stmts ...string) error {
	db, err := n.admin()
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstWords(s), err)
		}
	}
	return nil
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func (n *Node) queryRow(ctx context.Context, q string, dest any, args ...any) error {
	db, err := n.admin()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRowContext(ctx, q, args...).Scan(dest)
}

// query returns the first column of every row.
func (n *Node) query(ctx context.Context, q string, args ...any) ([]string, error) {
	db, err := n.admin()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// slaveStatus returns SHOW SLAVE STATUS as column -> value (empty map when
// the node is not a replica).
func (n *Node) slaveStatus(ctx context.Context) (map[string]string, error) {
	db, err := n.admin()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, col := range cols {
			m[col] = vals[i].String
		}
	}
	return m, rows.Err()
}
