// Package qemu supervises one qemu-system-x86_64 child for the qemu engine
// of ovs-vmm: it probes the host (ProbeAccel: kvm or tcg; ProbeVersion:
// the binary's version against MinVersion), turns a fully resolved Spec
// into QEMU's command line (guest RAM as a shared file in /dev/shm that
// ovs-vmm can map, unlinked once QEMU has mapped it and named by the VMM's
// descriptor, disks with their format always given (a shared one, vm.cfg's
// "w!", unlocked), fw_cfg strings that tell the guest who runs it
// (fwcfg.go: FwCfgGeneration, FwCfgHost, FwCfgDomain), NICs on
// already-open tap fds, VNC, the ISA pvpanic device with -action
// panic=shutdown, serial console on stdin/stdout, QMP on an inherited
// socket), and runs the Machine: Start (launch, QMP handshake, VNC
// password, cont), Pause/Resume, Powerdown, Kill, the balloon, Stats and
// Facts, and the end of the guest as one error (nil for a poweroff or
// Kill; ErrRebooted for a guest reboot under -no-reboot, ErrPanicked,
// ErrHostShutdown for a reset or signal that came from the host,
// ErrCrashed for QEMU dying or QMP going silent). Its migration, save and
// restore (migrate.go, save.go) run QEMU's stream over a descriptor it is
// given, behind the image header of save.go.
//
// It must not touch anything else: it knows nothing of vm.cfg, domains,
// the agent or the VMM runtime (the vmm package's qemuengine.go builds
// the Spec and adapts the Machine to vmm.Engine); it opens no tap device
// and detects no disk format (it is given both). It imports vmm/qmp,
// config/vmcfg (only the size bound of the vm.cfg a save header carries),
// the standard library and golang.org/x/sys/unix; its tests also use
// vmm/ramcheck, as the engine does after a live migration, and
// internal/testguest/records, which reads the test guest's record log.
package qemu
