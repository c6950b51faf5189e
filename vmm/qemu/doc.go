// Package qemu supervises one qemu-system-x86_64 child for the qemu
// engine of ovs-vmm: it probes the host (ProbeAccel: kvm or tcg;
// ProbeVersion: the binary's version against MinVersion), turns a fully
// resolved Spec into QEMU's command line (guest RAM as a shared file in
// /dev/shm that ovs-vmm can map, disks with their format always given,
// NICs on already-open tap fds, VNC, pvpanic, serial console on
// stdin/stdout, QMP on an inherited socket), and runs the Machine: Start
// (launch, QMP handshake, VNC password, cont), Pause/Resume, Powerdown,
// Kill, the balloon, Stats and Facts, and the end of the guest (shutdown,
// reboot under -no-reboot, panic, QEMU dying or QMP going silent) as one
// error.
//
// It must not touch anything else: it knows nothing of vm.cfg, domains,
// the agent or the VMM runtime (the vmm package's qemuengine.go builds
// the Spec and adapts the Machine to vmm.Engine); it opens no tap device
// and detects no disk format (it is given both). It imports vmm/qmp, the
// standard library and golang.org/x/sys/unix.
package qemu
