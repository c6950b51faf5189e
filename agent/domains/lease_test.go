package domains

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestSetLeaseReachesTheVMMAndPersistsTheGeneration: a lease reaches the
// running VMM, the generation is in domain.json and in domain.info, a
// lower one is refused (BadState) without reaching the VMM, and a
// restarted agent knows the generation.
func TestSetLeaseReachesTheVMMAndPersistsTheGeneration(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m := openFake(t, dir, f, 4096)
	uuid := create(t, m, "p", 128)
	if err := m.Start("p"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	ru := control.MonotonicNow().Add(time.Hour)
	if err := m.SetLease("p", ru, 41); err != nil {
		t.Fatal(err)
	}
	p := f.proc(t, uuid)
	if p.generation != 41 || p.runUntil != ru || p.leases != 1 {
		t.Fatalf("the VMM has generation %d, run-until %d after %d leases", p.generation, p.runUntil, p.leases)
	}
	in := info(t, m, "p")
	if in.Generation != 41 || in.Fenced || in.RunUntilSeconds < 3500 {
		t.Fatalf("info after the lease: %+v", in)
	}
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, "domains", "p", "domain.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Generation != 41 {
		t.Fatalf("domain.json: %s (%v)", data, err)
	}
	err = m.SetLease("p", ru, 40)
	if KindOf(err) != BadState || !strings.Contains(err.Error(), "generation 40 refused") {
		t.Fatalf("a lower generation: %v", err)
	}
	if p.leases != 1 {
		t.Fatal("the refused lease reached the VMM")
	}

	m.Close()
	m2 := openFake(t, dir, f, 4096)
	if in := info(t, m2, "p"); in.Generation != 41 || in.State != "running" {
		t.Fatalf("after the agent restart: %+v", in)
	}
	if err := m2.SetLease("p", ru, 40); KindOf(err) != BadState {
		t.Fatalf("a lower generation after the agent restart: %v", err)
	}
	if err := m2.SetLease("p", ru, 42); err != nil {
		t.Fatal(err)
	}
}

// TestSetLeaseOfAStoppedDomainGoesWithItsStart: a lease given to a
// domain without a VMM is handed to the VMM as it starts.
func TestSetLeaseOfAStoppedDomainGoesWithItsStart(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	create(t, m, "s", 128)
	ru := control.MonotonicNow().Add(time.Hour)
	if err := m.SetLease("s", ru, 7); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("s"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.RunUntil != ru || s.Generation != 7 {
		t.Fatalf("the VMM started with run-until %d, generation %d", s.RunUntil, s.Generation)
	}
}

// TestFencedDomainInfoAndNoRestart: a VMM past its run-until time shows
// as paused, reason fenced; a renewal in the past is refused; and a VMM
// that ends fenced (its engine killed) is not restarted, even with
// on_crash = 'restart'.
func TestFencedDomainInfoAndNoRestart(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "h", 128, "on_crash = 'restart'")
	if err := m.Start("h"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	if err := m.SetLease("h", control.MonotonicNow().Add(-time.Second), 3); err != nil {
		t.Fatal(err)
	}
	in := info(t, m, "h")
	if in.State != "paused" || in.Reason != "fenced" || !in.Fenced || in.Generation != 3 || in.RunUntilSeconds >= 0 {
		t.Fatalf("info of a fenced domain: %+v", in)
	}
	if err := m.SetLease("h", control.MonotonicNow().Add(-time.Second), 3); KindOf(err) != BadState || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("a past renewal of a fenced domain: %v", err)
	}
	f.crash(t, uuid, control.ExitFenced, "the engine did not pause within 2s; the engine was killed")
	in = waitFor(t, m, "h", "stopped", isState(Stopped))
	if in.LastExit == nil || in.LastExit.Reason != "fenced" {
		t.Fatalf("after a fence that killed the engine: %+v", in)
	}
	f.noStart(t)
}

// TestStartWithALeaseRunOutIsRefused: a domain whose lease ran out is
// not started.
func TestStartWithALeaseRunOutIsRefused(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	create(t, m, "late", 128)
	if err := m.SetLease("late", control.MonotonicNow().Add(-time.Second), 2); err != nil {
		t.Fatal(err)
	}
	if err := m.Start("late"); KindOf(err) != BadState || !strings.Contains(err.Error(), "lease ran out") {
		t.Fatalf("start with a lease run out: %v", err)
	}
	f.noStart(t)
}

