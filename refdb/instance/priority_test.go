package instance

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestProcessNice runs setProcessNice in child processes (raising nice needs no privilege):
// one leading its own session sets its autogroup's nice, one in the test's session sets
// every thread's.
func TestProcessNice(t *testing.T) {
	if os.Getenv("REFDB_NICE_CHILD") != "" {
		if err := setProcessNice(7); err != nil {
			t.Fatal(err)
		}
		ag, _ := os.ReadFile("/proc/self/autogroup")
		var prios []string
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			tid, _ := strconv.Atoi(task.Name())
			p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
			if err == nil {
				prios = append(prios, strconv.Itoa(20-p)) // the raw syscall answers 20 - nice
			}
		}
		os.Stdout.WriteString("autogroup: " + strings.TrimSpace(string(ag)) + "\nthreads: " + strings.Join(prios, " ") + "\n")
		return
	}
	autogroup := false
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err == nil && strings.TrimSpace(string(b)) == "1" {
		autogroup = true
	}
	for _, ownSession := range []bool{true, false} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessNice$")
		cmd.Env = append(os.Environ(), "REFDB_NICE_CHILD=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: ownSession, Setpgid: !ownSession}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("own session %v: %v\n%s", ownSession, err, out)
		}
		got := string(out)
		if autogroup && ownSession {
			if !strings.Contains(got, "nice 7") {
				t.Errorf("own session: the autogroup's nice is not 7:\n%s", got)
			}
			continue
		}
		line := got[strings.Index(got, "threads:"):]
		line = strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
		for _, n := range strings.Fields(strings.TrimPrefix(line, "threads:")) {
			if n != "7" {
				t.Errorf("own session %v: a thread's nice is %s, want 7:\n%s", ownSession, n, got)
			}
		}
	}
}
