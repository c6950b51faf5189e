package vmm

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Socket sizes for the page stream, chosen for the downtime rather than
// left to TCP's autotuning, which on a fast link grows the queues to tens
// of MiB. Whatever sits in them when the guest pauses must still cross
// before the target can resume it: at 600 MB/s every MiB queued is 1.7 ms
// more downtime.
const (
	// notSentLowat caps the bytes queued on the source and not yet sent;
	// it leaves the data in flight (what a long link needs) alone.
	notSentLowat = 256 << 10
	// recvBuffer caps the target's receive queue (the kernel doubles it
	// for its bookkeeping). 2 MiB in flight still fills a 10 Gb/s link
	// with 1 ms round trips, per stream.
	recvBuffer = 1 << 20
)

// tuneSend sets the source side of a page-stream connection. Connections
// that are not TCP (a TLS migration goes through a socket pair) keep
// their defaults.
func tuneSend(c net.Conn) {
	setInt(c, unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat)
}

// tuneReceive sets the target side of a page-stream connection.
func tuneReceive(c net.Conn) {
	setInt(c, unix.SOL_SOCKET, unix.SO_RCVBUF, recvBuffer)
}

func setInt(c net.Conn, level, opt, v int) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	var sc syscall.Conn = tc
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), level, opt, v) })
}
