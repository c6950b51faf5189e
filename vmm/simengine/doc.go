// Package simengine is the sim engine of the workload guest: Machine runs
// the same workload as the KVM guest (vmm/kvmengine), in a goroutine over
// the same guest memory (vmm/guestmem), with the same console lines, a
// software dirty log, throttling, and a saved state (simState) that a new
// machine over a copy of the memory continues from. It implements
// workload.Machine, so that domains run, migrate and save where /dev/kvm
// is missing, and its machine time advances only while it runs.
//
// It imports vmm/workload and vmm/guestmem only; it knows nothing of the
// VMM runtime (package vmm), of migrations or of the agent.
package simengine
