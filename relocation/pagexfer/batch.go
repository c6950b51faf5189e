package pagexfer

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// A batch body is
//
//	runs uvarint                        number of runs (>= 1)
//	runs x (gap uvarint, count uvarint, kind u8)
//	data                                the pages of every raw run, in order
//
// Run i covers pages [first, first+count) with first = end of run i-1 (0
// for the first run) + gap, so page numbers strictly increase within a
// batch and a run of consecutive pages costs a few bytes however long it
// is. Raw pages of consecutive runs are contiguous in the data area, so a
// receiver writes each raw run with one WriteAt.

// run is one run of a batch.
type run struct {
	first, count uint64
	kind         byte
}

// Sender batch shape: at most sendBatchData bytes of page data and
// sendBatchPages pages (data and zero) per batch, so the descriptor area
// never exceeds batchReserve.
const (
	sendBatchData  = 1 << 20
	sendBatchPages = 1024
	batchReserve   = frameSize + binary.MaxVarintLen64 + sendBatchPages*(2*binary.MaxVarintLen64+1)
)

// readPages is the most pages Send reads from the source at once: 256 KiB,
// well within a core's L2 cache, so the zero check and the checksum that
// follow each read find the pages there.
const readPages = 64

var zeroPage [MaxPageSize]byte

// isZero reports whether p (at most MaxPageSize bytes) is all zero. The
// comparison runs in the runtime's vectorised memequal.
func isZero(p []byte) bool { return bytes.Equal(p, zeroPage[:len(p)]) }

// batchBuilder assembles one batch record in place: pages are read
// straight into the data area of buf, zero pages are dropped from it, and
// the frame header and run descriptors are written right before the data
// when the batch is finished, so the record is one contiguous slice of buf
// with no extra copy of the data. The data is checksummed as it is added,
// while the pages just read are in the cache, and finish combines that
// with the checksum of frame and descriptors into the record's CRC-32C.
type batchBuilder struct {
	ps      int
	buf     []byte // batchReserve + sendBatchData bytes
	dataLen int    // bytes of data at buf[batchReserve:]
	dataCRC uint32 // CRC-32C of those bytes
	sum     uint32 // CRC-32C of the record, set by finish
	runs    []run
	pages   int // pages in runs
	data    uint64
	zero    uint64
	desc    []byte
}

func newBatchBuilder(ps int, buf []byte) *batchBuilder {
	return &batchBuilder{ps: ps, buf: buf, runs: make([]run, 0, sendBatchPages), desc: make([]byte, 0, batchReserve)}
}

// reset starts a new batch in buf.
func (b *batchBuilder) reset(buf []byte) {
	b.buf, b.dataLen, b.dataCRC, b.runs, b.pages, b.data, b.zero = buf, 0, 0, b.runs[:0], 0, 0, 0
}

func (b *batchBuilder) empty() bool { return b.pages == 0 }

// room returns how many more pages can be read into the batch.
func (b *batchBuilder) room() int {
	return min((sendBatchData-b.dataLen)/b.ps, sendBatchPages-b.pages)
}

// space returns the buffer to read the next n pages into.
func (b *batchBuilder) space(n int) []byte {
	off := batchReserve + b.dataLen
	return b.buf[off : off+n*b.ps]
}

func (b *batchBuilder) add(page uint64, kind byte) {
	if n := len(b.runs); n > 0 {
		r := &b.runs[n-1]
		if r.kind == kind && r.first+r.count == page {
			r.count++
			b.pages++
			return
		}
	}
	b.runs = append(b.runs, run{first: page, count: 1, kind: kind})
	b.pages++
}

// addRead accounts for n pages starting at page that were just read into
// space(n): zero pages become zero runs and are squeezed out of the data.
func (b *batchBuilder) addRead(page uint64, n int) {
	ps := b.ps
	src := batchReserve + b.dataLen
	dst := src
	for i := 0; i < n; i++ {
		p := b.buf[src+i*ps : src+(i+1)*ps]
		if isZero(p) {
			b.add(page+uint64(i), kindZero)
			b.zero++
			continue
		}
		if dst != src+i*ps {
			copy(b.buf[dst:dst+ps], p)
		}
		dst += ps
		b.add(page+uint64(i), kindRaw)
		b.data++
	}
	start := batchReserve + b.dataLen
	b.dataCRC = crc(b.dataCRC, b.buf[start:dst])
	b.dataLen = dst - batchReserve
}

