package pagexfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// cbatch adds a batch of runs compressed with codec; mangle, when set,
// changes the compressed record body before it is added.
func (s *streamBuilder) cbatch(codec byte, mangle func(body []byte) []byte, runs ...run) *streamBuilder {
	plain := newStream(testHeader())
	plain.ps = s.ps
	plain.batch(runs...)
	body := plain.b[plain.marks[0]+frameSize:]
	var c []byte
	switch codec {
	case codecS2:
		c = s2.Encode(nil, body)
	case codecZstd:
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		c = enc.EncodeAll(body, nil)
		enc.Close()
	default:
		c = bytes.Clone(body)
	}
	rb := append([]byte{codec}, binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	rb = append(rb, c...)
	if mangle != nil {
		rb = mangle(rb)
	}
	s.rd += plain.rd
	s.rz += plain.rz
	s.t.DataPages += plain.t.DataPages
	s.t.ZeroPages += plain.t.ZeroPages
	s.rec(append(appendFrame(nil, recCBatch, len(rb)), rb...), true)
	return s
}

func compressedHeader() Header {
	h := testHeader()
	h.Features = FeatureCompression
	return h
}

// TestCompressedBatches: hand-made images with s2 and zstd batches are
// applied like plain ones; a bad compressed batch is rejected before any of
// it is written.
func TestCompressedBatches(t *testing.T) {
	for _, codec := range []byte{codecS2, codecZstd} {
		t.Run(codecName(codec), func(t *testing.T) {
			b := newStream(compressedHeader()).
				start(0, 0).cbatch(codec, nil, run{0, 10, kindRaw}, run{20, 1, kindRaw}).end(0).
				start(1, roundFinal).cbatch(codec, nil, run{3, 1, kindRaw}, run{4, 2, kindZero}).batch(run{30, 2, kindRaw}).end(1).
				state("cpu").fin()
			_, state, st, sink, err := receiveBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(state) != "cpu" || st.CompressedBatches != 2 || st.DataPages != 14 || st.ZeroPages != 2 {
				t.Fatalf("state %q, stats %+v", state, st)
			}
			for p := 0; p < 64; p++ {
				want := byte(0)
				if p < 10 && (p < 4 || p > 5) || p == 20 || p == 30 || p == 31 {
					want = byte(p) | 1
				}
				if !bytes.Equal(sink.mem[p*PageSize:(p+1)*PageSize], bytes.Repeat([]byte{want}, PageSize)) {
					t.Fatalf("page %d is not %#x", p, want)
				}
			}
		})
	}
	h := func() *streamBuilder { return newStream(compressedHeader()) }
	flipIn := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x55; return b }
	}
	tests := []struct {
		name   string
		stream []byte
		substr string
	}{
		{"without the feature", newStream(testHeader()).start(0, 0).cbatch(codecS2, nil, run{0, 2, kindRaw}).fin(), "without the compression feature"},
		{"unknown codec", h().start(0, 0).cbatch(9, nil, run{0, 2, kindRaw}).fin(), "unknown codec 9"},
		{"s2 data corrupted", h().start(0, 0).cbatch(codecS2, flipIn(cbatchHead+3), run{0, 2, kindRaw}).fin(), "round 0"},
		{"s2 truncated", h().start(0, 0).cbatch(codecS2, func(b []byte) []byte { return b[:len(b)-3] }, run{0, 2, kindRaw}).fin(), "s2"},
		{"zstd data corrupted", h().start(0, 0).cbatch(codecZstd, flipIn(cbatchHead+6), run{0, 2, kindRaw}).fin(), "zstd"},
		{"raw length differs", h().start(0, 0).cbatch(codecS2, func(b []byte) []byte { b[1]++; return b }, run{0, 2, kindRaw}).fin(), "s2 data holds"},
		{"zstd length differs", h().start(0, 0).cbatch(codecZstd, func(b []byte) []byte { b[1]--; return b }, run{0, 2, kindRaw}).fin(), "zstd"},
		{"raw length huge", h().start(0, 0).cbatch(codecS2, func(b []byte) []byte { b[4] = 0x7f; return b }, run{0, 2, kindRaw}).fin(), "raw length"},
		{"decompresses to a bad batch", h().start(0, 0).cbatch(codecS2, nil, run{0, 1, 9}).fin(), "kind 9"},
		{"record too short", h().start(0, 0).rec2(recCBatch, []byte{1, 0, 0, 0, 0}).fin(), "compressed batch record of 5 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, sink, err := receiveBytes(tc.stream)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error %v: want ErrFormat mentioning %q", err, tc.substr)
			}
			if sink != nil && sink.dataWrites != 0 {
				t.Fatalf("%d pages written from a bad batch", sink.dataWrites)
			}
		})
	}
}

