// Package history is the record of a run: every operation a client invoked and
// how it completed, plus fault events, as one JSON object per line.
//
// The format is the contract between the runner (which writes it while the
// run is going, so memory stays bounded) and the checkers and `aurorabench
// check` (which read it back). Encoding is hand-written because the runner
// must sustain well over 100k ops/s on two cores; decoding is strict
// encoding/json so a corrupt file gets a clear error, never a panic.
package history

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Type says where in its life an operation is.
type Type uint8

const (
	// Invoke is written when a client starts an operation (in open-loop mode,
	// its intended start, so latency includes queueing: no coordinated omission).
	Invoke Type = iota + 1
	// OK means the operation definitely took effect (or a read definitely saw Value).
	OK
	// Fail means the operation definitely did not take effect.
	Fail
	// Info means the outcome is unknown: a timeout or a lost connection during
	// a commit. Checkers must treat it as possibly applied, at any later time.
	Info
)

var typeNames = [...]string{Invoke: "invoke", OK: "ok", Fail: "fail", Info: "info"}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType is the inverse of String.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n != "" && n == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("unknown op type %q", s)
}

// MarshalJSON writes the name.
func (t Type) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(t.String())), nil }

// UnmarshalJSON reads the name.
func (t *Type) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("op type: %w", err)
	}
	v, err := ParseType(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// NemesisProcess is the Process of fault events; client processes are >= 0.
const NemesisProcess = -1

// Op is one event of the history. An operation is an Invoke followed, on the
// same Process, by exactly one of OK, Fail or Info. A process whose operation
// ended in Info is never reused (its connection state is unknown), so
// completions pair with invocations by process alone.
type Op struct {
	Index   int64           `json:"index"`
	Process int             `json:"process"`
	Type    Type            `json:"type"`
	F       string          `json:"f"`
	Key     string          `json:"key,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Time    int64           `json:"time"` // ns since the run started
	Node    string          `json:"node,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Duration is Time as a time.Duration.
func (o *Op) Duration() time.Duration { return time.Duration(o.Time) }

// AppendJSON appends o as one JSON line (with the trailing newline) to b.
// It is the hot path of the recorder, hence hand-written.
func (o *Op) AppendJSON(b []byte) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, o.Index, 10)
	b = append(b, `,"process":`...)
	b = strconv.AppendInt(b, int64(o.Process), 10)
	b = append(b, `,"type":"`...)
	b = append(b, o.Type.String()...)
	b = append(b, `","f":`...)
	b = appendString(b, o.F)
	if o.Key != "" {
		b = append(b, `,"key":`...)
		b = appendString(b, o.Key)
	}
	if len(o.Value) > 0 {
		b = append(b, `,"value":`...)
		b = append(b, o.Value...)
	}
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, o.Time, 10)
	if o.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, o.Node)
	}
	if o.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, o.Error)
	}
	return append(b, '}', '\n')
}

// appendString appends s as a JSON string. Plain ASCII (the common case) is
// copied; anything else goes through strconv.Quote-compatible escaping that
// JSON accepts (\u escapes for control and non-ASCII runes).
func appendString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, err := json.Marshal(s)
	if err != nil { // cannot happen for a string; keep the line valid anyway
		return append(b, `""`...)
	}
	return append(b, enc...)
}

// Int encodes an integer value.
func Int(v int64) json.RawMessage { return strconv.AppendInt(nil, v, 10) }

// Ints encodes a list of integers.
func Ints(vs []int64) json.RawMessage {
	b := make([]byte, 0, 2+len(vs)*6)
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, ']')
}

// Null is the JSON null value (a read that found nothing).
var Null = json.RawMessage("null")

// Marshal encodes any value, for the cold paths (final reads, fault events).
func Marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("history: value %T is not encodable: %v", v, err))
	}
	return b
}
