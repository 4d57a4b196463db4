package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/history"
	"github.com/aurorabench/aurorabench/refdb/cluster"
	"github.com/aurorabench/aurorabench/targets"
	"github.com/aurorabench/aurorabench/targets/mariadb"
	"github.com/aurorabench/aurorabench/targets/postgres"
	"github.com/aurorabench/aurorabench/targets/refdb"
)

// startNetworked starts a target whose inter-node connections go through the link
// proxies of a new network; both are closed when the test ends.
func startNetworked(t *testing.T, start func(context.Context, targets.Options) (targets.Target, error)) (targets.Target, *netem.Network) {
	t.Helper()
	nw := netem.New(nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	tgt, err := start(context.Background(), targets.Options{Replicas: 2, Log: t.Logf, Network: nw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := tgt.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	if targets.NetworkOf(tgt) != nw {
		t.Fatal("the target does not expose its network")
	}
	return tgt, nw
}

// TestNetworkFaultsRefdb runs refdb with every inter-node connection proxied: the
// command lines name only proxies, register stays linearizable under partition-az-az1,
// and under partition-writer-storage the writer, which still answers control but cannot
// commit, is failed over, and writes succeed after each heal.
func TestNetworkFaultsRefdb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole cluster")
	}
	tgt, nw := startNetworked(t, refdb.Start)

	// Every inter-node address in a command line is a link proxy.
	f, err := cluster.Read(tgt.(*refdb.Target).Dir())
	if err != nil {
		t.Fatal(err)
	}
	proxies := map[string]string{} // proxy address -> link
	for _, l := range nw.Links() {
		proxies[l.Addr] = l.String()
	}
	for _, n := range f.Nodes {
		var list string
		switch n.Kind {
		case cluster.KindStorage:
			list = flagValue(n.Args, "--peer-addrs")
		case cluster.KindInstance:
			list = flagValue(n.Args, "--storage") + "," + flagValue(n.Args, "--peers")
			if flagValue(n.Args, "--control") != "" {
				t.Errorf("%s has --control, which would bypass the links", n.ID)
			}
		default:
			continue
		}
		for _, e := range strings.Split(list, ",") {
			id, addr, ok := strings.Cut(e, "=")
			if !ok {
				addr, id = id, ""
			}
			if addr == n.Admin {
				continue // an instance's own admin address in its --peers
			}
			if link, ok := proxies[addr]; !ok || !strings.HasPrefix(link, n.ID+"->") || id != "" && !strings.HasSuffix(link, "->"+id) {
				t.Errorf("%s dials %s directly or through another node's link (%q)", n.ID, e, link)
			}
		}
	}

	runChecked(t, tgt, "register", "partition-az-az1", 12*time.Second, true)
	ctlLog := tgt.Logs()["control"]
	if ctlLog == "" {
		t.Fatalf("no control log among %v", tgt.Logs())
	}
	dir := runChecked(t, tgt, "set", "partition-writer-storage", 12*time.Second, true)
	// The cut-off writer still answers its heartbeats but cannot commit: control fails over
	// on its stall (StallAfter 2s; each cut lasts 3s).
	if b, err := os.ReadFile(ctlLog); err != nil || !strings.Contains(string(b), "writer stalled: commits make no progress; failing over") {
		t.Errorf("no failover on a writer cut off from storage (control log %s: %v)", ctlLog, err)
	}
	ops, err := history.ReadFile(filepath.Join(dir, history.FileName))
	if err != nil {
		t.Fatal(err)
	}
	type window struct{ from, to int64 }
	var faults []window
	invoked := map[int]history.Op{}
	var writes []window // invoke..ok of every successful add
	for _, op := range ops {
		switch {
		case op.F == "start-partition":
			faults = append(faults, window{op.Time, -1})
		case op.F == "stop-partition" && len(faults) > 0:
			faults[len(faults)-1].to = op.Time
		case op.Type == history.Invoke:
			invoked[op.Process] = op
		case op.Type == history.OK && op.F == "add":
			writes = append(writes, window{invoked[op.Process].Time, op.Time})
		}
	}
	if len(faults) == 0 {
		t.Fatal("no partition in the history")
	}
	// The first fault healed long before the run ended: writes resumed.
	healed := faults[0].to
	if healed < 0 || !slices.ContainsFunc(writes, func(w window) bool { return w.from > healed }) {
		t.Errorf("no write invoked after the first heal at %v succeeded", time.Duration(healed))
	}
}

func flagValue(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// TestNetworkFaultsPeers checks, on MariaDB and PostgreSQL started with link proxies,
// that a replica partitioned from its primary stops receiving changes and catches up
// after the heal, and that a set workload under partition-writer-replicas stays valid.
func TestNetworkFaultsPeers(t *testing.T) {
	peers := []struct {
		name  string
		avail func() error
		start func(context.Context, targets.Options) (targets.Target, error)
	}{
		{"mariadb", mariadb.Available, mariadb.Start},
		{"postgres", postgres.Available, postgres.Start},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			needPeer(t, p.avail() == nil, p.name)
			tgt, nw := startNetworked(t, p.start)
			replicaStopsWhenCut(t, tgt, nw, "netcheck1")
			runChecked(t, tgt, "set", "partition-writer-replicas", 8*time.Second, true)
			// Failover repoints the replicas through their links to the new primary;
			// async replication may lose acknowledged writes (a finding, not a failure).
			runChecked(t, tgt, "set", "kill-writer", 8*time.Second, false)
			replicaStopsWhenCut(t, tgt, nw, "netcheck2")

		})
	}
}

