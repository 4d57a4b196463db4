package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/targets"
)

// fakeNode and fakeTarget are just enough of a target for network faults.
type fakeNode struct {
	id, az string
	role   targets.Role
}

func (n *fakeNode) ID() string                   { return n.id }
func (n *fakeNode) AZ() string                   { return n.az }
func (n *fakeNode) Role() targets.Role           { return n.role }
func (n *fakeNode) PID() int                     { return 1 }
func (n *fakeNode) Addr() string                 { return "" }
func (n *fakeNode) DSN() string                  { return "" }
func (n *fakeNode) Kill(context.Context) error   { return nil }
func (n *fakeNode) Start(context.Context) error  { return nil }
func (n *fakeNode) Pause(context.Context) error  { return nil }
func (n *fakeNode) Resume(context.Context) error { return nil }

type fakeTarget struct {
	nodes []targets.Node
	net   *netem.Network
}

func (t *fakeTarget) Name() string                   { return "fake" }
func (t *fakeTarget) Dialect() targets.Dialect       { return targets.MySQL }
func (t *fakeTarget) WriterDSN() string              { return "" }
func (t *fakeTarget) ReaderDSN() string              { return "" }
func (t *fakeTarget) Nodes() []targets.Node          { return t.nodes }
func (t *fakeTarget) Failover(context.Context) error { return nil }
func (t *fakeTarget) Logs() map[string]string        { return nil }
func (t *fakeTarget) Close(context.Context) error    { return nil }
func (t *fakeTarget) Network() *netem.Network        { return t.net }
func (t *fakeTarget) node(id string) netem.NodeRef {
	for _, n := range t.nodes {
		if n.ID() == id {
			return netem.NodeRef{ID: id, AZ: n.AZ()}
		}
	}
	panic(id)
}

// echoServer echoes lines until the test ends.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// reaches reports whether a line sent on a new connection through addr comes back; a cut
// link never answers, so a short wait is enough for "no" on any machine, and "yes" gets
// a long one.
func reaches(t *testing.T, addr string, wait time.Duration) bool {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return false
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && s == "ping\n"
}

func TestPartitionNemeses(t *testing.T) {
	up := echoServer(t)
	nw := netem.New(nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	ft := &fakeTarget{net: nw, nodes: []targets.Node{
		&fakeNode{"db1", "az1", targets.RoleWriter}, &fakeNode{"db2", "az2", targets.RoleReader},
		&fakeNode{"s1", "az1", targets.RoleStorage}, &fakeNode{"s2", "az2", targets.RoleStorage},
	}}
	addrs := map[string]string{}
	for _, l := range [][2]string{{"db1", "s1"}, {"db1", "s2"}, {"db2", "s1"}, {"db2", "s2"}, {"db2", "db1"}, {"s1", "s2"}, {"s2", "s1"}} {
		a, err := nw.Link(ft.node(l[0]), ft.node(l[1]), up)
		if err != nil {
			t.Fatal(err)
		}
		addrs[l[0]+"->"+l[1]] = a
	}
	cases := []struct {
		name     string
		cut      []string
		isWriter bool
	}{
		{"partition-az-az1", []string{"db1->s2", "db2->db1", "db2->s1", "s1->s2", "s2->s1"}, true},
		{"partition-writer-storage", []string{"db1->s1", "db1->s2"}, true},
		{"partition-writer-replicas", []string{"db2->db1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.name, ft, Schedule{Interval: time.Hour, Duration: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			events := make(chan history.Op, 10)
			done := make(chan error, 1)
			go func() {
				done <- n.inject(ctx, n.specs[0], func() int64 { return 0 }, func(op history.Op) { events <- op })
			}()
			start := <-events
			if start.F != "start-partition" {
				t.Fatalf("first event %+v", start)
			}
			var v struct {
				Links []string
				Role  string
				Mode  string
			}
			if err := json.Unmarshal(start.Value, &v); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v.Links, tc.cut) || (v.Role == "writer") != tc.isWriter || v.Mode != "drop" {
				t.Fatalf("start event %s: links %v role %q mode %q; want links %v, writer %v", start.Value, v.Links, v.Role, v.Mode, tc.cut, tc.isWriter)
			}
			for l, a := range addrs {
				want := !slices.Contains(tc.cut, l)
				wait := 20 * time.Second
				if !want {
					wait = 200 * time.Millisecond
				}
				if got := reaches(t, a, wait); got != want {
					t.Errorf("during %s: %s reaches = %v, want %v", tc.name, l, got, want)
				}
			}
			cancel() // ends the fault early; the heal still runs
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if stop := <-events; stop.F != "stop-partition" || stop.Node != start.Node {
				t.Fatalf("stop event %+v after start %+v", stop, start)
			}
			for l, a := range addrs {
				if !reaches(t, a, 20*time.Second) {
					t.Errorf("after %s healed: %s does not reach", tc.name, l)
				}
			}
		})
	}
}

