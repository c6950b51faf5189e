// Package guestmem is guest memory as the engines of the workload guest
// and the page-transfer code see it: RAM, a memfd (sparse: pages never
// written take no memory; it can be handed to another process) mapped
// shared into the VMM, read without faulting holes in (ReadAt, DataRanges,
// DataPages; landed through the mapping by WriteAt and ZeroRange), on a
// Backing (backing.go: 4 KiB pages, hugetlbfs 2 MiB pages from the
// operator's reserved pool, or shmem transparent huge pages; ReadHost
// reads what the host offers and Choose picks, auto the best), and
// DirtyBitmap, the software dirty log (one bit per page)
// with its bitmap helpers (BitmapWords, CountBits, BitPages).
//
// Its sub-package hosttest is for tests only (raising the huge-page
// pool, allowing shmem THP, restored by t.Cleanup).
//
// It knows nothing of what the guest writes (that is vmm/workload) nor of
// the engine running it, and imports nothing of this module.
package guestmem
