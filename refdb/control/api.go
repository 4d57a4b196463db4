package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// maxLongPoll bounds GET /status?wait=.
const maxLongPoll = 30 * time.Second

func (c *Control) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", c.handleStatus)
	mux.HandleFunc("POST /failover", c.handleFailover)
	mux.HandleFunc("POST /readers", c.handleAddReader)
	mux.HandleFunc("DELETE /readers/{id}", c.handleRemoveReader)
	mux.HandleFunc("POST /instances/{id}/start", c.handleStart)
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.m.reg, promhttp.HandlerOpts{}))
	return mux
}

func (c *Control) handleStatus(w http.ResponseWriter, r *http.Request) {
	if ws := r.URL.Query().Get("wait"); ws != "" {
		v, err := strconv.ParseUint(ws, 10, 64)
		if err != nil {
			instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("wait: %w", err))
			return
		}
		timeout := maxLongPoll
		if ts := r.URL.Query().Get("timeout"); ts != "" {
			d, err := time.ParseDuration(ts)
			if err != nil || d <= 0 {
				instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("timeout: want a positive duration, got %q", ts))
				return
			}
			timeout = min(d, maxLongPoll)
		}
		c.mu.Lock()
		cur, ch := c.version, c.changed
		c.mu.Unlock()
		if cur == v {
			t := time.NewTimer(timeout)
			select {
			case <-ch:
			case <-t.C:
			case <-r.Context().Done():
			case <-c.life.Done():
			}
			t.Stop()
		}
	}
	instanceapi.WriteJSON(w, http.StatusOK, c.Status())
}

// PlannedFailover makes target (or the best reader, if "") the writer. The old writer is
// stopped first (SIGTERM, then SIGKILL after a grace period) and rejoins as a reader.
func (c *Control) PlannedFailover(ctx context.Context, target string) (string, error) {
	c.mu.Lock()
	if c.failing {
		c.mu.Unlock()
		return "", ErrFailoverInProgress
	}
	w := c.file.Writer()
	if w == nil {
		c.mu.Unlock()
		return "", errors.New("the cluster has no writer")
	}
	cands := c.candidatesLocked(w.ID)
	if target != "" {
		n := c.file.Node(target)
		st := c.inst[target]
		switch {
		case n == nil || n.Kind != cluster.KindInstance:
			c.mu.Unlock()
			return "", fmt.Errorf("%w: no instance %q", errNotFound, target)
		case n.Role != cluster.RoleReader || n.Stale:
			c.mu.Unlock()
			return "", fmt.Errorf("%w: %s is not a reader", ErrNoCandidate, target)
		case st == nil || !st.ok || !st.last.Healthy:
			c.mu.Unlock()
			return "", fmt.Errorf("%w: %s is not healthy (its last heartbeat failed)", ErrNoCandidate, target)
		case st.last.LagMS > float64(c.cfg.MaxFailoverLag.Milliseconds()):
			c.mu.Unlock()
			return "", fmt.Errorf("%w: %s lags %.0f ms behind the writer (limit %s)", ErrNoCandidate, target, st.last.LagMS, c.cfg.MaxFailoverLag)
		}
	} else {
		cands = slices.DeleteFunc(cands, func(n *cluster.Node) bool {
			return c.inst[n.ID].last.LagMS > float64(c.cfg.MaxFailoverLag.Milliseconds())
		})
		if len(cands) == 0 {
			c.mu.Unlock()
			return "", fmt.Errorf("%w: no healthy reader within %s of the writer", ErrNoCandidate, c.cfg.MaxFailoverLag)
		}
		target = cands[0].ID
	}
	c.failing = true
	c.bumpLocked()
	old, pid, start := w.ID, w.PID, w.PIDStart
	c.mu.Unlock()
	c.log.Info("planned failover", "old", old, "target", target)
	// Stopping the old writer first means no commit can be acknowledged by it after the new
	// writer's recovery has computed the VDL; the new epoch would fence it anyway.
	if err := cluster.Stop(ctx, pid, start, 5*time.Second); err != nil {
		c.mu.Lock()
		c.failing = false
		c.bumpLocked()
		c.mu.Unlock()
		return "", fmt.Errorf("stopping writer %s: %w", old, err)
	}
	return c.failover(ctx, "planned", old, target)
}