// TestSetLeaseWhileTheVMMStartsReachesIt: a lease taken while the VMM
// starts (before it answers) reaches it once it does.
func TestSetLeaseWhileTheVMMStartsReachesIt(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "w", 128)
	f.gate = make(chan struct{})
	started := make(chan error, 1)
	go func() { started <- m.Start("w") }()
	if s := f.nextStart(t); s.Generation != 0 || s.RunUntil != 0 {
		t.Fatalf("started with a lease: %+v", s)
	}
	ru := control.MonotonicNow().Add(time.Hour)
	if err := m.SetLease("w", ru, 5); err != nil {
		t.Fatal(err)
	}
	close(f.gate)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if p := f.proc(t, uuid); p.generation != 5 || p.runUntil != ru || p.leases != 1 {
		t.Fatalf("the VMM has generation %d, run-until %d after %d leases", p.generation, p.runUntil, p.leases)
	}
}

// TestSetLeaseConcurrentNeverGoesBack: two leases given at once, the
// older generation's answer coming back last, leave the domain at the
// newer generation and run-until time, in memory, in domain.json and in
// the VMM.
func TestSetLeaseConcurrentNeverGoesBack(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m := openFake(t, dir, f, 4096)
	uuid := create(t, m, "c", 128)
	if err := m.Start("c"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	reached, hold := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.afterLease = func(g int64) {
		if g == 5 { // the older one's answer is slow to come back
			close(reached)
			<-hold
		}
	}
	f.mu.Unlock()
	older, newer := control.MonotonicNow().Add(time.Hour), control.MonotonicNow().Add(2*time.Hour)
	errs := make(chan error, 2)
	go func() { errs <- m.SetLease("c", older, 5) }()
	<-reached
	go func() { errs <- m.SetLease("c", newer, 6) }()
	// Let the newer one finish if nothing holds it back (the older one
	// is still on its way).
	select {
	case err := <-errs:
		errs <- err
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	in := info(t, m, "c")
	if in.Generation != 6 || in.RunUntilSeconds < 2*3600-60 {
		t.Fatalf("after the two leases: generation %d, run-until in %.0fs", in.Generation, in.RunUntilSeconds)
	}
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, "domains", "c", "domain.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.Generation != 6 {
		t.Fatalf("domain.json: %s (%v)", data, err)
	}
	if p := f.proc(t, uuid); p.generation != 6 || p.runUntil != newer {
		t.Fatalf("the VMM has generation %d, run-until %d", p.generation, p.runUntil)
	}
}

// TestSetLeaseWhileTheVMMStartsIsRetried: a lease taken while the VMM
// starts that does not reach it at the first attempt is tried again until
// it does.
func TestSetLeaseWhileTheVMMStartsIsRetried(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "r", 128)
	f.gate = make(chan struct{})
	started := make(chan error, 1)
	go func() { started <- m.Start("r") }()
	f.nextStart(t)
	ru := control.MonotonicNow().Add(time.Hour)
	if err := m.SetLease("r", ru, 5); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.leaseFails = 3
	f.mu.Unlock()
	close(f.gate)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if p := f.proc(t, uuid); p.generation != 5 || p.runUntil != ru || p.leases != 1 {
		t.Fatalf("the VMM has generation %d, run-until %d after %d leases", p.generation, p.runUntil, p.leases)
	}
	if in := info(t, m, "r"); in.State != "running" || in.Generation != 5 {
		t.Fatalf("info: %+v", in)
	}
}

// TestSetLeaseWhileTheVMMStartsUndeliveredStopsIt: a lease taken while
// the VMM starts that never reaches it before its run-until time ends
// the VMM, and the start fails saying why: the VMM must not run on a
// lease it does not have.
func TestSetLeaseWhileTheVMMStartsUndeliveredStopsIt(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "u", 128)
	f.gate = make(chan struct{})
	started := make(chan error, 1)
	go func() { started <- m.Start("u") }()
	f.nextStart(t)
	if err := m.SetLease("u", control.MonotonicNow().Add(500*time.Millisecond), 5); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.leaseFails = 1 << 20
	f.mu.Unlock()
	close(f.gate)
	err := <-started
	if KindOf(err) != Failed || !strings.Contains(err.Error(), "did not reach it") {
		t.Fatalf("start whose lease could not be delivered: %v", err)
	}
	if _, running := f.held(t, uuid); running {
		t.Fatal("the VMM without its lease still runs")
	}
	if in := waitFor(t, m, "u", "stopped", isState(Stopped)); !strings.Contains(in.Reason, "did not reach it") {
		t.Fatalf("info: %+v", in)
	}
}

