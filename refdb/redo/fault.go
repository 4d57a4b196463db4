package redo

import (
	"encoding/binary"
	"fmt"
	"time"
)

// FaultKind names an injected storage fault (Aurora's ALTER SYSTEM SIMULATE … DISK FAILURE and
// … DISK CONGESTION, acted on by the storage nodes).
type FaultKind uint8

const (
	FaultQuery          FaultKind = iota // change nothing; the node reports its faults
	FaultDiskFailure                     // fail Percent of the node's disk requests with a disk error
	FaultDiskCongestion                  // delay Percent of the node's disk requests by [MinDelay, MaxDelay]
	FaultClear                           // remove every fault
	faultKindEnd
)

var faultNames = [...]string{"query", "disk failure", "disk congestion", "clear"}

func (k FaultKind) String() string {
	if int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", uint8(k))
}

// FaultVersion is the wire version of a FaultSpec / FaultState (carried in Message.Value of
// MsgFault / MsgFaultResp, so the fault encoding can evolve without changing Message).
const FaultVersion = 1

// Limits of a fault: a delay of at most one minute per request and faults of at most a year.
const (
	MaxFaultDelay    = time.Minute
	MaxFaultDuration = 366 * 24 * time.Hour
	maxFaults        = 1024
)

// FaultSpec is one fault to inject on a storage node.
type FaultSpec struct {
	Kind FaultKind
	// MilliPercent is the share of requests affected, in thousandths of a percent (0..100000).
	MilliPercent uint32
	// MinDelay and MaxDelay bound the random delay of a congested request (congestion only).
	MinDelay, MaxDelay time.Duration
	// Duration is how long the fault lasts; the node expires it by itself.
	Duration time.Duration
	// AllPGs: the fault applies to every segment of the node; otherwise only to PG's.
	AllPGs bool
	PG     uint32
}

// Validate checks the ranges of a spec.
func (f *FaultSpec) Validate() error {
	if f.Kind >= faultKindEnd {
		return fmt.Errorf("%w: unknown fault kind %d", ErrCorrupt, f.Kind)
	}
	if f.MilliPercent > 100000 {
		return fmt.Errorf("%w: fault share %d/100000 above 100%%", ErrCorrupt, f.MilliPercent)
	}
	switch f.Kind {
	case FaultDiskFailure, FaultDiskCongestion:
		if f.Duration <= 0 || f.Duration > MaxFaultDuration {
			return fmt.Errorf("%w: fault duration %s outside (0, %s]", ErrCorrupt, f.Duration, MaxFaultDuration)
		}
	default:
		if f.Duration != 0 || f.MilliPercent != 0 {
			return fmt.Errorf("%w: %s fault with a share or a duration", ErrCorrupt, f.Kind)
		}
	}
	if f.Kind == FaultDiskCongestion {
		if f.MinDelay < 0 || f.MinDelay > f.MaxDelay || f.MaxDelay > MaxFaultDelay {
			return fmt.Errorf("%w: congestion delay [%s, %s] outside [0, %s] or reversed", ErrCorrupt, f.MinDelay, f.MaxDelay, MaxFaultDelay)
		}
	} else if f.MinDelay != 0 || f.MaxDelay != 0 {
		return fmt.Errorf("%w: %s fault with a delay", ErrCorrupt, f.Kind)
	}
	if f.AllPGs && f.PG != 0 {
		return fmt.Errorf("%w: fault for all PGs names PG %d", ErrCorrupt, f.PG)
	}
	return nil
}

func (f *FaultSpec) String() string {
	where := "all PGs"
	if !f.AllPGs {
		where = fmt.Sprintf("PG %d", f.PG)
	}
	switch f.Kind {
	case FaultDiskFailure:
		return fmt.Sprintf("disk failure %.3f%% on %s for %s", float64(f.MilliPercent)/1000, where, f.Duration)
	case FaultDiskCongestion:
		return fmt.Sprintf("disk congestion %.3f%% of [%s, %s] on %s for %s", float64(f.MilliPercent)/1000, f.MinDelay, f.MaxDelay, where, f.Duration)
	}
	return f.Kind.String()
}

func appendFaultSpec(dst []byte, f *FaultSpec) []byte {
	all := uint64(0)
	if f.AllPGs {
		all = 1
	}
	dst = append(dst, byte(f.Kind))
	for _, v := range []uint64{uint64(f.MilliPercent), uint64(f.MinDelay / time.Millisecond), uint64(f.MaxDelay / time.Millisecond),
		uint64(f.Duration / time.Millisecond), all, uint64(f.PG)} {
		dst = binary.AppendUvarint(dst, v)
	}
	return dst
}

