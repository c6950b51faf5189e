package guestmem

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the page of guest memory: the granularity of its holes and
// of the dirty log (one bit per page).
const PageSize = 4096

// RAM is guest memory: a memfd (so it can be handed to another process and
// stays sparse: pages never written take no memory) mapped shared into this
// process. The engines run the guest over Bytes(); the page-transfer code
// and the checker read it through ReadAt and DataRanges, which do not fault
// untouched pages in.
type RAM struct {
	fd      int
	size    uint64
	mem     []byte
	name    string
	backing Backing
}

// NewRAM creates size bytes of zeroed guest memory of 4 KiB pages
// (memfd_create, ftruncate, mmap MAP_SHARED|MAP_NORESERVE).
func NewRAM(name string, size uint64) (*RAM, error) {
	return NewBackedRAM(name, size, Backing4K)
}

// NewBackedRAM creates size bytes of zeroed guest memory on backing b (4k,
// hugetlb or thp; auto must have been resolved by Choose). hugetlb memory
// must be a whole number of 2 MiB pages; all of them are reserved from the
// pool by the mapping (no MAP_NORESERVE: a guest must not die of a fault
// the pool cannot serve), and when the free pool is too small NewBackedRAM
// fails with ErrHugePages.
func NewBackedRAM(name string, size uint64, b Backing) (*RAM, error) {
	if size == 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("guest memory %q: size %d is not a positive multiple of %d", name, size, PageSize)
	}
	flags := unix.MFD_CLOEXEC
	switch b {
	case Backing4K, BackingTHP:
	case BackingHugeTLB:
		if size%HugePageSize != 0 {
			return nil, fmt.Errorf("guest memory %q: hugetlb memory must be a multiple of 2 MiB, not %d bytes", name, size)
		}
		flags |= unix.MFD_HUGETLB | unix.MFD_HUGE_2MB
	default:
		return nil, fmt.Errorf("guest memory %q: backing %q is not 4k, hugetlb or thp", name, b)
	}
	fd, err := unix.MemfdCreate(name, flags)
	if err != nil {
		return nil, fmt.Errorf("guest memory %q: memfd_create (%s): %w", name, b, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("guest memory %q: ftruncate to %d bytes: %w", name, size, err)
	}
	r, err := mapBacked(fd, size, name, b)
	if err != nil {
		unix.Close(fd)
		if b == BackingHugeTLB && errors.Is(err, unix.ENOMEM) {
			h, _ := ReadHost()
			return nil, fmt.Errorf("guest memory %q: %w", name, HugeTLBShortage(size, h))
		}
		return nil, err
	}
	return r, nil
}

// OpenRAM maps an existing memfd of size bytes (for example one received
// over a unix socket); a hugetlbfs one is known as such (its thp advice,
// if any, is the creator's). The DataRanges of a hugetlbfs one are the
// pages mapped here: pages another process wrote are not among them until
// this mapping touches them. The RAM takes ownership of fd.
func OpenRAM(fd int, size uint64, name string) (*RAM, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("guest memory %q: fstat fd %d: %w", name, fd, err)
	}
	if uint64(st.Size) != size {
		return nil, fmt.Errorf("guest memory %q: fd %d is %d bytes, expected %d", name, fd, st.Size, size)
	}
	if size == 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("guest memory %q: size %d is not a positive multiple of %d", name, size, PageSize)
	}
	b := Backing4K
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err == nil && fs.Type == unix.HUGETLBFS_MAGIC {
		b = BackingHugeTLB
	}
	return mapBacked(fd, size, name, b)
}

func mapBacked(fd int, size uint64, name string, b Backing) (*RAM, error) {
	flags := unix.MAP_SHARED | unix.MAP_NORESERVE
	if b == BackingHugeTLB {
		flags = unix.MAP_SHARED
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, fmt.Errorf("guest memory %q: mmap %d bytes (%s): %w", name, size, b, err)
	}
	if b == BackingTHP {
		if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
			unix.Munmap(mem)
			return nil, fmt.Errorf("guest memory %q: madvise(MADV_HUGEPAGE): %w", name, err)
		}
	}
	return &RAM{fd: fd, size: size, mem: mem, name: name, backing: b}, nil
}

// Backing returns what the memory is made of.
func (r *RAM) Backing() Backing { return r.backing }

