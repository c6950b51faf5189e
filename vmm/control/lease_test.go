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
	// MonotonicOf reads two clocks (Go's and CLOCK_BOOTTIME) one after
	// the other, so its answer may be off by as much as the time between
	// before and after (a preemption between its two reads), either way:
	// no more.
	before := MonotonicNow()
	m := MonotonicOf(time.Now().Add(time.Hour))
	after := MonotonicNow()
	slack := after.Sub(before)
	if lo, hi := before.Add(time.Hour-slack), after.Add(time.Hour); m < lo || m > hi {
		t.Fatalf("an hour from now is %d, want between %d and %d", m, lo, hi)
	}
	if left := m.Until(); left <= 59*time.Minute || left > time.Hour {
		t.Fatalf("Until: %v", left)
	}
}
