package control

import (
	"testing"
	"time"
)

// TestMonotonicOf: a time from Go's clock lands on CLOCK_MONOTONIC where
// the same delay from now does, and the zero time is none.
func TestMonotonicOf(t *testing.T) {
	if MonotonicOf(time.Time{}) != 0 {
		t.Fatal("the zero time is not the zero Monotonic")
	}
	before := MonotonicNow()
	m := MonotonicOf(time.Now().Add(time.Hour))
	after := MonotonicNow()
	if m < before.Add(time.Hour) || m > after.Add(time.Hour) {
		t.Fatalf("an hour from now is %d, want between %d and %d", m, before.Add(time.Hour), after.Add(time.Hour))
	}
	if left := m.Until(); left <= 59*time.Minute || left > time.Hour {
		t.Fatalf("Until: %v", left)
	}
}
