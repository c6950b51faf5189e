package vmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// simVMM boots a sim-engine VMM with the workload spec (no control socket:
// the tests call handle directly).
func simVMM(t *testing.T, memMiB uint64, spec string) *VMM {
	t.Helper()
	w, err := vmcfg.ParseWorkload(spec)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Name: "est", UUID: "00000000-0000-0000-0000-000000000001", Engine: EngineSim,
		MemoryBytes: memMiB << 20, VCPUs: 1, Dir: t.TempDir(), Config: &vmcfg.Config{WorkloadSpec: w}}
	return startVMM(t, o)
}

// startVMM starts a VMM from o, stopped and released when the test ends.
func startVMM(t *testing.T, o Options) *VMM {
	t.Helper()
	if o.MemoryBacking == "" {
		// Tests of other binaries reserve huge pages for their own
		// guests, which auto would take.
		o.MemoryBacking = "4k"
	}
	v, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.engine.Stop()
		v.console.Close()
		v.Close()
	})
	return v
}

func waitEstimate(t *testing.T, v *VMM) control.Estimate {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := v.handle(control.Request{Op: control.OpEstimate}, nil)
		if r.Error != "" || r.Estimate == nil {
			t.Fatalf("estimate report: %+v", r)
		}
		if r.Estimate.Done {
			return *r.Estimate
		}
		if time.Now().After(deadline) {
			t.Fatalf("estimate never ended: %+v", r.Estimate)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEstimateDirtyRate: the measured dirty rate of a guest writing 16 MB/s
// over a 64 MiB hot set is near 16 MB/s, the dirty set grows and stays
// within the hot set, the touched memory is reported, and the dirty log is
// off again afterwards (the machine refuses to hand it out).
func TestEstimateDirtyRate(t *testing.T) {
	v := simVMM(t, 128, "dirty=16M/s,hot=64M,touch=8M,verify=100ms")
	time.Sleep(300 * time.Millisecond) // the touch fill
	r := v.handle(control.Request{Op: control.OpEstimate, Window: 600 * time.Millisecond}, nil)
	if r.Error != "" || r.Estimate == nil || r.Estimate.Done {
		t.Fatalf("start: %+v", r)
	}
	if r := v.handle(control.Request{Op: control.OpEstimate, Window: time.Second}, nil); !strings.Contains(r.Error, "another measurement") {
		t.Fatalf("a second estimate at once: %+v", r)
	}
	e := waitEstimate(t, v)
	t.Logf("rate %.1f MB/s over %v, %d samples, dirty set %d KiB, touched %d MiB", e.DirtyRate/1e6, e.Window, len(e.Samples), e.Samples[len(e.Samples)-1].Bytes>>10, e.TouchedBytes>>20)
	if e.Error != "" || e.Window < 600*time.Millisecond || e.Window > 2*time.Second {
		t.Fatalf("estimate: %+v", e)
	}
	if e.DirtyRate < 16e6/2 || e.DirtyRate > 16e6*2 {
		t.Fatalf("dirty rate %.1f MB/s for a guest writing 16 MB/s", e.DirtyRate/1e6)
	}
	var prev uint64
	for _, s := range e.Samples {
		if s.Bytes < prev || s.Bytes > 64<<20+1<<20 {
			t.Fatalf("dirty set samples %+v", e.Samples)
		}
		prev = s.Bytes
	}
	if e.TouchedBytes < 8<<20 || e.TouchedBytes > e.MemoryBytes || e.MemoryBytes != 128<<20 {
		t.Fatalf("touched %d of %d bytes", e.TouchedBytes, e.MemoryBytes)
	}
	m, ram := v.engine.(*workloadEngine).machine()
	if err := m.DirtyLog(make([]uint64, guestmem.BitmapWords(ram.Pages()))); err == nil {
		t.Fatal("dirty logging left on after the estimate")
	}
}

// TestEstimateYieldsToMigration: a save (which starts like a migration)
// that starts during a measurement ends it, and an estimate is refused
// while the save runs.
func TestEstimateYieldsToMigration(t *testing.T) {
	v := simVMM(t, 64, "dirty=8M/s,hot=4M,touch=4M,verify=100ms")
	time.Sleep(300 * time.Millisecond)
	if r := v.handle(control.Request{Op: control.OpEstimate, Window: 3 * time.Second}, nil); r.Error != "" {
		t.Fatal(r.Error)
	}
	time.Sleep(200 * time.Millisecond)
	img := filepath.Join(t.TempDir(), "img")
	// A slow save (4 MiB/s) so that it is still running when asked.
	r := v.handle(control.Request{Op: control.OpSave, Path: img, RateLimit: 4 << 20}, nil)
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	e := waitEstimate(t, v)
	if !strings.Contains(e.Error, "a migration or save started") || e.Window >= 3*time.Second {
		t.Fatalf("estimate during a save: %+v", e)
	}
	if r := v.handle(control.Request{Op: control.OpEstimate, Window: time.Second}, nil); !strings.Contains(r.Error, "is in progress") {
		t.Fatalf("estimate while a save runs: %+v", r)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := v.handle(control.Request{Op: control.OpMigrateStatus}, nil).Migration
		if st.Phase == control.PhaseCompleted {
			break
		}
		if st.Phase == control.PhaseFailed || time.Now().After(deadline) {
			t.Fatalf("save: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatal(err)
	}
}
