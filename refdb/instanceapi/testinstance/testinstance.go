// Package testinstance is a small but real DB-instance process for tests of the control
// plane, the endpoints and the launcher while the SQL instance is built elsewhere. It takes
// the command line of `refdb instance`, serves the instanceapi admin API and, on its "mysql"
// port, greets every connection with "<id> <role>\n" and then echoes what it reads, so a test
// can see which instance an endpoint reached and whether the connection survives.
//
// Epochs live in a file shared by the cluster's test instances (REFDB_TESTINSTANCE_STATE, a
// folder), standing in for the volume: a starting writer and a promote install the next
// epoch; readers report the installed one.
package testinstance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// StateEnv names the folder holding the shared epoch file.
const StateEnv = "REFDB_TESTINSTANCE_STATE"

type instance struct {
	mu        sync.Mutex
	id, az    string
	mysql     string
	role      instanceapi.Role
	epoch     uint64
	readPoint uint64
	started   time.Time
	stateDir  string
	delay     time.Duration
}

// Main runs the instance until ctx ends. It prints "listening MYSQL ADMIN" first.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("instance", pflag.ContinueOnError)
	role := fs.String("role", "writer", "writer or reader")
	id := fs.String("id", "", "instance id")
	az := fs.String("az", "", "availability zone")
	mysql := fs.String("mysql", "127.0.0.1:0", "mysql address")
	admin := fs.String("admin", "127.0.0.1:0", "admin address")
	fs.String("storage", "", "storage nodes (unused)")
	fs.String("secret", "", "cluster secret (unused)")
	fs.String("user", "", "user (unused)")
	fs.String("password", "", "password (unused)")
	fs.Bool("create", false, "bootstrap the volume (unused)")
	fs.String("peers", "", "instance admin addresses (unused)")
	fs.String("control", "", "control plane URL (unused)")
	fs.String("database", "", "database to create (unused)")
	fs.String("writer-stream", "", "writer admin address (unused)")
	readPoint := fs.Uint64("read-point", 100, "read point a reader reports")
	delay := fs.Duration("promote-delay", 0, "time a promote takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	in := &instance{id: *id, az: *az, role: instanceapi.Role(*role), readPoint: *readPoint, started: time.Now(),
		stateDir: os.Getenv(StateEnv), delay: *delay}
	if in.role != instanceapi.RoleWriter && in.role != instanceapi.RoleReader {
		return fmt.Errorf("--role must be writer or reader, got %q", *role)
	}
	var err error
	if in.role == instanceapi.RoleWriter {
		in.epoch, err = in.installEpoch(0)
	} else {
		in.epoch, err = in.readEpoch()
	}
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *mysql)
	if err != nil {
		return fmt.Errorf("mysql listen: %w", err)
	}
	defer ln.Close()
	in.mysql = ln.Addr().String()
	srv, err := instanceapi.Listen(*admin, instanceapi.Handler(in.status, in.promote))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening %s %s\n", in.mysql, srv.Addr())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				cancel()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				in.serveConn(ctx, c)
			}()
		}
	}()
	err = srv.Serve(ctx)
	cancel()
	wg.Wait()
	return err
}

func (in *instance) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	in.mu.Lock()
	hello := fmt.Sprintf("%s %s\n", in.id, in.role)
	in.mu.Unlock()
	if _, err := io.WriteString(c, hello); err != nil {
		return
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if _, err := fmt.Fprintf(c, "%s\n", sc.Text()); err != nil {
			return
		}
	}
}

func (in *instance) status(context.Context) (instanceapi.Status, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	lag := 3.0
	fenced := ""
	if in.role == instanceapi.RoleWriter {
		lag = 0
		// A writer below the installed epoch is fenced, as on the volume.
		if cur, err := in.readEpoch(); err == nil && cur > in.epoch {
			fenced = fmt.Sprintf("epoch %d is installed, writer at %d", cur, in.epoch)
		}
	}
	return instanceapi.Status{ID: in.id, Role: in.role, AZ: in.az, MySQL: in.mysql, PID: os.Getpid(), Epoch: in.epoch,
		VDL: in.readPoint, ReadPoint: in.readPoint, LagMS: lag, Healthy: fenced == "", Started: in.started, Fenced: fenced}, nil
}

func (in *instance) promote(ctx context.Context, req instanceapi.PromoteRequest) (instanceapi.Status, error) {
	in.mu.Lock()
	isWriter := in.role == instanceapi.RoleWriter
	in.mu.Unlock()
	if !isWriter {
		select {
		case <-time.After(in.delay):
		case <-ctx.Done():
			return instanceapi.Status{}, ctx.Err()
		}
		e, err := in.installEpoch(req.MinEpoch)
		if err != nil {
			return instanceapi.Status{}, err
		}
		in.mu.Lock()
		in.role, in.epoch = instanceapi.RoleWriter, e
		in.mu.Unlock()
	}
	return in.status(ctx)
}

func (in *instance) epochFile() string { return filepath.Join(in.stateDir, "epoch") }

func (in *instance) readEpoch() (uint64, error) {
	if in.stateDir == "" {
		return 1, nil
	}
	b, err := os.ReadFile(in.epochFile())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading epoch: %w", err)
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// installEpoch installs max(current+1, min) under an exclusive lock on the epoch file, as
// recovery installs a new epoch on the volume.
func (in *instance) installEpoch(min uint64) (uint64, error) {
	if in.stateDir == "" {
		return max(min, 1), nil
	}
	lk, err := os.OpenFile(in.epochFile()+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, fmt.Errorf("epoch lock: %w", err)
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("epoch lock: %w", err)
	}
	cur, err := in.readEpoch()
	if err != nil {
		return 0, err
	}
	e := max(cur+1, min)
	if err := os.WriteFile(in.epochFile(), []byte(strconv.FormatUint(e, 10)), 0o644); err != nil {
		return 0, fmt.Errorf("writing epoch: %w", err)
	}
	return e, nil
}
