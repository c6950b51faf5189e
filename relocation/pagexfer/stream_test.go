package pagexfer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// streamBuilder writes streams by hand, with correct checksums and counts
// unless a test overrides them, to make malformed streams precisely.
type streamBuilder struct {
	b          []byte
	marks      []int // offset of every record after the header
	ps         int
	crc        uint32
	rb, rd, rz uint64
	t          Totals
}

func testHeader() Header {
	return Header{Version: Version, StreamCount: 1, PageSize: PageSize, MemSize: 64 * PageSize, VCPUs: 1,
		Engine: "sim", ID: ID{1, 2, 3}, Config: "name = 'vm1'\nmemory = 1\n"}
}

func newStream(h Header) *streamBuilder {
	return &streamBuilder{b: appendHeader(nil, h), ps: int(h.PageSize)}
}

func (s *streamBuilder) rec(r []byte, inRound bool) {
	s.marks = append(s.marks, len(s.b))
	if inRound {
		s.crc = crc(s.crc, r)
		s.rb += uint64(len(r))
	}
	s.b = append(s.b, r...)
}

func (s *streamBuilder) start(round, flags uint32) *streamBuilder {
	s.crc, s.rb, s.rd, s.rz = 0, 0, 0, 0
	s.rec(appendRoundStart(nil, round, flags), true)
	return s
}

// batch adds a batch of runs; raw pages are filled with a pattern of the
// page number.
func (s *streamBuilder) batch(runs ...run) *streamBuilder {
	body := binary.AppendUvarint(nil, uint64(len(runs)))
	end := uint64(0)
	for _, r := range runs {
		body = binary.AppendUvarint(body, r.first-end)
		body = binary.AppendUvarint(body, r.count)
		body = append(body, r.kind)
		end = r.first + r.count
	}
	for _, r := range runs {
		if r.kind == kindRaw {
			for p := r.first; p < r.first+r.count; p++ {
				body = append(body, bytes.Repeat([]byte{byte(p) | 1}, s.ps)...)
			}
			s.rd += r.count
			s.t.DataPages += r.count
		} else {
			s.rz += r.count
			s.t.ZeroPages += r.count
		}
	}
	return s.rawBatch(body)
}

func (s *streamBuilder) rawBatch(body []byte) *streamBuilder {
	s.rec(append(appendFrame(nil, recBatch, len(body)), body...), true)
	return s
}

func (s *streamBuilder) end(round uint32) *streamBuilder {
	s.rec(appendRoundEnd(nil, roundEnd{Round: round, DataPages: s.rd, ZeroPages: s.rz, Bytes: s.rb, CRC: s.crc}), false)
	s.t.Rounds++
	return s
}

func (s *streamBuilder) state(blob string) *streamBuilder {
	s.rec(appendState(nil, []byte(blob)), false)
	return s
}

func (s *streamBuilder) fin() []byte {
	t := s.t
	t.Bytes = uint64(len(s.b))
	s.marks = append(s.marks, len(s.b))
	return appendEnd(s.b, t)
}

// probeOffsets returns the offsets worth probing in a stream made by s:
// every byte of the header and of the first 64 bytes of each record, and
// every 101st byte of page data (all of which the same checksum covers).
func (s *streamBuilder) probeOffsets(n int) []int {
	var offs []int
	starts := append([]int{0}, s.marks...)
	for i, a := range starts {
		end := n
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		for off := a; off < end; off++ {
			if i == 0 || off-a < 64 || (off-a)%101 == 0 || end-off <= 2 {
				offs = append(offs, off)
			}
		}
	}
	return offs
}

// validStream is a two-round image: round 0 writes pages 0-9 and 20, the
// final round rewrites 3 and zeroes 4-5 (written before) and 30 (never
// written).
func validStream() []byte {
	b, _ := validStreamBuilder()
	return b
}

func validStreamBuilder() ([]byte, *streamBuilder) {
	s := newStream(testHeader()).
		start(0, 0).batch(run{0, 10, kindRaw}, run{20, 1, kindRaw}).end(0).
		start(1, roundFinal).batch(run{3, 1, kindRaw}, run{4, 2, kindZero}, run{30, 1, kindZero}).end(1).
		state("cpu")
	return s.fin(), s
}

