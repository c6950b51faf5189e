package control

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMonotonicIsBoottime: the lease's clock is CLOCK_BOOTTIME, which
// counts a suspend of the host. (On a host that never slept it reads as
// CLOCK_MONOTONIC does, give or take.)
func TestMonotonicIsBoottime(t *testing.T) {
	boot := func() Monotonic {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
			t.Fatal(err)
		}
		return Monotonic(ts.Nano())
	}
	before := boot()
	m := MonotonicNow()
	after := boot()
	if m < before || m > after {
		t.Fatalf("MonotonicNow %d is not between two CLOCK_BOOTTIME readings %d and %d", m, before, after)
	}
}

// TestMonotonicOf: a time from Go's clock lands on CLOCK_BOOTTIME where
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
