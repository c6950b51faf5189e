package guestmem

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRAMReadAtMixed reads ranges that mix pages written through the
// mapping, pages written with pwrite (in the memfd, not mapped here) and
// holes, at unaligned offsets and across the mincore chunk: the bytes must
// be what was written, and no hole may be allocated by the read.
func TestRAMReadAtMixed(t *testing.T) {
	const pages = 3*readChunk + 17
	r, err := NewRAM("readat", pages*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := make([]byte, pages*PageSize)
	rng := rand.New(rand.NewPCG(1, 2))
	mem := r.Bytes()
	data := 0
	for p := 0; p < pages; p++ {
		page := want[p*PageSize : (p+1)*PageSize]
		switch rng.IntN(3) {
		case 0: // hole
			continue
		case 1: // through the mapping
			for i := range page {
				page[i] = byte(rng.Uint32())
			}
			copy(mem[p*PageSize:], page)
		case 2: // pwrite: in the page cache, not mapped here
			for i := range page {
				page[i] = byte(rng.Uint32())
			}
			if _, err := unix.Pwrite(r.Fd(), page, int64(p*PageSize)); err != nil {
				t.Fatal(err)
			}
		}
		data++
	}
	check := func(off, n int) {
		t.Helper()
		got := make([]byte, n)
		for i := range got {
			got[i] = 0xa5 // holes must be read as zeros, not left alone
		}
		k, err := r.ReadAt(got, int64(off))
		if err != nil || k != n {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, k, err)
		}
		if !bytes.Equal(got, want[off:off+n]) {
			t.Fatalf("ReadAt(%d bytes at %d) read other bytes than were written", n, off)
		}
	}
	check(0, len(want))
	for i := 0; i < 200; i++ {
		off := rng.IntN(len(want))
		check(off, rng.IntN(len(want)-off+1))
	}
	check(readChunk*PageSize-5, 2*readChunk*PageSize+10)
	if n, err := r.DataPages(); err != nil || n != uint64(data) {
		t.Fatalf("after reading, %d data pages (%v); %d were written: a read allocated holes", n, err, data)
	}
	if n, err := r.ReadAt(make([]byte, 2*PageSize), int64(len(want)-PageSize)); err == nil || n != PageSize {
		t.Fatalf("read across the end: %d bytes, %v; want %d and an error", n, err, PageSize)
	}
}
