package workload

import (
	"encoding/binary"
	"fmt"
)

// Page format. A written workload page holds, as little-endian uint64
// words:
//
//	word 0       the RAM page number
//	word 1       the page's generation (1 for the first write, +1 per rewrite)
//	words 2..511 splitmix64 stream seeded by PageKey(seed, page, generation):
//	             word i = Mix64(key + i*Golden)
//
// so every byte depends on (page, generation, seed): a stale copy, a page
// copied to the wrong place, a zero page or a flipped bit all differ. The
// guest (vmm/kvmengine/src/workload.c) implements the same functions.
const (
	PageWords = PageSize / 8
	Golden    = 0x9e3779b97f4a7c15
)

// Mix64 is the splitmix64 finaliser.
func Mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// PageKey derives the fill key of a page generation.
func PageKey(seed, page, gen uint64) uint64 {
	return Mix64(Mix64(page^(gen*Golden)) ^ seed)
}

// PageWord returns the expected value of word i of page at generation gen.
func PageWord(seed, page, gen uint64, i int) uint64 {
	switch i {
	case 0:
		return page
	case 1:
		return gen
	}
	return Mix64(PageKey(seed, page, gen) + uint64(i)*Golden)
}

// FillPage writes generation gen of page into dst (PageSize bytes).
func FillPage(dst []byte, seed, page, gen uint64) {
	dst = dst[:PageSize]
	key := PageKey(seed, page, gen)
	for i := 2; i < PageWords; i++ {
		binary.LittleEndian.PutUint64(dst[8*i:], Mix64(key+uint64(i)*Golden))
	}
	binary.LittleEndian.PutUint64(dst[8:], gen)
	binary.LittleEndian.PutUint64(dst[0:], page)
}

// Mismatch describes the first word of a page that differs from what the
// workload wrote.
type Mismatch struct {
	Page uint64 // RAM page number
	Gen  uint64 // expected generation (from the guest's table)
	Word int    // first differing word
	Want uint64
	Got  uint64
}

func (m Mismatch) String() string {
	return fmt.Sprintf("page=%d gen=%d word=%d want=%#x got=%#x", m.Page, m.Gen, m.Word, m.Want, m.Got)
}

// CheckPage compares src (PageSize bytes) with generation gen of page.
// gen 0 means never written: the page must be all zero.
func CheckPage(src []byte, seed, page, gen uint64) (Mismatch, bool) {
	src = src[:PageSize]
	if gen == 0 {
		for i := 0; i < PageWords; i++ {
			if w := binary.LittleEndian.Uint64(src[8*i:]); w != 0 {
				return Mismatch{Page: page, Gen: 0, Word: i, Want: 0, Got: w}, false
			}
		}
		return Mismatch{}, true
	}
	if w := binary.LittleEndian.Uint64(src); w != page {
		return Mismatch{Page: page, Gen: gen, Word: 0, Want: page, Got: w}, false
	}
	if w := binary.LittleEndian.Uint64(src[8:]); w != gen {
		return Mismatch{Page: page, Gen: gen, Word: 1, Want: gen, Got: w}, false
	}
	key := PageKey(seed, page, gen)
	var diff uint64
	for i := 2; i < PageWords; i++ {
		diff |= binary.LittleEndian.Uint64(src[8*i:]) ^ Mix64(key+uint64(i)*Golden)
	}
	if diff == 0 {
		return Mismatch{}, true
	}
	for i := 2; i < PageWords; i++ {
		want := Mix64(key + uint64(i)*Golden)
		if got := binary.LittleEndian.Uint64(src[8*i:]); got != want {
			return Mismatch{Page: page, Gen: gen, Word: i, Want: want, Got: got}, false
		}
	}
	return Mismatch{}, true // unreachable: diff != 0 implies a differing word
}
