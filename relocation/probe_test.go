package relocation

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
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
