package vmm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// backingEngine makes a workload engine of name on backing b for a 64 MiB
// guest that dirties memory and verifies it.
func backingEngine(t *testing.T, name, b string) *workloadEngine {
	return workloadOn(t, name, 64, "dirty=8M/s,hot=16M,touch=24M,verify=100ms", b)
}

// sizedEngine is a sim engine of mib MiB on backing b whose guest writes
// a few MiB.
func sizedEngine(t *testing.T, mib uint64, b string) *workloadEngine {
	return workloadOn(t, EngineSim, mib, "dirty=1M/s,hot=4M,verify=100ms", b)
}

func workloadOn(t *testing.T, name string, mib uint64, spec, b string) *workloadEngine {
	t.Helper()
	w, err := vmcfg.ParseWorkload(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := EngineConfig{Name: "backing", MemoryBytes: mib << 20, VCPUs: 1, Console: io.Discard,
		Config: &vmcfg.Config{Name: "backing", Memory: int(mib), VCPUs: 1, WorkloadSpec: w}, MemoryBacking: b}
	var e Engine
	if name == EngineKVM {
		e, err = newKVMEngine(c)
	} else {
		e, err = newSimEngine(c)
	}
	if err != nil {
		t.Fatal(err)
	}
	we := e.(*workloadEngine)
	t.Cleanup(func() {
		we.Stop()
		we.Close()
	})
	return we
}

// waitRounds waits (bounded) for n more verification rounds of e's guest
// and checks none found corruption.
func waitRounds(t *testing.T, e *workloadEngine, n uint64) {
	t.Helper()
	start := e.Stats().Workload.Rounds
	for i := 0; i < 300; i++ {
		st := e.Stats().Workload
		if st.Corrupt != 0 {
			t.Fatalf("the guest found %d corrupt pages", st.Corrupt)
		}
		if st.Rounds >= start+n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the guest did not verify %d more rounds (%+v)", n, e.Stats().Workload)
}

// checkPaused checks e's memory from the host side (workload.Check) while
// its guest does not run, and that it is on backing b.
func checkMemory(t *testing.T, e *workloadEngine, b guestmem.Backing) {
	t.Helper()
	_, ram := e.machine()
	if ram.Backing() != b || e.Facts().MemoryBacking != string(b) {
		t.Fatalf("memory on %s (facts %+v), want %s", ram.Backing(), e.Facts(), b)
	}
	rep, err := workload.Check(ram)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil || rep.Written == 0 {
		t.Fatalf("memory on %s: %d pages written, %v", b, rep.Written, err)
	}
}

// migrate sends src live to dst over two loopback TCP streams (the
// target's decoders landing pages at once).
func migrate(t *testing.T, src, dst *workloadEngine) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan error, 1)
	var mu sync.Mutex
	var accepted []net.Conn
	keep := func(c net.Conn) {
		mu.Lock()
		accepted = append(accepted, c)
		mu.Unlock()
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	}()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		keep(c)
		more := func(context.Context) (net.Conn, error) {
			c, err := ln.Accept()
			if err == nil {
				keep(c)
			}
			return c, err
		}
		_, err = dst.Receive(ctx, c, more, ReceiveOptions{})
		got <- err
	}()
	var streams []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		streams = append(streams, c)
	}
	sent, err := src.Send(ctx, streams, SendOptions{Live: true, MaxDowntime: 50 * time.Millisecond}, func(Progress) {})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("receive: %v", err)
	}
	var st control.MigrationStatus
	sent.Figures(&st)
	if st.Streams != 2 || st.Round < 2 {
		t.Fatalf("migration figures %+v: want 2 streams and pre-copy rounds", st)
	}
	src.Stop()
}

// saveRestore saves e (stopping it) and restores the image into a new
// engine on backing b, started.
func saveRestore(t *testing.T, name string, e *workloadEngine, b string) *workloadEngine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "save.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Save(ctx, f, SendOptions{}, func(Progress) {}); err != nil {
		t.Fatalf("save: %v", err)
	}
	f.Close()
	e.Stop()
	r := backingEngine(t, name, b)
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.Restore(ctx, f); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return r
}

// TestWorkloadEngineBackings boots the guest on each backing, migrates it
// live to a host of another backing (the backing is the target's choice,
// not the stream's), saves it and restores it on a third, on both
// workload engines; the guest verifies its memory at every step and the
// host-side check finds it whole.
func TestWorkloadEngineBackings(t *testing.T) {
	// Three guests of 64 MiB at most on hugetlb at once.
	hosttest.ReserveHugePages(t, 3*32)
	hosttest.ShmemTHP(t, "advise")
	for _, name := range []string{EngineSim, EngineKVM} {
		for _, c := range []struct{ boot, target, restore guestmem.Backing }{
			{guestmem.Backing4K, guestmem.BackingHugeTLB, guestmem.BackingTHP},
			{guestmem.BackingHugeTLB, guestmem.BackingTHP, guestmem.Backing4K},
			{guestmem.BackingTHP, guestmem.Backing4K, guestmem.BackingHugeTLB},
		} {
			t.Run(name+"/"+string(c.boot), func(t *testing.T) {
				src := backingEngine(t, name, string(c.boot))
				if err := src.Boot(); err != nil {
					t.Fatal(err)
				}
				waitRounds(t, src, 1)
				dst := backingEngine(t, name, string(c.target))
				migrate(t, src, dst)
				checkMemory(t, dst, c.target)
				if err := dst.Start(); err != nil {
					t.Fatal(err)
				}
				waitRounds(t, dst, 2)
				if err := dst.Pause(); err != nil {
					t.Fatal(err)
				}
				r := saveRestore(t, name, dst, string(c.restore))
				checkMemory(t, r, c.restore)
				if err := r.Start(); err != nil {
					t.Fatal(err)
				}
				waitRounds(t, r, 2)
			})
		}
	}
}

// A hugetlb guest the free reserved pages do not hold is refused when its
// memory is made, saying how many are free and what to raise; auto then
// takes what there is.
func TestWorkloadEngineHugeTLBShortage(t *testing.T) {
	hosttest.ReserveHugePages(t, 16)
	hosttest.ShmemTHP(t, "never")
	h, err := guestmem.ReadHost()
	if err != nil {
		t.Fatal(err)
	}
	// A guest one 2 MiB page larger than the free pool (its memory is
	// sparse: only what the workload writes is made).
	mib := 2 * (h.HugeFree + 1)
	e := sizedEngine(t, mib, "hugetlb")
	err = e.Boot()
	want := fmt.Sprintf("needs %d 2 MiB huge pages for %d MiB; %d of the %d reserved are free (raise /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages by 1,",
		h.HugeFree+1, mib, h.HugeFree, h.HugePages)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("boot of a hugetlb guest one page beyond the free pool: %v; want %q", err, want)
	}
	a := sizedEngine(t, mib, "auto")
	if err := a.Boot(); err != nil {
		t.Fatal(err)
	}
	if f := a.Facts(); f.MemoryBacking != "4k" || !strings.Contains(f.MemoryBackingWhy, "auto") {
		t.Fatalf("auto beside too few huge pages and no THP: %+v", f)
	}
	if _, err := newSimEngine(EngineConfig{Name: "x", MemoryBytes: 64 << 20, VCPUs: 1, MemoryBacking: "huge"}); err == nil {
		t.Fatal("an unknown memory backing was taken")
	}
}
