package pagexfer

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// streamWriter encodes and writes the records of one stream on its own
// goroutine, so reading and encoding the next batch overlaps with
// compressing, checksumming and writing the previous one. It owns the
// stream's framing: round checksums and counts, the end record's totals and
// the choice to compress a batch, because they depend on the bytes
// actually sent. Batch buffers circulate through free; the sender blocks
// on free when the writer falls behind (that is the back-pressure). A rate
// limit, when set, is applied in chunks of at most the limiter's burst;
// the streams of one image share one limiter.
type streamWriter struct {
	ctx     context.Context // cancelled by the caller's context or by close(false)
	cancel  context.CancelFunc
	w       io.Writer
	lim     *rate.Limiter
	comp    *compressor // nil: batches go as they are
	jobs    chan writeJob
	free    chan []byte
	failed  chan struct{} // closed after the first error; err is set before
	err     error
	done    chan struct{}
	written atomic.Uint64

	// Owned by the goroutine; the sender reads them only after a flush.
	bytes      uint64 // stream bytes encoded so far
	roundCRC   uint32
	roundBytes uint64
	roundData  uint64
	roundZero  uint64
	totals     Totals
	small      []byte

	// Compression counters, read by progress reports while it runs.
	batches, compressed, rawBytes, wireBytes atomic.Uint64
}

// writeJob is one record to encode and write, or a flush.
type writeJob struct {
	// kind: 0 for bytes outside any round, written as they are (preamble
	// and header, state); recRoundStart, recBatch, recRoundEnd and recEnd
	// are framed by the writer.
	kind        byte
	rec         []byte     // kind 0: the bytes; recBatch: the whole record, frame included
	buf         []byte     // pool buffer to return once rec is written (nil for small records)
	round       uint32     // recRoundStart, recRoundEnd
	flags       uint32     // recRoundStart
	data, zero  uint64     // recBatch: its data and zero pages
	flush       chan error // answered when every earlier job is written
	isFlushOnly bool

	// recBatch: the CRC-32C of rec, when summed (the sender checksums
	// the pages as it reads them; the writer then need not read them).
	sum    uint32
	summed bool
}

// newLimiter returns the shared token bucket for a rate in bytes per
// second (nil: no cap).
func newLimiter(limit float64) *rate.Limiter {
	if limit <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(limit), limiterBurst(limit))
}

