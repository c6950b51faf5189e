package pagexfer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Sink is the target's guest memory as the receiver writes it. It must read
// as zero when Receive starts (a fresh memfd): pages the image never
// mentions, and zero pages the image did not write earlier, are left alone.
// With parallel streams WriteAt and ZeroRange are called from one
// goroutine per stream at once, always for different pages.
type Sink interface {
	// Size returns the bytes of memory; it must equal Header.MemSize.
	Size() uint64
	// WriteAt writes whole pages (FdSink: pwrite into a 4 KiB memfd;
	// memory of huge pages, which takes no pwrite or would get 4 KiB
	// pages from it, is written through its mapping by the VMM's sink).
	WriteAt(p []byte, off int64) (int, error)
	// ZeroRange makes [off, off+n) read as zero again (for a memfd:
	// fallocate PUNCH_HOLE, which also frees the pages).
	ZeroRange(off, n uint64) error
}

// Stats describes a received image.
type Stats struct {
	Totals
	// ZeroedPages counts zero pages that had been written earlier in the
	// same image and were cleared with ZeroRange; the other zero pages
	// cost nothing.
	ZeroedPages uint64
	// StateBytes is the size of the vCPU/engine state.
	StateBytes int
	// Streams is the number of connections the image came over.
	Streams int
	// CompressedBatches counts the batches that came compressed.
	CompressedBatches uint64
	// Duration runs from the first byte to the end record.
	Duration time.Duration
}

// receiver pipeline depth: frames read ahead of the one being applied.
const recvBuffers = 3

// Receive reads one image from r into the Sink that open returns for its
// header, checking every round's checksum and counts and the end totals.
// It returns the header, the vCPU/engine state and statistics. It reads
// exactly the image and nothing after it, so control messages can follow
// on the same connection. An image split over several streams needs
// ReceiveStreams.
//
// open is called once, after the header has been read and checked; it
// creates the target memory (a fresh memfd of h.MemSize bytes) and may
// refuse the image (engine, size, free memory) with an error, which
// Receive returns.
//
// Any error means the image must be discarded. On an error or a cancelled
// ctx, Receive stops reading; when r has SetReadDeadline (a net.Conn) it
// sets a past read deadline to stop its reader at once, otherwise the
// caller must close r.
func Receive(ctx context.Context, r io.Reader, open func(Header) (Sink, error)) (Header, []byte, Stats, error) {
	return receive(ctx, r, nil, open, true)
}

// ReceiveStreams is Receive for an image that may be split over several
// streams (the parallel-streams feature). first must carry stream 0, the
// one the control messages follow on. When stream 0's header says there
// are n > 1 streams, more is called n-1 times, one call at a time, and
// must return the connection of another stream of the image (in any
// order), or an error once ctx is done or when they do not come. Each
// stream's header must describe the same image. The streams are read and
// applied at once, one pipeline each; an error on any of them stops all.
// The returned Header is stream 0's.
func ReceiveStreams(ctx context.Context, first io.Reader, more func(context.Context) (io.Reader, error), open func(Header) (Sink, error)) (Header, []byte, Stats, error) {
	return receive(ctx, first, more, open, true)
}

