//go:build linux

package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timerSlackEnv marks a process image started by withTimerSlack, so it never re-executes
// twice.
const timerSlackEnv = "REFDB_TIMER_SLACK_APPLIED"

// withTimerSlack makes every thread of this process run with the given timer slack, by
// setting it on the calling thread and re-executing the program from that thread: a thread
// inherits the slack of the thread that created it, execve(2) keeps it, and Go creates its
// threads (sysmon's first) before main runs, so only a fresh image started from a thread
// with the slack gets it everywhere without CAP_SYS_NICE. It returns only if nothing was to
// be done or the re-execution failed; the PID, arguments and open files stay the same.
//
// Why a storage node wants it: while a goroutine sits in a blocking system call (fdatasync,
// every group commit), Go's sysmon thread wakes every 20 µs to see whether to hand the P to
// another thread. Each wake-up is a context switch; on a virtual machine where that costs
// ~50 µs it was over a quarter of a loaded node's CPU. A slack lets the kernel defer and
// coalesce those wake-ups. A storage node has no timer that needs better than a few
// milliseconds: its background tick is 50 ms, and fsyncs and network I/O do not use timers.
// With one P (oneProc) it has no Go scheduler sleeps to stretch either. Measured on 2 cores,
// sysbench write_only through a local cluster, storage CPU per transaction: 1.75-1.98 ms
// without, 1.39-1.49 ms with 2 ms, 1.20-1.61 ms with 5 or 10 ms; TPS 472-494 without,
// 468-620 with 5 ms (the host is noisy). The SQL instances keep the default: with two Ps the
// scheduler's 3 µs sleeps while stealing work stretch to the slack, and the same setting
// there made the writer's commits slower.
func withTimerSlack(slack time.Duration) error {
	if slack <= 0 || os.Getenv(timerSlackEnv) != "" {
		os.Unsetenv(timerSlackEnv)
		return nil
	}
	runtime.LockOSThread() // the slack and the execve must be on the same thread
	defer runtime.UnlockOSThread()
	cur, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err == nil && time.Duration(cur) == slack {
		return nil // inherited from whoever started us
	}
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
		return fmt.Errorf("timer slack: %w", err)
	}
	env := append(os.Environ(), timerSlackEnv+"=1")
	if err := syscall.Exec("/proc/self/exe", os.Args, env); err != nil {
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0) // back to the default
		return fmt.Errorf("timer slack: re-executing: %w", err)
	}
	return nil
}
