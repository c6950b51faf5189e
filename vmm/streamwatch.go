package vmm

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A stream that a QEMU reads by itself (the incoming migration stream
// handed to it as a descriptor) has no read deadline of ours: a source that
// vanishes without closing its end (its host lost power, a cable pulled)
// would leave the target waiting for TCP keepalive, minutes. watchReceived
// bounds that wait by progress_timeout: it reads the socket's received-byte
// counter (TCP_INFO's tcpi_bytes_received, which the kernel keeps whoever
// reads the socket) and cancels the returned context once it has stood
// still that long.

// errNoProgress is the cause of a context watchReceived cancelled.
type errNoProgress struct{ d time.Duration }

func (e errNoProgress) Error() string {
	return fmt.Sprintf("no data from the source for %v (progress_timeout): the source is gone or stalled", e.d)
}

// watchReceived returns a context that ends with ctx, or with an
// errNoProgress cause once conn's received bytes stand still for timeout;
// stop ends the watch. A conn that is not TCP, or a timeout of 0, is not
// watched.
func watchReceived(ctx context.Context, conn net.Conn, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	tc, ok := conn.(*net.TCPConn)
	if !ok || timeout <= 0 {
		return ctx, func() { cancel(nil) }
	}
	sc, err := tc.SyscallConn()
	if err != nil {
		return ctx, func() { cancel(nil) }
	}
	done := make(chan struct{})
	go func() {
		every := min(max(timeout/4, 10*time.Millisecond), time.Second)
		t := time.NewTicker(every)
		defer t.Stop()
		last, moved := received(sc), time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n := received(sc)
			if n != last {
				last, moved = n, time.Now()
				continue
			}
			if time.Since(moved) >= timeout {
				cancel(errNoProgress{timeout})
				return
			}
		}
	}()
	return ctx, func() { close(done); cancel(nil) }
}

// received is the socket's tcpi_bytes_received. A counter that cannot be
// read must not look like a stream standing still: it reads as the clock,
// always moving (the stream is then bounded by TCP keepalive only, as
// before).
func received(sc syscall.RawConn) uint64 {
	var n uint64
	var gerr error
	err := sc.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if gerr == nil {
			n = info.Bytes_received
		}
	})
	if err != nil || gerr != nil {
		return uint64(time.Now().UnixNano()) // unreadable: never "stood still"
	}
	return n
}
