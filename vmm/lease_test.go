package vmm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// lease sends an OpLease and returns the answer (its error too).
func (f *fakeVMM) lease(t *testing.T, runUntil control.Monotonic, gen int64) (*control.Info, error) {
	t.Helper()
	return f.c.Lease(context.Background(), runUntil, gen)
}

// waitState polls Info until the VMM is in state want (bounded).
func (f *fakeVMM) waitState(t *testing.T, want control.State) *control.Info {
	t.Helper()
	for i := 0; i < 5000; i++ {
		info := f.call(t, control.Request{Op: control.OpInfo}).Info
		if info.State == want {
			return info
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the VMM never became %s (it is %s)", want, f.state(t))
	return nil
}

// soon is a run-until time a test waits to pass; far enough ahead that
// a loaded host's stall rarely passes it before the lease's answer (the
// tests that depend on that check whether it did).
func soon() control.Monotonic  { return control.MonotonicNow().Add(300 * time.Millisecond) }
func later() control.Monotonic { return control.MonotonicNow().Add(time.Hour) }
func past() control.Monotonic  { return control.MonotonicNow().Add(-time.Millisecond) }

// TestLeaseRunsOutFencesAndRenewalResumes: a lease whose run-until time
// passes without a renewal pauses the guest by itself (nobody asks it
// to), and Info says why; resume, save and migration are refused while
// fenced; a renewal with a future time resumes the guest.
func TestLeaseRunsOutFencesAndRenewalResumes(t *testing.T) {
	eng := newFakeEngine()
	f := startFake(t, eng)
	ru := soon()
	info, err := f.lease(t, ru, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Unless a stall of the host's delayed the answer past the time.
	if ru.Until() > 0 && (info.State != control.StateRunning || info.Generation != 5 || info.Fenced || info.RunUntilRemaining <= 0) {
		t.Fatalf("info after the lease: %+v", info)
	}
	info = f.waitState(t, control.StateFenced)
	if !eng.snapshot().paused {
		t.Fatal("fenced, but the engine was not paused")
	}
	if !info.Fenced || info.FencedAt.IsZero() || info.PausedFor != control.PausedForFence || info.RunUntilRemaining >= 0 || info.FenceDetail != "guest paused" {
		t.Fatalf("info of a fenced VMM: %+v", info)
	}
	// The log line follows the step to fenced.
	for i := 0; f.logs.FilterMessage("lease run-until time passed: guest fenced").Len() != 1; i++ {
		if i == 5000 {
			t.Fatalf("the fence was logged %d times, want once", f.logs.FilterMessage("lease run-until time passed: guest fenced").Len())
		}
		time.Sleep(time.Millisecond)
	}
	for _, op := range []string{control.OpResume, control.OpSave} {
		_, err := f.c.Call(context.Background(), control.Request{Op: op, Path: t.TempDir() + "/img"})
		if err == nil || !strings.Contains(err.Error(), "fenced") {
			t.Fatalf("%s of a fenced guest: %v", op, err)
		}
	}
	ours, _ := socketPair(t)
	if _, err := f.c.CallFiles(context.Background(), control.Request{Op: control.OpMigrateSend, Live: true}, ours); err == nil || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("migration of a fenced guest: %v", err)
	}
	if !eng.snapshot().paused {
		t.Fatal("the refused resume resumed the engine")
	}
	// A renewal that is already past does not lift the fence.
	if _, err := f.lease(t, past(), 5); err == nil || !strings.Contains(err.Error(), control.ErrFenceNeedsFuture.Error()) {
		t.Fatalf("a past lease for a fenced guest: %v", err)
	}
	if _, err := f.lease(t, 0, 5); err == nil {
		t.Fatal("a lease without a run-until time lifted the fence")
	}
	info, err = f.lease(t, later(), 6)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != control.StateRunning || info.Fenced || info.Generation != 6 || eng.snapshot().paused {
		t.Fatalf("after the renewal: %+v, engine %+v", info, eng.snapshot())
	}
}

// TestLeaseOperatorPauseStaysPaused: a guest the operator paused is not
// resumed by a renewal, and may not be resumed by the operator while its
// lease is expired; after the renewal it may.
func TestLeaseOperatorPauseStaysPaused(t *testing.T) {
	eng := newFakeEngine()
	f := startFake(t, eng)
	f.call(t, control.Request{Op: control.OpPause})
	info, err := f.lease(t, past(), 1) // already past: fenced at once
	if err != nil {
		t.Fatal(err)
	}
	if info.State != control.StatePaused || !info.Fenced || info.PausedFor != "" {
		t.Fatalf("an operator-paused guest past its lease: %+v", info)
	}
	if _, err := f.c.Call(context.Background(), control.Request{Op: control.OpResume}); err == nil {
		t.Fatal("the operator resumed a guest whose lease ran out")
	}
	info, err = f.lease(t, later(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != control.StatePaused || info.Fenced || !eng.snapshot().paused {
		t.Fatalf("a renewal resumed the operator's pause: %+v, engine %+v", info, eng.snapshot())
	}
	if s := f.call(t, control.Request{Op: control.OpResume}).Info.State; s != control.StateRunning || eng.snapshot().paused {
		t.Fatalf("resume after the renewal: %s", s)
	}
}

// TestLeaseFencedThenPausedByOperator: the operator's pause takes a
// fenced guest over, and a renewal leaves it paused.
func TestLeaseFencedThenPausedByOperator(t *testing.T) {
	eng := newFakeEngine()
	f := startFake(t, eng)
	if info, err := f.lease(t, past(), 1); err != nil || info.State != control.StateFenced {
		t.Fatalf("lease already past: %+v, %v", info, err)
	}
	f.call(t, control.Request{Op: control.OpPause})
	info, err := f.lease(t, later(), 1)
	if err != nil || info.State != control.StatePaused || !eng.snapshot().paused {
		t.Fatalf("renewal of an operator-paused fenced guest: %+v, %v", info, err)
	}
}

// TestLeaseLowerGenerationRefused: a generation lower than the VMM's is
// refused with the reason, and changes nothing; equal and higher ones
// are taken.
func TestLeaseLowerGenerationRefused(t *testing.T) {
	f := startFake(t, newFakeEngine())
	if _, err := f.lease(t, later(), 7); err != nil {
		t.Fatal(err)
	}
	_, err := f.lease(t, soon(), 6)
	var ve *control.ErrVMM
	if !errors.As(err, &ve) || !strings.HasPrefix(ve.Msg, control.ErrStaleGeneration.Error()) || !strings.Contains(ve.Msg, "generation 6 refused") || !strings.Contains(ve.Msg, "generation 7") {
		t.Fatalf("lease for an older generation: %v", err)
	}
	info := f.call(t, control.Request{Op: control.OpInfo}).Info
	if info.Generation != 7 || info.RunUntilRemaining < time.Minute {
		t.Fatalf("the refused lease changed the VMM's: %+v", info)
	}
	for _, g := range []int64{7, 8} {
		if info, err := f.lease(t, later(), g); err != nil || info.Generation != g {
			t.Fatalf("generation %d: %+v, %v", g, info, err)
		}
	}
}

// TestLeaseZeroNeverFences: a lease without a run-until time turns the
// fencing off: the earlier deadline passes and the guest keeps running.
func TestLeaseZeroNeverFences(t *testing.T) {
	// A try counts only if the zero lease's answer came before the first
	// deadline: after it, a fence was right.
	for try := 1; ; try++ {
		eng := newFakeEngine()
		f := startFake(t, eng)
		first := soon()
		if _, err := f.lease(t, first, 2); err != nil {
			t.Fatal(err)
		}
		info, err := f.lease(t, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		if first.Until() <= 0 {
			if try == 3 {
				t.Fatal("three tries stalled past their 300 ms run-until time before the zero lease's answer")
			}
			t.Logf("try %d: the zero lease's answer came after the first deadline; again", try)
			continue
		}
		if info.RunUntil != 0 || info.RunUntilRemaining != 0 || info.Fenced {
			t.Fatalf("a zero lease still has a run-until time: %+v", info)
		}
		for first.Until() > -50*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
		}
		if info := f.call(t, control.Request{Op: control.OpInfo}).Info; info.State != control.StateRunning || info.Fenced || eng.snapshot().paused {
			t.Fatalf("past the first deadline, with the fencing off: %+v", info)
		}
		return
	}
}

// TestLeaseFenceKillsEngineThatDoesNotPause: an engine whose pause does
// not return within fenceWithin is killed, and the VMM ends fenced.
func TestLeaseFenceKillsEngineThatDoesNotPause(t *testing.T) {
	old := fenceWithin
	fenceWithin = 20 * time.Millisecond
	t.Cleanup(func() { fenceWithin = old })
	eng := newFakeEngine()
	eng.hangPause = make(chan struct{})
	t.Cleanup(func() { close(eng.hangPause) })
	f := startFake(t, eng)
	if _, err := f.lease(t, soon(), 3); err != nil {
		t.Fatal(err)
	}
	f.ended(t, control.ExitFenced)
	if e := eng.snapshot(); e.killed != 1 {
		t.Fatalf("engine after a fence that could not pause: %+v", e)
	}
	rec := <-f.exit
	f.exit <- rec
	if !strings.Contains(rec.Detail, "did not pause within") {
		t.Fatalf("exit detail %q", rec.Detail)
	}
}

// TestLeaseFenceCancelsMigration: a lease that runs out while the guest
// is being sent cancels the send, and the guest is not given back to
// run; the renewal gives it back.
func TestLeaseFenceCancelsMigration(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	id, _ := pagexfer.NewID()
	ours, _ := socketPair(t) // the target never says verified
	f.call(t, control.Request{Op: control.OpMigrateSend, Migration: id.String(), Live: true}, ours)
	for f.call(t, control.Request{Op: control.OpMigrateStatus}).Migration.Phase != control.PhaseSent {
		time.Sleep(time.Millisecond)
	}
	if _, err := f.lease(t, past(), 4); err != nil {
		t.Fatal(err)
	}
	if st := f.migration(t); st.Phase != control.PhaseCancelled {
		t.Fatalf("the migration of a guest fenced meanwhile: %+v", st)
	}
	if e := eng.snapshot(); e.resumes != 0 || !e.paused {
		t.Fatalf("the cancelled migration gave the fenced guest back: %+v", e)
	}
	if s := f.state(t); s != control.StateFenced {
		t.Fatalf("state %s", s)
	}
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	if e := eng.snapshot(); e.resumes != 1 || e.paused {
		t.Fatalf("after the renewal the engine is %+v, want given back once", e)
	}
}

// TestLeaseAlreadyPastRefusesStart: a VMM whose lease from the start has
// run out already does not boot the guest.
func TestLeaseAlreadyPastRefusesStart(t *testing.T) {
	eng := newFakeEngine()
	engines["fake"] = func(EngineConfig) (Engine, error) { return eng, nil }
	t.Cleanup(func() { delete(engines, "fake") })
	dir := t.TempDir()
	_, err := Start(Options{Name: "late", Engine: "fake", MemoryBytes: 2 << 20, Dir: dir, Socket: dir + "/ctl", RunUntil: past(), Generation: 1})
	if err == nil || !strings.Contains(err.Error(), "lease ran out") {
		t.Fatalf("start with a lease already past: %v", err)
	}
	if eng.snapshot().started {
		t.Fatal("the guest was booted")
	}
}

// TestLeaseFromTheStartFences: a lease given at start fences the guest
// without any request.
func TestLeaseFromTheStartFences(t *testing.T) {
	eng := newFakeEngine()
	engines["fake"] = func(EngineConfig) (Engine, error) { return eng, nil }
	t.Cleanup(func() { delete(engines, "fake") })
	dir := t.TempDir()
	v, err := Start(Options{Name: "early", Engine: "fake", MemoryBytes: 2 << 20, Dir: dir, Socket: dir + "/ctl", RunUntil: soon(), Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := 0; i < 5000 && v.info().State != control.StateFenced; i++ {
		time.Sleep(time.Millisecond)
	}
	if info := v.info(); info.State != control.StateFenced || info.Generation != 2 || !eng.snapshot().paused {
		t.Fatalf("a VMM started with a lease, past its run-until time: %+v", info)
	}
}

// TestLeaseFencesAGuestPoweringOff: a guest asked to power off that
// ignores the button is still running when its lease runs out: it is
// fenced (paused) like any other, and the renewal gives it back to
// powering off; it ends when it powers off.
func TestLeaseFencesAGuestPoweringOff(t *testing.T) {
	eng := newFakeEngine()
	eng.acpi = true
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 9); err != nil {
		t.Fatal(err)
	}
	f.call(t, control.Request{Op: control.OpShutdown})
	if s := f.state(t); s != control.StateStopping {
		t.Fatalf("after the button: %s", s)
	}
	info, err := f.lease(t, past(), 9)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != control.StateFenced || !info.Fenced || !eng.snapshot().paused || !strings.Contains(info.FenceDetail, "guest paused") {
		t.Fatalf("a guest ignoring the power button, past its lease: %+v, engine %+v", info, eng.snapshot())
	}
	info, err = f.lease(t, later(), 9)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != control.StateStopping || info.Fenced || eng.snapshot().paused {
		t.Fatalf("after the renewal: %+v, engine %+v", info, eng.snapshot())
	}
	eng.crash(nil) // it powers off at last
	f.ended(t, control.ExitShutdown)
}

// TestLeaseFenceTimerFencesAGuestPoweringOff: the same through the
// lease's own timer (no request): a guest that ignores the button does
// not run past its run-until time.
func TestLeaseFenceTimerFencesAGuestPoweringOff(t *testing.T) {
	eng := newFakeEngine()
	eng.acpi = true
	f := startFake(t, eng)
	f.call(t, control.Request{Op: control.OpShutdown})
	if _, err := f.lease(t, soon(), 1); err != nil {
		t.Fatal(err)
	}
	if info := f.waitState(t, control.StateFenced); !info.Fenced || !eng.snapshot().paused {
		t.Fatalf("fenced: %+v, engine %+v", info, eng.snapshot())
	}
}

// TestLeaseTimerRechecksTheClock: a run-until time that passes while the
// Go timer set for it still has long to run (Go's timers stop while the
// host is suspended; CLOCK_BOOTTIME, the lease's clock, does not) fences
// the guest all the same, within the timer's recheck.
func TestLeaseTimerRechecksTheClock(t *testing.T) {
	eng := newFakeEngine()
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 3); err != nil {
		t.Fatal(err)
	}
	// As a wake-up finds it: the run-until time has passed on the lease's
	// clock, the timer is set for an hour from when it was armed.
	f.v.mu.Lock()
	f.v.lease.runUntil = past()
	f.v.mu.Unlock()
	if info := f.waitState(t, control.StateFenced); !info.Fenced || !eng.snapshot().paused {
		t.Fatalf("after the run-until time passed unseen by the timer: %+v", info)
	}
}

// TestLeaseFinishedWhenServeEnds: once Serve has ended the VMM, its
// lease's timer is stopped and a run-until time passing (a tick already
// under way, a late renewal) fences nothing: the engine's clean stop and
// Close's grace are not cut short by a kill, and nothing is logged as a
// fence.
func TestLeaseFinishedWhenServeEnds(t *testing.T) {
	eng := newFakeEngine()
	engines["fake"] = func(EngineConfig) (Engine, error) { return eng, nil }
	t.Cleanup(func() { delete(engines, "fake") })
	core, logs := observer.New(zap.InfoLevel)
	dir := t.TempDir()
	v, err := Start(Options{Name: "ending", Engine: "fake", MemoryBytes: 2 << 20, Dir: dir, Socket: dir + "/ctl",
		RunUntil: later(), Generation: 2, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a signal: the VMM ends at once
	if e := v.Serve(ctx); e.Reason != control.ExitShutdown {
		t.Fatalf("Serve: %+v", e)
	}
	v.mu.Lock()
	timer := v.lease.timer
	v.lease.runUntil = past()
	v.mu.Unlock()
	if timer != nil {
		t.Fatal("the lease's timer still runs after Serve ended")
	}
	v.leaseDue() // as a tick under way would
	if e := eng.snapshot(); e.killed != 0 || e.paused {
		t.Fatalf("the ended VMM's engine was fenced: %+v", e)
	}
	if n := logs.FilterMessage("lease run-until time passed: guest fenced").Len(); n != 0 {
		t.Fatalf("a fence was logged after Serve ended (%d)", n)
	}
}

// TestLeaseShutdownOfAFencedGuest: the power button pressed on a fenced
// guest leaves it fenced (it cannot act on it while its vCPUs are
// stopped); the renewal resumes it, and it goes on powering off.
func TestLeaseShutdownOfAFencedGuest(t *testing.T) {
	eng := newFakeEngine()
	eng.acpi = true
	f := startFake(t, eng)
	if info, err := f.lease(t, past(), 1); err != nil || info.State != control.StateFenced {
		t.Fatalf("lease already past: %+v, %v", info, err)
	}
	f.call(t, control.Request{Op: control.OpShutdown})
	if s := f.state(t); s != control.StateFenced || !eng.snapshot().paused {
		t.Fatalf("a fenced guest after the button: %s, engine %+v", s, eng.snapshot())
	}
	info, err := f.lease(t, later(), 1)
	if err != nil || info.State != control.StateStopping || eng.snapshot().paused {
		t.Fatalf("after the renewal: %+v, %v, engine %+v", info, err, eng.snapshot())
	}
}