var errNotFound = errors.New("not found")

func (c *Control) handleFailover(w http.ResponseWriter, r *http.Request) {
	// A failover moves the writer: a request it does not fully understand (a misspelt
	// parameter, a target sent as a body) is refused rather than read as "the best reader".
	q := r.URL.Query()
	for k := range q {
		if k != "target" {
			instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%w: unknown parameter %q (POST /failover[?target=ID])", errBadRequest, k))
			return
		}
	}
	if len(q["target"]) > 1 {
		instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%w: target given %d times", errBadRequest, len(q["target"])))
		return
	}
	if n, _ := r.Body.Read(make([]byte, 1)); n > 0 {
		instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%w: POST /failover takes no body; name the reader with ?target=ID", errBadRequest))
		return
	}
	// The failover must finish even if the client goes away: bound it by our life only.
	id, err := c.PlannedFailover(c.life, q.Get("target"))
	if err != nil {
		instanceapi.WriteError(w, errCode(err), err)
		return
	}
	instanceapi.WriteJSON(w, http.StatusOK, map[string]any{"writer": id, "status": c.Status()})
}

func errCode(err error) int {
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrFailoverInProgress), errors.Is(err, ErrNoCandidate):
		return http.StatusConflict
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

var errBadRequest = errors.New("bad request")

// AddReaderRequest is the body of POST /readers.
type AddReaderRequest struct {
	AZ   string `json:"az"`
	Tier int    `json:"tier"`
}

// AddReader starts a new reader and waits until it serves.
func (c *Control) AddReader(ctx context.Context, req AddReaderRequest) (cluster.Node, error) {
	if req.Tier < 0 || req.Tier > 15 {
		return cluster.Node{}, fmt.Errorf("%w: tier must be 0..15", errBadRequest)
	}
	secret, err := cluster.ReadSecret(c.cfg.Dir)
	if err != nil {
		return cluster.Node{}, err
	}
	c.mu.Lock()
	insts := c.file.Instances()
	if len(insts) >= cluster.MaxReaders+1 {
		c.mu.Unlock()
		return cluster.Node{}, fmt.Errorf("%w: the cluster already has %d readers", ErrNoCandidate, cluster.MaxReaders)
	}
	w := c.file.Writer()
	if w == nil || len(w.Args) == 0 {
		c.mu.Unlock()
		return cluster.Node{}, errors.New("the cluster has no writer to copy the command line from")
	}
	// The first free slot of the port scheme.
	idx := 0
	for c.file.Node(fmt.Sprintf("db%d", idx+1)) != nil {
		idx++
	}
	id := fmt.Sprintf("db%d", idx+1)
	az := req.AZ
	if az == "" {
		az = cluster.AZs[idx%len(cluster.AZs)]
	}
	if !slices.Contains(cluster.AZs, az) {
		c.mu.Unlock()
		return cluster.Node{}, fmt.Errorf("%w: unknown AZ %q (want one of %v)", errBadRequest, az, cluster.AZs)
	}
	ports := cluster.Ports{Base: c.file.PortBase}
	n := cluster.Node{ID: id, Kind: cluster.KindInstance, Role: cluster.RoleReader, AZ: az, MySQL: ports.InstanceMySQL(idx),
		Admin: ports.InstanceAdmin(idx), Tier: req.Tier, Log: filepath.Join(c.cfg.Dir, id+".log")}
	n.Args = cluster.InstanceArgs(w.Args[0], cluster.InstanceSpec{ID: id, AZ: az, Role: cluster.RoleReader, MySQL: n.MySQL,
		Admin: n.Admin, Storage: c.file.StorageList(), Secret: secret, User: c.file.User, Password: c.file.Password,
		Peers: instanceAdmins(c.file, n.Admin), Control: "http://" + c.Addr(), Database: c.file.Database,
		Unsafe: cluster.UnsafeOfArgs(w.Args)})
	p, err := cluster.Spawn(n.Args, n.Log, nil)
	if err != nil {
		c.mu.Unlock()
		return cluster.Node{}, err
	}
	n.PID, n.PIDStart = p.PID, p.Start
	c.file.Nodes = append(c.file.Nodes, n)
	c.persistLocked()
	c.watchLocked(id, n.Admin)
	c.bumpLocked()
	c.mu.Unlock()
	c.log.Info("added reader", "id", id, "az", az, "pid", p.PID)
	if err := cluster.WaitServing(ctx, p, n.Admin); err != nil {
		return n, fmt.Errorf("reader %s started (pid %d) but does not serve yet: %w", id, p.PID, err)
	}
	return n, nil
}

