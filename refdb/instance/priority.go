package instance

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/aurorabench/aurorabench/refdb/instanceapi"
)

// CPU priority by role. A reader's lag is the time from the writer's acknowledgement of a
// commit to the reader applying it: on a host where the writer, its readers and its storage
// nodes share a few cores, almost all of that time is the reader waiting for a CPU, not
// working. Measured on 2 cores under the heaviest write load (aurorabench lag workload), a
// reader's own lag p99 was 17-137 ms at the default priority and 13-20 ms at nice -10; the
// reader's runnable threads had waited up to 80 ms while the writer and the storage nodes
// ran. So a reader runs at ReaderNice and a writer at nice 0: in Aurora each instance has
// cores of its own, and this gives the replication path the share of the CPU a host of its
// own would. A reader works only when an event or a query arrives, so a lower nice costs the
// others little while it idles, and a busy reader still leaves them their share (nice -10 is
// a weight of 9548 to 1024, not a real-time class).
//
// setRolePriority gives this process the priority of role. Lowering nice needs CAP_SYS_NICE:
// without it the instance runs at its priority and says so.
func (i *Instance) setRolePriority(role instanceapi.Role) {
	nice := 0
	if role == instanceapi.RoleReader {
		nice = i.cfg.ReaderNice
	}
	i.niceMu.Lock()
	defer i.niceMu.Unlock()
	if nice == i.nice {
		return
	}
	if err := setProcessNice(nice); err != nil {
		i.log.Info("priority unchanged", "role", role, "nice", nice, "err", err)
		return
	}
	i.nice = nice
	i.log.Info("priority set", "role", role, "nice", nice)
}

// setProcessNice sets the nice value that weighs this process against others: its
// autogroup's when it leads a session of its own (the autogroup is then its alone), and each
// of its threads', which weighs it against the other processes of its session, and counts
// where autogroups do not (a cgroup with the CPU controller, autogrouping off).
func setProcessNice(nice int) error {
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err == nil && strings.TrimSpace(string(b)) == "1" {
		sid, err := unix.Getsid(0)
		if err != nil {
			return fmt.Errorf("getsid: %w", err)
		}
		if sid == os.Getpid() {
			if err := os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(nice)), 0); err != nil {
				return fmt.Errorf("autogroup nice: %w", err)
			}
		}
	}
	// A thread created during a pass by one not yet changed starts at the old value: pass
	// again until one finds nothing to change.
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list threads: %w", err)
		}
		changed := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// The raw syscall answers 20 - nice.
			if p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil && 20-p == nice {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("thread %d nice: %w", tid, err)
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return nil
}