// newStreamWriter starts the writer with nbuf pool buffers of bufSize
// bytes. lim (may be nil) caps the rate; comp (may be nil) compresses
// batches.
func newStreamWriter(ctx context.Context, w io.Writer, lim *rate.Limiter, comp *compressor, nbuf, bufSize int) *streamWriter {
	ctx, cancel := context.WithCancel(ctx)
	s := &streamWriter{
		ctx:    ctx,
		cancel: cancel,
		w:      w,
		lim:    lim,
		comp:   comp,
		jobs:   make(chan writeJob, 2*nbuf+4),
		free:   make(chan []byte, nbuf),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	for i := 0; i < nbuf; i++ {
		s.free <- make([]byte, bufSize)
	}
	go s.run()
	return s
}

// limiterBurst picks the token bucket size for a rate: about 1/16 s of
// traffic, between one page and 1 MiB, so the cap holds over short windows
// and writes stay large.
func limiterBurst(limit float64) int {
	b := int(limit / 16)
	return max(PageSize, min(b, 1<<20))
}

func (s *streamWriter) run() {
	defer close(s.done)
	for j := range s.jobs {
		if !j.isFlushOnly && s.err == nil {
			rec, sum, err := s.encode(&j)
			if err == nil {
				err = s.write(rec, sum)
			}
			if err != nil {
				if e := s.ctx.Err(); e != nil {
					err = e
				}
				s.err = err
				close(s.failed)
			}
		}
		if j.buf != nil {
			s.free <- j.buf
		}
		if j.flush != nil {
			j.flush <- s.err
		}
	}
}

// encode frames a job's record and accounts for it in the round and the
// stream totals. sum says that write must add the record to the round
// checksum (a batch whose CRC is not known yet).
func (s *streamWriter) encode(j *writeJob) (rec []byte, sum bool, err error) {
	switch j.kind {
	case 0:
		rec = j.rec
	case recRoundStart:
		rec = appendRoundStart(s.small[:0], j.round, j.flags)
		s.roundCRC, s.roundBytes, s.roundData, s.roundZero = crc(0, rec), uint64(len(rec)), 0, 0
	case recBatch:
		rec = j.rec
		packed := false
		if s.comp != nil {
			c, err := s.comp.compress(rec)
			if err != nil {
				return nil, false, err
			}
			if c != nil {
				rec = c
				packed = true
				s.compressed.Add(1)
			}
		}
		if j.summed && !packed {
			s.roundCRC = crcCombine(s.roundCRC, j.sum, uint64(len(rec)))
		} else {
			sum = true // write adds it to roundCRC
		}
		s.batches.Add(1)
		s.rawBytes.Add(uint64(len(j.rec)))
		s.wireBytes.Add(uint64(len(rec)))
		s.roundBytes += uint64(len(rec))
		s.roundData += j.data
		s.roundZero += j.zero
		s.totals.DataPages += j.data
		s.totals.ZeroPages += j.zero
	case recRoundEnd:
		rec = appendRoundEnd(s.small[:0], roundEnd{Round: j.round, DataPages: s.roundData, ZeroPages: s.roundZero, Bytes: s.roundBytes, CRC: s.roundCRC})
		s.totals.Rounds++
	case recDrain:
		rec = appendDrain(s.small[:0], s.totals.Rounds)
	case recEnd:
		s.totals.Bytes = s.bytes
		rec = appendEnd(s.small[:0], s.totals)
	default:
		return nil, false, fmt.Errorf("stream writer: unknown job kind %#x", j.kind)
	}
	if j.kind != 0 && j.kind != recBatch {
		s.small = rec
	}
	s.bytes += uint64(len(rec))
	return rec, sum, nil
}

// compression returns the counters of the batches encoded so far.
func (s *streamWriter) compression() CompressionStats {
	return CompressionStats{Batches: s.batches.Load(), Compressed: s.compressed.Load(), RawBytes: s.rawBytes.Load(), WireBytes: s.wireBytes.Load()}
}

// writeChunk bounds one write: with sum, each chunk is checksummed right
// before the write copies it into the socket, so the copy finds it in the
// cache (one pass from memory instead of two).
const writeChunk = 256 << 10

// write writes p; with sum it also adds p to the round checksum.
func (s *streamWriter) write(p []byte, sum bool) error {
	t0 := time.Now()
	total := len(p)
	for len(p) > 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		n := len(p)
		if sum {
			n = min(n, writeChunk)
		}
		if s.lim != nil {
			n = min(n, s.lim.Burst())
			if err := s.lim.WaitN(s.ctx, n); err != nil {
				if e := s.ctx.Err(); e != nil {
					return e
				}
				return fmt.Errorf("write stream: rate limit: %w", err)
			}
		}
		if sum {
			s.roundCRC = crc(s.roundCRC, p[:n])
		}
		m, err := s.w.Write(p[:n])
		s.written.Add(uint64(m))
		if err != nil {
			return fmt.Errorf("write stream: %w", err)
		}
		if m != n {
			return fmt.Errorf("write stream: %w", io.ErrShortWrite)
		}
		p = p[n:]
	}
	if s.comp != nil {
		s.comp.wrote(total, time.Since(t0))
	}
	return nil
}

func (s *streamWriter) fail() error {
	if e := s.ctx.Err(); e != nil {
		return e
	}
	return s.err
}

// get returns a free batch buffer.
func (s *streamWriter) get() ([]byte, error) {
	select {
	case <-s.failed:
		return nil, s.fail()
	default:
	}
	select {
	case b := <-s.free:
		return b, nil
	case <-s.failed:
		return nil, s.fail()
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// put queues bytes written as they are, outside any round; buf (may be
// nil) goes back to the pool once they are written.
func (s *streamWriter) put(rec, buf []byte) error {
	return s.queue(writeJob{rec: rec, buf: buf})
}

func (s *streamWriter) queue(j writeJob) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.failed:
		return s.fail()
	default:
	}
	select {
	case s.jobs <- j:
		return nil
	case <-s.failed:
		return s.fail()
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// flush waits until everything queued so far is written.
func (s *streamWriter) flush() error {
	ch := make(chan error, 1)
	if err := s.queue(writeJob{flush: ch, isFlushOnly: true}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		if err != nil {
			return s.fail()
		}
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// close ends the writer goroutine. With wait it lets the goroutine drain
// its queue and waits for it. Without, it abandons the queue: nothing more
// is written, and the goroutine is not waited for (it may be blocked in a
// Write that only the caller can unblock, by closing the writer).
func (s *streamWriter) close(wait bool) {
	if !wait {
		s.cancel()
	}
	close(s.jobs)
	if wait {
		<-s.done
		s.cancel()
	}
}
