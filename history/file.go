package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// FileName is the name of the history inside a results folder.
const FileName = "history.jsonl"

// Writer appends ops to a history file. It is safe for concurrent use; it
// assigns Index in the order ops are written, so the file order is the
// global order of events.
type Writer struct {
	mu    sync.Mutex
	f     *os.File
	bw    *bufio.Writer
	buf   []byte
	next  int64
	err   error
	count int64
}

// Create opens path for writing, truncating it.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	return &Writer{f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

// Append writes ops in order, assigning their Index. The first write error
// is sticky and returned by every later call and by Close.
func (w *Writer) Append(ops ...Op) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	b := w.buf[:0]
	for i := range ops {
		ops[i].Index = w.next
		w.next++
		b = ops[i].AppendJSON(b)
	}
	w.buf = b
	w.count += int64(len(ops))
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write history: %w", err)
	}
	return w.err
}

// Count is how many ops were written.
func (w *Writer) Count() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

// Close flushes and syncs the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return w.err
	}
	err := w.err
	if ferr := w.bw.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("flush history: %w", ferr)
	}
	if serr := w.f.Sync(); serr != nil && err == nil {
		err = fmt.Errorf("sync history: %w", serr)
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close history: %w", cerr)
	}
	w.f = nil
	w.err = err
	return err
}

// ErrCorrupt marks a history that cannot be trusted: the caller should stop
// (exit status 2) rather than report a verdict on it.
var ErrCorrupt = errors.New("corrupt history")

// Read parses and validates a whole history.
func Read(r io.Reader) ([]Op, error) {
	var ops []Op
	err := Scan(r, func(op Op) error {
		ops = append(ops, op)
		return nil
	})
	return ops, err
}

// ReadFile reads and validates the history at path.
func ReadFile(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	ops, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ops, nil
}

// Scan streams a history, validating as it goes: every line a JSON object
// with known fields, indexes consecutive from 0, a known type, times not
// negative, and on each client process strict invoke -> completion pairs.
func Scan(r io.Reader, fn func(Op) error) error {
	// One decoder over the whole stream: a decoder per line costs more
	// than the parsing itself on large histories.
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	dec.DisallowUnknownFields()
	open := map[int]bool{}
	dead := map[int]bool{}
	var n int64
	for {
		var op Op
		err := dec.Decode(&op)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: record %d (byte %d): %v", ErrCorrupt, n+1, dec.InputOffset(), err)
		}
		if err := validate(&op, n, open, dead); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrCorrupt, n+1, err)
		}
		n++
		if err := fn(op); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: empty history", ErrCorrupt)
	}
	return nil
}

func validate(op *Op, wantIndex int64, open, dead map[int]bool) error {
	if op.Index != wantIndex {
		return fmt.Errorf("index %d, expected %d (lines missing or reordered)", op.Index, wantIndex)
	}
	if op.Type < Invoke || op.Type > Info {
		return fmt.Errorf("missing op type")
	}
	if op.F == "" {
		return fmt.Errorf("missing f")
	}
	if op.Time < 0 {
		return fmt.Errorf("negative time %d", op.Time)
	}
	if op.Process == NemesisProcess {
		return nil
	}
	if op.Process < 0 {
		return fmt.Errorf("invalid process %d", op.Process)
	}
	if op.Type == Invoke {
		if open[op.Process] {
			return fmt.Errorf("process %d invokes while its previous op is still open", op.Process)
		}
		if dead[op.Process] {
			return fmt.Errorf("process %d reused after an info (indeterminate) completion", op.Process)
		}
		open[op.Process] = true
		return nil
	}
	if !open[op.Process] {
		return fmt.Errorf("process %d completes (%s) an op it never invoked", op.Process, op.Type)
	}
	delete(open, op.Process)
	if op.Type == Info {
		dead[op.Process] = true
	}
	return nil
}

// Pair is one client operation: its invocation and its completion. An op
// still open at the end of the history has Complete.Type == Info and
// Complete.Time == -1 (it may have happened at any time).
type Pair struct {
	Invoke   Op
	Complete Op
}

// Latency is the time from invocation (intended start) to completion.
func (p *Pair) Latency() int64 { return p.Complete.Time - p.Invoke.Time }

// Pairs matches invocations with completions, in invocation order.
// Nemesis events are returned separately.
func Pairs(ops []Op) (pairs []Pair, nemesis []Op) {
	open := map[int]int{}
	pairs = make([]Pair, 0, len(ops)/2+1)
	for _, op := range ops {
		if op.Process == NemesisProcess {
			nemesis = append(nemesis, op)
			continue
		}
		if op.Type == Invoke {
			open[op.Process] = len(pairs)
			pairs = append(pairs, Pair{Invoke: op})
			continue
		}
		if i, ok := open[op.Process]; ok {
			pairs[i].Complete = op
			delete(open, op.Process)
		}
	}
	for _, i := range open {
		pairs[i].Complete = Op{Process: pairs[i].Invoke.Process, Type: Info, F: pairs[i].Invoke.F, Key: pairs[i].Invoke.Key, Time: -1, Error: "never completed"}
	}
	return pairs, nemesis
}
