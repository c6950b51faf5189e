package guestmem

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Backing is the kind of page guest memory is made of.
type Backing string

const (
	// Backing4K is a plain memfd: 4 KiB pages, allocated as they are
	// first written (unless the operator set shmem_enabled to always or
	// force, which gives all shared memory huge pages where it can).
	Backing4K Backing = "4k"
	// BackingHugeTLB is a hugetlbfs memfd (MFD_HUGETLB|MFD_HUGE_2MB): 2
	// MiB pages from the pool the operator reserved
	// (/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages), all of
	// the guest's reserved when its memory is mapped.
	BackingHugeTLB Backing = "hugetlb"
	// BackingTHP is a plain memfd whose mapping is madvise(MADV_HUGEPAGE):
	// transparent 2 MiB pages where the kernel's shmem_enabled allows
	// them (advise, always, within_size, force), 4 KiB pages where a 2
	// MiB one cannot be had.
	BackingTHP Backing = "thp"
	// BackingAuto is not a backing but the wish for the best one
	// available: hugetlb when enough reserved huge pages are free, else
	// thp when the kernel allows it, else 4k (Choose).
	BackingAuto Backing = "auto"
)

// HugePageSize is the size of the huge pages of BackingHugeTLB and
// BackingTHP.
const HugePageSize = 2 << 20

// Backings lists the values a memory_backing option takes.
var Backings = []string{string(BackingAuto), string(Backing4K), string(BackingHugeTLB), string(BackingTHP)}

// ParseBacking reads a memory_backing value ("" is auto).
func ParseBacking(s string) (Backing, error) {
	switch b := Backing(strings.ToLower(strings.TrimSpace(s))); b {
	case "":
		return BackingAuto, nil
	case BackingAuto, Backing4K, BackingHugeTLB, BackingTHP:
		return b, nil
	}
	return "", fmt.Errorf("memory backing %q: must be one of %s", s, strings.Join(Backings, ", "))
}

// Host is what this host offers guest memory beyond 4 KiB pages.
type Host struct {
	// HugePages is the size of the 2 MiB huge-page pool
	// (nr_hugepages), HugeFree the pages of it nobody holds nor has
	// reserved (free_hugepages less resv_hugepages).
	HugePages, HugeFree uint64
	// ShmemTHP is the kernel's shmem_enabled choice ("never" when the
	// kernel has no transparent huge pages), THP whether a memfd's
	// mapping gets 2 MiB pages when it asks with madvise.
	ShmemTHP string
	THP      bool
}

// sysfsRoot is where ReadHost reads (this package's tests change it).
var sysfsRoot = "/sys/kernel/mm"

// ReadHost reads the huge-page pool and the shmem THP setting from sysfs.
// A kernel without huge pages gives a zero pool; one without THP gives
// ShmemTHP "never".
func ReadHost() (Host, error) {
	var h Host
	dir := filepath.Join(sysfsRoot, "hugepages", "hugepages-2048kB")
	if _, err := os.Stat(dir); err == nil {
		nr, err := readUint(filepath.Join(dir, "nr_hugepages"))
		if err != nil {
			return h, err
		}
		free, err := readUint(filepath.Join(dir, "free_hugepages"))
		if err != nil {
			return h, err
		}
		resv, err := readUint(filepath.Join(dir, "resv_hugepages"))
		if err != nil {
			return h, err
		}
		h.HugePages = nr
		if free > resv {
			h.HugeFree = free - resv
		}
	}
	h.ShmemTHP = "never"
	thp := filepath.Join(sysfsRoot, "transparent_hugepage")
	global, err := readChoice(filepath.Join(thp, "shmem_enabled"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return h, nil
		}
		return h, err
	}
	h.ShmemTHP = global
	// Kernels with per-size controls (6.11 and later) have the 2 MiB
	// size's own setting, which inherits the global one by default.
	if per, err := readChoice(filepath.Join(thp, "hugepages-2048kB", "shmem_enabled")); err == nil && per != "inherit" {
		h.ShmemTHP = per
	}
	switch h.ShmemTHP {
	case "always", "within_size", "advise", "force":
		h.THP = true
	}
	return h, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}

// readChoice reads a sysfs choice file ("always [advise] never"): the
// bracketed word, or the whole content when none is.
func readChoice(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j], nil
		}
	}
	return s, nil
}

// HugePagesFor is the number of 2 MiB pages size bytes take.
func HugePagesFor(size uint64) uint64 { return (size + HugePageSize - 1) / HugePageSize }

// Choose turns a wished backing into the one guest memory of size bytes
// gets on host h, and says why in a sentence: auto picks hugetlb when
// HugeFree holds the whole guest, else thp when the kernel allows it, else
// 4k. An explicit hugetlb or thp the host cannot give is refused, saying
// what the operator can do; 4k is always possible.
func Choose(want Backing, size uint64, h Host) (Backing, string, error) {
	need := HugePagesFor(size)
	switch want {
	case Backing4K:
		return Backing4K, "memory_backing = 4k", nil
	case BackingHugeTLB:
		if need > h.HugeFree {
			return "", "", HugeTLBShortage(size, h)
		}
		return BackingHugeTLB, "memory_backing = hugetlb", nil
	case BackingTHP:
		if !h.THP {
			return "", "", fmt.Errorf("memory_backing = thp: the kernel gives shared memory no transparent huge pages (/sys/kernel/mm/transparent_hugepage/shmem_enabled is %s; set it to advise, or choose 4k or auto)", h.ShmemTHP)
		}
		return BackingTHP, "memory_backing = thp", nil
	case BackingAuto, "":
		switch {
		case h.HugePages > 0 && need <= h.HugeFree:
			return BackingHugeTLB, fmt.Sprintf("auto: %d of %d reserved 2 MiB huge pages are free, the guest takes %d", h.HugeFree, h.HugePages, need), nil
		case h.THP:
			why := fmt.Sprintf("auto: shmem_enabled is %s", h.ShmemTHP)
			if h.HugePages > 0 {
				why += fmt.Sprintf("; %d reserved huge pages are free, the guest needs %d", h.HugeFree, need)
			}
			return BackingTHP, why, nil
		case h.HugePages > 0:
			return Backing4K, fmt.Sprintf("auto: %d reserved huge pages are free, the guest needs %d; shmem_enabled is %s", h.HugeFree, need, h.ShmemTHP), nil
		}
		return Backing4K, fmt.Sprintf("auto: no huge pages reserved, shmem_enabled is %s", h.ShmemTHP), nil
	}
	return "", "", fmt.Errorf("memory backing %q: must be one of %s", want, strings.Join(Backings, ", "))
}

// ErrHugePages is the error of a hugetlb guest that does not fit the free
// reserved huge pages.
var ErrHugePages = errors.New("not enough free huge pages")

// HugeTLBShortage is the error for a hugetlb guest of size bytes that the
// free reserved huge pages of h do not hold: how many it needs, how many
// are free, and what to do.
func HugeTLBShortage(size uint64, h Host) error {
	need := HugePagesFor(size)
	return fmt.Errorf("%w: memory_backing = hugetlb needs %d 2 MiB huge pages for %d MiB; %d of the %d reserved are free (raise /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages by %d, or choose memory_backing = auto or 4k)",
		ErrHugePages, need, size>>20, h.HugeFree, h.HugePages, need-min(need, h.HugeFree))
}
