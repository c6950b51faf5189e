package vmm

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestDirtyRateAfterRestore: the first dirty-rate sample of a restored
// guest is its write rate since the restore, not the write counter it
// carried from its life before the save. The guest writes 8 MB/s; the
// bound (4x that) is far below the spike the carried counter gave.
func TestDirtyRateAfterRestore(t *testing.T) {
	const spec = "dirty=8M/s,hot=4M,touch=4M,verify=100ms"
	src := simVMM(t, 64, spec)
	time.Sleep(2500 * time.Millisecond) // let the write counter grow
	img := filepath.Join(t.TempDir(), "img")
	if r := src.handle(control.Request{Op: control.OpSave, Path: img}, nil); r.Error != "" {
		t.Fatal(r.Error)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := src.handle(control.Request{Op: control.OpMigrateStatus}, nil).Migration
		if st.Phase == control.PhaseCompleted {
			break
		}
		if st.Phase == control.PhaseFailed || time.Now().After(deadline) {
			t.Fatalf("save: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	o := src.opts
	o.Dir, o.Mode, o.RestorePath = t.TempDir(), ModeRestore, img
	v := startVMM(t, o)
	time.Sleep(100 * time.Millisecond)
	info := v.info()
	if info.Writes == 0 {
		t.Fatalf("restored guest carries no write counter: %+v", info)
	}
	if limit := 4.0 * (8 << 20); info.DirtyRate > limit {
		t.Fatalf("first dirty rate after restore %.0f MiB/s (writes %d), want at most %.0f MiB/s",
			info.DirtyRate/(1<<20), info.Writes, limit/(1<<20))
	}
}
