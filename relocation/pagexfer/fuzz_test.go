package pagexfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
)

// seedStreams are valid and nearly valid images for the fuzzers.
func seedStreams(f *testing.F) [][]byte {
	seeds := [][]byte{validStream()}
	seeds = append(seeds, withHeader(func(h *Header) { h.PageSize, h.MemSize = 64<<10, 8*(64<<10) }))
	seeds = append(seeds, withHeader(func(h *Header) { h.Features = FeatureParallel; h.StreamCount = 2 }))
	seeds = append(seeds, newStream(testHeader()).start(0, roundFinal).batch(run{5, 3, kindZero}, run{8, 2, kindRaw}, run{63, 1, kindZero}).end(0).state("").fin())
	seeds = append(seeds, newStream(testHeader()).start(0, 0).batch(run{0, 6, kindRaw}).end(0).start(1, 0).batch(run{0, 64, kindZero}).end(1).start(2, roundFinal).end(2).state("s").fin())
	// Images written by Send, live and not.
	m := newMemSource(48)
	for p := 0; p < 40; p += 7 {
		m.write(p, byte(p))
	}
	var buf bytes.Buffer
	if _, err := Send(context.Background(), m, &buf, testOptions(false), nil); err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, buf.Bytes())
	n := 0
	m2 := newMemSource(64)
	for p := 0; p < 64; p += 8 {
		m2.write(p, 1)
	}
	m2.onRead = func(m *memSource) {
		if n++; n < 3 {
			m.write(8*n, 0)
			m.write(60-n, 9)
		}
	}
	var buf2 bytes.Buffer
	if _, err := Send(context.Background(), m2, &buf2, testOptions(true), nil); err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, buf2.Bytes())
	v := validStream()
	seeds = append(seeds, v[:len(v)/2], v[:preambleSize+3], flip(v, 200))
	// Compressed batches, by hand and from Send, and a one-stream image
	// with the parallel-streams feature.
	seeds = append(seeds, newStream(compressedHeader()).start(0, 0).cbatch(codecS2, nil, run{0, 3, kindRaw}, run{7, 2, kindZero}).end(0).
		start(1, roundFinal).cbatch(codecZstd, nil, run{1, 1, kindRaw}).end(1).state("c").fin())
	for _, comp := range []Compression{CompressS2, CompressZstd} {
		m3 := newMemSource(600)
		compressiblePages(m3, 300)
		o := testOptions(false)
		o.Compression = comp
		var b bytes.Buffer
		if _, err := Send(context.Background(), m3, &b, o, nil); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b.Bytes())
	}
	seeds = append(seeds, withHeader(func(h *Header) { h.Features, h.StreamCount = FeatureParallel, 1 }))
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedStreams(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var sink *sparseSink
		open := func(h Header) (Sink, error) {
			if h.MemSize > 64<<20 {
				return nil, errors.New("too large")
			}
			sink = &sparseSink{size: h.MemSize, ps: uint64(h.PageSize), pages: map[uint64][]byte{}}
			return sink, nil
		}
		h, state, st, err := receive(context.Background(), bytes.NewReader(b), nil, open, false)
		if sink != nil && sink.bad != nil {
			t.Fatalf("decoder made a bad sink call: %v", sink.bad)
		}
		if err != nil {
			if state != nil {
				t.Fatal("state returned with an error")
			}
			return
		}
		if err := h.validate(); err != nil {
			t.Fatalf("accepted an invalid header: %v", err)
		}
		if st.Totals.Bytes+frameSize+endBody > uint64(len(b)) || st.StateBytes != len(state) {
			t.Fatalf("stats %+v for %d bytes", st, len(b))
		}
		if uint64(len(sink.pages)) > st.DataPages {
			t.Fatalf("%d pages hold data after %d data pages", len(sink.pages), st.DataPages)
		}
		for p := range sink.pages {
			if p >= h.Pages() {
				t.Fatalf("page %d outside %d pages", p, h.Pages())
			}
		}
		// Restore accepts exactly the images without trailing bytes.
		consumed := st.Totals.Bytes + frameSize + endBody
		r := bytes.NewReader(b)
		if _, _, st2, err := receive(context.Background(), r, nil, open, false); err != nil || st2.Totals != st.Totals || uint64(r.Len()) != uint64(len(b))-consumed {
			t.Fatalf("second decode: %v, %+v (first %+v), %d bytes left of %d", err, st2, st, r.Len(), len(b))
		}
	})
}

