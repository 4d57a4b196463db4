// Package targets is what aurorabench runs against: a cluster with a writer,
// readers and nodes that faults can be applied to. Every target is reached
// the same way, over its SQL protocol and by process control, so workloads,
// nemeses and checkers never know which database they face.
package targets

import (
	"context"
	"errors"
	"fmt"

	"github.com/aurorabench/aurorabench/chaos/netem"
)

// Dialect is the SQL dialect and wire protocol of a target.
type Dialect string

const (
	MySQL    Dialect = "mysql"    // MySQL/MariaDB (go-sql-driver/mysql)
	Postgres Dialect = "postgres" // PostgreSQL (pgx)
)

// Role of a node in the cluster.
type Role string

const (
	RoleWriter  Role = "writer"
	RoleReader  Role = "reader"
	RoleStorage Role = "storage"
	RoleOther   Role = "other"
)

// Node is one process of a target that faults can be applied to.
type Node interface {
	ID() string
	AZ() string
	Role() Role
	PID() int // 0 when not running
	// Addr is the node's own SQL address (host:port), "" for non-SQL nodes.
	Addr() string
	// DSN connects straight to this node (bypassing endpoints), "" for non-SQL nodes.
	DSN() string
	Kill(ctx context.Context) error   // SIGKILL
	Start(ctx context.Context) error  // start again after Kill; rejoins the cluster
	Pause(ctx context.Context) error  // SIGSTOP
	Resume(ctx context.Context) error // SIGCONT
}

// Target is a running cluster.
type Target interface {
	Name() string
	Dialect() Dialect
	// WriterDSN reaches the current writer (it follows failovers).
	WriterDSN() string
	// ReaderDSN reaches a replica; new connections are spread over the
	// healthy replicas round-robin (the writer when there are none).
	ReaderDSN() string
	Nodes() []Node
	// Failover makes sure a healthy writer serves: with a dead writer it
	// promotes the most advanced replica and repoints the rest, as
	// orchestrator or Patroni would (or, for a cluster that fails over by
	// itself, waits until it has); with a healthy writer it is a planned
	// switchover. ErrNoFailover if the target cannot (an external DSN).
	Failover(ctx context.Context) error
	// Logs lists node log files to copy into the results folder.
	Logs() map[string]string
	// Close stops every process the target started and removes its files.
	Close(ctx context.Context) error
}

// ErrNoFailover is returned by targets that cannot fail over.
var ErrNoFailover = errors.New("target cannot fail over")

// ErrSetup marks a target that could not be started (missing binaries,
// ports in use, unreachable DSN): a usage/setup error, exit status 2.
var ErrSetup = errors.New("target setup failed")

// SetupError wraps err so errors.Is(err, ErrSetup) holds.
func SetupError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSetup, fmt.Sprintf(format, args...))
}

// Options for starting a local target.
type Options struct {
	// Dir holds data folders and logs; the target owns it. Empty = a temp dir.
	Dir string
	// Replicas is the number of replicas besides the writer (default 2).
	Replicas int
	// PortBase is the first TCP port on 127.0.0.1 to try; 0 picks free ports.
	PortBase int
	// Log receives progress lines (nil = quiet).
	Log func(format string, args ...any)
	// Network, when set, carries every inter-node connection of the target (replication,
	// storage traffic) through its own per-link proxy, so network faults can act on it.
	// The caller owns it and closes it after the target. Nil = nodes connect directly.
	Network *netem.Network
	// Unsafe names deliberately broken modes of the target (refdb only: see
	// refdb/cluster.UnsafeModes), for proving that the checkers catch real bugs.
	// Other targets refuse them.
	Unsafe []string
}

// Networked is a target whose inter-node connections go through per-link proxies.
// Network is nil when the target was started without one.
type Networked interface {
	Network() *netem.Network
}

// LagReporter is a target that measures its own replica lag, beside what aurorabench
// observes from outside: refdb readers record Aurora's measure (from the writer's durable
// acknowledgement of a commit batch to the reader's read point passing it).
type LagReporter interface {
	// ReportedLag returns each replica's distribution, since the replica started.
	ReportedLag(ctx context.Context) ([]ReportedLag, error)
}

// ReportedLag is one replica's own lag distribution, in milliseconds.
type ReportedLag struct {
	Replica string
	Count   int64 // samples: commit batches the replica applied
	P50MS   float64
	P99MS   float64
	MaxMS   float64
}

// NetworkOf returns the target's network, or nil.
func NetworkOf(t Target) *netem.Network {
	if n, ok := t.(Networked); ok {
		return n.Network()
	}
	return nil
}

// Writer returns the current writer node, or nil.
func Writer(t Target) Node {
	for _, n := range t.Nodes() {
		if n.Role() == RoleWriter {
			return n
		}
	}
	return nil
}

// Readers returns the reader nodes.
func Readers(t Target) []Node {
	var rs []Node
	for _, n := range t.Nodes() {
		if n.Role() == RoleReader {
			rs = append(rs, n)
		}
	}
	return rs
}

// ReplicaNice is the nice value aurorabench gives the replicas of every local target and the
// threads that watch them (the lag workload's pollers); primaries run at 0. refdb's readers
// run at the same value by default (`refdb instance --reader-nice`): on a machine where the
// primary, its replicas and the load generator share a few cores, a replica's lag is mostly
// waiting for a CPU, and each peer gets the same help. Lowering nice needs root
// (CAP_SYS_NICE); without it everything keeps its priority.
const ReplicaNice = -10
