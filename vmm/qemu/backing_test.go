package qemu

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
	"github.com/ovs-agent/ovs-agent/vmm/ramcheck"
)

// qemuRAMKB reads, from QEMU's smaps, field of the mapping of its RAM
// memfd (named ovs-qemu-<uuid>).
func qemuRAMKB(t *testing.T, m *Machine, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", m.PID()))
	if err != nil {
		t.Fatal(err)
	}
	in, kb := false, 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && strings.Contains(f[0], "-") {
			in = strings.Contains(l, "memfd:ovs-qemu-"+testUUID)
			continue
		}
		if in && strings.HasPrefix(l, field+":") {
			var n int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, field+":")), "%d", &n)
			kb += n
		}
	}
	return kb
}

// The test guest boots with its RAM on hugetlb pages and on shmem THP,
// QEMU mapping the memfd it was handed (the hugetlb one reserves its
// pages from the pool, the thp one gets 2 MiB pages); it migrates from
// hugetlb to a target on thp, the RAM check reads both memfds, and the
// guest's memory checker goes on on the target.
func TestMachineMemoryBackings(t *testing.T) {
	hosttest.ReserveHugePages(t, 64) // the guest's 128 MiB
	hosttest.ShmemTHP(t, "advise")
	free := func() uint64 {
		b, err := os.ReadFile("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
		if err != nil {
			t.Fatal(err)
		}
		r, err := os.ReadFile("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages")
		if err != nil {
			t.Fatal(err)
		}
		var f, v uint64
		fmt.Sscan(string(b), &f)
		fmt.Sscan(string(r), &v)
		return f - v
	}
	before := free()
	srcCon := &lines{}
	s := guestSpec(t, srcCon, 16)
	s.MemoryBacking = MemoryBackingHugeTLB
	src := startMachine(t, s)
	if got := free(); got != before-64 {
		t.Errorf("free huge pages %d before, %d with a hugetlb guest of 128 MiB: its pages are not reserved", before, got)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(src.MemoryFile(), &fs); err != nil || fs.Type != unix.HUGETLBFS_MAGIC {
		t.Fatalf("the guest's RAM %s is not on hugetlbfs (%#x, %v)", src.MemoryFile(), fs.Type, err)
	}
	srcCon.waitLines(t, src, "OK memcheck", 0)
	if kb := qemuRAMKB(t, src, "Private_Hugetlb") + qemuRAMKB(t, src, "Shared_Hugetlb"); kb < 16<<10 {
		t.Errorf("QEMU maps %d kB of its RAM on huge pages, the guest checks 16 MiB", kb)
	}

	dstCon := &lines{}
	d := guestSpec(t, dstCon, 16)
	d.MemoryBacking, d.Incoming = MemoryBackingTHP, true
	dst := startMachine(t, d)
	conns, files := connPair(t)
	loaded := make(chan error, 1)
	go func() { loaded <- MigrateIn(context.Background(), dst.QMP(), files[1]) }()
	if _, err := MigrateOut(context.Background(), src.QMP(), files[0], MigrateOptions{}, func(Figures) {}); err != nil {
		t.Fatal(err)
	}
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	srcRAM, err := ramcheck.Map(src.MemoryFile(), s.MemoryBytes, false)
	if err != nil {
		t.Fatal(err)
	}
	defer srcRAM.Close()
	dstRAM, err := ramcheck.Map(dst.MemoryFile(), d.MemoryBytes, true)
	if err != nil {
		t.Fatal(err)
	}
	defer dstRAM.Close()
	type outcome struct {
		res ramcheck.Result
		err error
	}
	target := make(chan outcome, 1)
	go func() {
		res, err := ramcheck.Target(context.Background(), conns[1], dstRAM.Bytes(), ramcheck.Options{})
		target <- outcome{res, err}
	}()
	res, err := ramcheck.Source(context.Background(), conns[0], srcRAM.Bytes(), ramcheck.Options{})
	tgt := <-target
	if err != nil || tgt.err != nil || res.DifferentPages != tgt.res.DifferentPages {
		t.Fatalf("RAM check: source %+v %v, target %+v %v", res, err, tgt.res, tgt.err)
	}
	before = uint64(dstCon.count(t, "OK memcheck"))
	if err := Resume(dst.QMP()); err != nil {
		t.Fatal(err)
	}
	dstCon.waitLines(t, dst, "OK memcheck", int(before))
	if kb := qemuRAMKB(t, dst, "ShmemPmdMapped"); kb < 2048 {
		t.Errorf("the thp target maps %d kB of its RAM on transparent huge pages", kb)
	}
}
