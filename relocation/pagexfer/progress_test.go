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
			time.Sleep(50 * time.Millisecond)
		}
	}()
	// 32 reads 50 ms apart: the write takes longer than the timeout, and
	// each read comes 20 times sooner than it (room for a loaded host).
	w := ProgressWriter(a, time.Second)
	if n, err := w.Write(make([]byte, 2<<20)); err != nil || n != 2<<20 {
		t.Fatalf("write to a slow but moving peer: %d, %v", n, err)
	}
}

// TestProgressConnStalledSender: a sender that sends some bytes and then
// stops makes the read fail after the progress timeout, naming the stall;
// one that keeps sending slowly is read to the end.
func TestProgressConnStalledSender(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		for i := 0; i < 10; i++ {
			if _, err := b.Write(make([]byte, 4096)); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		// then stalls
	}()
	// Writes 50 ms apart, a timeout 20 times that (room for a loaded
	// host, as above).
	r := ProgressConn(a, time.Second)
	done := make(chan error, 1)
	var got int64
	go func() {
		n, err := io.Copy(io.Discard, r)
		got = n
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no progress") || got != 10*4096 {
			t.Fatalf("read from a stalled sender: %d bytes, %v", got, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read from a stalled sender never failed")
	}
}

// TestProgressConnCancel: a read deadline set by the caller (a
// cancellation in the past) still wakes a blocked read, and its error is
// not blamed on the peer.
func TestProgressConnCancel(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := ProgressConn(a, time.Hour)
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	r.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "no progress") {
			t.Fatalf("cancelled read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled read never returned")
	}
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after the cancellation deadline succeeded")
	}
}

// TestProgressWriterKeepsConn: wrapping a connection keeps it one the
// receiver's answers come back on, so the drain stays on.
func TestProgressWriterKeepsConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := ProgressWriter(a, time.Second)
	if _, ok := w.(answerConn); !ok {
		t.Fatalf("ProgressWriter(net.Conn) is a %T, not an answerConn: the drain would be off", w)
	}
	go b.Write([]byte("x"))
	if n, err := w.(answerConn).Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("read through the wrapper: %d, %v", n, err)
	}
}
