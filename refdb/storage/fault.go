package storage

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// faultSet holds the faults injected into a storage server (ALTER SYSTEM SIMULATE … DISK
// FAILURE / DISK CONGESTION on the writer). They act on the server's "disk requests": the
// messages that read or write the segment's log (Append, Read, Install, Seal, GossipResp).
// Every fault expires by itself; the node needs nobody to clear it.
type faultSet struct {
	mu      sync.Mutex
	active  []injected
	failed  atomic.Uint64
	delayed atomic.Uint64
}

type injected struct {
	spec  redo.FaultSpec
	until time.Time
}

// diskRequest reports whether m reads or writes a segment's disk.
func diskRequest(t redo.MsgType) bool {
	switch t {
	case redo.MsgAppend, redo.MsgRead, redo.MsgInstall, redo.MsgSeal, redo.MsgGossipResp:
		return true
	}
	return false
}

// apply installs spec (FaultClear removes every fault; FaultQuery changes nothing) and
// returns the state after it.
func (f *faultSet) apply(spec redo.FaultSpec, now time.Time) redo.FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch spec.Kind {
	case redo.FaultClear:
		f.active = nil
	case redo.FaultDiskFailure, redo.FaultDiskCongestion:
		f.active = append(f.active, injected{spec: spec, until: now.Add(spec.Duration)})
	}
	return f.stateLocked(now)
}

func (f *faultSet) state(now time.Time) redo.FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateLocked(now)
}

func (f *faultSet) stateLocked(now time.Time) redo.FaultState {
	f.expireLocked(now)
	st := redo.FaultState{Failed: f.failed.Load(), Delayed: f.delayed.Load()}
	for _, a := range f.active {
		st.Active = append(st.Active, redo.ActiveFault{Spec: a.spec, Left: a.until.Sub(now).Truncate(time.Millisecond)})
	}
	return st
}

func (f *faultSet) expireLocked(now time.Time) {
	k := 0
	for _, a := range f.active {
		if now.Before(a.until) {
			f.active[k] = a
			k++
		}
	}
	clear(f.active[k:])
	f.active = f.active[:k]
}

// decide says what the faults do to one disk request of pg: fail it, or delay it (the longest
// delay of the congestions that hit it), or nothing.
func (f *faultSet) decide(pg uint32, now time.Time) (fail bool, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.active) == 0 {
		return false, 0
	}
	f.expireLocked(now)
	for _, a := range f.active {
		if !a.spec.AllPGs && a.spec.PG != pg {
			continue
		}
		if rand.IntN(100000) >= int(a.spec.MilliPercent) {
			continue
		}
		switch a.spec.Kind {
		case redo.FaultDiskFailure:
			fail = true
		case redo.FaultDiskCongestion:
			d := a.spec.MinDelay
			if span := a.spec.MaxDelay - a.spec.MinDelay; span > 0 {
				d += rand.N(span + 1)
			}
			delay = max(delay, d)
		}
	}
	if fail {
		f.failed.Add(1)
		return true, 0
	}
	if delay > 0 {
		f.delayed.Add(1)
	}
	return false, delay
}