func receiveBytes(b []byte) (Header, []byte, Stats, *memSink, error) {
	var sink *memSink
	h, st, stats, err := Receive(context.Background(), bytes.NewReader(b), func(h Header) (Sink, error) {
		if h.MemSize > 64<<20 {
			return nil, errors.New("too big for the test")
		}
		sink = newMemSink(h.MemSize, int(h.PageSize))
		return sink, nil
	})
	return h, st, stats, sink, err
}

func TestReceiveValidStream(t *testing.T) {
	b := validStream()
	h, state, st, sink, err := receiveBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if h != testHeader() || string(state) != "cpu" {
		t.Fatalf("header %+v state %q", h, state)
	}
	want := Totals{Rounds: 2, DataPages: 12, ZeroPages: 3, Bytes: uint64(len(b) - frameSize - endBody)}
	if st.Totals != want || st.ZeroedPages != 2 || st.StateBytes != 3 {
		t.Fatalf("stats %+v, want totals %+v and 2 zeroed pages", st, want)
	}
	for p := 0; p < 64; p++ {
		pg := sink.mem[p*PageSize : (p+1)*PageSize]
		wantByte := byte(0)
		if p < 10 && p != 4 && p != 5 || p == 20 {
			wantByte = byte(p) | 1
		}
		if !bytes.Equal(pg, bytes.Repeat([]byte{wantByte}, PageSize)) {
			t.Fatalf("page %d starts %x, want %x", p, pg[:4], wantByte)
		}
	}
	if sink.dataWrites != 12 {
		t.Fatalf("%d pages written, want 12", sink.dataWrites)
	}
	// Restore additionally refuses data after the image.
	open := func(h Header) (Sink, error) { return newMemSink(h.MemSize, PageSize), nil }
	if _, _, _, err := Restore(context.Background(), bytes.NewReader(b), open); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, _, _, err := Restore(context.Background(), bytes.NewReader(append(b, 0)), open); !errors.Is(err, ErrFormat) {
		t.Fatalf("restore with trailing data: %v", err)
	}
	if h2, err := ReadHeader(bytes.NewReader(b)); err != nil || h2 != h {
		t.Fatalf("ReadHeader: %+v, %v", h2, err)
	}
}

func TestReceiveReadsNothingAfterImage(t *testing.T) {
	b := validStream()
	r := bytes.NewReader(append(append([]byte(nil), b...), "NEXT"...))
	if _, _, _, err := Receive(context.Background(), r, func(h Header) (Sink, error) { return newMemSink(h.MemSize, PageSize), nil }); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "NEXT" {
		t.Fatalf("after the image the reader holds %q, want NEXT", rest)
	}
}

func withHeader(mod func(*Header)) []byte {
	h := testHeader()
	mod(&h)
	return newStream(h).start(0, roundFinal).batch(run{0, 1, kindRaw}).end(0).state("s").fin()
}

func flip(b []byte, off int) []byte {
	c := append([]byte(nil), b...)
	c[off] ^= 0x40
	return c
}

