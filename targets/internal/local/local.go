// Package local holds what the local peer targets (mariadb, postgres) share:
// ports, folders owned by the server's user, copying data folders, polling.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/chaos/netem"
	"github.com/aurorabench/aurorabench/targets"
)

// Logf returns a printf-style logger that is quiet when opts.Log is nil.
func Logf(opts targets.Options) func(string, ...any) {
	if opts.Log == nil {
		return func(string, ...any) {}
	}
	return opts.Log
}

// Dir returns the folder a target owns: opts.Dir (created if needed) or a
// new temp folder (temp=true: the target removes it on Close). The folder
// is made world-traversable so that a server running as another user can
// reach its own subfolder.
func Dir(opts targets.Options, prefix string) (dir string, temp bool, err error) {
	if opts.Dir == "" {
		dir, err = os.MkdirTemp("", prefix)
		temp = true
	} else {
		dir, err = filepath.Abs(opts.Dir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		return "", false, targets.SetupError("cannot create target folder: %v", err)
	}
	return dir, temp, nil
}

// ServerUser returns the credential to run a server as when we are root
// (servers refuse to run as root), nil when we are not.
func ServerUser(name string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, targets.SetupError("running as root but there is no %q user to run the server as: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Reachable checks that the user of cred can traverse every ancestor of
// dir, so a server started as that user can reach its files; otherwise the
// server dies with an obscure permission error.
func Reachable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m := fi.Mode().Perm()
		ok := m&0o001 != 0 ||
			(st.Gid == cred.Gid && m&0o010 != 0) ||
			(st.Uid == cred.Uid && m&0o100 != 0)
		if !ok {
			return targets.SetupError("folder %s is not traversable by uid %d; use a target folder under /tmp", d, cred.Uid)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// Mkdir creates dir with mode and gives it to cred's user (if any).
func Mkdir(dir string, mode os.FileMode, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	return Chown(dir, cred)
}

// Chown gives path to cred's user (no-op when cred is nil).
func Chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	return os.Lchown(path, int(cred.Uid), int(cred.Gid))
}

// WriteFile writes a file owned by cred's user.
func WriteFile(path string, data []byte, mode os.FileMode, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return Chown(path, cred)
}

// CopyTree copies the folder src to dst (which must not exist), keeping
// modes and giving everything to cred's user. Used to clone a freshly
// initialised data folder, which is much faster than initialising again.
func CopyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes: not data
		}
		return Chown(target, cred)
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1: from base
// upwards, or, when base is 0, from a random point below the kernel's
// ephemeral range. Not from the ephemeral range itself: every outgoing
// connection on the machine takes a port from it, so a port found free there
// is often taken again before the server binds it. A port can still be taken
// between this check and the server's bind; the caller then picks again
// (see BindFailed).
func FreePorts(base, n int) ([]int, error) {
	span := 1000
	if base == 0 {
		lo, hi := 12000, ephemeralLow()-n
		if hi-lo < 2*n {
			lo, hi = 1024, 65535-n
		}
		base = lo + mathrand.IntN(hi-lo)
		span = hi - base
	}
	var ports []int
	for p := base; len(ports) < n && p < 65536 && p < base+span; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, targets.SetupError("ports from %d on 127.0.0.1 are in use: found %d free of %d needed", base, len(ports), n)
	}
	return ports, nil
}

// RetryTakenPort runs launch and, while it fails because its port was taken (BindFailed) and
// the ports were not asked for (repick), moves the node to another free port with setPort
// and runs launch again, at most 3 more times. It returns launch's last error.
func RetryTakenPort(repick bool, port int, setPort func(int), launch func() error, log func(string, ...any)) error {
	err := launch()
	for try := 0; try < 3 && repick && BindFailed(err); try++ {
		p, perr := FreePorts(0, 1)
		if perr != nil {
			return err
		}
		log("port %d was taken; trying %d", port, p[0])
		port = p[0]
		setPort(port)
		err = launch()
	}
	return err
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo < 1024 {
		return 32768
	}
	return lo
}

// BindFailed reports whether a server failed to start because its port was
// taken (MariaDB: "Bind on TCP/IP port", PostgreSQL: "could not bind").
func BindFailed(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "Address already in use") || strings.Contains(s, "Bind on TCP/IP port") ||
		strings.Contains(s, "could not bind") || strings.Contains(s, "could not create any TCP/IP sockets")
}

// Poll calls f every interval until it returns true or an error, or until
// ctx ends or timeout passes (then the last error f reported, if any, is
// wrapped into the returned error).
func Poll(ctx context.Context, timeout, interval time.Duration, f func(ctx context.Context) (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, err := f(ctx)
		if done {
			return nil
		}
		var perm *Permanent
		if errors.As(err, &perm) {
			return perm.Err
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Permanent makes Poll stop retrying and return Err.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// PortOpen reports whether something accepts TCP connections on addr.
func PortOpen(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Gone reports whether no process with this pid or process group exists
// any more; tests use it to check a target left nothing behind.
func Gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) && errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
}

// Bind returns a context that ends when ctx or life ends: operations on a
// cluster are bound to the cluster's life, so Close cancels whatever is in
// progress instead of waiting for it or leaving it running.
func Bind(ctx, life context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(life, cancel)
	return ctx, func() { stop(); cancel() }
}

// LinkNode is a node of a replicated local target, for Links.
type LinkNode struct {
	ID, AZ string
	Port   int // the node's own port on 127.0.0.1
}

// Links maps (from, to) node ids to the 127.0.0.1 port from must dial to reach to.
type Links map[[2]string]int

// Port is the port from dials to reach to: its link's proxy, or to's own port without a
// network.
func (l Links) Port(from string, to LinkNode) int {
	if p, ok := l[[2]string{from, to.ID}]; ok {
		return p
	}
	return to.Port
}

// MakeLinks creates, on network nw, a link for every ordered pair of nodes (a replica
// dials its primary, and any node may become primary after a failover). A nil network
// gives no links: nodes dial each other directly.
func MakeLinks(nw *netem.Network, nodes []LinkNode) (Links, error) {
	l := Links{}
	if nw == nil {
		return l, nil
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from.ID == to.ID {
				continue
			}
			addr, err := nw.Link(netem.NodeRef{ID: from.ID, AZ: from.AZ}, netem.NodeRef{ID: to.ID, AZ: to.AZ},
				net.JoinHostPort("127.0.0.1", strconv.Itoa(to.Port)))
			if err != nil {
				return nil, err
			}
			_, ps, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("link %s->%s: %w", from.ID, to.ID, err)
			}
			p, err := strconv.Atoi(ps)
			if err != nil {
				return nil, fmt.Errorf("link %s->%s: port %q: %w", from.ID, to.ID, ps, err)
			}
			l[[2]string{from.ID, to.ID}] = p
		}
	}
	return l, nil
}
