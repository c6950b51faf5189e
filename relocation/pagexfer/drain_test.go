package pagexfer

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// slowSink lands pages slower than loopback TCP carries them, like a
// target writing into fresh memory, and counts the pages it writes while
// the source is paused.
type slowSink struct {
	*memSink
	src         *memSource
	afterPause  atomic.Int64
	perWriteFor time.Duration
}

func (s *slowSink) WriteAt(p []byte, off int64) (int, error) {
	time.Sleep(s.perWriteFor)
	s.src.mu.Lock()
	paused := s.src.paused
	s.src.mu.Unlock()
	if paused {
		s.afterPause.Add(int64(len(p) / PageSize))
	}
	return s.memSink.WriteAt(p, off)
}

// TestDrainBeforePause: with a target slower than the link, a live
// migration over a connection waits, the guest still running, until the
// target has applied the pre-copy rounds; the guest's pause then only
// covers the final round. An idle guest's final round is empty, so the
// target writes nothing while the source is paused. A save image (no
// connection to answer on) never asks.
func TestDrainBeforePause(t *testing.T) {
	const pages = 8192 // 32 MiB: more than the sockets queue
	m := newMemSource(pages)
	for p := 0; p < pages; p++ {
		m.write(p, byte(1+p%250))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sink := &slowSink{memSink: newMemSink(pages*PageSize, PageSize), src: m, perWriteFor: 2 * time.Millisecond}
	type received struct {
		h   Header
		err error
	}
	done := make(chan received, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- received{err: err}
			return
		}
		defer c.Close()
		h, _, _, err := Receive(context.Background(), c, func(Header) (Sink, error) { return sink, nil })
		if err == nil {
			err = WriteVerified(c, h.ID, Stats{})
		}
		done <- received{h: h, err: err}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := Send(context.Background(), m, c, testOptions(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.h.Features&FeatureDrain == 0 || res.DrainWait <= 0 {
		t.Fatalf("the live migration over a connection did not drain: features %#x, waited %v", got.h.Features, res.DrainWait)
	}
	if n := sink.afterPause.Load(); n != 0 {
		t.Fatalf("the target wrote %d pages while the source was paused; the final round of an idle guest has none", n)
	}
	if string(sink.mem) != string(m.mem) {
		t.Fatal("the target's memory differs")
	}
}
