package pagexfer

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression selects how Send compresses page batches.
type Compression int

const (
	// CompressNone sends every batch as it is (the default).
	CompressNone Compression = iota
	// CompressS2 compresses every batch with s2 (fast, modest ratio).
	CompressS2
	// CompressZstd compresses every batch with zstd at its fastest level
	// (slower than s2, better ratio).
	CompressZstd
	// CompressAuto chooses per batch between none, s2 and zstd from the
	// ratio and speed measured on the guest's own pages and the measured
	// write rate of the link (see compressor.choose).
	CompressAuto
)

func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressS2:
		return "s2"
	case CompressZstd:
		return "zstd"
	case CompressAuto:
		return "auto"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression parses "", "none", "s2", "zstd" or "auto".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return CompressNone, nil
	case "s2":
		return CompressS2, nil
	case "zstd":
		return CompressZstd, nil
	case "auto":
		return CompressAuto, nil
	}
	return CompressNone, fmt.Errorf("compression %q: want none, s2, zstd or auto", s)
}

// CompressionStats counts what compression did to the page batches.
type CompressionStats struct {
	Batches    uint64 // batch records sent
	Compressed uint64 // of them, sent compressed
	RawBytes   uint64 // bytes of all batch records before compression
	WireBytes  uint64 // bytes of all batch records as sent
}

// Saved returns the bytes compression kept off the wire.
func (c CompressionStats) Saved() uint64 {
	if c.WireBytes >= c.RawBytes {
		return 0
	}
	return c.RawBytes - c.WireBytes
}

func (c *CompressionStats) add(o CompressionStats) {
	c.Batches += o.Batches
	c.Compressed += o.Compressed
	c.RawBytes += o.RawBytes
	c.WireBytes += o.WireBytes
}

// A batch is sent compressed only when it shrinks below payNum/payDen of
// its size: a smaller gain does not pay for the receiver's decompression.
const (
	payNum = 7
	payDen = 8
)

// Auto mode: while the model says "do not compress", every probeEvery-th
// batch is compressed anyway (alternating codecs) to keep the measurements
// of the guest's current data fresh; a codec must beat sending raw by
// autoMargin to be chosen.
const (
	probeEvery = 16
	autoMargin = 0.9
	ewmaWeight = 0.25
)

// compressor compresses the batches of one stream; it runs on that
// stream's writer goroutine.
type compressor struct {
	mode Compression
	zenc *zstd.Encoder
	dst  []byte

	// Auto mode measurements (EWMA): per codec (index codec-1) the
	// compressed/raw ratio and the compression speed in raw bytes per
	// second; the link's write rate in bytes per second.
	ratio [2]float64
	speed [2]float64
	wire  float64
	skip  int  // batches since the last probe
	probe byte // codec to probe next
}

func newCompressor(mode Compression) *compressor {
	return &compressor{mode: mode, probe: codecS2}
}

// wrote records that n bytes took d to write (rate limit waits and
// back-pressure included): the link as this stream sees it.
func (c *compressor) wrote(n int, d time.Duration) {
	if c.mode != CompressAuto || n < 64<<10 || d <= 0 {
		return
	}
	c.wire = ewma(c.wire, float64(n)/d.Seconds())
}

func ewma(old, v float64) float64 {
	if old == 0 {
		return v
	}
	return old + ewmaWeight*(v-old)
}

// choose returns the codec to try on the next batch (0: none).
func (c *compressor) choose() byte {
	switch c.mode {
	case CompressS2:
		return codecS2
	case CompressZstd:
		return codecZstd
	case CompressAuto:
	default:
		return 0
	}
	// Unknown figures are measured first.
	for _, k := range []byte{codecS2, codecZstd} {
		if c.speed[k-1] == 0 {
			return k
		}
	}
	if c.wire == 0 {
		return codecS2
	}
	// Time per raw byte: writing it raw, or compressing it and writing
	// the smaller result (one goroutine does both, one after the other).
	best, bestT := byte(0), 1/c.wire*autoMargin
	for _, k := range []byte{codecS2, codecZstd} {
		if t := 1/c.speed[k-1] + c.ratio[k-1]/c.wire; t < bestT {
			best, bestT = k, t
		}
	}
	if best != 0 {
		c.skip = 0
		return best
	}
	if c.skip++; c.skip >= probeEvery {
		c.skip = 0
		k := c.probe
		c.probe = codecS2 + codecZstd - k
		return k
	}
	return 0
}

