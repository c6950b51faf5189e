// Package vmm is the runtime of one ovs-vmm process: it runs one domain on
// an Engine (engine.go), keeps the serial console in a ring buffer and a
// bounded console.log, answers the agent on its control socket, keeps the
// VMM's state (incoming, running, paused, stopping), moves the phases of a
// migration or save through vmm/control's transition tables, runs the
// two-phase commit that follows an image (pagexfer's Verified, Commit and
// Resumed messages over the first connection, with the VMM's timeouts),
// keeps the domain's lease in a pool with HA and fences the guest by
// itself when its run-until time passes (lease.go: the guest paused, or
// its engine killed, whatever became of the agent), and records why it
// ended in an exit file.
//
// The runtime files (vmm.go, migrate.go, receive.go, estimate.go,
// console.go, lease.go) never touch guest memory, a machine or a page stream, nor
// the workload's parameters: the Engine owns the guest's memory (its size
// too, rounded as the engine needs), its vCPUs, its migration image and
// its save image, and reads its own options from the vm.cfg. Engines are
// chosen by name in one table (engines, in engine.go); kvm and sim are
// workloadEngine (workloadengine.go, the one file of this package that
// does touch them), the adapter over a workload.Machine, its vmm/guestmem
// RAM and pagexfer's Source and Sink, which parses the vm.cfg workload
// spec and fits it to the memory. qemu is qemuEngine (qemuengine.go,
// qemuengine_migrate.go): an operating system's guest as one
// qemu-system-x86_64 child (vmm/qemu's Machine), its Spec made from the
// vm.cfg (disks through vmm/diskimage, pygrub through vmm/bootloader,
// vifs through vmm/tap), its image QEMU's own stream checked by
// vmm/ramcheck before the commit. The file names of the domain directory (console.log, exit.json)
// are vmm/control's, the protocol the agent reads them by.
//
// Sub-packages: vmm/control (the agent/VMM protocol: requests, states,
// exit reasons, phases and their transition tables), vmm/kvm (the thin
// KVM ioctl layer), vmm/kvmengine (the kvm engine and the workload guest's
// machine code), vmm/simengine (the sim engine), vmm/guestmem (guest RAM
// as a memfd on 4 KiB, hugetlb or thp pages, chosen per host and domain:
// memory_backing, EngineConfig.MemoryBacking; the software dirty bitmap), vmm/workload (the workload
// guest's contract: parameters, layout, page format, checker, console
// lines, the Machine interface), vmm/workload/workloadtest (the
// conformance suite for Machine implementations), vmm/qmp (a QMP client
// knowing nothing of the project), vmm/qemu (one QEMU child: its command
// line, QMP, its migration, save and restore over a descriptor),
// vmm/ramcheck (the RAM comparison of a migration's two sides),
// vmm/diskimage (disk formats detected safely, a qcow2 reader),
// vmm/bootloader (pygrub's reading of a guest's grub menu) and vmm/tap
// (a vif's tap device on its bridge). It may import config and
// relocation/pagexfer, never agent or cmd.
package vmm
