package connlimittest

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/connlimit"
)

// ClosedWithin reports whether the peer closed c within d (a read that
// did not time out: an end of file, a reset, or a byte).
func ClosedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Closed reports whether the server closed c within 5 s: a test that
// wants c closed gives a loaded host seconds.
func Closed(c net.Conn) bool { return ClosedWithin(c, 5*time.Second) }

// Kept reports whether c stayed open for 300 ms: a test that wants c kept
// waits a short while.
func Kept(c net.Conn) bool { return !ClosedWithin(c, 300*time.Millisecond) }

// WaitHeld waits, at most 5 s, until n connections hold a place in p (a
// server may take a place in each connection's own goroutine, and gives a
// closed one's back when it reads its end).
func WaitHeld(t testing.TB, p *connlimit.Pending, n int) {
	t.Helper()
	for i := 0; p.Held() != n; i++ {
		if i == 5000 {
			t.Fatalf("%d connections hold a pending place, want %d", p.Held(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
