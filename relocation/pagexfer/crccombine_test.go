package pagexfer

import (
	"math/rand/v2"
	"testing"
)

// TestCRCCombine: combining the CRCs of the parts of random data, split at
// random points, gives the CRC of the whole, as a running CRC does.
func TestCRCCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for iter := 0; iter < 300; iter++ {
		n := rng.IntN(len(data) + 1)
		if iter%3 == 0 {
			n = rng.IntN(100)
		}
		whole := data[:n]
		cut := 0
		if n > 0 {
			cut = rng.IntN(n + 1)
		}
		a, b := whole[:cut], whole[cut:]
		prev := crc(0, data[len(data)-17:]) // a running checksum before a
		want := crc(prev, whole)
		got := crcCombine(crc(prev, a), crc(0, b), uint64(len(b)))
		if got != want {
			t.Fatalf("%d bytes cut at %d: combined %#08x, want %#08x", n, cut, got, want)
		}
	}
}

func BenchmarkCRCCombine(b *testing.B) {
	var c uint32
	for b.Loop() {
		c = crcCombine(c, 0x12345678, 1<<20+12345)
	}
	_ = c
}

// TestBatchBuilderSum: the CRC the builder puts together from the pages
// as they are added is the CRC of the finished record, whatever the mix of
// zero and data pages and however the pages were added.
func TestBatchBuilderSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	bb := newBatchBuilder(PageSize, make([]byte, batchReserve+sendBatchData))
	for iter := 0; iter < 100; iter++ {
		bb.reset(bb.buf)
		page := uint64(rng.IntN(1 << 20))
		for bb.room() > 0 && rng.IntN(10) != 0 {
			n := min(1+rng.IntN(readPages), bb.room())
			sp := bb.space(n)
			for i := 0; i < n; i++ {
				pg := sp[i*PageSize : (i+1)*PageSize]
				clear(pg)
				if rng.IntN(3) != 0 {
					pg[rng.IntN(PageSize)] = byte(1 + rng.IntN(255))
				}
			}
			bb.addRead(page, n)
			page += uint64(n + rng.IntN(3))
		}
		if bb.empty() {
			continue
		}
		rec := bb.finish()
		if got, want := bb.sum, crc(0, rec); got != want {
			t.Fatalf("batch of %d data and %d zero pages: builder says CRC %#08x, record has %#08x", bb.data, bb.zero, got, want)
		}
	}
}
