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
// pushed forward after every piece of at most 256 KiB that moves. When w
// is a net.Conn the result is one too, and its reads (the receiver's
// drain answers) are bounded the same way: a read that receives nothing
// for timeout fails. Deadlines the caller sets (a cancellation) still
// apply when they are the earlier ones. With timeout <= 0, or a writer
// without deadlines, it returns w as is.
func ProgressWriter(w io.Writer, timeout time.Duration) io.Writer {
	if timeout <= 0 {
		return w
	}
	if c, ok := w.(net.Conn); ok {
		return &progressConn{Conn: c, rt: timeout, wt: timeout}
	}
	d, ok := w.(deadliner)
	if !ok {
		return w
	}
	return &progressWriter{d: d, timeout: timeout}
}

type progressWriter struct {
	d       deadliner
	timeout time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	return progressWrite(p.d.Write, func(d time.Time) (time.Time, error) {
		return d, p.d.SetWriteDeadline(d)
	}, p.timeout, b)
}

// progressWrite writes b in pieces, each with a deadline timeout from
// its start (set returns the deadline it actually set and whether it is
// the progress one).
func progressWrite(write func([]byte) (int, error), set func(time.Time) (time.Time, error), timeout time.Duration, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		end := n + progressChunk
		if end > len(b) {
			end = len(b)
		}
		want := time.Now().Add(timeout)
		got, err := set(want)
		if err != nil {
			return n, fmt.Errorf("set write deadline: %w", err)
		}
		m, err := write(b[n:end])
		n += m
		if err != nil {
			if isTimeout(err) && got.Equal(want) {
				return n, fmt.Errorf("peer made no progress for %s (it stopped reading): %w", timeout, err)
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
	return &progressConn{Conn: c, rt: timeout}
}

// progressConn bounds reads by rt and writes by wt (0: c's own).
type progressConn struct {
	net.Conn
	rt, wt time.Duration
	mu     sync.Mutex
	rfixed time.Time // the caller's own read deadline (zero: none)
	wfixed time.Time // the caller's own write deadline (zero: none)
}

// earlier is the progress deadline d, or the caller's fixed one when
// that comes first.
func earlier(d, fixed time.Time) time.Time {
	if !fixed.IsZero() && fixed.Before(d) {
		return fixed
	}
	return d
}

func (p *progressConn) SetDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rfixed, p.wfixed = t, t
	return p.Conn.SetDeadline(t)
}

func (p *progressConn) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rfixed = t
	return p.Conn.SetReadDeadline(t)
}

func (p *progressConn) SetWriteDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wfixed = t
	return p.Conn.SetWriteDeadline(t)
}

func (p *progressConn) Read(b []byte) (int, error) {
	if p.rt <= 0 {
		return p.Conn.Read(b)
	}
	p.mu.Lock()
	want := time.Now().Add(p.rt)
	d := earlier(want, p.rfixed)
	err := p.Conn.SetReadDeadline(d)
	p.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("set read deadline: %w", err)
	}
	n, err := p.Conn.Read(b)
	if err != nil && n == 0 && d.Equal(want) && isTimeout(err) {
		p.mu.Lock()
		own := p.rfixed.IsZero() || p.rfixed.After(d)
		p.mu.Unlock()
		if own {
			return n, fmt.Errorf("peer made no progress for %s (it sent nothing): %w", p.rt, err)
		}
	}
	return n, err
}

func (p *progressConn) Write(b []byte) (int, error) {
	if p.wt <= 0 {
		return p.Conn.Write(b)
	}
	return progressWrite(p.Conn.Write, func(want time.Time) (time.Time, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		d := earlier(want, p.wfixed)
		return d, p.Conn.SetWriteDeadline(d)
	}, p.wt, b)
}
