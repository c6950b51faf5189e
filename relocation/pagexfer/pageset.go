package pagexfer

import "math/bits"

// pageSet is a set of page numbers kept as a two-level bitmap: chunks of
// chunkPages bits are allocated when a page in them is first added, so
// its memory follows what a stream actually wrote, not the memory size it
// claims.
type pageSet struct {
	pages  uint64
	chunks [][]uint64
}

const (
	chunkWords = 512
	chunkPages = chunkWords * 64
)

func newPageSet(pages uint64) *pageSet {
	return &pageSet{pages: pages, chunks: make([][]uint64, (pages+chunkPages-1)/chunkPages)}
}

// add adds pages [first, first+n); the caller has checked the range.
func (s *pageSet) add(first, n uint64) {
	for n > 0 {
		c := s.chunks[first/chunkPages]
		if c == nil {
			c = make([]uint64, chunkWords)
			s.chunks[first/chunkPages] = c
		}
		w := (first % chunkPages) / 64
		bit := first % 64
		k := min(n, 64-bit)
		c[w] |= mask(bit, k)
		first += k
		n -= k
	}
}

// mask returns k bits set from bit b (b+k <= 64).
func mask(b, k uint64) uint64 {
	if k == 64 {
		return ^uint64(0)
	}
	return ((1 << k) - 1) << b
}

// take removes the pages of [first, first+n) that are in the set and calls
// fn for each maximal stretch of them, in order. Its cost is bounded by
// n/64 word operations plus one per stretch.
func (s *pageSet) take(first, n uint64, fn func(first, n uint64) error) error {
	var runStart, runLen uint64
	flush := func() error {
		if runLen == 0 {
			return nil
		}
		err := fn(runStart, runLen)
		runLen = 0
		return err
	}
	end := first + n
	for p := first; p < end; {
		c := s.chunks[p/chunkPages]
		if c == nil {
			p = min(end, (p/chunkPages+1)*chunkPages)
			continue
		}
		w := (p % chunkPages) / 64
		bit := p % 64
		k := min(end-p, 64-bit)
		m := c[w] & mask(bit, k)
		if m == 0 {
			p += k
			continue
		}
		c[w] &^= m
		for m != 0 {
			b := uint64(bits.TrailingZeros64(m))
			l := uint64(bits.TrailingZeros64(^(m >> b))) // 64 when every bit from b up is set
			pg := p - bit + b
			if runLen > 0 && runStart+runLen == pg {
				runLen += l
			} else {
				if err := flush(); err != nil {
					return err
				}
				runStart, runLen = pg, l
			}
			if b+l >= 64 {
				break
			}
			m &^= mask(b, l)
		}
		p += k
	}
	return flush()
}

// bitmap helpers for the sender's flat dirty bitmaps (bit i of word i/64 is
// page i, the layout Source.DirtyLog fills in).

func bitmapWords(pages uint64) int { return int((pages + 63) / 64) }

// setRange sets bits [first, first+n).
func setRange(b []uint64, first, n uint64) {
	for n > 0 {
		bit := first % 64
		k := min(n, 64-bit)
		b[first/64] |= mask(bit, k)
		first += k
		n -= k
	}
}

func countBits(b []uint64) uint64 {
	var n int
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}
