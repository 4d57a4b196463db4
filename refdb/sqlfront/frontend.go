// Package sqlfront serves the engine over the MySQL protocol with go-mysql-server v0.20:
// the database provider, tables with primary and secondary index lookups, DDL, sessions with
// engine transactions (autocommit, BEGIN/COMMIT/ROLLBACK, savepoints), users, read-only mode,
// @@version and Aurora's information_schema.replica_host_status.
package sqlfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/mysql_db"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/sirupsen/logrus"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/handoff"
)

// Version is what @@version and the handshake report.
const Version = "8.0.31-refdb"

// Config configures a Frontend.
type Config struct {
	Engine *engine.Engine
	// Listen is the MySQL address, e.g. 127.0.0.1:3306 (port 0 picks one; see Addr).
	Listen string
	// User and Password: the account clients log in with (mysql_native_password). There is no
	// anonymous access.
	User, Password string
	// ReadOnly rejects writes with error 1290, as --read-only does.
	ReadOnly bool
	// ServerID names this instance in information_schema.replica_host_status.
	ServerID string
	// LockWaitTimeout is the default of innodb_lock_wait_timeout (whole seconds; default 50s).
	LockWaitTimeout time.Duration
	// ReplicaStatus lists the rows of information_schema.replica_host_status.
	ReplicaStatus func() []ReplicaStatus
	// System carries out ALTER SYSTEM (Aurora's fault injection) on a writer; nil refuses it.
	System SystemHandler
	Logger *slog.Logger
}

// ReplicaStatus is one row of information_schema.replica_host_status.
type ReplicaStatus struct {
	ServerID   string
	SessionID  string
	DurableLSN uint64
	HighestLSN uint64
	LagMillis  float64
	LastUpdate time.Time
}

// Frontend is a running MySQL-protocol server over an engine.
type Frontend struct {
	cfg Config
	// dropConns holds the ids of connections to close once their statement returns (a
	// commit of unknown outcome); see Session.CommitTransaction.
	dropConns sync.Map
	eng       atomic.Pointer[engine.Engine]
	gms       *sqle.Engine
	srv       *server.Server
	ln        *trackingListener
	log       *slog.Logger
	readOnly  atomic.Bool

	// points are the prepared statements executed as point gets (pointget.go); pointsRun
	// counts the executions.
	points    preparedPlans[pointGet]
	pointsRun atomic.Uint64
	// ranges are the prepared statements executed as primary-key range scans (rangescan.go);
	// rangesRun counts the executions.
	ranges    preparedPlans[rangeScan]
	rangesRun atomic.Uint64
	// writes are the prepared statements executed as point writes (pointwrite.go); writesRun
	// counts the executions.
	writes    preparedPlans[pointWrite]
	writesRun atomic.Uint64
	// inserts are the prepared statements executed as point inserts (pointinsert.go);
	// insertsRun counts the executions.
	inserts    preparedPlans[pointInsert]
	insertsRun atomic.Uint64
	// txnCtlRun counts prepared BEGIN and COMMIT executed without go-mysql-server's planning
	// (txnctl.go).
	txnCtlRun atomic.Uint64

	metaMu sync.Mutex
	metas  map[uint32]*tableMeta

	serveDone chan struct{}
	serving   atomic.Bool
}

var sysVarsOnce sync.Once

