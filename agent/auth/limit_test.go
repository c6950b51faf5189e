package auth

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedVerifier returns a Verifier whose hash comparison is a fake that
// counts concurrent and total runs and blocks until release is closed.
func gatedVerifier(t *testing.T, lim Limits) (v *Verifier, running, peak, total *atomic.Int64, release chan struct{}) {
	t.Helper()
	v, err := NewVerifier("admin", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", lim)
	if err != nil {
		t.Fatal(err)
	}
	running, peak, total = new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	release = make(chan struct{})
	v.compare = func(_, pw []byte) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		total.Add(1)
		<-release
		running.Add(-1)
		if string(pw) == "right" {
			return nil
		}
		return errors.New("mismatch")
	}
	return
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCheckBoundsConcurrencyAndAnswersExcessAtOnce(t *testing.T) {
	const workers, queue = 2, 3
	v, running, peak, total, release := gatedVerifier(t, Limits{Workers: workers, Queue: queue})
	var wg sync.WaitGroup
	results := make(chan error, workers+queue)
	for i := range workers + queue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- v.Check("admin", fmt.Sprintf("wrong-%d", i))
		}()
	}
	waitFor(t, "workers busy and queue full", func() bool { return v.pending.Load() == workers+queue && running.Load() == workers })

	// Beyond workers+queue: answered at once, without running the compare.
	start := time.Now()
	for i := range 20 {
		if err := v.Check("admin", fmt.Sprintf("extra-%d", i)); !errors.Is(err, ErrBusy) {
			t.Fatalf("check beyond the queue: %v, want ErrBusy", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("busy answers took %v", d)
	}
	if running.Load() != workers {
		t.Fatalf("%d comparisons running, want %d", running.Load(), workers)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, ErrDenied) {
			t.Fatalf("queued wrong password: %v, want ErrDenied", err)
		}
	}
	if p := peak.Load(); p > workers {
		t.Fatalf("peak concurrency %d > workers %d", p, workers)
	}
	if n := total.Load(); n != workers+queue {
		t.Fatalf("%d comparisons, want %d", n, workers+queue)
	}
	// Slots are given back.
	if err := v.Check("admin", "right"); err != nil {
		t.Fatalf("after the burst: %v", err)
	}
}

func TestCheckIdenticalConcurrentLoginsShareOneCompare(t *testing.T) {
	v, _, _, total, release := gatedVerifier(t, Limits{Workers: 1, Queue: 0})
	const n = 200
	var wg sync.WaitGroup
	var ok, busy atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := v.Check("admin", "right"); err {
			case nil:
				ok.Add(1)
			case ErrBusy:
				busy.Add(1)
			}
		}()
	}
	waitFor(t, "the first comparison", func() bool { return total.Load() == 1 })
	time.Sleep(50 * time.Millisecond) // let the rest join the flight
	close(release)
	wg.Wait()
	if total.Load() != 1 {
		t.Fatalf("%d comparisons for %d identical logins, want 1", total.Load(), n)
	}
	if ok.Load() != n || busy.Load() != 0 {
		t.Fatalf("ok=%d busy=%d, want all %d ok", ok.Load(), busy.Load(), n)
	}
	// Cached afterwards: no further compare.
	if err := v.Check("admin", "right"); err != nil || total.Load() != 1 {
		t.Fatalf("cached check: %v, comparisons %d", err, total.Load())
	}
}

func TestCheckWrongUserStillDenied(t *testing.T) {
	v, _, _, _, release := gatedVerifier(t, Limits{Workers: 1, Queue: 1})
	close(release)
	if err := v.Check("root", "right"); !errors.Is(err, ErrDenied) {
		t.Fatalf("wrong user: %v", err)
	}
	if err := v.Check("admin", "right"); err != nil {
		t.Fatalf("right: %v", err)
	}
}

func TestDefaultWorkersAtLeastOne(t *testing.T) {
	v, err := NewVerifier("admin", "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if cap(v.sem) < 1 {
		t.Fatalf("workers %d", cap(v.sem))
	}
}
