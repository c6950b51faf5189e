package pagexfer

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// deadliner is a connection whose writes can be given a deadline.
type deadliner interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// progressChunk is the most one write is given before its deadline is
// pushed forward: a slow link that moves bytes never trips the timeout.
const progressChunk = 256 << 10

// ProgressWriter returns w with a progress deadline: a write that moves
// no byte for timeout fails (an error naming the stall), as when the
// peer stopped reading and the send buffer is full. The deadline is
// pushed forward after every piece of at most 256 KiB that moves. With
// timeout <= 0, or a writer without deadlines, it returns w as is.
func ProgressWriter(w io.Writer, timeout time.Duration) io.Writer {
	d, ok := w.(deadliner)
	if !ok || timeout <= 0 {
		return w
	}
	return &progressWriter{d: d, timeout: timeout}
}

type progressWriter struct {
	d       deadliner
	timeout time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		end := n + progressChunk
		if end > len(b) {
			end = len(b)
		}
		if err := p.d.SetWriteDeadline(time.Now().Add(p.timeout)); err != nil {
			return n, fmt.Errorf("set write deadline: %w", err)
		}
		m, err := p.d.Write(b[n:end])
		n += m
		if err != nil {
			if isTimeout(err) {
				return n, fmt.Errorf("peer made no progress for %s (it stopped reading): %w", p.timeout, err)
			}
			return n, err
		}
	}
	return n, nil
}

func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// ProgressConn returns c with a progress deadline on its reads: a read
// that receives no byte for timeout fails (an error naming the stall), as
// when the sender stopped sending. The deadline is pushed forward before
// every read, so a slow link that keeps delivering never trips it. A
// deadline set with SetReadDeadline (a cancellation, for example) still
// applies when it is the earlier one. Writes are c's own. With
// timeout <= 0 it returns c as is.
func ProgressConn(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	return &progressConn{Conn: c, timeout: timeout}
}

type progressConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex
	fixed   time.Time // the caller's own read deadline (zero: none)
}

func (p *progressConn) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fixed = t
	return p.Conn.SetReadDeadline(t)
}

func (p *progressConn) Read(b []byte) (int, error) {
	p.mu.Lock()
	d, own := time.Now().Add(p.timeout), true
	if !p.fixed.IsZero() && p.fixed.Before(d) {
		d, own = p.fixed, false
	}
	err := p.Conn.SetReadDeadline(d)
	p.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("set read deadline: %w", err)
	}
	n, err := p.Conn.Read(b)
	if err != nil && own && n == 0 && isTimeout(err) {
		p.mu.Lock()
		own = p.fixed.IsZero() || p.fixed.After(d)
		p.mu.Unlock()
		if own {
			return n, fmt.Errorf("peer made no progress for %s (it stopped sending): %w", p.timeout, err)
		}
	}
	return n, err
}
