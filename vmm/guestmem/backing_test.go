package guestmem_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem/hosttest"
)

func TestChoose(t *testing.T) {
	const mib = 1 << 20
	none := guestmem.Host{ShmemTHP: "never"}
	huge := guestmem.Host{HugePages: 64, HugeFree: 32, ShmemTHP: "never"}
	thp := guestmem.Host{ShmemTHP: "advise", THP: true}
	both := guestmem.Host{HugePages: 64, HugeFree: 8, ShmemTHP: "advise", THP: true}
	for _, c := range []struct {
		want guestmem.Backing
		size uint64
		host guestmem.Host
		got  guestmem.Backing
		err  string
	}{
		{guestmem.BackingAuto, 64 * mib, none, guestmem.Backing4K, ""},
		{guestmem.BackingAuto, 64 * mib, huge, guestmem.BackingHugeTLB, ""},
		{guestmem.BackingAuto, 66 * mib, huge, guestmem.Backing4K, ""},
		{guestmem.BackingAuto, 64 * mib, thp, guestmem.BackingTHP, ""},
		{guestmem.BackingAuto, 64 * mib, both, guestmem.BackingTHP, ""},
		{guestmem.BackingAuto, 16 * mib, both, guestmem.BackingHugeTLB, ""},
		{guestmem.Backing4K, 16 * mib, both, guestmem.Backing4K, ""},
		{guestmem.BackingHugeTLB, 64 * mib, huge, guestmem.BackingHugeTLB, ""},
		{guestmem.BackingHugeTLB, 66 * mib, huge, "", "needs 33 2 MiB huge pages for 66 MiB; 32 of the 64 reserved are free (raise /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages by 1"},
		{guestmem.BackingHugeTLB, 2 * mib, none, "", "0 of the 0 reserved are free"},
		{guestmem.BackingTHP, 2 * mib, none, "", "shmem_enabled is never; set it to advise"},
		{guestmem.BackingTHP, 2 * mib, thp, guestmem.BackingTHP, ""},
	} {
		got, why, err := guestmem.Choose(c.want, c.size, c.host)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Choose(%s, %d MiB, %+v) = %s, %v; want an error with %q", c.want, c.size>>20, c.host, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.got || why == "" {
			t.Errorf("Choose(%s, %d MiB, %+v) = %s (%s), %v; want %s", c.want, c.size>>20, c.host, got, why, err, c.got)
		}
	}
	if _, err := guestmem.ParseBacking("huge"); err == nil {
		t.Error("ParseBacking(huge) took an unknown value")
	}
	if b, err := guestmem.ParseBacking(" HugeTLB "); err != nil || b != guestmem.BackingHugeTLB {
		t.Errorf("ParseBacking(HugeTLB) = %s, %v", b, err)
	}
}

// pmdMapped reads, from /proc/self/smaps, the kB of the mapping at addr
// that field of smaps counts (ShmemPmdMapped: shmem mapped by 2 MiB
// pages; Shared_Hugetlb and Private_Hugetlb: hugetlbfs pages).
func pmdMapped(t *testing.T, mem []byte, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&mem[0])))
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, start) {
			in = true
			continue
		}
		if in && strings.HasPrefix(l, field+":") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, field+":")), "%d", &kb)
			return kb
		}
	}
	t.Fatalf("no %s for the mapping at %s in smaps", field, start)
	return 0
}

// exercise writes some pages through WriteAt and the mapping, zeroes a
// page, and checks what ReadAt and DataRanges say.
func exercise(t *testing.T, r *guestmem.RAM) {
	t.Helper()
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, guestmem.PageSize) }
	// Page 1 and page 513 (the second 2 MiB page) by WriteAt, page 2 by
	// the mapping; the third and fourth 2 MiB pages are never touched.
	for _, w := range []struct {
		page uint64
		b    byte
	}{{1, 0x11}, {513, 0x22}} {
		if n, err := r.WriteAt(page(w.b), int64(w.page*guestmem.PageSize)); err != nil || n != guestmem.PageSize {
			t.Fatalf("WriteAt page %d = %d, %v", w.page, n, err)
		}
	}
	copy(r.Bytes()[2*guestmem.PageSize:], page(0x33))
	if err := r.ZeroRange(513*guestmem.PageSize, guestmem.PageSize); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4*guestmem.HugePageSize)
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(got))
	copy(want[guestmem.PageSize:], page(0x11))
	copy(want[2*guestmem.PageSize:], page(0x33))
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: ReadAt does not read what was written (page 513 zeroed)", r.Backing())
	}
	if _, err := r.WriteAt(page(1), int64(r.Size())); err == nil {
		t.Fatal("WriteAt past the end took the write")
	}
	rs, err := r.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	var data uint64
	for _, x := range rs {
		data += x.Len
		if x.Off >= 2*guestmem.HugePageSize {
			t.Errorf("%s: DataRanges %v names memory never touched", r.Backing(), rs)
		}
	}
	if len(rs) == 0 || rs[0].Off > guestmem.PageSize || data < 2*guestmem.PageSize {
		t.Errorf("%s: DataRanges %v miss the pages written", r.Backing(), rs)
	}
}

