package control

import "testing"

// Every phase a role can reach is one it can leave or one that finishes a
// migration, and no role moves out of a finished phase.
func TestTransitionTablesAreClosed(t *testing.T) {
	for _, r := range []Role{SourceVMM, SaveVMM, TargetVMM, SourceAgent, OfflineAgent} {
		steps := r.steps()
		if _, ok := steps[r.First()]; !ok {
			t.Errorf("%s: starts in %s, which has no steps", r, r.First())
		}
		for from, tos := range steps {
			if from.Finished() {
				t.Errorf("%s: a finished phase %s has steps", r, from)
			}
			for _, to := range tos {
				if _, ok := steps[to]; !ok && !to.Finished() && !(r == TargetVMM && to == PhaseRunning) {
					t.Errorf("%s: %s leads to %s, which leads nowhere and does not finish", r, from, to)
				}
			}
		}
	}
}

func TestMoves(t *testing.T) {
	for _, c := range []struct {
		r        Role
		from, to Phase
		ok       bool
	}{
		{SourceVMM, PhaseSetup, PhasePrecopy, true},
		{SourceVMM, PhasePrecopy, PhasePrecopy, true}, // a new round
		{SourceVMM, PhaseVerified, PhaseCommitting, true},
		{SourceVMM, PhaseCommitting, PhaseCancelled, false}, // too late to cancel
		{SourceVMM, PhaseInDoubt, PhaseCompleted, true},
		{SourceVMM, PhaseCompleted, PhaseFailed, false},
		{SourceVMM, PhaseFailed, PhaseSetup, false},
		{SourceVMM, PhaseSent, PhasePrecopy, false},
		{SaveVMM, PhaseSent, PhaseCompleted, true},
		{SaveVMM, PhaseSent, PhaseVerified, false},
		{TargetVMM, PhaseReceiving, PhaseRunning, false}, // never without verifying
		{TargetVMM, PhaseVerified, PhaseRunning, true},
		{SourceAgent, PhaseConnecting, PhaseInDoubt, true},
		{SourceAgent, PhaseSetup, PhaseCompleted, true}, // polled: phases in between unseen
		{SourceAgent, PhaseCompleted, PhaseSetup, false},
		{OfflineAgent, PhaseCopying, PhaseVerified, true},
		{OfflineAgent, PhaseConnecting, PhaseCopying, false},
	} {
		got, err := c.r.Move(c.from, c.to)
		if (err == nil) != c.ok {
			t.Errorf("%s %s -> %s: err %v, want ok=%v", c.r, c.from, c.to, err, c.ok)
		}
		if err != nil && got != c.from {
			t.Errorf("%s %s -> %s refused, but moved to %s", c.r, c.from, c.to, got)
		}
	}
}

func TestDecision(t *testing.T) {
	if Commit().String() != "commit" || !Commit().Commit {
		t.Error(Commit())
	}
	if d := Abort("no answer within %s", "60s"); d.Commit || d.String() != "abort: no answer within 60s" {
		t.Error(d)
	}
}

// TestStateSteps: fencing enters only from a running guest (or one not
// started yet, or one asked to power off that has not), leaves only to
// running, paused or stopping, and stopping leaves only to fenced.
func TestStateSteps(t *testing.T) {
	for _, c := range []struct {
		from, to State
		ok       bool
	}{
		{StateRunning, StateFenced, true},
		{StateFenced, StateRunning, true},
		{StateFenced, StatePaused, true},
		{StatePaused, StateFenced, false}, // an operator's pause stays the operator's
		{StateFenced, StateIncoming, false},
		{StateStopping, StateRunning, false},
		{StateStopping, StateFenced, true}, // a shutdown the guest ignores
		{StateStopping, StatePaused, false},
		{StateIncoming, StateRunning, true},
		{StatePaused, StatePaused, true},
	} {
		got, err := StateStep(c.from, c.to)
		if ok := err == nil; ok != c.ok {
			t.Errorf("%s to %s: allowed %v, want %v (%v)", c.from, c.to, ok, c.ok, err)
		}
		if err != nil && got != c.from {
			t.Errorf("%s to %s refused but returned %s", c.from, c.to, got)
		}
	}
	for from := range vmmStateSteps {
		if _, err := StateStep(from, StateStopping); err != nil && from != StateStopping {
			t.Errorf("%s cannot stop: %v", from, err)
		}
	}
}
