package vmm

import (
	"path/filepath"
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestInfoSaysPausedForMigration: while a save is in its stop-and-copy
// (the guest's vCPUs stopped), the VMM's info says the guest is paused for
// a migration; before that, in setup, it does not. The fake engine calls
// back in each phase, so every phase is seen, however fast the machine.
func TestInfoSaysPausedForMigration(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseStopCopy, control.PhaseSent}
	seen := map[control.Phase]control.PauseReason{}
	f := startFake(t, eng)
	eng.onPhase = func(p control.Phase) { seen[p] = f.v.info().PausedFor }
	if info := f.v.info(); info.PausedFor != "" {
		t.Fatalf("before any save, info says paused_for %q", info.PausedFor)
	}
	img := filepath.Join(t.TempDir(), "img")
	if r := f.call(t, control.Request{Op: control.OpSave, Path: img}); r.Error != "" {
		t.Fatal(r.Error)
	}
	f.ended(t, control.ExitSaved)
	for p, want := range map[control.Phase]control.PauseReason{control.PhaseSetup: "", control.PhaseStopCopy: "migration", control.PhaseSent: "migration"} {
		got, ok := seen[p]
		if !ok {
			t.Errorf("the save never reported %s (saw %v)", p, seen)
		} else if got != want {
			t.Errorf("in %s, info says paused_for %q, want %q", p, got, want)
		}
	}
}
