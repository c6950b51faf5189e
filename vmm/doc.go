// Package vmm is the runtime of one ovs-vmm process: it runs one domain on
// an Engine (engine.go), keeps the serial console in a ring buffer and a
// bounded console.log, answers the agent on its control socket, keeps the
// VMM's state (incoming, running, paused, stopping), moves the phases of a
// migration or save through vmm/control's transition tables, runs the
// two-phase commit that follows an image (pagexfer's Verified, Commit and
// Resumed messages over the first connection, with the VMM's timeouts),
// and records why it ended in an exit file.
//
// The runtime never touches guest memory, a machine or a page stream: the
// Engine owns the guest's memory, its vCPUs, its migration image and its
// save image. Engines are chosen by name in one table (engines, in
// engine.go); kvm and sim are workloadEngine (workloadengine.go), the one
// adapter over a workload.Machine, its vmm/guestmem RAM and pagexfer's
// Source and Sink. An engine whose guest is not the workload plugs in by
// implementing Engine and adding a line to that table.
//
// Sub-packages: vmm/control (the agent/VMM protocol: requests, states,
// exit reasons, phases and their transition tables), vmm/kvm (the thin
// KVM ioctl layer), vmm/kvmengine (the kvm engine and the workload guest's
// machine code), vmm/simengine (the sim engine), vmm/guestmem (guest RAM
// as a memfd, the software dirty bitmap), vmm/workload (the workload
// guest's contract: parameters, layout, page format, checker, console
// lines, the Machine interface) and vmm/workload/workloadtest (the
// conformance suite for Machine implementations). It may import config and
// relocation/pagexfer, never agent or cmd.
package vmm
