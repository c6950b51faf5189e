package vmm

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestWatchReceived: a TCP stream whose peer keeps sending is not cut; one
// whose peer falls silent is, with errNoProgress as the cause, once its
// received bytes stood still for the timeout; a stream that is not TCP is
// not watched.
func TestWatchReceived(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	// Writes 20 ms apart, a timeout 50 times that: a loaded host's
	// stall does not pass for a stream standing still.
	const timeout = time.Second
	ctx, stop := watchReceived(context.Background(), in, timeout)
	defer stop()
	// Sending for two timeouts: the watch must let it be (nobody reads
	// the bytes; the kernel's counter moves all the same).
	for end := time.Now().Add(2 * timeout); time.Now().Before(end); {
		if _, err := out.Write(make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("the watch cut a stream that moves: %v", context.Cause(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute): // a safety net, not a measure
		t.Fatal("the watch never cut a stream that stood still")
	}
	if cause := context.Cause(ctx); !errors.As(cause, new(errNoProgress)) {
		t.Fatalf("cause %v, want errNoProgress", cause)
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pctx, pstop := watchReceived(context.Background(), a, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if pctx.Err() != nil {
		t.Fatalf("a stream that is not TCP was cut: %v", context.Cause(pctx))
	}
	pstop()
	if pctx.Err() == nil {
		t.Fatal("stop did not end the context")
	}
}