func TestMalformedStreams(t *testing.T) {
	valid := validStream()
	hdrLen := len(appendHeader(nil, testHeader()))
	// Offset of the first data byte of round 0's batch: round start, then
	// the batch frame and its 1+2*3 descriptor bytes.
	data0 := hdrLen + frameSize + roundStartBody + frameSize + 7
	h := func() *streamBuilder { return newStream(testHeader()) }
	tests := []struct {
		name   string
		stream []byte
		want   error
		substr string
	}{
		{"empty", nil, io.ErrUnexpectedEOF, "preamble"},
		{"bad magic", flip(valid, 0), ErrFormat, "magic"},
		{"version 2", func() []byte { b := bytes.Clone(valid); b[8] = 2; return b }(), ErrVersion, "version 2"},
		{"reserved preamble field", flip(valid, 10), ErrFormat, "reserved"},
		{"first record not header", append(appendPreamble(nil), appendRoundStart(nil, 0, 0)...), ErrFormat, "not the header"},
		{"header length too small", append(appendPreamble(nil), appendFrame(nil, recHeader, 3)...), ErrFormat, "header of 3 bytes"},
		{"header length too large", append(appendPreamble(nil), appendFrame(nil, recHeader, maxHeaderBody+1)...), ErrFormat, "header of"},
		{"header checksum", flip(valid, preambleSize+frameSize+12), ErrChecksum, "header"},
		{"header truncated", valid[:hdrLen-1], io.ErrUnexpectedEOF, "header"},
		{"parallel image, one receiver", withHeader(func(h *Header) { h.Features, h.StreamCount = FeatureParallel, 2 }), ErrUnsupported, "split over 2 streams"},
		{"first stream is not stream 0", withHeader(func(h *Header) { h.Features, h.StreamID, h.StreamCount = FeatureParallel, 1, 2 }), ErrFormat, "first stream is stream 1"},
		{"stream id beyond count", withHeader(func(h *Header) { h.Features, h.StreamID, h.StreamCount = FeatureParallel, 2, 2 }), ErrFormat, "stream 2 of 2"},
		{"too many streams", withHeader(func(h *Header) { h.Features, h.StreamCount = FeatureParallel, MaxStreams+1 }), ErrFormat, "streams"},
		{"unknown feature", withHeader(func(h *Header) { h.Features = 1 << 7 }), ErrUnsupported, "feature"},
		{"parallel stream count", withHeader(func(h *Header) { h.StreamCount = 2 }), ErrFormat, "stream 0 of 2"},
		{"page size not power of two", withHeader(func(h *Header) { h.PageSize = 5000 }), ErrFormat, "page size"},
		{"page size too large", withHeader(func(h *Header) { h.PageSize = 1 << 20 }), ErrFormat, "page size"},
		{"memory size zero", withHeader(func(h *Header) { h.MemSize = 0 }), ErrFormat, "memory size"},
		{"memory size unaligned", withHeader(func(h *Header) { h.MemSize = PageSize + 1 }), ErrFormat, "memory size"},
		{"memory size huge", withHeader(func(h *Header) { h.MemSize = 1 << 50 }), ErrFormat, "memory size"},
		{"no vcpus", withHeader(func(h *Header) { h.VCPUs = 0 }), ErrFormat, "vCPUs"},
		{"engine empty", withHeader(func(h *Header) { h.Engine = "" }), ErrFormat, "engine"},
		{"engine with space", withHeader(func(h *Header) { h.Engine = "s m" }), ErrFormat, "engine"},
		{"config not utf-8", withHeader(func(h *Header) { h.Config = "\xff" }), ErrFormat, "configuration"},
		{"open refuses", withHeader(func(h *Header) { h.MemSize = 1 << 30 }), nil, "too big for the test"},
		{"truncated in round", valid[:data0+100], io.ErrUnexpectedEOF, "batch"},
		{"truncated before end", valid[:len(valid)-1], io.ErrUnexpectedEOF, "end"},
		{"no end at all", valid[:len(valid)-frameSize-endBody], io.ErrUnexpectedEOF, "read record"},
		{"page data corrupted", flip(valid, data0+5), ErrChecksum, "round 0: computed CRC-32C"},
		{"descriptor corrupted", flip(valid, data0-2), ErrFormat, "beyond memory"},
		{"unknown record kind", append(bytes.Clone(valid[:hdrLen]), 0x77, 0, 0, 0, 0), ErrFormat, "record kind 0x77"},
		{"second header", append(bytes.Clone(valid[:hdrLen]), valid[preambleSize:hdrLen]...), ErrFormat, "unexpected header"},
		{"record too long", append(bytes.Clone(valid[:hdrLen]), appendFrame(nil, recBatch, maxBatchBody+1)...), ErrFormat, "batch record of"},
		{"round start wrong length", append(bytes.Clone(valid[:hdrLen]), appendFrame(nil, recRoundStart, 9)...), ErrFormat, "round-start record of 9"},
		{"batch outside round", h().batch(run{0, 1, kindRaw}).fin(), ErrFormat, "outside a round"},
		{"round end outside round", h().end(0).fin(), ErrFormat, "outside a round"},
		{"round skipped", h().start(1, 0).fin(), ErrFormat, "round 1 where round 0"},
		{"round inside round", h().start(0, 0).start(1, 0).fin(), ErrFormat, "inside round"},
		{"unknown round flag", h().start(0, 4).fin(), ErrFormat, "unknown flags"},
		{"round after final", h().start(0, roundFinal).end(0).start(1, 0).fin(), ErrFormat, "after the final"},
		{"state before final round", h().start(0, 0).end(0).state("s").fin(), ErrFormat, "before the final"},
		{"state inside round", h().start(0, roundFinal).state("s").fin(), ErrFormat, "inside round"},
		{"second state", h().start(0, roundFinal).end(0).state("s").state("s").fin(), ErrFormat, "second state"},
		{"end before state", h().start(0, roundFinal).end(0).fin(), ErrFormat, "before the state"},
		{"state checksum", func() []byte {
			b := h().start(0, roundFinal).end(0).state("cpu-state").fin()
			return flip(b, len(b)-frameSize-endBody-2)
		}(), ErrChecksum, "state"},
		{"end totals", func() []byte {
			b := h().start(0, roundFinal).batch(run{0, 1, kindRaw}).end(0).state("s").fin()
			return flip(b, len(b)-endBody+4) // data pages
		}(), ErrChecksum, "end of image"},
		{"round end count", func() []byte {
			s := h().start(0, roundFinal).batch(run{0, 2, kindRaw})
			s.rd = 3
			return s.end(0).state("s").fin()
		}(), ErrChecksum, "end record says"},
		{"round end number", func() []byte {
			s := h().start(0, roundFinal).batch(run{0, 2, kindRaw})
			return s.end(5).state("s").fin()
		}(), ErrChecksum, "ends with the number 5"},
		{"page beyond memory", h().start(0, 0).batch(run{64, 1, kindRaw}).fin(), ErrFormat, "beyond memory"},
		{"run crossing the end", h().start(0, 0).batch(run{60, 5, kindZero}).fin(), ErrFormat, "beyond memory"},
		{"huge gap", h().start(0, 0).rawBatch([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0}).fin(), ErrFormat, "beyond memory"},
		{"empty run", h().start(0, 0).batch(run{0, 0, kindZero}).fin(), ErrFormat, "0 pages"},
		{"no runs", h().start(0, 0).rawBatch([]byte{0, 0, 0, 0}).fin(), ErrFormat, "0 runs"},
		{"too many runs", h().start(0, 0).rawBatch(append(binary.AppendUvarint(nil, MaxBatchPages+1), 0, 1, 0)).fin(), ErrFormat, "runs"},
		{"bad run count varint", h().start(0, 0).rawBatch([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}).fin(), ErrFormat, "run count"},
		{"truncated descriptor", h().start(0, 0).rawBatch([]byte{2, 0, 1, 0, 0}).fin(), ErrFormat, "truncated descriptor"},
		{"page kind 2 (reserved)", h().start(0, 0).batch(run{0, 1, kindCompressed}).fin(), ErrFormat, "kind 2"},
		{"unknown page kind", h().start(0, 0).batch(run{0, 1, 9}).fin(), ErrFormat, "kind 9"},
		{"data longer than runs", h().start(0, 0).rawBatch(append([]byte{1, 0, 1, 1}, make([]byte, PageSize+1)...)).fin(), ErrFormat, "data bytes"},
		{"data shorter than runs", h().start(0, 0).rawBatch(append([]byte{1, 0, 2, 1}, make([]byte, PageSize)...)).fin(), ErrFormat, "data bytes"},
		{"batch page count over limit", h().start(0, 0).rawBatch([]byte{1, 0, 0x81, 0x80, 0x04, 0}).fin(), ErrFormat, "batch limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, sink, err := receiveBytes(tc.stream)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error %q does not mention %q", err, tc.substr)
			}
			if sink != nil && sink.bad != nil {
				t.Fatalf("decoder made a bad sink call: %v", sink.bad)
			}
			// The sequential reader (the fuzz target's) fails the same way.
			_, _, _, err2 := receive(context.Background(), bytes.NewReader(tc.stream), nil, func(h Header) (Sink, error) {
				if h.MemSize > 64<<20 {
					return nil, errors.New("too big for the test")
				}
				return newMemSink(h.MemSize, int(h.PageSize)), nil
			}, false)
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("sequential decoder: %v; pipelined: %v", err2, err)
			}
		})
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	valid, sb := validStreamBuilder()
	for _, n := range sb.probeOffsets(len(valid)) {
		if _, _, _, sink, err := receiveBytes(valid[:n]); err == nil {
			t.Fatalf("stream cut at %d of %d bytes accepted", n, len(valid))
		} else if sink != nil && sink.bad != nil {
			t.Fatal(sink.bad)
		}
	}
}

