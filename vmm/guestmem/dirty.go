package guestmem

import (
	"fmt"
	"math/bits"
	"sync/atomic"
)

// DirtyBitmap is a software dirty log: one bit per RAM page, set by the
// writer with an atomic OR, fetched and cleared word by word with an atomic
// swap, so no write is lost between a fetch and the next write. Its layout
// is the one engines hand out from Machine.DirtyLog: bit i of word i/64 is
// RAM page i.
type DirtyBitmap struct {
	pages uint64
	words []uint64
}

// NewDirtyBitmap returns an empty bitmap for pages pages.
func NewDirtyBitmap(pages uint64) *DirtyBitmap {
	return &DirtyBitmap{pages: pages, words: make([]uint64, BitmapWords(pages))}
}

// BitmapWords returns the number of uint64 words a dirty bitmap of pages pages takes.
func BitmapWords(pages uint64) int { return int((pages + 63) / 64) }

// Pages returns the number of pages covered.
func (d *DirtyBitmap) Pages() uint64 { return d.pages }

// Mark records a write to page.
func (d *DirtyBitmap) Mark(page uint64) {
	if page >= d.pages {
		return
	}
	w := &d.words[page/64]
	bit := uint64(1) << (page % 64)
	if atomic.LoadUint64(w)&bit == 0 {
		atomic.OrUint64(w, bit)
	}
}

// MarkAll sets every bit (the state at the start of a migration: everything
// must be sent once).
func (d *DirtyBitmap) MarkAll() {
	for i := range d.words {
		atomic.StoreUint64(&d.words[i], ^uint64(0))
	}
	if r := d.pages % 64; r != 0 {
		atomic.StoreUint64(&d.words[len(d.words)-1], (1<<r)-1)
	}
}

// GetAndClear copies the bitmap into dst and clears it.
func (d *DirtyBitmap) GetAndClear(dst []uint64) error {
	if len(dst) < len(d.words) {
		return fmt.Errorf("dirty bitmap: destination of %d words, need %d", len(dst), len(d.words))
	}
	for i := range d.words {
		if atomic.LoadUint64(&d.words[i]) == 0 {
			dst[i] = 0
			continue
		}
		dst[i] = atomic.SwapUint64(&d.words[i], 0)
	}
	return nil
}

// CountBits returns the number of set bits in a bitmap.
func CountBits(b []uint64) int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// BitPages lists the page numbers whose bits are set.
func BitPages(b []uint64) []uint64 {
	var out []uint64
	for i, w := range b {
		for ; w != 0; w &= w - 1 {
			out = append(out, uint64(i)*64+uint64(bits.TrailingZeros64(w)))
		}
	}
	return out
}
