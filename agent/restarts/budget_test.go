package restarts

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBudgetAllowsMaxRestartsWithinTheWindow(t *testing.T) {
	b := Budget{Window: time.Minute, Max: 3}
	var history []time.Time
	for i := 0; i < 3; i++ {
		v := b.Take(history, t0.Add(time.Duration(i)*time.Second))
		if !v.Restart {
			t.Fatalf("restart %d refused: %s", i+1, v.Why)
		}
		history = v.History
	}
	if len(history) != 3 {
		t.Fatalf("history after three restarts: %v", history)
	}
	v := b.Take(history, t0.Add(3*time.Second))
	if v.Restart {
		t.Fatal("a fourth restart within the minute was allowed")
	}
	if v.Why != "3 restarts within 1m0s" {
		t.Fatalf("refusal says %q", v.Why)
	}
}

func TestBudgetForgetsRestartsOlderThanTheWindow(t *testing.T) {
	b := Budget{Window: time.Minute, Max: 3}
	history := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(20 * time.Second)}
	// Exactly one window after the first restart, that one no longer counts.
	v := b.Take(history, t0.Add(time.Minute))
	if !v.Restart {
		t.Fatalf("restart after the first one left the window refused: %s", v.Why)
	}
	want := []time.Time{t0.Add(10 * time.Second), t0.Add(20 * time.Second), t0.Add(time.Minute)}
	if len(v.History) != len(want) {
		t.Fatalf("history %v, want %v", v.History, want)
	}
	for i := range want {
		if !v.History[i].Equal(want[i]) {
			t.Fatalf("history %v, want %v", v.History, want)
		}
	}
	// Just inside the window it still counts.
	if v := b.Take(history, t0.Add(time.Minute-time.Nanosecond)); v.Restart {
		t.Fatal("a restart less than a window old did not count")
	}
}

func TestBudgetOfZeroNeverRestarts(t *testing.T) {
	v := Budget{Window: time.Minute, Max: 0}.Take(nil, t0)
	if v.Restart || v.Why != "0 restarts within 1m0s" {
		t.Fatalf("zero budget: %+v", v)
	}
}

func TestDefaultBudgetIsThreeAMinute(t *testing.T) {
	if Default.Max != 3 || Default.Window != time.Minute {
		t.Fatalf("default budget %+v", Default)
	}
}