// rec2 adds a record of kind k with body b inside the current round.
func (s *streamBuilder) rec2(k byte, b []byte) *streamBuilder {
	s.rec(append(appendFrame(nil, k, len(b)), b...), true)
	return s
}

// compressiblePages writes pages that compress well (one byte repeated,
// with the page number in front) over the first n pages of m.
func compressiblePages(m *memSource, n int) {
	for p := 0; p < n; p++ {
		m.write(p, byte(p%250)+1)
	}
}

// sendReceive sends m over n in-process connections with opts and
// receives the image into a fresh sink, which it returns with both sides'
// figures. Pipes give back-pressure as real sockets do.
func sendReceive(t *testing.T, m *memSource, n int, opts Options) (Result, Stats, *memSink, error) {
	t.Helper()
	ws := make([]io.Writer, n)
	rs := make([]io.Reader, n)
	var closers []io.Closer
	for i := range ws {
		pr, pw := io.Pipe()
		ws[i], rs[i] = pw, pr
		closers = append(closers, pw, pr)
	}
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	var sink *lockedSink
	type out struct {
		st  Stats
		err error
	}
	done := make(chan out, 1)
	go func() {
		next := 1
		// Hand the other streams over in reverse order: the receiver
		// must place them by their headers.
		more := func(ctx context.Context) (io.Reader, error) {
			if next >= n {
				return nil, errors.New("no more streams")
			}
			r := rs[n-next]
			next++
			return r, nil
		}
		_, _, st, err := ReceiveStreams(context.Background(), rs[0], more, func(h Header) (Sink, error) {
			sink = &lockedSink{memSink: newMemSink(h.MemSize, int(h.PageSize))}
			return sink, nil
		})
		// Drain, as a target does, so a failed sender finishes.
		for _, r := range rs {
			go io.Copy(io.Discard, r)
		}
		done <- out{st, err}
	}()
	res, err := SendStreams(context.Background(), m, ws, opts, nil)
	for _, w := range ws {
		w.(*io.PipeWriter).Close()
	}
	o := <-done
	if err == nil {
		err = o.err
	}
	var ms *memSink
	if sink != nil {
		ms = sink.memSink
	}
	if err == nil && o.st.Totals != res.Totals {
		t.Fatalf("receiver totals %+v, sender %+v", o.st.Totals, res.Totals)
	}
	return res, o.st, ms, err
}

// lockedSink serialises a memSink's bookkeeping for parallel streams.
type lockedSink struct {
	mu sync.Mutex
	*memSink
}

func (s *lockedSink) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memSink.WriteAt(p, off)
}

func (s *lockedSink) ZeroRange(off, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memSink.ZeroRange(off, n)
}

// TestSendStreamsLive: a live image over three streams while the guest
// keeps writing, page ranges spread over many stripes, pages zeroed and
// rewritten between rounds; the target ends up with exactly the source's
// memory and each stream carried only its own stripes.
func TestSendStreamsLive(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressS2, CompressZstd, CompressAuto} {
		t.Run(comp.String(), func(t *testing.T) {
			const pages = 9 * StripePages
			m := newMemSource(pages)
			for p := 0; p < pages; p += 3 {
				m.write(p, byte(p%200)+1)
			}
			n := 0
			m.onRead = func(m *memSource) {
				// The guest rewrites pages in every stripe, and zeroes a
				// few, while the first rounds run.
				if n++; n <= 40 {
					for k := 0; k < 9; k++ {
						p := k*StripePages + (n*37)%StripePages
						m.write(p, byte(n))
						if n%5 == 0 {
							m.write(p+1, 0)
						}
					}
				}
			}
			opts := testOptions(true)
			opts.Compression = comp
			res, st, sink, err := sendReceive(t, m, 3, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Streams != 3 || res.Streams != 3 || res.Rounds() < 2 {
				t.Fatalf("result %+v, stats %+v", res, st)
			}
			if !bytes.Equal(sink.mem, m.snapshot()) {
				t.Fatal("target memory differs from the source")
			}
			if sink.zeroWrites != 0 {
				t.Fatalf("%d zero pages sent as data", sink.zeroWrites)
			}
			c := res.Compression
			if comp == CompressNone && c.Compressed != 0 || comp != CompressNone && comp != CompressAuto && (c.Compressed == 0 || c.Saved() == 0) {
				t.Fatalf("compression %v: %+v", comp, c)
			}
			if c.Compressed != st.CompressedBatches || c.Batches == 0 || c.RawBytes < c.WireBytes {
				t.Fatalf("compression %+v, receiver counted %d compressed batches", c, st.CompressedBatches)
			}
		})
	}
}

