// Package localvol runs a real volume inside one process for tests: six storage servers on
// 127.0.0.1 (two per AZ) with their durable logs in a folder, and a writer's volume over them.
// Tests of the engine and the SQL front end use it so they exercise the production storage,
// quorum and recovery code instead of a fake.
package localvol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/storage"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Cluster is six running storage servers.
type Cluster struct {
	Dir    string
	Secret []byte
	PGs    int
	Peers  []redo.Peer
	Logger *slog.Logger

	mu      sync.Mutex
	servers []*server
	writers int
}

type server struct {
	cfg    storage.ServerConfig
	cancel context.CancelFunc
	done   chan error
}

// Quiet is a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Start starts six storage servers with data under dir.
func Start(dir string, pgs int, log *slog.Logger) (*Cluster, error) {
	if log == nil {
		log = Quiet()
	}
	c := &Cluster{Dir: dir, Secret: []byte("localvol-secret"), PGs: pgs, Logger: log}
	for i := 0; i < volume.Copies; i++ {
		id := fmt.Sprintf("s%d", i+1)
		cfg := storage.ServerConfig{ID: id, AZ: fmt.Sprintf("az%d", i/2+1), Dir: filepath.Join(dir, id),
			Listen: "127.0.0.1:0", Secret: c.Secret, Tick: 10 * time.Millisecond, Logger: log}
		s, err := c.startServer(cfg)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.servers = append(c.servers, s)
		c.Peers = append(c.Peers, redo.Peer{ID: id, AZ: cfg.AZ, Addr: s.cfg.Listen})
	}
	return c, nil
}

func (c *Cluster) startServer(cfg storage.ServerConfig) (*server, error) {
	var srv *storage.Server
	var err error
	for i := 0; i < 50; i++ { // the port of a server just stopped may take a moment to free
		if srv, err = storage.NewServer(cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("start storage %s: %w", cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	s.cfg.Listen = srv.Addr()
	go func() { s.done <- srv.Run(ctx) }()
	return s, nil
}

// Stop stops every storage server.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, s := range c.servers {
		s.cancel()
		if err := <-s.done; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.cfg.ID, err))
		}
	}
	c.servers = nil
	return errors.Join(errs...)
}

// OpenVolume opens a writer's volume: create bootstraps a new one, otherwise recovery runs
// under a new epoch.
func (c *Cluster) OpenVolume(ctx context.Context, create bool) (*volume.Volume, error) {
	c.mu.Lock()
	c.writers++
	id := fmt.Sprintf("writer-%d", c.writers)
	c.mu.Unlock()
	return volume.Open(ctx, volume.Config{ID: id, Nodes: c.Peers, PGs: c.PGs, Secret: c.Secret, Create: create, Logger: c.Logger})
}

// OpenStore opens a volume and wraps it as an engine.Store; close the volume when done.
func (c *Cluster) OpenStore(ctx context.Context, create bool) (*engine.VolumeStore, error) {
	v, err := c.OpenVolume(ctx, create)
	if err != nil {
		return nil, err
	}
	s, err := engine.NewVolumeStore(v, c.Peers, c.PGs)
	if err != nil {
		v.Close()
		return nil, err
	}
	return s, nil
}