// finish writes frame header and descriptors in front of the data and
// returns the whole record; b.sum is then its CRC-32C.
func (b *batchBuilder) finish() []byte {
	d := binary.AppendUvarint(b.desc[:0], uint64(len(b.runs)))
	end := uint64(0)
	for _, r := range b.runs {
		d = binary.AppendUvarint(d, r.first-end)
		d = binary.AppendUvarint(d, r.count)
		d = append(d, r.kind)
		end = r.first + r.count
	}
	b.desc = d
	start := batchReserve - len(d) - frameSize
	b.buf[start] = recBatch
	binary.LittleEndian.PutUint32(b.buf[start+1:], uint32(len(d)+b.dataLen))
	copy(b.buf[start+frameSize:], d)
	b.sum = crcCombine(crc(0, b.buf[start:batchReserve]), b.dataCRC, uint64(b.dataLen))
	return b.buf[start : batchReserve+b.dataLen]
}

// stripes says which pages a stream of a parallel image may carry: those
// of the stripes k with k % count == id (count <= 1: every page).
type stripes struct{ id, count uint64 }

// parseStreamBatch validates a batch body of stream sp.id of sp.count
// against a memory of memPages pages of ps bytes: every run must lie within
// one of that stream's stripes. When the batch is valid as a whole it calls
// fn for each run with the run's data (nil for zero runs); nothing is
// called for an invalid batch. runs is scratch space and is returned for
// reuse.
func parseStreamBatch(body []byte, ps int, memPages uint64, sp stripes, runs []run, fn func(r run, data []byte) error) ([]run, uint64, uint64, error) {
	runs = runs[:0]
	n, k := binary.Uvarint(body)
	if k <= 0 {
		return runs, 0, 0, fmt.Errorf("%w: batch: bad run count", ErrFormat)
	}
	p := body[k:]
	if n == 0 || n > MaxBatchPages {
		return runs, 0, 0, fmt.Errorf("%w: batch: %d runs (1..%d)", ErrFormat, n, MaxBatchPages)
	}
	var end, pages, data, zero uint64
	for i := uint64(0); i < n; i++ {
		gap, k1 := binary.Uvarint(p)
		if k1 <= 0 {
			return runs, 0, 0, fmt.Errorf("%w: batch: run %d: bad page gap", ErrFormat, i)
		}
		count, k2 := binary.Uvarint(p[k1:])
		if k2 <= 0 || len(p) < k1+k2+1 {
			return runs, 0, 0, fmt.Errorf("%w: batch: run %d: truncated descriptor", ErrFormat, i)
		}
		kind := p[k1+k2]
		p = p[k1+k2+1:]
		if count == 0 || count > MaxBatchPages-pages {
			return runs, 0, 0, fmt.Errorf("%w: batch: run %d: %d pages (batch limit %d)", ErrFormat, i, count, MaxBatchPages)
		}
		if gap >= memPages || end > memPages-gap || count > memPages-end-gap {
			return runs, 0, 0, fmt.Errorf("%w: batch: run %d: pages %d+%d+%d beyond memory of %d pages", ErrFormat, i, end, gap, count, memPages)
		}
		first := end + gap
		if sp.count > 1 {
			if k := first / StripePages; k != (first+count-1)/StripePages || k%sp.count != sp.id {
				return runs, 0, 0, fmt.Errorf("%w: batch: run %d: pages %d+%d are not within a stripe of stream %d of %d", ErrFormat, i, first, count, sp.id, sp.count)
			}
		}
		switch kind {
		case kindZero:
			zero += count
		case kindRaw:
			data += count
		default:
			return runs, 0, 0, fmt.Errorf("%w: batch: run %d: unknown page kind %d", ErrFormat, i, kind)
		}
		runs = append(runs, run{first: first, count: count, kind: kind})
		end = first + count
		pages += count
	}
	if uint64(len(p)) != data*uint64(ps) {
		return runs, 0, 0, fmt.Errorf("%w: batch: %d raw pages need %d data bytes, record has %d", ErrFormat, data, data*uint64(ps), len(p))
	}
	for _, r := range runs {
		var d []byte
		if r.kind == kindRaw {
			n := r.count * uint64(ps)
			d, p = p[:n], p[n:]
		}
		if err := fn(r, d); err != nil {
			return runs, data, zero, err
		}
	}
	return runs, data, zero, nil
}
