package sqlfront

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"

	"github.com/aurorabench/aurorabench/refdb/redo"
)

func TestParseAlterSystem(t *testing.T) {
	ok := []struct {
		q    string
		want AlterSystem
	}{
		{"ALTER SYSTEM CRASH", AlterSystem{Crash: CrashInstance}},
		{"alter system crash instance;", AlterSystem{Crash: CrashInstance}},
		{"  ALTER  SYSTEM\tCRASH DISPATCHER ", AlterSystem{Crash: CrashDispatcher}},
		{"ALTER SYSTEM CRASH NODE", AlterSystem{Crash: CrashNode}},
		{"ALTER SYSTEM SIMULATE 100 PERCENT DISK FAILURE FOR INTERVAL 30 SECOND",
			AlterSystem{Fault: redo.FaultSpec{Kind: redo.FaultDiskFailure, MilliPercent: 100000, Duration: 30 * time.Second}}},
		{"ALTER SYSTEM SIMULATE 25.5 PERCENT DISK FAILURE IN DISK 7 FOR INTERVAL 2 MINUTE",
			AlterSystem{Fault: redo.FaultSpec{Kind: redo.FaultDiskFailure, MilliPercent: 25500, Duration: 2 * time.Minute}, Target: TargetDisk, Index: 7}},
		{"alter system simulate 0 percent disk failure node 3 for interval 1 hour",
			AlterSystem{Fault: redo.FaultSpec{Kind: redo.FaultDiskFailure, Duration: time.Hour}, Target: TargetNode, Index: 3}},
		{"ALTER SYSTEM SIMULATE 50 PERCENT DISK CONGESTION BETWEEN 10 AND 200 MILLISECONDS IN NODE 0 FOR INTERVAL 1 DAY",
			AlterSystem{Fault: redo.FaultSpec{Kind: redo.FaultDiskCongestion, MilliPercent: 50000, MinDelay: 10 * time.Millisecond,
				MaxDelay: 200 * time.Millisecond, Duration: 24 * time.Hour}, Target: TargetNode}},
		{"ALTER SYSTEM SIMULATE 100 PERCENT DISK CONGESTION BETWEEN 5 AND 5 MILLISECONDS FOR INTERVAL 1 WEEK",
			AlterSystem{Fault: redo.FaultSpec{Kind: redo.FaultDiskCongestion, MilliPercent: 100000, MinDelay: 5 * time.Millisecond,
				MaxDelay: 5 * time.Millisecond, Duration: 7 * 24 * time.Hour}}},
	}
	for _, c := range ok {
		got, err := ParseAlterSystem(c.q)
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if *got != c.want {
			t.Errorf("%q: got %+v, want %+v", c.q, *got, c.want)
		}
		if !IsAlterSystem(c.q) {
			t.Errorf("%q not recognized as ALTER SYSTEM", c.q)
		}
	}
	bad := []string{
		"ALTER SYSTEM",
		"ALTER SYSTEM;",
		"ALTER SYSTEM CRASH FOO",
		"ALTER SYSTEM CRASH INSTANCE NOW",
		"ALTER SYSTEM SIMULATE",
		"ALTER SYSTEM SIMULATE 101 PERCENT DISK FAILURE FOR INTERVAL 1 SECOND",
		"ALTER SYSTEM SIMULATE -1 PERCENT DISK FAILURE FOR INTERVAL 1 SECOND",
		"ALTER SYSTEM SIMULATE 1e2 PERCENT DISK FAILURE FOR INTERVAL 1 SECOND",
		"ALTER SYSTEM SIMULATE NaN PERCENT DISK FAILURE FOR INTERVAL 1 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE FOR INTERVAL 0 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE FOR INTERVAL 5 FORTNIGHT",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE FOR INTERVAL 500 YEAR",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE FOR INTERVAL -5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE IN FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE IN NODE FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE IN NODE x FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK CONGESTION FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK CONGESTION BETWEEN 20 AND 10 MILLISECONDS FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK CONGESTION BETWEEN 1 AND 999999 MILLISECONDS FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK CONGESTION BETWEEN 1 AND 2 FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT READ REPLICA FAILURE TO ALL FOR INTERVAL 5 SECOND",
		"ALTER SYSTEM SIMULATE 10 PERCENT DISK FAILURE FOR INTERVAL 5 SECOND; DROP TABLE t",
		"ALTER SYSTEM CRASH 'INSTANCE'",
	}
	for _, q := range bad {
		_, err := ParseAlterSystem(q)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.HasPrefix(se.Msg, "You have an error in your SQL syntax") {
			t.Errorf("%q: %v, want a syntax error", q, err)
		}
	}
	for _, q := range []string{"ALTER TABLE t ADD COLUMN c INT", "SELECT 'ALTER SYSTEM'", "ALTERSYSTEM CRASH", ""} {
		if IsAlterSystem(q) {
			t.Errorf("%q recognized as ALTER SYSTEM", q)
		}
	}
}

func FuzzParseAlterSystem(f *testing.F) {
	for _, q := range []string{"ALTER SYSTEM CRASH NODE", "ALTER SYSTEM SIMULATE 25.5 PERCENT DISK FAILURE IN DISK 7 FOR INTERVAL 2 MINUTE",
		"ALTER SYSTEM SIMULATE 50 PERCENT DISK CONGESTION BETWEEN 10 AND 200 MILLISECONDS IN NODE 0 FOR INTERVAL 1 DAY"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		st, err := ParseAlterSystem(q)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%q: error %T is not a syntax error", q, err)
			}
			return
		}
		if !IsAlterSystem(q) {
			t.Fatalf("%q parsed but is not recognized as ALTER SYSTEM", q)
		}
		if st.Crash == "" {
			if err := st.Fault.Validate(); err != nil {
				t.Fatalf("%q: parsed fault does not validate: %v", q, err)
			}
		}
		// The statement's own rendering does not panic and a parse is deterministic.
		_ = st.String()
		again, err := ParseAlterSystem(q)
		if err != nil || *again != *st {
			t.Fatalf("%q: second parse differs", q)
		}
	})
}

// okInfo drops only an OK packet's info shorter than the length vitess announces for it (after
// PREPARE, "Statement prepared" made MariaDB's client fail with a malformed packet); an
// UPDATE's info and result sets pass unchanged.
func TestOKInfoShorterThanVitessAnnounces(t *testing.T) {
	var got []string
	cb := okInfo(func(res *sqltypes.Result, more bool) error {
		got = append(got, res.Info)
		return nil
	})
	for _, res := range []*sqltypes.Result{
		{Info: "Statement prepared"},
		{Info: "Rows matched: 1  Changed: 1  Warnings: 0"[:vitessInfoLen]},
		{Info: "Rows matched: 12  Changed: 12  Warnings: 0"},
		{Info: "short", Fields: []*querypb.Field{{Name: "x"}}},
		{},
	} {
		if err := cb(res, false); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"", "Rows matched: 1  Changed: 1  Warnings: 0"[:vitessInfoLen], "Rows matched: 12  Changed: 12  Warnings: 0", "short", ""}
	if !slices.Equal(got, want) {
		t.Fatalf("infos %q, want %q", got, want)
	}
}
