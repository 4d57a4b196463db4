package sqlfront

import (
	"context"
	"fmt"
	"math"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gmssql "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	"github.com/dolthub/vitess/go/vt/sqlparser"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// Aurora's fault-injection statements, which go-mysql-server cannot parse: the MySQL handler
// is wrapped so that a statement starting with ALTER SYSTEM is parsed here, by a strict small
// parser, and never reaches go-mysql-server.
//
//	ALTER SYSTEM CRASH [INSTANCE | DISPATCHER | NODE]
//	ALTER SYSTEM SIMULATE pct PERCENT DISK FAILURE [IN DISK index | IN NODE index] FOR INTERVAL n unit
//	ALTER SYSTEM SIMULATE pct PERCENT DISK CONGESTION BETWEEN a AND b MILLISECONDS
//	    [IN DISK index | IN NODE index] FOR INTERVAL n unit
//
// unit is YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE or SECOND; IN may be left out before
// DISK/NODE. The actions are the instance's (see SystemHandler).

// CrashKind is what ALTER SYSTEM CRASH crashes.
type CrashKind string

const (
	CrashInstance   CrashKind = "INSTANCE"
	CrashDispatcher CrashKind = "DISPATCHER"
	CrashNode       CrashKind = "NODE"
)

// FaultTarget is where a simulated disk fault applies.
type FaultTarget string

const (
	TargetAll  FaultTarget = ""     // every storage node, every segment
	TargetDisk FaultTarget = "DISK" // one segment: Index = PG × 6 + node position
	TargetNode FaultTarget = "NODE" // one storage node: Index = position in the volume's node list
)

// AlterSystem is a parsed ALTER SYSTEM statement: a crash (Crash set) or a simulated disk fault
// (Fault set, with its Target and Index; Fault.AllPGs and Fault.PG are left for the executor,
// which knows the layout).
type AlterSystem struct {
	Crash  CrashKind
	Fault  redo.FaultSpec
	Target FaultTarget
	Index  int
}

func (a *AlterSystem) String() string {
	if a.Crash != "" {
		return "ALTER SYSTEM CRASH " + string(a.Crash)
	}
	s := a.Fault.Kind.String()
	if a.Fault.Kind == redo.FaultDiskCongestion {
		s += fmt.Sprintf(" [%s, %s]", a.Fault.MinDelay, a.Fault.MaxDelay)
	}
	s = fmt.Sprintf("ALTER SYSTEM SIMULATE %.3f%% %s", float64(a.Fault.MilliPercent)/1000, s)
	if a.Target != TargetAll {
		s += fmt.Sprintf(" IN %s %d", a.Target, a.Index)
	}
	return s + " FOR " + a.Fault.Duration.String()
}

// SystemHandler carries out ALTER SYSTEM statements on a writer instance. Errors that are not
// *mysql.SQLError reach the client as error 1105.
type SystemHandler interface {
	AlterSystem(ctx context.Context, stmt *AlterSystem) error
}

// IsAlterSystem reports whether query's first statement is an ALTER SYSTEM statement (its
// first two words are ALTER and SYSTEM).
func IsAlterSystem(query string) bool {
	f := strings.Fields(firstStatement(query))
	return len(f) >= 2 && strings.EqualFold(f[0], "ALTER") && strings.EqualFold(strings.TrimSuffix(f[1], ";"), "SYSTEM")
}

// firstStatement is query up to its first ';' (ALTER SYSTEM has no quoted strings).
func firstStatement(query string) string {
	if i := strings.IndexByte(query, ';'); i >= 0 {
		return query[:i]
	}
	return query
}

// SyntaxError is a malformed ALTER SYSTEM statement (MySQL error 1064).
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

func syntaxErr(near string, format string, args ...any) error {
	msg := "You have an error in your SQL syntax; " + fmt.Sprintf(format, args...)
	if near == "" {
		msg += " at end of statement"
	} else {
		msg += fmt.Sprintf(" near '%s'", near)
	}
	return &SyntaxError{Msg: msg}
}

type tokens struct {
	t []string
	i int
}

func (p *tokens) peek() string {
	if p.i < len(p.t) {
		return p.t[p.i]
	}
	return ""
}

func (p *tokens) next() string {
	s := p.peek()
	if p.i < len(p.t) {
		p.i++
	}
	return s
}

// accept consumes the next token if it is word (case-insensitive).
func (p *tokens) accept(word string) bool {
	if strings.EqualFold(p.peek(), word) {
		p.i++
		return true
	}
	return false
}

func (p *tokens) expect(words ...string) error {
	for _, w := range words {
		if !p.accept(w) {
			return syntaxErr(p.peek(), "ALTER SYSTEM: expected %s", w)
		}
	}
	return nil
}

// uint reads a non-negative decimal integer no larger than max.
func (p *tokens) uint(what string, max int64) (int64, error) {
	tok := p.peek()
	n, err := strconv.ParseInt(tok, 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(tok, "+") {
		return 0, syntaxErr(tok, "ALTER SYSTEM: expected %s (a non-negative integer)", what)
	}
	if n > max {
		return 0, syntaxErr(tok, "ALTER SYSTEM: %s %d is above the limit %d", what, n, max)
	}
	p.i++
	return n, nil
}

var intervalUnits = map[string]time.Duration{
	"SECOND":  time.Second,
	"MINUTE":  time.Minute,
	"HOUR":    time.Hour,
	"DAY":     24 * time.Hour,
	"WEEK":    7 * 24 * time.Hour,
	"MONTH":   30 * 24 * time.Hour,
	"QUARTER": 91 * 24 * time.Hour,
	"YEAR":    365 * 24 * time.Hour,
}

// ParseAlterSystem parses one ALTER SYSTEM statement (an optional trailing ';' aside). Every
// malformed variant returns a *SyntaxError.
func ParseAlterSystem(query string) (*AlterSystem, error) {
	q := strings.TrimSpace(query)
	q = strings.TrimSpace(strings.TrimSuffix(q, ";"))
	if strings.ContainsAny(q, ";'\"`") {
		return nil, syntaxErr(q, "ALTER SYSTEM: unexpected quote or ';'")
	}
	p := &tokens{t: strings.Fields(q)}
	if err := p.expect("ALTER", "SYSTEM"); err != nil {
		return nil, err
	}
	var st *AlterSystem
	var err error
	switch {
	case p.accept("CRASH"):
		st, err = p.crash()
	case p.accept("SIMULATE"):
		st, err = p.simulate()
	default:
		return nil, syntaxErr(p.peek(), "ALTER SYSTEM: expected CRASH or SIMULATE")
	}
	if err != nil {
		return nil, err
	}
	if p.i != len(p.t) {
		return nil, syntaxErr(p.peek(), "ALTER SYSTEM: unexpected words after the statement")
	}
	return st, nil
}

func (p *tokens) crash() (*AlterSystem, error) {
	switch {
	case p.peek() == "":
		return &AlterSystem{Crash: CrashInstance}, nil // Aurora's default
	case p.accept("INSTANCE"):
		return &AlterSystem{Crash: CrashInstance}, nil
	case p.accept("DISPATCHER"):
		return &AlterSystem{Crash: CrashDispatcher}, nil
	case p.accept("NODE"):
		return &AlterSystem{Crash: CrashNode}, nil
	}
	return nil, syntaxErr(p.peek(), "ALTER SYSTEM CRASH: expected INSTANCE, DISPATCHER or NODE")
}

func (p *tokens) simulate() (*AlterSystem, error) {
	tok := p.next()
	pct, err := strconv.ParseFloat(tok, 64)
	if err != nil || math.IsNaN(pct) || pct < 0 || pct > 100 || strings.ContainsAny(tok, "eEinfINF+x_") {
		return nil, syntaxErr(tok, "ALTER SYSTEM SIMULATE: expected a percentage between 0 and 100")
	}
	st := &AlterSystem{Fault: redo.FaultSpec{MilliPercent: uint32(math.Round(pct * 1000))}}
	if err := p.expect("PERCENT"); err != nil {
		return nil, err
	}
	if p.accept("READ") {
		return nil, syntaxErr(p.peek(), "ALTER SYSTEM SIMULATE … READ REPLICA FAILURE is not supported by refdb; expected DISK")
	}
	if err := p.expect("DISK"); err != nil {
		return nil, err
	}
	switch {
	case p.accept("FAILURE"):
		st.Fault.Kind = redo.FaultDiskFailure
	case p.accept("CONGESTION"):
		st.Fault.Kind = redo.FaultDiskCongestion
		if err := p.expect("BETWEEN"); err != nil {
			return nil, err
		}
		maxMs := int64(redo.MaxFaultDelay / time.Millisecond)
		lo, err := p.uint("minimum delay", maxMs)
		if err != nil {
			return nil, err
		}
		if err := p.expect("AND"); err != nil {
			return nil, err
		}
		hiTok := p.peek()
		hi, err := p.uint("maximum delay", maxMs)
		if err != nil {
			return nil, err
		}
		if hi < lo {
			return nil, syntaxErr(hiTok, "ALTER SYSTEM SIMULATE: maximum delay %d below the minimum %d", hi, lo)
		}
		if err := p.expect("MILLISECONDS"); err != nil {
			return nil, err
		}
		st.Fault.MinDelay, st.Fault.MaxDelay = time.Duration(lo)*time.Millisecond, time.Duration(hi)*time.Millisecond
	default:
		return nil, syntaxErr(p.peek(), "ALTER SYSTEM SIMULATE … DISK: expected FAILURE or CONGESTION")
	}
	in := p.accept("IN")
	switch {
	case p.accept("DISK"):
		st.Target = TargetDisk
	case p.accept("NODE"):
		st.Target = TargetNode
	case in:
		return nil, syntaxErr(p.peek(), "ALTER SYSTEM SIMULATE: expected DISK or NODE after IN")
	}
	if st.Target != TargetAll {
		n, err := p.uint(string(st.Target)+" index", 1<<20)
		if err != nil {
			return nil, err
		}
		st.Index = int(n)
	}
	if err := p.expect("FOR", "INTERVAL"); err != nil {
		return nil, err
	}
	n, err := p.uint("interval", 1<<40)
	if err != nil {
		return nil, err
	}
	unitTok := p.next()
	unit, ok := intervalUnits[strings.ToUpper(unitTok)]
	if !ok {
		return nil, syntaxErr(unitTok, "ALTER SYSTEM SIMULATE: expected an interval unit (YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE or SECOND)")
	}
	if n == 0 || n > int64(redo.MaxFaultDuration/unit) {
		return nil, syntaxErr(strconv.FormatInt(n, 10), "ALTER SYSTEM SIMULATE: the interval must be above 0 and at most %s", redo.MaxFaultDuration)
	}
	st.Fault.Duration = time.Duration(n) * unit
	return st, nil
}

// systemHandler wraps go-mysql-server's MySQL handler: ALTER SYSTEM statements are answered
// here, everything else goes through.
type systemHandler struct {
	mysql.Handler
	fe *Frontend
}

// dropAfterStatement asks for connection id to be closed when its current statement returns.
func (f *Frontend) dropAfterStatement(id uint32) { f.dropConns.Store(id, struct{}{}) }

// after closes c if its statement left a commit of unknown outcome: the client then sees a
// lost connection (outcome unknown) instead of the statement's error (a definite failure).
func (h *systemHandler) after(c *mysql.Conn, err error) error {
	if _, drop := h.fe.dropConns.LoadAndDelete(c.ConnectionID); drop {
		h.fe.log.Warn("commit outcome unknown: closing the client connection", "conn", c.ConnectionID, "err", limitErrorMessage(err))
		c.Close()
	}
	return limitErrorMessage(err)
}

// maxErrorMessage is MySQL's bound on an error message (MYSQL_ERRMSG_SIZE).
const maxErrorMessage = 512

// limitErrorMessage shortens an error's message to what MySQL would send. go-mysql-server
// quotes whole values in some messages ("string '<20 MB of x>' is too large for column"), and
// an error packet larger than the client's max_allowed_packet loses the connection instead of
// reporting the error.
func limitErrorMessage(err error) error {
	if err == nil || len(err.Error()) <= maxErrorMessage {
		return err
	}
	se := gmssql.CastSQLError(err)
	msg := se.Message
	if len(msg) > maxErrorMessage {
		cut := maxErrorMessage - 3
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return mysql.NewSQLError(se.Num, se.State, "%s", msg)
}

// recoverStatement turns a panic while handling a statement into an error, logged with its
// stack, and closes the client connection after it (closing rolls back the session's
// transaction). go-mysql-server v0.20 panics on some inputs (a non-finite DOUBLE argument in
// its planner's bind step, for one); vitess would also close the connection, but silently.
// The connection cannot stay: the panic may have left a statement half done in an open
// transaction, or a commit of unknown outcome.
func (h *systemHandler) recoverStatement(c *mysql.Conn, query string, err *error) {
	x := recover()
	if x == nil {
		return
	}
	h.fe.log.Error("statement panicked: closing the client connection", "conn", c.ConnectionID,
		"query", truncateQuery(query), "panic", fmt.Sprint(x), "stack", string(debug.Stack()))
	h.fe.dropAfterStatement(c.ConnectionID)
	*err = h.after(c, sqlErr(mysql.ERUnknownError, "HY000", fmt.Sprintf("refdb: internal error: %v", x)))
}

// vitessInfoLen is the length vitess announces for every OK packet's info: it writes the info
// after a fixed byte '#' (35), the length of "Rows matched: 1  Changed: 1  Warnings: 0".
const vitessInfoLen = 35

// okInfo drops an OK packet's info shorter than vitessInfoLen ("Statement prepared", after a
// PREPARE): MariaDB's client library reads the info as a length-prefixed string and, told 35
// bytes where fewer follow, failed the statement with error 2027 (malformed packet). The OK
// packet then goes without an info, which every client reads.
func okInfo(cb mysql.ResultSpoolFn) mysql.ResultSpoolFn {
	return func(res *sqltypes.Result, more bool) error {
		if res != nil && len(res.Fields) == 0 && res.Info != "" && len(res.Info) < vitessInfoLen {
			res.Info = ""
		}
		return cb(res, more)
	}
}

// precheck refuses, before go-mysql-server sees it, a statement it would mishandle.
func (h *systemHandler) precheck(ctx context.Context, c *mysql.Conn, query string) error {
	kw := firstKeyword(query)
	if err := checkServerFiles(kw, query); err != nil {
		return err
	}
	if kw == "CALL" {
		return h.checkCall(ctx, c, query)
	}
	return nil
}

// checkCall answers 1046 (no database selected) for a CALL (query) that names no database on a
// session that has none, as MySQL does: go-mysql-server v0.20 dereferences the missing
// database there (planbuilder's buildCall) and panics, which cost the client its connection.
// Only the statement about to run is looked at (a multi-statement query comes back here for
// each of the rest).
func (h *systemHandler) checkCall(ctx context.Context, c *mysql.Conn, query string) error {
	stmt, err := sqlparser.Parse(firstStatement(query))
	if err != nil {
		return nil // go-mysql-server reports it
	}
	call, ok := stmt.(*sqlparser.Call)
	if !ok || call.ProcName.Qualifier.String() != "" {
		return nil
	}
	sqlCtx, _, ok := h.fe.statementSession(ctx, c, query)
	if !ok || sqlCtx.GetCurrentDatabase() != "" {
		return nil
	}
	return sqlErr(mysql.ERNoDb, "3D000", "No database selected")
}

// truncateQuery bounds a query for the log.
func truncateQuery(q string) string {
	if len(q) > 300 {
		return q[:300] + "..."
	}
	return q
}

// checkFiniteArgs refuses a DOUBLE or FLOAT argument that is infinite or NaN, as MySQL's
// columns cannot hold one (error 1264), before anything binds it: go-mysql-server's planner
// panics on such an argument.
func checkFiniteArgs(binds map[string]*querypb.BindVariable) error {
	for name, bv := range binds {
		if bv == nil || (bv.Type != querypb.Type_FLOAT64 && bv.Type != querypb.Type_FLOAT32) {
			continue
		}
		f, err := strconv.ParseFloat(string(bv.Value), 64)
		if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			continue
		}
		return sqlErr(1264, "22003", fmt.Sprintf("Out of range value %s for argument %s", bv.Value, strings.TrimPrefix(name, "v"))) // ER_WARN_DATA_OUT_OF_RANGE
	}
	return nil
}

func (h *systemHandler) ComStmtExecute(ctx context.Context, c *mysql.Conn, prepare *mysql.PrepareData, callback func(*sqltypes.Result) error) (err error) {
	defer h.recoverStatement(c, prepare.PrepareStmt, &err)
	if err := checkFiniteArgs(prepare.BindVars); err != nil {
		return err
	}
	if pg := h.fe.points.get(prepare); pg != nil {
		if handled, err := h.fe.execPointGet(ctx, c, pg, prepare, callback); handled {
			return err
		}
	}
	if rs := h.fe.ranges.get(prepare); rs != nil {
		if handled, err := h.fe.execRangeScan(ctx, c, rs, prepare, callback); handled {
			return err
		}
	}
	if pw := h.fe.writes.get(prepare); pw != nil {
		if handled, err := h.fe.execPointWrite(ctx, c, pw, prepare, callback); handled {
			return h.after(c, err)
		}
	}
	if pi := h.fe.inserts.get(prepare); pi != nil {
		if handled, err := h.fe.execPointInsert(ctx, c, pi, prepare, callback); handled {
			return h.after(c, err)
		}
	}
	if k := parseTxnControl(prepare.PrepareStmt); k != notTxnControl {
		if handled, err := h.fe.execTxnControl(ctx, c, k, prepare, callback); handled {
			return h.after(c, err)
		}
	}
	return h.after(c, h.Handler.ComStmtExecute(ctx, c, prepare, callback))
}

func (h *systemHandler) ComQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) (err error) {
	defer h.recoverStatement(c, query, &err)
	if err := h.precheck(ctx, c, query); err != nil {
		return h.after(c, err)
	}
	if !IsAlterSystem(query) {
		return h.after(c, h.Handler.ComQuery(ctx, c, query, okInfo(callback)))
	}
	return h.run(ctx, c, firstStatement(query), callback)
}

func (h *systemHandler) ComMultiQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) (rest string, err error) {
	defer h.recoverStatement(c, query, &err)
	if err := h.precheck(ctx, c, query); err != nil {
		return "", h.after(c, err)
	}
	if !IsAlterSystem(query) {
		rest, err := h.Handler.ComMultiQuery(ctx, c, query, okInfo(callback))
		return rest, h.after(c, err)
	}
	stmt, rest := firstStatement(query), ""
	if len(stmt) < len(query) {
		rest = strings.TrimSpace(query[len(stmt)+1:])
	}
	return rest, h.run(ctx, c, stmt, callback)
}

