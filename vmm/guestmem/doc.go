// Package guestmem is guest memory as the engines of the workload guest
// and the page-transfer code see it: RAM, a memfd (sparse: pages never
// written take no memory; it can be handed to another process) mapped
// shared into the VMM, read without faulting holes in (ReadAt, DataRanges,
// DataPages), and DirtyBitmap, the software dirty log (one bit per page)
// with its bitmap helpers (BitmapWords, CountBits, BitPages).
//
// It knows nothing of what the guest writes (that is vmm/workload) nor of
// the engine running it, and imports nothing of this module.
package guestmem
