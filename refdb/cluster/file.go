package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileName is the cluster description in the cluster folder (DESIGN.md §3 is its contract).
const FileName = "cluster.json"

// Node kinds in cluster.json.
const (
	KindStorage  = "storage"
	KindInstance = "instance"
	KindControl  = "control"
	KindEndpoint = "endpoint"
)

// Instance roles.
const (
	RoleWriter = "writer"
	RoleReader = "reader"
)

// Node is one process of the cluster. The fields up to DataDir are the contract; the rest
// is what the launcher and the control plane need to supervise it.
type Node struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Role    string `json:"role,omitempty"`
	AZ      string `json:"az,omitempty"`
	Addr    string `json:"addr,omitempty"`  // storage RPC address; control admin; endpoint writer address
	MySQL   string `json:"mysql,omitempty"` // instance MySQL address
	PID     int    `json:"pid"`
	DataDir string `json:"data_dir,omitempty"`

	Admin string `json:"admin,omitempty"` // instance admin HTTP address (instanceapi)
	// Tier orders failover candidates: the lowest tier is promoted first (Aurora's 0-15).
	Tier int `json:"tier"`
	// PIDStart is the process start time (clock ticks after boot, /proc/PID/stat field 22):
	// a recorded PID is only signalled while it still names the process we started.
	PIDStart uint64   `json:"pid_start,omitempty"`
	Log      string   `json:"log,omitempty"`
	Args     []string `json:"args,omitempty"` // full command line; Args[0] is the binary

	// Live fields, filled in by the control plane's GET /status.
	Healthy   *bool    `json:"healthy,omitempty"`
	LagMS     *float64 `json:"lag_ms,omitempty"`
	ReadPoint uint64   `json:"read_point,omitempty"`
	Epoch     uint64   `json:"epoch,omitempty"`
	// Stale marks an old writer that was replaced and must rejoin as a reader.
	Stale bool `json:"stale,omitempty"`
}

// File is cluster.json.
type File struct {
	WriterEndpoint string `json:"writer_endpoint"`
	ReaderEndpoint string `json:"reader_endpoint"`
	Admin          string `json:"admin"`
	User           string `json:"user"`
	Password       string `json:"password"`
	Database       string `json:"database"`
	Nodes          []Node `json:"nodes"`

	PortBase int `json:"port_base"`
	// Epoch is the volume epoch of the current writer, VDL its durable LSN (as last seen).
	Epoch uint64 `json:"epoch,omitempty"`
	VDL   uint64 `json:"vdl,omitempty"`
}

// Node returns the node with id, or nil.
func (f *File) Node(id string) *Node {
	for i := range f.Nodes {
		if f.Nodes[i].ID == id {
			return &f.Nodes[i]
		}
	}
	return nil
}

// Writer returns the writer instance, or nil.
func (f *File) Writer() *Node {
	for i := range f.Nodes {
		if f.Nodes[i].Kind == KindInstance && f.Nodes[i].Role == RoleWriter {
			return &f.Nodes[i]
		}
	}
	return nil
}

// Instances returns pointers to the instance nodes.
func (f *File) Instances() []*Node {
	var out []*Node
	for i := range f.Nodes {
		if f.Nodes[i].Kind == KindInstance {
			out = append(out, &f.Nodes[i])
		}
	}
	return out
}

// Kind returns pointers to the nodes of a kind.
func (f *File) Kind(kind string) []*Node {
	var out []*Node
	for i := range f.Nodes {
		if f.Nodes[i].Kind == kind {
			out = append(out, &f.Nodes[i])
		}
	}
	return out
}

// Read loads dir/cluster.json.
func Read(dir string) (*File, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("reading cluster description: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("malformed %s: %w", filepath.Join(dir, FileName), err)
	}
	return &f, nil
}

// Update applies fn to dir/cluster.json under an exclusive lock (the launcher, the control
// plane and the aurorabench target all update it) and writes it atomically. A missing file
// starts empty when create is true.
func Update(dir string, create bool, fn func(*File) error) error {
	lk, err := os.OpenFile(filepath.Join(dir, ".cluster.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("cluster description lock: %w", err)
	}
	defer lk.Close()
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("cluster description lock: %w", err)
	}
	f, err := Read(dir)
	if err != nil {
		if !create || !errors.Is(err, os.ErrNotExist) {
			return err
		}
		f = &File{}
	}
	if err := fn(f); err != nil {
		return err
	}
	return write(dir, f)
}

func write(dir string, f *File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding cluster description: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".cluster-*.json")
	if err != nil {
		return fmt.Errorf("writing cluster description: %w", err)
	}
	// The file holds the password and the command lines (with the secret): owner only.
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, FileName))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing cluster description: %w", err)
	}
	return nil
}