func TestEveryByteFlipDetected(t *testing.T) {
	// Every single-bit error anywhere in the image is caught by a checksum,
	// a count or a format check (a flip in the end record's padding-free
	// totals included).
	valid, sb := validStreamBuilder()
	for _, off := range sb.probeOffsets(len(valid)) {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(valid)
			b[off] ^= bit
			if _, _, _, _, err := receiveBytes(b); err == nil {
				t.Fatalf("flip of bit %#x at byte %d of %d accepted", bit, off, len(valid))
			}
		}
	}
}

func TestLargePageSizeStream(t *testing.T) {
	h := testHeader()
	h.PageSize, h.MemSize = 64<<10, 16*(64<<10)
	b := newStream(h).start(0, roundFinal).batch(run{2, 3, kindRaw}, run{9, 1, kindZero}).end(0).state("x").fin()
	_, _, st, sink, err := receiveBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.DataPages != 3 || sink.mem[3*(64<<10)] != 3 {
		t.Fatalf("stats %+v, page 3 byte %d", st, sink.mem[3*(64<<10)])
	}
}

func TestReceiveSinkErrors(t *testing.T) {
	valid := validStream()
	_, _, _, err := Receive(context.Background(), bytes.NewReader(valid), func(Header) (Sink, error) {
		return newMemSink(63*PageSize, PageSize), nil
	})
	if err == nil || !strings.Contains(err.Error(), "target memory is") {
		t.Fatalf("sink of the wrong size: %v", err)
	}
	_, _, _, err = Receive(context.Background(), bytes.NewReader(valid), func(h Header) (Sink, error) {
		s := newMemSink(h.MemSize, PageSize)
		s.writeErr = errors.New("disk on fire")
		return s, nil
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "write pages 0+10") {
		t.Fatalf("failing sink: %v", err)
	}
}

func TestReceiveCancelled(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := Receive(ctx, pr, func(h Header) (Sink, error) { return newMemSink(h.MemSize, PageSize), nil })
		errc <- err
	}()
	valid := validStream()
	if _, err := pw.Write(valid[:len(valid)/2]); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled receive: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return after cancel")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := testHeader()
	h.Config = strings.Repeat("x", MaxConfigSize)
	h.Engine = strings.Repeat("e", MaxEngineLen)
	h.VCPUs = MaxVCPUs
	got, err := ReadHeader(bytes.NewReader(appendHeader(nil, h)))
	if err != nil || got != h {
		t.Fatalf("round trip: %v", err)
	}
	h.Config += "x"
	if _, err := ReadHeader(bytes.NewReader(appendHeader(nil, h))); !errors.Is(err, ErrFormat) {
		t.Fatalf("oversized config: %v", err)
	}
}

