package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process started detached: its own session (Setsid), or with SessionEnv=inherit
// in its environment its own process group in its starter's session; stdout and stderr
// appended to a log file. It outlives its starter; only an explicit stop ends it.
type Proc struct {
	PID   int
	Start uint64 // start time, see Node.PIDStart
	done  chan struct{}
}

// Done is closed once the process has exited (and, if we are its parent, been reaped).
func (p *Proc) Done() <-chan struct{} { return p.done }

// Spawn starts args (args[0] is the binary) detached, logging to logPath, with the current
// environment plus env. A goroutine reaps it when it exits so that a dead child never
// lingers as a zombie that would still look alive.
func Spawn(args []string, logPath string, env []string) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("spawn: empty command line")
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spawn %s: log: %w", args[0], err)
	}
	defer lf.Close() // the child has its own descriptor
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if inheritSession(cmd.Env) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn %s: %w", args[0], err)
	}
	p := &Proc{PID: cmd.Process.Pid, done: make(chan struct{})}
	p.Start, _ = StartTime(p.PID)
	go func() {
		_ = cmd.Wait() // the exit status is in the log
		close(p.done)
	}()
	return p, nil
}

// SessionEnv chooses the session of spawned processes (and, through their environment, of
// the processes they spawn): unset, each leads a session of its own, so a cluster started
// from a terminal survives it; "inherit", each stays in its starter's session, in a process
// group of its own. aurorabench runs its embedded cluster that way, as it runs MariaDB and
// PostgreSQL: Linux's autogroup scheduler shares the CPU equally among sessions, so ten refdb
// sessions beside the load generator's one left the load generator a tenth of the CPU under
// load, and its waits showed up in what it measured (client-observed replica lag p99 42-79 ms
// in one session each, 14-18 ms in one session, 20 s lag runs on 2 cores).
const SessionEnv = "REFDB_SESSION"

// inheritSession reports whether env (an environment, later entries winning) asks spawned
// processes to stay in their starter's session.
func inheritSession(env []string) bool {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == SessionEnv {
			v = val
		}
	}
	return v == "inherit"
}

// StartTime reads the start time of pid from /proc (0, error if there is no such process).
func StartTime(pid int) (uint64, error) {
	st, start, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if st == 'Z' || st == 'X' {
		return 0, fmt.Errorf("process %d: exited", pid)
	}
	return start, nil
}

func procStat(pid int) (state byte, start uint64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("no process %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces: parse after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: malformed stat: %w", pid, err)
	}
	return f[0][0], start, nil
}

// Alive reports whether pid still runs and is the process that started at start (0 skips
// that check).
func Alive(pid int, start uint64) bool {
	got, err := StartTime(pid)
	return err == nil && (start == 0 || got == start)
}

// Stopped reports whether pid is stopped (SIGSTOP).
func Stopped(pid int) bool {
	st, _, err := procStat(pid)
	return err == nil && st == 'T'
}

// Signal sends sig to pid if it is still the process recorded (pid, start); a process that
// is gone is not an error.
func Signal(pid int, start uint64, sig syscall.Signal) error {
	if !Alive(pid, start) {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
	}
	return nil
}

// Stop ends a recorded process: SIGTERM (and SIGCONT, in case it is paused), up to grace
// for it to exit, then SIGKILL. It never touches a PID that no longer names that process.
func Stop(ctx context.Context, pid int, start uint64, grace time.Duration) error {
	if !Alive(pid, start) {
		return nil
	}
	if err := Signal(pid, start, syscall.SIGTERM); err != nil {
		return err
	}
	_ = Signal(pid, start, syscall.SIGCONT)
	deadline := time.Now().Add(grace)
	for Alive(pid, start) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err := Signal(pid, start, syscall.SIGKILL); err != nil {
				return err
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// After SIGKILL the kernel ends it promptly; wait for that (bounded) so callers can
	// reuse its ports.
	for i := 0; i < 250 && Alive(pid, start); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if Alive(pid, start) {
		return fmt.Errorf("process %d did not exit after SIGKILL", pid)
	}
	return nil
}
