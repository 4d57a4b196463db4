// Package proc supervises the server processes a local target starts.
//
// Every process gets its own process group so that a fault (kill, pause)
// reaches the whole server, postmaster and backends alike, and nothing else.
// Pdeathsig=SIGKILL makes the kernel kill a server if the toolkit dies
// without cleaning up, so a crashed benchmark leaves no database running.
// Processes are only ever signalled by the PID/PGID we got when starting
// them; nothing here looks processes up by name.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes a process to start.
type Spec struct {
	Path string   // executable
	Args []string // arguments, without argv[0]
	Env  []string // extra environment (appended to a minimal one)
	// Dir is the working directory. It must be readable by the user the
	// process runs as (postgres refuses to start in a directory it cannot
	// read); empty means "/".
	Dir string
	// LogPath receives stdout and stderr (appended). Empty discards them.
	LogPath string
	// StdoutPath, if set, receives stdout instead (truncated first); used
	// to capture a tool's output, e.g. a dump.
	StdoutPath string
	// StdinPath, if set, is read as stdin.
	StdinPath string
	// Cred runs the process as another user (needs root). The switch
	// happens in the child before exec, before Pdeathsig is set, so the
	// death signal survives it (a setuid done by the server itself would
	// clear it).
	Cred *syscall.Credential
}

// Process is a started child process.
type Process struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // exit status, valid after done is closed

	mu      sync.Mutex
	stopped bool // SIGSTOPped by Pause
}

// Start starts the process described by s. The caller owns its lifetime:
// it is not tied to a context, only to Kill/Stop (and to our own death).
func Start(s Spec) (*Process, error) {
	if _, err := os.Stat(s.Path); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Path, err)
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Env = append(baseEnv(), s.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
		// Keep Go's setgroups call: Credential.NoSetGroups=false drops
		// root's supplementary groups.
		Credential: s.Cred,
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	if s.LogPath != "" {
		f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		p.log = f
		cmd.Stdout = f
		cmd.Stderr = f
	}
	var extra []*os.File // closed once the child has them
	closeAll := func() {
		for _, f := range extra {
			f.Close()
		}
		if p.log != nil {
			p.log.Close()
		}
	}
	if s.StdoutPath != "" {
		f, err := os.OpenFile(s.StdoutPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open output: %w", err)
		}
		extra = append(extra, f)
		cmd.Stdout = f
	}
	if s.StdinPath != "" {
		f, err := os.Open(s.StdinPath)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open input: %w", err)
		}
		extra = append(extra, f)
		cmd.Stdin = f
	}
	if err := onSpawnThread(cmd.Start); err != nil {
		closeAll()
		return nil, fmt.Errorf("start %s: %w", s.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		closeAll()
		close(p.done)
	}()
	return p, nil
}

// Linux sends Pdeathsig when the *thread* that forked the child ends, not the process, and Go
// ends a thread when a goroutine locked to it (runtime.LockOSThread) exits. aurorabench's lag
// pollers lock threads for the run: a replica that happened to be started from a thread a
// poller later took was killed when that poller finished (a MariaDB replica and a PostgreSQL
// standby died at the end of lag runs). So every process is started from one goroutine locked
// to its thread for the life of the program: its children die only with the toolkit.
var (
	spawnOnce sync.Once
	spawnReqs chan func()
)

// onSpawnThread runs start on the spawning thread and returns its error.
func onSpawnThread(start func() error) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan func())
		go spawnLoop(spawnReqs)
	})
	errc := make(chan error, 1)
	spawnReqs <- func() { errc <- start() }
	return <-errc
}

// spawnLoop never returns (tests tell goleak to ignore it: IgnoreSpawner).
func spawnLoop(reqs <-chan func()) {
	runtime.LockOSThread()
	for f := range reqs {
		f()
	}
}

// IgnoreSpawner is the goleak option for the spawning goroutine, which lives as long as the
// program (see onSpawnThread).
const IgnoreSpawner = "github.com/aurorabench/aurorabench/targets/proc.spawnLoop"

// Run starts the process and waits for it to exit. A non-zero exit is an
// error carrying the log's last error line (or its last line, when none says
// ERROR), and the log's path. If ctx ends first the process group is killed.
func Run(ctx context.Context, s Spec) error {
	logFrom := LogSize(s.LogPath)
	p, err := Start(s)
	if err != nil {
		return err
	}
	if err := p.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			p.Kill()
			return fmt.Errorf("%s: %w", s.Path, ctx.Err())
		}
		if s.LogPath != "" {
			// mariadb-install-db, for one, ends its failure output with "Please
			// report any problems at https://mariadb.org/jira": the cause is the
			// last [ERROR] line above it.
			// The cause may sit just above a generic last line ("[ERROR] Aborting"), and the
			// log may be gone by the time someone reads the error: keep the last three.
			if tail := LastLines(s.LogPath, logFrom, 3, "[ERROR]", "ERROR", "FATAL", ""); len(tail) > 0 {
				return fmt.Errorf("%s: %v: %s (log: %s)", s.Path, err, strings.Join(tail, " | "), s.LogPath)
			}
		}
		return fmt.Errorf("%s: %w", s.Path, err)
	}
	return nil
}

func baseEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// PID is the process id (also its process group id).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit status; only meaningful once Exited.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Wait waits for the process to exit or ctx to end. It returns the exit
// status (nil for a clean exit) or ctx's error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// signalGroup sends sig to the process group, unless the process has
// already been reaped (its PGID could then be reused by someone else).
func (p *Process) signalGroup(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	// Children that left the group (PostgreSQL's backends call setsid) get the signal too:
	// a pause must freeze them and a kill must end them, as a crashed machine would.
	kids := descendants(p.PID())
	err := syscall.Kill(-p.PID(), sig)
	if errors.Is(err, syscall.ESRCH) {
		err = nil
	}
	for _, k := range kids {
		_ = syscall.Kill(k, sig)
	}
	return err
}

// descendants lists the live processes below pid (children, their children, ...).
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid, _, ok := procStat(c); ok && st != "Z" {
			children[ppid] = append(children[ppid], c)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		for _, c := range children[q] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat reads a process's state, parent and process group from /proc.
func procStat(pid int) (state string, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	if i < 0 {
		return "", 0, 0, false
	}
	f := strings.Fields(st[i+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	return f[0], ppid, pgrp, true
}

// waitGone waits until none of pids is alive (or timeout).
func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			st, _, _, ok := procStat(pid)
			if !ok || st == "Z" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Kill sends SIGKILL to the whole process group and waits for the leader to
// be reaped. Safe to call on an exited process.
func (p *Process) Kill() error {
	kids := descendants(p.PID())
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", p.PID(), err)
	}
	<-p.done
	// The leader is gone, but its children (PostgreSQL's backends) may still be exiting
	// and holding shared memory: a restart before they are all gone fails ("pre-existing
	// shared memory block is still in use").
	waitGroupGone(p.PID(), 10*time.Second)
	waitGone(kids, 10*time.Second)
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	return nil
}

// waitGroupGone waits until no process is left in process group pgid (or timeout).
func waitGroupGone(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether any live (non-zombie) process has process group pgid.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if st, _, g, ok := procStat(pid); ok && st != "Z" && g == pgid {
			return true
		}
	}
	return false
}

// Pause stops the whole process group (SIGSTOP).
func (p *Process) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.signalGroup(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %d: %w", p.PID(), err)
	}
	p.stopped = !p.Exited()
	return nil
}

// Resume continues a paused process group (SIGCONT).
func (p *Process) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.signalGroup(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %d: %w", p.PID(), err)
	}
	p.stopped = false
	return nil
}

// Paused reports whether the process is stopped by Pause.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped && !p.Exited()
}

// Stop asks the process to exit with sig (sent to the leader only: servers
// shut their children down themselves), resumes it if it was paused so it
// can act on the signal, and SIGKILLs the group if it has not exited after
// grace or when ctx ends.
func (p *Process) Stop(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return p.Kill()
	}
	p.Resume()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		// Both servers wait for their children before exiting, so the
		// group is empty; its id may no longer be ours to signal.
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	return p.Kill()
}

// LogSize is the current size of a log file (0 if missing), to read only
// what a process wrote after it with LastLine.
func LogSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LastLine returns the last non-empty line written to a log file from byte
// offset from on that contains one of substrs, trying them in order (so
// the first is preferred), or the last line at all when substrs is empty;
// "" if none. Used to put the cause of a failed start into a one-line error.
func LastLine(path string, from int64, substrs ...string) string {
	if ls := LastLines(path, from, 1, substrs...); len(ls) > 0 {
		return ls[0]
	}
	return ""
}

// LastLines is LastLine for up to n lines, oldest first: the last n lines that contain the
// first of substrs any line contains. A server that fails often ends with a generic line
// ("[ERROR] Aborting") just after the one that names the cause, so one line is not enough.
func LastLines(path string, from int64, n int, substrs ...string) []string {
	b, err := os.ReadFile(path)
	if err != nil || n <= 0 {
		return nil
	}
	if from > 0 && from <= int64(len(b)) {
		b = b[from:]
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(string(b), "\n")
	find := func(sub string) []string {
		var out []string
		for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
			l := strings.TrimSpace(lines[i])
			if l != "" && strings.Contains(l, sub) {
				out = append(out, l)
			}
		}
		slices.Reverse(out)
		return out
	}
	if len(substrs) == 0 {
		return find("")
	}
	for _, sub := range substrs {
		if ls := find(sub); len(ls) > 0 {
			return ls
		}
	}
	return nil
}
