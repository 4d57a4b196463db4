//go:build linux

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A storage node runs every thread with its --timer-slack (see timerslack_linux.go), under
// the PID its starter knows, and still serves; with --timer-slack 0 it keeps what it inherited.
func TestStorageTimerSlack(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want func(ns string) bool
	}{
		{"3ms", func(ns string) bool { return ns == "3000000" }},
		{"0", func(ns string) bool { return ns != "3000000" }},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(refdbBin, "storage", "--id", "s1", "--az", "az1", "--data", filepath.Join(dir, "s1"),
				"--listen", "127.0.0.1:0", "--secret", secret, "--timer-slack", tc.flag)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "listening ") {
				t.Fatalf("did not start: %q %v", line, err)
			}
			tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) < 2 {
				t.Fatalf("%d threads", len(tasks))
			}
			for _, task := range tasks {
				b, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
				if err != nil {
					t.Fatal(err)
				}
				if ns := strings.TrimSpace(string(b)); !tc.want(ns) {
					t.Errorf("thread %s: timer slack %s ns with --timer-slack %s", task.Name(), ns, tc.flag)
				}
			}
		})
	}
}