func TestHugeTLBRAM(t *testing.T) {
	hosttest.ReserveHugePages(t, 8)
	h, err := guestmem.ReadHost()
	if err != nil {
		t.Fatal(err)
	}
	if h.HugeFree < 8 || h.HugePages < 8 {
		t.Fatalf("ReadHost = %+v after reserving 8 huge pages", h)
	}
	if _, err := guestmem.NewBackedRAM("odd", guestmem.HugePageSize+guestmem.PageSize, guestmem.BackingHugeTLB); err == nil {
		t.Fatal("hugetlb memory of 2 MiB + 4 KiB was made")
	}
	r, err := guestmem.NewBackedRAM("hugetlb", 4*guestmem.HugePageSize, guestmem.BackingHugeTLB)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The mapping reserves the guest's pages: the free count drops by 4
	// before anything is written.
	if after, err := guestmem.ReadHost(); err != nil || after.HugeFree != h.HugeFree-4 {
		t.Fatalf("free huge pages %d before, %+v (%v) after mapping 4: the guest's pages are not reserved", h.HugeFree, after, err)
	}
	exercise(t, r)
	if kb := pmdMapped(t, r.Bytes(), "Shared_Hugetlb") + pmdMapped(t, r.Bytes(), "Private_Hugetlb"); kb < 2048 {
		t.Errorf("Shared_Hugetlb + Private_Hugetlb is %d kB: the memory is not on huge pages", kb)
	}
	// More than is free is refused at once, saying how many are free.
	_, err = guestmem.NewBackedRAM("toobig", (h.HugeFree-4+1)*guestmem.HugePageSize, guestmem.BackingHugeTLB)
	if !errors.Is(err, guestmem.ErrHugePages) || !strings.Contains(err.Error(), "nr_hugepages") {
		t.Fatalf("hugetlb memory beyond the free pool: %v; want ErrHugePages saying what to raise", err)
	}
}

func TestTHPRAM(t *testing.T) {
	hosttest.ShmemTHP(t, "advise")
	h, err := guestmem.ReadHost()
	if err != nil || !h.THP || h.ShmemTHP != "advise" {
		t.Fatalf("ReadHost = %+v, %v with shmem_enabled advise", h, err)
	}
	r, err := guestmem.NewBackedRAM("thp", 4*guestmem.HugePageSize, guestmem.BackingTHP)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exercise(t, r)
	if kb := pmdMapped(t, r.Bytes(), "ShmemPmdMapped"); kb < 2048 {
		t.Errorf("ShmemPmdMapped is %d kB: the memory is not on transparent huge pages", kb)
	}
}

func Test4KRAMBacked(t *testing.T) {
	r, err := guestmem.NewBackedRAM("4k", 4*guestmem.HugePageSize, guestmem.Backing4K)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exercise(t, r)
}

// ZeroRange on hugetlb clears exactly the range, whole 2 MiB pages
// punched and parts of pages cleared, and allocates no page that held no
// data.
func TestHugeTLBZeroRange(t *testing.T) {
	hosttest.ReserveHugePages(t, 4)
	const huge = guestmem.HugePageSize
	r, err := guestmem.NewBackedRAM("zero", 4*huge, guestmem.BackingHugeTLB)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := make([]byte, 4*huge)
	for i := range want[:3*huge] { // the fourth page is never touched
		want[i] = byte(i/guestmem.PageSize) | 1
	}
	if _, err := r.WriteAt(want[:3*huge], 0); err != nil {
		t.Fatal(err)
	}
	for _, z := range []struct{ off, n uint64 }{
		{guestmem.PageSize, guestmem.PageSize},                       // inside page 0
		{huge - guestmem.PageSize, 2 * guestmem.PageSize},            // across pages 0 and 1
		{huge + 8*guestmem.PageSize, huge + 4*guestmem.PageSize},     // the tail of 1, the head of 2
		{3*huge + guestmem.PageSize, guestmem.PageSize},              // the untouched page
		{2*huge + 16*guestmem.PageSize, huge - 16*guestmem.PageSize}, // the rest of page 2
	} {
		if err := r.ZeroRange(z.off, z.n); err != nil {
			t.Fatal(err)
		}
		clear(want[z.off : z.off+z.n])
	}
	got := make([]byte, len(want))
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("byte %d (page %d) is %#x after ZeroRange, want %#x", i, i/guestmem.PageSize, got[i], want[i])
			}
		}
	}
	// A range that covers whole pages frees them.
	if err := r.ZeroRange(0, 2*huge); err != nil {
		t.Fatal(err)
	}
	rs, err := r.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0] != (guestmem.Range{Off: 2 * huge, Len: huge}) {
		t.Fatalf("data ranges %v after zeroing pages 0 and 1, want page 2 only", rs)
	}
}
