// Package engine is the writer's transactional key-value engine over the shared volume: MVCC by
// LSN (a transaction reads a consistent snapshot at the VDL it started at), InnoDB-style row
// locks for writes and locking reads (waits, deadlock detection, lock-wait timeout), commit as
// one redo batch acknowledged only once durable, a bounded version cache, an order-preserving
// key encoding, and the catalog stored through the same log.
package engine

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

// LSN is a volume log sequence number.
type LSN = redo.LSN

// Write is one key written by a transaction.
type Write struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// KV is one live key and its value.
type KV struct {
	Key   []byte
	Value []byte
}

// Store is what the engine needs from the volume. Implementations must be safe for concurrent
// use and must not serialize commits: many are in flight at once.
type Store interface {
	// Commit writes all writes as one transaction and returns its commit LSN once VDL >= LSN.
	Commit(ctx context.Context, writes []Write) (LSN, error)
	// Get reads the newest version of key visible at read point at (at <= VDL).
	Get(ctx context.Context, key []byte, at LSN) ([]byte, bool, error)
	// Scan returns up to limit (0: no limit) live keys in [start, end) visible at at, ascending.
	// A nil end means the end of the key space.
	Scan(ctx context.Context, start, end []byte, at LSN, limit int) ([]KV, error)
	// VDL is the volume durable LSN: everything at or below it is durable.
	VDL() LSN
}

// VolumeStore adapts a *volume.Volume to Store. The volume serves scans one protection group
// at a time, so the adapter splits ranges at protection-group boundaries and pages through
// large ranges so that no reply approaches the transport's frame limit.
type VolumeStore struct {
	V      *volume.Volume
	layout volume.Layout
}

// scanPage bounds the keys asked of one segment per round trip.
const scanPage = 1024

// NewVolumeStore wraps v; nodes and pgs must be the ones the volume was opened with.
func NewVolumeStore(v *volume.Volume, nodes []redo.Peer, pgs int) (*VolumeStore, error) {
	if pgs == 0 {
		pgs = 1
	}
	l, err := volume.NewLayout(nodes, pgs)
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	return &VolumeStore{V: v, layout: l}, nil
}

// Commit implements Store.
func (s *VolumeStore) Commit(ctx context.Context, writes []Write) (LSN, error) {
	ops := make([]volume.Op, len(writes))
	for i, w := range writes {
		ops[i] = volume.Op{Key: w.Key, Value: w.Value, Delete: w.Delete}
	}
	return s.V.Commit(ctx, ops)
}

// Get implements Store.
func (s *VolumeStore) Get(ctx context.Context, key []byte, at LSN) ([]byte, bool, error) {
	return s.V.Get(ctx, key, at)
}

// SetMinReadPoint implements ReadPointPinner.
func (s *VolumeStore) SetMinReadPoint(l LSN) { s.V.SetMinReadPoint(l) }

// VDL implements Store.
func (s *VolumeStore) VDL() LSN { return s.V.VDL() }

// Scan implements Store.
func (s *VolumeStore) Scan(ctx context.Context, start, end []byte, at LSN, limit int) ([]KV, error) {
	var out []KV
	cur := start
	for {
		pg := s.layout.PGFor(cur)
		pgEnd := end
		if int(pg)+1 < len(s.layout.Starts) {
			next := s.layout.Starts[pg+1]
			if pgEnd == nil || bytes.Compare(next, pgEnd) < 0 {
				pgEnd = next
			}
		}
		want := scanPage
		if limit > 0 && limit-len(out) < want {
			want = limit - len(out)
		}
		recs, err := s.V.Scan(ctx, cur, pgEnd, at, want)
		if err != nil {
			return nil, fmt.Errorf("scan [%x, %x) at %d: %w", cur, pgEnd, at, err)
		}
		for _, r := range recs {
			out = append(out, KV{Key: r.Key, Value: r.Value})
		}
		if limit > 0 && len(out) >= limit {
			return out, nil
		}
		if len(recs) >= want {
			// The segment may hold more keys in this protection group.
			cur = append(append([]byte(nil), recs[len(recs)-1].Key...), 0)
			continue
		}
		if bytes.Equal(pgEnd, end) {
			return out, nil
		}
		cur = pgEnd
	}
}
