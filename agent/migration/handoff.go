package migration

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func socketpair() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}

// proxy copies between a and b until either side ends, then closes both.
func proxy(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 1<<20)
		io.CopyBuffer(dst, src, buf)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// HandOff turns an established relocation connection into a file that can
// be passed to a VMM. A plain TCP connection is passed as it is; a TLS
// connection cannot leave this process, so a socket pair carries its
// plaintext and this process keeps doing the TLS.
func HandOff(conn net.Conn) (*os.File, error) {
	if tc, ok := conn.(*net.TCPConn); ok {
		f, err := tc.File()
		conn.Close()
		return f, err
	}
	fds, err := socketpair()
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "relocation-proxy"), os.NewFile(uintptr(fds[1]), "relocation-vmm")
	local, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	go proxy(conn, local)
	return theirs, nil
}
