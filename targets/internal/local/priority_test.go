package local

import (
	"context"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/targets"
)

// fakeNode is a node whose role the test sets; the other methods are never called.
type fakeNode struct {
	targets.Node
	pid  int
	role atomic.Value
}

func (n *fakeNode) ID() string         { return "n1" }
func (n *fakeNode) PID() int           { return n.pid }
func (n *fakeNode) Role() targets.Role { return n.role.Load().(targets.Role) }

// TestKeepPriority: a replica's process group runs at targets.ReplicaNice, and back at 0 once it is
// the writer.
func TestKeepPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("lowering nice needs root")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	n := &fakeNode{pid: cmd.Process.Pid}
	n.role.Store(targets.RoleReader)
	ctx, cancel := context.WithCancel(context.Background())
	done := KeepPriority(ctx, func() []targets.Node { return []targets.Node{n} }, t.Logf)
	defer func() { cancel(); <-done }()
	waitNice := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			p, err := syscall.Getpriority(syscall.PRIO_PROCESS, n.pid)
			if err == nil && 20-p == want { // the raw syscall answers 20 - nice
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("nice of the %s's process is %d (%v), want %d", n.Role(), 20-p, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitNice(targets.ReplicaNice)
	n.role.Store(targets.RoleWriter)
	waitNice(0)
}
