package ramcheck

import (
	"fmt"
	"math"
	"sync"

	"golang.org/x/sys/unix"
)

// RAM is a guest's RAM file (QEMU's memory-backend-file share=on) mapped
// MAP_SHARED into this process: QEMU's writes show in Bytes, and on a
// writable mapping writes to Bytes reach QEMU's guest.
type RAM struct {
	path string
	mu   sync.Mutex
	mem  []byte
}

// Map maps the first size bytes of the regular file at path, read-only
// (the source) or read-write (the target). The file must be at least size
// bytes long; size must be a positive multiple of PageSize.
func Map(path string, size uint64, writable bool) (*RAM, error) {
	if size == 0 || size%PageSize != 0 || size > math.MaxInt {
		return nil, fmt.Errorf("ramcheck: RAM file %s: size %d is not a positive multiple of %d", path, size, PageSize)
	}
	flags, prot := unix.O_RDONLY, unix.PROT_READ
	if writable {
		flags, prot = unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	}
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ramcheck: opening RAM file %s: %w", path, err)
	}
	defer unix.Close(fd) // the mapping outlives the descriptor
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("ramcheck: RAM file %s: fstat: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("ramcheck: RAM file %s is not a regular file (mode %#o): give the memory-backend-file's mem-path", path, st.Mode)
	}
	if st.Size < 0 || uint64(st.Size) < size {
		return nil, fmt.Errorf("ramcheck: RAM file %s is %d bytes, shorter than the guest's %d", path, st.Size, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("ramcheck: mapping %d bytes of RAM file %s: %w", size, path, err)
	}
	return &RAM{path: path, mem: mem}, nil
}

// Bytes is the mapped RAM; it is invalid after Close.
func (r *RAM) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mem
}

// Close unmaps the RAM (the file stays). Closing twice is harmless.
func (r *RAM) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	if err != nil {
		return fmt.Errorf("ramcheck: unmapping RAM file %s: %w", r.path, err)
	}
	return nil
}
