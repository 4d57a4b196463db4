package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aurorabench/aurorabench/targets/mariadb"
)

// TestInterruptLeavesNoProcess runs the real binary against a local MariaDB
// cluster, interrupts it with SIGINT mid-run, and checks it exits with
// status 2 and that every server process it started is gone.
func TestInterruptLeavesNoProcess(t *testing.T) {
	needPeer(t, mariadb.Available() == nil, "MariaDB")
	bin := filepath.Join(t.TempDir(), "aurorabench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "--target", "mariadb", "--workload", "set", "--time", "5m", "--out", t.TempDir(), "--progress", "never")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var log strings.Builder
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=running") {
			break
		}
	}
	time.Sleep(2 * time.Second)
	children := descendants(cmd.Process.Pid)
	if len(children) < 3 {
		t.Fatalf("expected the 3 server processes under aurorabench, found %v\n%s", children, log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != exitUsage {
		t.Fatalf("exit status %d after SIGINT, want 2 (%v)", code, err)
	}
	for _, pid := range children {
		if processAlive(pid) {
			t.Errorf("process %d still alive after aurorabench exited", pid)
		}
	}
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
