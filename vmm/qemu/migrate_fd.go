package qemu

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// passFD hands QEMU a copy of f under name (getfd) without touching f's
// blocking mode: os.File.Fd would make the shared open file description
// blocking, and every net.Conn over the same socket would then ignore
// its deadlines. restore puts the file status flags (O_NONBLOCK) back as
// they were, since QEMU sets them as it likes on its copy, which shares
// them; call it once QEMU is done with the descriptor.
func passFD(c *qmp.Client, name string, f *os.File) (restore func(), err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var flags int
	var sendErr error
	err = rc.Control(func(fd uintptr) {
		flags, sendErr = unix.FcntlInt(fd, unix.F_GETFL, 0)
		if sendErr != nil {
			sendErr = fmt.Errorf("read the descriptor's flags: %w", sendErr)
			return
		}
		sendErr = command(c, func(ctx context.Context) error { return c.SendFD(ctx, name, int(fd)) })
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return nil, err
	}
	return func() {
		_ = rc.Control(func(fd uintptr) {
			if now, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil && now != flags {
				_, _ = unix.FcntlInt(fd, unix.F_SETFL, flags)
			}
		})
	}, nil
}
