package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/dolthub/vitess/go/mysql"

	"github.com/aurorabench/aurorabench/refdb/instanceapi"
	"github.com/aurorabench/aurorabench/refdb/sqlfront"
)

// faultRPCTimeout bounds the wait for one storage node to take a fault request.
const faultRPCTimeout = 5 * time.Second

// AlterSystem carries out Aurora's fault-injection statements (sqlfront.SystemHandler):
//
//   - CRASH INSTANCE: the process dies at once (SIGKILL: no clean shutdown, the client's
//     connection drops); under refdb/cluster the control plane restarts it (or fails over to a
//     reader), and recovery brings back every acknowledged commit.
//   - CRASH NODE: Aurora's instance plus its buffer cache. refdb's version cache lives in the
//     process, so this is the same as CRASH INSTANCE (the cache is lost either way).
//   - CRASH DISPATCHER: Aurora's dispatcher is the layer that sends redo to the storage volume.
//     refdb drops every connection to the storage nodes (queued and in-flight messages are lost;
//     the writer retransmits, so commits complete late, none is lost) and every client
//     connection (their transactions roll back); the process, its volume state and its cache
//     stay, and the server keeps listening.
//   - SIMULATE … DISK FAILURE / DISK CONGESTION: sent to the storage nodes (redo.MsgFault), which
//     fail or delay that share of their disk requests until the interval ends. No IN clause: every
//     node, every segment. NODE i: the i-th storage node of the volume, counting from 0 in the
//     order of --storage (NODE 0 = s1 … NODE 5 = s6). DISK i: one segment, the refdb counterpart
//     of an Aurora disk: PG i/6 on node i%6 (DISK 0..5 = PG 0 on s1..s6, DISK 6 = PG 1 on s1, …).
func (i *Instance) AlterSystem(ctx context.Context, st *sqlfront.AlterSystem) error {
	i.mu.Lock()
	role, vol, fe := i.role, i.vol, i.fe
	i.mu.Unlock()
	if role != instanceapi.RoleWriter || vol == nil {
		return sqlfront.SQLError(mysql.EROptionPreventsStatement, "The MySQL server is running with the --read-only option so it cannot execute this statement")
	}
	switch st.Crash {
	case "":
	case sqlfront.CrashDispatcher:
		vol.ResetLinks()
		n := 0
		if fe != nil {
			n = fe.DropConnections()
		}
		i.log.Warn("ALTER SYSTEM CRASH DISPATCHER: storage connections and client connections dropped", "client_connections", n)
		return nil
	default:
		i.log.Error("ALTER SYSTEM CRASH: crashing now, no clean shutdown", "kind", string(st.Crash))
		crash := i.cfg.Crash
		if crash == nil {
			crash = killSelf
		}
		crash(st.Crash)
		return nil
	}

	nodes := vol.Nodes()
	spec := st.Fault
	var targets []string
	switch st.Target {
	case sqlfront.TargetAll:
		spec.AllPGs = true
		for _, n := range nodes {
			targets = append(targets, n.ID)
		}
	case sqlfront.TargetNode:
		if st.Index >= len(nodes) {
			return sqlfront.SQLError(mysql.ERWrongArguments, fmt.Sprintf("Incorrect arguments to ALTER SYSTEM: NODE index %d is out of range, the maximum is %d", st.Index, len(nodes)-1))
		}
		spec.AllPGs = true
		targets = []string{nodes[st.Index].ID}
	case sqlfront.TargetDisk:
		disks := vol.PGs() * len(nodes)
		if st.Index >= disks {
			return sqlfront.SQLError(mysql.ERWrongArguments, fmt.Sprintf("Incorrect arguments to ALTER SYSTEM: DISK index %d is out of range, the maximum is %d", st.Index, disks-1))
		}
		spec.PG = uint32(st.Index / len(nodes))
		targets = []string{nodes[st.Index%len(nodes)].ID}
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for k, node := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, faultRPCTimeout)
			defer cancel()
			_, errs[k] = vol.InjectFault(fctx, node, spec)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		return sqlfront.SQLError(mysql.ERUnknownError, fmt.Sprintf("ALTER SYSTEM: %d of %d storage nodes did not take the fault: %v", failed, len(targets), err))
	}
	i.log.Warn("ALTER SYSTEM SIMULATE: fault injected", "fault", spec.String(), "nodes", targets)
	return nil
}

// killSelf ends the process as a crash would: SIGKILL, no deferred cleanup, no flush.
func killSelf(sqlfront.CrashKind) {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	os.Exit(137)
}
