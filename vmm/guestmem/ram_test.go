package guestmem

import "testing"

func TestRAMSparse(t *testing.T) {
	r, err := NewRAM("sparse", 8<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.DataPages(); err != nil || n != 0 {
		t.Fatalf("fresh RAM has %d data pages, %v", n, err)
	}
	mem := r.Bytes()
	mem[5*PageSize] = 1
	mem[6*PageSize+7] = 1
	mem[(6<<30)+3] = 1
	rs, err := r.DataRanges()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0] != (Range{5 * PageSize, 2 * PageSize}) || rs[1] != (Range{6 << 30, PageSize}) {
		t.Fatalf("data ranges %+v", rs)
	}
	buf := make([]byte, PageSize)
	if _, err := r.ReadAt(buf, 7<<30); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.DataPages(); n != 3 {
		t.Fatalf("ReadAt of a hole allocated it: %d data pages", n)
	}
	if _, err := r.ReadAt(buf, 8<<30); err == nil {
		t.Fatal("read past the end succeeded")
	}
	// OpenRAM maps the same memory through another fd.
	fd, err := dupFd(r.Fd())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenRAM(fd, 8<<30, "again")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.Bytes()[6*PageSize+7] != 1 {
		t.Fatal("OpenRAM does not share the memory")
	}
	if _, err := OpenRAM(fd, 4<<30, "wrong"); err == nil {
		t.Fatal("OpenRAM accepted a wrong size")
	}
}

func TestDirtyBitmap(t *testing.T) {
	d := NewDirtyBitmap(130)
	for _, p := range []uint64{0, 63, 64, 129, 129, 500} {
		d.Mark(p)
	}
	dst := make([]uint64, BitmapWords(130))
	if err := d.GetAndClear(dst); err != nil {
		t.Fatal(err)
	}
	if got := BitPages(dst); len(got) != 4 || got[0] != 0 || got[1] != 63 || got[2] != 64 || got[3] != 129 {
		t.Fatalf("pages %v", got)
	}
	d.GetAndClear(dst)
	if CountBits(dst) != 0 {
		t.Fatal("not cleared")
	}
	d.MarkAll()
	d.GetAndClear(dst)
	if CountBits(dst) != 130 {
		t.Fatalf("MarkAll set %d bits", CountBits(dst))
	}
	if err := d.GetAndClear(make([]uint64, 1)); err == nil {
		t.Fatal("short destination accepted")
	}
}
