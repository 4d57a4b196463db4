package workloads

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestPollerThreadPriority: a poller's goroutine gets an OS thread at lagPollerNice, and when
// the goroutine ends no thread of the process keeps that value.
func TestPollerThreadPriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising a thread's priority needs root")
	}
	type result struct {
		tid, nice int
		err       error
	}
	got := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		err := pinPollerThread()
		tid := syscall.Gettid()
		p, _ := syscall.Getpriority(syscall.PRIO_PROCESS, tid) // the raw syscall answers 20 - nice
		got <- result{tid, 20 - p, err}
		<-done
	}()
	r := <-got
	if r.err != nil {
		t.Fatalf("pinPollerThread: %v", r.err)
	}
	if r.nice != lagPollerNice {
		t.Fatalf("poller thread %d at nice %d, want %d", r.tid, r.nice, lagPollerNice)
	}
	close(done)
	// The goroutine exits locked to its thread, so Go ends the thread.
	deadline := time.Now().Add(5 * time.Second)
	for {
		boosted := boostedThreads(t)
		if len(boosted) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still at nice %d after the poller ended", boosted, lagPollerNice)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// boostedThreads lists this process's threads at lagPollerNice.
func boostedThreads(t *testing.T) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil && 20-p == lagPollerNice {
			out = append(out, tid)
		}
	}
	return out
}