// New builds the server and starts listening; call Serve to accept connections.
func New(cfg Config) (*Frontend, error) {
	if cfg.Engine == nil {
		return nil, errors.New("sqlfront: no engine")
	}
	if cfg.User == "" {
		return nil, errors.New("sqlfront: a user is required (no anonymous access)")
	}
	if cfg.LockWaitTimeout == 0 {
		cfg.LockWaitTimeout = 50 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ServerID == "" {
		cfg.ServerID = "refdb"
	}
	f := &Frontend{cfg: cfg, log: cfg.Logger, metas: map[uint32]*tableMeta{}, serveDone: make(chan struct{})}
	f.eng.Store(cfg.Engine)
	f.readOnly.Store(cfg.ReadOnly)
	// go-mysql-server logs every failed query at warning level through logrus; our callers log
	// through slog, and a failed statement is the client's business.
	logrus.SetOutput(io.Discard)
	sysVarsOnce.Do(func() {
		sql.SystemVariables.AddSystemVariables([]sql.SystemVariable{
			&sql.MysqlSystemVariable{Name: "innodb_lock_wait_timeout", Scope: sql.GetMysqlScope(sql.SystemVariableScope_Both),
				Dynamic: true, Type: types.NewSystemIntType("innodb_lock_wait_timeout", 1, 1073741824, false), Default: int64(50)},
		})
		// A client may not set these to what refdb does not do (see each).
		guardRoleVariables()
		guardIsolation()
	})
	secs := int64(cfg.LockWaitTimeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	if err := sql.SystemVariables.AssignValues(map[string]any{"version": Version, "version_comment": "refdb (Aurora reference)",
		"innodb_lock_wait_timeout": secs, "secure_file_priv": noServerFiles}); err != nil {
		return nil, fmt.Errorf("sqlfront: system variables: %w", err)
	}
	enableRules()
	f.gms = sqle.NewDefault(&Provider{fe: f})
	cat := f.gms.Analyzer.Catalog
	// Accounts live in memory only (accounts.go refuses the statements that would change
	// them); FLUSH PRIVILEGES persists them through this, and succeeds as a no-op.
	cat.MySQLDb.SetPersister(&mysql_db.NoopPersister{})
	ed := cat.MySQLDb.Editor()
	cat.MySQLDb.AddSuperUser(ed, cfg.User, "%", cfg.Password)
	ed.Close()
	cat.InfoSchema = &infoSchema{Database: cat.InfoSchema, fe: f}
	f.SetReadOnly(cfg.ReadOnly)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sqlfront: listen %s: %w", cfg.Listen, err)
	}
	// Endpoints on this host hand their client connections over (package handoff) instead
	// of relaying them; without that socket they still relay, so a failure here only costs
	// speed.
	if hl, err := handoff.Listen(ln, f.log); err != nil {
		f.log.Warn("connection handoff unavailable; endpoints will relay", "err", err)
	} else {
		ln = hl
	}
	f.ln = &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	ln = f.ln
	srv, err := server.NewServerWithHandler(server.Config{Protocol: "tcp", Address: ln.Addr().String(), Listener: ln, Version: Version},
		f.gms, sql.NewContext, f.newSession, nil, func(h mysql.Handler) (mysql.Handler, error) {
			return &systemHandler{Handler: h, fe: f}, nil
		})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("sqlfront: server: %w", err)
	}
	f.srv = srv
	return f, nil
}

// Addr is the address the server listens on.
func (f *Frontend) Addr() string { return f.ln.Addr().String() }

// PointGets is how many prepared statements were executed as point gets (see pointget.go).
func (f *Frontend) PointGets() uint64 { return f.pointsRun.Load() }

// RangeScans is how many prepared statements were executed as primary-key range scans (see
// rangescan.go).
func (f *Frontend) RangeScans() uint64 { return f.rangesRun.Load() }

// PointWrites is how many prepared statements were executed as point writes (see
// pointwrite.go).
func (f *Frontend) PointWrites() uint64 { return f.writesRun.Load() }

// PointInserts is how many prepared statements were executed as point inserts (see
// pointinsert.go).
func (f *Frontend) PointInserts() uint64 { return f.insertsRun.Load() }

// TxnControls is how many prepared BEGIN and COMMIT statements ran without go-mysql-server's
// planning (see txnctl.go).
func (f *Frontend) TxnControls() uint64 { return f.txnCtlRun.Load() }

// Engine is the engine behind the server.
func (f *Frontend) Engine() *engine.Engine { return f.eng.Load() }

func (f *Frontend) engine() *engine.Engine { return f.eng.Load() }

