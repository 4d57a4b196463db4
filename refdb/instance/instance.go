// Package instance runs a refdb DB instance: it opens the shared volume (recovery under a new
// epoch for a writer), the engine over it and the MySQL-protocol front end.
package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aurorabench/aurorabench/refdb/engine"
	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/sqlfront"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// Config configures an instance.
type Config struct {
	Role    string // "writer" (readers come with the replica stream)
	ID      string
	AZ      string
	MySQL   string // listen address
	Storage []redo.Peer
	PGs     int
	Secret  []byte
	// Create bootstraps the volume when no storage node hosts it yet (first start of a cluster).
	Create          bool
	User, Password  string
	LockWaitTimeout time.Duration
	CacheBytes      int64
	// OpenTimeout bounds recovery (reaching read and write quorums of every PG).
	OpenTimeout time.Duration
	Logger      *slog.Logger
	// Ready is called with the MySQL address once the instance serves.
	Ready func(addr string)
}

// Run opens the volume and serves until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Role != "writer" {
		return fmt.Errorf("instance %s: role %q is not supported by this build (only writer)", cfg.ID, cfg.Role)
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 60 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("instance", cfg.ID, "role", cfg.Role, "az", cfg.AZ)
	start := time.Now()
	openCtx, cancel := context.WithTimeout(ctx, cfg.OpenTimeout)
	defer cancel()
	vcfg := volume.Config{ID: cfg.ID, Nodes: cfg.Storage, PGs: cfg.PGs, Secret: cfg.Secret, Logger: log}
	v, err := volume.Open(openCtx, vcfg)
	if errors.Is(err, volume.ErrNoVolume) && cfg.Create {
		log.Info("no volume found: creating it")
		vcfg.Create = true
		v, err = volume.Open(openCtx, vcfg)
	}
	if err != nil {
		return fmt.Errorf("instance %s: open volume: %w", cfg.ID, err)
	}
	defer v.Close()
	log.Info("volume recovered", "epoch", v.Epoch(), "vdl", v.VDL(), "took", time.Since(start).String())
	store, err := engine.NewVolumeStore(v, cfg.Storage, cfg.PGs)
	if err != nil {
		return fmt.Errorf("instance %s: %w", cfg.ID, err)
	}
	eng, err := engine.Open(openCtx, engine.Config{Store: store, LockWaitTimeout: cfg.LockWaitTimeout, CacheBytes: cfg.CacheBytes, Logger: log})
	if err != nil {
		return fmt.Errorf("instance %s: open engine: %w", cfg.ID, err)
	}
	fe, err := sqlfront.New(sqlfront.Config{Engine: eng, Listen: cfg.MySQL, User: cfg.User, Password: cfg.Password,
		ServerID: cfg.ID, LockWaitTimeout: cfg.LockWaitTimeout, Logger: log})
	if err != nil {
		return fmt.Errorf("instance %s: %w", cfg.ID, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- fe.Serve() }()
	log.Info("serving", "mysql", fe.Addr(), "startup", time.Since(start).String())
	if cfg.Ready != nil {
		cfg.Ready(fe.Addr())
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return fe.Close()
	case err := <-serveErr:
		fe.Close()
		if err != nil {
			return fmt.Errorf("instance %s: serve: %w", cfg.ID, err)
		}
		return nil
	}
}
