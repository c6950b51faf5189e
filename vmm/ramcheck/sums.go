package ramcheck

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/zeebo/xxh3"
)

// sum is the checksum of one chunk: XXH3-128, high half first. XXH3 was
// the fastest candidate measured (BenchmarkChecksum: about memory
// bandwidth on one core, ahead of XXH64, CRC-32C and CRC-64), and with 128
// bits a differing chunk goes unnoticed with a chance of 2^-128.
// hash/maphash cannot serve: its seed differs in every process.
type sum [sumSize]byte

func checksum(b []byte) sum { return xxh3.Hash128(b).Bytes() }

// geometry is how the RAM divides into chunks.
type geometry struct {
	size      int
	chunkSize int
	chunks    int
}

func newGeometry(size, chunkSize int) geometry {
	return geometry{size: size, chunkSize: chunkSize, chunks: (size + chunkSize - 1) / chunkSize}
}

// bounds is chunk i's byte range; the last chunk may be shorter.
func (g geometry) bounds(i int) (lo, hi int) {
	lo = i * g.chunkSize
	return lo, min(lo+g.chunkSize, g.size)
}

// hashBatch is how many chunks a worker takes at a time: large enough that
// the shared counter costs nothing, small enough to share the tail.
const hashBatch = 16

// checksums hashes every chunk of ram with workers goroutines. It returns
// only once all of them have stopped, so ram may be unmapped afterwards.
func checksums(ctx context.Context, ram []byte, g geometry, workers int) ([]sum, error) {
	sums := make([]sum, g.chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, (g.chunks+hashBatch-1)/hashBatch); w++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				first := int(next.Add(hashBatch)) - hashBatch
				if first >= g.chunks {
					return
				}
				for i := first; i < min(first+hashBatch, g.chunks); i++ {
					lo, hi := g.bounds(i)
					sums[i] = checksum(ram[lo:hi])
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return sums, nil
}

// pendingSums is a checksums run in the background, so that hashing
// overlaps with waiting for the peer.
type pendingSums struct {
	cancel context.CancelFunc
	done   chan struct{}
	sums   []sum
	err    error
}

func startChecksums(ctx context.Context, ram []byte, g geometry, workers int) *pendingSums {
	ctx, cancel := context.WithCancel(ctx)
	p := &pendingSums{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.sums, p.err = checksums(ctx, ram, g, workers)
	}()
	return p
}

// wait returns the checksums once they are all computed.
func (p *pendingSums) wait() ([]sum, error) {
	<-p.done
	return p.sums, p.err
}

// stop cancels the hashing and waits until it no longer reads the RAM.
func (p *pendingSums) stop() {
	p.cancel()
	<-p.done
}

// differing lists the chunks whose checksums differ, in increasing order.
func differing(a, b []sum) []int {
	var d []int
	for i := range a {
		if a[i] != b[i] {
			d = append(d, i)
		}
	}
	return d
}

// mend writes into dst the pages of src that differ from it and returns
// how many it wrote.
func mend(dst, src []byte) int {
	n := 0
	for off := 0; off < len(src); off += PageSize {
		end := min(off+PageSize, len(src))
		if !bytes.Equal(dst[off:end], src[off:end]) {
			copy(dst[off:end], src[off:end])
			n++
		}
	}
	return n
}
