package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
)

// backingInfo is domain.info's memory backing.
type backingInfo struct {
	State   string `xmlrpc:"state"`
	Backing string `xmlrpc:"memory_backing"`
	Why     string `xmlrpc:"memory_backing_why"`
}

func backingOf(t *testing.T, a *Agent, name string) backingInfo {
	t.Helper()
	var in backingInfo
	a.call(t, "domain.info", &in, name)
	return in
}

func wantBacking(t *testing.T, a *Agent, name, want string) {
	t.Helper()
	if in := backingOf(t, a, name); in.Backing != want || in.Why == "" {
		t.Fatalf("%s runs on memory backing %q (%s), want %s", name, in.Backing, in.Why, want)
	}
}

// TestMemoryBackings runs the workload guest on each memory backing
// through the agents (kvm engine): a host whose default is hugetlb boots
// one, saves and restores it, refuses a hugetlb domain larger than its
// free reserved pages (fault 1005 saying how many are free and what to
// raise), and migrates it live to a host whose default is thp (the
// target's choice, not the stream's); a domain whose vm.cfg says 4k keeps
// 4 KiB pages on both; the guests verify after every step.
func TestMemoryBackings(t *testing.T) {
	hosttest.ReserveHugePages(t, 64) // 128 MiB: the 64 MiB guest and 64 MiB left
	hosttest.ShmemTHP(t, "advise")
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent": {"hypervisor = kvm", "memory_reserve = 0", "memory_backing = hugetlb"},
	}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{
		"agent": {"hypervisor = kvm", "memory_reserve = 0", "memory_backing = thp"},
	}})
	src.call(t, "domain.create", nil, vmcfgText("hb1", 64, "dirty=16M/s,hot=16M,touch=24M,verify=100ms"))
	src.call(t, "domain.start", nil, "hb1")
	wantBacking(t, src, "hb1", "hugetlb")
	src.waitInfo(t, "hb1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 })

	// 16 pages more than are free now (32 here, with no pages reserved
	// before the test).
	h, err := guestmem.ReadHost()
	if err != nil {
		t.Fatal(err)
	}
	need := h.HugeFree + 16
	src.call(t, "domain.create", nil, vmcfgText("hb2", int(2*need), ""))
	f := src.fault(t, "domain.start", "hb2")
	if f.Code != 1005 || !strings.Contains(f.Message, fmt.Sprintf("needs %d 2 MiB huge pages", need)) ||
		!strings.Contains(f.Message, fmt.Sprintf("%d of the %d reserved are free", h.HugeFree, h.HugePages)) ||
		!strings.Contains(f.Message, "nr_hugepages by 16") {
		t.Fatalf("start of a hugetlb domain beyond the free pool: %v", f)
	}
	src.call(t, "domain.delete", nil, "hb2")

	img := filepath.Join(t.TempDir(), "hb1.img")
	src.call(t, "domain.save", nil, "hb1", img)
	src.call(t, "domain.start", nil, "hb1")
	wantBacking(t, src, "hb1", "hugetlb")
	verifiesCleanly(t, src, "hb1")

	var id string
	src.call(t, "domain.migrate", &id, "hb1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if st := waitMigration(t, src, id); st.Phase != "completed" {
		t.Fatalf("migration hugetlb to thp: %+v", st)
	}
	dst.waitInfo(t, "hb1", "running on the target", func(i domInfo) bool { return i.State == "running" })
	wantBacking(t, dst, "hb1", "thp")
	verifiesCleanly(t, dst, "hb1")

	// The vm.cfg's memory_backing wins over each host's default.
	src.call(t, "domain.create", nil, vmcfgText("k1", 64, "dirty=16M/s,hot=16M,verify=100ms", "memory_backing = '4k'"))
	src.call(t, "domain.start", nil, "k1")
	wantBacking(t, src, "k1", "4k")
	src.waitInfo(t, "k1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 })
	src.call(t, "domain.migrate", &id, "k1", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if st := waitMigration(t, src, id); st.Phase != "completed" {
		t.Fatalf("migration of a 4k domain: %+v", st)
	}
	dst.waitInfo(t, "k1", "running on the target", func(i domInfo) bool { return i.State == "running" })
	wantBacking(t, dst, "k1", "4k")
	verifiesCleanly(t, dst, "k1")
}
