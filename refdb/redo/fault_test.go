package redo

import (
	"bytes"
	"testing"
	"time"
)

func TestFaultRoundTrip(t *testing.T) {
	specs := []FaultSpec{
		{Kind: FaultQuery},
		{Kind: FaultClear},
		{Kind: FaultDiskFailure, MilliPercent: 100000, Duration: 30 * time.Second, AllPGs: true},
		{Kind: FaultDiskCongestion, MilliPercent: 25500, MinDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Duration: time.Minute, PG: 3},
	}
	for _, f := range specs {
		got, err := DecodeFault(AppendFault(nil, &f))
		if err != nil || got != f {
			t.Fatalf("round trip of %s: %+v, %v", f.String(), got, err)
		}
		m := &Message{Type: MsgFault, From: "w", To: "s1", Value: AppendFault(nil, &f)}
		if _, err := DecodeMessage(AppendMessage(nil, m)); err != nil {
			t.Fatalf("fault message: %v", err)
		}
	}
	st := FaultState{Failed: 7, Delayed: 9, Active: []ActiveFault{{Spec: specs[2], Left: 1500 * time.Millisecond}}}
	got, err := DecodeFaultState(AppendFaultState(nil, &st))
	if err != nil || got.Failed != 7 || got.Delayed != 9 || len(got.Active) != 1 || got.Active[0] != st.Active[0] {
		t.Fatalf("state round trip: %+v, %v", got, err)
	}
}

func TestFaultValidate(t *testing.T) {
	bad := []FaultSpec{
		{Kind: 9},
		{Kind: FaultDiskFailure, MilliPercent: 100001, Duration: time.Second},
		{Kind: FaultDiskFailure, MilliPercent: 1000},
		{Kind: FaultDiskFailure, MilliPercent: 1000, Duration: time.Second, MaxDelay: time.Millisecond},
		{Kind: FaultDiskCongestion, MilliPercent: 1000, Duration: time.Second, MinDelay: 2 * time.Millisecond, MaxDelay: time.Millisecond},
		{Kind: FaultDiskCongestion, MilliPercent: 1000, Duration: time.Second, MaxDelay: 2 * MaxFaultDelay},
		{Kind: FaultQuery, Duration: time.Second},
		{Kind: FaultDiskFailure, MilliPercent: 1, Duration: time.Second, AllPGs: true, PG: 2},
	}
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v validated", f)
		}
		if _, err := DecodeFault(AppendFault(nil, &f)); err == nil {
			t.Errorf("%+v decoded", f)
		}
	}
	if _, err := DecodeFault([]byte{2, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Error("wrong version decoded")
	}
}

func FuzzDecodeFault(f *testing.F) {
	f.Add(AppendFault(nil, &FaultSpec{Kind: FaultDiskCongestion, MilliPercent: 5000, MinDelay: time.Millisecond, MaxDelay: time.Second, Duration: time.Hour}))
	f.Add(AppendFaultState(nil, &FaultState{Failed: 1, Active: []ActiveFault{{Spec: FaultSpec{Kind: FaultDiskFailure, MilliPercent: 1, Duration: time.Second, AllPGs: true}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeFault(b); err == nil {
			if !bytes.Equal(AppendFault(nil, &s), b) {
				t.Fatalf("re-encoding of a decoded fault differs")
			}
		}
		if s, err := DecodeFaultState(b); err == nil {
			if _, err := DecodeFaultState(AppendFaultState(nil, &s)); err != nil {
				t.Fatalf("re-encoded fault state does not decode: %v", err)
			}
		}
	})
}