// SetEngine switches the running server to another engine (a reader promoted to writer):
// new transactions use it; transactions open on the old engine keep their handle, so the
// caller aborts them (engine.AbortAll) to make them fail rather than mix engines.
func (f *Frontend) SetEngine(e *engine.Engine) {
	f.eng.Store(e)
	f.metaMu.Lock()
	f.metas = map[uint32]*tableMeta{}
	f.metaMu.Unlock()
}

// Serve accepts connections until Close.
func (f *Frontend) Serve() error {
	f.serving.Store(true)
	defer close(f.serveDone)
	return f.srv.Start()
}

// Close stops accepting connections, closes the open ones and waits for their handlers.
func (f *Frontend) Close() error {
	err := f.srv.Close()
	if f.serving.Load() {
		<-f.serveDone
	}
	// Closing the listener leaves client connections open; a stopped server must drop them.
	f.ln.closeAll()
	sm := f.srv.SessionManager()
	sm.WaitForClosedConnections()
	return err
}

// ReadOnly reports whether writes are refused.
func (f *Frontend) ReadOnly() bool { return f.readOnly.Load() }

// SetReadOnly switches read-only mode (a reader promoted to writer turns it off).
func (f *Frontend) SetReadOnly(on bool) {
	f.readOnly.Store(on)
	v := int8(0)
	if on {
		v = 1
	}
	_ = sql.SystemVariables.AssignValues(map[string]any{"read_only": v, "super_read_only": v})
	// go-mysql-server's own read-only flag answers 1105; the tables and the provider answer 1290.
}

// guardIsolation refuses SERIALIZABLE. refdb runs every transaction as MySQL's REPEATABLE READ
// (plain reads from a snapshot taken at its start, locking reads of the latest version), which
// also covers READ COMMITTED and READ UNCOMMITTED: it never shows less than they promise.
// SERIALIZABLE promises more (MySQL makes plain reads locking), and go-mysql-server took it
// without a word.
func guardIsolation() {
	guardVariables([]string{"transaction_isolation", "tx_isolation"}, func(ctx *sql.Context, name string, v sql.SystemVarValue) error {
		if strings.EqualFold(fmt.Sprint(v.Val), "SERIALIZABLE") {
			return sqlErr(mysql.ERNotSupportedYet, "42000", "This version of refdb doesn't yet support 'SERIALIZABLE': transactions run as REPEATABLE READ")
		}
		return nil
	})
}

// guardRoleVariables makes read_only and super_read_only follow the instance's role alone: a
// client's SET GLOBAL read_only = 0 on a reader changed what @@read_only showed, not what the
// reader refuses, and read_only = 1 on a writer refused nothing. As on Aurora, where the
// cluster sets them, a client's change is refused (1227, the SUPER privilege it lacks).
// SetReadOnly still assigns them: its context has no client session.
func guardRoleVariables() {
	guardVariables([]string{"read_only", "super_read_only"}, func(ctx *sql.Context, name string, _ sql.SystemVarValue) error {
		if _, client := ctx.Session.(*Session); client {
			return sqlErr(mysql.ERSpecifiedAccessDenied, "42000", fmt.Sprintf("Access denied; you need (at least one of) the SUPER privilege(s) for this operation: refdb sets %s by role (1 on readers, 0 on the writer)", name))
		}
		return nil
	})
}

// guardVariables re-registers go-mysql-server's system variables names with check run on every
// change of them (go-mysql-server's NotifyChanged, which may refuse it).
func guardVariables(names []string, check func(ctx *sql.Context, name string, v sql.SystemVarValue) error) {
	for _, name := range names {
		v, _, ok := sql.SystemVariables.GetGlobal(name)
		mv, isMySQL := v.(*sql.MysqlSystemVariable)
		if !ok || !isMySQL {
			continue
		}
		guarded, orig := *mv, mv.NotifyChanged
		guarded.NotifyChanged = func(ctx *sql.Context, scope sql.SystemVariableScope, v sql.SystemVarValue) error {
			if err := check(ctx, name, v); err != nil || orig == nil {
				return err
			}
			return orig(ctx, scope, v)
		}
		sql.SystemVariables.AddSystemVariables([]sql.SystemVariable{&guarded})
	}
}

