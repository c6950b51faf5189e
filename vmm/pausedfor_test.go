package vmm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestInfoSaysPausedForMigration: while a save is in its stop-and-copy
// (the guest's vCPUs stopped), the VMM's info says the guest is paused for
// a migration; before that, in pre-copy, it does not.
func TestInfoSaysPausedForMigration(t *testing.T) {
	v := simVMM(t, 64, "dirty=8M/s,hot=8M,touch=16M,verify=100ms")
	time.Sleep(300 * time.Millisecond)
	img := filepath.Join(t.TempDir(), "img")
	if r := v.handle(control.Request{Op: control.OpSave, Path: img, RateLimit: 4 << 20}, nil); r.Error != "" {
		t.Fatal(r.Error)
	}
	var sawPaused, sawPrecopy bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		before := v.handle(control.Request{Op: control.OpMigrateStatus}, nil).Migration.Phase
		info := v.info()
		after := v.handle(control.Request{Op: control.OpMigrateStatus}, nil).Migration.Phase
		if before == after {
			switch after {
			case control.PhaseStopCopy:
				if info.PausedFor != "migration" {
					t.Fatalf("in stop-and-copy, info says paused_for %q", info.PausedFor)
				}
				sawPaused = true
			case control.PhasePrecopy, control.PhaseSetup:
				if info.PausedFor != "" {
					t.Fatalf("in %s, info says paused_for %q", after, info.PausedFor)
				}
				sawPrecopy = true
			}
		}
		if after == control.PhaseCompleted {
			break
		}
		if after == control.PhaseFailed || time.Now().After(deadline) {
			t.Fatalf("save ended in phase %s", after)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !sawPaused || !sawPrecopy {
		t.Fatalf("did not observe both phases: stop-and-copy %v, pre-copy %v", sawPaused, sawPrecopy)
	}
}
