package filexfer

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// isNetErr reports whether err means the connection is gone.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)
}
