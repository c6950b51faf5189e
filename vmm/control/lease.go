package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Monotonic is a point in time on the host's CLOCK_MONOTONIC, in
// nanoseconds: the clock of a lease's run-until time (OpLease). It is one
// clock for every process of the host, so the agent that computes a
// deadline and the VMM that keeps it agree without exchanging wall-clock
// time, and a wall-clock step (NTP, an operator's date) moves neither.
// It does not survive a reboot of the host, nor does a VMM. The zero
// Monotonic means none: a domain without a lease is never fenced.
type Monotonic int64

// MonotonicNow is the host's CLOCK_MONOTONIC now.
func MonotonicNow() Monotonic {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every Linux this runs on; a failure
		// here is a broken host, and a lease must not look unexpired.
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return Monotonic(ts.Nano())
}

// MonotonicOf is the point on CLOCK_MONOTONIC of t, a time read from
// Go's clock (time.Now, and times computed from it: they carry Go's
// monotonic reading, so a wall-clock step does not move them). The zero
// time is the zero Monotonic.
func MonotonicOf(t time.Time) Monotonic {
	if t.IsZero() {
		return 0
	}
	return MonotonicNow().Add(time.Until(t))
}

// IsZero says whether m is none.
func (m Monotonic) IsZero() bool { return m == 0 }

// Add is m moved by d.
func (m Monotonic) Add(d time.Duration) Monotonic { return m + Monotonic(d) }

// Sub is the time from n to m.
func (m Monotonic) Sub(n Monotonic) time.Duration { return time.Duration(m - n) }

// Until is the time left from now to m (negative once m has passed).
func (m Monotonic) Until() time.Duration { return m.Sub(MonotonicNow()) }

// Lease errors: the VMM's answer to an OpLease it refuses starts with
// their text (an answer crosses the socket as text only).
var (
	// ErrStaleGeneration: the lease names a generation lower than the
	// one the VMM has: a newer owner of the domain exists, and the older
	// one's word no longer counts.
	ErrStaleGeneration = errors.New("the lease's generation is older than the domain's")
	// ErrFenceNeedsFuture: the VMM fenced the guest and the lease does
	// not run until a time in the future (none, or one already past).
	ErrFenceNeedsFuture = errors.New("the domain is fenced: only a lease whose run-until time is in the future resumes it")
)

// Lease sends OpLease: the domain runs until runUntil (zero: no
// fencing), under generation. The answer is the VMM's Info after it.
func (c *Client) Lease(ctx context.Context, runUntil Monotonic, generation int64) (*Info, error) {
	resp, err := c.Call(ctx, Request{Op: OpLease, RunUntil: runUntil, Generation: generation})
	if err != nil {
		return nil, err
	}
	if resp.Info == nil {
		return nil, errors.New("VMM answered lease without info")
	}
	return resp.Info, nil
}
