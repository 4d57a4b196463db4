package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

var refdbBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "refdb-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	refdbBin = filepath.Join(dir, "refdb")
	out, err := exec.Command("go", "build", "-o", refdbBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building refdb: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

const secret = "test-cluster-secret"

// proc is one `refdb storage` process started by the test.
type proc struct {
	id, az, dir, addr, logPath string
	cmd                        *exec.Cmd
	done                       chan struct{}
}

type cluster struct {
	t     testing.TB
	root  string
	nodes []*proc
}

func startCluster(t testing.TB) *cluster {
	c := &cluster{t: t, root: t.TempDir()}
	for i := 0; i < volume.Copies; i++ {
		p := &proc{id: fmt.Sprintf("s%d", i+1), az: fmt.Sprintf("az%d", i/2+1), addr: "127.0.0.1:0"}
		p.dir = filepath.Join(c.root, p.id)
		p.logPath = filepath.Join(c.root, p.id+".log")
		c.nodes = append(c.nodes, p)
		c.start(p)
	}
	t.Cleanup(func() {
		for _, p := range c.nodes {
			c.kill(p)
		}
		if t.Failed() {
			for _, p := range c.nodes {
				b, _ := os.ReadFile(p.logPath)
				lines := strings.Split(string(b), "\n")
				if len(lines) > 15 {
					lines = lines[len(lines)-15:]
				}
				t.Logf("--- %s log tail ---\n%s", p.id, strings.Join(lines, "\n"))
			}
		}
	})
	return c
}

func (c *cluster) start(p *proc) {
	c.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(refdbBin, "storage", "--id", p.id, "--az", p.az, "--data", p.dir, "--listen", p.addr, "--secret", secret, "--tick", "20ms")
	cmd.Stderr = logf
	// Six storage processes share this machine's cores: one scheduler thread each keeps them
	// from thrashing each other.
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		c.t.Fatalf("%s did not start: %q %v", p.id, line, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
	go func() {
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
}

// kill stops a process this test started, by its PID, as a crash would (SIGKILL).
func (c *cluster) kill(p *proc) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

func (c *cluster) peers() []redo.Peer {
	var ps []redo.Peer
	for _, p := range c.nodes {
		ps = append(ps, redo.Peer{ID: p.id, AZ: p.az, Addr: p.addr})
	}
	return ps
}

func (c *cluster) open(ctx context.Context, id string, create bool) *volume.Volume {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := volume.Open(ctx, volume.Config{ID: id, Nodes: c.peers(), PGs: 4, Secret: []byte(secret), Create: create})
	if err != nil {
		c.t.Fatalf("open volume: %v", err)
	}
	return v
}

// model is what the test knows was acknowledged: the last acked value of every key.
type model struct {
	mu   sync.Mutex
	vals map[string]string
	n    int
}

func (m *model) commit(ctx context.Context, t *testing.T, v *volume.Volume, txns int) {
	t.Helper()
	for i := 0; i < txns; i++ {
		m.mu.Lock()
		m.n++
		n := m.n
		m.mu.Unlock()
		var ops []volume.Op
		for j := 0; j <= n%3; j++ {
			key := string([]byte{byte((n*37 + j*91) % 256)}) + fmt.Sprintf("-key-%d", (n+j)%17)
			ops = append(ops, volume.Op{Key: []byte(key), Value: []byte(fmt.Sprintf("v%d-%d", n, j))})
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := v.Commit(cctx, ops)
		cancel()
		if err != nil {
			t.Fatalf("commit %d: %v", n, err)
		}
		m.mu.Lock()
		for _, op := range ops {
			m.vals[string(op.Key)] = string(op.Value)
		}
		m.mu.Unlock()
	}
}

func (m *model) verify(ctx context.Context, t *testing.T, v *volume.Volume) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, want := range m.vals {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		got, ok, err := v.Get(rctx, []byte(k), 0)
		cancel()
		if err != nil || !ok || string(got) != want {
			t.Fatalf("read %q at VDL %d: got %q found=%v err=%v, want %q", k, v.VDL(), got, ok, err, want)
		}
	}
}

func TestStorageProcessesQuorumFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 storage processes")
	}
	ctx := context.Background()
	c := startCluster(t)
	m := &model{vals: map[string]string{}}

	v := c.open(ctx, "writer-1", true)
	m.commit(ctx, t, v, 40)
	m.verify(ctx, t, v)

	// Any whole AZ down: 4 of 6 copies remain, commits continue. az1 and az2 come back before the
	// next AZ goes; az3 stays down for the next step.
	for az := 0; az < 3; az++ {
		a, b := c.nodes[2*az], c.nodes[2*az+1]
		c.kill(a)
		c.kill(b)
		m.commit(ctx, t, v, 30)
		m.verify(ctx, t, v)
		if az < 2 {
			c.start(a)
			c.start(b)
		}
	}

	// An AZ and one more node down: no write quorum. The commit fails with a clear error, and
	// reads at the VDL still succeed from the 3 remaining copies.
	c.kill(c.nodes[3])
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := v.Commit(cctx, []volume.Op{{Key: []byte("stalled"), Value: []byte("x")}})
	cancel()
	if !errors.Is(err, volume.ErrUnavailable) || !strings.Contains(err.Error(), "write quorum is 4") {
		t.Fatalf("commit without a write quorum: %v", err)
	}
	t.Logf("commit with AZ+1 down: %v", err)
	m.verify(ctx, t, v)

	// Bring them back: commits resume, and everything acknowledged is readable.
	for _, i := range []int{3, 4, 5} {
		c.start(c.nodes[i])
	}
	m.commit(ctx, t, v, 40)
	m.verify(ctx, t, v)
	v.Close()

	// A new writer recovers the volume (new epoch): every acknowledged commit survives.
	v2 := c.open(ctx, "writer-2", false)
	defer v2.Close()
	if volume.EpochRound(v2.Epoch()) != 2 {
		t.Fatalf("recovered epoch %d", v2.Epoch())
	}
	m.verify(ctx, t, v2)

	// A wiped node comes back empty and rebuilds its segments from its peers while the
	// volume keeps committing.
	wiped := c.nodes[1]
	c.kill(wiped)
	if err := os.RemoveAll(wiped.dir); err != nil {
		t.Fatal(err)
	}
	vdlAtWipe := v2.VDL()
	c.start(wiped)
	m.commit(ctx, t, v2, 40)
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		st, err := v2.NodeStatus(deadline, wiped.id)
		if err == nil && rebuilt(st, vdlAtWipe, 4) {
			t.Logf("wiped node rebuilt: %+v", st)
			break
		}
		select {
		case <-deadline.Done():
			for _, p := range c.nodes {
				st, err := v2.NodeStatus(ctx, p.id)
				t.Logf("%s: %+v %v", p.id, st, err)
			}
			t.Fatalf("wiped node did not rebuild: %+v %v", st, err)
		case <-time.After(100 * time.Millisecond):
		}
		m.commit(ctx, t, v2, 1)
	}
	// Losing two other nodes now leaves the rebuilt copy part of every quorum.
	c.kill(c.nodes[0])
	c.kill(c.nodes[2])
	m.verify(ctx, t, v2)
	m.commit(ctx, t, v2, 10)
}

// rebuilt reports whether every PG's segment is active and its complete chain reaches past
// lsn, i.e. it holds every record written before the wipe and some after.
func rebuilt(st []redo.SegStatus, lsn redo.LSN, pgs int) bool {
	if len(st) != pgs {
		return false
	}
	for _, s := range st {
		if !s.Active || s.SCL <= lsn {
			return false
		}
	}
	return true
}
