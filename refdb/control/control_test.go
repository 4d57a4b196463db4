package control_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/refdb/control"
	"github.com/aurorabench/aurorabench/refdb/endpoint"
	"github.com/aurorabench/aurorabench/refdb/instanceapi"
	"github.com/aurorabench/aurorabench/refdb/instanceapi/testinstance"
	"github.com/aurorabench/aurorabench/refdb/storage"
)

// multiCall makes this test binary act as the refdb processes of a cluster: real storage
// nodes, control plane and endpoints, and test instances (instanceapi + a greeting echo).
const multiCall = "REFDB_CONTROL_TEST_MULTICALL"

func TestMain(m *testing.M) {
	if os.Getenv(multiCall) == "1" {
		os.Exit(runProcess(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func runProcess(args []string) int {
	ctx, stop := signalContext()
	defer stop()
	var err error
	switch args[0] {
	case "storage":
		err = runStorage(ctx, args[1:])
	case "instance":
		err = testinstance.Main(ctx, args[1:], os.Stdout)
	case "control":
		err = control.Command(ctx, args[1:], os.Stdout, os.Stderr)
	case "endpoint":
		err = endpoint.Command(ctx, args[1:], os.Stdout, os.Stderr)
	default:
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func runStorage(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("storage", pflag.ContinueOnError)
	id := fs.String("id", "", "")
	az := fs.String("az", "", "")
	data := fs.String("data", "", "")
	listen := fs.String("listen", "", "")
	secretFile := fs.String("secret-file", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sec, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	srv, err := storage.NewServer(storage.ServerConfig{ID: *id, AZ: *az, Dir: *data, Listen: *listen,
		Secret: []byte(strings.TrimSpace(string(sec)))})
	if err != nil {
		return err
	}
	fmt.Printf("listening %s\n", srv.Addr())
	return srv.Run(ctx)
}

// waitFor polls cond until it holds; the deadline is generous because the machine is shared.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
}

var hc = &http.Client{Transport: &http.Transport{}}

func status(ctx context.Context, f *cluster.File) (cluster.Status, error) {
	var st cluster.Status
	err := instanceapi.Do(ctx, hc, http.MethodGet, f.Admin+"/status", nil, &st)
	return st, err
}

// greet connects to addr and returns the greeting line of the instance reached.
func greet(addr string) (string, net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", nil, err
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil, err
	}
	c.SetReadDeadline(time.Time{})
	return strings.TrimSpace(line), c, nil
}

func TestClusterFailover(t *testing.T) {
	defer hc.CloseIdleConnections()
	defer instanceapi.CloseIdle()
	ctx := context.Background()
	dir := t.TempDir()
	base, err := cluster.FreePortBase()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Up(ctx, cluster.Config{Dir: dir, Bin: os.Args[0], PortBase: base,
		Env:          []string{multiCall + "=1", testinstance.StateEnv + "=" + dir},
		ControlFlags: []string{"--heartbeat", "50ms", "--restart-backoff", "200ms"}})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	defer func() {
		if t.Failed() {
			dumpLog(t, filepath.Join(dir, "control.log"))
		}
		if err := c.Down(ctx); err != nil {
			t.Error(err)
		}
		// Everything the cluster ever ran (restarted instances included) is gone.
		f, err := cluster.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Nodes {
			if n.PID != 0 {
				t.Errorf("%s still recorded with pid %d after down", n.ID, n.PID)
			}
		}
		for _, pid := range pids {
			if cluster.Alive(pid, 0) {
				t.Errorf("pid %d still alive after down", pid)
			}
		}
	}()

	// cluster.json follows the contract.
	f, err := cluster.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	ports := cluster.Ports{Base: base}
	if f.WriterEndpoint != ports.WriterEndpoint() || f.ReaderEndpoint != ports.ReaderEndpoint() || f.Admin != "http://"+ports.Control() ||
		f.User != "admin" || f.Password == "" || f.Database != "bench" {
		t.Fatalf("cluster.json header: %+v", f)
	}
	azs := map[string]int{}
	for _, n := range f.Kind(cluster.KindStorage) {
		azs[n.AZ]++
		if n.Addr == "" || n.DataDir == "" || !cluster.Alive(n.PID, n.PIDStart) {
			t.Errorf("storage node %+v", n)
		}
	}
	if len(azs) != 3 || azs["az1"] != 2 || azs["az2"] != 2 || azs["az3"] != 2 {
		t.Errorf("storage AZs: %v", azs)
	}
	if w := f.Writer(); w == nil || w.ID != "db1" || w.MySQL != ports.InstanceMySQL(0) {
		t.Fatalf("writer: %+v", w)
	}
	if n := len(f.Instances()); n != 3 {
		t.Fatalf("%d instances, want 3", n)
	}
	for _, n := range f.Nodes {
		pids = append(pids, n.PID)
	}

	// A second control plane is refused while the first holds the folder.
	if _, err := control.Open(control.Config{Dir: dir, Listen: "127.0.0.1:0"}); !errors.Is(err, control.ErrAlreadyRunning) {
		t.Fatalf("second control: got %v, want ErrAlreadyRunning", err)
	}
	// So is a second cluster in the same folder.
	if _, err := cluster.Up(ctx, cluster.Config{Dir: dir, Bin: os.Args[0], PortBase: base}); !errors.Is(err, cluster.ErrRunning) {
		t.Fatalf("second up: got %v, want ErrRunning", err)
	}

	// The writer endpoint reaches the writer; the reader endpoint spreads over both readers.
	waitGreeting(t, "writer endpoint to reach db1", f.WriterEndpoint, "db1 writer")
	seen := map[string]bool{}
	waitFor(t, "reader endpoint to reach both readers", func() (bool, error) {
		g, conn, err := greet(f.ReaderEndpoint)
		if err != nil {
			return false, err
		}
		conn.Close()
		seen[g] = true
		return seen["db2 reader"] && seen["db3 reader"], fmt.Errorf("seen %v", seen)
	})
	if seen["db1 writer"] {
		t.Errorf("reader endpoint reached the writer while readers were healthy")
	}

	// Planned failover onto the writer or an unknown instance is refused with a clear code.
	for target, code := range map[string]int{"db1": http.StatusConflict, "db9": http.StatusNotFound} {
		err := instanceapi.Do(ctx, hc, http.MethodPost, f.Admin+"/failover?target="+target, nil, nil)
		var ae *instanceapi.Error
		if !errors.As(err, &ae) || ae.Code != code {
			t.Errorf("failover to %s: got %v, want %d", target, err, code)
		}
	}

	// A failover request it does not fully understand is refused, and moves nothing.
	for _, bad := range []struct {
		query string
		body  any
	}{{"?targte=db2", nil}, {"?target=db2&target=db3", nil}, {"", map[string]string{"target": "db2"}}} {
		err := instanceapi.Do(ctx, hc, http.MethodPost, f.Admin+"/failover"+bad.query, bad.body, nil)
		var ae *instanceapi.Error
		if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
			t.Errorf("failover%s with body %v: got %v, want 400", bad.query, bad.body, err)
		}
	}
	waitGreeting(t, "the writer to stay after refused failovers", f.WriterEndpoint, "db1 writer")

	// Add a reader through the admin API: it serves, and the reader endpoint reaches it; bad
	// requests start nothing.
	for _, body := range []string{`{"azz":"az1"}`, `{"az":"az9"}`, `{"tier":16}`, `{"az":"az1"} {}`, `{bad`} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.Admin+"/readers", strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /readers %s: %d, want 400", body, resp.StatusCode)
		}
	}
	var added cluster.Node
	if err := instanceapi.Do(ctx, hc, http.MethodPost, f.Admin+"/readers", control.AddReaderRequest{AZ: "az1", Tier: 2}, &added); err != nil {
		t.Fatalf("add a reader: %v", err)
	}
	if added.ID != "db4" || added.AZ != "az1" || added.Tier != 2 || !cluster.Alive(added.PID, added.PIDStart) {
		t.Fatalf("added reader %+v", added)
	}
	pids = append(pids, added.PID)
	waitFor(t, "reader endpoint to reach the added reader", func() (bool, error) {
		g, conn, err := greet(f.ReaderEndpoint)
		if err == nil {
			conn.Close()
		}
		return g == "db4 reader", fmt.Errorf("greeting %q: %v", g, err)
	})
	// The writer cannot be removed as a reader; the added reader can, and its process stops.
	var ae *instanceapi.Error
	if err := instanceapi.Do(ctx, hc, http.MethodDelete, f.Admin+"/readers/db1", nil, nil); !errors.As(err, &ae) || ae.Code != http.StatusConflict {
		t.Errorf("remove the writer: %v, want 409", err)
	}
	if err := instanceapi.Do(ctx, hc, http.MethodDelete, f.Admin+"/readers/db4", nil, nil); err != nil {
		t.Fatalf("remove the added reader: %v", err)
	}
	if cluster.Alive(added.PID, added.PIDStart) {
		t.Errorf("removed reader's process %d still runs", added.PID)
	}
	waitStatus(t, ctx, f, "the removed reader to leave the status", func(st cluster.Status) (bool, error) {
		return st.Node("db4") == nil && len(st.Instances()) == 3, fmt.Errorf("%d instances", len(st.Instances()))
	})

	// Kill the writer while a client holds a connection through the writer endpoint.
	_, held, err := greet(f.WriterEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	st0, err := status(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Writer()
	if err := syscall.Kill(w.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, ctx, f, "a reader to be promoted", func(st cluster.Status) (bool, error) {
		nw := st.File.Writer()
		return nw != nil && nw.ID != "db1" && st.Epoch > st0.Epoch && !st.FailoverInProgress, fmt.Errorf("writer %+v", nw)
	})
	newWriter := st.File.Writer().ID
	// The held connection to the old writer is closed by the endpoint (or by the dead process).
	held.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(held); err != nil {
		t.Errorf("held connection: %v, want it closed", err)
	}
	waitGreeting(t, "writer endpoint to reach the new writer", f.WriterEndpoint, newWriter+" writer")
	// The old writer is restarted as a reader, with a new PID recorded.
	st = waitStatus(t, ctx, f, "db1 to rejoin as a reader", func(st cluster.Status) (bool, error) {
		n := st.File.Node("db1")
		ok := n.Role == cluster.RoleReader && !n.Stale && n.PID != w.PID && n.Healthy != nil && *n.Healthy &&
			cluster.Alive(n.PID, n.PIDStart)
		return ok, fmt.Errorf("db1 %+v", n)
	})
	pids = append(pids, st.File.Node("db1").PID)

	// A planned failover moves the writer again and the endpoint follows.
	var out struct{ Writer string }
	if err := instanceapi.Do(ctx, hc, http.MethodPost, f.Admin+"/failover", nil, &out); err != nil {
		t.Fatal(err)
	}
	if out.Writer == "" || out.Writer == newWriter {
		t.Fatalf("planned failover chose %q (writer was %s)", out.Writer, newWriter)
	}
	waitGreeting(t, "writer endpoint to follow the planned failover", f.WriterEndpoint, out.Writer+" writer")
	st = waitStatus(t, ctx, f, "the replaced writer to rejoin", func(st cluster.Status) (bool, error) {
		n := st.File.Node(newWriter)
		return n.Role == cluster.RoleReader && cluster.Alive(n.PID, n.PIDStart), fmt.Errorf("%+v", n)
	})
	pids = append(pids, st.File.Node(newWriter).PID)

	// A crashed writer started again at once (a nemesis healing an outage right after its
	// crash, before the heartbeats noticed it) is failed over, not left as the recorded
	// writer running as a reader.
	cur := out.Writer
	// With a reader to promote (else control restarts the writer in place, also right).
	waitSettled(t, ctx, f)
	if err := syscall.Kill(st.File.Node(cur).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Ask for the start as soon as the process is gone, to come before the heartbeat that
	// would notice (a start of a running instance is a no-op).
	for n := st.File.Node(cur); ; {
		if err := instanceapi.Do(ctx, hc, http.MethodPost, f.Admin+"/instances/"+cur+"/start", nil, nil); err != nil {
			t.Fatal(err)
		}
		if !cluster.Alive(n.PID, n.PIDStart) {
			break
		}
	}
	st = waitStatus(t, ctx, f, "a failover away from the restarted writer", func(st cluster.Status) (bool, error) {
		w := st.File.Writer()
		return w != nil && w.ID != cur, fmt.Errorf("writer %+v", w)
	})
	waitGreeting(t, "writer endpoint to follow", f.WriterEndpoint, st.File.Writer().ID+" writer")
	st = waitStatus(t, ctx, f, "the crashed writer to rejoin as a reader", func(st cluster.Status) (bool, error) {
		n := st.File.Node(cur)
		return n.Role == cluster.RoleReader && cluster.Alive(n.PID, n.PIDStart), fmt.Errorf("%+v", n)
	})
	pids = append(pids, st.File.Node(cur).PID)

	// A promote that sealed a newer epoch on storage and then failed leaves the writer
	// fenced: it answers heartbeats, but every commit fails at once and nothing shows it as
	// stalled. Control replaces it all the same.
	st = waitSettled(t, ctx, f)
	fencedID := st.File.Writer().ID
	bumpEpoch(t, dir)
	st = waitStatus(t, ctx, f, "a failover away from the fenced writer", func(st cluster.Status) (bool, error) {
		w := st.File.Writer()
		return w != nil && w.ID != fencedID && !st.FailoverInProgress, fmt.Errorf("writer %+v", w)
	})
	st = waitStatus(t, ctx, f, "the fenced writer to rejoin as a reader", func(st cluster.Status) (bool, error) {
		n := st.File.Node(fencedID)
		return n.Role == cluster.RoleReader && cluster.Alive(n.PID, n.PIDStart) && n.Healthy != nil && *n.Healthy, fmt.Errorf("%+v", n)
	})
	pids = append(pids, st.File.Node(fencedID).PID)

	// cluster.json on disk matches what control reports.
	f2, err := cluster.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f2.Writer().ID != st.File.Writer().ID || f2.Epoch < st.Epoch {
		t.Errorf("cluster.json writer %s epoch %d; control says %s epoch %d", f2.Writer().ID, f2.Epoch, st.File.Writer().ID, st.Epoch)
	}
	// /metrics counts the failovers.
	resp, err := hc.Get(f.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`refdb_control_failovers_total{kind="automatic",result="ok"} 3`,
		`refdb_control_failovers_total{kind="planned",result="ok"} 1`, "refdb_control_heartbeat_seconds_bucket", "refdb_reader_lag_milliseconds"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// bumpEpoch installs the next epoch in the test instances' shared state, as a recovery that
// sealed storage under a new epoch and never finished its promote would.
func bumpEpoch(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "epoch")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.FormatUint(e+1, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFencedWriterWithoutReadersRestarts: with no reader to promote, a writer fenced by a
// newer epoch is restarted in place, and the new process recovers above that epoch.
func TestFencedWriterWithoutReadersRestarts(t *testing.T) {
	defer hc.CloseIdleConnections()
	defer instanceapi.CloseIdle()
	ctx := context.Background()
	dir := t.TempDir()
	base, err := cluster.FreePortBase()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Up(ctx, cluster.Config{Dir: dir, Bin: os.Args[0], PortBase: base, Readers: cluster.NoReaders,
		Env:          []string{multiCall + "=1", testinstance.StateEnv + "=" + dir},
		ControlFlags: []string{"--heartbeat", "50ms", "--restart-backoff", "200ms"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Down(ctx); err != nil {
			t.Error(err)
		}
	}()
	f, err := cluster.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Writer()
	st0, err := status(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	bumpEpoch(t, dir)
	waitStatus(t, ctx, f, "the fenced writer to be restarted in place", func(st cluster.Status) (bool, error) {
		n := st.File.Writer()
		ok := n != nil && n.ID == w.ID && n.PID != w.PID && cluster.Alive(n.PID, n.PIDStart) &&
			n.Healthy != nil && *n.Healthy && st.Epoch > st0.Epoch+1
		return ok, fmt.Errorf("writer %+v epoch %d", n, st.Epoch)
	})
	if cluster.Alive(w.PID, w.PIDStart) {
		t.Errorf("the fenced writer's process %d still runs", w.PID)
	}
}

// dumpLog prints the tail of a process log of a failed test.
func dumpLog(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("%s: %v", path, err)
		return
	}
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	t.Logf("tail of %s:\n%s", path, b)
}

// waitStatus polls control's status until cond holds for it, and returns that status.
func waitStatus(t *testing.T, ctx context.Context, f *cluster.File, what string, cond func(cluster.Status) (bool, error)) cluster.Status {
	t.Helper()
	var st cluster.Status
	waitFor(t, what, func() (bool, error) {
		var err error
		if st, err = status(ctx, f); err != nil {
			return false, err
		}
		return cond(st)
	})
	return st
}

// waitGreeting waits until a new connection to addr reaches the instance greeting want.
func waitGreeting(t *testing.T, what, addr, want string) {
	t.Helper()
	waitFor(t, what, func() (bool, error) {
		g, conn, err := greet(addr)
		if err == nil {
			conn.Close()
		}
		return g == want, fmt.Errorf("greeting %q: %v", g, err)
	})
}

// waitSettled waits until no failover runs and every instance answers healthy.
func waitSettled(t *testing.T, ctx context.Context, f *cluster.File) cluster.Status {
	t.Helper()
	return waitStatus(t, ctx, f, "the cluster to settle", func(st cluster.Status) (bool, error) {
		if st.FailoverInProgress {
			return false, errors.New("failover in progress")
		}
		for _, n := range st.File.Instances() {
			if n.Healthy == nil || !*n.Healthy || !cluster.Alive(n.PID, n.PIDStart) {
				return false, fmt.Errorf("%s not healthy", n.ID)
			}
		}
		return true, nil
	})
}
