package workload

import (
	"encoding/binary"
	"testing"
)

// TestPageFormatGolden pins the page format: the KVM guest (src/workload.c)
// computes the same values, and saved memory images depend on them.
func TestPageFormatGolden(t *testing.T) {
	if got := Mix64(0); got != 0 {
		t.Fatalf("Mix64(0) = %#x", got)
	}
	if got := Mix64(1); got != 0x5692161d100b05e5 {
		t.Fatalf("Mix64(1) = %#x", got)
	}
	page := make([]byte, PageSize)
	FillPage(page, 1, 1024, 3)
	le := binary.LittleEndian
	if le.Uint64(page) != 1024 || le.Uint64(page[8:]) != 3 {
		t.Fatalf("header %d %d", le.Uint64(page), le.Uint64(page[8:]))
	}
	for i := 2; i < PageWords; i++ {
		if got, want := le.Uint64(page[8*i:]), PageWord(1, 1024, 3, i); got != want {
			t.Fatalf("word %d = %#x, PageWord says %#x", i, got, want)
		}
	}
	if got := le.Uint64(page[16:]); got != 0xd60961294a54d37c {
		t.Fatalf("word 2 of page 1024 gen 3 seed 1 = %#x (page format changed?)", got)
	}
}

func TestCheckPage(t *testing.T) {
	page := make([]byte, PageSize)
	if _, ok := CheckPage(page, 5, 100, 0); !ok {
		t.Fatal("zero page with generation 0 rejected")
	}
	if m, ok := CheckPage(page, 5, 100, 1); ok || m.Word != 0 {
		t.Fatalf("zero page with generation 1: %+v %v", m, ok)
	}
	FillPage(page, 5, 100, 7)
	if _, ok := CheckPage(page, 5, 100, 7); !ok {
		t.Fatal("freshly filled page rejected")
	}
	for _, c := range []struct {
		seed, page, gen uint64
		word            int
	}{{5, 100, 6, 1}, {5, 101, 7, 0}, {6, 100, 7, 2}, {5, 100, 0, 0}} {
		if m, ok := CheckPage(page, c.seed, c.page, c.gen); ok || m.Word != c.word {
			t.Errorf("checked as seed %d page %d gen %d: %+v %v, want mismatch at word %d", c.seed, c.page, c.gen, m, ok, c.word)
		}
	}
	for _, off := range []int{0, 9, 16, 2000, PageSize - 1} {
		FillPage(page, 5, 100, 7)
		page[off] ^= 0x40
		m, ok := CheckPage(page, 5, 100, 7)
		if ok || m.Word != off/8 || m.Want == m.Got {
			t.Errorf("flip at byte %d: %+v %v", off, m, ok)
		}
	}
}

func BenchmarkFillPage(b *testing.B) {
	page := make([]byte, PageSize)
	b.SetBytes(PageSize)
	for i := 0; b.Loop(); i++ {
		FillPage(page, 1, uint64(i), 1)
	}
}

func BenchmarkCheckPage(b *testing.B) {
	page := make([]byte, PageSize)
	FillPage(page, 1, 2, 3)
	b.SetBytes(PageSize)
	for b.Loop() {
		if _, ok := CheckPage(page, 1, 2, 3); !ok {
			b.Fatal("mismatch")
		}
	}
}
