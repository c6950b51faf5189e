// Package pagexfer will be the page-transfer subsystem that runs inside an
// ovs-vmm process: the versioned stream format (header, rounds of page
// batches, per-round checksums, final vCPU and device state, two-phase
// commit), the pre-copy sender driven by the engine's dirty log, the
// receiver, and the convergence policy. The same stream written to a file is
// a save image.
//
// It knows guest memory only through a small interface declared here
// (pages, dirty log, pause/resume, vCPU state) that the vmm engines
// implement.
package pagexfer
