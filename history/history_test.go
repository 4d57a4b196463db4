package history

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	in := []Op{
		{Process: 0, Type: Invoke, F: "write", Key: "k\"1", Value: Int(3), Time: 5},
		{Process: 0, Type: Info, F: "write", Key: "k\"1", Time: 9, Error: "lost connection\n(é)"},
		{Process: NemesisProcess, Type: Info, F: "start-kill", Node: "db1", Value: Marshal(map[string]string{"a": "b"}), Time: 10},
		{Process: 1, Type: Invoke, F: "read", Time: 11},
		{Process: 1, Type: OK, F: "read", Value: Ints([]int64{1, 2}), Time: 12},
	}
	if err := w.Append(in...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d ops, wrote %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Error != in[i].Error || out[i].Key != in[i].Key || out[i].Type != in[i].Type || !bytes.Equal(out[i].Value, in[i].Value) {
			t.Fatalf("op %d: got %+v, want %+v", i, out[i], in[i])
		}
	}
	pairs, nem := Pairs(out)
	if len(pairs) != 2 || len(nem) != 1 {
		t.Fatalf("pairs %d nemesis %d", len(pairs), len(nem))
	}
}

func TestCorruptHistories(t *testing.T) {
	good := `{"index":0,"process":0,"type":"invoke","f":"read","time":1}` + "\n"
	cases := map[string]string{
		"truncated":       good + `{"index":1,"process":0,"type":"ok","f":"re`,
		"not json":        "hello\n",
		"bad type":        `{"index":0,"process":0,"type":"maybe","f":"read","time":1}`,
		"unknown field":   `{"index":0,"process":0,"type":"invoke","f":"read","time":1,"x":1}`,
		"index gap":       good + `{"index":5,"process":0,"type":"ok","f":"read","time":2}`,
		"double invoke":   good + `{"index":1,"process":0,"type":"invoke","f":"read","time":2}`,
		"orphan complete": `{"index":0,"process":3,"type":"ok","f":"read","time":1}`,
		"empty":           "",
		"negative time":   `{"index":0,"process":0,"type":"invoke","f":"read","time":-1}`,
	}
	for name, text := range cases {
		_, err := Read(strings.NewReader(text))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"index":0,"process":0,"type":"invoke","f":"read","time":1}` + "\n" + `{"index":1,"process":0,"type":"ok","f":"read","value":[1,2],"time":2}`))
	f.Add([]byte(`{"index":0,"process":-1,"type":"info","f":"start-kill","node":"x","time":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses the same.
		var buf []byte
		for i := range ops {
			buf = ops[i].AppendJSON(buf)
		}
		again, err := Read(bytes.NewReader(buf))
		if err != nil {
			t.Fatalf("re-encoded history does not parse: %v\n%s", err, buf)
		}
		if len(again) != len(ops) {
			t.Fatalf("re-encoded %d ops, read %d", len(ops), len(again))
		}
		Pairs(ops)
	})
}