// receive is ReceiveStreams; with pipelined false it reads each record on
// the stream's goroutine (the fuzz target uses that: same checks, no
// goroutine hand-off per record).
func receive(pctx context.Context, r io.Reader, more func(context.Context) (io.Reader, error), open func(Header) (Sink, error), pipelined bool) (h Header, state []byte, st Stats, err error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(pctx)
	defer cancel()
	dl, hasDeadline := r.(interface{ SetReadDeadline(time.Time) error })
	if hasDeadline {
		stop := context.AfterFunc(ctx, func() { dl.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	defer func() {
		st.Duration = time.Since(start)
		if err != nil {
			if h.ID.IsZero() {
				err = fmt.Errorf("receive: %w", err)
			} else {
				err = fmt.Errorf("receive %s: %w", h.ID, err)
			}
		}
	}()
	h, n, err := readHeader(r)
	if err != nil {
		return Header{}, nil, st, err
	}
	if err := ctx.Err(); err != nil {
		return h, nil, st, err
	}
	if h.StreamID != 0 {
		return h, nil, st, fmt.Errorf("%w: the first stream is stream %d of %d, not stream 0", ErrFormat, h.StreamID, h.StreamCount)
	}
	if h.StreamCount > 1 && more == nil {
		return h, nil, st, fmt.Errorf("%w: the image is split over %d streams; this receiver reads one", ErrUnsupported, h.StreamCount)
	}
	sink, err := open(h)
	if err != nil {
		return h, nil, st, fmt.Errorf("open target memory: %w", err)
	}
	if sink == nil {
		return h, nil, st, errors.New("open target memory: no sink")
	}
	if sz := sink.Size(); sz != h.MemSize {
		return h, nil, st, fmt.Errorf("target memory is %d bytes, the image has %d", sz, h.MemSize)
	}
	decs := make([]*decoder, h.StreamCount)
	decs[0] = newDecoder(h, sink)
	decs[0].bytes = uint64(n)
	decs[0].drained = drainAnswer(h, r)
	if h.StreamCount == 1 {
		err = decs[0].run(ctx, r, dl, hasDeadline, pipelined)
	} else {
		err = receiveMore(ctx, cancel, h, r, more, sink, decs, pipelined)
	}
	for _, d := range decs {
		if d != nil {
			d.dec.close()
		}
	}
	if err == nil {
		err = pctx.Err()
	} else if ce := pctx.Err(); ce != nil {
		err = ce
	}
	if err != nil {
		return h, nil, st, err
	}
	st.Streams = len(decs)
	st.Totals.Rounds = decs[0].totals.Rounds
	for i, d := range decs {
		if d.totals.Rounds != st.Totals.Rounds {
			return h, nil, st, fmt.Errorf("%w: stream %d had %d rounds, stream 0 had %d", ErrChecksum, i, d.totals.Rounds, st.Totals.Rounds)
		}
		st.Totals.DataPages += d.totals.DataPages
		st.Totals.ZeroPages += d.totals.ZeroPages
		st.Totals.Bytes += d.totals.Bytes
		st.ZeroedPages += d.zeroed
		st.CompressedBatches += d.compressed
	}
	st.StateBytes = len(decs[0].state)
	return h, decs[0].state, st, nil
}

// receiveMore runs stream 0 on r and the other streams as more hands them
// over, each on its own goroutine, until all have ended or one failed.
func receiveMore(ctx context.Context, cancel context.CancelFunc, h Header, r io.Reader, more func(context.Context) (io.Reader, error),
	sink Sink, decs []*decoder, pipelined bool) error {
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		dl, ok := r.(interface{ SetReadDeadline(time.Time) error })
		if err := decs[0].run(ctx, r, dl, ok, pipelined); err != nil {
			fail(fmt.Errorf("stream 0: %w", err))
		}
	})
	for i := 1; i < int(h.StreamCount); i++ {
		rs, err := more(ctx)
		if err != nil {
			fail(fmt.Errorf("stream %d of %d did not come: %w", i, h.StreamCount, err))
			break
		}
		wg.Go(func() {
			dl, ok := rs.(interface{ SetReadDeadline(time.Time) error })
			if ok {
				stop := context.AfterFunc(ctx, func() { dl.SetReadDeadline(time.Unix(1, 0)) })
				defer stop()
			}
			hs, n, err := readHeader(rs)
			if err != nil {
				fail(fmt.Errorf("another stream: %w", err))
				return
			}
			want := h
			want.StreamID = hs.StreamID
			if hs != want {
				fail(fmt.Errorf("%w: stream %d's header describes another image than stream 0's", ErrFormat, hs.StreamID))
				return
			}
			d := newDecoder(hs, sink)
			d.bytes = uint64(n)
			d.drained = drainAnswer(hs, rs)
			mu.Lock()
			dup := decs[hs.StreamID] != nil
			if !dup {
				decs[hs.StreamID] = d
			}
			mu.Unlock()
			if dup {
				fail(fmt.Errorf("%w: stream %d came twice", ErrFormat, hs.StreamID))
				return
			}
			if err := d.run(ctx, rs, dl, ok, pipelined); err != nil {
				fail(fmt.Errorf("stream %d: %w", hs.StreamID, err))
			}
		})
	}
	wg.Wait()
	return first
}

// run reads and applies the records of the decoder's stream after its
// header.
func (d *decoder) run(ctx context.Context, r io.Reader, dl interface{ SetReadDeadline(time.Time) error }, hasDeadline, pipelined bool) error {
	if pipelined {
		return d.pipelined(ctx, r, dl, hasDeadline)
	}
	return d.sequential(ctx, r)
}

// sequential reads and applies records on the calling goroutine.
func (d *decoder) sequential(ctx context.Context, r io.Reader) error {
	var buf []byte
	var sum roundSum
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := readFrame(r, buf, &sum)
		if err != nil {
			return err
		}
		buf = f.body
		done, err := d.apply(&f)
		if err != nil || done {
			return err
		}
	}
}

