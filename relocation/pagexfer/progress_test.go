package pagexfer

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestProgressWriterStalledPeer: a peer that reads some bytes and then
// stops makes the writer fail after the progress timeout with an error
// naming the stall, rather than block forever.
func TestProgressWriterStalledPeer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() { _, _ = io.CopyN(io.Discard, b, 1<<20) }() // reads 1 MiB, then stalls
	w := ProgressWriter(a, 200*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 4<<20))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no progress") {
			t.Fatalf("write to a stalled peer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write to a stalled peer never failed")
	}
}

// TestProgressWriterSlowPeer: a peer that keeps reading, slower than one
// progress timeout for the whole write, gets all of it.
func TestProgressWriterSlowPeer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	w := ProgressWriter(a, 100*time.Millisecond)
	if n, err := w.Write(make([]byte, 2<<20)); err != nil || n != 2<<20 {
		t.Fatalf("write to a slow but moving peer: %d, %v", n, err)
	}
}
