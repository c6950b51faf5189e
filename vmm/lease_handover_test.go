package vmm

import (
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// A leased (pool) source VMM without auto-commit: its agent handed the
// ownership over and sends Commit; the target answers ResumeFailed. The
// guest must never resume here (found by a reviewer: it did).
func TestLeasedSourceNeverResumesAHandedOverGuest(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	if _, err := f.lease(t, later(), 4); err != nil {
		t.Fatal(err)
	}
	id, target := sendUntilSent(t, f, false)
	if err := pagexfer.WriteVerified(target, id, pagexfer.Stats{Totals: pagexfer.Totals{Rounds: 1, DataPages: 2}}); err != nil {
		t.Fatal(err)
	}
	f.waitPhase(t, control.PhaseVerified)
	// agent: HandOver succeeded; commit
	f.call(t, control.Request{Op: control.OpMigrateCommit})
	target.SetReadDeadline(time.Now().Add(20 * time.Second))
	m, err := pagexfer.ReadMessage(target)
	if err != nil || m.Kind != pagexfer.MsgCommit {
		t.Fatalf("%+v %v", m, err)
	}
	// The target refuses the commit (its lease lapsed): the guest, whose
	// ownership the agent handed over, stays paused here, in doubt.
	if err := pagexfer.WriteResumeFailed(target, id, "target: lease lapsed; the commit is refused"); err != nil {
		t.Fatal(err)
	}
	f.waitPhase(t, control.PhaseInDoubt)
	if e := eng.snapshot(); e.resumes != 0 {
		t.Fatalf("the source resumed a guest whose ownership its agent handed over (resumes %d)", e.resumes)
	}
	// The agent says the target does not run it: failed, still paused.
	f.call(t, control.Request{Op: control.OpMigrateResolve, OnTarget: false})
	f.waitPhase(t, control.PhaseFailed)
	time.Sleep(50 * time.Millisecond)
	if e := eng.snapshot(); e.resumes != 0 {
		t.Fatalf("the source resumed a handed-over guest after the agent's word (resumes %d)", e.resumes)
	}
}

// waitPhase waits (5 s at most) for the VMM's migration to be in phase
// want.
func (f *fakeVMM) waitPhase(t *testing.T, want control.Phase) {
	t.Helper()
	for i := 0; ; i++ {
		st := f.call(t, control.Request{Op: control.OpMigrateStatus}).Migration
		if st.Phase == want {
			return
		}
		if i == 5000 {
			t.Fatalf("migration phase %s, want %s", st.Phase, want)
		}
		time.Sleep(time.Millisecond)
	}
}
