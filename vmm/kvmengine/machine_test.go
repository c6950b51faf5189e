package kvmengine

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
	"github.com/ovs-agent/ovs-agent/vmm/simengine"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
	"github.com/ovs-agent/ovs-agent/vmm/workload/workloadtest"
)

func kvmFactory(t testing.TB, ram *guestmem.RAM, p workload.Params, state []byte, con io.Writer) (workload.Machine, error) {
	sys := needKVM(t)
	return New(Config{RAM: ram, Params: p, State: state, Console: con, KVM: sys})
}

func TestKVMHeartbeats(t *testing.T) { workloadtest.Heartbeats(t, kvmFactory) }
func TestKVMDirtyLog(t *testing.T)   { workloadtest.DirtyLog(t, kvmFactory) }

// The dirty log is of 4 KiB pages inside 2 MiB hugetlb and thp pages.
func TestKVMDirtyLogHugePages(t *testing.T) {
	hosttest.ReserveHugePages(t, 32)
	hosttest.ShmemTHP(t, "advise")
	for _, b := range []guestmem.Backing{guestmem.BackingHugeTLB, guestmem.BackingTHP} {
		t.Run(string(b), func(t *testing.T) { workloadtest.DirtyLogOn(t, kvmFactory, b) })
	}
}
func TestKVMCorrupt(t *testing.T)     { workloadtest.Corrupt(t, kvmFactory) }
func TestKVMSaveRestore(t *testing.T) { workloadtest.SaveRestore(t, kvmFactory) }
func TestKVMSparse(t *testing.T)      { workloadtest.Sparse(t, kvmFactory) }
func TestKVMThrottle(t *testing.T)    { workloadtest.Throttle(t, kvmFactory) }
func TestKVMTouch(t *testing.T)       { workloadtest.Touch(t, kvmFactory) }
func TestKVMTouchSaveRestore(t *testing.T) {
	workloadtest.TouchSaveRestore(t, kvmFactory)
}
func TestKVMRate(t *testing.T) { workloadtest.Rate(t, kvmFactory, "32M/s", 500*time.Millisecond) }

// TestTouchSameAsSim: the kvm guest and the sim engine fill the touched
// region with the same bytes and record the same generations, so one
// checker (workload.Check) validates either.
func TestTouchSameAsSim(t *testing.T) {
	const size = 64 << 20
	spec := "touch=16M,hot=8M,dirty=0,seed=12345,hb=100ms"
	run := func(name string, f workloadtest.Factory) (*guestmem.RAM, workload.Layout) {
		ram := newTestRAM(t, size)
		con := &workload.Lines{}
		m, err := f(t, ram, workloadtest.Params(t, spec, size), nil, con)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Stop()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := con.WaitTouchDone(0, workloadtest.Timeout); err != nil {
			t.Fatalf("%s: %v; console:\n%v", name, err, con.All())
		}
		if err := m.Pause(); err != nil {
			t.Fatal(err)
		}
		rep, err := workload.Check(ram)
		if err != nil || rep.Err() != nil || rep.Written != 4096 {
			t.Fatalf("%s: check %+v %v", name, rep, err)
		}
		return ram, rep.Layout
	}
	kram, kl := run("kvm", kvmFactory)
	sram, sl := run("sim", func(t testing.TB, ram *guestmem.RAM, p workload.Params, state []byte, con io.Writer) (workload.Machine, error) {
		return simengine.New(simengine.Config{RAM: ram, Params: p, State: state, Console: con})
	})
	if kl != sl {
		t.Fatalf("layouts differ: kvm %+v, sim %+v", kl, sl)
	}
	read := func(r *guestmem.RAM, off, n uint64) []byte {
		b := make([]byte, n)
		if _, err := r.ReadAt(b, int64(off)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, part := range []struct {
		what   string
		off, n uint64
	}{
		{"generation table", workload.GenTableAddr, kl.TablePages() * 8},
		{"hot set and touched region", kl.HotFirst * workload.PageSize, kl.TablePages() * workload.PageSize},
		{"touched counter", workload.StatusPageAddr + 8*workload.StatusTouched, 8},
	} {
		if !bytes.Equal(read(kram, part.off, part.n), read(sram, part.off, part.n)) {
			t.Errorf("%s differs between the kvm guest and the sim engine", part.what)
		}
	}
}

// TestPrepareThenRestore is a migration target's order: the VM and its
// memory slots are made before the guest's memory arrives, and only the
// saved state is loaded once it has; the guest then carries on.
func TestPrepareThenRestore(t *testing.T) {
	const size = 128 << 20
	sys := needKVM(t)
	ram := newTestRAM(t, size)
	con := &workload.Lines{}
	m, err := New(Config{RAM: ram, Params: workloadtest.Params(t, "dirty=8M/s,hot=32M,verify=100ms,hb=100ms", size), Console: con, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := con.WaitHeartbeat(0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	state, err := m.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}

	dst := newTestRAM(t, size)
	con2 := &workload.Lines{}
	p, err := Prepare(Config{RAM: dst, Console: con2, KVM: sys})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.Start(); err == nil {
		t.Fatal("a prepared machine started without a saved state")
	}
	// The memory arrives after the slots were made.
	workloadtest.CopyData(t, ram, dst)
	if err := p.Restore([]byte("garbage")); err == nil {
		t.Fatal("Restore took a garbage state")
	}
	if err := p.Restore(state); err != nil {
		t.Fatal(err)
	}
	if err := p.Restore(state); err == nil {
		t.Fatal("Restore ran twice")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	h1, i, err := con2.WaitHeartbeat(0, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := con2.WaitHeartbeat(i+1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Writes < before.Writes || h2.Writes <= h1.Writes || h2.Verified <= h1.Verified {
		t.Fatalf("the restored guest does not carry on: saved %+v, then %+v, %+v", before, h1, h2)
	}
	if st := p.Stats(); st.Corrupt != 0 {
		t.Fatalf("corruption after restore: %+v", st)
	}
}
