// Package vmm is the runtime of one ovs-vmm process: it owns one domain's
// guest RAM (a memfd), runs the machine on an engine (kvm on /dev/kvm, or
// sim where KVM is missing), keeps the serial console in a ring buffer and
// a bounded console.log, answers the agent on its control socket, and
// records why it ended in an exit file.
//
// Sub-packages: vmm/kvm (the thin KVM layer), vmm/guest (the kvm engine and
// the self-verifying workload guest's machine code), vmm/workload (guest
// RAM, the sim engine, the page format and its checker), vmm/control (the
// agent/VMM protocol). It may import config, never agent or cmd.
package vmm