func TestNetworkNemesisNeedsNetwork(t *testing.T) {
	ft := &fakeTarget{nodes: []targets.Node{&fakeNode{"db1", "az1", targets.RoleWriter}}}
	s := Schedule{Interval: time.Second, Duration: time.Second}
	if _, err := New("partition-halves", ft, s); err == nil || !strings.Contains(err.Error(), "per-link proxies") {
		t.Fatalf("partition on a target without a network: %v", err)
	}
	if _, err := New("kill-writer", ft, s); err != nil {
		t.Fatalf("kill-writer without a network: %v", err)
	}
	if !NeedsNetwork("kill-writer,latency-all") || NeedsNetwork("kill-writer,pause-storage") {
		t.Fatal("NeedsNetwork")
	}
	for _, bad := range []string{"partition-everything", "latency-halves", "partition-az-"} {
		if _, err := New(bad, nil, s); err == nil || !strings.Contains(err.Error(), "unknown nemesis") {
			t.Errorf("%s accepted (err %v)", bad, err)
		}
	}
}

// countingNode counts the kills and restarts an outage does to it.
type countingNode struct {
	*fakeNode
	mu            *sync.Mutex
	kills, starts map[string]int
}

func (n countingNode) Kill(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.kills[n.id]++
	return nil
}

func (n countingNode) Start(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.starts[n.id]++
	return nil
}

// TestOutageWriterAZPlusOne: the writer's AZ plus one storage node elsewhere is cut off,
// crashed, then healed and restarted; no other node is touched.
func TestOutageWriterAZPlusOne(t *testing.T) {
	up := echoServer(t)
	nw := netem.New(nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Close(ctx); err != nil {
			t.Error(err)
		}
	}()
	var mu sync.Mutex
	kills, starts := map[string]int{}, map[string]int{}
	var nodes []targets.Node
	for _, f := range []*fakeNode{{"db1", "az1", targets.RoleWriter}, {"db2", "az2", targets.RoleReader}, {"db3", "az1", targets.RoleReader},
		{"s1", "az1", targets.RoleStorage}, {"s2", "az1", targets.RoleStorage}, {"s3", "az2", targets.RoleStorage}, {"s4", "az3", targets.RoleStorage}} {
		nodes = append(nodes, countingNode{fakeNode: f, mu: &mu, kills: kills, starts: starts})
	}
	ft := &fakeTarget{net: nw, nodes: nodes}
	addrs := map[string]string{}
	var all []string
	for _, from := range []string{"db1", "db2", "db3", "s1", "s2", "s3", "s4"} {
		for _, to := range []string{"s1", "s2", "s3", "s4"} {
			if from == to {
				continue
			}
			a, err := nw.Link(ft.node(from), ft.node(to), up)
			if err != nil {
				t.Fatal(err)
			}
			addrs[from+"->"+to] = a
			all = append(all, from+"->"+to)
		}
	}
	n, err := New("outage-writer-az-plus-one", ft, Schedule{Interval: time.Hour, Duration: 100 * time.Millisecond, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var events []history.Op
	if err := n.inject(context.Background(), n.specs[0], func() int64 { return 0 }, func(op history.Op) { events = append(events, op) }); err != nil {
		t.Fatal(err)
	}
	var fs []string
	for _, e := range events {
		fs = append(fs, e.F)
	}
	if want := []string{"start-outage", "crash-outage", "failover", "stop-outage"}; !slices.Equal(fs, want) {
		t.Fatalf("events %v, want %v", fs, want)
	}
	var v struct {
		Nodes, Links []string
		Role, AZ     string
	}
	if err := json.Unmarshal(events[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	group := map[string]bool{}
	for _, id := range v.Nodes {
		group[id] = true
	}
	plusOne := ""
	for id := range group {
		if id == "s3" || id == "s4" {
			plusOne = id
		}
	}
	if len(v.Nodes) != 5 || !group["db1"] || !group["db3"] || !group["s1"] || !group["s2"] || plusOne == "" || v.Role != "writer" || v.AZ != "az1" {
		t.Fatalf("outage of %v (az %q, role %q): want db1, db3, s1, s2 and one of s3, s4", v.Nodes, v.AZ, v.Role)
	}
	var wantCut []string
	for _, l := range all {
		from, to, _ := strings.Cut(l, "->")
		if group[from] != group[to] {
			wantCut = append(wantCut, l)
		}
	}
	slices.Sort(wantCut)
	got := slices.Sorted(slices.Values(v.Links))
	if !slices.Equal(got, wantCut) {
		t.Errorf("cut links %v, want %v", got, wantCut)
	}
	for _, id := range []string{"db1", "db2", "db3", "s1", "s2", "s3", "s4"} {
		want := 0
		if group[id] {
			want = 1
		}
		if kills[id] != want || starts[id] != want {
			t.Errorf("%s killed %d and restarted %d times, want %d", id, kills[id], starts[id], want)
		}
	}
	for l, a := range addrs {
		if !reaches(t, a, 20*time.Second) {
			t.Errorf("after the outage healed: %s does not reach", l)
		}
	}
}
