package relocation

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// probePair connects a sender to a ServeProbe over loopback TCP and
// returns the sender's end and the receiver's result.
func probePair(t *testing.T) (net.Conn, <-chan ProbeResult, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	res, errs := make(chan ProbeResult, 1), make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		r, err := ServeProbe(c, bufio.NewReader(c))
		res <- r
		errs <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, res, errs
}

func TestProbe(t *testing.T) {
	c, served, errs := probePair(t)
	start := time.Now()
	res, err := Probe(context.Background(), c, ProbeOptions{Duration: 200 * time.Millisecond, MaxBytes: 256 << 20})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	s := <-served
	t.Logf("%d MiB in %v: %.0f MB/s", res.Bytes>>20, res.Duration, res.Throughput/1e6)
	if res.Bytes <= 0 || res.Bytes > 256<<20 || res.Bytes != s.Bytes || !(res.Throughput > 0) || res.Duration <= 0 {
		t.Fatalf("probe result %+v, served %+v", res, s)
	}
	// The receiver wrote the data into memory, as a migration would.
	if !res.Landed || !(res.MemoryWriteRate > 0) {
		t.Fatalf("the probe's data did not land in memory: %+v", res)
	}
	// Bounded by time or bytes, whichever comes first, plus the drain.
	if took > 5*time.Second {
		t.Fatalf("the probe took %v", took)
	}
}

func TestProbeBytesBound(t *testing.T) {
	c, _, _ := probePair(t)
	res, err := Probe(context.Background(), c, ProbeOptions{Duration: 5 * time.Second, MaxBytes: 3<<20 + 5})
	if err != nil || res.Bytes != 3<<20+5 {
		t.Fatalf("%+v, %v", res, err)
	}
}

// A peer that breaks the framing gets an error answer, not a hang.
func TestProbeBadChunk(t *testing.T) {
	c, _, errs := probePair(t)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxProbeChunk+1)
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "above the") {
		t.Fatalf("oversized chunk: %v", err)
	}
	var res ProbeResult
	if err := readMsg(c, &res); err != nil || !strings.Contains(res.Error, "above the") {
		t.Fatalf("answer %+v, %v", res, err)
	}
}

func TestProbeCancel(t *testing.T) {
	c, _, _ := probePair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	// A 4 s probe cancelled after 100 ms ends at once with an error.
	_, err := Probe(ctx, c, ProbeOptions{Duration: 4 * time.Second})
	if err == nil {
		t.Fatal("cancelled probe: no error")
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("cancel took %v", time.Since(start))
	}
}

// The probe's receiver allocates memory as it writes, but never holds more
// than probeWindow however much arrives.
func TestProbeLandingBounded(t *testing.T) {
	l, err := newLanding()
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	chunk := make([]byte, MaxProbeChunk)
	for i := range chunk {
		chunk[i] = byte(i*7 + 1)
	}
	var peak int64
	for written := 0; written < 3*probeWindow+MaxProbeChunk/2; written += len(chunk) {
		if err := l.write(chunk); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(l.fd, &st); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, st.Blocks*512)
	}
	if peak > probeWindow || peak < probeWindow/2 {
		t.Fatalf("the landing held up to %d bytes; want about %d", peak, probeWindow)
	}
}
