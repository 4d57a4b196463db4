package instance

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

// The writer-to-reader stream is binary: every event is one frame, a uvarint length and the
// event's fields as uvarints and length-prefixed bytes. It replaced NDJSON, whose reflection
// and base64 were a fifth of a reader's CPU and showed in the writer's too.
//
// The response's content type names the format and its version; a reader refuses any other,
// so a writer and a reader of different builds fail loudly instead of misreading each other.
const streamContentType = "application/x-refdb-stream; v=1"

// maxStreamFrame bounds what one frame can make a reader allocate. A larger event (a huge
// transaction) fails to decode; the reader reconnects and resumes from the writer's current
// read point with a reset, reading what it missed from storage, as after any gap.
const maxStreamFrame = 256 << 20

// Event flags.
const (
	evReset = 1 << iota
	evHeartbeat
	evProposed
)

// Per-key tags of a commit that carries values.
const (
	tagValue   = 0 // a value follows
	tagDeleted = 1 // the key was deleted
	tagNil     = 2 // set to a nil value
)

// appendEventFrame appends ev as one frame.
func appendEventFrame(dst []byte, ev *event) []byte {
	body := appendEvent(nil, ev)
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

func appendEvent(b []byte, ev *event) []byte {
	var flags byte
	if ev.Reset {
		flags |= evReset
	}
	if ev.Heartbeat {
		flags |= evHeartbeat
	}
	if ev.Proposed {
		flags |= evProposed
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(ev.RP.VDL))
	b = binary.AppendUvarint(b, ev.RP.Epoch)
	b = binary.AppendUvarint(b, uint64(len(ev.RP.Need)))
	for _, l := range ev.RP.Need {
		b = binary.AppendUvarint(b, uint64(l))
	}
	b = binary.AppendUvarint(b, uint64(max(ev.Ack, 0)))
	b = binary.AppendUvarint(b, ev.WriterVDL)
	b = binary.AppendUvarint(b, uint64(len(ev.Commits)))
	for i := range ev.Commits {
		b = appendCommit(b, &ev.Commits[i])
	}
	return b
}

func appendCommit(b []byte, c *wireCommit) []byte {
	b = binary.AppendUvarint(b, c.LSN)
	vals := c.HasVals && len(c.Vals) == len(c.Keys)
	if vals {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(c.Keys)))
	dels := c.Dels // ascending (newWireCommit builds it in key order)
	for j, k := range c.Keys {
		b = appendBytes(b, k)
		if !vals {
			continue
		}
		deleted := len(dels) > 0 && dels[0] == j
		if deleted {
			dels = dels[1:]
		}
		switch {
		case deleted:
			b = append(b, tagDeleted)
		case c.Vals[j] == nil:
			b = append(b, tagNil)
		default:
			b = append(b, tagValue)
			b = appendBytes(b, c.Vals[j])
		}
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// readEventFrame reads and decodes one frame.
func readEventFrame(r *bufio.Reader) (event, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return event{}, fmt.Errorf("read stream event length: %w", err)
	}
	if n > maxStreamFrame {
		return event{}, fmt.Errorf("%w: stream frame of %d bytes exceeds %d", redo.ErrCorrupt, n, maxStreamFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return event{}, fmt.Errorf("read stream event: %w", err)
	}
	return decodeEvent(body)
}

// decodeEvent decodes one frame's body; a malformed one is an error wrapping redo.ErrCorrupt.
// Keys and values are copied out of it: readers keep some of them (cache, mirror) long after
// the frame.
func decodeEvent(body []byte) (event, error) {
	d := redo.NewDecoder(body)
	var ev event
	flags := d.Byte()
	ev.Reset, ev.Heartbeat, ev.Proposed = flags&evReset != 0, flags&evHeartbeat != 0, flags&evProposed != 0
	ev.RP.VDL = redo.LSN(d.Uvarint())
	ev.RP.Epoch = d.Uvarint()
	if n := count(d, 1); n > 0 {
		ev.RP.Need = make([]redo.LSN, n)
		for i := range ev.RP.Need {
			ev.RP.Need[i] = redo.LSN(d.Uvarint())
		}
	}
	ack := d.Uvarint()
	if ack > math.MaxInt64 {
		d.Fail("stream event: ack time %d out of range", ack)
	}
	ev.Ack = int64(ack)
	ev.WriterVDL = d.Uvarint()
	if n := count(d, 3); n > 0 {
		ev.Commits = make([]wireCommit, n)
		for i := range ev.Commits {
			decodeCommit(d, &ev.Commits[i])
		}
	}
	if d.Err() == nil && d.Left() != 0 {
		d.Fail("stream event: %d bytes after the event", d.Left())
	}
	if flags&^(evReset|evHeartbeat|evProposed) != 0 {
		d.Fail("stream event: unknown flags %#x", flags)
	}
	if err := d.Err(); err != nil {
		return event{}, err
	}
	return ev, nil
}

// count reads an element count; each element takes at least minBytes, so a count the rest
// of the frame cannot hold is refused before anything is allocated for it.
func count(d *redo.Decoder, minBytes int) int {
	n := d.Uvarint()
	if d.Err() != nil {
		return 0
	}
	if n > uint64(d.Left()/minBytes) {
		d.Fail("stream event: count %d exceeds the %d bytes left", n, d.Left())
		return 0
	}
	return int(n)
}

// copied reads a byte string into memory of its own.
func copied(d *redo.Decoder) []byte {
	b := d.Bytes(maxStreamFrame)
	if d.Err() != nil {
		return nil
	}
	return append([]byte{}, b...)
}

func decodeCommit(d *redo.Decoder, c *wireCommit) {
	c.LSN = d.Uvarint()
	switch f := d.Byte(); f {
	case 0:
	case 1:
		c.HasVals = true
	default:
		d.Fail("stream event: bad commit flags %d", f)
		return
	}
	n := count(d, 1)
	if n == 0 {
		return
	}
	c.Keys = make([][]byte, n)
	if c.HasVals {
		c.Vals = make([][]byte, n)
	}
	for j := range c.Keys {
		c.Keys[j] = copied(d)
		if !c.HasVals {
			continue
		}
		switch t := d.Byte(); t {
		case tagValue:
			c.Vals[j] = copied(d)
		case tagDeleted:
			c.Dels = append(c.Dels, j)
		case tagNil:
		default:
			d.Fail("stream event: bad value tag %d", t)
		}
		if d.Err() != nil {
			return
		}
	}
}
