package domains

import (
	"fmt"
	"os"
	"syscall"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
)

// openRegular opens path read-only without ever blocking: O_NONBLOCK so a
// FIFO fails instead of waiting for a writer, O_NOCTTY so a terminal is
// never adopted, and (with nofollow) O_NOFOLLOW for a path already
// resolved by the caller. Anything but a regular file is closed again and
// refused with fileaccess.ErrNotRegular; the returned file reads blocking.
func openRegular(path string, nofollow bool) (*os.File, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY
	if nofollow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, fileaccess.ErrNotRegular)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