// pipelined reads records on a goroutine while the previous ones are
// applied.
func (d *decoder) pipelined(ctx context.Context, r io.Reader, dl interface{ SetReadDeadline(time.Time) error }, hasDeadline bool) error {
	fr := newFrameReader(r)
	go fr.run()
	fail := func(e error) error {
		close(fr.stop)
		if hasDeadline {
			dl.SetReadDeadline(time.Unix(1, 0))
			<-fr.done
		}
		return e
	}
	for {
		var f frame
		var ok bool
		select {
		case f, ok = <-fr.frames:
		case <-ctx.Done():
			return fail(ctx.Err())
		}
		if !ok {
			return fail(fr.err)
		}
		done, err := d.apply(&f)
		fr.free <- f.body
		if err != nil {
			return fail(err)
		}
		if done {
			<-fr.done
			return nil
		}
	}
}

// drainAnswer returns how a decoder answers drain records on r's
// connection, or nil when the stream has no drain feature or r cannot be
// written to (a save image).
func drainAnswer(h Header, r io.Reader) func() error {
	w, ok := r.(io.Writer)
	if h.Features&FeatureDrain == 0 || !ok {
		return nil
	}
	return func() error { return WriteMessage(w, Message{Kind: MsgDrained, ID: h.ID}) }
}

// ReadHeader reads the preamble and header of an image (for example to
// look at a save file before restoring it).
func ReadHeader(r io.Reader) (Header, error) {
	h, _, err := readHeader(r)
	return h, err
}

// readHeader reads preamble and header record; it returns the bytes read.
func readHeader(r io.Reader) (Header, int, error) {
	var pre [preambleSize + frameSize]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, 0, fmt.Errorf("read preamble: %w", eofUnexpected(err))
	}
	if err := parsePreamble(pre[:preambleSize]); err != nil {
		return Header{}, 0, err
	}
	kind, n := pre[preambleSize], binary.LittleEndian.Uint32(pre[preambleSize+1:])
	if kind != recHeader {
		return Header{}, 0, fmt.Errorf("%w: first record is %s, not the header", ErrFormat, recName(kind))
	}
	if n < uint32(minBody(recHeader)) || n > uint32(maxHeaderBody) {
		return Header{}, 0, fmt.Errorf("%w: header of %d bytes (%d..%d)", ErrFormat, n, minBody(recHeader), maxHeaderBody)
	}
	body, err := readBody(r, nil, int(n), nil)
	if err != nil {
		return Header{}, 0, fmt.Errorf("read header: %w", eofUnexpected(err))
	}
	h, err := parseHeader(pre[:], body)
	return h, len(pre) + int(n), err
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frame is one record read ahead by the frameReader.
type frame struct {
	hdr  [frameSize]byte
	body []byte
	sum  uint32 // CRC-32C of the current round's records up to this one
}

// roundSum keeps the running checksum of a round on the reading side, so
// the goroutine that writes memory does not also checksum it. The reader
// checksums each piece of a record as it arrives (readChunk at most), while
// the piece is still in the core's cache: a second pass over a 1 MiB batch
// after it has been read runs at memory speed, several times slower.
type roundSum struct{ crc uint32 }

// start returns the checksum a record of this kind continues from, and
// whether the round checksum covers it at all.
func (s *roundSum) start(kind byte) (uint32, bool) {
	switch kind {
	case recRoundStart:
		return 0, true
	case recBatch, recCBatch:
		return s.crc, true
	}
	return 0, false
}