func errReadOnly() error {
	return sqlErr(mysql.EROptionPreventsStatement, "HY000", "The MySQL server is running with the --read-only option so it cannot execute this statement")
}

func (f *Frontend) newSession(ctx context.Context, conn *mysql.Conn, addr string) (sql.Session, error) {
	host, user := "", ""
	if u, ok := conn.UserData.(sql.MysqlConnectionUser); ok {
		host, user = u.Host, u.User
	}
	client := sql.Client{Address: host, User: user, Capabilities: conn.Capabilities}
	return &Session{BaseSession: sql.NewBaseSessionWithClientServer(addr, client, conn.ConnectionID), fe: f}, nil
}

// meta returns the go-mysql-server form of a table definition, built once per version.
func (f *Frontend) meta(def *engine.TableDef) (*tableMeta, error) {
	f.metaMu.Lock()
	defer f.metaMu.Unlock()
	if m := f.metas[def.ID]; m != nil && m.def == def {
		return m, nil
	}
	m, err := buildMeta(def)
	if err != nil {
		return nil, err
	}
	f.metas[def.ID] = m
	return m, nil
}

// infoSchema adds refdb's tables to go-mysql-server's information_schema.
type infoSchema struct {
	sql.Database
	fe *Frontend
}

const replicaHostStatus = "replica_host_status"

func (i *infoSchema) GetTableInsensitive(ctx *sql.Context, name string) (sql.Table, bool, error) {
	if equalFold(name, replicaHostStatus) {
		return &replicaTable{fe: i.fe}, true, nil
	}
	return i.Database.GetTableInsensitive(ctx, name)
}

func (i *infoSchema) GetTableNames(ctx *sql.Context) ([]string, error) {
	names, err := i.Database.GetTableNames(ctx)
	return append(names, replicaHostStatus), err
}

func equalFold(a, b string) bool { return len(a) == len(b) && (a == b || lower(a) == lower(b)) }

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// replicaTable is information_schema.replica_host_status, Aurora's replica lag view.
type replicaTable struct{ fe *Frontend }

var replicaSchema = sql.Schema{
	{Name: "SERVER_ID", Type: types.LongText, Source: replicaHostStatus},
	{Name: "SESSION_ID", Type: types.LongText, Source: replicaHostStatus},
	{Name: "DURABLE_LSN", Type: types.Uint64, Source: replicaHostStatus},
	{Name: "HIGHEST_LSN_RECEIVED", Type: types.Uint64, Source: replicaHostStatus},
	{Name: "REPLICA_LAG_IN_MILLISECONDS", Type: types.Float64, Source: replicaHostStatus},
	{Name: "LAST_UPDATE_TIMESTAMP", Type: types.DatetimeMaxPrecision, Source: replicaHostStatus},
}

func (r *replicaTable) Name() string               { return replicaHostStatus }
func (r *replicaTable) String() string             { return replicaHostStatus }
func (r *replicaTable) Schema() sql.Schema         { return replicaSchema }
func (r *replicaTable) Collation() sql.CollationID { return sql.Collation_Default }
func (r *replicaTable) Partitions(*sql.Context) (sql.PartitionIter, error) {
	return &partitionIter{}, nil
}
func (r *replicaTable) PartitionRows(*sql.Context, sql.Partition) (sql.RowIter, error) {
	var rows []sql.Row
	if r.fe.cfg.ReplicaStatus != nil {
		for _, s := range r.fe.cfg.ReplicaStatus() {
			rows = append(rows, sql.NewRow(s.ServerID, s.SessionID, s.DurableLSN, s.HighestLSN, s.LagMillis, s.LastUpdate))
		}
	}
	return sql.RowsToRowIter(rows...), nil
}

// trackingListener remembers accepted connections so Close can drop them.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
