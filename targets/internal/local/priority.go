package local

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/targets"
)

// KeepPriority starts a goroutine that, until ctx ends, about twice a second gives each node's
// process group (a server, its threads and the processes it forked, which share the group) the
// nice value of its role, targets.ReplicaNice for a replica and 0 for the primary, so
// promotions, demotions and restarts are followed. logf is told once if the system refuses.
// The returned channel is closed when the goroutine has ended.
func KeepPriority(ctx context.Context, nodes func() []targets.Node, logf func(string, ...any)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		keepPriority(ctx, nodes, logf)
	}()
	return done
}

func keepPriority(ctx context.Context, nodes func() []targets.Node, logf func(string, ...any)) {
	var once sync.Once
	apply := func() {
		for _, n := range nodes() {
			pid := n.PID()
			if pid <= 0 {
				continue
			}
			nice := 0
			if n.Role() == targets.RoleReader {
				nice = targets.ReplicaNice
			}
			if err := syscall.Setpriority(syscall.PRIO_PGRP, pid, nice); err != nil && err != syscall.ESRCH {
				once.Do(func() { logf("replica priority unchanged (nice %d for %s): %v", nice, n.ID(), err) })
			}
		}
	}
	apply()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			apply()
		}
	}
}
