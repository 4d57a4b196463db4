package storage_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/rpc"
	"github.com/aurorabench/aurorabench/refdb/storage"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("s3cret")

type node struct {
	cfg    storage.ServerConfig
	cancel context.CancelFunc
	done   chan error
	load   storage.LoadReport
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startNode(t testing.TB, cfg storage.ServerConfig) *node {
	t.Helper()
	var srv *storage.Server
	var err error
	for i := 0; i < 50; i++ { // the port of a node just stopped may take a moment to free
		if srv, err = storage.NewServer(cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{cfg: cfg, cancel: cancel, done: make(chan error, 1), load: srv.Load}
	n.cfg.Listen = srv.Addr()
	go func() { n.done <- srv.Run(ctx) }()
	return n
}

func (n *node) stop(t testing.TB) {
	n.cancel()
	if err := <-n.done; err != nil {
		t.Errorf("%s stopped with %v", n.cfg.ID, err)
	}
}

func startNodes(t testing.TB) ([]*node, []redo.Peer) {
	var nodes []*node
	var peers []redo.Peer
	dir := t.TempDir()
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("s%d", i+1)
		n := startNode(t, storage.ServerConfig{ID: id, Dir: filepath.Join(dir, id), Listen: "127.0.0.1:0", Secret: secret, Tick: 10 * time.Millisecond, Logger: quiet()})
		nodes = append(nodes, n)
		peers = append(peers, redo.Peer{ID: id, AZ: fmt.Sprintf("az%d", i/2+1), Addr: n.cfg.Listen})
	}
	return nodes, peers
}

func TestInProcessVolumeWipeAndRecover(t *testing.T) {
	nodes, peers := startNodes(t)
	defer func() {
		for _, n := range nodes {
			n.stop(t)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v, err := volume.Open(ctx, volume.Config{ID: "w1", Nodes: peers, PGs: 4, Secret: secret, Create: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(v *volume.Volume, i int) {
		t.Helper()
		key := []byte{byte(i * 7), 'k'}
		if _, err := v.Commit(ctx, []volume.Op{{Key: key, Value: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ {
		commit(v, i)
	}
	// Wipe s2.
	nodes[1].stop(t)
	if err := os.RemoveAll(nodes[1].cfg.Dir); err != nil {
		t.Fatal(err)
	}
	nodes[1] = startNode(t, nodes[1].cfg)
	for i := 100; ; i++ {
		commit(v, i)
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		st, err := v.NodeStatus(sctx, "s2")
		scancel()
		ok := err == nil && len(st) == 4
		for _, s := range st {
			ok = ok && s.Active && s.SCL > 0
		}
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("s2 not rebuilt: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Corrupt a record in the middle of s3's log: it restarts without it, repairs the file, and
	// gossip refills the hole.
	nodes[2].stop(t)
	path := filepath.Join(nodes[2].cfg.Dir, "redo.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(data) // the log is preallocated: find the end of its entries
	for end > 0 && data[end-1] == 0 {
		end--
	}
	data[end/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nodes[2] = startNode(t, nodes[2].cfg)
	if nodes[2].load.Corrupt == 0 && nodes[2].load.TornBytes == 0 {
		t.Fatalf("corruption not detected: %+v", nodes[2].load)
	}
	vdl := v.VDL()
	for i := 1000; ; i++ {
		commit(v, i)
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		st, err := v.NodeStatus(sctx, "s3")
		scancel()
		ok := err == nil && len(st) == 4
		for _, s := range st {
			ok = ok && s.SCL > vdl
		}
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("s3 did not repair: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	v.Close()
	v2, err := volume.Open(ctx, volume.Config{ID: "w2", Nodes: peers, PGs: 4, Secret: secret, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	for i := 0; i < 100; i++ {
		got, ok, err := v2.Get(ctx, []byte{byte(i * 7), 'k'}, 0)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
		_ = got
	}
}

func TestServerRejectsUnauthenticatedAndGarbage(t *testing.T) {
	n := startNode(t, storage.ServerConfig{ID: "s1", Dir: t.TempDir(), Listen: "127.0.0.1:0", Secret: secret, Logger: quiet()})
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rpc.Dial(ctx, n.cfg.Listen, "intruder", []byte("wrong")); err == nil {
		t.Fatal("wrong secret accepted")
	}
	// Garbage instead of a hello: the server closes the connection and keeps serving.
	c, err := net.Dial("tcp", n.cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\x00\x00\x00\x05hello-garbage"))
	io.Copy(io.Discard, c)
	c.Close()
	conn, err := rpc.Dial(ctx, n.cfg.Listen, "friend", secret)
	if err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
	defer conn.Close()
}
