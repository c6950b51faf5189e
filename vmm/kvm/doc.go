// Package kvm is a thin layer over the Linux KVM API (/dev/kvm) for x86-64:
// the system handle (API version, capabilities, supported CPUID, MSR list),
// virtual machines (memory slots with dirty logging, dirty-log get-and-clear,
// TSS and identity-map placement) and vCPUs (KVM_RUN with exit decoding,
// registers, special registers, FPU/XSAVE, XCRs, MSRs, events, debug
// registers, TSC frequency, and a complete state save/restore for moving a
// vCPU to a new VM).
//
// It owns only the ioctl plumbing and the struct layouts, which follow the
// kernel's Documentation/virt/kvm/api.rst and uapi headers. It knows nothing
// about the guest it runs: guest memory belongs to the caller (usually a memfd
// mapping), and the machine layout, boot state and I/O ports are decided by
// the engine built on top (vmm/kvmengine). It must not import other ovs-agent
// packages.
package kvm
