package proc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(IgnoreSpawner))
}

func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// state reads a process's state letter from /proc (T = stopped).
func state(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func TestKillTakesTheGroup(t *testing.T) {
	// The shell starts a grandchild in the same process group; with setsid, in a session
	// and group of its own, as PostgreSQL's backends do.
	for _, start := range []string{"sleep 100", "setsid sleep 100"} {
		t.Run(strings.Fields(start)[0], func(t *testing.T) { testKillTakesTheGroup(t, start) })
	}
}

func testKillTakesTheGroup(t *testing.T, start string) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"-c", start + " & echo $! > " + pidFile + "; wait"},
		LogPath: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for i := 0; i < 100 && child == 0; i++ {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(20 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("no child pid")
	}
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if !p.Paused() {
		t.Fatal("not paused")
	}
	// Signal delivery is asynchronous: wait for the stop to show.
	for i := 0; i < 200 && state(t, child) != "T"; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if state(t, child) != "T" {
		t.Fatal("grandchild not stopped")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	if p.Paused() {
		t.Fatal("still paused")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || !gone(p.PID()) {
		t.Fatal("leader not gone")
	}
	for i := 0; i < 100 && !gone(child); i++ {
		time.Sleep(20 * time.Millisecond) // reparented to init, which reaps it
	}
	if !gone(child) {
		t.Fatal("grandchild survived the kill")
	}
	if err := p.Kill(); err != nil {
		t.Fatal("second kill:", err)
	}
}

func TestStopGracefulAndForced(t *testing.T) {
	p, err := Start(Spec{Path: "/bin/sleep", Args: []string{"100"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Pause() // a paused process must still be stoppable
	if err := p.Stop(context.Background(), syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("not stopped")
	}
	// A process ignoring the signal is killed after the grace.
	p, err = Start(Spec{Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; sleep 100"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := p.Stop(context.Background(), syscall.SIGTERM, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("not killed")
	}
}

func TestRunReportsFailure(t *testing.T) {
	dir := t.TempDir()
	err := Run(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "echo first; echo 'the cause' >&2; exit 3"},
		LogPath: filepath.Join(dir, "log")})
	if err == nil || !strings.Contains(err.Error(), "the cause") {
		t.Fatalf("got %v", err)
	}
	// An error line wins over a trailing boilerplate line, as mariadb-install-db prints.
	err = Run(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "echo '[ERROR] the real cause'; echo 'report problems at https://example.org'; exit 1"},
		LogPath: filepath.Join(dir, "log2")})
	if err == nil || !strings.Contains(err.Error(), "the real cause") || !strings.Contains(err.Error(), "log2") {
		t.Fatalf("got %v", err)
	}
	// The cause just above a generic last error line is kept with it, in order.
	err = Run(context.Background(), Spec{Path: "/bin/sh", Args: []string{"-c", "echo '[ERROR] old'; echo '[ERROR] Plugin x failed'; echo note; echo '[ERROR] Aborting'; exit 1"},
		LogPath: filepath.Join(dir, "log3")})
	if err == nil || !strings.Contains(err.Error(), "[ERROR] Plugin x failed | [ERROR] Aborting") {
		t.Fatalf("got %v", err)
	}
	if ls := LastLines(filepath.Join(dir, "log3"), 0, 2, "nothing", "[ERROR]"); !slices.Equal(ls, []string{"[ERROR] Plugin x failed", "[ERROR] Aborting"}) {
		t.Fatalf("LastLines: got %q", ls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := Run(ctx, Spec{Path: "/bin/sleep", Args: []string{"100"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if _, err := Start(Spec{Path: "/nonexistent/binary"}); err == nil {
		t.Fatal("started a missing binary")
	}
	out := filepath.Join(dir, "out")
	in := filepath.Join(dir, "in")
	os.WriteFile(in, []byte("hello\n"), 0o644)
	if err := Run(context.Background(), Spec{Path: "/bin/cat", StdinPath: in, StdoutPath: out}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "hello\n" {
		t.Fatalf("got %q", b)
	}
	if l := LastLine(filepath.Join(dir, "log"), 0, "nothing", "first"); l != "first" {
		t.Fatalf("got %q", l)
	}
}

// TestChildOutlivesStartingThread: a server started from a goroutine locked to its OS thread
// lives on after that goroutine exits. Go then ends the thread, and Linux sends Pdeathsig when
// the thread that forked a child ends, not its process: the lag pollers' locked threads killed
// the replicas started from them before every start went through one long-lived thread.
func TestChildOutlivesStartingThread(t *testing.T) {
	var p *Process
	var err error
	for p == nil && err == nil {
		started := make(chan struct{})
		go func() {
			defer close(started)
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			if syscall.Gettid() == syscall.Getpid() {
				// Go parks the main thread instead of ending it: try from another one.
				runtime.UnlockOSThread()
				return
			}
			p, err = Start(Spec{Path: "/bin/sleep", Args: []string{"100"}})
		}()
		<-started
	}
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	// Give the ended thread's death signal time to land, if one is coming.
	select {
	case <-p.Done():
		t.Fatalf("the process died with the thread that started it: %v", p.Err())
	case <-time.After(500 * time.Millisecond):
	}
}