// TestStartOfAPoolDomainWithoutALeaseIsRefused: a stopped domain with a
// generation (a pool's) has no run-until time after an agent restart (it
// is kept in memory only): start is refused, saying its pool starts it,
// until a lease comes; a lease without a run-until time does not do.
func TestStartOfAPoolDomainWithoutALeaseIsRefused(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m := openFake(t, dir, f, 4096)
	create(t, m, "pd", 128)
	if err := m.SetLease("pd", control.MonotonicNow().Add(time.Hour), 3); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2 := openFake(t, dir, f, 4096)
	err := m2.Start("pd")
	if KindOf(err) != BadState || !strings.Contains(err.Error(), "its pool starts it") {
		t.Fatalf("start of a pool domain without a lease: %v", err)
	}
	if err := m2.SetLease("pd", 0, 3); err != nil {
		t.Fatal(err)
	}
	if err := m2.Start("pd"); KindOf(err) != BadState {
		t.Fatalf("start of a pool domain whose lease has no run-until time: %v", err)
	}
	f.noStart(t)
	ru := control.MonotonicNow().Add(time.Hour)
	if err := m2.SetLease("pd", ru, 3); err != nil {
		t.Fatal(err)
	}
	if err := m2.Start("pd"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.RunUntil != ru || s.Generation != 3 {
		t.Fatalf("started with %+v", s)
	}
}

// TestFencedDomainAfterAgentRestart: a restarted agent records a fenced
// VMM as paused (reason fenced), not running, and domain.unpause of it is
// refused as a bad state (a lease from its pool resumes it), not as a
// failure.
func TestFencedDomainAfterAgentRestart(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m := openFake(t, dir, f, 4096)
	create(t, m, "fz", 128)
	if err := m.Start("fz"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	if err := m.SetLease("fz", control.MonotonicNow().Add(-time.Second), 3); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m2 := openFake(t, dir, f, 4096)
	if in := info(t, m2, "fz"); in.State != "paused" || !in.Fenced {
		t.Fatalf("info after the restart: %+v", in)
	}
	err := m2.Unpause("fz")
	if KindOf(err) != BadState || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("unpause of a fenced guest: %v", err)
	}
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, "domains", "fz", "domain.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || rec.State != Paused {
		t.Fatalf("domain.json of the fenced domain: %s (%v)", data, err)
	}
}

// TestFencedDomainRenewedAfterAgentRestartRuns: a domain recorded paused
// because its VMM had fenced it is running again once a lease renews it,
// given through SetLease or straight to its VMM (seen at the next info).
func TestFencedDomainRenewedAfterAgentRestartRuns(t *testing.T) {
	for _, straight := range []bool{false, true} {
		dir, f := t.TempDir(), newFakeVMMs()
		m := openFake(t, dir, f, 4096)
		uuid := create(t, m, "fr", 128)
		if err := m.Start("fr"); err != nil {
			t.Fatal(err)
		}
		f.nextStart(t)
		if err := m.SetLease("fr", control.MonotonicNow().Add(-time.Second), 3); err != nil {
			t.Fatal(err)
		}
		m.Close()
		m2 := openFake(t, dir, f, 4096)
		ru := control.MonotonicNow().Add(time.Hour)
		if straight {
			p := f.proc(t, uuid)
			f.mu.Lock()
			p.runUntil = ru
			f.mu.Unlock()
		} else if err := m2.SetLease("fr", ru, 3); err != nil {
			t.Fatal(err)
		}
		if in := info(t, m2, "fr"); in.State != "running" || in.Fenced {
			t.Fatalf("straight to the VMM %v: info after the renewal: %+v", straight, in)
		}
		if err := m2.Pause("fr"); err != nil {
			t.Fatalf("straight to the VMM %v: pause after the renewal: %v", straight, err)
		}
	}
}