// RemoveReader stops a reader and removes it from the cluster.
func (c *Control) RemoveReader(ctx context.Context, id string) error {
	c.mu.Lock()
	n := c.file.Node(id)
	switch {
	case n == nil || n.Kind != cluster.KindInstance:
		c.mu.Unlock()
		return fmt.Errorf("%w: no instance %q", errNotFound, id)
	case n.Role == cluster.RoleWriter:
		c.mu.Unlock()
		return fmt.Errorf("%w: %s is the writer; fail over first", ErrNoCandidate, id)
	case c.failing:
		c.mu.Unlock()
		return ErrFailoverInProgress
	}
	if st := c.inst[id]; st != nil {
		st.cancel()
		delete(c.inst, id)
	}
	pid, start := n.PID, n.PIDStart
	c.file.Nodes = slices.DeleteFunc(c.file.Nodes, func(x cluster.Node) bool { return x.ID == id })
	c.persistLocked()
	c.bumpLocked()
	c.mu.Unlock()
	c.m.lag.DeleteLabelValues(id)
	c.log.Info("removing reader", "id", id, "pid", pid)
	return cluster.Stop(ctx, pid, start, 5*time.Second)
}

// StartInstance starts a stopped instance (a no-op if it runs).
func (c *Control) StartInstance(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, st := c.file.Node(id), c.inst[id]
	if n == nil || st == nil {
		return fmt.Errorf("%w: no instance %q", errNotFound, id)
	}
	if cluster.Alive(n.PID, n.PIDStart) || st.restarting {
		return nil
	}
	role := cluster.RoleReader
	if n.Role == cluster.RoleWriter {
		if len(c.candidatesLocked(id)) == 0 {
			role = cluster.RoleWriter
		} else {
			// The recorded writer is dead and a reader can replace it: fail over first
			// (which restarts this one as a reader). Restarting it as a reader right away
			// would leave the cluster with no writer: its process answers again, so it is
			// never found down (a heal right after a crash, before the heartbeats noticed).
			c.failWriterLocked(id, "start of a dead writer")
			return nil
		}
	}
	st.restartAt = time.Time{}
	c.restartLocked(n, st, role)
	return nil
}

func (c *Control) handleAddReader(w http.ResponseWriter, r *http.Request) {
	var req AddReaderRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err == nil && len(body) > 0 {
		// Strictly: a misspelt field ("azz") would otherwise start a reader somewhere else.
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err = dec.Decode(&req); err == nil && dec.More() {
			err = errors.New("data after the request object")
		}
	}
	if err != nil {
		instanceapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("malformed request: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(c.life, c.cfg.PromoteTimeout)
	defer cancel()
	n, err := c.AddReader(ctx, req)
	if err != nil {
		instanceapi.WriteError(w, errCode(err), err)
		return
	}
	instanceapi.WriteJSON(w, http.StatusOK, n)
}

func (c *Control) handleRemoveReader(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(c.life, 30*time.Second)
	defer cancel()
	if err := c.RemoveReader(ctx, r.PathValue("id")); err != nil {
		instanceapi.WriteError(w, errCode(err), err)
		return
	}
	instanceapi.WriteJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("id")})
}

func (c *Control) handleStart(w http.ResponseWriter, r *http.Request) {
	if err := c.StartInstance(r.PathValue("id")); err != nil {
		instanceapi.WriteError(w, errCode(err), err)
		return
	}
	instanceapi.WriteJSON(w, http.StatusOK, map[string]string{"started": r.PathValue("id")})
}

// instanceAdmins lists the admin addresses of the recorded instances plus extra: where a new
// reader looks for the writer.
func instanceAdmins(f *cluster.File, extra string) []string {
	var out []string
	for _, n := range f.Instances() {
		if n.Admin != "" {
			out = append(out, n.Admin)
		}
	}
	return append(out, extra)
}