func (d *decoder) faultSpec() FaultSpec {
	var f FaultSpec
	f.Kind = FaultKind(d.byte())
	pct, minD, maxD, dur, all, pg := d.canonUvarint(), d.canonUvarint(), d.canonUvarint(), d.canonUvarint(), d.canonUvarint(), d.canonUvarint()
	if d.err != nil {
		return f
	}
	const maxMs = uint64(MaxFaultDuration / time.Millisecond)
	if pct > 100000 || minD > maxMs || maxD > maxMs || dur > maxMs || all > 1 || pg > 1<<32-1 {
		d.fail("fault field out of range")
		return f
	}
	f.MilliPercent = uint32(pct)
	f.MinDelay, f.MaxDelay = time.Duration(minD)*time.Millisecond, time.Duration(maxD)*time.Millisecond
	f.Duration = time.Duration(dur) * time.Millisecond
	f.AllPGs, f.PG = all == 1, uint32(pg)
	return f
}

// canonUvarint reads a uvarint and refuses an overlong encoding, so a fault has exactly one
// encoding.
func (d *decoder) canonUvarint() uint64 {
	start := d.off
	v := d.uvarint()
	if d.err == nil && d.off-start != len(binary.AppendUvarint(nil, v)) {
		d.fail("overlong varint at byte %d", start)
		return 0
	}
	return v
}

// AppendFault appends the versioned encoding of a fault request (delays and durations are
// carried in whole milliseconds).
func AppendFault(dst []byte, f *FaultSpec) []byte {
	return appendFaultSpec(append(dst, FaultVersion), f)
}

// DecodeFault decodes and validates a fault request.
func DecodeFault(b []byte) (FaultSpec, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != FaultVersion {
		return FaultSpec{}, fmt.Errorf("%w: fault version %d, want %d", ErrCorrupt, v, FaultVersion)
	}
	f := d.faultSpec()
	if d.err != nil {
		return FaultSpec{}, fmt.Errorf("decode fault: %w", d.err)
	}
	if d.off != len(b) {
		return FaultSpec{}, fmt.Errorf("%w: %d trailing bytes in a fault", ErrCorrupt, len(b)-d.off)
	}
	if err := f.Validate(); err != nil {
		return FaultSpec{}, err
	}
	return f, nil
}

// ActiveFault is a fault a node applies, with the time it has left.
type ActiveFault struct {
	Spec FaultSpec
	Left time.Duration
}

// FaultState is what a node reports about injected faults: the active ones, and how many
// requests were failed or delayed since the node started.
type FaultState struct {
	Active  []ActiveFault
	Failed  uint64
	Delayed uint64
}

// AppendFaultState appends the versioned encoding of s.
func AppendFaultState(dst []byte, s *FaultState) []byte {
	dst = append(dst, FaultVersion)
	dst = binary.AppendUvarint(dst, s.Failed)
	dst = binary.AppendUvarint(dst, s.Delayed)
	dst = binary.AppendUvarint(dst, uint64(len(s.Active)))
	for i := range s.Active {
		dst = appendFaultSpec(dst, &s.Active[i].Spec)
		dst = binary.AppendUvarint(dst, uint64(s.Active[i].Left/time.Millisecond))
	}
	return dst
}

// DecodeFaultState decodes a node's fault report.
func DecodeFaultState(b []byte) (FaultState, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != FaultVersion {
		return FaultState{}, fmt.Errorf("%w: fault state version %d, want %d", ErrCorrupt, v, FaultVersion)
	}
	var s FaultState
	s.Failed, s.Delayed = d.uvarint(), d.uvarint()
	n := d.count(maxFaults, 8)
	for i := 0; i < n && d.err == nil; i++ {
		f := d.faultSpec()
		left := d.uvarint()
		if d.err == nil && left > uint64(MaxFaultDuration/time.Millisecond) {
			d.fail("fault time left out of range")
		}
		if d.err == nil {
			if err := f.Validate(); err != nil {
				return FaultState{}, err
			}
		}
		s.Active = append(s.Active, ActiveFault{Spec: f, Left: time.Duration(left) * time.Millisecond})
	}
	if d.err != nil {
		return FaultState{}, fmt.Errorf("decode fault state: %w", d.err)
	}
	if d.off != len(b) {
		return FaultState{}, fmt.Errorf("%w: %d trailing bytes in a fault state", ErrCorrupt, len(b)-d.off)
	}
	return s, nil
}
