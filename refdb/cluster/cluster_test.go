package cluster_test

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"testing"

	"go.uber.org/goleak"

	"github.com/aurorabench/aurorabench/refdb/cluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPortInUse(t *testing.T) {
	base, err := cluster.FreePortBase()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cluster.Ports{Base: base}.WriterEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	_, err = cluster.Up(context.Background(), cluster.Config{Dir: dir, Bin: "/nonexistent/refdb", PortBase: base})
	if !errors.Is(err, cluster.ErrPortInUse) {
		t.Fatalf("got %v, want ErrPortInUse", err)
	}
	if _, err := os.Stat(dir + "/" + cluster.FileName); !os.IsNotExist(err) {
		t.Fatalf("cluster.json written although nothing started: %v", err)
	}
}

// A process that exits at once makes Up fail and stop everything it started.
func TestUpFailureStopsEverything(t *testing.T) {
	base, err := cluster.FreePortBase()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = cluster.Up(context.Background(), cluster.Config{Dir: dir, Bin: "/bin/false", PortBase: base})
	if err == nil {
		t.Fatal("Up succeeded with a binary that exits")
	}
	f, rerr := cluster.Read(dir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, n := range f.Nodes {
		if n.PID != 0 {
			t.Errorf("%s recorded with pid %d after a failed Up", n.ID, n.PID)
		}
	}
}

func TestInstanceArgs(t *testing.T) {
	args := cluster.InstanceArgs("/bin/refdb", cluster.InstanceSpec{ID: "db2", AZ: "az2", Role: "reader", MySQL: "127.0.0.1:3412",
		Admin: "127.0.0.1:3451", Storage: []string{"s1=127.0.0.1:3421", "s2=127.0.0.1:3422"}, Secret: "sec", User: "u", Password: "p"})
	want := []string{"/bin/refdb", "instance", "--role", "reader", "--id", "db2", "--az", "az2", "--mysql", "127.0.0.1:3412",
		"--admin", "127.0.0.1:3451", "--storage", "s1=127.0.0.1:3421,s2=127.0.0.1:3422", "--secret", "sec", "--user", "u", "--password", "p"}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("InstanceArgs = %q", args)
	}
	w := cluster.WithRole(args, "writer")
	if w[3] != "writer" || args[3] != "reader" {
		t.Fatalf("WithRole: %q (original %q)", w[3], args[3])
	}
	p := cluster.Ports{Base: cluster.DefaultPortBase}
	if p.WriterEndpoint() != "127.0.0.1:3406" || p.ReaderEndpoint() != "127.0.0.1:3407" || p.Control() != "127.0.0.1:3480" ||
		p.Storage(0) != "127.0.0.1:3421" || p.InstanceMySQL(0) != "127.0.0.1:3411" || p.InstanceMySQL(10) != "127.0.0.1:3430" {
		t.Fatalf("port scheme changed: %+v", p)
	}
}
