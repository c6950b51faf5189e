package pagexfer

import (
	"bytes"
	"context"
	"errors"
	"io"
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