// compress returns the compressed batch record for rec (a batch record,
// frame included), or nil when it should go as it is.
func (c *compressor) compress(rec []byte) ([]byte, error) {
	codec := c.choose()
	if codec == 0 {
		return nil, nil
	}
	body := rec[frameSize:]
	const head = frameSize + cbatchHead
	if need := head + s2.MaxEncodedLen(len(body)); cap(c.dst) < need {
		c.dst = make([]byte, need)
	}
	t0 := time.Now()
	var out []byte
	switch codec {
	case codecS2:
		out = s2.Encode(c.dst[head:cap(c.dst)], body)
	case codecZstd:
		if c.zenc == nil {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<20))
			if err != nil {
				return nil, fmt.Errorf("zstd encoder: %w", err)
			}
			c.zenc = enc
		}
		out = c.zenc.EncodeAll(body, c.dst[head:head])
	}
	if c.mode == CompressAuto {
		if d := time.Since(t0); d > 0 {
			c.speed[codec-1] = ewma(c.speed[codec-1], float64(len(body))/d.Seconds())
		}
		c.ratio[codec-1] = ewma(c.ratio[codec-1], float64(len(out))/float64(len(body)))
	}
	if len(out)*payDen >= len(body)*payNum || len(out)+cbatchHead > maxBody(recCBatch) {
		return nil, nil
	}
	if &out[0] != &c.dst[head] { // the encoder needed more room than it was given
		copy(c.dst[head:], out)
	}
	r := c.dst[:head+len(out)]
	r[0] = recCBatch
	binary.LittleEndian.PutUint32(r[1:], uint32(cbatchHead+len(out)))
	r[frameSize] = codec
	binary.LittleEndian.PutUint32(r[frameSize+1:], uint32(len(body)))
	return r, nil
}

// decompressor expands compressed batch records on the receiving side.
type decompressor struct {
	zdec *zstd.Decoder
	buf  []byte
}

// expand checks and decompresses the body of a compressed batch record and
// returns the batch body it holds (valid until the next call).
func (d *decompressor) expand(body []byte) ([]byte, error) {
	codec := body[0]
	n := int(binary.LittleEndian.Uint32(body[1:]))
	src := body[cbatchHead:]
	if n < minBody(recBatch) || n > maxBatchBody {
		return nil, fmt.Errorf("%w: compressed batch: raw length %d (%d..%d)", ErrFormat, n, minBody(recBatch), maxBatchBody)
	}
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	switch codec {
	case codecS2:
		got, err := s2.DecodedLen(src)
		if err != nil {
			return nil, fmt.Errorf("%w: compressed batch: s2: %v", ErrFormat, err)
		}
		if got != n {
			return nil, fmt.Errorf("%w: compressed batch: s2 data holds %d bytes, the record says %d", ErrFormat, got, n)
		}
		out, err := s2.Decode(d.buf[:n], src)
		if err != nil {
			return nil, fmt.Errorf("%w: compressed batch: s2: %v", ErrFormat, err)
		}
		return out, nil
	case codecZstd:
		if d.zdec == nil {
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBatchBody),
				zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxWindow(8<<20))
			if err != nil {
				return nil, fmt.Errorf("zstd decoder: %w", err)
			}
			d.zdec = dec
		}
		out, err := d.zdec.DecodeAll(src, d.buf[:0:n])
		if err != nil {
			return nil, fmt.Errorf("%w: compressed batch: zstd: %v", ErrFormat, err)
		}
		if len(out) != n {
			return nil, fmt.Errorf("%w: compressed batch: zstd data holds %d bytes, the record says %d", ErrFormat, len(out), n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: compressed batch: unknown codec %d", ErrFormat, codec)
}

func (d *decompressor) close() {
	if d.zdec != nil {
		d.zdec.Close()
	}
}
