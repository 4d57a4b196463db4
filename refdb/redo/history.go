package redo

import "fmt"

// EpochEntry records one installed writer epoch: when epoch Epoch was installed, every record of
// an older epoch above Trunc was discarded, and the writer of Epoch allocates LSNs from Start
// on. LSNs in (Trunc, Start) therefore never hold a valid record.
type EpochEntry struct {
	Epoch uint64
	Trunc LSN
	Start LSN
	// Owner is the writer that recovered the epoch. Two recoveries that end up at the same
	// epoch number (a confused control plane) therefore never install the same history, and
	// at most one of them reaches a write quorum.
	Owner string
}

// History is the list of installed epochs, in increasing epoch order. The history of the latest
// epoch is authoritative as a whole: it is adopted wholesale, never merged entry by entry.
type History []EpochEntry

// Latest is the newest installed epoch, 0 for an empty history.
func (h History) Latest() uint64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Epoch
}

// Newer reports whether h should replace o.
func (h History) Newer(o History) bool { return h.Latest() > o.Latest() }

// Has reports whether epoch e is installed in h.
func (h History) Has(e uint64) bool {
	for _, x := range h {
		if x.Epoch == e {
			return true
		}
	}
	return false
}

// Garbage reports whether a record written in epoch e at lsn was discarded by a later epoch's
// truncation.
func (h History) Garbage(e uint64, lsn LSN) bool {
	for _, x := range h {
		if x.Epoch > e && lsn > x.Trunc {
			return true
		}
	}
	return false
}

// Gap returns the end of the never-allocated range containing lsn, if lsn lies in one.
func (h History) Gap(lsn LSN) (LSN, bool) {
	for _, x := range h {
		if lsn > x.Trunc && lsn < x.Start {
			return x.Start, true
		}
	}
	return 0, false
}

// Clone copies h.
func (h History) Clone() History { return append(History(nil), h...) }

// Validate checks that epochs increase.
func (h History) Validate() error {
	for i, x := range h {
		if x.Start <= x.Trunc {
			return fmt.Errorf("%w: epoch %d start %d not above truncation %d", ErrCorrupt, x.Epoch, x.Start, x.Trunc)
		}
		if i > 0 && x.Epoch <= h[i-1].Epoch {
			return fmt.Errorf("%w: history epochs not increasing at %d", ErrCorrupt, x.Epoch)
		}
	}
	return nil
}
