package cluster

import (
	"slices"
	"testing"
)

func TestUnsafeFlagsReachTheirProcesses(t *testing.T) {
	if (Unsafe{}).Any() || len(InstanceArgs("refdb", InstanceSpec{ID: "db1"})) != len(InstanceArgs("refdb", InstanceSpec{ID: "db1", Unsafe: Unsafe{NoEpochFencing: true}})) {
		t.Fatal("a storage mode changed an instance command line, or the zero Unsafe is on")
	}
	u, err := ParseUnsafe([]string{"ack-3of6", "--unsafe-ack-before-fsync", "no-truncation"})
	if err != nil {
		t.Fatal(err)
	}
	inst := InstanceArgs("refdb", InstanceSpec{ID: "db2", Role: RoleReader, Unsafe: u})
	for _, f := range []string{"--unsafe-ack-3of6", "--unsafe-no-truncation"} {
		if !slices.Contains(inst, f) {
			t.Errorf("instance args %q lack %s", inst, f)
		}
	}
	if slices.Contains(inst, "--unsafe-ack-before-fsync") {
		t.Errorf("instance args %q carry a storage mode", inst)
	}
	// A restart as another role and a reader added later keep the modes.
	if got := UnsafeOfArgs(WithRole(inst, RoleWriter)); got.Names() == nil || !got.Ack3of6 || !got.NoTruncation || got.AckBeforeFsync {
		t.Errorf("modes read back from a restarted command line: %v", got.Names())
	}
	st := StorageArgs("refdb", "s1", "az1", "/d", "127.0.0.1:1", "/s", nil, u)
	if !slices.Contains(st, "--unsafe-ack-before-fsync") || slices.Contains(st, "--unsafe-ack-3of6") {
		t.Errorf("storage args %q", st)
	}
	if _, err := ParseUnsafe([]string{"ack-2of6"}); err == nil {
		t.Error("an unknown mode was accepted")
	}
}