func FuzzBatch(f *testing.F) {
	for _, s := range seedStreams(f) {
		// The first batch body of each seed, where there is one.
		off := 0
		if len(s) > preambleSize+frameSize {
			off = preambleSize + frameSize + int(uint32(s[preambleSize+1])|uint32(s[preambleSize+2])<<8|uint32(s[preambleSize+3])<<16)
		}
		off += frameSize + roundStartBody
		if off+frameSize < len(s) && s[off] == recBatch {
			f.Add(s[off+frameSize:], uint64(64))
		}
	}
	f.Add([]byte{1, 0, 1, 0}, uint64(1))
	f.Add([]byte{3, 0, 2, 0, 1, 1, 0, 5, 3, 0}, uint64(100))
	f.Fuzz(func(t *testing.T, body []byte, memPages uint64) {
		if memPages == 0 || memPages > 1<<40 {
			return
		}
		var last uint64
		var pages, dataBytes uint64
		_, data, zero, err := parseBatch(body, PageSize, memPages, nil, func(r run, d []byte) error {
			if r.count == 0 || r.first+r.count > memPages || r.first < last {
				t.Fatalf("run %+v after page %d in %d pages", r, last, memPages)
			}
			want := uint64(0)
			if r.kind == kindRaw {
				want = r.count * PageSize
			}
			if uint64(len(d)) != want {
				t.Fatalf("run %+v with %d data bytes", r, len(d))
			}
			last = r.first + r.count
			pages += r.count
			dataBytes += uint64(len(d))
			return nil
		})
		if err != nil {
			return
		}
		if data+zero != pages || pages > MaxBatchPages || dataBytes != data*PageSize {
			t.Fatalf("data %d zero %d, runs covered %d pages and %d bytes", data, zero, pages, dataBytes)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	id := ID{1, 2, 3, 4}
	for _, m := range []Message{
		{Kind: MsgVerified, ID: id, Totals: Totals{Rounds: 3, DataPages: 100, ZeroPages: 7, Bytes: 12345}},
		{Kind: MsgFailed, ID: id, Reason: "checksum mismatch in round 3"},
		{Kind: MsgCommit, ID: id},
		{Kind: MsgAbort, ID: id, Reason: "cancelled"},
		{Kind: MsgResumed, ID: id},
		{Kind: MsgResumeFailed, ID: id, Reason: "ünïcode"},
	} {
		b, err := AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("PXC\x01\x03\x10\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		m, err := ReadMessage(r)
		if err != nil {
			return
		}
		used := len(b) - r.Len()
		again, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("accepted message %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(again, b[:used]) {
			t.Fatalf("message %+v re-encodes as %x, read from %x", m, again, b[:used])
		}
		if _, err := io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCompressedBatch feeds the body of a compressed batch record to the
// decompressor and the batch parser: whatever it holds, they must not
// panic, allocate beyond the record's bound, or hand out a run outside
// memory.
func FuzzCompressedBatch(f *testing.F) {
	for _, codec := range []byte{codecS2, codecZstd} {
		s := newStream(compressedHeader()).start(0, 0).cbatch(codec, nil, run{0, 3, kindRaw}, run{7, 2, kindZero}, run{40, 1, kindRaw})
		f.Add(s.b[s.marks[1]+frameSize:])
	}
	f.Add([]byte{codecS2, 4, 0, 0, 0, 4, 12, 1, 0, 1, 0})
	f.Add([]byte{codecZstd, 0xff, 0xff, 0xff, 0x7f, 0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < minBody(recCBatch) || len(body) > maxBody(recCBatch) {
			return
		}
		var d decompressor
		defer d.close()
		raw, err := d.expand(body)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		if n := int(uint32(body[1]) | uint32(body[2])<<8 | uint32(body[3])<<16 | uint32(body[4])<<24); len(raw) != n || n > maxBatchBody {
			t.Fatalf("expanded to %d bytes; the record says %d", len(raw), n)
		}
		parseBatch(raw, PageSize, 64, nil, func(r run, d []byte) error {
			if r.first+r.count > 64 {
				t.Fatalf("run %+v outside 64 pages", r)
			}
			return nil
		})
	})
}

// lockedSparse is a sparseSink for several streams at once.
type lockedSparse struct {
	mu sync.Mutex
	*sparseSink
}

func (s *lockedSparse) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sparseSink.WriteAt(p, off)
}

func (s *lockedSparse) ZeroRange(off, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sparseSink.ZeroRange(off, n)
}

// FuzzParallelStream fuzzes stream 1 of a two-stream image whose stream 0
// is valid: the receiver must never write a page of stream 0's stripes
// from stream 1, nor make a bad sink call, and accepts only a stream 1
// that matches stream 0.
func FuzzParallelStream(f *testing.F) {
	img := parallelImage(nil)
	f.Add(img[1])
	f.Add(parallelImage(func(s *streamBuilder) *streamBuilder {
		return s.start(0, 0).batch(run{StripePages + 5, 2, kindRaw}, run{StripePages + 9, 1, kindZero}).end(0).
			start(1, roundFinal).batch(run{StripePages + 5, 1, kindZero}).end(1)
	})[1])
	f.Add(parallelImage(func(s *streamBuilder) *streamBuilder {
		return s.start(0, 0).batch(run{3, 1, kindRaw}).end(0).start(1, roundFinal).end(1)
	})[1])
	f.Add(img[1][:len(img[1])/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		var sink *lockedSparse
		given := false
		_, _, st, err := receive(context.Background(), bytes.NewReader(img[0]), func(ctx context.Context) (io.Reader, error) {
			if given {
				return nil, errors.New("only two streams")
			}
			given = true
			return bytes.NewReader(b), nil
		}, func(h Header) (Sink, error) {
			sink = &lockedSparse{sparseSink: &sparseSink{size: h.MemSize, ps: uint64(h.PageSize), pages: map[uint64][]byte{}}}
			return sink, nil
		}, false)
		if sink == nil {
			t.Fatal("stream 0 is valid: the sink must have been opened")
		}
		if sink.bad != nil {
			t.Fatalf("bad sink call: %v", sink.bad)
		}
		for p := range sink.pages {
			if k := p / StripePages; k%2 != 1 && p >= 4 {
				t.Fatalf("page %d of stream 0's stripe %d holds data stream 0 never sent", p, k)
			}
		}
		if err == nil && st.Streams != 2 {
			t.Fatalf("accepted with %d streams", st.Streams)
		}
	})
}
