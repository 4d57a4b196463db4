package local

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/aurorabench/aurorabench/targets"
)

// ReplicaNice is the nice value of a replica's processes; the primary runs at 0. refdb's
// readers run at the same value by default (`refdb instance --reader-nice`): on a machine
// where the primary, its replicas and the load generator share a few cores, a replica's lag
// is mostly waiting for a CPU, and each peer gets the same help. Lowering nice needs root
// (CAP_SYS_NICE); without it every process keeps its priority.
const ReplicaNice = -10

// KeepPriority runs until ctx ends, and about twice a second gives each node's process group
// (a server, its threads and the processes it forked, which share the group) the nice value
// of its role, so promotions, demotions and restarts are followed. logf is told once if the
// system refuses.
func KeepPriority(ctx context.Context, nodes func() []targets.Node, logf func(string, ...any)) {
	var once sync.Once
	apply := func() {
		for _, n := range nodes() {
			pid := n.PID()
			if pid <= 0 {
				continue
			}
			nice := 0
			if n.Role() == targets.RoleReader {
				nice = ReplicaNice
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