func TestID(t *testing.T) {
	id, err := NewID()
	if err != nil || id.IsZero() {
		t.Fatal(id, err)
	}
	s := id.String()
	if len(s) != 36 || s[14] != '4' {
		t.Fatalf("id %s", s)
	}
	back, err := ParseID(s)
	if err != nil || back != id {
		t.Fatalf("parse %s: %v %v", s, back, err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("0", 36), "0123456789-abcdef0123-4567-89abcdef0123", "0123456x-89ab-cdef-0123-456789abcdef"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestBatchBuilder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		b := newBatchBuilder(PageSize, make([]byte, batchReserve+sendBatchData))
		type page struct {
			n    uint64
			zero bool
		}
		var want []page
		next := uint64(rng.IntN(1000))
		for b.room() > 0 {
			if rng.IntN(8) == 0 {
				break
			}
			n := min(1+rng.IntN(40), b.room())
			sp := b.space(n)
			for i := 0; i < n; i++ {
				pg := sp[i*PageSize : (i+1)*PageSize]
				clear(pg)
				z := rng.IntN(3) == 0
				if !z {
					pg[1+rng.IntN(PageSize-1)] = byte(1 + rng.IntN(255))
					pg[0] = byte(next + uint64(i))
				}
				want = append(want, page{next + uint64(i), z})
			}
			b.addRead(next, n)
			next += uint64(n) + uint64(rng.IntN(3))*uint64(rng.IntN(100))
		}
		if b.empty() {
			continue
		}
		rec := b.finish()
		if rec[0] != recBatch || int(binary.LittleEndian.Uint32(rec[1:])) != len(rec)-frameSize {
			t.Fatalf("frame %x", rec[:5])
		}
		var got []page
		_, data, zero, err := parseBatch(rec[frameSize:], PageSize, 1<<30, nil, func(r run, d []byte) error {
			for i := uint64(0); i < r.count; i++ {
				if r.kind == kindRaw {
					pg := d[i*PageSize : (i+1)*PageSize]
					if isZero(pg) || pg[0] != byte(r.first+i) {
						t.Fatalf("page %d data starts %x", r.first+i, pg[:2])
					}
				}
				got = append(got, page{r.first + i, r.kind == kindZero})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if data != b.data || zero != b.zero || len(got) != len(want) {
			t.Fatalf("parsed %d data %d zero (%d pages), built %d %d (%d)", data, zero, len(got), b.data, b.zero, len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("page %d: got %+v want %+v", i, got[i], want[i])
			}
		}
		b.reset(b.buf)
		if !b.empty() || b.room() != sendBatchData/PageSize {
			t.Fatal("reset")
		}
	}
}

func TestPageSet(t *testing.T) {
	const pages = 3*chunkPages + 77
	rng := rand.New(rand.NewPCG(3, 4))
	s := newPageSet(pages)
	model := make([]bool, pages)
	for iter := 0; iter < 3000; iter++ {
		first := uint64(rng.IntN(pages))
		n := 1 + uint64(rng.IntN(int(min(pages-first, 200))))
		if rng.IntN(4) == 0 {
			n = min(pages-first, uint64(rng.IntN(3*chunkPages)))
			if n == 0 {
				n = 1
			}
		}
		if rng.IntN(2) == 0 {
			s.add(first, n)
			for p := first; p < first+n; p++ {
				model[p] = true
			}
			continue
		}
		var got [][2]uint64
		if err := s.take(first, n, func(a, k uint64) error { got = append(got, [2]uint64{a, k}); return nil }); err != nil {
			t.Fatal(err)
		}
		var want [][2]uint64
		for p := first; p < first+n; p++ {
			if !model[p] {
				continue
			}
			model[p] = false
			if l := len(want); l > 0 && want[l-1][0]+want[l-1][1] == p {
				want[l-1][1]++
			} else {
				want = append(want, [2]uint64{p, 1})
			}
		}
		if len(got) != len(want) {
			t.Fatalf("take(%d,%d): %v, want %v", first, n, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("take(%d,%d): %v, want %v", first, n, got, want)
			}
		}
	}
	allocated := 0
	for _, c := range s.chunks {
		if c != nil {
			allocated++
		}
	}
	if allocated > len(s.chunks) {
		t.Fatal("chunks")
	}
	// An untouched set allocates nothing and takes nothing.
	e := newPageSet(1 << 28)
	if err := e.take(0, 1<<28, func(a, k uint64) error { t.Fatal("took from an empty set"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestBitmapHelpers(t *testing.T) {
	b := make([]uint64, 3)
	setRange(b, 60, 70)
	if countBits(b) != 70 || b[0] != 0xf<<60 || b[1] != ^uint64(0) || b[2] != 3 {
		t.Fatalf("setRange: %x", b)
	}
	if mask(0, 64) != ^uint64(0) || mask(4, 2) != 0x30 {
		t.Fatal("mask")
	}
	if bitmapWords(64) != 1 || bitmapWords(65) != 2 {
		t.Fatal("bitmapWords")
	}
}

func TestIsZero(t *testing.T) {
	p := make([]byte, PageSize)
	if !isZero(p) {
		t.Fatal("zero page not zero")
	}
	for _, i := range []int{0, 7, 8, 2047, PageSize - 1} {
		p[i] = 1
		if isZero(p) {
			t.Fatalf("byte %d set: still zero", i)
		}
		p[i] = 0
	}
	if !isZero(make([]byte, MaxPageSize)) {
		t.Fatal("large zero page")
	}
}
