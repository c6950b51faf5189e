package vmm

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The lease against the commit of a migration: a guest whose lease ran
// out is never handed over, on either side.

// sendUntilSent starts a live send of f's guest to the test's end of a
// connection and waits until the image is sent (the guest paused, the
// verdict awaited).
func sendUntilSent(t *testing.T, f *fakeVMM, auto bool) (pagexfer.ID, net.Conn) {
	t.Helper()
	id, _ := pagexfer.NewID()
	ours, target := socketPair(t)
	f.call(t, control.Request{Op: control.OpMigrateSend, Migration: id.String(), Live: true, AutoCommit: auto}, ours)
	for i := 0; f.call(t, control.Request{Op: control.OpMigrateStatus}).Migration.Phase != control.PhaseSent; i++ {
		if i == 5000 {
			t.Fatal("the send never reached sent")
		}
		time.Sleep(time.Millisecond)
	}
	return id, target
}

// verifiedThenRead plays the target: it says verified, and returns the
// source's answer.
func verifiedThenRead(t *testing.T, id pagexfer.ID, target net.Conn) pagexfer.Message {
	t.Helper()
	if err := pagexfer.WriteVerified(target, id, pagexfer.Stats{Totals: pagexfer.Totals{Rounds: 1, DataPages: 2}}); err != nil {
		t.Fatal(err)
	}
	target.SetReadDeadline(time.Now().Add(20 * time.Second))
	m, err := pagexfer.ReadMessage(target)
	if err != nil {
		t.Fatalf("the source's answer to verified: %v", err)
	}
	return m
}

// TestLeaseFenceAbortsBeforeThePause: a lease that runs out while the
// guest's image is sent aborts the migration before the fence pauses the
// guest: a verdict that comes while the pause is still under way (an
// engine slow to answer) finds the abort, and auto-commit does not hand
// the guest over.
func TestLeaseFenceAbortsBeforeThePause(t *testing.T) {
	old := fenceWithin
	fenceWithin = time.Minute
	t.Cleanup(func() { fenceWithin = old })
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	id, target := sendUntilSent(t, f, true)
	hang := make(chan struct{})
	eng.mu.Lock()
	eng.hangPause = hang // the fence's pause does not answer
	eng.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			close(hang)
		}
	}
	t.Cleanup(release)
	if _, err := f.lease(t, soon(), 4); err != nil {
		t.Fatal(err)
	}
	var info *control.Info
	for i := 0; ; i++ {
		if info = f.call(t, control.Request{Op: control.OpInfo}).Info; info.Fenced {
			break
		}
		if i == 5000 {
			t.Fatal("the lease never ran out")
		}
		time.Sleep(time.Millisecond)
	}
	// The fence is in its pause now, and Info says so.
	if !strings.Contains(info.FenceDetail, "the guest is being stopped") {
		t.Fatalf("info of a VMM whose fence is under way: %+v", info)
	}
	if m := verifiedThenRead(t, id, target); m.Kind != pagexfer.MsgAbort {
		t.Fatalf("the source answered %s to verified after its lease ran out, want Abort", m.Kind)
	}
	release()
	if st := f.migration(t); st.Phase != control.PhaseCancelled {
		t.Fatalf("the migration of a guest fenced meanwhile: %+v", st)
	}
	if s := f.waitState(t, control.StateFenced); s.State != control.StateFenced {
		t.Fatal(s.State)
	}
	if e := eng.snapshot(); e.resumes != 0 || !e.paused {
		t.Fatalf("the fenced guest was given back: %+v", e)
	}
}

// TestLeaseLapsedRefusesCommit: a run-until time that has passed before
// the lease's timer fired (a late timer, a host that slept) refuses the
// commit all the same, given up front or by the agent, and fences the
// guest instead of giving it back.
func TestLeaseLapsedRefusesCommit(t *testing.T) {
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto=%v", auto), func(t *testing.T) {
			eng := newFakeEngine()
			eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
			f := startFake(t, eng)
			if _, err := f.lease(t, later(), 4); err != nil {
				t.Fatal(err)
			}
			id, target := sendUntilSent(t, f, auto)
			// The run-until time passes; the timer (an hour ahead) has
			// not fired.
			f.v.mu.Lock()
			f.v.lease.runUntil = past()
			f.v.mu.Unlock()
			if err := pagexfer.WriteVerified(target, id, pagexfer.Stats{Totals: pagexfer.Totals{Rounds: 1, DataPages: 2}}); err != nil {
				t.Fatal(err)
			}
			if !auto {
				f.waitPhase(t, control.PhaseVerified)
				f.call(t, control.Request{Op: control.OpMigrateCommit})
			}
			target.SetReadDeadline(time.Now().Add(20 * time.Second))
			m, err := pagexfer.ReadMessage(target)
			if err != nil || m.Kind != pagexfer.MsgAbort {
				t.Fatalf("the source's answer after its lease lapsed: %+v, %v; want Abort", m, err)
			}
			if st := f.migration(t); st.Phase != control.PhaseFailed {
				t.Fatalf("migration: %+v", st)
			}
			info := f.call(t, control.Request{Op: control.OpInfo}).Info
			if info.State != control.StateFenced || !info.Fenced {
				t.Fatalf("after the refused commit: %+v", info)
			}
			if e := eng.snapshot(); e.resumes != 0 || !e.paused {
				t.Fatalf("the guest whose lease lapsed was given back: %+v", e)
			}
		})
	}
}

