package simengine

import (
	"testing"
)

func TestSimStateRoundTrip(t *testing.T) {
	st := simState{Virtual: 1, RNG: 99, Cursor: 3, Due: 4, DueFrac: 5, NextVerify: 6, NextHB: 7, Verifying: 1, VPos: 9, LastHBWrites: 10, Printed: 2, TouchPos: 11}
	b, _ := st.MarshalBinary()
	var got simState
	if err := got.UnmarshalBinary(b); err != nil || got != st {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := 0; i < len(b); i++ {
		if err := got.UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("truncated state of %d bytes accepted", i)
		}
	}
	bad := st
	bad.Verifying = 2
	b, _ = bad.MarshalBinary()
	if err := got.UnmarshalBinary(b); err == nil {
		t.Fatal("inconsistent state accepted")
	}
}

func FuzzSimState(f *testing.F) {
	st := simState{RNG: 1, NextVerify: 1e9, NextHB: 1e9}
	b, _ := st.MarshalBinary()
	f.Add(b)
	f.Add([]byte("OVSSIMST"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st simState
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := st.MarshalBinary()
		var st2 simState
		if err := st2.UnmarshalBinary(again); err != nil || st2 != st {
			t.Fatalf("unstable round trip: %+v %v", st2, err)
		}
	})
}
