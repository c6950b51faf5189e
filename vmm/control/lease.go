package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Monotonic is a point in time on the host's CLOCK_BOOTTIME, in
// nanoseconds: the clock of a lease's run-until time (OpLease). It is one
// clock for every process of the host, so the agent that computes a
// deadline and the VMM that keeps it agree without exchanging wall-clock
// time, and a wall-clock step (NTP, an operator's date) moves neither.
// Unlike CLOCK_MONOTONIC it counts the time the host was suspended
// (suspend to RAM, a virtual host paused by its hypervisor): a lease
// runs out while its host sleeps, as it does in etcd, and a host that
// wakes past the run-until time finds it passed. It does not survive a
// reboot of the host, nor does a VMM. The zero Monotonic means none: a
// domain without a lease is never fenced. (The name is the clock's
// kind: it never goes back.)
type Monotonic int64

// MonotonicNow is the host's CLOCK_BOOTTIME now.
func MonotonicNow() Monotonic {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists on every Linux this runs on (2.6.39 and
		// later); a failure here is a broken host, and a lease must not
		// look unexpired.
		panic(fmt.Sprintf("clock_gettime(CLOCK_BOOTTIME): %v", err))
	}
	return Monotonic(ts.Nano())
}

// MonotonicOf is the point on CLOCK_BOOTTIME of t, a time read from Go's
// clock (time.Now, and times computed from it: they carry Go's monotonic
// reading, so a wall-clock step does not move them): now on
// CLOCK_BOOTTIME plus the time from now to t. Go's clock does not count a
// suspend, so t is best read shortly before: a suspend between the two
// is not counted. The zero time is the zero Monotonic.
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
	// ErrFenced: an operation the VMM refuses while the lease is
	// expired (resume, migration, save): the answer starts with it.
	ErrFenced = errors.New("the domain's lease ran out and the guest is fenced")
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
