package cluster

import (
	"fmt"
	"slices"
	"strings"
)

// Unsafe modes exist to prove that aurorabench's checkers catch real bugs: each one breaks
// exactly one rule of the protocol. All are off by default and only a command-line flag turns
// one on; every process started with one logs a WARN line at start.
type Unsafe struct {
	// Ack3of6: the writer acknowledges a commit once 3 of 6 segments hold it, not 4
	// (`refdb instance --unsafe-ack-3of6`).
	Ack3of6 bool
	// NoEpochFencing: storage accepts appends of a stale epoch, so a replaced writer can still
	// commit (`refdb storage --unsafe-no-epoch-fencing`).
	NoEpochFencing bool
	// ReadAboveVDL: the writer streams commits to readers as it proposes them and readers apply
	// them on receipt instead of waiting for the VDL (`refdb instance --unsafe-read-above-vdl`).
	ReadAboveVDL bool
	// AckBeforeFsync: storage acknowledges a record on receipt and writes its log lazily, so a
	// killed node loses records it acknowledged (`refdb storage --unsafe-ack-before-fsync`).
	AckBeforeFsync bool
	// NoTruncation: recovery installs the new epoch without truncating the records above the
	// VDL (`refdb instance --unsafe-no-truncation`).
	NoTruncation bool
}

// UnsafeMode describes one unsafe mode: its name (the flag is --unsafe-NAME), the process
// that owns the behaviour, and what it breaks.
type UnsafeMode struct {
	Name    string
	Process string // "instance" or "storage"
	Breaks  string
	field   func(*Unsafe) *bool
}

// Set turns the mode on in u.
func (m UnsafeMode) Set(u *Unsafe) { *m.field(u) = true }

// On reports whether the mode is on in u.
func (m UnsafeMode) On(u Unsafe) bool { return *m.field(&u) }

// Flag is the command-line flag of the mode.
func (m UnsafeMode) Flag() string { return "--unsafe-" + m.Name }

// UnsafeModes lists every unsafe mode.
var UnsafeModes = []UnsafeMode{
	{"ack-3of6", "instance", "acknowledge a commit at 3 of 6 segments instead of the write quorum of 4", func(u *Unsafe) *bool { return &u.Ack3of6 }},
	{"no-epoch-fencing", "storage", "accept appends of a stale epoch, so a replaced (zombie) writer can still commit", func(u *Unsafe) *bool { return &u.NoEpochFencing }},
	{"read-above-vdl", "instance", "readers apply commits as the writer proposes them, before the VDL passes them", func(u *Unsafe) *bool { return &u.ReadAboveVDL }},
	{"ack-before-fsync", "storage", "storage acknowledges records on receipt and writes its log lazily (about once a second)", func(u *Unsafe) *bool { return &u.AckBeforeFsync }},
	{"no-truncation", "instance", "recovery does not truncate the records above the VDL when it installs a new epoch", func(u *Unsafe) *bool { return &u.NoTruncation }},
}

// UnsafeModeNames lists the mode names.
func UnsafeModeNames() []string {
	var out []string
	for _, m := range UnsafeModes {
		out = append(out, m.Name)
	}
	return out
}

// ParseUnsafe turns mode names (with or without the --unsafe- prefix) into an Unsafe.
func ParseUnsafe(names []string) (Unsafe, error) {
	var u Unsafe
	for _, n := range names {
		n = strings.TrimPrefix(strings.TrimPrefix(n, "--"), "unsafe-")
		i := slices.IndexFunc(UnsafeModes, func(m UnsafeMode) bool { return m.Name == n })
		if i < 0 {
			return Unsafe{}, fmt.Errorf("unknown unsafe mode %q (known: %s)", n, strings.Join(UnsafeModeNames(), ", "))
		}
		*UnsafeModes[i].field(&u) = true
	}
	return u, nil
}

// Names lists the modes turned on.
func (u Unsafe) Names() []string {
	var out []string
	for _, m := range UnsafeModes {
		if *m.field(&u) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Any reports whether any mode is on.
func (u Unsafe) Any() bool { return len(u.Names()) > 0 }

func (u Unsafe) flagsOf(process string) []string {
	var out []string
	for _, m := range UnsafeModes {
		if m.Process == process && *m.field(&u) {
			out = append(out, m.Flag())
		}
	}
	return out
}

// InstanceFlags are the flags of the modes `refdb instance` owns.
func (u Unsafe) InstanceFlags() []string { return u.flagsOf("instance") }

// StorageFlags are the flags of the modes `refdb storage` owns.
func (u Unsafe) StorageFlags() []string { return u.flagsOf("storage") }

// UnsafeOfArgs reads the unsafe flags back from a command line (the control plane copies them
// from the writer's when it adds a reader).
func UnsafeOfArgs(args []string) Unsafe {
	var u Unsafe
	for _, a := range args {
		for _, m := range UnsafeModes {
			if a == m.Flag() {
				*m.field(&u) = true
			}
		}
	}
	return u
}
