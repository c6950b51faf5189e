package workload

import "github.com/ovs-agent/ovs-agent/vmm/guestmem"

// Machine is what the VMM's workload engine adapter (package vmm) and the
// page-transfer subsystem need from an engine running the workload guest.
// Both the KVM engine (vmm/kvmengine.Machine) and the sim engine
// (vmm/simengine.Machine) implement it. Guest RAM and
// the console writer are given to the engine's constructor; a restored
// machine is built from a saved state the same way.
type Machine interface {
	// Start runs the vCPUs: from boot, or from the state the machine was
	// built with.
	Start() error
	// Pause stops every vCPU at a point where memory is consistent (no page
	// half written) and returns once they are stopped. Idempotent.
	Pause() error
	// Resume continues after Pause.
	Resume() error
	// Stop ends the machine for good. Guest memory stays with its owner.
	Stop() error
	// Done is closed when the machine has stopped (Stop, a guest fault or
	// an engine error); Err then says why (nil after Stop).
	Done() <-chan struct{}
	Err() error

	// RAM returns guest memory.
	RAM() *guestmem.RAM
	// SetDirtyLogging turns dirty-page tracking on (starting from a clean
	// log) or off.
	SetDirtyLogging(on bool) error
	// DirtyLog fetches and clears the dirty log into dst (guestmem.BitmapWords(pages)
	// words): bit i set when RAM page i was written since the last call.
	DirtyLog(dst []uint64) error

	// SaveState returns the vCPU/engine state of a paused machine, to be
	// given to a new machine over the same memory (save/restore, migration).
	SaveState() ([]byte, error)
	// Stats returns the workload counters from the guest's status page.
	Stats() Stats
	// SetThrottle makes vCPUs sleep percent% of the time (0 to 99), for
	// auto-converge.
	SetThrottle(percent int) error
}
