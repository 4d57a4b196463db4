package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// historyStore is a Store over an explicit commit history: Scan and Get at read point at see
// exactly the commits at or below at, as a storage segment does.
type historyStore struct {
	commits []Commit // ascending LSN
	vdl     LSN
}

func (h *historyStore) stateAt(at LSN) map[string][]byte {
	st := map[string][]byte{}
	for _, c := range h.commits {
		if c.LSN > at {
			break
		}
		for _, w := range c.Writes {
			if w.Delete {
				delete(st, string(w.Key))
			} else {
				st[string(w.Key)] = w.Value
			}
		}
	}
	return st
}

func (h *historyStore) Commit(context.Context, []Write) (LSN, error) {
	return 0, fmt.Errorf("read-only")
}

func (h *historyStore) Get(_ context.Context, key []byte, at LSN) ([]byte, bool, error) {
	v, ok := h.stateAt(at)[string(key)]
	return v, ok, nil
}

func (h *historyStore) Scan(_ context.Context, start, end []byte, at LSN, limit int) ([]KV, error) {
	st := h.stateAt(at)
	var keys []string
	for k := range st {
		if k >= string(start) && (end == nil || k < string(end)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []KV
	for _, k := range keys {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, KV{Key: []byte(k), Value: st[k]})
	}
	return out, nil
}

func (h *historyStore) VDL() LSN { return h.vdl }

func key(i int) []byte { return []byte(fmt.Sprintf("k%03d", i)) }

// The mirror answers every scan and read exactly as storage would at the same read point,
// under random commits (puts and deletes), read points a few commits old, partial (limited)
// scans, resets and a small memory limit; and it does answer most of them itself.
func TestMirrorMatchesStorage(t *testing.T) {
	for seed := uint64(1); seed <= 24; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { mirrorRun(t, seed) })
	}
}

func mirrorRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7))
	ctx := context.Background()
	h := &historyStore{}
	limit := int64(1 << 20)
	if seed%4 == 0 {
		limit = 2000 // forces clears
	}
	m := NewMirror(0, limit)
	ms := &MirrorStore{Store: h, M: m}
	var lsn LSN
	hits, reads := 0, 0
	const nkeys = 60
	for step := 0; step < 3000; step++ {
		switch r := rng.IntN(100); {
		case r < 35: // a batch of commits, then the VDL passes them (sometimes beyond)
			var cs []Commit
			for n := 1 + rng.IntN(3); n > 0; n-- {
				lsn += LSN(1 + rng.IntN(3))
				var ws []Write
				for w := 1 + rng.IntN(4); w > 0; w-- {
					k := key(rng.IntN(nkeys))
					if rng.IntN(4) == 0 {
						ws = append(ws, Write{Key: k, Delete: true})
					} else {
						ws = append(ws, Write{Key: k, Value: []byte(fmt.Sprintf("v%d@%d", rng.IntN(1000), lsn))})
					}
				}
				c := Commit{LSN: lsn, Writes: ws}
				h.commits = append(h.commits, c)
				cs = append(cs, c)
			}
			vdl := lsn + LSN(rng.IntN(2))
			h.vdl = vdl
			m.Apply(cs, vdl)
			lsn = vdl
		case r < 36:
			m.Reset(h.vdl)
		default: // a read at a read point up to a few commits old
			at := h.vdl
			if back := LSN(rng.IntN(8)); rng.IntN(3) == 0 && back < at {
				at -= back
			}
			a, b := rng.IntN(nkeys), rng.IntN(nkeys+1)
			if a > b {
				a, b = b, a
			}
			start := key(a)
			var end []byte
			if b < nkeys || rng.IntN(2) == 0 {
				end = key(b)
			}
			lim := 0
			if rng.IntN(3) == 0 {
				lim = 1 + rng.IntN(10)
			}
			if rng.IntN(4) == 0 {
				k := key(rng.IntN(nkeys))
				_, _, hit := m.Get(k, at)
				got, found, err := ms.Get(ctx, k, at)
				want, wfound, _ := h.Get(ctx, k, at)
				if err != nil || found != wfound || !bytes.Equal(got, want) {
					t.Fatalf("step %d: Get(%s) at %d (mirror hit %v) = %q,%v,%v; storage has %q,%v", step, k, at, hit, got, found, err, want, wfound)
				}
				reads++
				if hit {
					hits++
				}
				continue
			}
			_, hit := m.Scan(start, end, at, lim)
			got, err := ms.Scan(ctx, start, end, at, lim)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := h.Scan(ctx, start, end, at, lim)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("step %d: Scan [%s, %s) at %d limit %d (mirror hit %v, upTo %d):\n got %q\nwant %q", step, start, end, at, lim, hit, m.upTo, got, want)
			}
			reads++
			if hit {
				hits++
			}
		}
	}
	if want := reads / 3; limit == 2000 && hits == 0 || limit != 2000 && hits < want {
		t.Fatalf("mirror answered %d of %d reads: it should answer most once ranges are learned", hits, reads)
	}
}

// A scan whose read point the log of recent commits no longer reaches is not learned.
func TestMirrorLearnNeedsTheLog(t *testing.T) {
	m := NewMirror(10, 1<<20)
	m.Apply([]Commit{{LSN: 11, Writes: []Write{{Key: key(1), Value: []byte("a")}}}}, 11)
	m.Learn(key(0), key(9), 5, nil) // read point below the mirror's start: commits 6..10 unknown
	if spans, _, _ := m.Stats(); spans != 0 {
		t.Fatalf("learned a range whose commits since its read point are unknown (%d spans)", spans)
	}
	m.Learn(key(0), key(9), 10, nil)
	if _, ok := m.Scan(key(0), key(9), 11, 0); !ok {
		t.Fatal("a range learned at the log's floor is not answered")
	}
	kvs, _ := m.Scan(key(0), key(9), 11, 0)
	if len(kvs) != 1 || string(kvs[0].Value) != "a" {
		t.Fatalf("replayed range = %q, want k001=a", kvs)
	}
	if _, ok := m.Scan(key(0), key(9), 9, 0); ok {
		t.Fatal("answered a read below the range's floor")
	}
}

// BenchmarkMirrorApplyFullLog is the per-commit cost once the replay log is full and every
// commit drops the oldest one: it must not grow with the log (it did, when dropping copied
// the whole log).
func BenchmarkMirrorApplyFullLog(b *testing.B) {
	m := NewMirror(0, 1<<30)
	val := make([]byte, 900)
	commit := func(lsn LSN) []Commit {
		return []Commit{{LSN: lsn, Writes: []Write{{Key: fmt.Appendf(nil, "k%08d", lsn%1000), Value: val}}}}
	}
	lsn := LSN(0)
	for m.logFloor == 0 { // fill the log until it drops its oldest commits
		lsn++
		m.Apply(commit(lsn), lsn)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		lsn++
		m.Apply(commit(lsn), lsn)
	}
}
