package ramcheck

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestEqualRAMResendsNothing(t *testing.T) {
	src := randomRAM(4<<20, 1)
	dst := bytes.Clone(src)
	o := checkTCP(t, src, dst, Options{}, Options{})
	if o.srcErr != nil || o.dstErr != nil {
		t.Fatalf("source: %v, target: %v", o.srcErr, o.dstErr)
	}
	for side, r := range map[string]Result{"source": o.src, "target": o.dst} {
		if r.Chunks != 64 || r.DifferentChunks != 0 || r.DifferentPages != 0 || r.BytesResent != 0 {
			t.Errorf("%s: %+v, want 64 chunks and nothing resent", side, r)
		}
	}
}

func TestScatteredPagesAreMended(t *testing.T) {
	const size = 16 << 20 // 4096 pages, 256 chunks of 64 KiB
	cases := []struct {
		name          string
		size          int
		pages         []int
		chunks, bytes int
	}{
		{"8 pages in 8 chunks", size, []int{3, 200, 1001, 1500, 2047, 2048, 3333, 4095}, 8, 8 << 16},
		{"8 pages, two pairs sharing a chunk", size, []int{16, 17, 500, 510, 2000, 3000, 4000, 4095}, 6, 6 << 16},
		{"a short last chunk", size + 3*PageSize, []int{0, 4096, 4098}, 2, 1<<16 + 3*PageSize},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := randomRAM(c.size, 2)
			dst := bytes.Clone(src)
			spoil(dst, c.pages...)
			o := checkTCP(t, src, dst, Options{}, Options{})
			if o.srcErr != nil || o.dstErr != nil {
				t.Fatalf("source: %v, target: %v", o.srcErr, o.dstErr)
			}
			if !bytes.Equal(src, dst) {
				t.Fatal("the target's RAM still differs from the source's")
			}
			for side, r := range map[string]Result{"source": o.src, "target": o.dst} {
				if r.DifferentChunks != c.chunks || r.DifferentPages != len(c.pages) || r.BytesResent != uint64(c.bytes) {
					t.Errorf("%s: %+v, want %d chunks, %d pages, %d bytes", side, r, c.chunks, len(c.pages), c.bytes)
				}
			}
		})
	}
}

func TestTooDifferentLeavesTargetUnchanged(t *testing.T) {
	for _, c := range []struct {
		name   string
		so, to Options
	}{
		{"source's limit", Options{MaxResend: 256 << 10}, Options{}},
		{"target's limit", Options{}, Options{MaxResend: 256 << 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := randomRAM(4<<20, 3)
			dst := bytes.Clone(src)
			spoil(dst, 0, 16, 32, 48, 64) // 5 chunks of 64 KiB > 256 KiB
			before := bytes.Clone(dst)
			o := checkTCP(t, src, dst, c.so, c.to)
			if !errors.Is(o.srcErr, ErrTooDifferent) || !errors.Is(o.dstErr, ErrTooDifferent) {
				t.Fatalf("source: %v, target: %v; want ErrTooDifferent on both", o.srcErr, o.dstErr)
			}
			if !bytes.Equal(dst, before) {
				t.Error("the target's RAM was written although the check gave up")
			}
			if o.src.DifferentChunks != 5 || o.dst.DifferentChunks != 5 || o.dst.BytesResent != 0 {
				t.Errorf("source %+v, target %+v: want 5 differing chunks, nothing resent", o.src, o.dst)
			}
		})
	}
}

func TestMismatchIsAnErrorOnBothSides(t *testing.T) {
	for _, c := range []struct {
		name             string
		srcSize, dstSize int
		so, to           Options
	}{
		{"RAM size", 4 << 20, 8 << 20, Options{}, Options{}},
		{"chunk size", 4 << 20, 4 << 20, Options{ChunkSize: 1 << 20}, Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, dst := randomRAM(c.srcSize, 4), randomRAM(c.dstSize, 5)
			before := bytes.Clone(dst)
			o := checkTCP(t, src, dst, c.so, c.to)
			if !errors.Is(o.srcErr, ErrMismatch) || !errors.Is(o.dstErr, ErrMismatch) {
				t.Fatalf("source: %v, target: %v; want ErrMismatch on both", o.srcErr, o.dstErr)
			}
			t.Logf("source: %v", o.srcErr)
			if !bytes.Equal(dst, before) {
				t.Error("the target's RAM was written")
			}
		})
	}
}

// TestConnectionCarriesOnAfterACheck: a check ends at a message boundary,
// so the two-phase commit can follow on the same connection.
func TestConnectionCarriesOnAfterACheck(t *testing.T) {
	tc, sc := tcpPair(t)
	src := randomRAM(1<<20, 6)
	dst := bytes.Clone(src)
	spoil(dst, 100)
	for round := range 2 {
		o := check(t.Context(), tc, sc, src, dst, Options{}, Options{})
		if o.srcErr != nil || o.dstErr != nil {
			t.Fatalf("round %d: source: %v, target: %v", round, o.srcErr, o.dstErr)
		}
		if want := 1 - round; o.dst.DifferentPages != want {
			t.Errorf("round %d: %d pages mended, want %d", round, o.dst.DifferentPages, want)
		}
	}
	if _, err := tc.Write([]byte("COMMIT")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "COMMIT" {
		t.Fatalf("after the checks the source read %q, %v", got, err)
	}
}

// TestMessageRightAfterTheVerdict: the target's next message, written
// right behind its Verdict (as the engine's Verified is), reaches the
// source's caller whole: the check reads nothing past its own frames.
func TestMessageRightAfterTheVerdict(t *testing.T) {
	tc, sc := tcpPair(t)
	src := randomRAM(1<<20, 7)
	dst := bytes.Clone(src)
	spoil(dst, 3)
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := Target(t.Context(), tc, dst, Options{})
		if err == nil {
			_, err = tc.Write([]byte("VERIFIED"))
		}
		done <- out{res, err}
	}()
	// The source reads late, so that the target's next message is in the
	// socket beside the Verdict when the source reads it.
	if _, err := Source(t.Context(), lateReader{sc}, src, Options{}); err != nil {
		t.Fatal(err)
	}
	if o := <-done; o.err != nil {
		t.Fatal(o.err)
	}
	got := make([]byte, 8)
	sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc, got); err != nil || string(got) != "VERIFIED" {
		t.Fatalf("after the check the source's caller read %q, %v", got, err)
	}
}

// lateReader waits a moment before each read.
type lateReader struct{ net.Conn }

func (l lateReader) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return l.Conn.Read(p)
}

func TestBadOptionsAndRAM(t *testing.T) {
	for _, c := range []struct {
		name string
		ram  []byte
		o    Options
	}{
		{"chunk size not a page multiple", make([]byte, 1<<20), Options{ChunkSize: 5000}},
		{"chunk size too large", make([]byte, 1<<20), Options{ChunkSize: 2 * MaxChunkSize}},
		{"no RAM", nil, Options{}},
		{"RAM not a page multiple", make([]byte, PageSize+1), Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := &recorder{r: bytes.NewReader(nil)}
			if _, err := Target(t.Context(), conn, c.ram, c.o); err == nil {
				t.Error("Target accepted it")
			}
			if _, err := Source(t.Context(), conn, c.ram, c.o); err == nil {
				t.Error("Source accepted it")
			}
			if conn.w.Len() != 0 {
				t.Errorf("%d bytes written", conn.w.Len())
			}
		})
	}
}
