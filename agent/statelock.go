package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockFileName is the file in state_dir whose lock says which agent owns
// the directory (and with it every domain whose VMM lives there).
const lockFileName = "agent.lock"

// stateLock is the held lock on a state directory. The kernel drops it when
// the process ends, however it ends, so a crashed agent never blocks the
// next one; the pid in the file is only for the message a second agent
// gives.
type stateLock struct{ f *os.File }

// lockStateDir takes the state directory for this process, creating it if
// needed. A second agent on the same directory would re-attach the same
// VMMs and could start one domain twice, so it is refused before it looks
// at any domain, with the pid that holds the directory.
func lockStateDir(dir string) (*stateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	// The file is opened without truncating: the holder's pid must stay
	// readable until this process has the lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: lock file: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s: lock %s: %w", dir, path, err)
		}
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				holder = fmt.Sprintf("ovs-agent pid %d", pid)
			}
		}
		return nil, fmt.Errorf("state directory %s is in use by %s (it holds %s): only one agent may run on a state directory; stop that agent first, or give this one its own [agent] state_dir", dir, holder, path)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &stateLock{f: f}, nil
}

// release gives the directory up (at the end of Run). The file stays: a
// removed file could be locked by one agent while the next locks a new one.
func (l *stateLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
}
