package qmp

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// SendFD passes fd to QEMU by SCM_RIGHTS on the QMP socket with `getfd`,
// under name, so that a later command can use it ("fd:NAME" as a
// migration uri). QEMU keeps its own copy: the caller may close fd once
// SendFD returns. CloseFD releases QEMU's copy when a command did not
// consume it.
func (c *Client) SendFD(ctx context.Context, name string, fd int) error {
	if fd < 0 {
		return fmt.Errorf("qmp getfd %s: bad file descriptor %d", name, fd)
	}
	return c.execute(ctx, "getfd", map[string]string{"fdname": name}, nil, fd)
}

// CloseFD is `closefd`: QEMU closes the descriptor it holds under name.
func (c *Client) CloseFD(ctx context.Context, name string) error {
	return c.Execute(ctx, "closefd", map[string]string{"fdname": name}, nil)
}

// writeFD writes b with fd as ancillary data on its first bytes, then the
// rest of b if the kernel took only part of it.
func (c *Client) writeFD(b []byte, fd int) (int, error) {
	n, _, err := c.conn.WriteMsgUnix(b, unix.UnixRights(fd), nil)
	if err != nil || n == len(b) {
		return n, err
	}
	m, err := c.conn.Write(b[n:])
	return n + m, err
}