// WriteAt lands p at off through the shared mapping: the way into a
// hugetlbfs memfd (which takes no write(2)), one fault per 2 MiB page, and
// into a thp one (a write(2) into shmem allocates 4 KiB pages; a fault in
// the madvised mapping a 2 MiB one). Callers may write different pages at
// once.
func (r *RAM) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) > r.size || uint64(len(p)) > r.size-uint64(off) {
		return 0, fmt.Errorf("guest memory %q: write of %d bytes at %d outside %d bytes", r.name, len(p), off, r.size)
	}
	return copy(r.mem[off:], p), nil
}

// ZeroRange makes [off, off+n) read as zero: whole pages are punched out
// (fallocate PUNCH_HOLE, which frees them). On hugetlbfs the part of a 2
// MiB page a range covers partly is cleared through the mapping when the
// page holds data (kernels before 6.2 leave such parts alone when
// punching; a page without data reads as zero already).
func (r *RAM) ZeroRange(off, n uint64) error {
	if off > r.size || n > r.size-off {
		return fmt.Errorf("guest memory %q: zero %d bytes at %d outside %d bytes", r.name, n, off, r.size)
	}
	if r.backing != BackingHugeTLB {
		return r.punch(off, n)
	}
	end := off + n
	lo := (off + HugePageSize - 1) / HugePageSize * HugePageSize
	hi := end / HugePageSize * HugePageSize
	parts := []Range{{off, n}} // within one 2 MiB page
	if lo <= hi {
		if lo < hi {
			if err := r.punch(lo, hi-lo); err != nil {
				return err
			}
		}
		parts = []Range{{off, lo - off}, {hi, end - hi}}
	}
	for _, part := range parts {
		if part.Len == 0 {
			continue
		}
		page := part.Off / PageSize * PageSize
		var vec [1]byte
		if err := mincore(r.mem[page:page+PageSize], vec[:]); err != nil {
			return fmt.Errorf("guest memory %q: mincore at %d: %w", r.name, page, err)
		}
		if vec[0]&1 != 0 {
			clear(r.mem[part.Off : part.Off+part.Len])
		}
	}
	return nil
}

// punch punches [off, off+n) out of the memfd.
func (r *RAM) punch(off, n uint64) error {
	for {
		err := unix.Fallocate(r.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("guest memory %q: punch hole %d+%d: %w", r.name, off, n, err)
		}
		return nil
	}
}

// Fd returns the memfd (owned by the RAM).
func (r *RAM) Fd() int { return r.fd }

// Size returns the size in bytes.
func (r *RAM) Size() uint64 { return r.size }

// Pages returns the size in pages.
func (r *RAM) Pages() uint64 { return r.size / PageSize }

// Bytes returns the shared mapping. Reading a page never written through it
// allocates the page; use ReadAt or DataRanges to keep a sparse guest sparse.
func (r *RAM) Bytes() []byte { return r.mem }

// Name returns the memfd name.
func (r *RAM) Name() string { return r.name }

// ReadAt reads guest memory without allocating pages that hold no data.
// Pages in the memfd's page cache are copied from the shared mapping (a
// plain memmove: 11-13 GB/s here against 4-7 for pread, which copies page
// by page; a page not yet mapped here costs a minor fault, still cheaper);
// the others (holes) are read with pread, which returns zeros without
// allocating them. mincore tells the two apart, readChunk pages per call.
// A page punched to a hole between that check and the copy would be
// allocated again by the copy; nothing punches the memory of a running
// guest.
func (r *RAM) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) > r.size {
		return 0, fmt.Errorf("guest memory %q: read at %d outside %d bytes", r.name, off, r.size)
	}
	var vec [readChunk]byte
	done := 0
	for done < len(p) {
		o := uint64(off) + uint64(done)
		if o >= r.size {
			return done, fmt.Errorf("guest memory %q: read at %d: end of memory", r.name, o)
		}
		first := o / PageSize
		end := min(o+uint64(len(p)-done), r.size, (first+readChunk)*PageSize)
		pages := (end+PageSize-1)/PageSize - first
		if r.mem == nil || mincore(r.mem[first*PageSize:(first+pages)*PageSize], vec[:pages]) != nil {
			n, err := r.pread(p[done:done+int(end-o)], o)
			done += n
			if err != nil {
				return done, err
			}
			continue
		}
		// Runs of resident pages are copied, runs of holes read.
		for i := uint64(0); i < pages; {
			res := vec[i]&1 != 0
			j := i + 1
			for j < pages && (vec[j]&1 != 0) == res {
				j++
			}
			lo, hi := max(o, (first+i)*PageSize), min(end, (first+j)*PageSize)
			dst := p[done : done+int(hi-lo)]
			if res {
				done += copy(dst, r.mem[lo:hi])
			} else {
				n, err := r.pread(dst, lo)
				done += n
				if err != nil {
					return done, err
				}
			}
			i = j
		}
	}
	return done, nil
}

