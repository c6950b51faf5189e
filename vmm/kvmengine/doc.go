// Package kvmengine is the kvm engine of the workload guest: Machine boots
// the self-verifying workload guest on /dev/kvm and implements
// workload.Machine. It owns the guest's source (src/: freestanding C and a
// few lines of assembly), the build script that turns it into the flat
// binary workload.bin embedded here (generate.go), and the machine that
// runs it: guest RAM as KVM memory slots (split at the 3-4 GiB hole and
// into slots of at most 1 GiB), identity-mapped long-mode page tables built
// by the host, the parameter page, a vCPU started directly in 64-bit ring 3
// (IOPL 3), the serial port at 0x3f8 feeding the console, the guest's
// yield/sleep doorbell ports, pause/resume/stop at consistent points, the
// KVM dirty log across all slots, throttling, and vCPU state save/restore
// into a new VM (state.go).
//
// The guest runs in ring 3 so that it runs natively on every KVM this
// project meets: hardware-assisted KVM, where its I/O instructions exit as
// usual, and the PVM hypervisor (nested KVM without hardware support, as on
// the project's test machines), which emulates ring-0 code instruction by
// instruction and turns ring-3 I/O into a triple fault that the engine
// completes (faultio.go).
//
// The ioctl layer is vmm/kvm; guest memory (vmm/guestmem) belongs to the
// caller, on whatever backing it chose (4 KiB, hugetlb or thp pages: KVM
// maps what the memory is made of, and its dirty log stays of 4 KiB
// pages). The workload itself (page format, layout, parameters, the touch=
// fill, console lines, checker) is defined in vmm/workload and must stay
// identical in src/workload.c. This package imports vmm/kvm, vmm/guestmem
// and vmm/workload only; it knows nothing of the VMM runtime (package vmm),
// of migrations or of the agent.
package kvmengine
