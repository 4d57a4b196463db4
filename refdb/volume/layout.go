// Package volume is the client side of the storage volume, used by the writer instance: the
// protection-group map, quorum writes with SCL/PGCL/VCL/VDL tracking, read routing, and crash
// recovery with epochs.
//
// Writer and Recovery are pure state machines (no I/O, no clocks): callers feed them acks and
// ticks and send the messages they return. Volume is the driver over a real transport; the
// simulator in refdb/sim drives the same cores.
package volume

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// Quorums of a 6-copy protection group.
const (
	Copies      = 6
	WriteQuorum = 4
	ReadQuorum  = 3
)

// Layout maps keys to protection groups and protection groups to segments.
type Layout struct {
	Nodes []redo.Peer // the storage nodes; every PG has one segment on each of Copies nodes
	// Starts[i] is the first key of PG i; PG i covers [Starts[i], Starts[i+1]).
	Starts [][]byte
}

// NewLayout splits the key space into pgs protection groups by the first key byte, all hosted
// on the given 6 nodes (2 per AZ in the default cluster).
func NewLayout(nodes []redo.Peer, pgs int) (Layout, error) {
	if len(nodes) != Copies {
		return Layout{}, fmt.Errorf("volume layout: need %d storage nodes, got %d", Copies, len(nodes))
	}
	if pgs < 1 || pgs > 256 {
		return Layout{}, fmt.Errorf("volume layout: %d protection groups, want 1..256", pgs)
	}
	ids := map[string]bool{}
	for _, n := range nodes {
		if n.ID == "" || ids[n.ID] {
			return Layout{}, fmt.Errorf("volume layout: empty or duplicate node id %q", n.ID)
		}
		ids[n.ID] = true
	}
	l := Layout{Nodes: append([]redo.Peer(nil), nodes...)}
	for i := 0; i < pgs; i++ {
		if i == 0 {
			l.Starts = append(l.Starts, nil)
			continue
		}
		l.Starts = append(l.Starts, []byte{byte(i * 256 / pgs)})
	}
	return l, nil
}

// PGs is the number of protection groups.
func (l *Layout) PGs() int { return len(l.Starts) }

// PGFor returns the protection group holding key.
func (l *Layout) PGFor(key []byte) uint32 {
	i := sort.Search(len(l.Starts), func(i int) bool { return bytes.Compare(l.Starts[i], key) > 0 })
	return uint32(i - 1)
}

// Segments lists the node ids hosting pg.
func (l *Layout) Segments(pg uint32) []string {
	ids := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		ids[i] = n.ID
	}
	return ids
}