func (h *systemHandler) ComPrepare(ctx context.Context, c *mysql.Conn, query string, prepare *mysql.PrepareData) (fields []*querypb.Field, err error) {
	defer h.recoverStatement(c, query, &err)
	if IsAlterSystem(query) {
		return nil, sqlErr(erUnsupportedPS, "HY000", "This command is not supported in the prepared statement protocol yet")
	}
	if err := h.precheck(ctx, c, query); err != nil {
		return nil, err
	}
	fields, err = h.Handler.ComPrepare(ctx, c, query, prepare)
	switch {
	case err != nil:
		err = limitErrorMessage(err)
	case len(fields) > 0:
		sel, head, qualifierOK := parseSimpleSelect(query) // parsed once for both shapes
		if pg := pointGetOf(sel, head, qualifierOK); pg != nil && h.fe.resolvePointGet(ctx, c, pg, query) {
			pg.fields = fields
			h.fe.points.add(prepare, pg)
		} else if rs := rangeScanOf(sel, head, qualifierOK); rs != nil && h.fe.resolveRangeScan(ctx, c, rs, query) {
			rs.fields = fields
			h.fe.ranges.add(prepare, rs)
		}
	default:
		if pw := parsePointWrite(query); pw != nil && h.fe.resolvePointWrite(ctx, c, pw, query) {
			h.fe.writes.add(prepare, pw)
		} else if pi := parsePointInsert(query); pi != nil && h.fe.resolvePointInsert(ctx, c, pi, query) {
			h.fe.inserts.add(prepare, pi)
		}
	}
	return fields, err
}