// TestCompressionOnlyWhenItPays: random pages never go compressed, even
// when compression is asked for; auto leaves them alone too, and picks
// compression up on compressible pages behind a slow link.
func TestCompressionOnlyWhenItPays(t *testing.T) {
	random := func() *memSource {
		m := newMemSource(512)
		copy(m.mem, randomPages(512, 9))
		for p := range m.populated {
			m.populated[p] = true
		}
		return m
	}
	for _, comp := range []Compression{CompressS2, CompressZstd, CompressAuto} {
		m := random()
		res, _, sink, err := sendReceive(t, m, 1, Options{Engine: "sim", VCPUs: 1, Compression: comp})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sink.mem, m.snapshot()) {
			t.Fatalf("%v: target memory differs", comp)
		}
		if res.Compression.Compressed != 0 || res.Compression.WireBytes != res.Compression.RawBytes {
			t.Fatalf("%v compressed random pages: %+v", comp, res.Compression)
		}
	}
	// Auto behind a 16 MB/s link: compressing pays for itself many times.
	m := newMemSource(2048)
	compressiblePages(m, 2048)
	res, _, sink, err := sendReceive(t, m, 1, Options{Engine: "sim", VCPUs: 1, Compression: CompressAuto, RateLimit: 16e6})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.mem, m.snapshot()) {
		t.Fatal("target memory differs")
	}
	c := res.Compression
	t.Logf("auto on compressible pages: %+v, %.3f s", c, res.Total.Seconds())
	if c.Compressed < c.Batches-2 || c.Saved() < c.RawBytes/2 {
		t.Fatalf("auto did not compress compressible pages behind a slow link: %+v", c)
	}
}

// TestParallelSaveRestore: a save image is one stream; compressed, it
// restores as well, and images without the new features still carry no
// feature bits (a receiver of the first version 1 reads them).
func TestCompressedSaveRestore(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressZstd} {
		m := newMemSource(300)
		compressiblePages(m, 200)
		var buf bytes.Buffer
		opts := testOptions(false)
		opts.Compression = comp
		if _, err := SaveTo(context.Background(), m, &buf, opts, nil); err != nil {
			t.Fatal(err)
		}
		h, err := ReadHeader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if want := Feature(0); comp == CompressNone && h.Features != want || comp != CompressNone && h.Features != FeatureCompression {
			t.Fatalf("%v: header features %#x", comp, h.Features)
		}
		var sink *memSink
		_, state, _, err := Restore(context.Background(), bytes.NewReader(buf.Bytes()), func(h Header) (Sink, error) {
			sink = newMemSink(h.MemSize, int(h.PageSize))
			return sink, nil
		})
		if err != nil || string(state) != "vcpu-state" || !bytes.Equal(sink.mem, m.snapshot()) {
			t.Fatalf("%v: restore: %v, state %q", comp, err, state)
		}
	}
}

// parallelImage builds a two-stream image by hand: stream 0 carries
// pages of stripe 0 and the state, stream 1 pages of stripe 1.
func parallelImage(mod1 func(s *streamBuilder) *streamBuilder) [][]byte {
	h := testHeader()
	h.MemSize = 3 * StripePages * PageSize
	h.Features, h.StreamCount = FeatureParallel, 2
	s0 := newStream(h).start(0, 0).batch(run{0, 4, kindRaw}).end(0).start(1, roundFinal).batch(run{2, 1, kindZero}).end(1).state("cpu")
	h.StreamID = 1
	s1 := newStream(h)
	if mod1 != nil {
		s1 = mod1(s1)
	} else {
		s1 = s1.start(0, 0).batch(run{StripePages, 3, kindRaw}).end(0).start(1, roundFinal).end(1)
	}
	return [][]byte{s0.fin(), s1.fin()}
}

