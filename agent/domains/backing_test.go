package domains

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// hugeHost is a host of 1024 MiB (128 reserved) whose huge-page pool the
// test sets; its free pages drop as fake VMMs "map" hugetlb memory, as
// the kernel's do, only when the test says.
type hugeHost struct {
	mu   sync.Mutex
	host guestmem.Host
}

func (h *hugeHost) read() (guestmem.Host, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.host, nil
}

func openHuge(t *testing.T, f *fakeVMMs, h *hugeHost, backing string) *Manager {
	t.Helper()
	m, err := Open(Options{
		StateDir: t.TempDir(), Hypervisor: "sim", VMMs: f,
		HostMemory:    func() (uint64, error) { return 1024 << 20, nil },
		MemoryReserve: 128 << 20, HostCPUs: 4, MemoryBacking: backing,
		KVMUsable:   func() error { return errors.New("no KVM in unit tests") },
		HostBacking: h.read,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// A pool of 128 huge pages (256 MiB): hugetlb domains take it until it is
// gone, then get a fault saying how many are free and what to raise;
// ordinary domains get the host's memory less the reserve and less the
// whole pool.
func TestAdmissionCountsHugePages(t *testing.T) {
	f := newFakeVMMs()
	h := &hugeHost{host: guestmem.Host{HugePages: 128, HugeFree: 128, ShmemTHP: "never"}}
	m := openHuge(t, f, h, "4k")
	create(t, m, "h1", 200, "memory_backing = 'hugetlb'")
	create(t, m, "h2", 100, "memory_backing = 'hugetlb'")
	create(t, m, "a1", 64, "memory_backing = 'auto'")
	create(t, m, "o1", 500)
	create(t, m, "o2", 100)

	if err := m.Start("h1"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.MemoryBacking != "hugetlb" {
		t.Fatalf("h1 started with memory backing %q, want hugetlb", s.MemoryBacking)
	}
	// The kernel has not seen h1's mapping yet: the agent's own count
	// leaves 28 pages.
	err := m.Start("h2")
	if KindOf(err) != NoResources || !strings.Contains(err.Error(), "needs 50 2 MiB huge pages for 100 MiB; 28 of the 128 reserved are free") ||
		!strings.Contains(err.Error(), "nr_hugepages by 22") {
		t.Fatalf("hugetlb start beyond the free pool: %v", err)
	}
	f.noStart(t)
	// auto takes the pool when it holds the guest, else 4 KiB pages
	// (no THP here).
	if err := m.Start("a1"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.MemoryBacking != "4k" {
		t.Fatalf("a1 (auto, 32 pages needed, 28 free) started with %q, want 4k", s.MemoryBacking)
	}
	// o1 is 500 MiB of ordinary memory: 1024 - 128 reserved - 256 of
	// pool - 64 of a1 leaves 576 for it, and 76 after it.
	if err := m.Start("o1"); err != nil {
		t.Fatalf("500 MiB beside the pool: %v", err)
	}
	if s := f.nextStart(t); s.MemoryBacking != "4k" {
		t.Fatalf("o1 started with %q, want the host default 4k", s.MemoryBacking)
	}
	err = m.Start("o2")
	if KindOf(err) != NoResources || !strings.Contains(err.Error(), "76 MiB are free for domains") || !strings.Contains(err.Error(), "256 MiB held as 128 reserved huge pages") {
		t.Fatalf("ordinary start counting the pool as free: %v", err)
	}
	if got := m.Committed(); got != (64+500+256)<<20 {
		t.Fatalf("committed %d MiB, want a1's 64, o1's 500 and the 256 of the pool", got>>20)
	}
	// An incoming domain's check takes this host's backing: hugetlb
	// asked by its vm.cfg and not free is a problem saying so.
	ps := m.CheckIncoming(relocation.Offer{Name: "in1", UUID: "0b0c3f5e-1111-4a8b-9d8c-2f0e7c3a1b55", MemoryMiB: 64, VCPUs: 1,
		Config: "name = 'in1'\nmemory = 64\nmemory_backing = 'hugetlb'\n"}, 64)
	if len(ps) != 1 || ps[0].Field != "memory" || !strings.Contains(ps[0].Message, "huge pages") {
		t.Fatalf("incoming hugetlb beside a full pool: %+v", ps)
	}
}