func (h *systemHandler) run(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) error {
	st, err := ParseAlterSystem(query)
	if err != nil {
		return sqlErr(mysql.ERParseError, "42000", err.Error())
	}
	if h.fe.ReadOnly() {
		return errReadOnly()
	}
	sys := h.fe.cfg.System
	if sys == nil {
		return sqlErr(mysql.ERNotSupportedYet, "42000", "ALTER SYSTEM is not available on this server")
	}
	h.fe.log.Warn("ALTER SYSTEM", "conn", c.ConnectionID, "user", c.User, "statement", st.String())
	if err := sys.AlterSystem(ctx, st); err != nil {
		return toSQLError(err)
	}
	return callback(&sqltypes.Result{}, false)
}

// DropConnections closes every client connection (their sessions roll back) and keeps
// listening: ALTER SYSTEM CRASH DISPATCHER's client-visible effect.
func (f *Frontend) DropConnections() int {
	f.ln.mu.Lock()
	conns := make([]net.Conn, 0, len(f.ln.conns))
	for c := range f.ln.conns {
		conns = append(conns, c)
	}
	f.ln.mu.Unlock()
	for _, c := range conns {
		c.(*trackedConn).Conn.Close()
	}
	return len(conns)
}

// SQLError builds a MySQL error with code, SQLSTATE HY000 and message, for SystemHandler
// implementations.
func SQLError(code int, msg string) error { return sqlErr(code, "HY000", msg) }

// MySQL error codes vitess does not name.
const (
	erUnsupportedPS     = 1295 // ER_UNSUPPORTED_PS
	erGetErrno          = 1030 // ER_GET_ERRNO: "Got error %d - '%s' from storage engine"
	erErrorDuringCommit = 1180 // ER_ERROR_DURING_COMMIT: "Got error %d - '%s' during COMMIT"
)