// incomingFake starts a VMM waiting for an incoming migration (under a
// lease an hour ahead) and hands it the test's end of a connection.
func incomingFake(t *testing.T) (*fakeVMM, pagexfer.ID) {
	t.Helper()
	eng := newFakeEngine()
	id, _ := pagexfer.NewID()
	eng.recvID = id
	f := startFakeWith(t, eng, func(o *Options) {
		o.Mode, o.RunUntil, o.Generation = ModeIncoming, later(), 2
	})
	return f, id
}

// TestLeaseTargetRanOutSaysFailed: an incoming VMM whose lease ran out
// before the image was in does not say verified: the source keeps the
// guest.
func TestLeaseTargetRanOutSaysFailed(t *testing.T) {
	f, id := incomingFake(t)
	if _, err := f.lease(t, past(), 2); err != nil {
		t.Fatal(err)
	}
	ours, source := socketPair(t)
	f.call(t, control.Request{Op: control.OpMigrateReceive, Migration: id.String()}, ours)
	source.SetReadDeadline(time.Now().Add(20 * time.Second))
	m, err := pagexfer.ReadMessage(source)
	if err != nil || m.Kind != pagexfer.MsgFailed {
		t.Fatalf("the target's verdict after its lease ran out: %+v, %v; want Failed", m, err)
	}
	f.ended(t, control.ExitIncomingAborted)
	if f.eng.snapshot().started {
		t.Fatal("the target started the guest")
	}
}

// TestLeaseTargetRanOutRefusesCommit: an incoming VMM whose lease runs
// out between its verified and the source's commit refuses the commit
// (the source resumes its own copy) and never starts the guest.
func TestLeaseTargetRanOutRefusesCommit(t *testing.T) {
	f, id := incomingFake(t)
	ours, source := socketPair(t)
	f.call(t, control.Request{Op: control.OpMigrateReceive, Migration: id.String()}, ours)
	source.SetReadDeadline(time.Now().Add(20 * time.Second))
	if m, err := pagexfer.ReadMessage(source); err != nil || m.Kind != pagexfer.MsgVerified {
		t.Fatalf("the target's verdict: %+v, %v", m, err)
	}
	if _, err := f.lease(t, past(), 2); err != nil {
		t.Fatal(err)
	}
	if err := pagexfer.WriteCommit(source, id); err != nil {
		t.Fatal(err)
	}
	m, err := pagexfer.ReadMessage(source)
	if err != nil || m.Kind != pagexfer.MsgResumeFailed {
		t.Fatalf("the target's answer to commit after its lease ran out: %+v, %v; want ResumeFailed", m, err)
	}
	f.ended(t, control.ExitIncomingAborted)
	if f.eng.snapshot().started {
		t.Fatal("the target started the guest")
	}
}

// TestLeaseFenceInDoubtSaysSo: a lease that runs out once the commit was
// sent does not claim to cancel the migration (nothing can): the detail
// says it is in doubt, and when the target's agent says the guest is not
// there, it stays fenced here (given back at the renewal).
func TestLeaseFenceInDoubtSaysSo(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	id, target := sendUntilSent(t, f, true)
	if m := verifiedThenRead(t, id, target); m.Kind != pagexfer.MsgCommit {
		t.Fatalf("the source answered %s, want Commit", m.Kind)
	}
	target.Close() // the answer to the commit is lost
	for i := 0; f.call(t, control.Request{Op: control.OpMigrateStatus}).Migration.Phase != control.PhaseInDoubt; i++ {
		if i == 5000 {
			t.Fatal("never in doubt")
		}
		time.Sleep(time.Millisecond)
	}
	info, err := f.lease(t, past(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Fenced || strings.Contains(info.FenceDetail, "cancelled") || !strings.Contains(info.FenceDetail, "in doubt") {
		t.Fatalf("fence detail of a guest in doubt: %q", info.FenceDetail)
	}
	f.call(t, control.Request{Op: control.OpMigrateResolve, OnTarget: false})
	if st := f.migration(t); st.Phase != control.PhaseFailed {
		t.Fatalf("migration: %+v", st)
	}
	if e := eng.snapshot(); e.resumes != 0 || !e.paused {
		t.Fatalf("the fenced guest was given back: %+v", e)
	}
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	if e := eng.snapshot(); e.resumes != 1 || e.paused {
		t.Fatalf("after the renewal: %+v, want given back once", e)
	}
}

// TestLeaseOwedGiveBackSurvivesOperatorPause: a guest fenced during a
// migration that then failed is owed its give-back (ResumeSource); the
// operator's pause and a renewal keep it owed, and the operator's resume
// gives it back.
func TestLeaseOwedGiveBackSurvivesOperatorPause(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	sendUntilSent(t, f, true)
	info, err := f.lease(t, past(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.FenceDetail, "its outgoing migration was cancelled") {
		t.Fatalf("fence detail: %q", info.FenceDetail)
	}
	if st := f.migration(t); st.Phase != control.PhaseCancelled {
		t.Fatalf("migration: %+v", st)
	}
	f.call(t, control.Request{Op: control.OpPause})
	if info, err := f.lease(t, later(), 4); err != nil || info.State != control.StatePaused {
		t.Fatalf("renewal of the operator's pause: %+v, %v", info, err)
	}
	if e := eng.snapshot(); e.resumes != 0 || !e.paused {
		t.Fatalf("before the operator's resume: %+v", e)
	}
	f.call(t, control.Request{Op: control.OpResume})
	if e := eng.snapshot(); e.resumes != 1 || e.paused {
		t.Fatalf("the operator's resume: %+v, want given back (ResumeSource) once", e)
	}
}