// replicaStopsWhenCut cuts the links between the writer and its first replica, writes a
// row on the writer, and checks that the other replica gets it while the cut one does
// not, then that the cut one catches up after the heal.
func replicaStopsWhenCut(t *testing.T, tgt targets.Target, nw *netem.Network, table string) {
	t.Helper()
	ctx := context.Background()
	w := targets.Writer(tgt)
	r := targets.Readers(tgt)[0]
	wdb, err := targets.OpenDB(ctx, tgt.Dialect(), w.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer wdb.Close()
	rdb, err := targets.OpenDB(ctx, tgt.Dialect(), r.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, err := wdb.ExecContext(ctx, "CREATE TABLE "+table+" (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	insert := func(id int) {
		t.Helper()
		if _, err := wdb.ExecContext(ctx, fmt.Sprintf("INSERT INTO "+table+" VALUES (%d)", id)); err != nil {
			t.Fatal(err)
		}
	}
	has := func(id int) bool {
		var n int
		err := rdb.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM "+table+" WHERE id = %d", id)).Scan(&n)
		return err == nil && n == 1
	}
	waitFor := func(id int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for !has(id) {
			if time.Now().After(deadline) {
				t.Fatalf("row %d never reached replica %s", id, r.ID())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	insert(1)
	waitFor(1)

	between := func(a, b string) netem.Pred {
		return func(from, to netem.NodeRef) bool {
			return from.ID == a && to.ID == b || from.ID == b && to.ID == a
		}
	}
	cut := nw.Cut(between(w.ID(), r.ID()), netem.Drop)
	if len(cut) != 2 {
		t.Fatalf("cut %v, want both links between %s and %s", cut, w.ID(), r.ID())
	}
	insert(2)
	// However long we look, a cut replica cannot see row 2; the other one can.
	other := targets.Readers(tgt)[1]
	odb, err := targets.OpenDB(ctx, tgt.Dialect(), other.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := odb.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE id = 2").Scan(&n); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row 2 never reached the replica %s that was not cut", other.ID())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if has(2) {
		t.Fatalf("replica %s got row 2 through a cut link", r.ID())
	}
	nw.Heal()
	waitFor(2)

}
