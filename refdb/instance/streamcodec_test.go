package instance

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/aurorabench/aurorabench/refdb/redo"
	"github.com/aurorabench/aurorabench/refdb/volume"
)

func sampleEvents() []event {
	return []event{
		{RP: volume.ReadPoint{VDL: 7, Epoch: 2, Need: []redo.LSN{3, 5, 7}}, Reset: true, WriterVDL: 7},
		{RP: volume.ReadPoint{VDL: 9, Epoch: 2}, Heartbeat: true, WriterVDL: 9},
		{RP: volume.ReadPoint{VDL: 12, Epoch: 3, Need: []redo.LSN{12}}, Ack: 1_700_000_000_123_456_789, Commits: []wireCommit{
			{LSN: 10, Keys: [][]byte{[]byte("a"), []byte("b")}},
			{LSN: 12, Keys: [][]byte{[]byte("k1"), []byte("k2"), []byte("k3"), {}}, Vals: [][]byte{[]byte("v1"), nil, {}, nil}, Dels: []int{1}, HasVals: true},
		}},
		{RP: volume.ReadPoint{VDL: 13, Epoch: 3}, Proposed: true, Commits: []wireCommit{{LSN: 14, Keys: [][]byte{[]byte("x")}, Vals: [][]byte{[]byte("y")}, HasVals: true}}},
	}
}

// TestStreamEventRoundTrip: every field of an event, a deleted key, a nil and an empty value
// among them, comes back as sent, frame after frame.
func TestStreamEventRoundTrip(t *testing.T) {
	var wire []byte
	evs := sampleEvents()
	for i := range evs {
		wire = append(wire, evs[i].encoded()...)
	}
	r := bufio.NewReader(bytes.NewReader(wire))
	for i, want := range evs {
		got, err := readEventFrame(r)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got, want)
		}
		if len(got.Commits) > 1 {
			writes, ok := got.Commits[1].writes()
			if !ok || !writes[1].Delete || writes[0].Delete || string(writes[0].Value) != "v1" {
				t.Fatalf("event %d: writes %+v %v", i, writes, ok)
			}
		}
	}
	if _, err := readEventFrame(r); err == nil {
		t.Fatal("read past the last frame")
	}
}

// TestStreamEventRejectsMalformed: truncations, trailing bytes, unknown flags and counts the
// frame cannot hold are errors, never a panic or a huge allocation.
func TestStreamEventRejectsMalformed(t *testing.T) {
	ev := sampleEvents()[2]
	body := appendEvent(nil, &ev)
	for n := 0; n < len(body); n++ {
		if _, err := decodeEvent(body[:n]); !errors.Is(err, redo.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(body), err)
		}
	}
	if _, err := decodeEvent(append(append([]byte{}, body...), 0)); !errors.Is(err, redo.ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := append([]byte{}, body...)
	bad[0] = 0x80
	if _, err := decodeEvent(bad); !errors.Is(err, redo.ErrCorrupt) {
		t.Fatalf("unknown flags: %v", err)
	}
	// A Need count of 2^40 in a frame of a few bytes.
	huge := []byte{0, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20}
	if _, err := decodeEvent(huge); !errors.Is(err, redo.ErrCorrupt) {
		t.Fatalf("huge count: %v", err)
	}
	tooBig := bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}))
	if _, err := readEventFrame(tooBig); !errors.Is(err, redo.ErrCorrupt) {
		t.Fatalf("oversized frame: %v", err)
	}
}

// FuzzStreamEvent: any frame body either fails to decode or decodes to an event that
// encodes back to the same bytes.
func FuzzStreamEvent(f *testing.F) {
	for _, ev := range sampleEvents() {
		f.Add(appendEvent(nil, &ev))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeEvent(body)
		if err != nil {
			if !errors.Is(err, redo.ErrCorrupt) {
				t.Fatalf("error %v does not wrap redo.ErrCorrupt", err)
			}
			return
		}
		again := appendEvent(nil, &ev)
		ev2, err := decodeEvent(again)
		if err != nil || !reflect.DeepEqual(ev, ev2) {
			t.Fatalf("re-encoded event does not decode the same: %v\n%+v\n%+v", err, ev, ev2)
		}
	})
}