// frameReader reads records on its own goroutine, so the next record
// arrives while the previous one is written to memory. It checks each
// record's kind and length bound before allocating for it, and stops after
// the end record, so it never reads past the image.
type frameReader struct {
	r      io.Reader
	frames chan frame
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	err    error // why frames was closed early; set before the close
}

func newFrameReader(r io.Reader) *frameReader {
	fr := &frameReader{
		r:      r,
		frames: make(chan frame, recvBuffers-1),
		free:   make(chan []byte, recvBuffers),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for i := 0; i < recvBuffers; i++ {
		fr.free <- nil
	}
	return fr
}

func (fr *frameReader) run() {
	defer close(fr.done)
	defer close(fr.frames)
	var sum roundSum
	for {
		var buf []byte
		select {
		case buf = <-fr.free:
		case <-fr.stop:
			return
		}
		f, err := readFrame(fr.r, buf, &sum)
		if err != nil {
			fr.err = err
			return
		}
		select {
		case fr.frames <- f:
		case <-fr.stop:
			return
		}
		if f.hdr[0] == recEnd {
			return
		}
	}
}

// readFrame reads one record after the header, checking its kind and
// length bound before reading (or allocating for) its body. The body goes
// into buf when it fits. sum is advanced over the record when the round
// checksum covers it, and f.sum is the round checksum after it.
func readFrame(r io.Reader, buf []byte, sum *roundSum) (frame, error) {
	var f frame
	if _, err := io.ReadFull(r, f.hdr[:]); err != nil {
		return f, fmt.Errorf("read record: %w", eofUnexpected(err))
	}
	kind, n := f.hdr[0], binary.LittleEndian.Uint32(f.hdr[1:])
	if maxBody(kind) == 0 || kind == recHeader {
		return f, fmt.Errorf("%w: unexpected %s", ErrFormat, recName(kind))
	}
	if n < uint32(minBody(kind)) || n > uint32(maxBody(kind)) {
		return f, fmt.Errorf("%w: %s record of %d bytes (%d..%d)", ErrFormat, recName(kind), n, minBody(kind), maxBody(kind))
	}
	c, summed := sum.start(kind)
	var add func([]byte)
	if summed {
		c = crc(c, f.hdr[:])
		add = func(p []byte) { c = crc(c, p) }
	}
	body, err := readBody(r, buf, int(n), add)
	if err != nil {
		return f, fmt.Errorf("read %s record: %w", recName(kind), eofUnexpected(err))
	}
	if summed {
		sum.crc = c
	}
	f.body = body
	f.sum = sum.crc
	return f, nil
}

// readChunk bounds one read of a record body, so that what a read brings
// in is still in the cache when add checksums it.
const readChunk = 256 << 10

// readBody reads n bytes into buf, growing it as the bytes arrive (by
// doubling, from 64 KiB) when it is too small, so a record that claims
// more than it carries costs at most twice what it carried. add (may be
// nil) is called with every piece as it arrives, in order.
func readBody(r io.Reader, buf []byte, n int, add func([]byte)) ([]byte, error) {
	if cap(buf) >= n {
		buf = buf[:n]
	} else {
		buf = buf[:0]
	}
	have := 0
	for have < n {
		if have == len(buf) {
			step := min(n-have, max(have, 64<<10))
			buf = append(buf, make([]byte, step)...)
		}
		k, err := r.Read(buf[have:min(len(buf), have+readChunk)])
		if k > 0 && add != nil {
			add(buf[have : have+k])
		}
		have += k
		if err != nil && have < n {
			if err == io.EOF && have > 0 {
				err = io.ErrUnexpectedEOF
			}
			return buf[:have], err
		}
	}
	return buf, nil
}

// decoder applies the records after the header to a Sink, enforcing the
// record order and checking checksums and counts.
type decoder struct {
	h       Header
	sink    Sink
	ps      uint64
	pages   uint64
	stripes stripes  // the pages this stream may carry
	written *pageSet // pages written so far by this stream (zero pages elsewhere need no work)
	runs    []run
	dec     decompressor

	inRound   bool
	final     bool // the current round is the stop-and-copy round
	finalSeen bool
	stateSeen bool
	rBytes    uint64
	rData     uint64
	rZero     uint64

	// drained answers a drain record (FeatureDrain) on this stream's
	// connection; nil when the stream cannot carry an answer.
	drained func() error

	totals     Totals
	bytes      uint64 // stream bytes so far
	zeroed     uint64
	compressed uint64
	state      []byte
}

func newDecoder(h Header, sink Sink) *decoder {
	return &decoder{h: h, sink: sink, ps: uint64(h.PageSize), pages: h.Pages(), written: newPageSet(h.Pages()),
		stripes: stripes{id: uint64(h.StreamID), count: uint64(h.StreamCount)}}
}

// apply applies one record; done is true after the end record.
func (d *decoder) apply(f *frame) (done bool, err error) {
	hdr, body := f.hdr[:], f.body
	kind := hdr[0]
	size := uint64(len(hdr) + len(body))
	switch kind {
	case recRoundStart:
		err = d.onRoundStart(body, size)
	case recBatch, recCBatch:
		err = d.onBatch(kind, body, size)
	case recRoundEnd:
		err = d.onRoundEnd(body, f.sum)
	case recDrain:
		err = d.onDrain(body)
	case recState:
		err = d.onState(body)
	case recEnd:
		err = d.onEnd(body)
		done = err == nil
	default:
		err = fmt.Errorf("%w: unexpected %s", ErrFormat, recName(kind))
	}
	if err != nil {
		return false, err
	}
	d.bytes += size
	return done, nil
}

// onRoundStart opens the next round; size is the record's.
func (d *decoder) onRoundStart(body []byte, size uint64) error {
	round, flags := binary.LittleEndian.Uint32(body), binary.LittleEndian.Uint32(body[4:])
	switch {
	case d.inRound:
		return fmt.Errorf("%w: round %d starts inside round %d", ErrFormat, round, d.totals.Rounds)
	case d.finalSeen:
		return fmt.Errorf("%w: round %d after the final round", ErrFormat, round)
	case round != d.totals.Rounds:
		return fmt.Errorf("%w: round %d where round %d was due", ErrFormat, round, d.totals.Rounds)
	case flags&^roundFinal != 0:
		return fmt.Errorf("%w: round %d: unknown flags %#x", ErrFormat, round, flags)
	}
	d.inRound, d.final = true, flags&roundFinal != 0
	d.rBytes, d.rData, d.rZero = size, 0, 0
	return nil
}

// onBatch applies a page batch (kind recBatch or recCBatch) of the
// current round; size is the record's.
func (d *decoder) onBatch(kind byte, body []byte, size uint64) (err error) {
	if !d.inRound {
		return fmt.Errorf("%w: page batch outside a round", ErrFormat)
	}
	d.rBytes += size
	if kind == recCBatch {
		if d.h.Features&FeatureCompression == 0 {
			return fmt.Errorf("%w: round %d: compressed batch in a stream without the compression feature", ErrFormat, d.totals.Rounds)
		}
		if body, err = d.dec.expand(body); err != nil {
			return fmt.Errorf("round %d: %w", d.totals.Rounds, err)
		}
		d.compressed++
	}
	var data, zero uint64
	d.runs, data, zero, err = parseStreamBatch(body, int(d.ps), d.pages, d.stripes, d.runs, d.applyRun)
	if err != nil {
		return fmt.Errorf("round %d: %w", d.totals.Rounds, err)
	}
	d.rData += data
	d.rZero += zero
	d.totals.DataPages += data
	d.totals.ZeroPages += zero
	return nil
}

// onRoundEnd checks the round's end record against what the round
// carried (sum: the CRC-32C computed while reading) and closes the round.
func (d *decoder) onRoundEnd(body []byte, sum uint32) error {
	if !d.inRound {
		return fmt.Errorf("%w: round end outside a round", ErrFormat)
	}
	e := parseRoundEnd(body)
	r := d.totals.Rounds
	switch {
	case e.Round != r:
		return fmt.Errorf("%w: round %d ends with the number %d", ErrChecksum, r, e.Round)
	case e.Bytes != d.rBytes || e.DataPages != d.rData || e.ZeroPages != d.rZero:
		return fmt.Errorf("%w: round %d carried %d bytes, %d data and %d zero pages; its end record says %d, %d and %d",
			ErrChecksum, r, d.rBytes, d.rData, d.rZero, e.Bytes, e.DataPages, e.ZeroPages)
	case e.CRC != sum:
		return fmt.Errorf("%w: round %d: computed CRC-32C %#08x, round end says %#08x", ErrChecksum, r, sum, e.CRC)
	}
	d.inRound = false
	d.totals.Rounds++
	d.finalSeen = d.final
	return nil
}

// onDrain answers a drain record between rounds.
func (d *decoder) onDrain(body []byte) error {
	switch rounds := binary.LittleEndian.Uint32(body); {
	case d.h.Features&FeatureDrain == 0:
		return fmt.Errorf("%w: drain record in a stream without the drain feature", ErrFormat)
	case d.inRound || d.finalSeen:
		return fmt.Errorf("%w: drain record inside round %d or after the final round", ErrFormat, d.totals.Rounds)
	case rounds != d.totals.Rounds:
		return fmt.Errorf("%w: drain record after %d rounds where %d were done", ErrFormat, rounds, d.totals.Rounds)
	case d.drained == nil:
		return fmt.Errorf("%w: drain record on a stream that cannot answer it", ErrUnsupported)
	}
	// Everything before it is applied: the records are applied in
	// order and the sink's writes are done when they return.
	if err := d.drained(); err != nil {
		return fmt.Errorf("answer drain: %w", err)
	}
	return nil
}

// onState checks and keeps the state record, after the final round of
// stream 0.
func (d *decoder) onState(body []byte) error {
	switch {
	case d.inRound:
		return fmt.Errorf("%w: state inside round %d", ErrFormat, d.totals.Rounds)
	case !d.finalSeen:
		return fmt.Errorf("%w: state before the final round", ErrFormat)
	case d.stateSeen:
		return fmt.Errorf("%w: second state record", ErrFormat)
	case d.h.StreamID != 0:
		return fmt.Errorf("%w: state record on stream %d (it belongs on stream 0)", ErrFormat, d.h.StreamID)
	}
	blob := body[4:]
	if got, want := crc(0, blob), binary.LittleEndian.Uint32(body); got != want {
		return fmt.Errorf("%w: state: computed CRC-32C %#08x, record says %#08x", ErrChecksum, got, want)
	}
	d.state = append([]byte(nil), blob...)
	d.stateSeen = true
	return nil
}

// onEnd checks the end record's totals against the stream's.
func (d *decoder) onEnd(body []byte) error {
	switch {
	case d.h.StreamID == 0 && !d.stateSeen:
		return fmt.Errorf("%w: end of image before the state", ErrFormat)
	case d.h.StreamID != 0 && (!d.finalSeen || d.inRound):
		return fmt.Errorf("%w: end of stream %d before its final round", ErrFormat, d.h.StreamID)
	}
	want := d.totals
	want.Bytes = d.bytes
	if got := parseTotals(body); got != want {
		return fmt.Errorf("%w: end of image says %d rounds, %d data and %d zero pages in %d bytes; the stream had %d, %d, %d and %d",
			ErrChecksum, got.Rounds, got.DataPages, got.ZeroPages, got.Bytes, want.Rounds, want.DataPages, want.ZeroPages, want.Bytes)
	}
	d.totals.Bytes = d.bytes
	return nil
}

// applyRun writes one run of a validated batch.
func (d *decoder) applyRun(r run, data []byte) error {
	if r.kind == kindRaw {
		off := r.first * d.ps
		n, err := d.sink.WriteAt(data, int64(off))
		if err == nil && n != len(data) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return fmt.Errorf("write pages %d+%d: %w", r.first, r.count, err)
		}
		d.written.add(r.first, r.count)
		return nil
	}
	return d.written.take(r.first, r.count, func(first, n uint64) error {
		if err := d.sink.ZeroRange(first*d.ps, n*d.ps); err != nil {
			return fmt.Errorf("zero pages %d+%d: %w", first, n, err)
		}
		d.zeroed += n
		return nil
	})
}
