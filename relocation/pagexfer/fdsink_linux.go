package pagexfer

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// FdSink is a Sink over a memory file descriptor (the target's memfd): it
// writes pages with pwrite, so the kernel allocates each page as the data
// lands and no page is faulted in through a mapping, and it zeroes ranges
// by punching holes, which also returns their memory.
//
// Writes are serialised: a shmem write holds the file's inode lock, and
// the decoders of a parallel image calling pwrite at once spin on that
// lock in the kernel (measured: three times the CPU of one writer). A
// goroutine waiting on mu sleeps, leaving the core to the socket reads.
type FdSink struct {
	mu   sync.Mutex
	fd   int
	size uint64
}

// NewFdSink returns a Sink over fd, size bytes long (fd stays the caller's).
func NewFdSink(fd int, size uint64) *FdSink { return &FdSink{fd: fd, size: size} }

// Size returns the memory size.
func (s *FdSink) Size() uint64 { return s.size }

// WriteAt writes p at off with pwrite.
func (s *FdSink) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) > s.size || uint64(len(p)) > s.size-uint64(off) {
		return 0, fmt.Errorf("memory fd %d: write of %d bytes at %d outside %d bytes", s.fd, len(p), off, s.size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := 0
	for done < len(p) {
		n, err := unix.Pwrite(s.fd, p[done:], off+int64(done))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return done, fmt.Errorf("memory fd %d: pwrite at %d: %w", s.fd, off+int64(done), err)
		}
		if n == 0 {
			return done, fmt.Errorf("memory fd %d: pwrite at %d wrote nothing", s.fd, off+int64(done))
		}
		done += n
	}
	return done, nil
}

// ZeroRange punches a hole over [off, off+n).
func (s *FdSink) ZeroRange(off, n uint64) error {
	if off > s.size || n > s.size-off {
		return fmt.Errorf("memory fd %d: zero %d bytes at %d outside %d bytes", s.fd, n, off, s.size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		err := unix.Fallocate(s.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("memory fd %d: punch hole %d+%d: %w", s.fd, off, n, err)
		}
		return nil
	}
}