// readChunk is the most pages ReadAt checks with one mincore call.
const readChunk = 256

// mincore fills vec with the residency of the pages of b (bit 0 set: in
// the page cache, which for a memfd means the page holds data).
func mincore(b, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return e
	}
	return nil
}

// pread reads len(p) bytes at off with pread (holes read as zeros and
// stay holes).
func (r *RAM) pread(p []byte, off uint64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(r.fd, p[done:], int64(off)+int64(done))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return done, fmt.Errorf("guest memory %q: pread at %d: %w", r.name, off+uint64(done), err)
		}
		if n == 0 {
			return done, fmt.Errorf("guest memory %q: read at %d: end of memory", r.name, off+uint64(done))
		}
		done += n
	}
	return done, nil
}

// Range is a byte range [Off, Off+Len) of RAM.
type Range struct {
	Off, Len uint64
}

// DataRanges returns the ranges of RAM that hold data (lseek SEEK_DATA /
// SEEK_HOLE); everything else reads as zero and takes no memory. A
// hugetlbfs memfd has no SEEK_DATA of its own (the whole file reads as
// data): there the pages mapped here are its data (mincore on the
// mapping), which holds because every write of its guest goes through
// this process's mapping (the vCPUs', KVM's faults, the receiver's).
func (r *RAM) DataRanges() ([]Range, error) {
	if r.backing == BackingHugeTLB {
		return r.mappedRanges()
	}
	var out []Range
	off := int64(0)
	for uint64(off) < r.size {
		d, err := unix.Seek(r.fd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // no data after off
			}
			return nil, fmt.Errorf("guest memory %q: SEEK_DATA from %d: %w", r.name, off, err)
		}
		h, err := unix.Seek(r.fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("guest memory %q: SEEK_HOLE from %d: %w", r.name, d, err)
		}
		if uint64(h) > r.size {
			h = int64(r.size)
		}
		out = append(out, Range{Off: uint64(d), Len: uint64(h - d)})
		off = h
	}
	return out, nil
}

// mappedRanges is DataRanges by mincore, 2 MiB page by 2 MiB page.
func (r *RAM) mappedRanges() ([]Range, error) {
	var out []Range
	const per = HugePageSize / PageSize
	vec := make([]byte, per)
	for off := uint64(0); off < r.size; off += HugePageSize {
		end := min(off+HugePageSize, r.size)
		if err := mincore(r.mem[off:end], vec[:(end-off)/PageSize]); err != nil {
			return nil, fmt.Errorf("guest memory %q: mincore at %d: %w", r.name, off, err)
		}
		if vec[0]&1 == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len == off {
			out[n-1].Len += end - off
		} else {
			out = append(out, Range{Off: off, Len: end - off})
		}
	}
	return out, nil
}

// DataPages counts the pages that hold data.
func (r *RAM) DataPages() (uint64, error) {
	rs, err := r.DataRanges()
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, x := range rs {
		n += (x.Len + PageSize - 1) / PageSize
	}
	return n, nil
}

// Uint64 atomically loads the aligned word at byte offset off.
func (r *RAM) Uint64(off uint64) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.mem[off])))
}

// Close unmaps the memory and closes the memfd. Engines using it must be
// stopped first.
func (r *RAM) Close() error {
	var errs []error
	if r.mem != nil {
		if err := unix.Munmap(r.mem); err != nil {
			errs = append(errs, fmt.Errorf("guest memory %q: munmap: %w", r.name, err))
		}
		r.mem = nil
	}
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			errs = append(errs, fmt.Errorf("guest memory %q: close: %w", r.name, err))
		}
		r.fd = -1
	}
	return errors.Join(errs...)
}