func receiveParallel(streams [][]byte) (Stats, *memSink, error) {
	var sink *lockedSink
	i := 1
	_, _, st, err := ReceiveStreams(context.Background(), bytes.NewReader(streams[0]), func(ctx context.Context) (io.Reader, error) {
		if i >= len(streams) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		i++
		return bytes.NewReader(streams[i-1]), nil
	}, func(h Header) (Sink, error) {
		sink = &lockedSink{memSink: newMemSink(h.MemSize, int(h.PageSize))}
		return sink, nil
	})
	if sink == nil {
		return st, nil, err
	}
	return st, sink.memSink, err
}

func TestParallelStreamsMalformed(t *testing.T) {
	st, sink, err := receiveParallel(parallelImage(nil))
	if err != nil {
		t.Fatal(err)
	}
	if st.Streams != 2 || st.Rounds != 2 || st.DataPages != 7 || st.ZeroPages != 1 || st.ZeroedPages != 1 {
		t.Fatalf("stats %+v", st)
	}
	if sink.mem[StripePages*PageSize] != 1 || sink.mem[2*PageSize] != 0 || sink.mem[PageSize] != 1 {
		t.Fatal("pages not applied")
	}
	hdr := func(mod func(h *Header)) func(*streamBuilder) *streamBuilder {
		return func(*streamBuilder) *streamBuilder {
			h := testHeader()
			h.MemSize = 3 * StripePages * PageSize
			h.Features, h.StreamCount, h.StreamID = FeatureParallel, 2, 1
			mod(&h)
			return newStream(h).start(0, 0).end(0).start(1, roundFinal).end(1)
		}
	}
	tests := []struct {
		name   string
		mod1   func(s *streamBuilder) *streamBuilder
		want   error
		substr string
	}{
		{"page of another stream's stripe", func(s *streamBuilder) *streamBuilder {
			return s.start(0, 0).batch(run{5, 1, kindRaw}).end(0).start(1, roundFinal).end(1)
		}, ErrFormat, "not within a stripe of stream 1"},
		{"run across a stripe boundary", func(s *streamBuilder) *streamBuilder {
			return s.start(0, 0).batch(run{2*StripePages - 1, 2, kindZero}).end(0).start(1, roundFinal).end(1)
		}, ErrFormat, "not within a stripe"},
		{"fewer rounds", func(s *streamBuilder) *streamBuilder {
			return s.start(0, roundFinal).end(0)
		}, ErrChecksum, "stream 1 had 1 rounds"},
		{"state on stream 1", func(s *streamBuilder) *streamBuilder {
			return s.start(0, 0).end(0).start(1, roundFinal).end(1).state("x")
		}, ErrFormat, "state record on stream 1"},
		{"end before the final round", func(s *streamBuilder) *streamBuilder {
			return s.start(0, 0).end(0)
		}, ErrFormat, "before its final round"},
		{"another migration", hdr(func(h *Header) { h.ID[0]++ }), ErrFormat, "another image"},
		{"another stream count", hdr(func(h *Header) { h.StreamCount = 3 }), ErrFormat, "another image"},
		{"stream 0 twice", hdr(func(h *Header) { h.StreamID = 0 }), ErrFormat, "stream 0 came twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, sink, err := receiveParallel(parallelImage(tc.mod1))
			if err == nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error %v: want %v mentioning %q", err, tc.want, tc.substr)
			}
			if sink != nil && sink.bad != nil {
				t.Fatalf("bad sink call: %v", sink.bad)
			}
		})
	}
	// A stream that never comes: the receiver gives up when more says so.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	img := parallelImage(nil)
	_, _, _, err = ReceiveStreams(ctx, bytes.NewReader(img[0]), func(ctx context.Context) (io.Reader, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("waiting for the stream: %w", ctx.Err())
	}, func(h Header) (Sink, error) { return &lockedSink{memSink: newMemSink(h.MemSize, int(h.PageSize))}, nil })
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("missing stream: %v", err)
	}
	// One stream failing stops the others, which would otherwise wait
	// for data forever.
	pr, pw := net.Pipe()
	defer pw.Close()
	defer pr.Close()
	go pw.Write(img[1][:40]) // part of the header and no more
	bad := parallelImage(func(s *streamBuilder) *streamBuilder { return s })[0]
	bad[len(bad)-3] ^= 1 // stream 0's end totals
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := ReceiveStreams(context.Background(), bytes.NewReader(bad), func(ctx context.Context) (io.Reader, error) {
			return pr, nil
		}, func(h Header) (Sink, error) { return &lockedSink{memSink: newMemSink(h.MemSize, int(h.PageSize))}, nil })
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("stream 0 failing: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed stream did not stop the others")
	}
}
