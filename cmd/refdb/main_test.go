package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{},
		{"nope"},
		{"storage"},
		{"storage", "--id", "s1"},
		{"storage", "--id", "s1", "--data", t.TempDir()},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--bogus"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "extra"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--log-level", "loud"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--peer-addrs", "s2"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--peer-addrs", "s2=nohostport"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--peer-addrs", "s2=127.0.0.1:1,s2=127.0.0.1:2"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--timer-slack", "-1ms"},
		{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--timer-slack", "soon"},
		{"instance", "--id", "db2", "--role", "reader", "--secret", "x", "--storage", "s1=127.0.0.1:1", "--control", "127.0.0.1:2", "--reader-nice", "5"},
		{"instance", "--id", "db2", "--role", "reader", "--secret", "x", "--storage", "s1=127.0.0.1:1", "--control", "127.0.0.1:2", "--reader-nice", "-21"},
		// -1 is the package's own "no readers" value: it started a cluster with none.
		{"cluster", "up", "--dir", t.TempDir(), "--readers", "-1"},
		{"cluster", "up", "--dir", t.TempDir(), "--readers", "16"},
		{"cluster", "up", "--dir", t.TempDir(), "--port-base", "80"},
		{"cluster", "up", "--dir", t.TempDir(), "--port-base", "65500"},
	}
	t.Setenv("REFDB_SECRET", "")
	for _, args := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), args, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("refdb %s: err %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

func TestStorageStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	err := run(ctx, []string{"storage", "--id", "s1", "--data", t.TempDir(), "--secret", "x", "--listen", "127.0.0.1:0"}, &stderr)
	if err != nil {
		t.Fatalf("storage with a cancelled context: %v\n%s", err, stderr.String())
	}
}
